/*
 * output.c - encodes packets for a client and hands them to the server's
 * sink. A packet that promises durability is *held* while the turn's batch
 * holds changes, and leaves only after the commit: the acks (CONNACK, PUBACK,
 * PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK) and QoS 2 PUBLISH, whose packet
 * id the receiver uses to drop a resend [MQTT-4.3.3-2]: sent before its
 * record is durable, a crash would make the broker send the message again
 * under a new id, a second delivery. QoS 0 and QoS 1 PUBLISH go at once: a
 * crash before the commit can only cause a QoS 1 duplicate, which QoS 1
 * allows. Anything after a held packet of the same client is held too, so a
 * client sees its packets in order.
 *
 * The READ gate: output_send_publish() is the only code that encodes a
 * PUBLISH for a client, and it asks output_may_read() first. So every
 * delivery path (live, queued, resent from the window, retained on
 * subscribe, wills, and whatever comes later) is checked against the ACL at
 * the moment it would leave, with the receiving client's identity; a new path
 * cannot skip the check.
 *
 * Encode once, copy once: a PUBLISH's payload is never copied here. It goes
 * to the sink by reference (send_ref), holding one reference on the message
 * until the connection has written it, so a fan-out to N subscribers shares
 * one body. At QoS 0 the whole packet is the same for every subscriber and
 * is encoded once per message (msg_qos0_packet()); at QoS 1/2 only the small
 * header (with its packet id) is built per delivery. Held sends keep their
 * reference too.
 *
 * MQTT 5: every packet is encoded at the client's protocol level and made
 * to fit its Maximum Packet Size: an ack or DISCONNECT sheds its Reason
 * String and User Properties (mqtt_fit_packet()), a PUBLISH that still does
 * not fit is dropped for that client and counted, as if sent
 * [MQTT-3.1.2-25]. Reason Strings leave only when the client allows them
 * [MQTT-3.1.2-29]. A PUBLISH header is built per delivery (its properties
 * differ per subscriber), with a Topic Alias for topics the client gets
 * often (alias.c). Not for: deciding what to send.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "log.h"
#include "session_internal.h"

/* Packets other than PUBLISH and SUBACK fit in this (CONNACK, acks, PINGRESP). */
#define SMALL_PACKET_MAX 16
/* PUBLISH headers of topics up to ~250 bytes are built on the stack. */
#define SMALL_HEADER_MAX 264

/* Bytes a send references instead of copying: a span of a message that
 * stays alive (one reference per send) until the server has written it. */
struct shared_span {
    struct msg *msg; /* NULL: nothing referenced */
    struct mqtt_bytes bytes;
};

static int hold(struct session_mgr *mgr, struct session_client *c, const struct iovec *iov,
                int iovcnt, const struct shared_span *span, bool is_inbound_ack)
{
    size_t len = 0;
    for (int i = 0; i < iovcnt; i++)
        len += iov[i].iov_len;
    struct held_send *h = malloc(sizeof(*h) + len);
    if (!h)
        return -ENOMEM;
    h->next = NULL;
    h->client = c;
    h->is_inbound_ack = is_inbound_ack;
    if (is_inbound_ack)
        c->v5->inbound_unacked++; /* until the PUBACK leaves (Receive Maximum) */
    h->len = len;
    h->ref = msg_ref(span->msg);
    h->ref_data = span->bytes.data;
    h->ref_len = span->bytes.len;
    size_t off = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len)
            memcpy(h->bytes + off, iov[i].iov_base, iov[i].iov_len);
        off += iov[i].iov_len;
    }
    if (mgr->held_tail)
        mgr->held_tail->next = h;
    else
        mgr->held_head = h;
    mgr->held_tail = h;
    c->held_sends++;
    return 0;
}

/* Hands iov (copied) and span (referenced; msg NULL: none) to the sink. */
static int sink_send(struct session_mgr *mgr, struct session_client *c, const struct iovec *iov,
                     int iovcnt, const struct shared_span *span)
{
    if (!span->msg)
        return mgr->sink->send(c->conn, iov, iovcnt);
    return mgr->sink->send_ref(c->conn, iov, iovcnt, span->bytes.data, span->bytes.len, msg_release,
                               msg_ref(span->msg));
}

/* Sends now, or holds behind the batch (see top). is_inbound_ack: a PUBACK
 * the client's Receive Maximum quota waits for. */
static int emit_ack(struct session_mgr *mgr, struct session_client *c, const struct iovec *iov,
                    int iovcnt, const struct shared_span *span, bool is_durable,
                    bool is_inbound_ack)
{
    if (c->v5 && c->v5->has_sent_disconnect)
        return 0; /* nothing follows a DISCONNECT [MQTT-3.14.4-1] */
    if (c->held_sends > 0 || (is_durable && mgr_acks_must_wait(mgr)))
        return hold(mgr, c, iov, iovcnt, span, is_inbound_ack);
    return sink_send(mgr, c, iov, iovcnt, span);
}

static int emit(struct session_mgr *mgr, struct session_client *c, const struct iovec *iov,
                int iovcnt, const struct shared_span *span, bool is_durable)
{
    return emit_ack(mgr, c, iov, iovcnt, span, is_durable, false);
}

/* Acks promise that what they acknowledge is stored (see top). */
static bool is_durable_ack(uint8_t type)
{
    switch (type) {
    case MQTT_CONNACK:
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        return true;
    default:
        return false;
    }
}

/* A packet other than PUBLISH at the client's protocol level; MQTT 5: made
 * to fit the client's Maximum Packet Size. *size 0: drop it. */
static int prepare_packet(const struct session_client *c, struct mqtt_packet *pkt, size_t *size)
{
    if (!client_is_v5(c)) {
        pkt->protocol_level = 0;
        *size = mqtt_encoded_size(pkt);
        return *size ? 0 : -EINVAL;
    }
    pkt->protocol_level = MQTT_PROTOCOL_V5;
    bool may_explain = c->v5->request_problem_info || pkt->type == MQTT_CONNACK ||
                       pkt->type == MQTT_DISCONNECT; /* [MQTT-3.1.2-29] */
    struct mqtt_properties *props = pkt->type == MQTT_CONNACK      ? &pkt->u.connack.props
                                    : pkt->type == MQTT_DISCONNECT ? &pkt->u.disconnect.props
                                    : pkt->type == MQTT_SUBACK     ? &pkt->u.suback.props
                                    : pkt->type == MQTT_AUTH       ? &pkt->u.auth.props
                                                                   : &pkt->u.ack.props;
    if (!may_explain && pkt->type != MQTT_PINGRESP) {
        props->present &= ~MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
        props->user_property_count = 0;
    }
    int rc = mqtt_fit_packet(pkt, c->v5->max_packet_size, size);
    if (rc == MQTT_ERR_TOO_LARGE) {
        log_debug("client %s: %s larger than its Maximum Packet Size (%u): not sent",
                  session_client_name(c), mqtt_packet_name(pkt->type),
                  (unsigned)c->v5->max_packet_size);
        *size = 0;
        return 0;
    }
    return rc == MQTT_OK ? 0 : -EINVAL;
}

static int send_packet(struct session_mgr *mgr, struct session_client *c,
                       const struct mqtt_packet *pkt, bool is_inbound_ack)
{
    struct mqtt_packet copy = *pkt;
    size_t size = 0;
    int rc = prepare_packet(c, &copy, &size);
    if (rc != 0 || size == 0)
        return rc;
    uint8_t small[SMALL_PACKET_MAX];
    uint8_t *buf = size <= sizeof(small) ? small : malloc(size);
    if (!buf)
        return -ENOMEM;
    size_t written = 0;
    rc = mqtt_encode(&copy, buf, size, &written);
    if (rc == MQTT_OK) {
        struct iovec iov = {.iov_base = buf, .iov_len = written};
        struct shared_span none = {0};
        rc = emit_ack(mgr, c, &iov, 1, &none, is_durable_ack(pkt->type), is_inbound_ack);
    } else {
        rc = -EINVAL;
    }
    if (buf != small)
        free(buf);
    return rc;
}

int output_send_packet(struct session_mgr *mgr, struct session_client *c,
                       const struct mqtt_packet *pkt)
{
    return send_packet(mgr, c, pkt, false);
}

int output_send_ack(struct session_mgr *mgr, struct session_client *c, uint8_t type,
                    uint16_t packet_id)
{
    return output_send_ack_reason(mgr, c, type, packet_id, MQTT_RC_SUCCESS, NULL);
}

int output_send_ack_reason(struct session_mgr *mgr, struct session_client *c, uint8_t type,
                           uint16_t packet_id, uint8_t reason, const char *why)
{
    struct mqtt_packet pkt = {.type = type};
    pkt.u.ack.packet_id = packet_id;
    pkt.u.ack.reason_code = reason;
    if (why) {
        pkt.u.ack.props.present = MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
        pkt.u.ack.props.reason_string = (struct mqtt_bytes){(const uint8_t *)why, strlen(why)};
    }
    /* The PUBACK of a client's QoS 1 PUBLISH: its Receive Maximum quota
     * counts it until it leaves (see hold()). */
    bool is_inbound_ack = type == MQTT_PUBACK && client_is_v5(c);
    return send_packet(mgr, c, &pkt, is_inbound_ack);
}

bool output_may_read(const struct session_mgr *mgr, const struct session_client *c,
                     const struct msg *m)
{
    return acl_allows(mgr, c, (struct mqtt_bytes){m->topic, m->topic_len}, AUTH_READ);
}

static void count_sent(struct session_mgr *mgr, uint8_t qos, const struct msg *m)
{
    mgr->messages_sent++;
    mgr->sent_qos[qos > 2 ? 2 : qos]++;
    mgr->sent_bytes_qos[qos > 2 ? 2 : qos] += m->payload_len;
}

/* QoS 0: every subscriber gets the same bytes (msg_qos0_packet()), encoded
 * once per message and referenced by each connection's output. */
static int send_qos0(struct session_mgr *mgr, struct session_client *c, struct msg *m)
{
    struct shared_span span = {.msg = m};
    if (msg_qos0_packet(m, &span.bytes) != 0)
        return -EINVAL;
    return emit(mgr, c, NULL, 0, &span, false);
}

/* A PUBLISH over the client's Maximum Packet Size: dropped for it, as if
 * sent [MQTT-3.1.2-25], counted, and logged at most once a minute. */
static int drop_too_large(struct session_mgr *mgr, struct session_client *c, size_t size)
{
    uint64_t now_s = session_now_s(mgr);
    mgr->dropped_too_large++;
    if (now_s >= mgr->too_large_logged_s + LIMIT_LOG_INTERVAL_S) {
        mgr->too_large_logged_s = now_s;
        log_notice("client %s: a %zu-byte PUBLISH exceeds its Maximum Packet Size (%u): dropped "
                   "(%llu dropped so far)",
                   session_client_name(c), size, (unsigned)client_max_packet_size(c),
                   (unsigned long long)mgr->dropped_too_large);
    }
    return OUTPUT_TOO_LARGE;
}

/* MQTT 5 PUBLISH properties of one delivery of m: the ones it was published
 * with (forwarded unchanged), the Message Expiry Interval left, and a Topic
 * Alias: one the client already has replaces the topic; a new one is
 * assigned only if the packet still fits with it. Returns 0, or
 * OUTPUT_TOO_LARGE (nothing assigned). */
static int publish_properties_v5(struct session_mgr *mgr, struct session_client *c,
                                 const struct msg *m, struct mqtt_publish *pub)
{
    struct mqtt_properties *pr = &pub->props;
    pr->extra = (struct mqtt_bytes){m->props, m->props_len};
    if (m->expiry_at_s) {
        uint64_t now_s = session_now_s(mgr);
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY_INTERVAL);
        /* Whole seconds, rounded up: never 0, which a client could take
         * for "already expired" (a resend past the deadline says 1 too). */
        pr->message_expiry_interval_s =
            m->expiry_at_s > now_s ? (uint32_t)(m->expiry_at_s - now_s) : 1;
    }
    struct mqtt_bytes topic = pub->topic;
    uint16_t alias = aliases_find(&c->v5->aliases, topic);
    if (alias) {
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
        pr->topic_alias = alias;
        pub->topic = (struct mqtt_bytes){topic.data, 0};
    }
    size_t size = mqtt_publish_header_size(pub, MQTT_PROTOCOL_V5) + pub->payload.len;
    uint32_t max = c->v5->max_packet_size;
    if (max && size > max)
        return drop_too_large(mgr, c, size);
    /* A new alias adds 3 bytes (identifier and value). */
    if (!alias && (!max || size + 3 <= max) && (alias = aliases_assign(&c->v5->aliases, topic))) {
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
        pr->topic_alias = alias;
    }
    return 0;
}

/* Message Expiry [3.3.2.3.3]: a delivery not started by its deadline is
 * dropped (a resend of one already started is not). */
static bool has_expired(struct session_mgr *mgr, const struct msg *m, bool dup)
{
    if (!m->expiry_at_s || dup || session_now_s(mgr) <= m->expiry_at_s)
        return false;
    mgr->dropped_expired++;
    return true;
}

int output_send_publish(struct session_mgr *mgr, struct session_client *c, struct msg *m,
                        const struct delivery *d, uint16_t packet_id, bool dup)
{
    if (!output_may_read(mgr, c, m))
        return OUTPUT_DENIED; /* the READ gate: see the top of this file */
    if (has_expired(mgr, m, dup))
        return OUTPUT_EXPIRED;
    uint8_t qos = d->qos;
    if (qos == 0 && !dup && !client_is_v5(c) && !d->retain) {
        count_sent(mgr, qos, m);
        return send_qos0(mgr, c, m);
    }
    struct mqtt_publish pub = {
        .dup = dup,
        .qos = qos,
        .retain = m->retain || d->retain,
        .topic = {m->topic, m->topic_len},
        .packet_id = qos ? packet_id : 0,
        .payload = {m->payload, m->payload_len},
    };
    if (client_is_v5(c) && d->sub_id_count > 0) {
        pub.props.subscription_ids = d->sub_ids; /* [MQTT-3.3.4-3] */
        pub.props.subscription_id_count = d->sub_id_count;
    }
    int rc = client_is_v5(c) ? publish_properties_v5(mgr, c, m, &pub) : 0;
    if (rc != 0)
        return rc;
    count_sent(mgr, qos, m);
    /* Only the header (fixed header, topic, packet id, properties) is built
     * per delivery, on the stack for most topics; the payload is referenced,
     * never copied or re-encoded here. */
    uint8_t small[SMALL_HEADER_MAX];
    size_t cap = mqtt_publish_header_size(&pub, c->protocol_level);
    if (cap == 0)
        return -EINVAL;
    uint8_t *header = cap <= sizeof(small) ? small : malloc(cap);
    if (!header)
        return -ENOMEM;
    size_t header_len = 0;
    rc = mqtt_encode_publish_header_for(&pub, c->protocol_level, header, cap, &header_len);
    if (rc == MQTT_OK) {
        struct iovec iov = {header, header_len};
        struct shared_span span = {0};
        if (m->payload_len > 0)
            span = (struct shared_span){m, {m->payload, m->payload_len}};
        rc = emit(mgr, c, &iov, 1, &span, qos == 2);
    } else {
        rc = -EINVAL;
    }
    if (header != small)
        free(header);
    return rc;
}

void output_release_held(struct session_mgr *mgr, struct held_send *list, int status)
{
    struct held_send *h = list;
    while (h) {
        struct held_send *next = h->next;
        struct session_client *c = h->client;
        if (c) {
            c->held_sends--;
            if (h->is_inbound_ack && c->v5->inbound_unacked > 0)
                c->v5->inbound_unacked--;
            if (status != 0 && c->is_connack_held) {
                /* Its CONNACK never left: the client was not accepted, and a
                 * client that was not accepted leaves no will. */
                msg_unref(c->will);
                c->will = NULL;
            }
            c->is_connack_held = false;
            if (status == 0) {
                struct iovec iov = {.iov_base = h->bytes, .iov_len = h->len};
                struct shared_span span = {h->ref, {h->ref_data, h->ref_len}};
                if (sink_send(mgr, c, &iov, 1, &span) != 0)
                    mgr->sink->close(c->conn, "out of memory queueing output");
            } else {
                /* The state this send acknowledged is not durable: the client
                 * must not see the ack. Closing makes it retry. */
                mgr->sink->close(c->conn, "store commit failed");
            }
        }
        msg_unref(h->ref); /* sink_send() took its own reference */
        free(h);
        h = next;
    }
}

void output_forget_client(struct session_mgr *mgr, struct session_client *c)
{
    if (c->held_sends == 0)
        return;
    for (struct held_send *h = mgr->flight_held; h; h = h->next)
        if (h->client == c)
            h->client = NULL;
    for (struct held_send *h = mgr->held_head; h; h = h->next)
        if (h->client == c)
            h->client = NULL;
    c->held_sends = 0;
}
