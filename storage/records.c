/*
 * records.c - encoders and decoders of the stored values (sessions, messages,
 * queue entries, retained messages, subscriptions). Fixed-size big-endian
 * headers followed by the variable parts, so solctl on any host reads what
 * the broker wrote. Decoders check every length before using it: a store
 * file is input too.
 *
 * Schema 2 (MQTT 5) extends the schema 1 formats so that a record without
 * MQTT 5 content is written exactly as before, and each decoder tells the
 * two apart by itself:
 *   session   its version byte (1 or 2; the upgrade rewrites 1 as 2)
 *   message   flags bit MF_EXT: expiry deadline and properties follow the header
 *   retained  QoS byte bit RF_EXT: the same
 *   queue     longer than 12 bytes: delivery flags and Subscription Identifiers
 *   subs      5 bytes instead of 1: options byte, then Subscription Identifier
 * Not for: keys (keys.c) or LMDB calls.
 */
#include "store_internal.h"

#include <string.h>

#define SESSION_VERSION_1 1u
#define SESSION_VERSION   2u
#define SF_CLEAN          0x01u
#define SF_HAS_WILL       0x02u
#define SF_WILL_RETAIN    0x04u
#define SF_ONLINE         0x08u
#define MF_RETAIN         0x01u
#define MF_EXT            0x02u /* expiry and properties follow the header */
#define RF_EXT            0x80u /* in the retained QoS byte: as MF_EXT */
#define QF_RETAIN         0x01u /* queue delivery flags: RETAIN of this delivery */

#define SESSION_V1_HDR_LEN 26
#define MESSAGE_EXT_LEN    12 /* expiry at u64, props len u32 */
#define RETAINED_EXT_LEN   12 /* expiry at u64, props len u32 */
#define QUEUE_EXT_HDR_LEN  (QUEUE_VAL_LEN + 1)
#define SUB_VAL_LEN_V1     1
#define SUB_VAL_LEN        5

bool store_qos_valid(uint8_t qos)
{
    return qos <= 2;
}

/* ---- sessions ---- */

/* session v2: version u8, flags u8, protocol level u8, will qos u8, last
 * seen u64, expiry u32, next packet id u16, will delay u32, will at u64,
 * will props len u32, will topic len u32, will payload len u32, will props,
 * will topic, will payload. (v1: version, flags, level, will qos, last seen,
 * expiry with 0 = never, next packet id, will topic len, will payload len,
 * will topic, will payload.) */
size_t store_session_len(const struct store_session *s)
{
    size_t len = SESSION_HDR_LEN;
    if (s->has_will)
        len += s->will_props.len + s->will_topic.len + s->will_payload.len;
    return len;
}

void store_session_encode(uint8_t *out, const struct store_session *s)
{
    uint8_t flags = (s->clean_session ? SF_CLEAN : 0) | (s->has_will ? SF_HAS_WILL : 0) |
                    (s->has_will && s->will_retain ? SF_WILL_RETAIN : 0) |
                    (s->is_online ? SF_ONLINE : 0);
    size_t rlen = s->has_will ? s->will_props.len : 0;
    size_t tlen = s->has_will ? s->will_topic.len : 0;
    size_t plen = s->has_will ? s->will_payload.len : 0;
    out[0] = SESSION_VERSION;
    out[1] = flags;
    out[2] = s->protocol_level;
    out[3] = s->has_will ? s->will_qos : 0;
    store_put_u64(out + 4, s->last_seen_s);
    store_put_u32(out + 12, s->expiry_s);
    store_put_u16(out + 16, s->next_packet_id);
    store_put_u32(out + 18, s->has_will ? s->will_delay_s : 0);
    store_put_u64(out + 22, s->has_will ? s->will_at_s : 0);
    store_put_u32(out + 30, (uint32_t)rlen);
    store_put_u32(out + 34, (uint32_t)tlen);
    store_put_u32(out + 38, (uint32_t)plen);
    uint8_t *p = out + SESSION_HDR_LEN;
    if (rlen > 0)
        memcpy(p, s->will_props.data, rlen);
    if (tlen > 0)
        memcpy(p + rlen, s->will_topic.data, tlen);
    if (plen > 0)
        memcpy(p + rlen + tlen, s->will_payload.data, plen);
}

/* Splits len bytes at p into n parts of the given lengths, which must use
 * them exactly. */
static bool split_exact(const uint8_t *p, size_t len, const size_t *lens, struct store_bytes **out,
                        size_t n)
{
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        if (lens[i] > len - off)
            return false;
        *out[i] = (struct store_bytes){p + off, lens[i]};
        off += lens[i];
    }
    return off == len;
}

static void session_flags(uint8_t flags, struct store_session *s)
{
    s->clean_session = (flags & SF_CLEAN) != 0;
    s->has_will = (flags & SF_HAS_WILL) != 0;
    s->will_retain = (flags & SF_WILL_RETAIN) != 0;
    s->is_online = (flags & SF_ONLINE) != 0;
}

/* Schema 1's record: MQTT 3.1.1 only; its expiry 0 meant "never". */
static bool session_decode_v1(const uint8_t *p, size_t len, struct store_session *s)
{
    if (len < SESSION_V1_HDR_LEN)
        return false;
    memset(s, 0, sizeof(*s));
    session_flags(p[1], s);
    s->is_online = false; /* schema 1 had no such flag */
    s->protocol_level = p[2];
    s->will_qos = p[3];
    s->last_seen_s = store_get_u64(p + 4);
    s->expiry_s = store_get_u32(p + 12);
    if (s->expiry_s == 0)
        s->expiry_s = STORE_EXPIRY_NEVER;
    s->next_packet_id = store_get_u16(p + 16);
    size_t lens[2] = {store_get_u32(p + 18), store_get_u32(p + 22)};
    struct store_bytes *parts[2] = {&s->will_topic, &s->will_payload};
    if (!split_exact(p + SESSION_V1_HDR_LEN, len - SESSION_V1_HDR_LEN, lens, parts, 2))
        return false;
    return store_qos_valid(s->will_qos) && (s->has_will || lens[0] + lens[1] == 0);
}

bool store_session_decode(const uint8_t *p, size_t len, struct store_session *s)
{
    if (len >= 1 && p[0] == SESSION_VERSION_1)
        return session_decode_v1(p, len, s);
    if (len < SESSION_HDR_LEN || p[0] != SESSION_VERSION)
        return false;
    memset(s, 0, sizeof(*s));
    session_flags(p[1], s);
    s->protocol_level = p[2];
    s->will_qos = p[3];
    s->last_seen_s = store_get_u64(p + 4);
    s->expiry_s = store_get_u32(p + 12);
    s->next_packet_id = store_get_u16(p + 16);
    s->will_delay_s = store_get_u32(p + 18);
    s->will_at_s = store_get_u64(p + 22);
    size_t lens[3] = {store_get_u32(p + 30), store_get_u32(p + 34), store_get_u32(p + 38)};
    struct store_bytes *parts[3] = {&s->will_props, &s->will_topic, &s->will_payload};
    if (!split_exact(p + SESSION_HDR_LEN, len - SESSION_HDR_LEN, lens, parts, 3))
        return false;
    return store_qos_valid(s->will_qos) && (s->has_will || lens[0] + lens[1] + lens[2] == 0);
}

size_t store_session_upgrade(const uint8_t *p, size_t len, uint8_t *out)
{
    struct store_session s;
    if (len < 1 || p[0] != SESSION_VERSION_1 || !session_decode_v1(p, len, &s))
        return 0;
    if (out)
        store_session_encode(out, &s);
    return store_session_len(&s);
}

/* ---- messages ---- */

/* message: qos u8, flags u8, topic len u32, [MF_EXT: expiry at u64, props
 * len u32], topic, [props], payload */
static bool message_is_ext(const struct store_message *m)
{
    return m->props.len > 0 || m->expiry_at_s != 0;
}

size_t store_message_len(const struct store_message *m)
{
    size_t ext = message_is_ext(m) ? MESSAGE_EXT_LEN + m->props.len : 0;
    return MESSAGE_HDR_LEN + ext + m->topic.len + m->payload.len;
}

void store_message_encode(uint8_t *out, const struct store_message *m)
{
    bool is_ext = message_is_ext(m);
    out[0] = m->qos;
    out[1] = (m->retain ? MF_RETAIN : 0) | (is_ext ? MF_EXT : 0);
    store_put_u32(out + 2, (uint32_t)m->topic.len);
    uint8_t *p = out + MESSAGE_HDR_LEN;
    if (is_ext) {
        store_put_u64(p, m->expiry_at_s);
        store_put_u32(p + 8, (uint32_t)m->props.len);
        p += MESSAGE_EXT_LEN;
    }
    memcpy(p, m->topic.data, m->topic.len);
    p += m->topic.len;
    if (is_ext && m->props.len > 0) {
        memcpy(p, m->props.data, m->props.len);
        p += m->props.len;
    }
    if (m->payload.len > 0)
        memcpy(p, m->payload.data, m->payload.len);
}

size_t store_message_payload_offset(const uint8_t *p, size_t len)
{
    if (len < MESSAGE_HDR_LEN || !store_qos_valid(p[0]))
        return 0;
    size_t off = MESSAGE_HDR_LEN;
    size_t props_len = 0;
    if (p[1] & MF_EXT) {
        if (len - off < MESSAGE_EXT_LEN)
            return 0;
        props_len = store_get_u32(p + off + 8);
        off += MESSAGE_EXT_LEN;
    }
    size_t topic_len = store_get_u32(p + 2);
    if (topic_len == 0 || topic_len > len - off || props_len > len - off - topic_len)
        return 0;
    return off + topic_len + props_len;
}

bool store_message_decode(const uint8_t *p, size_t len, struct store_message *m)
{
    size_t end = store_message_payload_offset(p, len);
    if (end == 0)
        return false;
    memset(m, 0, sizeof(*m));
    m->qos = p[0];
    m->retain = (p[1] & MF_RETAIN) != 0;
    size_t off = MESSAGE_HDR_LEN;
    size_t props_len = 0;
    if (p[1] & MF_EXT) {
        m->expiry_at_s = store_get_u64(p + off);
        props_len = store_get_u32(p + off + 8);
        off += MESSAGE_EXT_LEN;
    }
    size_t topic_len = store_get_u32(p + 2);
    m->topic = (struct store_bytes){p + off, topic_len};
    m->props = (struct store_bytes){p + off + topic_len, props_len};
    m->payload = (struct store_bytes){p + end, len - end};
    return true;
}

/* ---- queue entries ---- */

/* queue entry: msg id u64, qos u8, state u8, packet id u16, [delivery flags
 * u8, Subscription Identifiers u32 each] */
size_t store_queue_len(const struct store_queue_entry *e)
{
    if (!e->retain && e->sub_id_count == 0)
        return QUEUE_VAL_LEN;
    return QUEUE_EXT_HDR_LEN + 4 * e->sub_id_count;
}

void store_queue_encode(uint8_t *out, const struct store_queue_entry *e)
{
    store_put_u64(out, e->msg_id);
    out[8] = e->qos;
    out[9] = (uint8_t)e->state;
    store_put_u16(out + 10, e->packet_id);
    if (store_queue_len(e) == QUEUE_VAL_LEN)
        return;
    out[12] = e->retain ? QF_RETAIN : 0;
    for (size_t i = 0; i < e->sub_id_count; i++)
        store_put_u32(out + QUEUE_EXT_HDR_LEN + 4 * i, store_queue_sub_id(e, i));
}

bool store_queue_decode(const uint8_t *p, size_t len, struct store_queue_entry *e)
{
    bool is_ext = len >= QUEUE_EXT_HDR_LEN && (len - QUEUE_EXT_HDR_LEN) % 4 == 0 &&
                  (len - QUEUE_EXT_HDR_LEN) / 4 <= STORE_SUB_IDS_MAX;
    if ((len != QUEUE_VAL_LEN && !is_ext) || !store_qos_valid(p[8]) || p[9] > STORE_PUBREC_RECEIVED)
        return false;
    memset(e, 0, sizeof(*e));
    e->msg_id = store_get_u64(p);
    e->qos = p[8];
    e->state = (enum store_queue_state)p[9];
    e->packet_id = store_get_u16(p + 10);
    if (is_ext) {
        e->retain = (p[12] & QF_RETAIN) != 0;
        e->sub_id_count = (len - QUEUE_EXT_HDR_LEN) / 4;
        e->sub_ids_be = p + QUEUE_EXT_HDR_LEN; /* store_queue_sub_id() reads them */
    }
    return e->msg_id != 0;
}

uint32_t store_queue_sub_id(const struct store_queue_entry *e, size_t i)
{
    return e->sub_ids ? e->sub_ids[i] : store_get_u32(e->sub_ids_be + 4 * i);
}

/* bridge queue entry (DB_BRIDGE_QUEUES): a 12-byte queue entry, then flags
 * u8 (bit 0: retain) - the layout of a client queue entry with delivery
 * flags and no Subscription Identifier, but always 13 bytes */
#define BF_RETAIN 0x01u

size_t store_entry_len(enum store_db db, const struct store_queue_entry *e)
{
    return db == DB_BRIDGE_QUEUES ? BRIDGE_VAL_LEN : store_queue_len(e);
}

void store_entry_encode(enum store_db db, uint8_t *out, const struct store_queue_entry *e)
{
    if (db != DB_BRIDGE_QUEUES)
        return store_queue_encode(out, e);
    struct store_queue_entry base = {
        .msg_id = e->msg_id, .qos = e->qos, .state = e->state, .packet_id = e->packet_id};
    store_queue_encode(out, &base);
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

/* ---- retained ---- */

/* retained: qos u8 (| RF_EXT), stored at u64, [expiry at u64, props len
 * u32, props], payload */
size_t store_retained_len(const struct store_retained *r)
{
    bool is_ext = r->props.len > 0 || r->expiry_at_s != 0;
    return RETAINED_HDR_LEN + (is_ext ? RETAINED_EXT_LEN + r->props.len : 0) + r->payload.len;
}

void store_retained_encode(uint8_t *out, const struct store_retained *r)
{
    bool is_ext = r->props.len > 0 || r->expiry_at_s != 0;
    out[0] = r->qos | (is_ext ? RF_EXT : 0);
    store_put_u64(out + 1, r->stored_at_s);
    uint8_t *p = out + RETAINED_HDR_LEN;
    if (is_ext) {
        store_put_u64(p, r->expiry_at_s);
        store_put_u32(p + 8, (uint32_t)r->props.len);
        if (r->props.len > 0)
            memcpy(p + RETAINED_EXT_LEN, r->props.data, r->props.len);
        p += RETAINED_EXT_LEN + r->props.len;
    }
    if (r->payload.len > 0)
        memcpy(p, r->payload.data, r->payload.len);
}

size_t store_retained_payload_offset(const uint8_t *p, size_t len)
{
    if (len < RETAINED_HDR_LEN || !store_qos_valid(p[0] & ~RF_EXT))
        return 0;
    if (!(p[0] & RF_EXT))
        return RETAINED_HDR_LEN;
    if (len - RETAINED_HDR_LEN < RETAINED_EXT_LEN)
        return 0;
    size_t props_len = store_get_u32(p + RETAINED_HDR_LEN + 8);
    if (props_len > len - RETAINED_HDR_LEN - RETAINED_EXT_LEN)
        return 0;
    return RETAINED_HDR_LEN + RETAINED_EXT_LEN + props_len;
}

bool store_retained_decode(struct store_bytes topic, const uint8_t *p, size_t len,
                           struct store_retained *r)
{
    size_t off = store_retained_payload_offset(p, len);
    if (off == 0 || len - off > UINT32_MAX)
        return false;
    memset(r, 0, sizeof(*r));
    r->topic = topic;
    r->qos = p[0] & ~RF_EXT;
    r->stored_at_s = store_get_u64(p + 1);
    if (p[0] & RF_EXT) {
        r->expiry_at_s = store_get_u64(p + RETAINED_HDR_LEN);
        r->props = (struct store_bytes){p + RETAINED_HDR_LEN + RETAINED_EXT_LEN,
                                        off - RETAINED_HDR_LEN - RETAINED_EXT_LEN};
    }
    r->payload = (struct store_bytes){p + off, len - off};
    r->payload_len = (uint32_t)(len - off);
    return true;
}

/* ---- subscriptions ---- */

/* subscription: options u8 (schema 1: the granted QoS, which is the same
 * byte with no other option set), [Subscription Identifier u32] */
size_t store_sub_encode(uint8_t *out, uint8_t options, uint32_t sub_id)
{
    out[0] = options;
    if (sub_id == 0)
        return SUB_VAL_LEN_V1;
    store_put_u32(out + 1, sub_id);
    return SUB_VAL_LEN;
}

bool store_sub_decode(const uint8_t *p, size_t len, uint8_t *options, uint32_t *sub_id)
{
    if ((len != SUB_VAL_LEN_V1 && len != SUB_VAL_LEN) || !store_sub_options_valid(p[0]))
        return false;
    *options = p[0];
    *sub_id = len == SUB_VAL_LEN ? store_get_u32(p + 1) : 0;
    return len == SUB_VAL_LEN_V1 || *sub_id != 0;
}

/* QoS 0-2, Retain Handling 0-2, reserved bits 6-7 clear [MQTT-3.8.3-5]. */
bool store_sub_options_valid(uint8_t options)
{
    return store_qos_valid(options & 0x03u) && ((options >> 4) & 0x03u) != 3 &&
           (options & 0xC0u) == 0;
}
