/*
 * encode.c - writing a struct mqtt_packet as MQTT 3.1.1 bytes.
 *
 * Two passes: body_size() computes and range-checks the Remaining Length,
 * then the writers fill a buffer already known to be large enough. Nothing is
 * allocated; the caller owns buf.
 * Not for: topic or UTF-8 validation (the caller's job, see mqtt.h) or
 * reading packets (frame.c, decode.c).
 */
#include "mqtt.h"

#include <string.h>

/* Length prefixes of strings and binary fields are 16 bits [MQTT-1.5.3]. */
#define FIELD_MAX_LEN 65535u

/* A cursor over an output buffer whose size was checked up front. */
struct writer {
    uint8_t *pos;
};

static void put_u8(struct writer *w, uint8_t v)
{
    *w->pos++ = v;
}

static void put_u16(struct writer *w, uint16_t v)
{
    put_u8(w, (uint8_t)(v >> 8));
    put_u8(w, (uint8_t)(v & 0xffu));
}

static void put_raw(struct writer *w, struct mqtt_bytes b)
{
    if (b.len > 0)
        memcpy(w->pos, b.data, b.len);
    w->pos += b.len;
}

static void put_field(struct writer *w, struct mqtt_bytes b)
{
    put_u16(w, (uint16_t)b.len);
    put_raw(w, b);
}

/* Adds a length-prefixed field to *size; false if it cannot be prefixed. */
static bool add_field(size_t *size, struct mqtt_bytes b)
{
    if (b.len > FIELD_MAX_LEN)
        return false;
    *size += 2 + b.len;
    return true;
}

static int connect_size(const struct mqtt_connect *c, size_t *size)
{
    if (c->will_qos > 2 || (!c->has_will && (c->will_qos != 0 || c->will_retain)))
        return MQTT_ERR_INVALID_ARGUMENT;
    if (c->has_password && !c->has_username)
        return MQTT_ERR_INVALID_ARGUMENT;
    bool ok = add_field(size, c->protocol_name);
    *size += 1 + 1 + 2; /* level, flags, keepalive */
    ok = ok && add_field(size, c->client_id);
    if (c->has_will)
        ok = ok && add_field(size, c->will_topic) && add_field(size, c->will_payload);
    if (c->has_username)
        ok = ok && add_field(size, c->username);
    if (c->has_password)
        ok = ok && add_field(size, c->password);
    return ok ? MQTT_OK : MQTT_ERR_INVALID_ARGUMENT;
}

/* Topic, packet id and payload; the payload length is checked before any sum can wrap. */
static int publish_size(const struct mqtt_publish *p, size_t *size)
{
    if (p->qos > 2 || (p->qos > 0 && p->packet_id == 0))
        return MQTT_ERR_INVALID_ARGUMENT;
    if (p->qos == 0 && p->dup)
        return MQTT_ERR_INVALID_ARGUMENT; /* [MQTT-3.3.1-2] */
    if (p->payload.len > MQTT_MAX_REMAINING_LENGTH || !add_field(size, p->topic))
        return MQTT_ERR_INVALID_ARGUMENT;
    *size += (p->qos > 0 ? 2 : 0) + p->payload.len;
    return MQTT_OK;
}

/* Entries (when given) or raw; stops summing once past the protocol maximum. */
static int subscribe_size(uint8_t type, const struct mqtt_subscribe *s, size_t *size)
{
    if (s->packet_id == 0)
        return MQTT_ERR_INVALID_ARGUMENT;
    *size += 2;
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
            if (e->qos > 2)
                return MQTT_ERR_INVALID_ARGUMENT;
            *size += 1;
        }
    }
    return MQTT_OK;
}

static int suback_size(const struct mqtt_suback *s, size_t *size)
{
    if (s->packet_id == 0 || s->return_codes.len == 0 ||
        s->return_codes.len > MQTT_MAX_REMAINING_LENGTH)
        return MQTT_ERR_INVALID_ARGUMENT;
    for (size_t i = 0; i < s->return_codes.len; i++) {
        uint8_t code = s->return_codes.data[i];
        if (code > 2 && code != MQTT_SUBACK_FAILURE)
            return MQTT_ERR_INVALID_ARGUMENT; /* [MQTT-3.9.3-2] */
    }
    *size = 2 + s->return_codes.len;
    return MQTT_OK;
}

/* Remaining Length of *pkt, range-checked. */
static int body_size(const struct mqtt_packet *pkt, size_t *size)
{
    int rc = MQTT_OK;
    *size = 0;
    switch (pkt->type) {
    case MQTT_CONNECT:
        rc = connect_size(&pkt->u.connect, size);
        break;
    case MQTT_CONNACK:
        *size = 2;
        break;
    case MQTT_PUBLISH:
        rc = publish_size(&pkt->u.publish, size);
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
    case MQTT_UNSUBACK:
        rc = pkt->u.ack.packet_id != 0 ? MQTT_OK : MQTT_ERR_INVALID_ARGUMENT;
        *size = 2;
        break;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        rc = subscribe_size(pkt->type, &pkt->u.subscribe, size);
        break;
    case MQTT_SUBACK:
        rc = suback_size(&pkt->u.suback, size);
        break;
    case MQTT_PINGREQ:
    case MQTT_PINGRESP:
    case MQTT_DISCONNECT:
        break;
    default:
        return MQTT_ERR_INVALID_ARGUMENT;
    }
    if (rc == MQTT_OK && *size > MQTT_MAX_REMAINING_LENGTH)
        rc = MQTT_ERR_INVALID_ARGUMENT;
    return rc;
}

/* Bytes a Remaining Length of `value` (already range-checked) takes. */
static size_t remaining_length_bytes(size_t value)
{
    if (value < 128u)
        return 1;
    if (value < 16384u)
        return 2;
    if (value < 2097152u)
        return 3;
    return 4;
}

size_t mqtt_encoded_size(const struct mqtt_packet *pkt)
{
    size_t body = 0;
    if (body_size(pkt, &body) != MQTT_OK)
        return 0;
    return 1 + remaining_length_bytes(body) + body;
}

/* Byte 0: type and flags [MQTT-2.2.1] [MQTT-2.2.2-1]. */
static uint8_t header_byte(const struct mqtt_packet *pkt)
{
    uint8_t flags = 0;
    switch (pkt->type) {
    case MQTT_PUBLISH:
        flags = (uint8_t)((pkt->u.publish.dup ? 0x08u : 0) | (pkt->u.publish.qos << 1) |
                          (pkt->u.publish.retain ? 0x01u : 0));
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
    put_field(w, c->protocol_name);
    put_u8(w, c->protocol_level);
    put_u8(w, connect_flags(c));
    put_u16(w, c->keepalive_s);
    put_field(w, c->client_id);
    if (c->has_will) {
        put_field(w, c->will_topic);
        put_field(w, c->will_payload);
    }
    if (c->has_username)
        put_field(w, c->username);
    if (c->has_password)
        put_field(w, c->password);
}

static void write_subscribe(struct writer *w, uint8_t type, const struct mqtt_subscribe *s)
{
    put_u16(w, s->packet_id);
    if (s->entries == NULL) {
        put_raw(w, s->raw);
        return;
    }
    for (size_t i = 0; i < s->count; i++) {
        put_field(w, s->entries[i].filter);
        if (type == MQTT_SUBSCRIBE)
            put_u8(w, s->entries[i].qos);
    }
}

/* Writes the body of a packet body_size() accepted. */
static void write_body(struct writer *w, const struct mqtt_packet *pkt)
{
    switch (pkt->type) {
    case MQTT_CONNECT:
        write_connect(w, &pkt->u.connect);
        break;
    case MQTT_CONNACK:
        put_u8(w, pkt->u.connack.session_present ? 0x01u : 0);
        put_u8(w, pkt->u.connack.return_code);
        break;
    case MQTT_PUBLISH:
        put_field(w, pkt->u.publish.topic);
        if (pkt->u.publish.qos > 0)
            put_u16(w, pkt->u.publish.packet_id);
        put_raw(w, pkt->u.publish.payload);
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
    case MQTT_UNSUBACK:
        put_u16(w, pkt->u.ack.packet_id);
        break;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        write_subscribe(w, pkt->type, &pkt->u.subscribe);
        break;
    case MQTT_SUBACK:
        put_u16(w, pkt->u.suback.packet_id);
        put_raw(w, pkt->u.suback.return_codes);
        break;
    default:
        break; /* PINGREQ, PINGRESP, DISCONNECT: no body */
    }
}

int mqtt_encode(const struct mqtt_packet *pkt, uint8_t *buf, size_t cap, size_t *written)
{
    size_t body = 0;
    int rc = body_size(pkt, &body);
    if (rc != MQTT_OK)
        return rc;
    size_t total = 1 + remaining_length_bytes(body) + body;
    if (cap < total)
        return MQTT_ERR_BUFFER_TOO_SMALL;

    struct writer w = {buf};
    put_u8(&w, header_byte(pkt));
    w.pos += mqtt_encode_remaining_length((uint32_t)body, w.pos);
    write_body(&w, pkt);
    *written = (size_t)(w.pos - buf);
    return MQTT_OK;
}

int mqtt_encode_publish_header(const struct mqtt_publish *pub, uint8_t *buf, size_t cap,
                               size_t *written)
{
    struct mqtt_packet pkt = {.type = MQTT_PUBLISH, .u.publish = *pub};
    size_t body = 0;
    int rc = publish_size(pub, &body);
    if (rc == MQTT_OK && body > MQTT_MAX_REMAINING_LENGTH)
        rc = MQTT_ERR_INVALID_ARGUMENT;
    if (rc != MQTT_OK)
        return rc;
    size_t header_len = 1 + remaining_length_bytes(body) + body - pub->payload.len;
    if (cap < header_len)
        return MQTT_ERR_BUFFER_TOO_SMALL;

    struct writer w = {buf};
    put_u8(&w, header_byte(&pkt));
    w.pos += mqtt_encode_remaining_length((uint32_t)body, w.pos);
    put_field(&w, pub->topic);
    if (pub->qos > 0)
        put_u16(&w, pub->packet_id);
    *written = (size_t)(w.pos - buf);
    return MQTT_OK;
}
