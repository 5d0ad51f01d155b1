/*
 * decode.c - turning one framed packet into a struct mqtt_packet, enforcing
 * the normative rules of MQTT 5.0, 3.1.1 and 3.1 that a receiver can check
 * on the bytes. MQTT 5 property blocks are read by props.c.
 *
 * Every string and payload in the result is a view into frame->body; nothing
 * is allocated or copied. Every read checks the bytes left first.
 * Not for: finding packet boundaries (frame.c), session rules such as
 * "CONNECT must be first" or the zero-length client id (src/session/), or
 * topic filter wildcard placement (the broker answers SUBACK 0x80 for that).
 */
#include "mqtt.h"

#include <string.h>

#include "codec.h"
#include "mqtt_topic.h"

/* A length-prefixed string that must be well-formed UTF-8 [MQTT-1.5.3-1..3]. */
static int read_utf8(struct reader *r, struct mqtt_bytes *out)
{
    int rc = read_bytes(r, out);
    if (rc != MQTT_OK)
        return rc;
    return mqtt_utf8_check(out->data, out->len);
}

/* A packet identifier; 0 is never valid [MQTT-2.3.1-1]. */
static int read_packet_id(struct reader *r, uint16_t *out)
{
    int rc = read_u16(r, out);
    if (rc != MQTT_OK)
        return rc;
    return *out == 0 ? MQTT_ERR_PACKET_ID : MQTT_OK;
}

/* Whatever is left is the payload: PUBLISH application message, SUBACK codes. */
static struct mqtt_bytes read_rest(struct reader *r)
{
    struct mqtt_bytes out = {r->pos, r->left};
    r->pos += r->left;
    r->left = 0;
    return out;
}

/* A packet must end where its Remaining Length says it does. */
static int expect_end(const struct reader *r)
{
    return r->left == 0 ? MQTT_OK : MQTT_ERR_TRAILING;
}

static bool bytes_equal(struct mqtt_bytes b, const char *s)
{
    size_t n = strlen(s);
    return b.len == n && memcmp(b.data, s, n) == 0;
}

/*
 * Fixed-header flags [MQTT-2.2.2-1] [MQTT-2.2.2-2]: PUBREL, SUBSCRIBE and
 * UNSUBSCRIBE carry 0010 [MQTT-3.6.1-1] [MQTT-3.8.1-1] [MQTT-3.10.1-1];
 * PUBLISH carries DUP/QoS/RETAIN, where QoS 3 is malformed [MQTT-3.3.1-4]
 * and DUP must be 0 at QoS 0 [MQTT-3.3.1-2] (mosquitto also refuses it);
 * every other type carries 0000.
 */
static int check_publish_flags(uint8_t flags)
{
    uint8_t qos = (flags >> 1) & 3u;
    if (qos == 3)
        return MQTT_ERR_QOS;
    if (qos == 0 && (flags & 0x08u))
        return MQTT_ERR_HEADER_FLAGS;
    return MQTT_OK;
}

static int check_header_flags(uint8_t type, uint8_t flags, uint8_t protocol_level)
{
    switch (type) {
    case MQTT_PUBLISH:
        return check_publish_flags(flags);
    case MQTT_PUBREL:
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        /* MQTT 3.1 let a client set DUP when it resent these (QoS 1 in
         * 3.1's terms); 3.1.1 fixed the flags at 0010. */
        if (protocol_level == MQTT_PROTOCOL_V31 && flags == 0xau)
            return MQTT_OK;
        return flags == 0x2u ? MQTT_OK : MQTT_ERR_HEADER_FLAGS;
    default:
        return flags == 0 ? MQTT_OK : MQTT_ERR_HEADER_FLAGS;
    }
}

/*
 * Protocol name and level [MQTT-3.1.2-1] [MQTT-3.1.2-2]. A known name with an
 * unknown level is told apart from an unknown name: the former must be
 * answered with CONNACK 0x01 (v5: 0x84), the latter only closes the
 * connection. Level 5 counts as known only when the caller accepts it
 * (max_level), so a broker without MQTT 5 refuses it exactly as before.
 */
static int check_protocol(struct mqtt_bytes name, uint8_t level, uint8_t max_level)
{
    if (bytes_equal(name, "MQTT")) {
        if (level == MQTT_PROTOCOL_V311)
            return MQTT_OK;
        if (level == MQTT_PROTOCOL_V5 && max_level == MQTT_PROTOCOL_V5)
            return MQTT_OK;
        return MQTT_ERR_PROTOCOL_LEVEL;
    }
    if (bytes_equal(name, "MQIsdp"))
        return level == MQTT_PROTOCOL_V31 ? MQTT_OK : MQTT_ERR_PROTOCOL_LEVEL;
    return MQTT_ERR_PROTOCOL_NAME;
}

/* Connect flags byte: user(7) pass(6) will-retain(5) will-qos(4-3) will(2) clean(1) reserved(0). */
static int parse_connect_flags(uint8_t flags, struct mqtt_connect *c)
{
    if (flags & 0x01u)
        return MQTT_ERR_CONNECT_RESERVED; /* [MQTT-3.1.2-3] */
    c->clean_session = (flags & 0x02u) != 0;
    c->has_will = (flags & 0x04u) != 0;
    c->will_qos = (flags >> 3) & 3u;
    c->will_retain = (flags & 0x20u) != 0;
    c->has_password = (flags & 0x40u) != 0;
    c->has_username = (flags & 0x80u) != 0;

    if (!c->has_will && (c->will_qos != 0 || c->will_retain))
        return MQTT_ERR_WILL_FLAGS; /* [MQTT-3.1.2-11] [MQTT-3.1.2-13] [MQTT-3.1.2-15] */
    if (c->will_qos == 3)
        return MQTT_ERR_QOS; /* [MQTT-3.1.2-14] (v5: [MQTT-3.1.2-12]) */
    /* [MQTT-3.1.2-22]; MQTT 5 allows a password without a username [3.1.2.9]. */
    if (c->has_password && !c->has_username && c->protocol_level != MQTT_PROTOCOL_V5)
        return MQTT_ERR_PASSWORD_NO_USER;
    return MQTT_OK;
}

/* Will: [v5: will properties] | will topic (a topic name [MQTT-3.1.3-10]) | will message. */
static int decode_will(struct reader *r, struct mqtt_connect *c)
{
    int rc = MQTT_OK;
    if (c->protocol_level == MQTT_PROTOCOL_V5)
        rc = mqtt_props_decode(r, MQTT_PROPS_WILL, &c->will_props); /* [3.1.3.2] */
    if (rc == MQTT_OK)
        rc = read_bytes(r, &c->will_topic);
    if (rc == MQTT_OK)
        rc = mqtt_topic_name_check(c->will_topic);
    if (rc == MQTT_OK)
        rc = read_bytes(r, &c->will_payload);
    return rc;
}

/*
 * Payload, in the order [MQTT-3.1.3-1] fixes: client id (UTF-8, possibly
 * empty [MQTT-3.1.3-4] [MQTT-3.1.3-6]), will, username (UTF-8
 * [MQTT-3.1.3-11]), password (binary). The session layer, not the codec,
 * rejects an empty client id with clean session 0 [MQTT-3.1.3-8] and decides
 * on long ones (3.1 clients may send more than 23 bytes).
 */
static int decode_connect_payload(struct reader *r, struct mqtt_connect *c)
{
    int rc = read_utf8(r, &c->client_id);
    if (rc == MQTT_OK && c->has_will)
        rc = decode_will(r, c);
    if (rc == MQTT_OK && c->has_username)
        rc = read_utf8(r, &c->username);
    if (rc == MQTT_OK && c->has_password)
        rc = read_bytes(r, &c->password);
    if (rc == MQTT_OK)
        rc = expect_end(r);
    return rc;
}

static int decode_connect(struct reader *r, uint8_t max_level, struct mqtt_connect *c)
{
    uint8_t flags = 0;
    int rc = read_bytes(r, &c->protocol_name);
    if (rc == MQTT_OK)
        rc = read_u8(r, &c->protocol_level);
    if (rc == MQTT_OK)
        rc = check_protocol(c->protocol_name, c->protocol_level, max_level);
    if (rc == MQTT_OK)
        rc = read_u8(r, &flags);
    if (rc == MQTT_OK)
        rc = parse_connect_flags(flags, c);
    if (rc == MQTT_OK)
        rc = read_u16(r, &c->keepalive_s);
    if (rc == MQTT_OK && c->protocol_level == MQTT_PROTOCOL_V5)
        rc = mqtt_props_decode(r, MQTT_CONNECT, &c->props); /* [3.1.2.11] */
    if (rc == MQTT_OK)
        rc = decode_connect_payload(r, c);
    return rc;
}

/* A v5 reason code the packet may carry [MQTT 5.0 2.4]. */
static int read_reason(struct reader *r, uint8_t type, uint8_t *code)
{
    int rc = read_u8(r, code);
    if (rc == MQTT_OK && !mqtt_reason_valid(type, *code))
        rc = MQTT_ERR_REASON_CODE;
    return rc;
}

/* Acknowledge flags (bits 7-1 reserved, 0 [3.2.2.1]) and return code;
 * v5: a CONNACK reason code [3.2.2.2] and properties [3.2.2.3]. */
static int decode_connack(struct reader *r, bool v5, struct mqtt_connack *c)
{
    uint8_t flags = 0;
    int rc = read_u8(r, &flags);
    if (rc == MQTT_OK)
        rc = v5 ? read_reason(r, MQTT_CONNACK, &c->return_code) : read_u8(r, &c->return_code);
    if (rc != MQTT_OK)
        return rc;
    if (flags & 0xfeu)
        return MQTT_ERR_CONNACK_FLAGS;
    c->session_present = (flags & 0x01u) != 0;
    if (v5 && c->session_present && c->return_code != MQTT_RC_SUCCESS)
        return MQTT_ERR_CONNACK_FLAGS; /* [MQTT-3.2.2-6] */
    if (v5)
        rc = mqtt_props_decode(r, MQTT_CONNACK, &c->props);
    return rc == MQTT_OK ? expect_end(r) : rc;
}

/*
 * Topic name [MQTT-3.3.2-1] [MQTT-3.3.2-2], packet id when QoS > 0
 * [MQTT-2.3.1-1], v5 properties [3.3.2.3], payload. In v5 the topic may be
 * empty if a Topic Alias stands for it; without one that is a Protocol
 * Error [3.3.2.3.4].
 */
static int decode_publish(struct reader *r, uint8_t flags, bool v5, struct mqtt_publish *p)
{
    p->dup = (flags & 0x08u) != 0;
    p->qos = (flags >> 1) & 3u;
    p->retain = (flags & 0x01u) != 0;
    int rc = read_bytes(r, &p->topic);
    if (rc == MQTT_OK && (!v5 || p->topic.len > 0))
        rc = mqtt_topic_name_check(p->topic);
    if (rc == MQTT_OK && p->qos > 0)
        rc = read_packet_id(r, &p->packet_id);
    if (rc == MQTT_OK && v5)
        rc = mqtt_props_decode(r, MQTT_PUBLISH, &p->props);
    if (rc == MQTT_OK && v5 && p->topic.len == 0 &&
        !mqtt_properties_has(&p->props, MQTT_PROP_TOPIC_ALIAS))
        rc = MQTT_ERR_TOPIC_NAME;
    if (rc == MQTT_OK)
        p->payload = read_rest(r); /* may be empty [MQTT-3.3.3] */
    return rc;
}

/* At least one code, each one the packet may carry. */
static int read_reason_list(struct reader *r, uint8_t type, struct mqtt_bytes *codes)
{
    if (r->left == 0)
        return MQTT_ERR_EMPTY_PAYLOAD; /* one per filter, and there is at least one */
    *codes = read_rest(r);
    for (size_t i = 0; i < codes->len; i++) {
        if (!mqtt_reason_valid(type, codes->data[i]))
            return MQTT_ERR_REASON_CODE; /* [MQTT-3.9.3-2] [MQTT-3.11.3-2] */
    }
    return MQTT_OK;
}

/*
 * v5 PUBACK, PUBREC, PUBREL, PUBCOMP after the packet id: nothing (reason
 * 0x00, no properties), a reason code, or a reason code and properties
 * [3.4.2.1] [3.4.2.2.1]. UNSUBACK: properties then one reason per filter.
 */
static int decode_ack_v5(struct reader *r, uint8_t type, struct mqtt_ack *a)
{
    int rc = MQTT_OK;
    if (type == MQTT_UNSUBACK) {
        rc = mqtt_props_decode(r, type, &a->props);
        return rc == MQTT_OK ? read_reason_list(r, type, &a->reason_codes) : rc;
    }
    if (r->left == 0)
        return MQTT_OK; /* a->reason_code stays 0x00 Success */
    rc = read_reason(r, type, &a->reason_code);
    if (rc == MQTT_OK && r->left > 0)
        rc = mqtt_props_decode(r, type, &a->props);
    return rc == MQTT_OK ? expect_end(r) : rc;
}

/* PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK: a non-zero packet id, then v5 fields. */
static int decode_ack(struct reader *r, uint8_t type, bool v5, struct mqtt_ack *a)
{
    int rc = read_packet_id(r, &a->packet_id);
    if (rc != MQTT_OK)
        return rc;
    return v5 ? decode_ack_v5(r, type, a) : expect_end(r);
}

/*
 * The v5 subscription options byte [3.8.3.1]: reserved bits 7-6 must be 0
 * (else malformed [MQTT-3.8.3-5]); QoS 3 and Retain Handling 3 are Protocol
 * Errors.
 */
static int check_subscription_options(uint8_t opt)
{
    if (opt & 0xc0u)
        return MQTT_ERR_SUBSCRIBE_OPTIONS;
    if ((opt & 3u) == 3u)
        return MQTT_ERR_SUBSCRIBE_QOS;
    if (((opt >> 4) & 3u) == 3u)
        return MQTT_ERR_RETAIN_HANDLING;
    return MQTT_OK;
}

/*
 * One SUBSCRIBE or UNSUBSCRIBE entry. A filter is a non-empty
 * [MQTT-4.7.3-1] UTF-8 string [MQTT-3.8.3-1] [MQTT-3.10.3-1]; wildcard
 * placement is the session's call (SUBACK 0x80). The requested QoS byte has
 * its upper 6 bits reserved and a QoS of 0..2 [MQTT-3-8.3-4]; in v5 it is the
 * subscription options byte.
 */
static int read_topic_entry(struct reader *r, bool has_qos, bool v5)
{
    struct mqtt_bytes filter;
    uint8_t qos = 0;
    int rc = read_bytes(r, &filter);
    if (rc != MQTT_OK)
        return rc;
    if (filter.len == 0)
        return MQTT_ERR_TOPIC_FILTER;
    rc = mqtt_utf8_check(filter.data, filter.len);
    if (rc == MQTT_OK && has_qos) {
        rc = read_u8(r, &qos);
        if (rc == MQTT_OK && v5)
            rc = check_subscription_options(qos);
        else if (rc == MQTT_OK && qos > 2)
            rc = MQTT_ERR_SUBSCRIBE_QOS;
    }
    return rc;
}

/* Packet id, v5 properties, then at least one entry [MQTT-3.8.3-3] [MQTT-3.10.3-2]. */
static int decode_subscribe(struct reader *r, uint8_t type, bool v5, struct mqtt_subscribe *s)
{
    int rc = read_packet_id(r, &s->packet_id);
    if (rc == MQTT_OK && v5)
        rc = mqtt_props_decode(r, type, &s->props);
    if (rc != MQTT_OK)
        return rc;
    if (r->left == 0)
        return MQTT_ERR_EMPTY_PAYLOAD;
    s->raw.data = r->pos;
    s->raw.len = r->left;
    s->entries = NULL;
    s->count = 0;
    while (r->left > 0) {
        rc = read_topic_entry(r, type == MQTT_SUBSCRIBE, v5);
        if (rc != MQTT_OK)
            return rc;
        s->count++;
    }
    return MQTT_OK;
}

/* Packet id, then one code per filter, each 0x00, 0x01, 0x02 or 0x80 [MQTT-3.9.3-2];
 * v5: properties, then SUBACK reason codes [3.9.3]. */
static int decode_suback(struct reader *r, bool v5, struct mqtt_suback *s)
{
    int rc = read_packet_id(r, &s->packet_id);
    if (rc == MQTT_OK && v5)
        rc = mqtt_props_decode(r, MQTT_SUBACK, &s->props);
    if (rc != MQTT_OK)
        return rc;
    if (v5)
        return read_reason_list(r, MQTT_SUBACK, &s->return_codes);
    if (r->left == 0)
        return MQTT_ERR_EMPTY_PAYLOAD; /* a SUBSCRIBE has at least one filter */
    s->return_codes = read_rest(r);
    for (size_t i = 0; i < s->return_codes.len; i++) {
        uint8_t code = s->return_codes.data[i];
        if (code > 2 && code != MQTT_SUBACK_FAILURE)
            return MQTT_ERR_SUBACK_CODE;
    }
    return MQTT_OK;
}

/*
 * v5 DISCONNECT and AUTH: nothing (reason 0x00, no properties), a reason
 * code, or a reason code and properties [3.14.2.1] [3.15.2.1]. A 1-byte AUTH
 * is read as a DISCONNECT's would be ("if the Remaining Length is less than 2,
 * a value of 0 is used" for the property length [3.14.2.2.1]).
 */
static int decode_reason_only(struct reader *r, uint8_t type, struct mqtt_disconnect *d)
{
    if (r->left == 0)
        return MQTT_OK;
    int rc = read_reason(r, type, &d->reason_code);
    if (rc == MQTT_OK && r->left > 0)
        rc = mqtt_props_decode(r, type, &d->props);
    return rc == MQTT_OK ? expect_end(r) : rc;
}

static int decode_body(const struct mqtt_frame *frame, struct reader *r, struct mqtt_packet *pkt)
{
    bool v5 = pkt->protocol_level == MQTT_PROTOCOL_V5;
    switch (frame->type) {
    case MQTT_CONNECT:
        return decode_connect(r, pkt->protocol_level, &pkt->u.connect);
    case MQTT_CONNACK:
        return decode_connack(r, v5, &pkt->u.connack);
    case MQTT_PUBLISH:
        return decode_publish(r, frame->flags, v5, &pkt->u.publish);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
    case MQTT_UNSUBACK:
        return decode_ack(r, frame->type, v5, &pkt->u.ack);
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        return decode_subscribe(r, frame->type, v5, &pkt->u.subscribe);
    case MQTT_SUBACK:
        return decode_suback(r, v5, &pkt->u.suback);
    case MQTT_PINGREQ:
    case MQTT_PINGRESP:
        return expect_end(r); /* no variable header, no payload */
    case MQTT_DISCONNECT:
        return v5 ? decode_reason_only(r, frame->type, &pkt->u.disconnect) : expect_end(r);
    case MQTT_AUTH:
        if (!v5)
            return MQTT_ERR_PACKET_TYPE; /* reserved in 3.1.1 [MQTT-2.2.1] */
        return decode_reason_only(r, frame->type, &pkt->u.auth);
    default:
        return MQTT_ERR_PACKET_TYPE; /* reserved 0 (and 15 before v5) [MQTT-2.2.1] */
    }
}

int mqtt_decode(const struct mqtt_frame *frame, struct mqtt_packet *pkt)
{
    return mqtt_decode_for(frame, MQTT_PROTOCOL_V311, pkt);
}

int mqtt_decode_for(const struct mqtt_frame *frame, uint8_t protocol_level, struct mqtt_packet *pkt)
{
    memset(pkt, 0, sizeof(*pkt));
    bool v5 = protocol_level == MQTT_PROTOCOL_V5;
    if (frame->type < MQTT_CONNECT || frame->type > MQTT_AUTH || (frame->type == MQTT_AUTH && !v5))
        return MQTT_ERR_PACKET_TYPE;
    int rc = check_header_flags(frame->type, frame->flags, protocol_level);
    if (rc != MQTT_OK)
        return rc;
    pkt->type = frame->type;
    pkt->protocol_level = protocol_level;
    struct reader r = {frame->body, frame->body_len};
    rc = decode_body(frame, &r, pkt);
    if (frame->type == MQTT_CONNECT)
        pkt->protocol_level = pkt->u.connect.protocol_level; /* its own, not the caller's */
    return rc;
}

void mqtt_topic_iter_init(struct mqtt_topic_iter *it, const struct mqtt_packet *pkt)
{
    it->pos = NULL;
    it->end = NULL;
    it->has_qos = pkt->type == MQTT_SUBSCRIBE;
    if (pkt->type == MQTT_SUBSCRIBE || pkt->type == MQTT_UNSUBSCRIBE) {
        it->pos = pkt->u.subscribe.raw.data;
        it->end = it->pos + pkt->u.subscribe.raw.len;
    }
}

/* Bounds-checked even though the decoder validated raw: raw may come from a
 * caller. The byte after a SUBSCRIBE filter is read as v5 options; a 3.1.1
 * QoS byte (0..2) has no other bits set. */
bool mqtt_topic_iter_next_options(struct mqtt_topic_iter *it, struct mqtt_topic_entry *entry,
                                  struct mqtt_subscription_options *opts)
{
    if (it->pos == NULL || it->pos >= it->end)
        return false;
    struct reader r = {it->pos, (size_t)(it->end - it->pos)};
    uint8_t opt = 0;
    if (read_bytes(&r, &entry->filter) != MQTT_OK)
        return false;
    if (it->has_qos && read_u8(&r, &opt) != MQTT_OK)
        return false;
    entry->qos = opt & 3u;
    opts->no_local = (opt & 0x04u) != 0;
    opts->retain_as_published = (opt & 0x08u) != 0;
    opts->retain_handling = (opt >> 4) & 3u;
    it->pos = r.pos;
    return true;
}

bool mqtt_topic_iter_next(struct mqtt_topic_iter *it, struct mqtt_topic_entry *entry)
{
    struct mqtt_subscription_options opts;
    return mqtt_topic_iter_next_options(it, entry, &opts);
}
