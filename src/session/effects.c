/*
 * effects.c - memory follows the store.
 *
 * The rule: in-memory state that mirrors a durable record (a persistent
 * session's existence, its subscriptions and incoming QoS 2 ids) may run
 * ahead of the store only while the batch holding the record is open
 * (retained messages are not held in memory at all: see publish.c). Every
 * such change registers an effect on that batch
 * (store_batch_on_commit()). When the commit succeeds the effect confirms the
 * change (a *pending* QoS 2 id or session record becomes *stored*); when it
 * fails the effect undoes it, so that memory says again what the store says
 * and a restart changes nothing a client can see. The acks that promised the
 * change were held behind the same batch and never leave (output.c).
 *
 * Effects find their session again by client id and the session's serial
 * number, never by a pointer: the session may be gone, or replaced by another
 * one under the same id, by the time the commit completes.
 *
 * Not for: deciding anything (the handlers do), or the outgoing window, whose
 * store operations are idempotent (a delete or update of a missing queue
 * entry is a no-op) and which is read back from the store on reconnect.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "session_internal.h"
#include "store.h"

enum effect_kind {
    EFFECT_QOS2_ADD,
    EFFECT_QOS2_RELEASE,
    EFFECT_SUBSCRIPTION,
    EFFECT_SESSION_STORED,
    EFFECT_SESSION_DISCARDED,
};

struct effect {
    struct session_mgr *mgr;
    enum effect_kind kind;
    uint64_t serial;    /* the session's (session kinds) */
    uint16_t packet_id; /* QoS 2 kinds */
    int old_qos;        /* subscriptions: the QoS before, or -1 for none */
    size_t key_len;     /* client id */
    size_t filter_len;  /* subscriptions: the filter follows the client id */
    uint8_t key[];
};

static struct effect *effect_new(struct session_mgr *mgr, enum effect_kind kind,
                                 struct mqtt_bytes key, struct mqtt_bytes filter)
{
    struct effect *e = calloc(1, sizeof(*e) + key.len + filter.len);
    if (!e)
        return NULL;
    e->mgr = mgr;
    e->kind = kind;
    e->old_qos = -1;
    e->key_len = key.len;
    e->filter_len = filter.len;
    memcpy(e->key, key.data, key.len);
    if (filter.len)
        memcpy(e->key + key.len, filter.data, filter.len);
    return e;
}

static struct effect *session_effect_new(struct session_mgr *mgr, enum effect_kind kind,
                                         const struct session *s, struct mqtt_bytes filter)
{
    struct effect *e = effect_new(mgr, kind, (struct mqtt_bytes){s->client_id, s->id_len}, filter);
    if (e)
        e->serial = s->serial;
    return e;
}

static void effect_free(struct effect *e)
{
    free(e);
}

/* The session the effect was made for, if it still exists. */
static struct session *effect_session(const struct effect *e)
{
    struct session *s = table_get(&e->mgr->sessions, e->key, e->key_len);
    return s && s->serial == e->serial ? s : NULL;
}

static struct mqtt_bytes effect_filter(const struct effect *e)
{
    return (struct mqtt_bytes){e->key + e->key_len, e->filter_len};
}

/* The effect's QoS 2 id if its session still has it in state, else NULL. */
static struct qos2_in *qos2_in_state(const struct effect *e, struct session *s,
                                     enum qos2_state state)
{
    struct qos2_in *q = s ? session_qos2_find(s, e->packet_id) : NULL;
    return q && q->state == state ? q : NULL;
}

/* ---- confirm (the commit succeeded) ---- */

static void confirm(struct effect *e)
{
    struct session *s = effect_session(e);
    struct qos2_in *q = NULL;
    switch (e->kind) {
    case EFFECT_QOS2_ADD:
        if ((q = qos2_in_state(e, s, QOS2_ADDING)))
            q->state = QOS2_STORED;
        break;
    case EFFECT_QOS2_RELEASE:
        if (qos2_in_state(e, s, QOS2_RELEASING))
            session_qos2_remove(s, e->packet_id);
        break;
    case EFFECT_SESSION_STORED:
        if (s && s->record == SESSION_RECORD_PENDING)
            s->record = SESSION_RECORD_STORED;
        break;
    case EFFECT_SUBSCRIPTION:
    case EFFECT_SESSION_DISCARDED:
        break; /* memory already says what the store now says */
    }
}

/* ---- undo (the commit failed: nothing of the batch was written) ---- */

static void undo_subscription(struct effect *e, struct session *s)
{
    if (!s)
        return;
    struct mqtt_bytes filter = effect_filter(e);
    if (e->old_qos < 0)
        session_remove_subscription(e->mgr, s, filter);
    else if (session_add_subscription(e->mgr, s, filter, (uint8_t)e->old_qos) != 0)
        log_error("client %s: out of memory restoring a subscription", (char *)s->client_id);
}

/* The session's record was never written: a session without a client goes;
 * one with a client goes when the client does (its CONNACK never left). */
static void undo_session_stored(struct effect *e, struct session *s)
{
    if (!s || s->record != SESSION_RECORD_PENDING)
        return;
    s->record = SESSION_RECORD_ABSENT;
    if (!s->client)
        session_discard(e->mgr, s);
}

/* The store still has the session: read it back. A session that took its
 * id meanwhile (a clean session whose CONNACK waited for this batch, and
 * whose client is being closed) leaves the table to it. */
static void undo_session_discarded(struct session_mgr *mgr, const uint8_t *id, size_t id_len)
{
    struct session *occupant = table_get(&mgr->sessions, id, id_len);
    if (occupant) {
        /* Its own record (if any) was in the failed batch too: it has none,
         * and it goes when its client does (found by fuzz_session: it was
         * kept, out of the table, forever). */
        table_remove(&mgr->sessions, id, id_len);
        occupant->record = SESSION_RECORD_ABSENT;
        if (!occupant->client)
            session_discard(mgr, occupant);
    }
    int rc = session_reload(mgr, id, id_len);
    if (rc < 0)
        log_error("client %.*s: could not read the session back from the store: %s", (int)id_len,
                  (const char *)id, store_strerror(rc));
}

static void undo(struct effect *e)
{
    struct session *s = effect_session(e);
    struct qos2_in *q = NULL;
    switch (e->kind) {
    case EFFECT_QOS2_ADD:
        if (qos2_in_state(e, s, QOS2_ADDING))
            session_qos2_remove(s, e->packet_id);
        break;
    case EFFECT_QOS2_RELEASE:
        if ((q = qos2_in_state(e, s, QOS2_RELEASING)))
            q->state = QOS2_STORED;
        break;
    case EFFECT_SUBSCRIPTION:
        undo_subscription(e, s);
        break;
    case EFFECT_SESSION_STORED:
        undo_session_stored(e, s);
        break;
    case EFFECT_SESSION_DISCARDED:
        undo_session_discarded(e->mgr, e->key, e->key_len);
        break;
    }
}

static void on_commit(void *arg, int status)
{
    struct effect *e = arg;
    if (status == 0)
        confirm(e);
    else if (!e->mgr->is_closing)
        undo(e);
    effect_free(e);
}

/* Attaches e to the turn's batch. If that fails, the batch is failed too
 * (its commit writes nothing): undo now, as the completion would have. */
static int attach(struct session_mgr *mgr, struct effect *e)
{
    struct store_batch *b = mgr_batch(mgr);
    if (b && store_batch_on_commit(b, on_commit, e) == 0)
        return 0;
    if (b)
        store_batch_fail(b, -ENOMEM);
    undo(e);
    effect_free(e);
    return -ENOMEM;
}

/* No memory to record the effect: fail the batch, so nothing of it is
 * written and the caller's undo (done here, with what it passed) is right. */
static int no_effect(struct session_mgr *mgr)
{
    struct store_batch *b = mgr_batch(mgr);
    if (b)
        store_batch_fail(b, -ENOMEM);
    return -ENOMEM;
}

/* ---- registration: after the store op is in the batch and memory changed ---- */

int effect_qos2_added(struct session_mgr *mgr, struct session *s, uint16_t packet_id)
{
    struct effect *e = session_effect_new(mgr, EFFECT_QOS2_ADD, s, (struct mqtt_bytes){0});
    if (!e) {
        session_qos2_remove(s, packet_id);
        return no_effect(mgr);
    }
    e->packet_id = packet_id;
    return attach(mgr, e);
}

int effect_qos2_released(struct session_mgr *mgr, struct session *s, uint16_t packet_id)
{
    struct effect *e = session_effect_new(mgr, EFFECT_QOS2_RELEASE, s, (struct mqtt_bytes){0});
    if (!e) {
        struct qos2_in *q = session_qos2_find(s, packet_id);
        if (q)
            q->state = QOS2_STORED;
        return no_effect(mgr);
    }
    e->packet_id = packet_id;
    return attach(mgr, e);
}

int effect_subscription_changed(struct session_mgr *mgr, struct session *s,
                                struct mqtt_bytes filter, int old_qos)
{
    struct effect *e = session_effect_new(mgr, EFFECT_SUBSCRIPTION, s, filter);
    if (!e) {
        if (old_qos < 0)
            session_remove_subscription(mgr, s, filter);
        else if (session_add_subscription(mgr, s, filter, (uint8_t)old_qos) != 0)
            log_error("client %s: out of memory restoring a subscription", (char *)s->client_id);
        return no_effect(mgr);
    }
    e->old_qos = old_qos;
    return attach(mgr, e);
}

int effect_session_stored(struct session_mgr *mgr, struct session *s)
{
    struct effect *e = session_effect_new(mgr, EFFECT_SESSION_STORED, s, (struct mqtt_bytes){0});
    if (!e) {
        s->record = SESSION_RECORD_ABSENT; /* its client's CONNACK fails with the batch */
        return no_effect(mgr);
    }
    return attach(mgr, e);
}

int effect_session_discarded(struct session_mgr *mgr, struct mqtt_bytes client_id)
{
    struct effect *e = effect_new(mgr, EFFECT_SESSION_DISCARDED, client_id, (struct mqtt_bytes){0});
    if (!e) {
        int rc = no_effect(mgr);
        undo_session_discarded(mgr, client_id.data, client_id.len);
        return rc;
    }
    return attach(mgr, e);
}
