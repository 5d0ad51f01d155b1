/*
 * committer.c - the storage thread: commits batch N while the event loop
 * reads turn N+1 (issue 11).
 *
 * Why a thread: a durable commit waits for two fdatasync calls. On the loop
 * that wait stops every connection for its length, so a subscriber's window
 * could turn over at most once per commit *plus* the turn's CPU work. Here the
 * loop hands the batch over and goes on reading; the acks that batch holds
 * still leave only after its commit (the session manager keeps them), so the
 * durability contract is the same: only the waiting moved.
 *
 * Division of work, chosen so that the thread shares almost nothing:
 * - the thread only runs attempt() (begin, apply the op log, commit) and
 *   records LMDB's answer. It logs nothing, touches no counter, never grows
 *   the map;
 * - the owner thread (the loop) submits (store_batch_commit_async) and
 *   collects (store_commit_collect): the map growth on MDB_MAP_FULL (which
 *   must run with no transaction open anywhere in the process: the loop's
 *   reads are synchronous, so between two of its calls none is), the fail-stop
 *   rule, the space accounting and the completions all run there.
 * At most one batch is in flight; the next waits on the loop until the
 * previous one is collected, which is what keeps commits in order.
 *
 * The manual committer (store_committer_start_manual) has no thread: a
 * batch handed over stays in flight until store_commit_collect(wait)
 * commits it on the caller. The same rounds, deterministic: for fuzzing
 * (fuzz_session) the interleavings of a batch in flight.
 *
 * Not for: building batches (batch.c) or what a commit means (commit.c).
 */
#include "store_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

struct store_committer {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake; /* the thread: a batch to commit, or stop */
    pthread_cond_t done; /* the owner: a batch finished */
    struct store_batch *todo;
    struct store_batch *finished;
    struct store_batch *in_flight; /* submitted and not yet collected (owner's view) */
    bool is_stopping;
    bool is_manual; /* no thread: store_commit_collect(wait) commits on the owner */
    store_notify_fn notify;
    void *notify_arg;
};

static void *committer_main(void *arg)
{
    struct store *s = arg;
    struct store_committer *c = s->committer;
    pthread_mutex_lock(&c->lock);
    for (;;) {
        while (c->todo == NULL && !c->is_stopping)
            pthread_cond_wait(&c->wake, &c->lock);
        if (c->todo == NULL)
            break; /* stopping, nothing left */
        struct store_batch *b = c->todo;
        c->todo = NULL;
        pthread_mutex_unlock(&c->lock);
        b->mdb_rc = store_commit_attempt(b, b->hwm);
        pthread_mutex_lock(&c->lock);
        c->finished = b;
        pthread_cond_signal(&c->done);
        if (c->notify)
            c->notify(c->notify_arg); /* async-signal-safe by contract (ev_async_send) */
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

/* A new committer for s in *out; 1 if s already has one (nothing to do),
 * 0, or an error. */
static int committer_new(struct store *s, struct store_committer **out)
{
    if (s->read_only)
        return STORE_ERR_READ_ONLY;
    if (s->committer != NULL)
        return 1;
    *out = calloc(1, sizeof(**out));
    return *out == NULL ? -ENOMEM : 0;
}

int store_committer_start(struct store *s, store_notify_fn notify, void *arg)
{
    struct store_committer *c;
    int rc = committer_new(s, &c);
    if (rc != 0)
        return rc > 0 ? 0 : rc;
    c->notify = notify;
    c->notify_arg = arg;
    rc = pthread_mutex_init(&c->lock, NULL);
    if (rc == 0 && (rc = pthread_cond_init(&c->wake, NULL)) != 0)
        pthread_mutex_destroy(&c->lock);
    if (rc == 0 && (rc = pthread_cond_init(&c->done, NULL)) != 0) {
        pthread_cond_destroy(&c->wake);
        pthread_mutex_destroy(&c->lock);
    }
    if (rc != 0) {
        free(c);
        return -rc;
    }
    s->committer = c;
    rc = pthread_create(&c->thread, NULL, committer_main, s);
    if (rc != 0) {
        s->committer = NULL;
        pthread_cond_destroy(&c->done);
        pthread_cond_destroy(&c->wake);
        pthread_mutex_destroy(&c->lock);
        free(c);
        return -rc;
    }
    return 0;
}

int store_committer_start_manual(struct store *s)
{
    struct store_committer *c;
    int rc = committer_new(s, &c);
    if (rc != 0)
        return rc > 0 ? 0 : rc;
    c->is_manual = true;
    s->committer = c;
    return 0;
}

void store_committer_stop(struct store *s)
{
    struct store_committer *c = s->committer;
    if (c == NULL)
        return;
    while (c->in_flight != NULL)
        (void)store_commit_collect(s, true);
    if (c->is_manual) {
        free(c);
        s->committer = NULL;
        return;
    }
    pthread_mutex_lock(&c->lock);
    c->is_stopping = true;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->thread, NULL);
    pthread_cond_destroy(&c->done);
    pthread_cond_destroy(&c->wake);
    pthread_mutex_destroy(&c->lock);
    free(c);
    s->committer = NULL;
}

bool store_commit_in_flight(const struct store *s)
{
    return s->committer != NULL && s->committer->in_flight != NULL;
}

static void hand_over(struct store_committer *c, struct store_batch *b)
{
    c->in_flight = b;
    if (c->is_manual) {
        c->todo = b;
        return;
    }
    pthread_mutex_lock(&c->lock);
    c->todo = b;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
}

int store_batch_commit_async(struct store_batch *b)
{
    struct store *s = b->store;
    struct store_committer *c = s->committer;
    /* Nothing for the thread to do (no ops, a sticky error, a failed or
     * read-only store): finish here, as store_batch_commit() would. */
    if (c == NULL || b->err != 0 || b->op_count == 0 || s->read_only || s->fatal_err != 0)
        return store_batch_commit(b);
    if (c->in_flight != NULL)
        return STORE_ERR_INVALID; /* one at a time: collect first */
    b->hwm = s->next_msg_id - 1;  /* read here: the owner hands out ids meanwhile */
    hand_over(c, b);
    return STORE_COMMIT_STARTED;
}

/* Takes the finished batch, waiting for it if asked. NULL: still running. */
static struct store_batch *take_finished(struct store_committer *c, bool wait)
{
    if (c->is_manual) { /* the batch commits now, here, or stays in flight */
        struct store_batch *b = wait ? c->todo : NULL;
        if (b != NULL) {
            c->todo = NULL;
            b->mdb_rc = store_commit_attempt(b, b->hwm);
        }
        return b;
    }
    pthread_mutex_lock(&c->lock);
    while (wait && c->finished == NULL)
        pthread_cond_wait(&c->done, &c->lock);
    struct store_batch *b = c->finished;
    c->finished = NULL;
    pthread_mutex_unlock(&c->lock);
    return b;
}

int store_commit_collect(struct store *s, bool wait)
{
    struct store_committer *c = s->committer;
    if (c == NULL || c->in_flight == NULL)
        return STORE_ERR_INVALID;
    for (;;) {
        struct store_batch *b = take_finished(c, wait);
        if (b == NULL)
            return STORE_COMMIT_STARTED;
        c->in_flight = NULL;
        if (b->mdb_rc == MDB_MAP_FULL && !b->has_grown) {
            /* Here, not on the thread: nothing else has a transaction open
             * now. Replayed once on the bigger map, like the inline commit. */
            b->has_grown = true;
            if (store_grow_map(s, b->op_bytes) == 0) {
                hand_over(c, b);
                if (!wait)
                    return STORE_COMMIT_STARTED;
                continue;
            }
        }
        return store_commit_finish(b, b->mdb_rc);
    }
}
