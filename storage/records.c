/*
 * records.c - encoders and decoders of the stored values (sessions, messages,
 * queue entries, retained messages). Fixed-size big-endian headers followed by
 * the variable parts, so solctl on any host reads what the broker wrote.
 * Decoders check every length before using it: a store file is input too.
 * Not for: keys (keys.c) or LMDB calls.
 */
#include "store_internal.h"

#include <string.h>

#define SESSION_VERSION 1u
#define SF_CLEAN        0x01u
#define SF_HAS_WILL     0x02u
#define SF_WILL_RETAIN  0x04u
#define MF_RETAIN       0x01u

bool store_qos_valid(uint8_t qos)
{
    return qos <= 2;
}

/* session: version u8, flags u8, protocol level u8, will qos u8, last seen
 * u64, expiry u32, next packet id u16, will topic len u32, will payload len
 * u32, will topic, will payload */
size_t store_session_len(const struct store_session *s)
{
    size_t len = SESSION_HDR_LEN;
    if (s->has_will)
        len += s->will_topic.len + s->will_payload.len;
    return len;
}

void store_session_encode(uint8_t *out, const struct store_session *s)
{
    uint8_t flags = (s->clean_session ? SF_CLEAN : 0) | (s->has_will ? SF_HAS_WILL : 0) |
                    (s->has_will && s->will_retain ? SF_WILL_RETAIN : 0);
    size_t tlen = s->has_will ? s->will_topic.len : 0;
    size_t plen = s->has_will ? s->will_payload.len : 0;
    out[0] = SESSION_VERSION;
    out[1] = flags;
    out[2] = s->protocol_level;
    out[3] = s->has_will ? s->will_qos : 0;
    store_put_u64(out + 4, s->last_seen_s);
    store_put_u32(out + 12, s->expiry_s);
    store_put_u16(out + 16, s->next_packet_id);
    store_put_u32(out + 18, (uint32_t)tlen);
    store_put_u32(out + 22, (uint32_t)plen);
    if (tlen > 0)
        memcpy(out + SESSION_HDR_LEN, s->will_topic.data, tlen);
    if (plen > 0)
        memcpy(out + SESSION_HDR_LEN + tlen, s->will_payload.data, plen);
}

bool store_session_decode(const uint8_t *p, size_t len, struct store_session *s)
{
    if (len < SESSION_HDR_LEN || p[0] != SESSION_VERSION)
        return false;
    size_t tlen = store_get_u32(p + 18);
    size_t plen = store_get_u32(p + 22);
    if (tlen > len - SESSION_HDR_LEN || plen != len - SESSION_HDR_LEN - tlen)
        return false;
    memset(s, 0, sizeof(*s));
    s->clean_session = (p[1] & SF_CLEAN) != 0;
    s->has_will = (p[1] & SF_HAS_WILL) != 0;
    s->will_retain = (p[1] & SF_WILL_RETAIN) != 0;
    s->protocol_level = p[2];
    s->will_qos = p[3];
    s->last_seen_s = store_get_u64(p + 4);
    s->expiry_s = store_get_u32(p + 12);
    s->next_packet_id = store_get_u16(p + 16);
    s->will_topic = (struct store_bytes){p + SESSION_HDR_LEN, tlen};
    s->will_payload = (struct store_bytes){p + SESSION_HDR_LEN + tlen, plen};
    return store_qos_valid(s->will_qos) && (s->has_will || tlen + plen == 0);
}

/* message: qos u8, flags u8, topic len u32, topic, payload */
size_t store_message_len(const struct store_message *m)
{
    return MESSAGE_HDR_LEN + m->topic.len + m->payload.len;
}

void store_message_encode(uint8_t *out, const struct store_message *m)
{
    out[0] = m->qos;
    out[1] = m->retain ? MF_RETAIN : 0;
    store_put_u32(out + 2, (uint32_t)m->topic.len);
    memcpy(out + MESSAGE_HDR_LEN, m->topic.data, m->topic.len);
    if (m->payload.len > 0)
        memcpy(out + MESSAGE_HDR_LEN + m->topic.len, m->payload.data, m->payload.len);
}

bool store_message_decode(const uint8_t *p, size_t len, struct store_message *m)
{
    if (len < MESSAGE_HDR_LEN || !store_qos_valid(p[0]))
        return false;
    size_t tlen = store_get_u32(p + 2);
    if (tlen == 0 || tlen > len - MESSAGE_HDR_LEN)
        return false;
    m->qos = p[0];
    m->retain = (p[1] & MF_RETAIN) != 0;
    m->topic = (struct store_bytes){p + MESSAGE_HDR_LEN, tlen};
    m->payload = (struct store_bytes){p + MESSAGE_HDR_LEN + tlen, len - MESSAGE_HDR_LEN - tlen};
    return true;
}

/* queue entry: msg id u64, qos u8, state u8, packet id u16 */
void store_queue_encode(uint8_t *out, const struct store_queue_entry *e)
{
    store_put_u64(out, e->msg_id);
    out[8] = e->qos;
    out[9] = (uint8_t)e->state;
    store_put_u16(out + 10, e->packet_id);
}

bool store_queue_decode(const uint8_t *p, size_t len, struct store_queue_entry *e)
{
    if (len != QUEUE_VAL_LEN || !store_qos_valid(p[8]) || p[9] > STORE_PUBREC_RECEIVED)
        return false;
    e->msg_id = store_get_u64(p);
    e->qos = p[8];
    e->state = (enum store_queue_state)p[9];
    e->packet_id = store_get_u16(p + 10);
    e->retain = false;
    return e->msg_id != 0;
}

/* bridge queue entry: a queue entry, then flags u8 (bit 0: retain) */
#define BF_RETAIN 0x01u

size_t store_entry_len(enum store_db db)
{
    return db == DB_BRIDGE_QUEUES ? BRIDGE_VAL_LEN : QUEUE_VAL_LEN;
}

void store_entry_encode(enum store_db db, uint8_t *out, const struct store_queue_entry *e)
{
    store_queue_encode(out, e);
    if (db == DB_BRIDGE_QUEUES)
        out[QUEUE_VAL_LEN] = e->retain ? BF_RETAIN : 0;
}

bool store_entry_decode(enum store_db db, const uint8_t *p, size_t len, struct store_queue_entry *e)
{
    if (db != DB_BRIDGE_QUEUES)
        return store_queue_decode(p, len, e);
    if (len != BRIDGE_VAL_LEN || (p[QUEUE_VAL_LEN] & ~BF_RETAIN) != 0 ||
        !store_queue_decode(p, QUEUE_VAL_LEN, e))
        return false;
    e->retain = (p[QUEUE_VAL_LEN] & BF_RETAIN) != 0;
    return true;
}

/* retained: qos u8, stored at u64, payload */
bool store_retained_decode(struct store_bytes topic, const uint8_t *p, size_t len,
                           struct store_retained *r)
{
    if (len < RETAINED_HDR_LEN || !store_qos_valid(p[0]) || len - RETAINED_HDR_LEN > UINT32_MAX)
        return false;
    r->topic = topic;
    r->qos = p[0];
    r->stored_at_s = store_get_u64(p + 1);
    r->payload = (struct store_bytes){p + RETAINED_HDR_LEN, len - RETAINED_HDR_LEN};
    r->payload_len = (uint32_t)(len - RETAINED_HDR_LEN);
    return true;
}
