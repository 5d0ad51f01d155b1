/*
 * proto.c - a bridge's MQTT client: CONNECT (with the bridge flag and the
 * state will), SUBSCRIBE to the `in` topics, the outgoing window fed from
 * the bridge's queue in the store, and the messages the remote sends in.
 *
 * Out: entries are read from the store in seq order while the window
 * (max_inflight) and the output (max_output_bytes) have room, each sent
 * under the packet id its seq gives it, so a resend after a reconnect or a
 * restart carries the same id. An entry is deleted only when the remote
 * acknowledged it: PUBACK at QoS 1; at QoS 2 its PUBREC is recorded first
 * (the PUBREL leaves after that commit, so a restart sends PUBREL rather
 * than the message again), then PUBCOMP deletes it.
 *
 * In: a PUBLISH is published locally (session_bridge_publish), and its
 * PUBACK / PUBREC leaves only after Sol's commit; a QoS 2 id is recorded
 * with it, so a resent PUBLISH is acknowledged without a second delivery,
 * until PUBREL deletes the record (PUBCOMP after that commit).
 *
 * Every packet from the remote is checked: anything a server may not send,
 * or at the wrong time, ends the connection (bridge_fail), never the broker.
 * Not for: sockets (net.c) or reconnecting (bridge.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge_internal.h"
#include "log.h"
#include "session.h"
#include "store.h"

/* A completion on the session manager's batch: an ack to the remote that
 * waits for Sol's commit. Holds a reference on its bridge. */
enum waiter_kind {
    WAIT_PUBACK,  /* incoming QoS 1 committed: PUBACK */
    WAIT_PUBREC,  /* incoming QoS 2 and its id committed: PUBREC */
    WAIT_PUBCOMP, /* the id's delete committed: PUBCOMP */
    WAIT_PUBREL,  /* our entry's PUBREC state committed: PUBREL */
    WAIT_PUMP,    /* acks of the last connection committed: send the queue again */
};

struct waiter {
    struct bridge *b;
    uint64_t conn_gen;
    uint64_t seq; /* WAIT_PUBREL */
    uint16_t packet_id;
    uint8_t kind;
    bool is_id_change; /* WAIT_PUBREC / WAIT_PUBCOMP that confirm or undo an in_id state */
};

static void on_commit(void *arg, int status);

/* Registers a completion. Returns 0, or -ENOMEM (nothing registered). */
static int wait_commit(struct bridge *b, enum waiter_kind kind, uint16_t packet_id, uint64_t seq,
                       bool is_id_change)
{
    struct waiter *w = malloc(sizeof(*w));
    if (!w)
        return -ENOMEM;
    *w = (struct waiter){b, b->conn_gen, seq, packet_id, (uint8_t)kind, is_id_change};
    if (session_after_commit(b->set->mgr, on_commit, w) != 0) {
        free(w);
        return -ENOMEM;
    }
    b->refs++;
    return 0;
}

/* ---- encoding ---- */

static int send_packet(struct bridge *b, const struct mqtt_packet *pkt)
{
    size_t size = mqtt_encoded_size(pkt);
    if (size == 0)
        return -EINVAL;
    uint8_t *p = net_output_space(b, size);
    size_t written = 0;
    if (!p)
        return -ENOMEM;
    if (mqtt_encode(pkt, p, size, &written) != MQTT_OK)
        return -EINVAL;
    net_commit_output(b, written);
    return 0;
}

static int send_ack(struct bridge *b, uint8_t type, uint16_t packet_id)
{
    struct mqtt_packet pkt = {.type = type, .u.ack = {.packet_id = packet_id}};
    return send_packet(b, &pkt);
}

static struct mqtt_bytes cstr(const char *s)
{
    return (struct mqtt_bytes){(const uint8_t *)s, s ? strlen(s) : 0};
}

static bool notifies_remote(const struct bridge *b)
{
    return b->cfg->notifications && !b->cfg->notifications_local_only;
}

int proto_send_connect(struct bridge *b)
{
    const struct config_bridge *c = b->cfg;
    struct mqtt_packet pkt = {.type = MQTT_CONNECT};
    struct mqtt_connect *cn = &pkt.u.connect;
    cn->protocol_name = cstr(c->protocol_level == 3 ? "MQIsdp" : "MQTT");
    /* Mosquitto's bridge flag: a Mosquitto remote then does not send our
     * own messages back, and forwards retained flags as published. */
    cn->protocol_level = (uint8_t)(c->protocol_level | (b->use_private ? 0x80 : 0));
    cn->clean_session = c->cleansession;
    cn->keepalive_s = c->keepalive_s;
    cn->client_id = cstr(b->client_id);
    if (notifies_remote(b)) {
        cn->has_will = true;
        cn->will_topic = cstr(b->state_topic);
        cn->will_payload = cstr("0");
        cn->will_qos = 1;
        cn->will_retain = true;
    }
    cn->has_username = c->remote_username != NULL;
    cn->username = cstr(c->remote_username);
    cn->has_password = c->remote_password != NULL && c->remote_username != NULL;
    cn->password = cstr(c->remote_password);
    return send_packet(b, &pkt);
}

static int send_subscribe(struct bridge *b)
{
    struct mqtt_topic_entry *entries =
        calloc(b->topic_count ? b->topic_count : 1, sizeof(*entries));
    if (!entries)
        return -ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < b->topic_count; i++) {
        if (b->topics[i].direction & CONFIG_BRIDGE_IN)
            entries[n++] =
                (struct mqtt_topic_entry){cstr(b->topics[i].remote_filter), b->topics[i].qos};
    }
    int rc = 0;
    if (n > 0) {
        struct mqtt_packet pkt = {.type = MQTT_SUBSCRIBE};
        pkt.u.subscribe = (struct mqtt_subscribe){
            .packet_id = BRIDGE_PKID_SUBSCRIBE, .count = n, .entries = entries};
        rc = send_packet(b, &pkt);
    }
    free(entries);
    return rc;
}

/* The remote's copy of the state: "1", retained, QoS 1 (Mosquitto's). */
static int send_remote_state(struct bridge *b)
{
    struct mqtt_packet pkt = {.type = MQTT_PUBLISH};
    pkt.u.publish = (struct mqtt_publish){.qos = 1,
                                          .retain = true,
                                          .topic = cstr(b->state_topic),
                                          .packet_id = BRIDGE_PKID_NOTIFICATION,
                                          .payload = cstr("1")};
    return send_packet(b, &pkt);
}

/* ---- the outgoing window ---- */

static uint16_t packet_id_of(uint64_t seq)
{
    return (uint16_t)(BRIDGE_PKID_FIRST + seq % BRIDGE_PKID_SPAN);
}

static struct out_entry *find_out(struct bridge *b, uint16_t packet_id)
{
    struct hashtable_node *n = hashtable_find(&b->out_ids, &packet_id, sizeof(packet_id));
    return n ? hashtable_entry(n, struct out_entry, by_id) : NULL;
}

static int out_add(struct bridge *b, uint64_t seq, uint16_t packet_id, uint8_t qos,
                   enum out_state state, size_t payload_len)
{
    struct out_entry *o = malloc(sizeof(*o));
    if (!o)
        return -ENOMEM;
    *o = (struct out_entry){.seq = seq,
                            .payload_len = payload_len,
                            .packet_id = packet_id,
                            .qos = qos,
                            .state = (uint8_t)state};
    if (hashtable_insert(&b->out_ids, &o->by_id, &o->packet_id, sizeof(o->packet_id)) != 0) {
        free(o);
        return -ENOMEM;
    }
    o->prev = b->out_tail;
    if (b->out_tail)
        b->out_tail->next = o;
    else
        b->out_head = o;
    b->out_tail = o;
    b->out_count++;
    return 0;
}

static void out_remove(struct bridge *b, struct out_entry *o)
{
    hashtable_remove(&b->out_ids, &o->by_id);
    if (o->prev)
        o->prev->next = o->next;
    else
        b->out_head = o->next;
    if (o->next)
        o->next->prev = o->prev;
    else
        b->out_tail = o->prev;
    b->out_count--;
    free(o);
}

void proto_reset_window(struct bridge *b)
{
    while (b->out_head)
        out_remove(b, b->out_head);
    b->read_seq = 0;
    b->is_caught_up = false;
    b->is_pump_due = false;
    b->ping_outstanding = false;
}

/* The remote acknowledged o for good: the entry leaves the store. */
static int out_done(struct bridge *b, struct out_entry *o)
{
    uint64_t seq = o->seq;
    size_t len = o->payload_len;
    out_remove(b, o);
    return b->sb ? session_bridge_acked(b->sb, seq, len) : 0;
}

struct pump {
    struct bridge *b;
    uint32_t room;
    bool is_stopped; /* the window, the output or a packet id stopped the walk */
    int err;
};

static bool output_full(const struct bridge *b)
{
    return net_output_pending(b) >= b->set->max_output_bytes;
}

/* A stored message as a PUBLISH to the remote: its topic remapped, its
 * entry's QoS and retain flag, DUP when this process sent it before. */
static int send_entry(struct bridge *b, const struct store_queue_item *it)
{
    const struct store_message *m = it->message;
    struct mqtt_bytes topic = topics_to_remote(b, (struct mqtt_bytes){m->topic.data, m->topic.len});
    if (!topic.data) {
        log_warning("bridge %s: message on %.*s dropped: its remote topic would be longer than "
                    "65535 bytes",
                    b->cfg->name, (int)m->topic.len, (const char *)m->topic.data);
        return b->sb ? session_bridge_acked(b->sb, it->seq, m->payload.len) : 0;
    }
    bool is_rel =
        it->entry.qos == 2 && it->entry.state == STORE_PUBREC_RECEIVED && b->session_present;
    uint16_t id = packet_id_of(it->seq);
    int rc =
        out_add(b, it->seq, id, it->entry.qos, is_rel ? OUT_PUBREL_SENT : OUT_SENT, m->payload.len);
    if (rc != 0)
        return rc;
    if (is_rel) /* the remote has the message: finish, never send it again [MQTT-4.3.3-1] */
        return send_ack(b, MQTT_PUBREL, id);
    struct mqtt_packet pkt = {.type = MQTT_PUBLISH};
    pkt.u.publish = (struct mqtt_publish){
        .dup = it->seq <= b->sent_high || it->entry.state != STORE_QUEUED,
        .qos = it->entry.qos,
        .retain = it->entry.retain,
        .topic = topic,
        .packet_id = id,
        .payload = {m->payload.data, m->payload.len},
    };
    if (it->seq > b->sent_high)
        b->sent_high = it->seq;
    return send_packet(b, &pkt);
}

/* store_bridge_queue_read() callback: runs inside the store's read, so it
 * only records into the batch and writes to the socket. */
static int pump_entry(void *arg, const struct store_queue_item *it)
{
    struct pump *p = arg;
    struct bridge *b = p->b;
    /* Ids repeat every BRIDGE_PKID_SPAN seqs: never two in flight at once. */
    bool id_in_use = b->out_head && it->seq - b->out_head->seq >= BRIDGE_PKID_SPAN;
    if (p->room == 0 || output_full(b) || id_in_use) {
        p->is_stopped = true;
        return 1;
    }
    b->read_seq = it->seq + 1;
    if (!it->message) {
        log_error("bridge %s: queue entry %llu has no message body; dropped", b->cfg->name,
                  (unsigned long long)it->seq);
        p->err = b->sb ? session_bridge_acked(b->sb, it->seq, 0) : 0;
        return p->err != 0;
    }
    p->err = send_entry(b, it);
    if (p->err != 0)
        return 1;
    p->room--;
    return 0;
}

void proto_pump(struct bridge *b)
{
    uint64_t gen = b->conn_gen;
    while (b->state == BRIDGE_ONLINE && gen == b->conn_gen && b->sb && !b->is_pump_due &&
           !b->is_caught_up && !output_full(b) && b->out_count < b->set->window) {
        struct pump p = {.b = b, .room = b->set->window - b->out_count};
        uint32_t want = p.room;
        int n = store_bridge_queue_read(
            b->set->store,
            (struct store_bytes){(const uint8_t *)b->cfg->name, strlen(b->cfg->name)}, b->read_seq,
            want, pump_entry, &p);
        if (p.err != 0 || (n < 0 && !p.is_stopped)) {
            bridge_fail(b, "sending the queue: %s",
                        p.err != 0 ? store_strerror(p.err) : store_strerror(n));
            return;
        }
        if (p.is_stopped)
            return; /* the window, the output or an id in use: an ack or a drain resumes it */
        if ((uint32_t)n < want)
            b->is_caught_up = true; /* the rest comes with ops->queued */
    }
}

void proto_on_queued(void *arg)
{
    struct bridge *b = arg;
    b->is_caught_up = false;
    proto_pump(b);
}

void proto_forward_qos0(void *arg, struct mqtt_bytes topic, struct mqtt_bytes payload, bool retain)
{
    struct bridge *b = arg;
    if (b->state != BRIDGE_ONLINE || output_full(b)) {
        b->qos0_dropped++;
        return; /* QoS 0 is never queued for a bridge that cannot take it now */
    }
    struct mqtt_bytes remote = topics_to_remote(b, topic);
    struct mqtt_packet pkt = {.type = MQTT_PUBLISH};
    pkt.u.publish = (struct mqtt_publish){.retain = retain, .topic = remote, .payload = payload};
    if (!remote.data || send_packet(b, &pkt) != 0)
        b->qos0_dropped++;
}

/* ---- acks from the remote for our messages ---- */

static int handle_puback(struct bridge *b, uint16_t packet_id)
{
    struct out_entry *o = find_out(b, packet_id);
    if (!o || o->qos != 1)
        return 0; /* the state notification's, or a late duplicate */
    if (out_done(b, o) != 0) {
        bridge_fail(b, "out of memory recording an acknowledgement");
        return -1;
    }
    return 0;
}

static int handle_pubrec(struct bridge *b, uint16_t packet_id)
{
    struct out_entry *o = find_out(b, packet_id);
    if (o && o->qos == 2 && o->state == OUT_SENT) {
        o->state = OUT_PUBREC_SAVING;
        if (!b->sb || session_bridge_pubrec(b->sb, o->seq, packet_id) != 0 ||
            wait_commit(b, WAIT_PUBREL, packet_id, o->seq, false) != 0) {
            bridge_fail(b, "out of memory recording a PUBREC");
            return -1;
        }
        return 0;
    }
    if (o && o->state == OUT_PUBREC_SAVING)
        return 0; /* the PUBREL leaves with the commit */
    /* A PUBREL also for an unknown id, so the remote can finish [MQTT-4.3.3-1]. */
    return send_ack(b, MQTT_PUBREL, packet_id) == 0 ? 0 : -1;
}

static int handle_pubcomp(struct bridge *b, uint16_t packet_id)
{
    struct out_entry *o = find_out(b, packet_id);
    if (!o || o->state != OUT_PUBREL_SENT)
        return 0;
    if (out_done(b, o) != 0) {
        bridge_fail(b, "out of memory recording an acknowledgement");
        return -1;
    }
    return 0;
}

/* ---- messages from the remote ---- */

static struct in_id *find_in(struct bridge *b, uint16_t packet_id)
{
    struct hashtable_node *n = hashtable_find(&b->in_ids, &packet_id, sizeof(packet_id));
    return n ? hashtable_entry(n, struct in_id, by_id) : NULL;
}

static struct in_id *in_add(struct bridge *b, uint16_t packet_id, enum in_state state)
{
    struct in_id *q = malloc(sizeof(*q));
    if (!q)
        return NULL;
    *q = (struct in_id){.packet_id = packet_id, .state = (uint8_t)state};
    if (hashtable_insert(&b->in_ids, &q->by_id, &q->packet_id, sizeof(q->packet_id)) != 0) {
        free(q);
        return NULL;
    }
    return q;
}

static void in_remove(struct bridge *b, struct in_id *q)
{
    hashtable_remove(&b->in_ids, &q->by_id);
    free(q);
}

void proto_free_in_ids(struct bridge *b)
{
    struct hashtable_node *n = hashtable_take_all(&b->in_ids);
    while (n) {
        struct hashtable_node *next = n->next;
        free(hashtable_entry(n, struct in_id, by_id));
        n = next;
    }
    hashtable_deinit(&b->in_ids);
}

static int load_in_id(void *arg, struct store_bytes bridge, uint16_t packet_id, uint64_t at_s)
{
    (void)bridge;
    (void)at_s;
    return in_add(arg, packet_id, IN_STORED) ? 0 : -ENOMEM;
}

int proto_load_in_ids(struct bridge *b)
{
    struct store_bytes name = {(const uint8_t *)b->cfg->name, strlen(b->cfg->name)};
    return store_bridge_qos2_foreach(b->set->store, &name, load_in_id, b);
}

/* A QoS 2 message the remote sent again before its PUBREL: acknowledged,
 * not delivered again [MQTT-4.3.3-2]. */
static int resent_qos2(struct bridge *b, struct in_id *q, uint16_t packet_id)
{
    if (q->state == IN_STORED)
        return send_ack(b, MQTT_PUBREC, packet_id) == 0 ? 0 : -1;
    if (wait_commit(b, WAIT_PUBREC, packet_id, 0, false) == 0)
        return 0;
    bridge_fail(b, "out of memory");
    return -1;
}

/* The message could not be recorded: no ack; the connection ends, and the
 * remote sends it again after the reconnect (cleansession false). */
static int refuse_incoming(struct bridge *b, int rc)
{
    bridge_fail(b,
                "a message from the remote was not accepted (%s); reconnecting later so it is "
                "sent again",
                rc == STORE_ERR_FULL ? "store or bridge queue full" : store_strerror(rc));
    return -1;
}

static int handle_publish(struct bridge *b, const struct mqtt_publish *in)
{
    struct mqtt_publish p = *in;
    p.topic = topics_to_local(b, in->topic);
    if (!p.topic.data) {
        log_warning("bridge %s: message on %.*s dropped: its local topic would be longer than "
                    "65535 bytes",
                    b->cfg->name, (int)in->topic.len, (const char *)in->topic.data);
        return in->qos == 0 ? 0
                            : send_ack(b, in->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, in->packet_id);
    }
    if (!b->sb)
        return 0;
    if (p.qos == 0) {
        int rc = session_bridge_publish(b->sb, &p, NULL, NULL);
        if (rc == -ENOMEM)
            bridge_fail(b, "out of memory");
        return rc == -ENOMEM ? -1 : 0; /* QoS 0 that does not fit is dropped */
    }
    struct in_id *q = p.qos == 2 ? find_in(b, p.packet_id) : NULL;
    if (q)
        return resent_qos2(b, q, p.packet_id);
    if (p.qos == 2 && !(q = in_add(b, p.packet_id, IN_ADDING)))
        return refuse_incoming(b, -ENOMEM);
    struct waiter *w = malloc(sizeof(*w));
    if (!w) {
        if (q)
            in_remove(b, q);
        return refuse_incoming(b, -ENOMEM);
    }
    *w = (struct waiter){
        b,         b->conn_gen, 0, p.packet_id, (uint8_t)(p.qos == 1 ? WAIT_PUBACK : WAIT_PUBREC),
        p.qos == 2};
    int rc = session_bridge_publish(b->sb, &p, on_commit, w);
    if (rc != 0) {
        free(w);
        if (q)
            in_remove(b, q);
        return refuse_incoming(b, rc);
    }
    b->refs++;
    return 0;
}

static int handle_pubrel(struct bridge *b, uint16_t packet_id)
{
    struct in_id *q = find_in(b, packet_id);
    if (!q) /* PUBCOMP also for an unknown id: our PUBCOMP may have been lost */
        return send_ack(b, MQTT_PUBCOMP, packet_id) == 0 ? 0 : -1;
    bool is_change = q->state != IN_RELEASING;
    if (is_change && (!b->sb || session_bridge_qos2_released(b->sb, packet_id) != 0)) {
        bridge_fail(b, "out of memory recording a PUBREL");
        return -1;
    }
    if (is_change)
        q->state = IN_RELEASING;
    if (wait_commit(b, WAIT_PUBCOMP, packet_id, 0, is_change) != 0) {
        bridge_fail(b, "out of memory");
        return -1;
    }
    return 0;
}

/* ---- completions ---- */

/* Memory follows the store: an id's new state is confirmed, or undone when
 * its commit failed. */
static void settle_in_id(struct bridge *b, const struct waiter *w, int status)
{
    struct in_id *q = find_in(b, w->packet_id);
    if (!q)
        return;
    if (w->kind == WAIT_PUBREC && q->state == IN_ADDING) {
        if (status == 0)
            q->state = IN_STORED;
        else
            in_remove(b, q);
    } else if (w->kind == WAIT_PUBCOMP && q->state == IN_RELEASING) {
        if (status == 0)
            in_remove(b, q);
        else
            q->state = IN_STORED;
    }
}

static void send_pubrel_after(struct bridge *b, const struct waiter *w)
{
    struct out_entry *o = find_out(b, w->packet_id);
    if (!o || o->seq != w->seq || o->state != OUT_PUBREC_SAVING)
        return;
    o->state = OUT_PUBREL_SENT;
    if (send_ack(b, MQTT_PUBREL, w->packet_id) != 0)
        bridge_fail(b, "out of memory");
}

static void act_after_commit(struct bridge *b, const struct waiter *w)
{
    int rc = 0;
    switch (w->kind) {
    case WAIT_PUBACK:
        rc = send_ack(b, MQTT_PUBACK, w->packet_id);
        break;
    case WAIT_PUBREC:
        rc = send_ack(b, MQTT_PUBREC, w->packet_id);
        break;
    case WAIT_PUBCOMP:
        rc = send_ack(b, MQTT_PUBCOMP, w->packet_id);
        break;
    case WAIT_PUBREL:
        send_pubrel_after(b, w);
        break;
    case WAIT_PUMP:
        b->is_pump_due = false;
        proto_pump(b);
        break;
    }
    if (rc != 0) /* the remote sends it again after the reconnect */
        bridge_fail(b, "out of memory acknowledging a message");
}

static void on_commit(void *arg, int status)
{
    struct waiter *w = arg;
    struct bridge *b = w->b;
    if (!b->is_dead && w->is_id_change)
        settle_in_id(b, w, status);
    bool is_current = !b->is_dead && w->conn_gen == b->conn_gen && b->state == BRIDGE_ONLINE;
    if (is_current && status == 0)
        act_after_commit(b, w);
    else if (is_current)
        bridge_fail(b,
                    "a commit failed (%s): reconnecting so the remote sends again what it "
                    "was not acknowledged",
                    store_strerror(status));
    free(w);
    bridge_unref(b);
}

/* ---- connection set-up ---- */

/* The remote kept no session: its QoS 2 ids from before are gone, and so is
 * any message it had PUBREC'd but not yet delivered (it gets the message
 * again rather than a PUBREL it would not know). */
static int forget_remote_session(struct bridge *b)
{
    struct hashtable_node *n = hashtable_take_all(&b->in_ids);
    int rc = 0;
    while (n) {
        struct hashtable_node *next = n->next;
        struct in_id *q = hashtable_entry(n, struct in_id, by_id);
        if (rc == 0 && b->sb)
            rc = session_bridge_qos2_released(b->sb, q->packet_id);
        free(q);
        n = next;
    }
    hashtable_deinit(&b->in_ids);
    hashtable_init(&b->in_ids);
    return rc;
}

static int handle_connack(struct bridge *b, const struct mqtt_connack *ack)
{
    if (ack->return_code != MQTT_CONNACK_ACCEPTED) {
        if (ack->return_code == MQTT_CONNACK_BAD_PROTOCOL && b->use_private) {
            b->private_refused = true;
            bridge_fail(b, "%s refused the bridge flag (try_private): retrying without it",
                        b->peer);
            return -1;
        }
        bridge_fail(b, "%s refused the connection: CONNACK %u", b->peer,
                    (unsigned)ack->return_code);
        return -1;
    }
    b->session_present = ack->session_present;
    if (!b->session_present && forget_remote_session(b) != 0) {
        bridge_fail(b, "out of memory");
        return -1;
    }
    uint64_t gen = b->conn_gen;
    bridge_online(b);
    int rc = send_subscribe(b);
    if (rc == 0 && notifies_remote(b))
        rc = send_remote_state(b);
    if (rc != 0 || gen != b->conn_gen) {
        if (gen == b->conn_gen)
            bridge_fail(b, "out of memory");
        return -1;
    }
    /* Acks of the last connection may still be in the open batch: the queue
     * is read again once they are committed, so nothing acked is resent. */
    b->is_pump_due = true;
    if (wait_commit(b, WAIT_PUMP, 0, 0, false) != 0) {
        b->is_pump_due = false;
        proto_pump(b);
    }
    return 0;
}

static void log_suback(struct bridge *b, const struct mqtt_suback *s)
{
    size_t k = 0;
    for (size_t i = 0; i < b->topic_count && k < s->return_codes.len; i++) {
        if (!(b->topics[i].direction & CONFIG_BRIDGE_IN))
            continue;
        if (s->return_codes.data[k++] == MQTT_SUBACK_FAILURE)
            log_warning("bridge %s: %s refused the subscription to %s", b->cfg->name, b->peer,
                        b->topics[i].remote_filter);
    }
}

int proto_handle(struct bridge *b, const struct mqtt_packet *pkt)
{
    b->ping_outstanding = false; /* the remote is alive */
    if (b->state == BRIDGE_CONNACK) {
        if (pkt->type == MQTT_CONNACK)
            return handle_connack(b, &pkt->u.connack);
        bridge_fail(b, "%s sent %s before CONNACK", b->peer, mqtt_packet_name(pkt->type));
        return -1;
    }
    switch (pkt->type) {
    case MQTT_PUBLISH:
        return handle_publish(b, &pkt->u.publish);
    case MQTT_PUBACK:
        return handle_puback(b, pkt->u.ack.packet_id);
    case MQTT_PUBREC:
        return handle_pubrec(b, pkt->u.ack.packet_id);
    case MQTT_PUBCOMP:
        return handle_pubcomp(b, pkt->u.ack.packet_id);
    case MQTT_PUBREL:
        return handle_pubrel(b, pkt->u.ack.packet_id);
    case MQTT_SUBACK:
        log_suback(b, &pkt->u.suback);
        return 0;
    case MQTT_PINGRESP:
        return 0;
    default: /* CONNECT, a second CONNACK, SUBSCRIBE, ...: not from a server */
        bridge_fail(b, "%s sent an unexpected %s", b->peer, mqtt_packet_name(pkt->type));
        return -1;
    }
}
