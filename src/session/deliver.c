/*
 * deliver.c - the subscriber's side of QoS 1/2: the per-session inflight
 * window (max_inflight_messages), the queue behind it, packet ids, and the
 * PUBACK / PUBREC / PUBCOMP flows.
 *
 * A persistent session's deliveries are store queue entries (seq order):
 * sent at once while the window has room and nothing older waits, otherwise
 * appended as QUEUED and read back from the store in window-sized batches
 * after the commit (deliver_run_refills), so memory does not grow with queue
 * depth. A clean session's waiting deliveries are an in-memory list.
 * Not for: routing (publish.c) or the publisher's acks.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "session_internal.h"
#include "share.h"
#include "store.h"

/* max_inflight_messages, and for an MQTT 5 client its Receive Maximum: Sol
 * never has more unacknowledged QoS 1/2 PUBLISH towards it [MQTT-3.3.4-9]. */
static uint32_t window_size(const struct session_mgr *mgr, const struct session *s)
{
    uint32_t max = mgr->config.max_inflight_messages;
    if (max == 0 || max > UINT16_MAX)
        max = UINT16_MAX;
    if (s->client && client_receive_maximum(s->client) < max)
        max = client_receive_maximum(s->client);
    return max;
}

static uint32_t window_room(const struct session_mgr *mgr, const struct session *s)
{
    uint32_t max = window_size(mgr, s);
    return s->inflight_count >= max ? 0 : max - s->inflight_count;
}

static struct outgoing *find_outgoing(struct session *s, uint16_t packet_id)
{
    struct hashtable_node *n = hashtable_find(&s->inflight_ids, &packet_id, sizeof(packet_id));
    return n ? hashtable_entry(n, struct outgoing, by_id) : NULL;
}

/* Next packet id not in use by the window [MQTT-2.3.1-2]; the window is at
 * most 65535 entries, so one exists, and while it is small (the usual case)
 * the first id tried is free. */
static uint16_t alloc_packet_id(struct session *s)
{
    for (uint32_t tries = 0; tries < UINT16_MAX; tries++) {
        uint16_t id = s->next_packet_id;
        s->next_packet_id = id == UINT16_MAX ? 1 : id + 1;
        if (id != 0 && !find_outgoing(s, id))
            return id;
    }
    return 0;
}

/* Returns a new window entry (link it with outgoing_link()), or NULL. */
static struct outgoing *outgoing_new(uint64_t seq, uint16_t packet_id, uint8_t qos, uint8_t state)
{
    struct outgoing *o = malloc(sizeof(*o));
    if (o)
        *o = (struct outgoing){.seq = seq, .packet_id = packet_id, .qos = qos, .state = state};
    return o;
}

/* Appends o (owned by s from here) to the window. 0 or -ENOMEM (o not
 * linked, still the caller's). */
static int outgoing_link(struct session_mgr *mgr, struct session *s, struct outgoing *o)
{
    if (hashtable_insert(&s->inflight_ids, &o->by_id, &o->packet_id, sizeof(o->packet_id)) != 0)
        return -ENOMEM;
    o->prev = s->inflight_tail;
    o->next = NULL;
    if (s->inflight_tail)
        s->inflight_tail->next = o;
    else
        s->inflight = o;
    s->inflight_tail = o;
    session_set_inflight(mgr, s, s->inflight_count + 1);
    return 0;
}

/* Takes o out of the window (the caller frees it). */
static void outgoing_unlink(struct session_mgr *mgr, struct session *s, struct outgoing *o)
{
    hashtable_remove(&s->inflight_ids, &o->by_id);
    if (o->prev)
        o->prev->next = o->next;
    else
        s->inflight = o->next;
    if (o->next)
        o->next->prev = o->prev;
    else
        s->inflight_tail = o->prev;
    session_set_inflight(mgr, s, s->inflight_count - 1);
}

static int outgoing_add(struct session_mgr *mgr, struct session *s, uint64_t seq,
                        uint16_t packet_id, uint8_t qos, uint8_t state)
{
    struct outgoing *o = outgoing_new(seq, packet_id, qos, state);
    if (!o)
        return -ENOMEM;
    if (outgoing_link(mgr, s, o) != 0) {
        free(o);
        return -ENOMEM;
    }
    return 0;
}

/* Puts m's body in this turn's batch once, however many queues reference it. */
int deliver_store_body(struct session_mgr *mgr, struct msg *m)
{
    if (m->store_id && m->store_batch_gen == mgr->batch_gen)
        return 0;
    struct store_batch *b = mgr_batch(mgr);
    if (!b)
        return -ENOMEM;
    uint64_t id = store_next_message_id(mgr->store);
    struct store_message rec = {
        .topic = {m->topic, m->topic_len},
        .payload = {m->payload, m->payload_len},
        .props = {m->props, m->props_len},
        .expiry_at_s = m->expiry_at_s,
        .qos = m->qos,
        .retain = m->retain,
    };
    int rc = store_batch_put_message(b, id, &rec);
    if (rc != 0)
        return rc;
    m->store_id = id;
    m->store_batch_gen = mgr->batch_gen;
    return 0;
}

/* A drop by a configured per-session limit is counted ($SYS
 * messages/dropped) and logged: the first one, then at most once a minute
 * per session with the count since, never silently and never a line per
 * message. */
static void count_queue_drop(struct session_mgr *mgr, struct session *s)
{
    uint64_t now_s = (uint64_t)time(NULL);
    mgr->dropped_queue_full++;
    s->queue_drops++;
    if (s->queue_drop_logged_s != 0 && now_s < s->queue_drop_logged_s + LIMIT_LOG_INTERVAL_S)
        return;
    log_notice("client %s: queue full (%u messages, %zu bytes; max_queued_messages %u, "
               "max_queued_bytes %zu): dropping messages (%llu dropped since the last notice)",
               (char *)s->client_id, (unsigned)s->queued_count, s->queued_bytes,
               (unsigned)mgr->config.max_queued_messages, mgr->config.max_queued_bytes,
               (unsigned long long)s->queue_drops);
    s->queue_drop_logged_s = (uint32_t)now_s;
    s->queue_drops = 0;
}

/* Queue limits (max_queued_messages, max_queued_bytes), Mosquitto's way, for
 * clean and persistent sessions alike: a message that does not fit is
 * dropped, counted and logged (count_queue_drop). */
static bool queue_full(struct session_mgr *mgr, struct session *s, const struct msg *m)
{
    uint32_t max = mgr->config.max_queued_messages;
    size_t max_bytes = mgr->config.max_queued_bytes;
    if ((max && s->queued_count >= max) ||
        (max_bytes && s->queued_bytes + m->payload_len > max_bytes)) {
        count_queue_drop(mgr, s);
        return true;
    }
    return false;
}

/* The output limit (max_output_buffer_bytes) of an online session: over it,
 * QoS 0 is dropped (deliver_qos0) and QoS 1/2 wait in the session's queue,
 * sent again as the client reads (deliver_output_drained). The client's own
 * PUBACKs are what drain it, so its input is never stopped for this. */
static bool output_is_full(const struct session_mgr *mgr, const struct session *s)
{
    size_t max = mgr->config.max_qos0_output_bytes;
    return max != 0 && mgr->sink->output_pending(s->client->conn) > max;
}

/* Room to send one more QoS 1/2 message now: the window and the output. */
static bool can_send(const struct session_mgr *mgr, const struct session *s)
{
    return window_room(mgr, s) > 0 && !output_is_full(mgr, s);
}

/* Any send failure to a subscriber closes that subscriber only. */
static void send_or_close(struct session_mgr *mgr, struct session *s, int rc)
{
    if (rc != 0 && s->client)
        mgr->sink->close(s->client->conn, "out of memory queueing output");
}

static int deliver_qos0(struct session_mgr *mgr, struct session *s, struct msg *m,
                        const struct delivery *d)
{
    if (!session_is_online(s))
        return 0; /* QoS 0 is not queued for offline sessions (Mosquitto's default) */
    if (output_is_full(mgr, s)) {
        /* A slow reader must not make the broker buffer without bound. */
        if (mgr->dropped_qos0++ % 1000 == 0)
            log_notice("client %s: output buffer full, dropping QoS 0 messages (%llu dropped so "
                       "far)",
                       (char *)s->client_id, (unsigned long long)mgr->dropped_qos0);
        return 0;
    }
    int rc = output_send_publish(mgr, s->client, m, d, 0, false);
    send_or_close(mgr, s, output_is_dropped(rc) ? 0 : rc);
    return 0;
}

/* Sends m to the online session s and tracks it in the window (dup for a
 * resend). Returns 0, an OUTPUT_ drop (e.g. the READ gate refused it: nothing sent,
 * nothing tracked) or -ENOMEM (nothing sent). */
static int send_new(struct session_mgr *mgr, struct session *s, struct msg *m,
                    const struct delivery *d, uint64_t seq, uint16_t packet_id, bool dup)
{
    struct outgoing *o = outgoing_new(seq, packet_id, d->qos, OUTGOING_SENT);
    if (!o)
        return -ENOMEM;
    if (outgoing_link(mgr, s, o) != 0) {
        free(o);
        return -ENOMEM;
    }
    int rc = output_send_publish(mgr, s->client, m, d, packet_id, dup);
    if (output_is_dropped(rc)) {
        outgoing_unlink(mgr, s, o);
        free(o);
        return rc;
    }
    send_or_close(mgr, s, rc);
    return 0;
}

uint32_t deliver_send_room(const struct session_mgr *mgr, const struct session *s)
{
    if (!session_is_online(s) || output_is_full(mgr, s))
        return 0;
    if (s->persistent ? s->backlog : s->queue_head != NULL)
        return 0;
    return window_room(mgr, s);
}

static int deliver_transient(struct session_mgr *mgr, struct session *s, struct msg *m,
                             const struct delivery *d)
{
    if (!session_is_online(s))
        return 0; /* a clean session ends with its connection */
    if (!s->queue_head && can_send(mgr, s)) {
        int rc = send_new(mgr, s, m, d, 0, alloc_packet_id(s), false);
        return output_is_dropped(rc) ? 0 : rc;
    }
    if (queue_full(mgr, s, m))
        return 0;
    struct pending *p = malloc(sizeof(*p) + d->sub_id_count * sizeof(p->sub_ids[0]));
    if (!p)
        return -ENOMEM;
    *p = (struct pending){
        .msg = msg_ref(m), .qos = d->qos, .retain = d->retain, .sub_id_count = d->sub_id_count};
    if (d->sub_id_count)
        memcpy(p->sub_ids, d->sub_ids, d->sub_id_count * sizeof(p->sub_ids[0]));
    if (s->queue_tail)
        s->queue_tail->next = p;
    else
        s->queue_head = p;
    s->queue_tail = p;
    session_set_queued(mgr, s, s->queued_count + 1, s->queued_bytes + m->payload_len);
    return 0;
}

static int deliver_persistent(struct session_mgr *mgr, struct session *s, struct msg *m,
                              const struct delivery *d)
{
    bool send_now = session_is_online(s) && !s->backlog && can_send(mgr, s);
    if (!send_now && queue_full(mgr, s, m))
        return 0;
    int rc = deliver_store_body(mgr, m);
    if (rc != 0)
        return rc;
    uint64_t seq = ++s->last_seq;
    struct store_queue_entry entry = {
        .msg_id = m->store_id,
        .qos = d->qos,
        .state = STORE_QUEUED,
        .retain = d->retain,
        .sub_id_count = d->sub_id_count < STORE_SUB_IDS_MAX ? d->sub_id_count : STORE_SUB_IDS_MAX,
        .sub_ids = d->sub_ids,
    };
    if (send_now) {
        entry.state = STORE_SENT;
        entry.packet_id = alloc_packet_id(s);
    }
    rc = store_batch_queue_append(mgr_batch(mgr), session_store_id(s), seq, &entry);
    if (rc != 0)
        return rc;
    if (send_now) {
        s->read_seq = seq + 1;
        rc = send_new(mgr, s, m, d, seq, entry.packet_id, false);
        if (output_is_dropped(rc)) /* expired, over the Maximum Packet Size, denied */
            return store_batch_queue_delete(mgr_batch(mgr), session_store_id(s), seq);
        return rc;
    }
    s->backlog = true;
    s->queued_gen = (uint32_t)mgr->batch_gen;
    session_set_queued(mgr, s, s->queued_count + 1, s->queued_bytes + m->payload_len);
    if (session_is_online(s) && can_send(mgr, s))
        deliver_schedule_topup(mgr, s);
    return 0;
}

int deliver(struct session_mgr *mgr, struct session *s, struct msg *m, const struct delivery *d)
{
    /* What the READ gate will refuse at send time takes no queue space or
     * store record. An offline session's user is known only when it
     * reconnects: its queue is filtered by the gate as it is sent. */
    if (session_is_online(s) && !output_may_read(mgr, s->client, m))
        return 0;
    if (d->qos == 0)
        return deliver_qos0(mgr, s, m, d);
    if (s->persistent)
        return deliver_persistent(mgr, s, m, d);
    return deliver_transient(mgr, s, m, d);
}

/* ---- Window space freed ---- */

static void top_up_transient(struct session_mgr *mgr, struct session *s)
{
    while (s->queue_head && session_is_online(s) && can_send(mgr, s)) {
        struct pending *p = s->queue_head;
        s->queue_head = p->next;
        if (!s->queue_head)
            s->queue_tail = NULL;
        session_set_queued(mgr, s, s->queued_count - 1, s->queued_bytes - p->msg->payload_len);
        struct delivery d = {p->qos, p->retain, p->sub_id_count, p->sub_ids};
        int rc = send_new(mgr, s, p->msg, &d, 0, alloc_packet_id(s), false);
        if (rc != 0 && !output_is_dropped(rc)) /* denied (the ACL changed), expired: dropped */
            send_or_close(mgr, s, rc);
        msg_unref(p->msg);
        free(p);
    }
}

/* Window space: the session's own queue first, then its groups' queues
 * (share.c), read after the commit. */
static void top_up(struct session_mgr *mgr, struct session *s)
{
    if (!s->persistent)
        top_up_transient(mgr, s);
    if (s->persistent && s->backlog)
        deliver_schedule_topup(mgr, s);
    else if (s->shares && share_has_backlog(mgr, s) && deliver_send_room(mgr, s) > 0)
        deliver_schedule_topup(mgr, s);
    if (s->retained_streams) /* they pump after the queue, when it leaves room */
        deliver_schedule_topup(mgr, s);
}

bool deliver_has_room(const struct session_mgr *mgr, const struct session *s, uint8_t qos)
{
    if (qos > 0)
        return deliver_send_room(mgr, s) > 0;
    return session_is_online(s) && !output_is_full(mgr, s);
}

static int remove_outgoing(struct session_mgr *mgr, struct session *s, struct outgoing *o)
{
    outgoing_unlink(mgr, s, o);
    int rc = 0;
    if (s->persistent)
        rc = store_batch_queue_delete(mgr_batch(mgr), session_store_id(s), o->seq);
    free(o);
    top_up(mgr, s);
    return rc;
}

static int handle_pubrec(struct session_mgr *mgr, struct session_client *c, struct outgoing *o,
                         uint16_t packet_id)
{
    struct session *s = c->sess;
    if (o && o->qos == 2 && o->state == OUTGOING_SENT) {
        o->state = OUTGOING_PUBREC_RECEIVED;
        if (s->persistent && store_batch_queue_update(mgr_batch(mgr), session_store_id(s), o->seq,
                                                      STORE_PUBREC_RECEIVED, packet_id) != 0)
            return SESSION_ERR_NOMEM;
    }
    /* PUBREL also for an unknown id, so the client can finish [MQTT-4.3.3-1]. */
    return output_send_ack(mgr, c, MQTT_PUBREL, packet_id) == 0 ? SESSION_OK : SESSION_ERR_NOMEM;
}

int deliver_handle_ack(struct session_mgr *mgr, struct session_client *c, uint8_t type,
                       uint16_t packet_id)
{
    struct session *s = c->sess;
    struct outgoing *o = find_outgoing(s, packet_id);
    switch (type) {
    case MQTT_PUBACK:
        if (!o || o->qos != 1)
            return SESSION_OK; /* late or duplicate ack: nothing to do */
        return remove_outgoing(mgr, s, o) == 0 ? SESSION_OK : SESSION_ERR_NOMEM;
    case MQTT_PUBREC:
        return handle_pubrec(mgr, c, o, packet_id);
    case MQTT_PUBCOMP:
        if (!o || o->state != OUTGOING_PUBREC_RECEIVED)
            return SESSION_OK;
        return remove_outgoing(mgr, s, o) == 0 ? SESSION_OK : SESSION_ERR_NOMEM;
    default:
        return SESSION_ERR_PROTOCOL;
    }
}

void deliver_forget(struct session_mgr *mgr, struct session *s)
{
    while (s->inflight) {
        struct outgoing *o = s->inflight;
        s->inflight = o->next;
        free(o);
    }
    s->inflight_tail = NULL;
    session_set_inflight(mgr, s, 0);
    hashtable_deinit(&s->inflight_ids); /* its nodes were the entries just freed */
    while (s->queue_head) {
        struct pending *p = s->queue_head;
        s->queue_head = p->next;
        msg_unref(p->msg);
        free(p);
    }
    s->queue_tail = NULL;
    if (!s->persistent)
        session_set_queued(mgr, s, 0, 0);
}

/* ---- Top-ups from the store, after the commit ---- */

/* batch_gen counts the batches handed to the store: the open batch's
 * appends carry batch_gen, the in-flight batch's batch_gen - 1. */
enum refill_wait deliver_appends_wait(const struct session_mgr *mgr, uint32_t queued_gen)
{
    if (queued_gen == (uint32_t)mgr->batch_gen && mgr_batch_has_changes(mgr))
        return REFILL_AFTER_OPEN;
    if (queued_gen == (uint32_t)(mgr->batch_gen - 1) && mgr_commit_in_flight(mgr))
        return REFILL_AFTER_FLIGHT;
    return REFILL_ANYTIME;
}

/* Keeps mgr->refills_due / refills_waiting in step as s joins (+1) or
 * leaves (-1) the list at its current wait. */
static void count_refill(struct session_mgr *mgr, const struct session *s, int delta)
{
    if (s->refill_wait == REFILL_RUNNING)
        return; /* off the list already */
    if (s->refill_wait == REFILL_ANYTIME)
        mgr->refills_due += (uint32_t)delta;
    else
        mgr->refills_waiting += (uint32_t)delta;
}

void deliver_schedule(struct session_mgr *mgr, struct session *s, enum refill_wait wait)
{
    if (s->refill_queued) {
        if (wait > s->refill_wait && s->refill_wait != REFILL_RUNNING) {
            count_refill(mgr, s, -1);
            s->refill_wait = (uint8_t)wait;
            count_refill(mgr, s, +1);
        }
        return; /* it reads the room there is when it runs */
    }
    s->refill_queued = true;
    s->refill_wait = (uint8_t)wait;
    s->refill_next = mgr->refill;
    mgr->refill = s;
    count_refill(mgr, s, +1);
}

void deliver_unschedule(struct session_mgr *mgr, struct session *s)
{
    for (struct session **p = &mgr->refill; *p; p = &(*p)->refill_next) {
        if (*p == s) {
            *p = s->refill_next;
            count_refill(mgr, s, -1);
            break;
        }
    }
    s->refill_queued = false;
}

void deliver_schedule_refill(struct session_mgr *mgr, struct session *s)
{
    deliver_schedule(mgr, s, REFILL_AFTER_OPEN);
}

void deliver_schedule_topup(struct session_mgr *mgr, struct session *s)
{
    deliver_schedule(mgr, s, REFILL_ANYTIME);
}

struct refill_ctx {
    struct session_mgr *mgr;
    struct session *s;
    bool is_output_full; /* the read stopped early: the output filled up */
};

/* store_queue_read() callback value that stops a refill whose output filled. */
#define REFILL_STOP 1

static const char *drop_reason(int rc)
{
    switch (rc) {
    case OUTPUT_DENIED:
        return "not readable";
    case OUTPUT_TOO_LARGE:
        return "over the client's Maximum Packet Size";
    default:
        return "expired";
    }
}

/* Sends a queued entry, new or (dup) again. An entry the READ gate refuses
 * (the ACL changed, or another user took the session over) is dropped from
 * the queue, not kept to block it. */
static int send_entry(struct session_mgr *mgr, struct session *s, struct msg *m,
                      const struct store_queue_item *item, uint16_t packet_id, bool dup)
{
    /* The entry's new packet id is recorded first: a QoS 2 PUBLISH is held
     * behind the commit of that record, or a failed commit or a crash would
     * send it again under another id - a second delivery (fuzz_session). */
    if (!dup) {
        int rc = store_batch_queue_update(mgr_batch(mgr), session_store_id(s), item->seq,
                                          STORE_SENT, packet_id);
        if (rc != 0)
            return rc;
    }
    uint32_t ids[STORE_SUB_IDS_MAX];
    const struct store_queue_entry *e = &item->entry;
    for (size_t i = 0; i < e->sub_id_count && i < STORE_SUB_IDS_MAX; i++)
        ids[i] = store_queue_sub_id(e, i);
    struct delivery d = {e->qos, e->retain, (uint16_t)e->sub_id_count, ids};
    int rc = send_new(mgr, s, m, &d, item->seq, packet_id, dup);
    if (output_is_dropped(rc)) {
        log_debug("client %s: queued message on %s %s: dropped", (char *)s->client_id,
                  (char *)m->topic, drop_reason(rc));
        return store_batch_queue_delete(mgr_batch(mgr), session_store_id(s), item->seq);
    }
    return rc;
}

static int resend_entry(struct session_mgr *mgr, struct session *s, struct msg *m,
                        const struct store_queue_item *item)
{
    const struct store_queue_entry *e = &item->entry;
    struct session_client *c = s->client;
    switch (e->state) {
    case STORE_QUEUED:
        session_set_queued(mgr, s, s->queued_count > 0 ? s->queued_count - 1 : 0,
                           s->queued_bytes > m->payload_len ? s->queued_bytes - m->payload_len : 0);
        return send_entry(mgr, s, m, item, alloc_packet_id(s), false);
    case STORE_SENT: /* sent before the reconnect: again, with DUP [MQTT-4.4.0-1] */
        return send_entry(mgr, s, m, item, e->packet_id, true);
    case STORE_PUBREC_RECEIVED:
        if (outgoing_add(mgr, s, item->seq, e->packet_id, e->qos, OUTGOING_PUBREC_RECEIVED) != 0)
            return -ENOMEM;
        send_or_close(mgr, s, output_send_ack(mgr, c, MQTT_PUBREL, e->packet_id));
        return 0;
    default:
        return STORE_ERR_CORRUPT;
    }
}

static int refill_item(void *arg, const struct store_queue_item *item)
{
    struct refill_ctx *ctx = arg;
    struct session *s = ctx->s;
    s->read_seq = item->seq + 1;
    if (!item->message) {
        log_error("client %s: queue entry %llu has no message body; skipped", (char *)s->client_id,
                  (unsigned long long)item->seq);
        return 0;
    }
    const struct store_message *sm = item->message;
    struct msg *m = msg_new_v5((struct mqtt_bytes){sm->topic.data, sm->topic.len},
                               (struct mqtt_bytes){sm->payload.data, sm->payload.len},
                               (struct mqtt_bytes){sm->props.data, sm->props.len}, sm->expiry_at_s,
                               sm->qos, sm->retain);
    if (!m)
        return -ENOMEM;
    int rc = resend_entry(ctx->mgr, s, m, item);
    msg_unref(m);
    if (rc == 0 && session_is_online(s) && output_is_full(ctx->mgr, s)) {
        ctx->is_output_full = true;
        return REFILL_STOP;
    }
    return rc;
}

static void refill_own(struct session_mgr *mgr, struct session *s)
{
    uint32_t room = window_room(mgr, s);
    if (!session_is_online(s) || !s->backlog || room == 0 || output_is_full(mgr, s))
        return; /* a full output is topped up again by deliver_output_drained() */
    struct refill_ctx ctx = {mgr, s, false};
    int n = store_queue_read(mgr->store, session_store_id(s), s->read_seq, room, refill_item, &ctx);
    if (ctx.is_output_full)
        return; /* backlog stays: the rest waits for the output to drain */
    if (n < 0) {
        log_error("client %s: reading its queue: %s", (char *)s->client_id, store_strerror(n));
        mgr->sink->close(s->client->conn, "store read failed");
        return;
    }
    enum refill_wait appends = deliver_appends_wait(mgr, s->queued_gen);
    if ((uint32_t)n < room && appends != REFILL_ANYTIME)
        deliver_schedule(mgr, s, appends); /* its newest entries are not visible yet */
    else if ((uint32_t)n < room)
        s->backlog = false;
    else if (can_send(mgr, s))
        /* Entries were dropped (not readable, or no body) rather than sent:
         * read on, or the rest would wait for the next message to arrive. */
        deliver_schedule_topup(mgr, s);
}

/* The session's own queue first; once it is empty, its groups' queues. */
static void refill(struct session_mgr *mgr, struct session *s)
{
    if (s->backlog)
        refill_own(mgr, s);
    if (!s->backlog && s->shares && session_is_online(s))
        share_pull(mgr, s);
}

void deliver_output_drained(struct session_mgr *mgr, struct session *s)
{
    if (session_is_online(s))
        top_up(mgr, s);
}

void deliver_run_refills(struct session_mgr *mgr, enum refill_wait max)
{
    /* Those waiting for a later commit stay; the others run, in a list of
     * their own (what they schedule goes to mgr->refill). */
    struct session *due = NULL, **keep = &mgr->refill;
    for (struct session *s = mgr->refill, *next; s; s = next) {
        next = s->refill_next;
        if (s->refill_wait > max) {
            *keep = s;
            keep = &s->refill_next;
        } else {
            count_refill(mgr, s, -1);
            s->refill_wait = REFILL_RUNNING;
            s->refill_next = due;
            due = s;
        }
    }
    *keep = NULL;
    while (due) {
        struct session *s = due;
        due = s->refill_next;
        s->refill_queued = false;
        s->refill_next = NULL;
        refill(mgr, s);
        retained_stream_pump(mgr, s);
    }
}
