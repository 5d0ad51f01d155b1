/*
 * test_mqtt_v5.c - the MQTT 5.0 codec: every property on every packet (allowed,
 * refused, repeated, out of range, round trip through the fields), every
 * reason code on every packet that carries one, the short forms, AUTH, the
 * spec's examples, and the helpers (Maximum Packet Size, property copy,
 * PUBLISH header with properties).
 *
 * Packets are built here from the spec's wire layout, independently of the
 * encoder. Not for: the 3.1.1 codec (test_mqtt_decode.c, test_mqtt_encode.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mqtt.h"
#include "mqtt_topic.h"

#define V5 MQTT_PROTOCOL_V5
/* Pseudo packet kind for a will's properties, as in the codec. */
#define KIND_WILL 0

/* ---- building packets ---------------------------------------------------- */

struct buf {
    uint8_t b[512];
    size_t n;
};

static void put(struct buf *b, const void *data, size_t len)
{
    assert_true(b->n + len <= sizeof(b->b));
    memcpy(b->b + b->n, data, len);
    b->n += len;
}

static void put1(struct buf *b, uint8_t v)
{
    put(b, &v, 1);
}

static void put_vbi(struct buf *b, uint32_t v)
{
    do {
        uint8_t byte = v % 128;
        v /= 128;
        put1(b, (uint8_t)(byte | (v ? 0x80 : 0)));
    } while (v);
}

static void put_str(struct buf *b, const char *s)
{
    size_t n = strlen(s);
    put1(b, (uint8_t)(n >> 8));
    put1(b, (uint8_t)n);
    put(b, s, n);
}

/* A property block with its length prefix. */
static void put_block(struct buf *b, const struct buf *props)
{
    put_vbi(b, (uint32_t)props->n);
    put(b, props->b, props->n);
}

/* Wraps a body in a fixed header. */
static struct buf packet(uint8_t type, uint8_t flags, const struct buf *body)
{
    struct buf p = {.n = 0};
    put1(&p, (uint8_t)(type << 4 | flags));
    put_vbi(&p, (uint32_t)body->n);
    put(&p, body->b, body->n);
    return p;
}

static uint8_t flags_of(uint8_t type)
{
    return type == MQTT_PUBREL || type == MQTT_SUBSCRIBE || type == MQTT_UNSUBSCRIBE ? 2 : 0;
}

/*
 * A minimal valid v5 packet of `kind` whose (only) property block is props;
 * for KIND_WILL a CONNECT whose will carries it. code is the reason code,
 * where the packet has one.
 */
static struct buf packet_with(uint8_t kind, const struct buf *props, uint8_t code)
{
    struct buf body = {.n = 0}, none = {.n = 0};
    switch (kind) {
    case MQTT_CONNECT:
    case KIND_WILL:
        put_str(&body, "MQTT");
        put1(&body, 5);
        put1(&body, kind == KIND_WILL ? 0x06 : 0x02);
        put(&body, "\x00\x3c", 2);
        put_block(&body, kind == KIND_WILL ? &none : props);
        put_str(&body, "c");
        if (kind == KIND_WILL) {
            put_block(&body, props);
            put_str(&body, "w");
            put_str(&body, "");
        }
        return packet(MQTT_CONNECT, 0, &body);
    case MQTT_CONNACK:
        put1(&body, 0);
        put1(&body, code);
        put_block(&body, props);
        break;
    case MQTT_PUBLISH:
        put_str(&body, "t");
        put(&body, "\x00\x01", 2);
        put_block(&body, props);
        put(&body, "x", 1);
        return packet(kind, 0x2, &body); /* QoS 1 */
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        put(&body, "\x00\x01", 2);
        put1(&body, code);
        put_block(&body, props);
        break;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        put(&body, "\x00\x01", 2);
        put_block(&body, props);
        put_str(&body, "t");
        if (kind == MQTT_SUBSCRIBE)
            put1(&body, 0);
        break;
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        put(&body, "\x00\x01", 2);
        put_block(&body, props);
        put1(&body, code);
        break;
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        put1(&body, code);
        put_block(&body, props);
        break;
    default:
        fail();
    }
    return packet(kind == KIND_WILL ? MQTT_CONNECT : kind, flags_of(kind), &body);
}

/* Frames buf (exactly one packet) and decodes it at level 5. */
static int decode5(const struct buf *p, struct mqtt_packet *pkt)
{
    struct mqtt_frame frame;
    int rc = mqtt_frame_for(p->b, p->n, 0, V5, &frame);
    if (rc != MQTT_OK)
        return rc;
    assert_int_equal(frame.total_len, p->n);
    return mqtt_decode_for(&frame, V5, pkt);
}

static struct buf from(const void *bytes, size_t n)
{
    struct buf b = {.n = 0};
    put(&b, bytes, n);
    return b;
}

#define FROM(arr) from((arr), sizeof(arr))

/* Encodes pkt and checks the bytes equal want. */
static void assert_encodes_to(const struct mqtt_packet *pkt, const struct buf *want)
{
    uint8_t out[600];
    size_t n = 0;
    assert_int_equal(mqtt_encoded_size(pkt), want->n);
    assert_int_equal(mqtt_encode(pkt, out, sizeof(out), &n), MQTT_OK);
    assert_int_equal(n, want->n);
    assert_memory_equal(out, want->b, n);
}

/* Decode then encode gives the same bytes. */
static void assert_round_trip(const struct buf *p)
{
    struct mqtt_packet pkt;
    assert_int_equal(decode5(p, &pkt), MQTT_OK);
    assert_int_equal(pkt.protocol_level, V5);
    assert_encodes_to(&pkt, p);
}

/* The properties of a decoded packet of `kind`. */
static struct mqtt_properties *props_of(struct mqtt_packet *pkt, uint8_t kind)
{
    switch (kind) {
    case KIND_WILL:
        return &pkt->u.connect.will_props;
    case MQTT_CONNECT:
        return &pkt->u.connect.props;
    case MQTT_CONNACK:
        return &pkt->u.connack.props;
    case MQTT_PUBLISH:
        return &pkt->u.publish.props;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        return &pkt->u.subscribe.props;
    case MQTT_SUBACK:
        return &pkt->u.suback.props;
    case MQTT_DISCONNECT:
        return &pkt->u.disconnect.props;
    case MQTT_AUTH:
        return &pkt->u.auth.props;
    default:
        return &pkt->u.ack.props;
    }
}

/* ---- the property table, written from the spec (2.2.2.2) ----------------- */

enum ptype { T_BYTE, T_U16, T_U32, T_VBI, T_UTF8, T_BIN, T_PAIR };

struct prop_spec {
    uint8_t id;
    enum ptype type;
    const uint8_t *kinds; /* the packets it may appear on (KIND_WILL is 0: counted) */
    size_t nkinds;
};

#define KINDS(...) (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})

static const struct prop_spec PROPS[] = {
    {0x01, T_BYTE, KINDS(MQTT_PUBLISH, KIND_WILL)},
    {0x02, T_U32, KINDS(MQTT_PUBLISH, KIND_WILL)},
    {0x03, T_UTF8, KINDS(MQTT_PUBLISH, KIND_WILL)},
    {0x08, T_UTF8, KINDS(MQTT_PUBLISH, KIND_WILL)},
    {0x09, T_BIN, KINDS(MQTT_PUBLISH, KIND_WILL)},
    {0x0B, T_VBI, KINDS(MQTT_PUBLISH, MQTT_SUBSCRIBE)},
    {0x11, T_U32, KINDS(MQTT_CONNECT, MQTT_CONNACK, MQTT_DISCONNECT)},
    {0x12, T_UTF8, KINDS(MQTT_CONNACK)},
    {0x13, T_U16, KINDS(MQTT_CONNACK)},
    {0x15, T_UTF8, KINDS(MQTT_CONNECT, MQTT_CONNACK, MQTT_AUTH)},
    {0x16, T_BIN, KINDS(MQTT_CONNECT, MQTT_CONNACK, MQTT_AUTH)},
    {0x17, T_BYTE, KINDS(MQTT_CONNECT)},
    {0x18, T_U32, KINDS(KIND_WILL)},
    {0x19, T_BYTE, KINDS(MQTT_CONNECT)},
    {0x1A, T_UTF8, KINDS(MQTT_CONNACK)},
    {0x1C, T_UTF8, KINDS(MQTT_CONNACK, MQTT_DISCONNECT)},
    {0x1F, T_UTF8,
     KINDS(MQTT_CONNACK, MQTT_PUBACK, MQTT_PUBREC, MQTT_PUBREL, MQTT_PUBCOMP, MQTT_SUBACK,
           MQTT_UNSUBACK, MQTT_DISCONNECT, MQTT_AUTH)},
    {0x21, T_U16, KINDS(MQTT_CONNECT, MQTT_CONNACK)},
    {0x22, T_U16, KINDS(MQTT_CONNECT, MQTT_CONNACK)},
    {0x23, T_U16, KINDS(MQTT_PUBLISH)},
    {0x24, T_BYTE, KINDS(MQTT_CONNACK)},
    {0x25, T_BYTE, KINDS(MQTT_CONNACK)},
    {0x26, T_PAIR,
     KINDS(MQTT_CONNECT, MQTT_CONNACK, MQTT_PUBLISH, KIND_WILL, MQTT_PUBACK, MQTT_PUBREC,
           MQTT_PUBREL, MQTT_PUBCOMP, MQTT_SUBSCRIBE, MQTT_SUBACK, MQTT_UNSUBSCRIBE, MQTT_UNSUBACK,
           MQTT_DISCONNECT, MQTT_AUTH)},
    {0x27, T_U32, KINDS(MQTT_CONNECT, MQTT_CONNACK)},
    {0x28, T_BYTE, KINDS(MQTT_CONNACK)},
    {0x29, T_BYTE, KINDS(MQTT_CONNACK)},
    {0x2A, T_BYTE, KINDS(MQTT_CONNACK)},
};
#define NPROPS (sizeof(PROPS) / sizeof(PROPS[0]))

/* Every packet kind that has properties. */
static const uint8_t ALL_KINDS[] = {MQTT_CONNECT,    KIND_WILL,   MQTT_CONNACK,     MQTT_PUBLISH,
                                    MQTT_PUBACK,     MQTT_PUBREC, MQTT_PUBREL,      MQTT_PUBCOMP,
                                    MQTT_SUBSCRIBE,  MQTT_SUBACK, MQTT_UNSUBSCRIBE, MQTT_UNSUBACK,
                                    MQTT_DISCONNECT, MQTT_AUTH};

static bool allowed(const struct prop_spec *p, uint8_t kind)
{
    for (size_t i = 0; i < p->nkinds; i++) {
        if (p->kinds[i] == kind)
            return true;
    }
    return false;
}

/* One property with a valid sample value; the numeric value is returned. */
static uint32_t put_sample(struct buf *b, const struct prop_spec *p)
{
    put_vbi(b, p->id);
    switch (p->type) {
    case T_BYTE:
        put1(b, 1);
        return 1;
    case T_U16:
        put(b, "\x12\x34", 2);
        return 0x1234;
    case T_U32:
        put(b, "\x01\x02\x03\x04", 4);
        return 0x01020304;
    case T_VBI:
        put_vbi(b, 300);
        return 300;
    case T_UTF8:
        put_str(b, "a/b");
        return 0;
    case T_BIN:
        put(b, "\x00\x02\x00\xff", 4);
        return 0;
    case T_PAIR:
        put_str(b, "k");
        put_str(b, "v");
        return 0;
    }
    return 0;
}

/* Authentication Data needs Authentication Method [3.1.2.11.10]: tests of 0x16 add one. */
static void put_prerequisite(struct buf *b, const struct prop_spec *p)
{
    if (p->id == MQTT_PROP_AUTHENTICATION_DATA) {
        put1(b, MQTT_PROP_AUTHENTICATION_METHOD);
        put_str(b, "m");
    }
}

static bool is_repeatable(const struct prop_spec *p, uint8_t kind)
{
    return p->id == 0x26 || (p->id == 0x0B && kind == MQTT_PUBLISH);
}

/* [2.2.2.2]: each property decodes on the packets of its row and is a
 * Malformed Packet on every other, with the value in its field. */
static void test_v5_every_property_on_every_packet_2_2_2_2(void **state)
{
    (void)state;
    for (size_t i = 0; i < NPROPS; i++) {
        const struct prop_spec *p = &PROPS[i];
        for (size_t k = 0; k < sizeof(ALL_KINDS); k++) {
            uint8_t kind = ALL_KINDS[k];
            struct buf props = {.n = 0};
            put_prerequisite(&props, p);
            uint32_t value = put_sample(&props, p);
            struct buf pk = packet_with(kind, &props, 0);
            struct mqtt_packet pkt;
            int rc = decode5(&pk, &pkt);
            if (!allowed(p, kind)) {
                assert_int_equal(rc, MQTT_ERR_PROPERTY);
                continue;
            }
            assert_int_equal(rc, MQTT_OK);
            const struct mqtt_properties *d = props_of(&pkt, kind);
            assert_true(mqtt_properties_has(d, p->id));
            assert_int_equal(d->raw.len, props.n);
            struct mqtt_property_iter it;
            struct mqtt_property got;
            mqtt_property_iter_init(&it, d);
            if (p->id == MQTT_PROP_AUTHENTICATION_DATA)
                assert_true(mqtt_property_iter_next(&it, &got));
            assert_true(mqtt_property_iter_next(&it, &got));
            assert_int_equal(got.id, p->id);
            assert_int_equal(got.value, value);
            assert_false(mqtt_property_iter_next(&it, &got));
            assert_round_trip(&pk);
        }
    }
}

/* A property that may appear once, twice: Protocol Error (each property's
 * "It is a Protocol Error to include ... more than once"). User Property
 * repeats anywhere, Subscription Identifier in PUBLISH. */
static void test_v5_every_property_twice_is_protocol_error(void **state)
{
    (void)state;
    for (size_t i = 0; i < NPROPS; i++) {
        const struct prop_spec *p = &PROPS[i];
        for (size_t k = 0; k < p->nkinds; k++) {
            uint8_t kind = p->kinds[k];
            struct buf props = {.n = 0};
            put_prerequisite(&props, p);
            put_sample(&props, p);
            put_sample(&props, p);
            struct buf pk = packet_with(kind, &props, 0);
            struct mqtt_packet pkt;
            int rc = decode5(&pk, &pkt);
            if (is_repeatable(p, kind)) {
                assert_int_equal(rc, MQTT_OK);
                assert_round_trip(&pk);
            } else {
                assert_int_equal(rc, MQTT_ERR_PROPERTY_REPEATED);
                assert_int_equal(mqtt_reason_for_error(rc), MQTT_RC_PROTOCOL_ERROR);
            }
        }
    }
}

/* Decoded fields, re-encoded without raw, give the same bytes: the field
 * encoder mirrors the decoder for every single-valued property. */
static void test_v5_every_property_encodes_from_fields(void **state)
{
    (void)state;
    for (size_t i = 0; i < NPROPS; i++) {
        const struct prop_spec *p = &PROPS[i];
        if (p->type == T_PAIR || p->type == T_VBI || p->id == MQTT_PROP_AUTHENTICATION_METHOD)
            continue; /* lists: own tests; method: written before data by id order */
        for (size_t k = 0; k < p->nkinds; k++) {
            struct buf props = {.n = 0};
            put_prerequisite(&props, p);
            put_sample(&props, p);
            struct buf pk = packet_with(p->kinds[k], &props, 0);
            struct mqtt_packet pkt;
            assert_int_equal(decode5(&pk, &pkt), MQTT_OK);
            props_of(&pkt, p->kinds[k])->raw = (struct mqtt_bytes){NULL, 0};
            assert_encodes_to(&pkt, &pk);
        }
    }
}

/* The identifier is unknown: 0, ids the table skips, a 2-byte identifier. */
static void test_v5_unknown_property_identifier_is_malformed(void **state)
{
    (void)state;
    static const uint8_t unknown[] = {0x00, 0x04, 0x0A, 0x14, 0x1B, 0x1E, 0x20, 0x2B, 0x7F};
    for (size_t i = 0; i < sizeof(unknown); i++) {
        struct buf props = {.n = 0};
        put1(&props, unknown[i]);
        put1(&props, 0);
        struct buf pk = packet_with(MQTT_PUBLISH, &props, 0);
        struct mqtt_packet pkt;
        assert_int_equal(decode5(&pk, &pkt), MQTT_ERR_PROPERTY);
        assert_int_equal(mqtt_reason_for_error(MQTT_ERR_PROPERTY), MQTT_RC_MALFORMED_PACKET);
    }
    struct buf props = {.n = 0};
    put(&props, "\x81\x01\x00", 3); /* identifier 129 */
    struct buf pk = packet_with(MQTT_PUBLISH, &props, 0);
    struct mqtt_packet pkt;
    assert_int_equal(decode5(&pk, &pkt), MQTT_ERR_PROPERTY);
}

/* Values the spec forbids: Protocol Errors (Topic Alias 0: Topic Alias invalid). */
static int decode_one_property(uint8_t kind, const void *prop, size_t len)
{
    struct buf props = from(prop, len);
    struct buf pk = packet_with(kind, &props, 0);
    struct mqtt_packet pkt;
    return decode5(&pk, &pkt);
}

#define DECODE_PROP(kind, lit) decode_one_property((kind), (lit), sizeof(lit) - 1)

static void test_v5_byte_properties_other_than_0_or_1_are_protocol_errors(void **state)
{
    (void)state;
    assert_int_equal(DECODE_PROP(MQTT_PUBLISH, "\x01\x02"), MQTT_ERR_PROPERTY_VALUE);
    assert_int_equal(DECODE_PROP(KIND_WILL, "\x01\xff"), MQTT_ERR_PROPERTY_VALUE);
    assert_int_equal(DECODE_PROP(MQTT_CONNECT, "\x17\x02"), MQTT_ERR_PROPERTY_VALUE);
    assert_int_equal(DECODE_PROP(MQTT_CONNECT, "\x19\x02"), MQTT_ERR_PROPERTY_VALUE);
    assert_int_equal(DECODE_PROP(MQTT_CONNACK, "\x24\x02"), MQTT_ERR_PROPERTY_VALUE);
    assert_int_equal(DECODE_PROP(MQTT_CONNACK, "\x25\x02"), MQTT_ERR_PROPERTY_VALUE);
    assert_int_equal(DECODE_PROP(MQTT_CONNACK, "\x28\x02"), MQTT_ERR_PROPERTY_VALUE);
    assert_int_equal(DECODE_PROP(MQTT_CONNACK, "\x29\x02"), MQTT_ERR_PROPERTY_VALUE);
    assert_int_equal(DECODE_PROP(MQTT_CONNACK, "\x2a\x02"), MQTT_ERR_PROPERTY_VALUE);
    /* 0 is fine for all of them */
    assert_int_equal(DECODE_PROP(MQTT_CONNACK, "\x24\x00"), MQTT_OK);
    assert_int_equal(DECODE_PROP(MQTT_PUBLISH, "\x01\x00"), MQTT_OK);
}

static void test_v5_zero_values_are_protocol_errors(void **state)
{
    (void)state;
    /* Receive Maximum 0 [3.1.2.11.3], Maximum Packet Size 0 [3.1.2.11.4],
     * Subscription Identifier 0 [3.3.2.3.8] [3.8.2.1.2] */
    assert_int_equal(DECODE_PROP(MQTT_CONNECT, "\x21\x00\x00"), MQTT_ERR_PROPERTY_VALUE);
    assert_int_equal(DECODE_PROP(MQTT_CONNACK, "\x21\x00\x00"), MQTT_ERR_PROPERTY_VALUE);
    assert_int_equal(DECODE_PROP(MQTT_CONNECT, "\x27\x00\x00\x00\x00"), MQTT_ERR_PROPERTY_VALUE);
    assert_int_equal(DECODE_PROP(MQTT_PUBLISH, "\x0b\x00"), MQTT_ERR_PROPERTY_VALUE);
    assert_int_equal(DECODE_PROP(MQTT_SUBSCRIBE, "\x0b\x00"), MQTT_ERR_PROPERTY_VALUE);
    /* Topic Alias 0 [MQTT-3.3.2-8] */
    assert_int_equal(DECODE_PROP(MQTT_PUBLISH, "\x23\x00\x00"), MQTT_ERR_TOPIC_ALIAS);
    assert_int_equal(mqtt_reason_for_error(MQTT_ERR_TOPIC_ALIAS), MQTT_RC_TOPIC_ALIAS_INVALID);
    /* zero is fine where the spec allows it */
    assert_int_equal(DECODE_PROP(MQTT_CONNECT, "\x11\x00\x00\x00\x00"), MQTT_OK);
    assert_int_equal(DECODE_PROP(MQTT_CONNECT, "\x22\x00\x00"), MQTT_OK);
    assert_int_equal(DECODE_PROP(MQTT_CONNACK, "\x13\x00\x00"), MQTT_OK);
    assert_int_equal(DECODE_PROP(MQTT_PUBLISH, "\x02\x00\x00\x00\x00"), MQTT_OK);
}

static void test_v5_subscription_identifier_range_1_5_5(void **state)
{
    (void)state;
    /* The spec's Variable Byte Integer table (1.5.5): each size's bounds. */
    static const uint32_t values[] = {1, 127, 128, 16383, 16384, 2097151, 2097152, 268435455};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        struct buf props = {.n = 0};
        put1(&props, 0x0b);
        put_vbi(&props, values[i]);
        struct buf pk = packet_with(MQTT_SUBSCRIBE, &props, 0);
        struct mqtt_packet pkt;
        assert_int_equal(decode5(&pk, &pkt), MQTT_OK);
        assert_int_equal(pkt.u.subscribe.props.subscription_identifier, values[i]);
        assert_round_trip(&pk);
    }
    /* five bytes, and a non-minimal encoding [MQTT-1.5.5-1]: malformed */
    assert_int_equal(DECODE_PROP(MQTT_SUBSCRIBE, "\x0b\xff\xff\xff\xff\x01"),
                     MQTT_ERR_VARIABLE_INT);
    assert_int_equal(DECODE_PROP(MQTT_SUBSCRIBE, "\x0b\x81\x00"), MQTT_ERR_VARIABLE_INT);
    assert_int_equal(mqtt_reason_for_error(MQTT_ERR_VARIABLE_INT), MQTT_RC_MALFORMED_PACKET);
}

static void test_v5_response_topic_must_be_a_topic_name_MQTT_3_3_2_14(void **state)
{
    (void)state;
    assert_int_equal(DECODE_PROP(MQTT_PUBLISH, "\x08\x00\x03\x61\x2f\x23"),
                     MQTT_ERR_PROPERTY_VALUE); /* "a/#" */
    assert_int_equal(DECODE_PROP(KIND_WILL, "\x08\x00\x01+"), MQTT_ERR_PROPERTY_VALUE);
    assert_int_equal(DECODE_PROP(MQTT_PUBLISH, "\x08\x00\x00"), MQTT_ERR_PROPERTY_VALUE);
    assert_int_equal(DECODE_PROP(MQTT_PUBLISH, "\x08\x00\x02\xc0\x80"), MQTT_ERR_UTF8);
}

static void test_v5_strings_in_properties_must_be_utf8_MQTT_1_5_4_1(void **state)
{
    (void)state;
    assert_int_equal(DECODE_PROP(MQTT_PUBLISH, "\x03\x00\x01\xff"), MQTT_ERR_UTF8);
    assert_int_equal(DECODE_PROP(MQTT_PUBACK, "\x1f\x00\x01\x00"), MQTT_ERR_UTF8);
    assert_int_equal(DECODE_PROP(MQTT_CONNACK, "\x12\x00\x02\xed\xa0"), MQTT_ERR_UTF8);
    /* both halves of a User Property [MQTT-1.5.7-1] */
    assert_int_equal(DECODE_PROP(MQTT_PUBLISH, "\x26\x00\x01\xff\x00\x00"), MQTT_ERR_UTF8);
    assert_int_equal(DECODE_PROP(MQTT_PUBLISH, "\x26\x00\x00\x00\x01\xff"), MQTT_ERR_UTF8);
    assert_int_equal(mqtt_reason_for_error(MQTT_ERR_UTF8), MQTT_RC_MALFORMED_PACKET);
    /* binary data is anything */
    assert_int_equal(DECODE_PROP(MQTT_PUBLISH, "\x09\x00\x02\xff\x00"), MQTT_OK);
}

static void test_v5_authentication_data_without_method_is_protocol_error(void **state)
{
    (void)state;
    assert_int_equal(DECODE_PROP(MQTT_CONNECT, "\x16\x00\x01x"), MQTT_ERR_PROPERTY_VALUE);
    assert_int_equal(DECODE_PROP(MQTT_CONNACK, "\x16\x00\x01x"), MQTT_ERR_PROPERTY_VALUE);
    assert_int_equal(DECODE_PROP(MQTT_AUTH, "\x16\x00\x01x"), MQTT_ERR_PROPERTY_VALUE);
    assert_int_equal(DECODE_PROP(MQTT_AUTH, "\x16\x00\x01x\x15\x00\x01m"), MQTT_OK);
}

/* The block and its contents must stay inside the packet. */
static void test_v5_property_block_truncations_are_malformed(void **state)
{
    (void)state;
    /* PUBACK: id, reason, property length 5 but 2 bytes follow */
    static const uint8_t over[] = {0x40, 0x06, 0, 1, 0, 5, 0x1f, 0};
    /* a Reason String of 5 bytes in a 4-byte block */
    static const uint8_t inner[] = {0x40, 0x08, 0, 1, 0, 4, 0x1f, 0, 5, 'a'};
    /* a block length that is not a VBI */
    static const uint8_t badlen[] = {0x40, 0x08, 0, 1, 0, 0xff, 0xff, 0xff, 0xff, 0x01};
    struct mqtt_packet pkt;
    struct buf b = FROM(over);
    assert_int_equal(decode5(&b, &pkt), MQTT_ERR_TRUNCATED);
    b = FROM(inner);
    assert_int_equal(decode5(&b, &pkt), MQTT_ERR_TRUNCATED);
    b = FROM(badlen);
    assert_int_equal(decode5(&b, &pkt), MQTT_ERR_VARIABLE_INT);
    /* a four-byte integer cut short, a pair without its value */
    assert_int_equal(DECODE_PROP(MQTT_CONNECT, "\x11\x00\x00"), MQTT_ERR_TRUNCATED);
    assert_int_equal(DECODE_PROP(MQTT_CONNECT, "\x26\x00\x01k"), MQTT_ERR_TRUNCATED);
    assert_int_equal(DECODE_PROP(MQTT_CONNECT, "\x21\x00"), MQTT_ERR_TRUNCATED);
    assert_int_equal(mqtt_reason_for_error(MQTT_ERR_TRUNCATED), MQTT_RC_MALFORMED_PACKET);
}

/* User Properties keep their order and duplicates [3.1.2.11.8]. */
static void test_v5_user_properties_in_order_with_duplicates(void **state)
{
    (void)state;
    struct buf props = {.n = 0};
    const char *pairs[][2] = {{"a", "1"}, {"b", "2"}, {"a", "3"}, {"a", "1"}};
    for (size_t i = 0; i < 4; i++) {
        put1(&props, 0x26);
        put_str(&props, pairs[i][0]);
        put_str(&props, pairs[i][1]);
        if (i == 1) {
            put1(&props, 0x23); /* another property in between */
            put(&props, "\x00\x07", 2);
        }
    }
    struct buf pk = packet_with(MQTT_PUBLISH, &props, 0);
    struct mqtt_packet pkt;
    assert_int_equal(decode5(&pk, &pkt), MQTT_OK);
    const struct mqtt_properties *d = &pkt.u.publish.props;
    assert_int_equal(d->user_property_count, 4);
    assert_int_equal(d->topic_alias, 7);
    struct mqtt_property_iter it;
    struct mqtt_user_property up;
    mqtt_property_iter_init(&it, d);
    for (size_t i = 0; i < 4; i++) {
        assert_true(mqtt_property_iter_next_user(&it, &up));
        assert_int_equal(up.name.len, 1);
        assert_memory_equal(up.name.data, pairs[i][0], 1);
        assert_memory_equal(up.value.data, pairs[i][1], 1);
    }
    assert_false(mqtt_property_iter_next_user(&it, &up));
    assert_round_trip(&pk);

    /* the same from fields: topic alias first (id order), then the pairs */
    struct mqtt_user_property arr[4];
    for (size_t i = 0; i < 4; i++)
        arr[i] = (struct mqtt_user_property){mqtt_bytes_from_cstr(pairs[i][0]),
                                             mqtt_bytes_from_cstr(pairs[i][1])};
    struct mqtt_packet out = {.type = MQTT_PUBLISH, .protocol_level = V5};
    out.u.publish = pkt.u.publish;
    out.u.publish.props = (struct mqtt_properties){
        .present = MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS),
        .topic_alias = 7,
        .user_properties = arr,
        .user_property_count = 4,
    };
    uint8_t enc[128];
    size_t n = 0;
    assert_int_equal(mqtt_encode(&out, enc, sizeof(enc), &n), MQTT_OK);
    struct buf again = from(enc, n);
    struct mqtt_packet back;
    assert_int_equal(decode5(&again, &back), MQTT_OK);
    assert_int_equal(back.u.publish.props.user_property_count, 4);
    assert_int_equal(back.u.publish.props.topic_alias, 7);
    mqtt_property_iter_init(&it, &back.u.publish.props);
    struct mqtt_property first;
    assert_true(mqtt_property_iter_next(&it, &first));
    assert_int_equal(first.id, MQTT_PROP_TOPIC_ALIAS);
    for (size_t i = 0; i < 4; i++) {
        assert_true(mqtt_property_iter_next_user(&it, &up));
        assert_memory_equal(up.name.data, pairs[i][0], 1);
        assert_memory_equal(up.value.data, pairs[i][1], 1);
    }
}

/* Several Subscription Identifiers in a PUBLISH [3.3.2.3.8], from fields too. */
static void test_v5_publish_carries_several_subscription_identifiers(void **state)
{
    (void)state;
    static const uint32_t ids[] = {5, 70000, 1};
    struct mqtt_packet pkt = {.type = MQTT_PUBLISH, .protocol_level = V5};
    pkt.u.publish.topic = mqtt_bytes_from_cstr("a/b");
    pkt.u.publish.props.subscription_ids = ids;
    pkt.u.publish.props.subscription_id_count = 3;
    uint8_t enc[64];
    size_t n = 0;
    assert_int_equal(mqtt_encode(&pkt, enc, sizeof(enc), &n), MQTT_OK);
    struct buf b = from(enc, n);
    struct mqtt_packet back;
    assert_int_equal(decode5(&b, &back), MQTT_OK);
    const struct mqtt_properties *d = &back.u.publish.props;
    assert_int_equal(d->subscription_id_count, 3);
    assert_int_equal(d->subscription_identifier, 5);
    struct mqtt_property_iter it;
    uint32_t v = 0;
    mqtt_property_iter_init(&it, d);
    for (size_t i = 0; i < 3; i++) {
        assert_true(mqtt_property_iter_next_subscription_id(&it, &v));
        assert_int_equal(v, ids[i]);
    }
    assert_false(mqtt_property_iter_next_subscription_id(&it, &v));
    assert_round_trip(&b);
    /* a SUBSCRIBE takes one; 0 cannot be encoded */
    struct mqtt_packet sub = {.type = MQTT_SUBSCRIBE, .protocol_level = V5};
    struct mqtt_topic_entry e = {mqtt_bytes_from_cstr("t"), 1};
    sub.u.subscribe = (struct mqtt_subscribe){.packet_id = 1, .count = 1, .entries = &e};
    sub.u.subscribe.props.subscription_ids = ids;
    sub.u.subscribe.props.subscription_id_count = 2;
    assert_int_equal(mqtt_encode(&sub, enc, sizeof(enc), &n), MQTT_ERR_INVALID_ARGUMENT);
    static const uint32_t zero[] = {0};
    pkt.u.publish.props.subscription_ids = zero;
    pkt.u.publish.props.subscription_id_count = 1;
    assert_int_equal(mqtt_encoded_size(&pkt), 0);
}

/* The encoder refuses a property the packet may not carry. */
static void test_v5_encode_refuses_property_not_allowed_on_packet(void **state)
{
    (void)state;
    struct mqtt_packet pkt = {.type = MQTT_PUBACK, .protocol_level = V5};
    pkt.u.ack.packet_id = 1;
    pkt.u.ack.props.present = MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
    pkt.u.ack.props.topic_alias = 1;
    assert_int_equal(mqtt_encoded_size(&pkt), 0);
    uint8_t buf[16];
    size_t n = 0;
    assert_int_equal(mqtt_encode(&pkt, buf, sizeof(buf), &n), MQTT_ERR_INVALID_ARGUMENT);
    pkt.u.ack.props.present = MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
    pkt.u.ack.props.reason_string = mqtt_bytes_from_cstr("why");
    assert_int_equal(mqtt_encode(&pkt, buf, sizeof(buf), &n), MQTT_OK);
    static const uint8_t want[] = {0x40, 0x0a, 0, 1, 0, 6, 0x1f, 0, 3, 'w', 'h', 'y'};
    struct buf w = FROM(want);
    assert_encodes_to(&pkt, &w);
}

/* ---- reason codes (2.4) -------------------------------------------------- */

struct reason_row {
    uint8_t type;
    const uint8_t *codes;
    size_t n;
};

/* Each packet's table, copied from its section of the spec. */
static const struct reason_row REASONS[] = {
    {MQTT_CONNACK, KINDS(0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A,
                         0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F)},
    {MQTT_PUBACK, KINDS(0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99)},
    {MQTT_PUBREC, KINDS(0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99)},
    {MQTT_PUBREL, KINDS(0x00, 0x92)},
    {MQTT_PUBCOMP, KINDS(0x00, 0x92)},
    {MQTT_SUBACK, KINDS(0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2)},
    {MQTT_UNSUBACK, KINDS(0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91)},
    {MQTT_DISCONNECT,
     KINDS(0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94,
           0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2)},
    {MQTT_AUTH, KINDS(0x00, 0x18, 0x19)},
};
#define NREASONS (sizeof(REASONS) / sizeof(REASONS[0]))

static bool in_row(const struct reason_row *row, uint8_t code)
{
    for (size_t i = 0; i < row->n; i++) {
        if (row->codes[i] == code)
            return true;
    }
    return false;
}

/* mqtt_reason_valid() says exactly what each table says. */
static void test_v5_reason_code_tables_2_4(void **state)
{
    (void)state;
    for (size_t r = 0; r < NREASONS; r++) {
        for (unsigned code = 0; code < 256; code++)
            assert_int_equal(mqtt_reason_valid(REASONS[r].type, (uint8_t)code),
                             in_row(&REASONS[r], (uint8_t)code));
    }
    static const uint8_t none[] = {MQTT_CONNECT,
                                   MQTT_PUBLISH,
                                   MQTT_SUBSCRIBE,
                                   MQTT_UNSUBSCRIBE,
                                   MQTT_PINGREQ,
                                   MQTT_PINGRESP,
                                   0,
                                   16};
    for (size_t i = 0; i < sizeof(none); i++)
        assert_false(mqtt_reason_valid(none[i], 0));
}

/* Every reason code of every packet decodes and round-trips; any other code
 * is refused (Protocol Error). With properties, so the long form is used. */
static void test_v5_every_reason_code_on_every_packet(void **state)
{
    (void)state;
    struct buf props = {.n = 0};
    put1(&props, 0x1f);
    put_str(&props, "r");
    for (size_t r = 0; r < NREASONS; r++) {
        uint8_t type = REASONS[r].type;
        for (unsigned code = 0; code < 256; code++) {
            struct buf pk = packet_with(type, &props, (uint8_t)code);
            struct mqtt_packet pkt;
            int rc = decode5(&pk, &pkt);
            if (!in_row(&REASONS[r], (uint8_t)code)) {
                assert_int_equal(rc, MQTT_ERR_REASON_CODE);
                continue;
            }
            assert_int_equal(rc, MQTT_OK);
            assert_round_trip(&pk);
            assert_string_not_equal(mqtt_reason_name(type, (uint8_t)code), "Unknown reason code");
        }
    }
    assert_int_equal(mqtt_reason_for_error(MQTT_ERR_REASON_CODE), MQTT_RC_PROTOCOL_ERROR);
}

static void test_v5_reason_names_follow_the_spec(void **state)
{
    (void)state;
    assert_string_equal(mqtt_reason_name(MQTT_PUBACK, 0x00), "Success");
    assert_string_equal(mqtt_reason_name(MQTT_DISCONNECT, 0x00), "Normal disconnection");
    assert_string_equal(mqtt_reason_name(MQTT_SUBACK, 0x00), "Granted QoS 0");
    assert_string_equal(mqtt_reason_name(MQTT_SUBACK, 0x02), "Granted QoS 2");
    assert_string_equal(mqtt_reason_name(MQTT_DISCONNECT, 0x04), "Disconnect with Will Message");
    assert_string_equal(mqtt_reason_name(MQTT_AUTH, 0x18), "Continue authentication");
    assert_string_equal(mqtt_reason_name(MQTT_CONNACK, 0x84), "Unsupported Protocol Version");
    assert_string_equal(mqtt_reason_name(MQTT_DISCONNECT, 0xA2),
                        "Wildcard Subscriptions not supported");
    assert_string_equal(mqtt_reason_name(MQTT_PUBACK, 0x03), "Unknown reason code");
    assert_string_equal(mqtt_reason_name(MQTT_PUBACK, 0xA3), "Unknown reason code");
}

static void test_v5_reason_for_error_4_13(void **state)
{
    (void)state;
    assert_int_equal(mqtt_reason_for_error(MQTT_ERR_HEADER_FLAGS), MQTT_RC_MALFORMED_PACKET);
    assert_int_equal(mqtt_reason_for_error(MQTT_ERR_CONNECT_RESERVED), MQTT_RC_MALFORMED_PACKET);
    assert_int_equal(mqtt_reason_for_error(MQTT_ERR_SUBSCRIBE_OPTIONS), MQTT_RC_MALFORMED_PACKET);
    assert_int_equal(mqtt_reason_for_error(MQTT_ERR_PACKET_ID), MQTT_RC_PROTOCOL_ERROR);
    assert_int_equal(mqtt_reason_for_error(MQTT_ERR_PROPERTY_VALUE), MQTT_RC_PROTOCOL_ERROR);
    assert_int_equal(mqtt_reason_for_error(MQTT_ERR_RETAIN_HANDLING), MQTT_RC_PROTOCOL_ERROR);
    assert_int_equal(mqtt_reason_for_error(MQTT_ERR_TOPIC_NAME), MQTT_RC_PROTOCOL_ERROR);
    assert_int_equal(mqtt_reason_for_error(MQTT_ERR_PROTOCOL_LEVEL),
                     MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION);
    assert_int_equal(mqtt_reason_for_error(MQTT_ERR_TOO_LARGE), MQTT_RC_PACKET_TOO_LARGE);
    assert_int_equal(mqtt_reason_for_error(MQTT_OK), MQTT_RC_SUCCESS);
    assert_int_equal(mqtt_reason_for_error(-999), MQTT_RC_UNSPECIFIED_ERROR);
    for (int rc = MQTT_ERR_PROPERTY; rc >= MQTT_ERR_RETAIN_HANDLING; rc--)
        assert_string_not_equal(mqtt_strerror(rc), "unknown codec error");
}

/* ---- short forms ---------------------------------------------------------- */

/* [3.4.2.1]: Remaining Length 2 is Success without properties; 3 has no
 * property length [3.4.2.2.1]; the encoder writes the shortest form. */
static void test_v5_puback_short_forms_3_4_2_1(void **state)
{
    (void)state;
    static const uint8_t rl2[] = {0x40, 0x02, 0x00, 0x2a};
    static const uint8_t rl3[] = {0x50, 0x03, 0x00, 0x2a, 0x10};
    static const uint8_t rl4[] = {0x70, 0x04, 0x00, 0x2a, 0x92, 0x00};
    static const uint8_t rl4_success[] = {0x40, 0x04, 0x00, 0x2a, 0x00, 0x00};
    struct mqtt_packet pkt;
    struct buf b = FROM(rl2);
    assert_int_equal(decode5(&b, &pkt), MQTT_OK);
    assert_int_equal(pkt.u.ack.packet_id, 42);
    assert_int_equal(pkt.u.ack.reason_code, MQTT_RC_SUCCESS);
    assert_round_trip(&b);
    b = FROM(rl3);
    assert_int_equal(decode5(&b, &pkt), MQTT_OK);
    assert_int_equal(pkt.type, MQTT_PUBREC);
    assert_int_equal(pkt.u.ack.reason_code, MQTT_RC_NO_MATCHING_SUBSCRIBERS);
    assert_round_trip(&b);
    /* the long forms with an empty block decode; they re-encode shorter */
    b = FROM(rl4);
    assert_int_equal(decode5(&b, &pkt), MQTT_OK);
    assert_int_equal(pkt.u.ack.reason_code, MQTT_RC_PACKET_IDENTIFIER_NOT_FOUND);
    static const uint8_t rl4_short[] = {0x70, 0x03, 0x00, 0x2a, 0x92};
    struct buf w = FROM(rl4_short);
    assert_encodes_to(&pkt, &w);
    b = FROM(rl4_success);
    assert_int_equal(decode5(&b, &pkt), MQTT_OK);
    w = FROM(rl2);
    assert_encodes_to(&pkt, &w);
    /* PUBREL keeps its flags; a 3.1.1 decoder refuses the reason byte */
    static const uint8_t pubrel[] = {0x62, 0x03, 0x00, 0x01, 0x92};
    b = FROM(pubrel);
    assert_round_trip(&b);
    struct mqtt_frame frame;
    assert_int_equal(mqtt_frame(pubrel, sizeof(pubrel), 0, &frame), MQTT_OK);
    assert_int_equal(mqtt_decode(&frame, &pkt), MQTT_ERR_TRAILING);
}

/* [3.14.2.1]: DISCONNECT of length 0 is Normal disconnection; 1 has no properties. */
static void test_v5_disconnect_short_forms_3_14_2_1(void **state)
{
    (void)state;
    static const uint8_t rl0[] = {0xe0, 0x00};
    static const uint8_t rl1[] = {0xe0, 0x01, 0x04};
    static const uint8_t full[] = {0xe0, 0x07, 0x8e, 0x05, 0x11, 0, 0, 0, 9};
    struct mqtt_packet pkt;
    struct buf b = FROM(rl0);
    assert_int_equal(decode5(&b, &pkt), MQTT_OK);
    assert_int_equal(pkt.u.disconnect.reason_code, MQTT_RC_NORMAL_DISCONNECTION);
    assert_round_trip(&b);
    b = FROM(rl1);
    assert_int_equal(decode5(&b, &pkt), MQTT_OK);
    assert_int_equal(pkt.u.disconnect.reason_code, MQTT_RC_DISCONNECT_WITH_WILL_MESSAGE);
    assert_round_trip(&b);
    b = FROM(full);
    assert_int_equal(decode5(&b, &pkt), MQTT_OK);
    assert_int_equal(pkt.u.disconnect.reason_code, MQTT_RC_SESSION_TAKEN_OVER);
    assert_int_equal(pkt.u.disconnect.props.session_expiry_interval_s, 9);
    assert_round_trip(&b);
    /* 3.1.1 DISCONNECT has no body */
    struct mqtt_frame frame;
    assert_int_equal(mqtt_frame(rl1, sizeof(rl1), 0, &frame), MQTT_OK);
    assert_int_equal(mqtt_decode(&frame, &pkt), MQTT_ERR_TRAILING);
    static const uint8_t bad[] = {0xe0, 0x01, 0x91};
    b = FROM(bad);
    assert_int_equal(decode5(&b, &pkt), MQTT_ERR_REASON_CODE);
}

/* [3.15]: AUTH exists only in v5; length 0 is Success without properties. */
static void test_v5_auth_packet_3_15(void **state)
{
    (void)state;
    static const uint8_t rl0[] = {0xf0, 0x00};
    static const uint8_t cont[] = {0xf0, 0x0b, 0x18, 0x09, 0x15, 0, 2, 'm', '1', 0x16, 0, 1, 0xff};
    static const uint8_t rl1[] = {0xf0, 0x01, 0x19};
    static const uint8_t flags[] = {0xf1, 0x00};
    struct mqtt_packet pkt;
    struct buf b = FROM(rl0);
    assert_int_equal(decode5(&b, &pkt), MQTT_OK);
    assert_int_equal(pkt.type, MQTT_AUTH);
    assert_round_trip(&b);
    b = FROM(cont);
    assert_int_equal(decode5(&b, &pkt), MQTT_OK);
    assert_int_equal(pkt.u.auth.reason_code, MQTT_RC_CONTINUE_AUTHENTICATION);
    assert_int_equal(pkt.u.auth.props.authentication_method.len, 2);
    assert_int_equal(pkt.u.auth.props.authentication_data.data[0], 0xff);
    assert_round_trip(&b);
    /* a 1-byte AUTH is read like a DISCONNECT's; written with its property length */
    b = FROM(rl1);
    assert_int_equal(decode5(&b, &pkt), MQTT_OK);
    assert_int_equal(pkt.u.auth.reason_code, MQTT_RC_RE_AUTHENTICATE);
    static const uint8_t rl2[] = {0xf0, 0x02, 0x19, 0x00};
    struct buf w = FROM(rl2);
    assert_encodes_to(&pkt, &w);
    b = FROM(flags);
    assert_int_equal(decode5(&b, &pkt), MQTT_ERR_HEADER_FLAGS);
    /* reserved before v5: at the frame, at the decoder, at the encoder */
    struct mqtt_frame frame;
    assert_int_equal(mqtt_frame(rl0, sizeof(rl0), 0, &frame), MQTT_ERR_PACKET_TYPE);
    assert_int_equal(mqtt_frame_for(rl0, sizeof(rl0), 0, V5, &frame), MQTT_OK);
    assert_int_equal(mqtt_decode_for(&frame, MQTT_PROTOCOL_V311, &pkt), MQTT_ERR_PACKET_TYPE);
    struct mqtt_packet a = {.type = MQTT_AUTH};
    assert_int_equal(mqtt_encoded_size(&a), 0);
}

/* What enhanced authentication sends (connect_auth.c), built from fields:
 * CONNACK 0 and AUTH 0x18 with Authentication Method and Data [3.2.2.3.17]
 * [3.15.2.2.2]; fitting to a Maximum Packet Size never drops them (only
 * Reason String and User Properties may go [MQTT-3.2.2-19]). */
static void test_v5_auth_method_and_data_encoded_from_fields(void **state)
{
    (void)state;
    struct mqtt_properties pr = {.present = MQTT_PROP_BIT(MQTT_PROP_AUTHENTICATION_METHOD) |
                                            MQTT_PROP_BIT(MQTT_PROP_AUTHENTICATION_DATA)};
    pr.authentication_method = (struct mqtt_bytes){(const uint8_t *)"m1", 2};
    pr.authentication_data = (struct mqtt_bytes){(const uint8_t *)"v=", 2};
    struct mqtt_packet ack = {.type = MQTT_CONNACK, .protocol_level = V5};
    ack.u.connack.props = pr;
    static const uint8_t connack[] = {0x20, 13,  0,    0, 10, 0x15, 0,  2,
                                      'm',  '1', 0x16, 0, 2,  'v',  '='};
    struct buf want = FROM(connack);
    assert_encodes_to(&ack, &want);
    assert_round_trip(&want);
    struct mqtt_packet auth = {.type = MQTT_AUTH, .protocol_level = V5};
    auth.u.auth.reason_code = MQTT_RC_CONTINUE_AUTHENTICATION;
    auth.u.auth.props = pr;
    static const uint8_t cont[] = {0xf0, 12, 0x18, 10, 0x15, 0, 2, 'm', '1', 0x16, 0, 2, 'v', '='};
    want = FROM(cont);
    assert_encodes_to(&auth, &want);
    size_t size = 0;
    auth.u.auth.props.present |= MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
    auth.u.auth.props.reason_string = (struct mqtt_bytes){(const uint8_t *)"why", 3};
    assert_int_equal(mqtt_fit_packet(&auth, sizeof(cont), &size), MQTT_OK);
    assert_int_equal(size, sizeof(cont));
    assert_encodes_to(&auth, &want);
    assert_int_equal(mqtt_fit_packet(&auth, sizeof(cont) - 1, &size), MQTT_ERR_TOO_LARGE);
}

/* ---- packets ---------------------------------------------------------------- */

/* The spec's CONNECT variable header example (3.1.2.12): "MQTT", version 5,
 * flags 0xCE, keep alive 10, properties: Session Expiry Interval 10; the
 * payload those flags call for (will with properties, user, password) is ours. */
static void test_v5_connect_spec_example_3_1_2_12(void **state)
{
    (void)state;
    static const uint8_t b[] = {
        0x10, 48,   0,   4,   'M', 'Q', 'T',  'T', 5,    0xce,
        0,    10,   5,   17,  0,   0,   0,    10,               /* header */
        0,    3,    'c', 'i', 'd',                              /* id */
        7,    0x18, 0,   0,   0,   30,  0x01, 1,                /* will props */
        0,    3,    'w', '/', 't', 0,   2,    'h', 'i',         /* will */
        0,    4,    'u', 's', 'e', 'r', 0,    2,   0xff, 0x00}; /* user, pass */
    struct buf p = FROM(b);
    struct mqtt_packet pkt;
    assert_int_equal(decode5(&p, &pkt), MQTT_OK);
    const struct mqtt_connect *c = &pkt.u.connect;
    assert_int_equal(c->protocol_level, 5);
    assert_int_equal(pkt.protocol_level, 5);
    assert_true(c->clean_session && c->has_will && c->has_username && c->has_password);
    assert_int_equal(c->will_qos, 1);
    assert_int_equal(c->keepalive_s, 10);
    assert_true(mqtt_properties_has(&c->props, MQTT_PROP_SESSION_EXPIRY_INTERVAL));
    assert_int_equal(c->props.session_expiry_interval_s, 10);
    assert_int_equal(c->will_props.will_delay_interval_s, 30);
    assert_int_equal(c->will_props.payload_format_indicator, 1);
    assert_int_equal(c->will_topic.len, 3);
    assert_int_equal(c->will_payload.len, 2);
    assert_int_equal(c->password.len, 2);
    assert_round_trip(&p);
}

/* A v5 CONNECT decodes only when the caller accepts level 5; otherwise it is
 * refused on its level byte, as before v5 support (CONNACK 0x01). */
static void test_v5_connect_needs_caller_at_level_5_MQTT_3_1_2_2(void **state)
{
    (void)state;
    static const uint8_t v5[] = {0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 60, 0, 0, 0};
    static const uint8_t v311[] = {0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 0};
    static const uint8_t v5_isdp[] = {0x10, 15, 0, 6, 'M', 'Q', 'I', 's', 'd',
                                      'p',  5,  2, 0, 60,  0,   0,   0};
    struct mqtt_frame frame;
    struct mqtt_packet pkt;
    assert_int_equal(mqtt_frame(v5, sizeof(v5), 0, &frame), MQTT_OK);
    assert_int_equal(mqtt_decode(&frame, &pkt), MQTT_ERR_PROTOCOL_LEVEL);
    assert_int_equal(mqtt_decode_for(&frame, MQTT_PROTOCOL_V31, &pkt), MQTT_ERR_PROTOCOL_LEVEL);
    assert_int_equal(mqtt_decode_for(&frame, V5, &pkt), MQTT_OK);
    assert_int_equal(pkt.protocol_level, V5);
    /* a 3.1.1 CONNECT is still a 3.1.1 CONNECT for a v5 caller */
    assert_int_equal(mqtt_frame(v311, sizeof(v311), 0, &frame), MQTT_OK);
    assert_int_equal(mqtt_decode_for(&frame, V5, &pkt), MQTT_OK);
    assert_int_equal(pkt.protocol_level, MQTT_PROTOCOL_V311);
    assert_int_equal(pkt.u.connect.props.raw.len, 0);
    /* level 5 belongs to "MQTT" only */
    assert_int_equal(mqtt_frame(v5_isdp, sizeof(v5_isdp), 0, &frame), MQTT_OK);
    assert_int_equal(mqtt_decode_for(&frame, V5, &pkt), MQTT_ERR_PROTOCOL_LEVEL);
    /* the level error comes before the body: a 3.1.1-shaped level-5 CONNECT too */
    assert_int_equal(mqtt_frame(v311, sizeof(v311), 0, &frame), MQTT_OK);
    uint8_t odd[sizeof(v311)];
    memcpy(odd, v311, sizeof(odd));
    odd[8] = 5;
    assert_int_equal(mqtt_frame(odd, sizeof(odd), 0, &frame), MQTT_OK);
    assert_int_equal(mqtt_decode(&frame, &pkt), MQTT_ERR_PROTOCOL_LEVEL);
    assert_int_equal(mqtt_decode_for(&frame, V5, &pkt), MQTT_ERR_TRUNCATED);
}

/* [3.1.2.9]: v5 allows a password without a user name; the flag rules stay. */
static void test_v5_connect_flags_3_1_2_3(void **state)
{
    (void)state;
    static const uint8_t pass_only[] = {0x10, 16, 0, 4, 'M', 'Q', 'T', 'T', 5,  0x42,
                                        0,    60, 0, 0, 0,   0,   2,   'p', 'w'};
    struct buf b = FROM(pass_only);
    struct mqtt_packet pkt;
    b.n = sizeof(pass_only);
    b.b[1] = (uint8_t)(sizeof(pass_only) - 2);
    assert_int_equal(decode5(&b, &pkt), MQTT_OK);
    assert_true(pkt.u.connect.has_password);
    assert_false(pkt.u.connect.has_username);
    assert_round_trip(&b);
    b.b[9] = 0x43; /* reserved bit [MQTT-3.1.2-3] */
    assert_int_equal(decode5(&b, &pkt), MQTT_ERR_CONNECT_RESERVED);
    b.b[9] = 0x1e; /* will QoS 3 */
    assert_int_equal(decode5(&b, &pkt), MQTT_ERR_QOS);
    b.b[9] = 0x22; /* will retain without will [MQTT-3.1.2-13] */
    assert_int_equal(decode5(&b, &pkt), MQTT_ERR_WILL_FLAGS);
}

/* CONNACK: reason code and properties; Session Present only with 0x00 [MQTT-3.2.2-6]. */
static void test_v5_connack_3_2(void **state)
{
    (void)state;
    static const uint8_t ok[] = {0x20, 0x0c, 0x01, 0x00, 0x09, 0x21, 0x00,
                                 0x0a, 0x12, 0x00, 0x03, 'a',  'i',  'd'};
    static const uint8_t present_err[] = {0x20, 0x03, 0x01, 0x87, 0x00};
    static const uint8_t flags[] = {0x20, 0x03, 0x02, 0x00, 0x00};
    static const uint8_t no_props[] = {0x20, 0x02, 0x00, 0x00};
    struct mqtt_packet pkt;
    struct buf b = FROM(ok);
    assert_int_equal(decode5(&b, &pkt), MQTT_OK);
    assert_true(pkt.u.connack.session_present);
    assert_int_equal(pkt.u.connack.props.receive_maximum, 10);
    assert_int_equal(pkt.u.connack.props.assigned_client_identifier.len, 3);
    assert_round_trip(&b);
    b = FROM(present_err);
    assert_int_equal(decode5(&b, &pkt), MQTT_ERR_CONNACK_FLAGS);
    b = FROM(flags);
    assert_int_equal(decode5(&b, &pkt), MQTT_ERR_CONNACK_FLAGS);
    b = FROM(no_props); /* the property length is not optional in CONNACK */
    assert_int_equal(decode5(&b, &pkt), MQTT_ERR_TRUNCATED);
    /* built from fields, as a broker would */
    struct mqtt_packet ack = {.type = MQTT_CONNACK, .protocol_level = V5};
    ack.u.connack.return_code = MQTT_RC_BAD_USER_NAME_OR_PASSWORD;
    static const uint8_t want[] = {0x20, 0x03, 0x00, 0x86, 0x00};
    struct buf w = FROM(want);
    assert_encodes_to(&ack, &w);
    ack.u.connack.session_present = true;
    assert_int_equal(mqtt_encoded_size(&ack), 0);
}

/* [3.3.2]: topic, packet id, properties, payload; an empty topic needs a Topic Alias. */
static void test_v5_publish_topic_alias_3_3_2_3_4(void **state)
{
    (void)state;
    static const uint8_t aliased[] = {0x30, 0x07, 0x00, 0x00, 0x03, 0x23, 0x00, 0x05, 'x'};
    static const uint8_t bare[] = {0x30, 0x04, 0x00, 0x00, 0x00, 'x'};
    static const uint8_t wild[] = {0x30, 0x06, 0x00, 0x02, 'a', '#', 0x00, 'x'};
    struct mqtt_packet pkt;
    struct buf b = FROM(aliased);
    assert_int_equal(decode5(&b, &pkt), MQTT_OK);
    assert_int_equal(pkt.u.publish.topic.len, 0);
    assert_int_equal(pkt.u.publish.props.topic_alias, 5);
    assert_int_equal(pkt.u.publish.payload.len, 1);
    assert_round_trip(&b);
    b = FROM(bare);
    assert_int_equal(decode5(&b, &pkt), MQTT_ERR_TOPIC_NAME);
    assert_int_equal(mqtt_reason_for_error(MQTT_ERR_TOPIC_NAME), MQTT_RC_PROTOCOL_ERROR);
    b = FROM(wild);
    assert_int_equal(decode5(&b, &pkt), MQTT_ERR_TOPIC_NAME);
    /* the spec's PUBLISH variable header example (3.3.2.4): "a/b", id 10, no properties */
    static const uint8_t example[] = {0x32, 0x08, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x0a, 0x00};
    b = FROM(example);
    assert_int_equal(decode5(&b, &pkt), MQTT_OK);
    assert_int_equal(pkt.u.publish.packet_id, 10);
    assert_int_equal(pkt.u.publish.payload.len, 0);
    assert_round_trip(&b);
}

/* [3.8.3.1]: the subscription options byte. */
static void test_v5_subscribe_options_3_8_3_1(void **state)
{
    (void)state;
    static const uint8_t sub[] = {0x82, 0x0c, 0x00, 0x01, 0x00, 0x00, 0x01,
                                  'a',  0x2e, 0x00, 0x01, 'b',  0x11, 0x00};
    struct mqtt_packet pkt;
    struct buf b = from(sub, sizeof(sub) - 1);
    b.b[1] = 0x0b;
    assert_int_equal(decode5(&b, &pkt), MQTT_OK);
    assert_int_equal(pkt.u.subscribe.count, 2);
    struct mqtt_topic_iter it;
    struct mqtt_topic_entry e;
    struct mqtt_subscription_options o;
    mqtt_topic_iter_init(&it, &pkt);
    assert_true(mqtt_topic_iter_next_options(&it, &e, &o));
    assert_int_equal(e.qos, 2);
    assert_true(o.no_local && o.retain_as_published);
    assert_int_equal(o.retain_handling, 2);
    assert_true(mqtt_topic_iter_next_options(&it, &e, &o));
    assert_int_equal(e.qos, 1);
    assert_false(o.no_local || o.retain_as_published);
    assert_int_equal(o.retain_handling, 1);
    assert_false(mqtt_topic_iter_next_options(&it, &e, &o));
    assert_round_trip(&b);

    b.b[8] = 0x42; /* reserved bit 6 [MQTT-3.8.3-5] */
    assert_int_equal(decode5(&b, &pkt), MQTT_ERR_SUBSCRIBE_OPTIONS);
    b.b[8] = 0x03; /* QoS 3 */
    assert_int_equal(decode5(&b, &pkt), MQTT_ERR_SUBSCRIBE_QOS);
    b.b[8] = 0x30; /* Retain Handling 3 */
    assert_int_equal(decode5(&b, &pkt), MQTT_ERR_RETAIN_HANDLING);
    /* no entry [MQTT-3.8.3-2] */
    static const uint8_t empty[] = {0x82, 0x03, 0x00, 0x01, 0x00};
    b = FROM(empty);
    assert_int_equal(decode5(&b, &pkt), MQTT_ERR_EMPTY_PAYLOAD);

    /* encoded from entries + options */
    struct mqtt_topic_entry entries[] = {{mqtt_bytes_from_cstr("a"), 2},
                                         {mqtt_bytes_from_cstr("b"), 1}};
    struct mqtt_subscription_options opts[] = {{true, true, 2}, {false, false, 1}};
    struct mqtt_packet s = {.type = MQTT_SUBSCRIBE, .protocol_level = V5};
    s.u.subscribe =
        (struct mqtt_subscribe){.packet_id = 1, .count = 2, .entries = entries, .options = opts};
    b = from(sub, sizeof(sub) - 1);
    b.b[1] = 0x0b;
    assert_encodes_to(&s, &b);
    opts[1].retain_handling = 3;
    assert_int_equal(mqtt_encoded_size(&s), 0);
    opts[1].retain_handling = 0;
    s.protocol_level = MQTT_PROTOCOL_V311; /* options need v5 */
    assert_int_equal(mqtt_encoded_size(&s), 0);
}

/* SUBACK and UNSUBACK carry properties and a reason code per filter. */
static void test_v5_suback_unsuback_3_9_3_11(void **state)
{
    (void)state;
    static const uint8_t suback[] = {0x90, 0x06, 0x00, 0x07, 0x00, 0x00, 0xa2, 0x02};
    static const uint8_t unsuback[] = {0xb0, 0x09, 0x00, 0x07, 0x04, 0x1f,
                                       0x00, 0x01, 'x',  0x11, 0x00};
    static const uint8_t empty[] = {0xb0, 0x03, 0x00, 0x07, 0x00};
    struct mqtt_packet pkt;
    struct buf b = FROM(suback);
    assert_int_equal(decode5(&b, &pkt), MQTT_OK);
    assert_int_equal(pkt.u.suback.return_codes.len, 3);
    assert_round_trip(&b);
    b = FROM(unsuback);
    assert_int_equal(decode5(&b, &pkt), MQTT_OK);
    assert_int_equal(pkt.u.ack.packet_id, 7);
    assert_int_equal(pkt.u.ack.reason_codes.len, 2);
    assert_int_equal(pkt.u.ack.reason_codes.data[0], MQTT_RC_NO_SUBSCRIPTION_EXISTED);
    assert_int_equal(pkt.u.ack.props.reason_string.len, 1);
    assert_round_trip(&b);
    b = FROM(empty);
    assert_int_equal(decode5(&b, &pkt), MQTT_ERR_EMPTY_PAYLOAD);
    /* the 3.1.1 UNSUBACK is still 2 bytes */
    struct mqtt_packet old = {.type = MQTT_UNSUBACK};
    old.u.ack.packet_id = 7;
    assert_int_equal(mqtt_encoded_size(&old), 4);
}

static void test_v5_unsubscribe_3_10(void **state)
{
    (void)state;
    static const uint8_t unsub[] = {0xa2, 0x0c, 0x00, 0x02, 0x07, 0x26, 0, 1, 'k', 0, 1, 'v', 0, 0};
    struct buf b = from(unsub, sizeof(unsub));
    b.b[1] = (uint8_t)(sizeof(unsub) - 2);
    b.b[12] = 0;
    b.b[13] = 0; /* an empty filter */
    struct mqtt_packet pkt;
    assert_int_equal(decode5(&b, &pkt), MQTT_ERR_TOPIC_FILTER);
    static const uint8_t ok[] = {0xa2, 0x0d, 0x00, 0x02, 0x07, 0x26, 0,  1,
                                 'k',  0,    1,    'v',  0,    1,    'f'};
    b = FROM(ok);
    assert_int_equal(decode5(&b, &pkt), MQTT_OK);
    assert_int_equal(pkt.u.subscribe.props.user_property_count, 1);
    assert_int_equal(pkt.u.subscribe.count, 1);
    assert_round_trip(&b);
}

/* ---- helpers ---------------------------------------------------------------- */

/* A PUBLISH header with properties, and the payload, make the whole packet. */
static void test_v5_publish_header_with_properties(void **state)
{
    (void)state;
    static const uint32_t ids[] = {3, 400};
    struct mqtt_publish pub = {.qos = 1, .packet_id = 9};
    pub.topic = mqtt_bytes_from_cstr("s/t");
    pub.payload = mqtt_bytes_from_cstr("payload");
    pub.props.present = MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY_INTERVAL);
    pub.props.message_expiry_interval_s = 60;
    pub.props.subscription_ids = ids;
    pub.props.subscription_id_count = 2;
    pub.props.extra = (struct mqtt_bytes){(const uint8_t *)"\x03\x00\x01j", 4};
    struct mqtt_packet whole = {.type = MQTT_PUBLISH, .protocol_level = V5, .u.publish = pub};
    uint8_t all[128], hdr[128];
    size_t n = 0, h = 0;
    assert_int_equal(mqtt_encode(&whole, all, sizeof(all), &n), MQTT_OK);
    size_t hs = mqtt_publish_header_size(&pub, V5);
    assert_int_equal(hs + pub.payload.len, n);
    assert_int_equal(mqtt_encode_publish_header_for(&pub, V5, hdr, hs - 1, &h),
                     MQTT_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(mqtt_encode_publish_header_for(&pub, V5, hdr, hs, &h), MQTT_OK);
    assert_int_equal(h, hs);
    assert_memory_equal(hdr, all, h);
    struct buf b = from(all, n);
    struct mqtt_packet back;
    assert_int_equal(decode5(&b, &back), MQTT_OK);
    assert_int_equal(back.u.publish.props.message_expiry_interval_s, 60);
    assert_int_equal(back.u.publish.props.subscription_id_count, 2);
    assert_int_equal(back.u.publish.props.content_type.len, 1);
    /* at 3.1.1 the properties are not written */
    assert_int_equal(mqtt_publish_header_size(&pub, MQTT_PROTOCOL_V311), 1 + 1 + 5 + 2);
}

/* Maximum Packet Size: drop Reason String, then User Properties, never more. */
static void test_v5_fit_packet_drops_reason_string_then_user_properties_MQTT_3_4_2_2(void **state)
{
    (void)state;
    struct mqtt_user_property up = {mqtt_bytes_from_cstr("key"), mqtt_bytes_from_cstr("value")};
    struct mqtt_packet pkt = {.type = MQTT_PUBACK, .protocol_level = V5};
    pkt.u.ack.packet_id = 1;
    pkt.u.ack.reason_code = MQTT_RC_NOT_AUTHORIZED;
    pkt.u.ack.props.present = MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
    pkt.u.ack.props.reason_string = mqtt_bytes_from_cstr("no write access to this topic");
    pkt.u.ack.props.user_properties = &up;
    pkt.u.ack.props.user_property_count = 1;
    size_t full = mqtt_encoded_size(&pkt), size = 0;
    assert_int_equal(mqtt_fit_packet(&pkt, 0, &size), MQTT_OK);
    assert_int_equal(size, full);
    assert_int_equal(mqtt_fit_packet(&pkt, full, &size), MQTT_OK);
    assert_int_equal(size, full);
    assert_int_equal(mqtt_fit_packet(&pkt, 20, &size), MQTT_OK);
    assert_false(mqtt_properties_has(&pkt.u.ack.props, MQTT_PROP_REASON_STRING));
    assert_int_equal(pkt.u.ack.props.user_property_count, 1);
    assert_int_equal(size, 5 + 1 + 1 + 2 + 3 + 2 + 5);
    assert_int_equal(mqtt_fit_packet(&pkt, 5, &size), MQTT_OK);
    assert_int_equal(pkt.u.ack.props.user_property_count, 0);
    assert_int_equal(size, 5); /* id + reason */
    assert_int_equal(mqtt_fit_packet(&pkt, 4, &size), MQTT_ERR_TOO_LARGE);
    /* a PUBLISH keeps its properties: it is dropped whole [MQTT-3.1.2-25] */
    struct mqtt_packet pub = {.type = MQTT_PUBLISH, .protocol_level = V5};
    pub.u.publish.topic = mqtt_bytes_from_cstr("t");
    pub.u.publish.props.user_properties = &up;
    pub.u.publish.props.user_property_count = 1;
    assert_int_equal(mqtt_fit_packet(&pub, 8, &size), MQTT_ERR_TOO_LARGE);
    assert_int_equal(pub.u.publish.props.user_property_count, 1);
}

/* A stored PUBLISH's properties without the per-hop ones. */
static void test_v5_properties_copy_drops_per_hop_properties(void **state)
{
    (void)state;
    static const uint8_t block[] = {0x23, 0,    5,    0x26, 0, 1, 'k', 0, 1,    'v',
                                    0x0b, 0x81, 0x01, 0x02, 0, 0, 0,   9, 0x01, 1};
    static const uint8_t kept[] = {0x26, 0, 1, 'k', 0, 1, 'v', 0x01, 1};
    uint8_t out[sizeof(block)];
    size_t n = 0;
    uint64_t drop = MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS) |
                    MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_IDENTIFIER) |
                    MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY_INTERVAL);
    struct mqtt_bytes in = {block, sizeof(block)};
    assert_int_equal(mqtt_properties_copy(in, drop, out, sizeof(out), &n), MQTT_OK);
    assert_int_equal(n, sizeof(kept));
    assert_memory_equal(out, kept, n);
    assert_int_equal(mqtt_properties_copy(in, 0, out, sizeof(out), &n), MQTT_OK);
    assert_int_equal(n, sizeof(block));
    assert_int_equal(mqtt_properties_copy(in, 0, out, 5, &n), MQTT_ERR_BUFFER_TOO_SMALL);
    in.len = 5; /* cut inside the user property */
    assert_int_equal(mqtt_properties_copy(in, 0, out, sizeof(out), &n), MQTT_ERR_TRUNCATED);
}

/* The pre-CONNECT bounds: 3.1.1 unchanged, v5 = that + 64 KiB of properties. */
static void test_v5_connect_max_packet_size(void **state)
{
    (void)state;
    assert_int_equal(MQTT_CONNECT_MAX_PACKET_SIZE, 327701);
    assert_int_equal(MQTT_CONNECT_MAX_PACKET_SIZE_V5, 327701 + 65536);
    /* the largest v5 CONNECT: five 65535-byte fields and 64 KiB of properties */
    size_t props = MQTT_V5_CONNECT_PROPERTIES_ALLOWANCE;
    size_t body = 10 + 5 * (2 + 65535u) + props;
    assert_true(1 + 3 + body <= MQTT_CONNECT_MAX_PACKET_SIZE_V5);
}

/* The property iterator stops at what it cannot read, never past the block. */
static void test_v5_property_iter_is_bounds_checked(void **state)
{
    (void)state;
    static const uint8_t block[] = {0x23, 0, 5, 0x1f, 0, 9, 'x'};
    struct mqtt_property_iter it;
    struct mqtt_property p;
    mqtt_property_iter_init_raw(&it, (struct mqtt_bytes){block, sizeof(block)});
    assert_true(mqtt_property_iter_next(&it, &p));
    assert_int_equal(p.id, MQTT_PROP_TOPIC_ALIAS);
    assert_int_equal(p.value, 5);
    assert_int_equal(p.wire.len, 3);
    assert_false(mqtt_property_iter_next(&it, &p));
    assert_false(mqtt_property_iter_next(&it, &p));
    mqtt_property_iter_init_raw(&it, (struct mqtt_bytes){NULL, 0});
    assert_false(mqtt_property_iter_next(&it, &p));
}

/* The encoder refuses what the decoder would refuse. */
static void test_v5_encode_refuses_invalid_fields(void **state)
{
    (void)state;
    static const uint8_t bad_code[] = {0x00, 0x03};
    static const uint8_t big[70000] = {0};
    struct mqtt_packet p = {.type = MQTT_CONNACK, .protocol_level = V5};
    p.u.connack.return_code = 0x04; /* not a CONNACK reason */
    assert_int_equal(mqtt_encoded_size(&p), 0);
    p = (struct mqtt_packet){.type = MQTT_SUBACK, .protocol_level = V5};
    p.u.suback.packet_id = 1;
    assert_int_equal(mqtt_encoded_size(&p), 0); /* no code */
    p.u.suback.return_codes = (struct mqtt_bytes){bad_code, 2};
    assert_int_equal(mqtt_encoded_size(&p), 0);
    p.u.suback.return_codes.len = 1;
    p.u.suback.props.present = MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
    assert_int_equal(mqtt_encoded_size(&p), 0);
    p = (struct mqtt_packet){.type = MQTT_UNSUBACK, .protocol_level = V5};
    p.u.ack.packet_id = 1;
    p.u.ack.reason_codes = (struct mqtt_bytes){bad_code, 1};
    p.u.ack.props.present = MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY_INTERVAL);
    assert_int_equal(mqtt_encoded_size(&p), 0);
    p.u.ack.props.present = 0;
    assert_int_equal(mqtt_encoded_size(&p), 6);
    /* a string property longer than 65535 bytes; a subscription id on a PUBACK */
    p = (struct mqtt_packet){.type = MQTT_DISCONNECT, .protocol_level = V5};
    p.u.disconnect.props.present = MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
    p.u.disconnect.props.reason_string = (struct mqtt_bytes){big, sizeof(big)};
    assert_int_equal(mqtt_encoded_size(&p), 0);
    size_t size = 0;
    assert_int_equal(mqtt_fit_packet(&p, 10, &size), MQTT_ERR_INVALID_ARGUMENT);
    p = (struct mqtt_packet){.type = MQTT_PUBACK, .protocol_level = V5};
    p.u.ack.packet_id = 1;
    p.u.ack.props.present = MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_IDENTIFIER);
    p.u.ack.props.subscription_identifier = 1;
    assert_int_equal(mqtt_encoded_size(&p), 0);
    /* a user property with a name too long */
    struct mqtt_user_property up = {{big, sizeof(big)}, {NULL, 0}};
    p.u.ack.props = (struct mqtt_properties){.user_properties = &up, .user_property_count = 1};
    assert_int_equal(mqtt_encoded_size(&p), 0);
    p.u.ack.props.user_properties = NULL; /* a count without the array */
    assert_int_equal(mqtt_encoded_size(&p), 0);
}

/* A single Subscription Identifier given as a field (no array) in SUBSCRIBE. */
static void test_v5_subscribe_subscription_identifier_from_field_3_8_2_1_2(void **state)
{
    (void)state;
    struct mqtt_topic_entry e = {mqtt_bytes_from_cstr("t"), 1};
    struct mqtt_packet p = {.type = MQTT_SUBSCRIBE, .protocol_level = V5};
    p.u.subscribe = (struct mqtt_subscribe){.packet_id = 3, .count = 1, .entries = &e};
    p.u.subscribe.props.present = MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_IDENTIFIER);
    p.u.subscribe.props.subscription_identifier = 128;
    static const uint8_t want[] = {0x82, 0x0a, 0, 3, 3, 0x0b, 0x80, 0x01, 0, 1, 't', 1};
    struct buf w = FROM(want);
    assert_encodes_to(&p, &w);
    assert_round_trip(&w);
}

/* mqtt_fit_packet on every packet it may trim, and a 3.1.1 packet it must not. */
static void test_v5_fit_packet_on_every_trimmable_packet(void **state)
{
    (void)state;
    static const uint8_t code = 0;
    static const uint8_t types[] = {MQTT_CONNACK,  MQTT_PUBREL,     MQTT_SUBACK,
                                    MQTT_UNSUBACK, MQTT_DISCONNECT, MQTT_AUTH};
    for (size_t i = 0; i < sizeof(types); i++) {
        struct mqtt_packet p = {.type = types[i], .protocol_level = V5};
        struct mqtt_properties *props = props_of(&p, types[i]);
        p.u.ack.packet_id = 1; /* harmless for the others: overwritten below */
        if (types[i] == MQTT_SUBACK) {
            p.u.suback.packet_id = 1;
            p.u.suback.return_codes = (struct mqtt_bytes){&code, 1};
        } else if (types[i] == MQTT_UNSUBACK) {
            p.u.ack.reason_codes = (struct mqtt_bytes){&code, 1};
        } else if (types[i] == MQTT_CONNACK || types[i] == MQTT_DISCONNECT ||
                   types[i] == MQTT_AUTH) {
            memset(&p.u, 0, sizeof(p.u));
            props = props_of(&p, types[i]);
        }
        props->present = MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
        props->reason_string = mqtt_bytes_from_cstr("a long enough reason string");
        size_t full = mqtt_encoded_size(&p), size = 0;
        assert_true(full > 30);
        assert_int_equal(mqtt_fit_packet(&p, 10, &size), MQTT_OK);
        assert_true(size <= 10);
        assert_false(mqtt_properties_has(props, MQTT_PROP_REASON_STRING));
    }
    /* 3.1.1 has nothing to drop */
    struct mqtt_packet old = {.type = MQTT_PUBACK};
    old.u.ack.packet_id = 1;
    size_t size = 0;
    assert_int_equal(mqtt_fit_packet(&old, 3, &size), MQTT_ERR_TOO_LARGE);
    assert_int_equal(size, 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v5_every_property_on_every_packet_2_2_2_2),
        cmocka_unit_test(test_v5_every_property_twice_is_protocol_error),
        cmocka_unit_test(test_v5_every_property_encodes_from_fields),
        cmocka_unit_test(test_v5_unknown_property_identifier_is_malformed),
        cmocka_unit_test(test_v5_byte_properties_other_than_0_or_1_are_protocol_errors),
        cmocka_unit_test(test_v5_zero_values_are_protocol_errors),
        cmocka_unit_test(test_v5_subscription_identifier_range_1_5_5),
        cmocka_unit_test(test_v5_response_topic_must_be_a_topic_name_MQTT_3_3_2_14),
        cmocka_unit_test(test_v5_strings_in_properties_must_be_utf8_MQTT_1_5_4_1),
        cmocka_unit_test(test_v5_authentication_data_without_method_is_protocol_error),
        cmocka_unit_test(test_v5_property_block_truncations_are_malformed),
        cmocka_unit_test(test_v5_user_properties_in_order_with_duplicates),
        cmocka_unit_test(test_v5_publish_carries_several_subscription_identifiers),
        cmocka_unit_test(test_v5_encode_refuses_property_not_allowed_on_packet),
        cmocka_unit_test(test_v5_reason_code_tables_2_4),
        cmocka_unit_test(test_v5_every_reason_code_on_every_packet),
        cmocka_unit_test(test_v5_reason_names_follow_the_spec),
        cmocka_unit_test(test_v5_reason_for_error_4_13),
        cmocka_unit_test(test_v5_puback_short_forms_3_4_2_1),
        cmocka_unit_test(test_v5_disconnect_short_forms_3_14_2_1),
        cmocka_unit_test(test_v5_auth_packet_3_15),
        cmocka_unit_test(test_v5_auth_method_and_data_encoded_from_fields),
        cmocka_unit_test(test_v5_connect_spec_example_3_1_2_12),
        cmocka_unit_test(test_v5_connect_needs_caller_at_level_5_MQTT_3_1_2_2),
        cmocka_unit_test(test_v5_connect_flags_3_1_2_3),
        cmocka_unit_test(test_v5_connack_3_2),
        cmocka_unit_test(test_v5_publish_topic_alias_3_3_2_3_4),
        cmocka_unit_test(test_v5_subscribe_options_3_8_3_1),
        cmocka_unit_test(test_v5_suback_unsuback_3_9_3_11),
        cmocka_unit_test(test_v5_unsubscribe_3_10),
        cmocka_unit_test(test_v5_publish_header_with_properties),
        cmocka_unit_test(test_v5_fit_packet_drops_reason_string_then_user_properties_MQTT_3_4_2_2),
        cmocka_unit_test(test_v5_properties_copy_drops_per_hop_properties),
        cmocka_unit_test(test_v5_connect_max_packet_size),
        cmocka_unit_test(test_v5_property_iter_is_bounds_checked),
        cmocka_unit_test(test_v5_encode_refuses_invalid_fields),
        cmocka_unit_test(test_v5_subscribe_subscription_identifier_from_field_3_8_2_1_2),
        cmocka_unit_test(test_v5_fit_packet_on_every_trimmable_packet),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
