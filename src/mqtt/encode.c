/*
 * encode.c - writing a struct mqtt_packet as MQTT 5.0, 3.1.1 or 3.1 bytes.
 *
 * Two passes: body_size() computes and range-checks the Remaining Length,
 * then the writers fill a buffer already known to be large enough. Nothing is
 * allocated; the caller owns buf. MQTT 5 property blocks are sized and
 * written by props.c.
 * Not for: topic or UTF-8 validation (the caller's job, see mqtt.h) or
 * reading packets (frame.c, decode.c).
 */
#include "mqtt.h"

#include <string.h>

#include "codec.h"

static bool is_v5(const struct mqtt_packet *pkt)
{
    if (pkt->type == MQTT_CONNECT)
        return pkt->u.connect.protocol_level == MQTT_PROTOCOL_V5;
    return pkt->protocol_level == MQTT_PROTOCOL_V5;
}

/* Adds a length-prefixed field to *size; false if it cannot be prefixed. */
static bool add_field(size_t *size, struct mqtt_bytes b)
{
    if (b.len > MQTT_FIELD_MAX_LEN)
        return false;
    *size += 2 + b.len;
    return true;
}

/* Adds a property block for `kind` to *size when v5; false if it cannot be encoded. */
static bool add_props(size_t *size, bool v5, const struct mqtt_properties *props, uint8_t kind)
{
    size_t n = 0;
    if (!v5)
        return true;
    if (mqtt_props_size(props, kind, &n) != MQTT_OK)
        return false;
    *size += n;
    return true;
}

static int connect_size(const struct mqtt_connect *c, size_t *size)
{
    bool v5 = c->protocol_level == MQTT_PROTOCOL_V5;
    if (c->will_qos > 2 || (!c->has_will && (c->will_qos != 0 || c->will_retain)))
        return MQTT_ERR_INVALID_ARGUMENT;
    if (c->has_password && !c->has_username && !v5)
        return MQTT_ERR_INVALID_ARGUMENT; /* [MQTT-3.1.2-22]; v5 allows it */
    bool ok = add_field(size, c->protocol_name);
    *size += 1 + 1 + 2; /* level, flags, keepalive */
    ok = ok && add_props(size, v5, &c->props, MQTT_CONNECT);
    ok = ok && add_field(size, c->client_id);
    if (c->has_will) {
        ok = ok && add_props(size, v5, &c->will_props, MQTT_PROPS_WILL);
        ok = ok && add_field(size, c->will_topic) && add_field(size, c->will_payload);
    }
    if (c->has_username)
        ok = ok && add_field(size, c->username);
    if (c->has_password)
        ok = ok && add_field(size, c->password);
    return ok ? MQTT_OK : MQTT_ERR_INVALID_ARGUMENT;
}

static int connack_size(const struct mqtt_connack *c, bool v5, size_t *size)
{
    *size = 2;
    if (!v5)
        return MQTT_OK;
    if (!mqtt_reason_valid(MQTT_CONNACK, c->return_code))
        return MQTT_ERR_INVALID_ARGUMENT;
    if (c->session_present && c->return_code != MQTT_RC_SUCCESS)
        return MQTT_ERR_INVALID_ARGUMENT; /* [MQTT-3.2.2-6] */
    return add_props(size, v5, &c->props, MQTT_CONNACK) ? MQTT_OK : MQTT_ERR_INVALID_ARGUMENT;
}

/* Topic, packet id, v5 properties and payload; the payload length is checked
 * before any sum can wrap. */
static int publish_size(const struct mqtt_publish *p, bool v5, size_t *size)
{
    if (p->qos > 2 || (p->qos > 0 && p->packet_id == 0))
        return MQTT_ERR_INVALID_ARGUMENT;
    if (p->qos == 0 && p->dup)
        return MQTT_ERR_INVALID_ARGUMENT; /* [MQTT-3.3.1-2] */
    if (p->payload.len > MQTT_MAX_REMAINING_LENGTH || !add_field(size, p->topic))
        return MQTT_ERR_INVALID_ARGUMENT;
    if (!add_props(size, v5, &p->props, MQTT_PUBLISH))
        return MQTT_ERR_INVALID_ARGUMENT;
    *size += (p->qos > 0 ? 2 : 0) + p->payload.len;
    return MQTT_OK;
}

/* v5 reason codes, at least one, each valid for the packet. */
static int add_reason_list(size_t *size, uint8_t type, struct mqtt_bytes codes)
{
    if (codes.len == 0 || codes.len > MQTT_MAX_REMAINING_LENGTH)
        return MQTT_ERR_INVALID_ARGUMENT;
    for (size_t i = 0; i < codes.len; i++) {
        if (!mqtt_reason_valid(type, codes.data[i]))
            return MQTT_ERR_INVALID_ARGUMENT;
    }
    *size += codes.len;
    return MQTT_OK;
}

/* The body after the packet id of a v5 PUBACK/PUBREC/PUBREL/PUBCOMP, or of a
 * DISCONNECT/AUTH: empty (reason 0, no properties), the reason alone, or the
 * reason and the properties, the shortest that says it [3.4.2.1] [3.14.2.1].
 * AUTH has no reason-only form [3.15.2.1]. */
static int reason_tail_size(uint8_t type, uint8_t code, const struct mqtt_properties *props,
                            size_t *size)
{
    size_t block = 0;
    if (!mqtt_reason_valid(type, code) || mqtt_props_size(props, type, &block) != MQTT_OK)
        return MQTT_ERR_INVALID_ARGUMENT;
    bool no_props = block == 1;
    if (code == MQTT_RC_SUCCESS && no_props)
        return MQTT_OK;
    *size += 1;
    if (!no_props || type == MQTT_AUTH)
        *size += block;
    return MQTT_OK;
}

static int ack_size(uint8_t type, const struct mqtt_ack *a, bool v5, size_t *size)
{
    if (a->packet_id == 0)
        return MQTT_ERR_INVALID_ARGUMENT;
    *size = 2;
    if (!v5)
        return MQTT_OK;
    if (type == MQTT_UNSUBACK) {
        if (!add_props(size, v5, &a->props, type))
            return MQTT_ERR_INVALID_ARGUMENT;
        return add_reason_list(size, type, a->reason_codes);
    }
    return reason_tail_size(type, a->reason_code, &a->props, size);
}

/* The byte after entry i's filter: the QoS, with v5 options when given. */
static uint8_t entry_options(const struct mqtt_subscribe *s, size_t i)
{
    uint8_t opt = s->entries[i].qos;
    if (s->options != NULL) {
        const struct mqtt_subscription_options *o = &s->options[i];
        opt |= (uint8_t)((o->no_local ? 0x04u : 0) | (o->retain_as_published ? 0x08u : 0) |
                         (o->retain_handling << 4));
    }
    return opt;
}

/* QoS 0..2; options only in v5, retain handling 0..2 [3.8.3.1]. */
static bool entry_valid(const struct mqtt_subscribe *s, size_t i, bool v5)
{
    if (s->entries[i].qos > 2)
        return false;
    if (s->options == NULL)
        return true;
    return v5 && s->options[i].retain_handling <= 2;
}

/* Entries (when given) or raw; stops summing once past the protocol maximum. */
static int subscribe_size(uint8_t type, const struct mqtt_subscribe *s, bool v5, size_t *size)
{
    if (s->packet_id == 0)
        return MQTT_ERR_INVALID_ARGUMENT;
    *size += 2;
    if (!add_props(size, v5, &s->props, type))
        return MQTT_ERR_INVALID_ARGUMENT;
    if (s->entries == NULL) {
        if (s->raw.len == 0 || s->raw.len > MQTT_MAX_REMAINING_LENGTH)
            return MQTT_ERR_INVALID_ARGUMENT;
        *size += s->raw.len;
        return MQTT_OK;
    }
    if (s->count == 0)
        return MQTT_ERR_INVALID_ARGUMENT;
    for (size_t i = 0; i < s->count; i++) {
        const struct mqtt_topic_entry *e = &s->entries[i];
        if (!add_field(size, e->filter) || *size > MQTT_MAX_REMAINING_LENGTH)
            return MQTT_ERR_INVALID_ARGUMENT;
        if (type == MQTT_SUBSCRIBE) {
            if (!entry_valid(s, i, v5))
                return MQTT_ERR_INVALID_ARGUMENT;
            *size += 1;
        }
    }
    return MQTT_OK;
}

static int suback_size(const struct mqtt_suback *s, bool v5, size_t *size)
{
    if (s->packet_id == 0)
        return MQTT_ERR_INVALID_ARGUMENT;
    *size = 2;
    if (v5) {
        if (!add_props(size, v5, &s->props, MQTT_SUBACK))
            return MQTT_ERR_INVALID_ARGUMENT;
        return add_reason_list(size, MQTT_SUBACK, s->return_codes);
    }
    if (s->return_codes.len == 0 || s->return_codes.len > MQTT_MAX_REMAINING_LENGTH)
        return MQTT_ERR_INVALID_ARGUMENT;
    for (size_t i = 0; i < s->return_codes.len; i++) {
        uint8_t code = s->return_codes.data[i];
        if (code > 2 && code != MQTT_SUBACK_FAILURE)
            return MQTT_ERR_INVALID_ARGUMENT; /* [MQTT-3.9.3-2] */
    }
    *size += s->return_codes.len;
    return MQTT_OK;
}

/* Remaining Length of *pkt, range-checked. */
static int body_size(const struct mqtt_packet *pkt, size_t *size)
{
    bool v5 = is_v5(pkt);
    int rc = MQTT_OK;
    *size = 0;
    switch (pkt->type) {
    case MQTT_CONNECT:
        rc = connect_size(&pkt->u.connect, size);
        break;
    case MQTT_CONNACK:
        rc = connack_size(&pkt->u.connack, v5, size);
        break;
    case MQTT_PUBLISH:
        rc = publish_size(&pkt->u.publish, v5, size);
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
    case MQTT_UNSUBACK:
        rc = ack_size(pkt->type, &pkt->u.ack, v5, size);
        break;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        rc = subscribe_size(pkt->type, &pkt->u.subscribe, v5, size);
        break;
    case MQTT_SUBACK:
        rc = suback_size(&pkt->u.suback, v5, size);
        break;
    case MQTT_PINGREQ:
    case MQTT_PINGRESP:
        break;
    case MQTT_DISCONNECT:
        if (v5)
            rc = reason_tail_size(pkt->type, pkt->u.disconnect.reason_code,
                                  &pkt->u.disconnect.props, size);
        break;
    case MQTT_AUTH:
        if (!v5)
            return MQTT_ERR_INVALID_ARGUMENT; /* reserved in 3.1.1 */
        rc = reason_tail_size(pkt->type, pkt->u.auth.reason_code, &pkt->u.auth.props, size);
        break;
    default:
        return MQTT_ERR_INVALID_ARGUMENT;
    }
    if (rc == MQTT_OK && *size > MQTT_MAX_REMAINING_LENGTH)
        rc = MQTT_ERR_INVALID_ARGUMENT;
    return rc;
}

size_t mqtt_encoded_size(const struct mqtt_packet *pkt)
{
    size_t body = 0;
    if (body_size(pkt, &body) != MQTT_OK)
        return 0;
    return 1 + vbi_size(body) + body;
}

/* PUBLISH flags: DUP(3) QoS(2-1) RETAIN(0) [3.3.1]. */
static uint8_t publish_flags(const struct mqtt_publish *p)
{
    return (uint8_t)((p->dup ? 0x08u : 0) | (p->qos << 1) | (p->retain ? 0x01u : 0));
}

/* Byte 0: type and flags [MQTT-2.2.1] [MQTT-2.2.2-1]. */
static uint8_t header_byte(const struct mqtt_packet *pkt)
{
    uint8_t flags = 0;
    switch (pkt->type) {
    case MQTT_PUBLISH:
        flags = publish_flags(&pkt->u.publish);
        break;
    case MQTT_PUBREL:
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        flags = 0x02u; /* [MQTT-3.6.1-1] [MQTT-3.8.1-1] [MQTT-3.10.1-1] */
        break;
    default:
        break;
    }
    return (uint8_t)(pkt->type << 4) | flags;
}

static uint8_t connect_flags(const struct mqtt_connect *c)
{
    uint8_t f = 0;
    f |= c->has_username ? 0x80u : 0;
    f |= c->has_password ? 0x40u : 0;
    f |= c->will_retain ? 0x20u : 0;
    f |= (uint8_t)(c->will_qos << 3);
    f |= c->has_will ? 0x04u : 0;
    f |= c->clean_session ? 0x02u : 0;
    return f; /* bit 0 reserved, 0 [MQTT-3.1.2-3] */
}

static void write_connect(struct writer *w, const struct mqtt_connect *c)
{
    bool v5 = c->protocol_level == MQTT_PROTOCOL_V5;
    put_field(w, c->protocol_name);
    put_u8(w, c->protocol_level);
    put_u8(w, connect_flags(c));
    put_u16(w, c->keepalive_s);
    if (v5)
        mqtt_props_write(w, &c->props, MQTT_CONNECT);
    put_field(w, c->client_id);
    if (c->has_will) {
        if (v5)
            mqtt_props_write(w, &c->will_props, MQTT_PROPS_WILL);
        put_field(w, c->will_topic);
        put_field(w, c->will_payload);
    }
    if (c->has_username)
        put_field(w, c->username);
    if (c->has_password)
        put_field(w, c->password);
}

static void write_subscribe(struct writer *w, uint8_t type, bool v5, const struct mqtt_subscribe *s)
{
    put_u16(w, s->packet_id);
    if (v5)
        mqtt_props_write(w, &s->props, type);
    if (s->entries == NULL) {
        put_raw(w, s->raw);
        return;
    }
    for (size_t i = 0; i < s->count; i++) {
        put_field(w, s->entries[i].filter);
        if (type == MQTT_SUBSCRIBE)
            put_u8(w, entry_options(s, i));
    }
}

/* The tail reason_tail_size() sized: nothing, the reason, or reason and properties. */
static void write_reason_tail(struct writer *w, uint8_t type, uint8_t code,
                              const struct mqtt_properties *props)
{
    size_t block = 0;
    (void)mqtt_props_size(props, type, &block); /* checked by reason_tail_size() */
    bool no_props = block == 1;
    if (code == MQTT_RC_SUCCESS && no_props)
        return;
    put_u8(w, code);
    if (!no_props || type == MQTT_AUTH)
        mqtt_props_write(w, props, type);
}

static void write_ack(struct writer *w, uint8_t type, bool v5, const struct mqtt_ack *a)
{
    put_u16(w, a->packet_id);
    if (!v5)
        return;
    if (type == MQTT_UNSUBACK) {
        mqtt_props_write(w, &a->props, type);
        put_raw(w, a->reason_codes);
        return;
    }
    write_reason_tail(w, type, a->reason_code, &a->props);
}

static void write_publish(struct writer *w, bool v5, const struct mqtt_publish *p)
{
    put_field(w, p->topic);
    if (p->qos > 0)
        put_u16(w, p->packet_id);
    if (v5)
        mqtt_props_write(w, &p->props, MQTT_PUBLISH);
}

/* Writes the body of a packet body_size() accepted. */
static void write_body(struct writer *w, const struct mqtt_packet *pkt)
{
    bool v5 = is_v5(pkt);
    switch (pkt->type) {
    case MQTT_CONNECT:
        write_connect(w, &pkt->u.connect);
        break;
    case MQTT_CONNACK:
        put_u8(w, pkt->u.connack.session_present ? 0x01u : 0);
        put_u8(w, pkt->u.connack.return_code);
        if (v5)
            mqtt_props_write(w, &pkt->u.connack.props, MQTT_CONNACK);
        break;
    case MQTT_PUBLISH:
        write_publish(w, v5, &pkt->u.publish);
        put_raw(w, pkt->u.publish.payload);
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
    case MQTT_UNSUBACK:
        write_ack(w, pkt->type, v5, &pkt->u.ack);
        break;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        write_subscribe(w, pkt->type, v5, &pkt->u.subscribe);
        break;
    case MQTT_SUBACK:
        put_u16(w, pkt->u.suback.packet_id);
        if (v5)
            mqtt_props_write(w, &pkt->u.suback.props, MQTT_SUBACK);
        put_raw(w, pkt->u.suback.return_codes);
        break;
    case MQTT_DISCONNECT:
        if (v5)
            write_reason_tail(w, pkt->type, pkt->u.disconnect.reason_code,
                              &pkt->u.disconnect.props);
        break;
    case MQTT_AUTH:
        write_reason_tail(w, pkt->type, pkt->u.auth.reason_code, &pkt->u.auth.props);
        break;
    default:
        break; /* PINGREQ, PINGRESP: no body */
    }
}

int mqtt_encode(const struct mqtt_packet *pkt, uint8_t *buf, size_t cap, size_t *written)
{
    size_t body = 0;
    int rc = body_size(pkt, &body);
    if (rc != MQTT_OK)
        return rc;
    size_t total = 1 + vbi_size(body) + body;
    if (cap < total)
        return MQTT_ERR_BUFFER_TOO_SMALL;

    struct writer w = {buf};
    put_u8(&w, header_byte(pkt));
    put_vbi(&w, (uint32_t)body);
    write_body(&w, pkt);
    *written = (size_t)(w.pos - buf);
    return MQTT_OK;
}

/* Remaining Length and header length of a PUBLISH, range-checked. */
static int publish_header_len(const struct mqtt_publish *pub, bool v5, size_t *body,
                              size_t *header_len)
{
    *body = 0;
    int rc = publish_size(pub, v5, body);
    if (rc == MQTT_OK && *body > MQTT_MAX_REMAINING_LENGTH)
        rc = MQTT_ERR_INVALID_ARGUMENT;
    if (rc == MQTT_OK)
        *header_len = 1 + vbi_size(*body) + *body - pub->payload.len;
    return rc;
}

size_t mqtt_publish_header_size(const struct mqtt_publish *pub, uint8_t protocol_level)
{
    size_t body = 0, header_len = 0;
    bool v5 = protocol_level == MQTT_PROTOCOL_V5;
    return publish_header_len(pub, v5, &body, &header_len) == MQTT_OK ? header_len : 0;
}

int mqtt_encode_publish_header_for(const struct mqtt_publish *pub, uint8_t protocol_level,
                                   uint8_t *buf, size_t cap, size_t *written)
{
    bool v5 = protocol_level == MQTT_PROTOCOL_V5;
    size_t body = 0, header_len = 0;
    int rc = publish_header_len(pub, v5, &body, &header_len);
    if (rc != MQTT_OK)
        return rc;
    if (cap < header_len)
        return MQTT_ERR_BUFFER_TOO_SMALL;

    struct writer w = {buf};
    put_u8(&w,
           (uint8_t)(MQTT_PUBLISH << 4) | publish_flags(pub)); /* per delivery: no packet copy */
    put_vbi(&w, (uint32_t)body);
    write_publish(&w, v5, pub);
    *written = (size_t)(w.pos - buf);
    return MQTT_OK;
}

int mqtt_encode_publish_header(const struct mqtt_publish *pub, uint8_t *buf, size_t cap,
                               size_t *written)
{
    return mqtt_encode_publish_header_for(pub, MQTT_PROTOCOL_V311, buf, cap, written);
}

/* The properties of *pkt that the spec lets a sender drop to respect the
 * receiver's Maximum Packet Size, or NULL for packets where it does not. */
static struct mqtt_properties *droppable_props(struct mqtt_packet *pkt)
{
    switch (pkt->type) {
    case MQTT_CONNACK:
        return &pkt->u.connack.props; /* [MQTT-3.2.2-19] [MQTT-3.2.2-20] */
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
    case MQTT_UNSUBACK:
        return &pkt->u.ack.props; /* [MQTT-3.4.2-2] [MQTT-3.4.2-3] and the like */
    case MQTT_SUBACK:
        return &pkt->u.suback.props; /* [MQTT-3.9.2-1] [MQTT-3.9.2-2] */
    case MQTT_DISCONNECT:
        return &pkt->u.disconnect.props; /* [MQTT-3.14.2-3] [MQTT-3.14.2-4] */
    case MQTT_AUTH:
        return &pkt->u.auth.props; /* [MQTT-3.15.2-2] [MQTT-3.15.2-3] */
    default:
        return NULL;
    }
}

int mqtt_fit_packet(struct mqtt_packet *pkt, size_t max_packet_size, size_t *size)
{
    *size = mqtt_encoded_size(pkt);
    if (*size == 0)
        return MQTT_ERR_INVALID_ARGUMENT;
    struct mqtt_properties *props = is_v5(pkt) ? droppable_props(pkt) : NULL;
    if (max_packet_size != 0 && *size > max_packet_size && props != NULL && props->raw.len == 0) {
        props->present &= ~MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
        *size = mqtt_encoded_size(pkt);
        if (*size > max_packet_size) {
            props->present &= ~MQTT_PROP_BIT(MQTT_PROP_USER_PROPERTY);
            props->user_property_count = 0;
            props->user_properties = NULL;
            *size = mqtt_encoded_size(pkt);
        }
    }
    return max_packet_size == 0 || *size <= max_packet_size ? MQTT_OK : MQTT_ERR_TOO_LARGE;
}
