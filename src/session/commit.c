/*
 * commit.c - the turn's batch and its commit: when to commit, what waits for
 * it (held acks, top-ups from the store, bridge acks), and what runs after.
 *
 * A commit is a *round*: start_round() closes the open batch and hands it to
 * the store; finish_round() runs when the store is done with it. Without the
 * storage thread both happen in one call (session_flush()). With it
 * (store_committer_start(), issue 11) the loop goes on reading while the
 * batch syncs, and finish_round() runs when the server collects the batch
 * (session_commit_collect()). At most one batch is in flight; the loop's next
 * batch opens meanwhile and waits for the next round.
 *
 * What the in-flight batch changes about the rules, and why they still hold:
 * - Acks wait for their commit: while a batch is in flight, every durable
 *   send is held (output.c asks mgr_acks_must_wait()), so an ack that
 *   answers a resend of state still in flight (a QoS 2 PUBLISH whose id is
 *   ADDING) waits too. Held sends move with their batch (flight_held) and
 *   leave when it commits; those held later wait for the next round.
 * - Top-ups: a read that must see what this turn recorded (a resumed
 *   session's queue states, a new SUBSCRIBE's retained messages) waits for
 *   the commit of the batch open when it was scheduled (REFILL_AFTER_OPEN,
 *   then REFILL_AFTER_FLIGHT once that batch is handed over); a top-up for
 *   room an ack freed reads what is committed at once (REFILL_ANYTIME). A
 *   queue whose newest entries are not committed yet is not declared drained
 *   by a read that could not see them (deliver_appends_wait(): queued_gen).
 * - Batches commit in order and a round starts only when the previous one
 *   finished, so effects (effects.c) confirm or undo in order too. If a
 *   round fails, the open batch is failed with it: its changes were made on
 *   top of memory the failure just undid.
 *
 * Not for: what goes into a batch (the handlers) or how it is written
 * (storage/).
 */
#include <stdlib.h>

#include "log.h"
#include "session.h"
#include "session_internal.h"
#include "store.h"

/* Commit rounds per session_flush(): a commit's completions may queue more
 * durable work (top-ups from the store), which needs its own commit. */
#define FLUSH_MAX_ROUNDS 4

/* A batch nobody waits on (no held ack, no top-up) may wait
 * config.commit_defer_us (10 ms) for company: a subscriber's PUBACK only
 * deletes a queue entry, and committing it on its own would cost an fsync
 * that delays the next publisher's ack. Losing such a batch in a crash only
 * re-sends an acknowledged QoS 1 message (a duplicate, which QoS 1 allows)
 * or a PUBREL. */
static uint64_t commit_due_us(const struct session_mgr *mgr)
{
    return mgr->batch_opened_us + mgr->config.commit_defer_us;
}

_Static_assert(SESSION_COMMIT_STARTED == STORE_COMMIT_STARTED, "one meaning");

/* ---- The turn's batch ---- */

struct store_batch *mgr_batch(struct session_mgr *mgr)
{
    if (!mgr->batch) {
        mgr->batch = store_batch_new(mgr->store);
        mgr->batch_opened_us = monotonic_us();
    }
    return mgr->batch;
}

bool mgr_batch_has_changes(const struct session_mgr *mgr)
{
    return mgr->batch && !store_batch_is_empty(mgr->batch);
}

bool mgr_commit_in_flight(const struct session_mgr *mgr)
{
    return store_commit_in_flight(mgr->store);
}

bool mgr_acks_must_wait(const struct session_mgr *mgr)
{
    return mgr_batch_has_changes(mgr) || mgr_commit_in_flight(mgr);
}

/* Anything at all for session_flush() to commit or release. */
static bool has_work(const struct session_mgr *mgr)
{
    return mgr->batch || mgr->held_head || mgr->refill || mgr->has_waiters ||
           mgr_commit_in_flight(mgr);
}

/* Someone waits for the turn's commit: held acks, top-ups that must read
 * it, or a session_after_commit() caller (a bridge's ack to its remote). */
static bool has_waiting(const struct session_mgr *mgr)
{
    return mgr->held_head || mgr->has_waiters || mgr->refills_waiting > 0;
}

/* A batch with nothing to write (its reservations were not used: the
 * messages were dropped by a queue limit, say): dropped at the end of the
 * turn, so its reservations do not pile up. */
static bool has_empty_batch(const struct session_mgr *mgr)
{
    return mgr->batch && store_batch_is_empty(mgr->batch);
}

bool session_has_failed(const struct session_mgr *mgr)
{
    return mgr->has_failed;
}

/* The open batch should be committed now (not deferred). */
static bool is_commit_due(const struct session_mgr *mgr)
{
    if (has_waiting(mgr) || has_empty_batch(mgr))
        return true;
    return mgr_batch_has_changes(mgr) && monotonic_us() >= commit_due_us(mgr);
}

bool session_has_pending(const struct session_mgr *mgr)
{
    if (mgr->refills_due > 0) /* a top-up that can run now, with no commit */
        return true;
    if (mgr_commit_in_flight(mgr))
        return false; /* its completion wakes the loop (session_commit_collect) */
    return is_commit_due(mgr);
}

double session_commit_delay_s(const struct session_mgr *mgr)
{
    if (mgr_commit_in_flight(mgr) || has_waiting(mgr) || !mgr_batch_has_changes(mgr))
        return -1.0; /* in flight: the completion ends the turn again */
    uint64_t now = monotonic_us(), due = commit_due_us(mgr);
    return now >= due ? 0.0 : (double)(due - now) / 1e6;
}

/* ---- Rounds ---- */

/* For $SYS and metrics: what a durable ack waits for. The bucket search is
 * at most SESSION_COMMIT_BUCKETS compares, once per commit. */
static void record_commit_time(struct session_mgr *mgr, uint64_t us)
{
    size_t bucket = 0;
    while (bucket < SESSION_COMMIT_BUCKETS && us > session_commit_bucket_us[bucket])
        bucket++;
    mgr->commit_buckets[bucket]++;
    mgr->commits++;
    mgr->commit_us_total += us;
    mgr->commit_us_last = us;
    if (us > mgr->commit_us_max)
        mgr->commit_us_max = us;
}

/* After a commit that changed retained messages (or failed to): the count
 * comes from the store, which knows whether a topic was new or replaced. */
static void count_stored_retained(struct session_mgr *mgr)
{
    int rc = store_retained_count(mgr->store, &mgr->retained_stored);
    if (rc != 0)
        log_error("counting retained messages: %s", store_strerror(rc));
}

/* The top-ups that waited for the open batch now wait for it in flight. */
static void refills_join_round(struct session_mgr *mgr)
{
    for (struct session *s = mgr->refill; s; s = s->refill_next)
        if (s->refill_wait == REFILL_AFTER_OPEN)
            s->refill_wait = REFILL_AFTER_FLIGHT;
}

/* A collected batch failed: what the loop built while it was in flight
 * stands on it - the open batch, and the sends held meanwhile (a takeover's
 * CONNACK for a session whose record was in the failed batch, say). Both
 * fail with it: the batch writes nothing, the sends are dropped and their
 * clients closed, as for the failed batch's own. */
static void fail_built_on(struct session_mgr *mgr, int status)
{
    if (mgr->batch)
        store_batch_fail(mgr->batch, status);
    struct held_send *held = mgr->held_head;
    mgr->held_head = mgr->held_tail = NULL;
    output_release_held(mgr, held, status);
}

/* is_collected: the batch was in flight (the loop went on meanwhile). */
static int finish_round(struct session_mgr *mgr, int status, bool is_collected)
{
    if (mgr->flight_started_us != 0) /* a batch with ops went to the store */
        record_commit_time(mgr, monotonic_us() - mgr->flight_started_us);
    mgr->flight_started_us = 0;
    if (status == STORE_ERR_FATAL) {
        mgr->has_failed = true;
    } else if (status != 0 && status != STORE_ERR_CANCELED) {
        log_error("store commit failed: %s; closing the clients whose acks it held",
                  store_strerror(status));
    }
    struct held_send *held = mgr->flight_held;
    mgr->flight_held = NULL;
    output_release_held(mgr, held, status);
    if (status != 0 && is_collected)
        fail_built_on(mgr, status);
    if (mgr->is_flight_retained_changed) {
        mgr->is_flight_retained_changed = false;
        count_stored_retained(mgr);
    }
    if (status == 0)
        deliver_run_refills(mgr, REFILL_AFTER_FLIGHT);
    return status;
}

/* Closes the open batch and hands it to the store. Returns
 * STORE_COMMIT_STARTED (the storage thread has it), or the round's status
 * when it finished here (no thread, nothing to write, or an early failure). */
static int start_round(struct session_mgr *mgr)
{
    struct store_batch *b = mgr->batch;
    mgr->batch = NULL;
    mgr->has_waiters = false; /* their completions are on this batch */
    mgr->flight_held = mgr->held_head;
    mgr->held_head = mgr->held_tail = NULL;
    refills_join_round(mgr);
    mgr->is_flight_retained_changed = mgr->is_retained_changed;
    mgr->is_retained_changed = false;
    if (!b)
        return finish_round(mgr, 0, false);
    if (store_batch_is_empty(b)) /* writes nothing; releases its reservations */
        return finish_round(mgr, store_batch_commit(b), false);
    mgr->flight_started_us = monotonic_us();
    mgr->batch_gen++;
    int rc = store_batch_commit_async(b);
    return rc == STORE_COMMIT_STARTED ? rc : finish_round(mgr, rc, false);
}

int session_commit_collect(struct session_mgr *mgr, bool wait)
{
    if (!mgr_commit_in_flight(mgr))
        return 0;
    int rc = store_commit_collect(mgr->store, wait);
    return rc == STORE_COMMIT_STARTED ? rc : finish_round(mgr, rc, true);
}

/* force: a round starts whatever the batch (session_flush); otherwise only
 * when it is due (is_commit_due). */
static int commit(struct session_mgr *mgr, bool force)
{
    /* Room freed this turn is filled from what is committed, before the
     * commit and without waiting for one: with the storage thread a
     * subscriber's window turns over at the pace of its acks, not of fsync. */
    deliver_run_refills(mgr, REFILL_ANYTIME);
    if (mgr_commit_in_flight(mgr))
        return STORE_COMMIT_STARTED; /* one at a time: its completion goes on */
    return force || is_commit_due(mgr) ? start_round(mgr) : 0;
}

int session_commit(struct session_mgr *mgr)
{
    return commit(mgr, false);
}

int session_flush(struct session_mgr *mgr)
{
    int status = 0;
    for (int round = 0; round < FLUSH_MAX_ROUNDS && has_work(mgr); round++) {
        int rc = commit(mgr, true);
        if (rc == STORE_COMMIT_STARTED)
            rc = session_commit_collect(mgr, true);
        if (rc != 0)
            status = rc;
    }
    return status;
}
