/*
 * test_mqtt_encode.c - mqtt_encode() and friends: a round trip for every
 * packet type (encode -> frame -> decode -> same fields, and decode -> encode
 * -> same bytes), argument checks, short buffers, the zero-copy PUBLISH
 * header, the topic iterator on caller-built packets, and the name tables.
 *
 * Not for: malformed input (test_mqtt_decode.c) or streams (test_mqtt_frame.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mqtt.h"

#define BUF_CAP 1024

static struct mqtt_bytes str(const char *s)
{
    struct mqtt_bytes b = {(const uint8_t *)s, strlen(s)};
    return b;
}

static struct mqtt_bytes bin(const void *p, size_t len)
{
    struct mqtt_bytes b = {p, len};
    return b;
}

static void assert_same(struct mqtt_bytes a, struct mqtt_bytes b)
{
    assert_int_equal(a.len, b.len);
    if (a.len > 0)
        assert_memory_equal(a.data, b.data, a.len);
}

/*
 * Encodes *in into buf, checks the size against mqtt_encoded_size() and that
 * one byte less is too small, frames and decodes it into *out (views into
 * buf), and re-encodes *out to the same bytes.
 */
static void roundtrip(const struct mqtt_packet *in, uint8_t *buf, struct mqtt_packet *out)
{
    size_t size = mqtt_encoded_size(in);
    size_t written = 0;
    assert_true(size > 0 && size <= BUF_CAP);
    assert_int_equal(mqtt_encode(in, buf, size - 1, &written), MQTT_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(mqtt_encode(in, buf, BUF_CAP, &written), MQTT_OK);
    assert_int_equal(written, size);

    struct mqtt_frame frame;
    assert_int_equal(mqtt_frame(buf, written, 0, &frame), MQTT_OK);
    assert_int_equal(frame.total_len, written);
    assert_int_equal(mqtt_decode(&frame, out), MQTT_OK);
    assert_int_equal(out->type, in->type);

    uint8_t again[BUF_CAP];
    size_t written2 = 0;
    assert_int_equal(mqtt_encode(out, again, sizeof(again), &written2), MQTT_OK);
    assert_int_equal(written2, written);
    assert_memory_equal(again, buf, written);
}

static void test_roundtrip_connect_with_will_user_password(void **state)
{
    (void)state;
    struct mqtt_packet in = {.type = MQTT_CONNECT};
    struct mqtt_connect *c = &in.u.connect;
    c->protocol_name = str("MQTT");
    c->protocol_level = 4;
    c->clean_session = true;
    c->has_will = true;
    c->will_qos = 2;
    c->will_retain = true;
    c->has_username = true;
    c->has_password = true;
    c->keepalive_s = 65535;
    c->client_id = str("sensor-7");
    c->will_topic = str("dev/sensor-7/status");
    c->will_payload = bin("\0off\0", 5);
    c->username = str("user");
    c->password = bin("\0\xff\xfe", 3);

    uint8_t buf[BUF_CAP];
    struct mqtt_packet out;
    roundtrip(&in, buf, &out);
    const struct mqtt_connect *d = &out.u.connect;
    assert_same(d->protocol_name, c->protocol_name);
    assert_int_equal(d->protocol_level, 4);
    assert_true(d->clean_session && d->has_will && d->will_retain);
    assert_true(d->has_username && d->has_password);
    assert_int_equal(d->will_qos, 2);
    assert_int_equal(d->keepalive_s, 65535);
    assert_same(d->client_id, c->client_id);
    assert_same(d->will_topic, c->will_topic);
    assert_same(d->will_payload, c->will_payload);
    assert_same(d->username, c->username);
    assert_same(d->password, c->password);
}

static void test_roundtrip_connect_mqisdp_minimal(void **state)
{
    (void)state;
    struct mqtt_packet in = {.type = MQTT_CONNECT};
    in.u.connect.protocol_name = str("MQIsdp");
    in.u.connect.protocol_level = 3;
    in.u.connect.keepalive_s = 0;
    uint8_t buf[BUF_CAP];
    struct mqtt_packet out;
    roundtrip(&in, buf, &out);
    assert_int_equal(buf[0], 0x10);
    assert_int_equal(out.u.connect.client_id.len, 0);
    assert_false(out.u.connect.clean_session || out.u.connect.has_will);
    assert_false(out.u.connect.has_username || out.u.connect.has_password);
}

static void test_roundtrip_connack(void **state)
{
    (void)state;
    struct mqtt_packet in = {.type = MQTT_CONNACK};
    in.u.connack.session_present = true;
    in.u.connack.return_code = MQTT_CONNACK_ACCEPTED;
    uint8_t buf[BUF_CAP];
    struct mqtt_packet out;
    roundtrip(&in, buf, &out);
    static const uint8_t want[] = {0x20, 2, 1, 0};
    assert_memory_equal(buf, want, sizeof(want));
    assert_true(out.u.connack.session_present);

    in.u.connack.session_present = false;
    in.u.connack.return_code = MQTT_CONNACK_BAD_PROTOCOL;
    roundtrip(&in, buf, &out);
    assert_false(out.u.connack.session_present);
    assert_int_equal(out.u.connack.return_code, 1);
}

static void test_roundtrip_publish_each_qos_with_binary_payload(void **state)
{
    (void)state;
    static const uint8_t payload[] = {0, 1, 0, 0xff, 0};
    for (uint8_t qos = 0; qos <= 2; qos++) {
        struct mqtt_packet in = {.type = MQTT_PUBLISH};
        in.u.publish.qos = qos;
        in.u.publish.dup = qos == 2;
        in.u.publish.retain = qos == 1;
        in.u.publish.topic = str("a/b/c");
        in.u.publish.packet_id = qos > 0 ? 0xfffe : 0;
        in.u.publish.payload = bin(payload, sizeof(payload));
        uint8_t buf[BUF_CAP];
        struct mqtt_packet out;
        roundtrip(&in, buf, &out);
        const struct mqtt_publish *p = &out.u.publish;
        assert_int_equal(p->qos, qos);
        assert_int_equal(p->dup, qos == 2);
        assert_int_equal(p->retain, qos == 1);
        assert_int_equal(p->packet_id, in.u.publish.packet_id);
        assert_same(p->topic, in.u.publish.topic);
        assert_same(p->payload, in.u.publish.payload);
    }
}

/* A QoS 0 PUBLISH carries no packet id, whatever the struct holds. */
static void test_encode_publish_qos0_ignores_packet_id(void **state)
{
    (void)state;
    struct mqtt_packet in = {.type = MQTT_PUBLISH};
    in.u.publish.topic = str("t");
    in.u.publish.packet_id = 77;
    uint8_t buf[16];
    size_t written = 0;
    assert_int_equal(mqtt_encode(&in, buf, sizeof(buf), &written), MQTT_OK);
    static const uint8_t want[] = {0x30, 3, 0, 1, 't'};
    assert_int_equal(written, sizeof(want));
    assert_memory_equal(buf, want, sizeof(want));
}

static void test_roundtrip_acks(void **state)
{
    (void)state;
    static const uint8_t types[] = {MQTT_PUBACK, MQTT_PUBREC, MQTT_PUBREL, MQTT_PUBCOMP,
                                    MQTT_UNSUBACK};
    static const uint8_t heads[] = {0x40, 0x50, 0x62, 0x70, 0xb0};
    for (size_t i = 0; i < sizeof(types); i++) {
        struct mqtt_packet in = {.type = types[i]};
        in.u.ack.packet_id = 0x0102;
        uint8_t buf[BUF_CAP];
        struct mqtt_packet out;
        roundtrip(&in, buf, &out);
        uint8_t want[] = {heads[i], 2, 1, 2};
        assert_memory_equal(buf, want, sizeof(want));
        assert_int_equal(out.u.ack.packet_id, 0x0102);
    }
}

static void test_roundtrip_subscribe_from_entries(void **state)
{
    (void)state;
    static const struct mqtt_topic_entry entries[] = {
        {{(const uint8_t *)"a/b", 3}, 1},
        {{(const uint8_t *)"c/d", 3}, 2},
    };
    struct mqtt_packet in = {.type = MQTT_SUBSCRIBE};
    in.u.subscribe.packet_id = 10;
    in.u.subscribe.entries = entries;
    in.u.subscribe.count = 2;
    uint8_t buf[BUF_CAP];
    struct mqtt_packet out;
    roundtrip(&in, buf, &out);
    /* The example of 3.8.3 byte for byte. */
    static const uint8_t want[] = {0x82, 14, 0, 10, 0, 3, 'a', '/', 'b', 1, 0, 3, 'c', '/', 'd', 2};
    assert_memory_equal(buf, want, sizeof(want));
    assert_int_equal(out.u.subscribe.packet_id, 10);
    assert_int_equal(out.u.subscribe.count, 2);

    struct mqtt_topic_iter it;
    struct mqtt_topic_entry e;
    mqtt_topic_iter_init(&it, &out);
    for (size_t i = 0; i < 2; i++) {
        assert_true(mqtt_topic_iter_next(&it, &e));
        assert_same(e.filter, entries[i].filter);
        assert_int_equal(e.qos, entries[i].qos);
    }
    assert_false(mqtt_topic_iter_next(&it, &e));
}

static void test_roundtrip_unsubscribe_from_entries_and_raw(void **state)
{
    (void)state;
    static const struct mqtt_topic_entry entries[] = {
        {{(const uint8_t *)"a/b", 3}, 0},
        {{(const uint8_t *)"c/#", 3}, 0},
    };
    struct mqtt_packet in = {.type = MQTT_UNSUBSCRIBE};
    in.u.subscribe.packet_id = 10;
    in.u.subscribe.entries = entries;
    in.u.subscribe.count = 2;
    uint8_t buf[BUF_CAP];
    struct mqtt_packet out;
    roundtrip(&in, buf, &out);
    static const uint8_t want[] = {0xa2, 12, 0, 10, 0, 3, 'a', '/', 'b', 0, 3, 'c', '/', '#'};
    assert_memory_equal(buf, want, sizeof(want));
    assert_int_equal(out.u.subscribe.count, 2);
    assert_null(out.u.subscribe.entries);

    /* From raw: the decoded packet re-encodes (checked inside roundtrip too). */
    struct mqtt_packet raw = {.type = MQTT_UNSUBSCRIBE};
    raw.u.subscribe.packet_id = 11;
    raw.u.subscribe.raw = bin(want + 4, sizeof(want) - 4);
    uint8_t buf2[BUF_CAP];
    roundtrip(&raw, buf2, &out);
    assert_int_equal(out.u.subscribe.packet_id, 11);
    assert_int_equal(out.u.subscribe.count, 2);
}

static void test_roundtrip_suback_with_zero_codes(void **state)
{
    (void)state;
    static const uint8_t codes[] = {0, 0, 0x80, 1, 2, 0};
    struct mqtt_packet in = {.type = MQTT_SUBACK};
    in.u.suback.packet_id = 300;
    in.u.suback.return_codes = bin(codes, sizeof(codes));
    uint8_t buf[BUF_CAP];
    struct mqtt_packet out;
    roundtrip(&in, buf, &out);
    assert_int_equal(out.u.suback.packet_id, 300);
    assert_same(out.u.suback.return_codes, in.u.suback.return_codes);
}

static void test_roundtrip_bodiless_packets(void **state)
{
    (void)state;
    static const uint8_t types[] = {MQTT_PINGREQ, MQTT_PINGRESP, MQTT_DISCONNECT};
    static const uint8_t heads[] = {0xc0, 0xd0, 0xe0};
    for (size_t i = 0; i < sizeof(types); i++) {
        struct mqtt_packet in = {.type = types[i]};
        uint8_t buf[BUF_CAP];
        struct mqtt_packet out;
        roundtrip(&in, buf, &out);
        assert_int_equal(buf[0], heads[i]);
        assert_int_equal(buf[1], 0);
        assert_int_equal(mqtt_encoded_size(&in), 2);
    }
}

/* A 200-byte PUBLISH needs a 2-byte Remaining Length (the tutorial broke above 127). */
static void test_roundtrip_publish_above_127_bytes(void **state)
{
    (void)state;
    uint8_t payload[200];
    memset(payload, 0, sizeof(payload));
    payload[199] = 9;
    struct mqtt_packet in = {.type = MQTT_PUBLISH};
    in.u.publish.topic = str("x");
    in.u.publish.payload = bin(payload, sizeof(payload));
    uint8_t buf[BUF_CAP];
    struct mqtt_packet out;
    roundtrip(&in, buf, &out);
    assert_int_equal(buf[1], (203 & 0x7f) | 0x80);
    assert_int_equal(buf[2], 1);
    assert_same(out.u.publish.payload, in.u.publish.payload);
}

/* ---- invalid arguments --------------------------------------------------- */

static void assert_invalid(const struct mqtt_packet *pkt)
{
    uint8_t buf[64];
    size_t written = 0;
    assert_int_equal(mqtt_encoded_size(pkt), 0);
    assert_int_equal(mqtt_encode(pkt, buf, sizeof(buf), &written), MQTT_ERR_INVALID_ARGUMENT);
}

static void test_encode_rejects_unknown_types(void **state)
{
    (void)state;
    struct mqtt_packet pkt = {.type = 0};
    assert_invalid(&pkt);
    pkt.type = 15;
    assert_invalid(&pkt);
}

static void test_encode_publish_rejects_qos_3_packet_id_0_and_dup_at_qos0(void **state)
{
    (void)state;
    struct mqtt_packet pkt = {.type = MQTT_PUBLISH};
    pkt.u.publish.topic = str("t");
    pkt.u.publish.qos = 3;
    pkt.u.publish.packet_id = 1;
    assert_invalid(&pkt);
    pkt.u.publish.qos = 1;
    pkt.u.publish.packet_id = 0;
    assert_invalid(&pkt);
    pkt.u.publish.qos = 2;
    assert_invalid(&pkt);
    pkt.u.publish.qos = 0;
    pkt.u.publish.dup = true; /* [MQTT-3.3.1-2] */
    assert_invalid(&pkt);
    size_t h = 0;
    uint8_t hdr[16];
    assert_int_equal(mqtt_encode_publish_header(&pkt.u.publish, hdr, sizeof(hdr), &h),
                     MQTT_ERR_INVALID_ARGUMENT);
}

static void test_encode_rejects_strings_longer_than_65535(void **state)
{
    (void)state;
    uint8_t *big = calloc(1, 65536);
    assert_non_null(big);
    struct mqtt_packet pub = {.type = MQTT_PUBLISH};
    pub.u.publish.topic = bin(big, 65536);
    assert_invalid(&pub);
    pub.u.publish.topic.len = 65535;
    assert_int_equal(mqtt_encoded_size(&pub), 1 + 3 + 2 + 65535);

    struct mqtt_packet con = {.type = MQTT_CONNECT};
    con.u.connect.protocol_name = str("MQTT");
    con.u.connect.protocol_level = 4;
    con.u.connect.client_id = bin(big, 65536);
    assert_invalid(&con);
    con.u.connect.client_id = str("c");
    con.u.connect.has_username = true;
    con.u.connect.has_password = true;
    con.u.connect.password = bin(big, 65536);
    assert_invalid(&con);

    struct mqtt_topic_entry e = {bin(big, 65536), 0};
    struct mqtt_packet sub = {.type = MQTT_SUBSCRIBE};
    sub.u.subscribe.packet_id = 1;
    sub.u.subscribe.entries = &e;
    sub.u.subscribe.count = 1;
    assert_invalid(&sub);
    free(big);
}

static void test_encode_connect_rejects_inconsistent_flags(void **state)
{
    (void)state;
    struct mqtt_packet pkt = {.type = MQTT_CONNECT};
    pkt.u.connect.protocol_name = str("MQTT");
    pkt.u.connect.protocol_level = 4;
    pkt.u.connect.will_qos = 1; /* without will [MQTT-3.1.2-13] */
    assert_invalid(&pkt);
    pkt.u.connect.will_qos = 0;
    pkt.u.connect.will_retain = true; /* [MQTT-3.1.2-15] */
    assert_invalid(&pkt);
    pkt.u.connect.has_will = true;
    pkt.u.connect.will_topic = str("w");
    pkt.u.connect.will_qos = 3; /* [MQTT-3.1.2-14] */
    assert_invalid(&pkt);
    pkt.u.connect.will_qos = 1;
    pkt.u.connect.has_password = true; /* without username [MQTT-3.1.2-22] */
    assert_invalid(&pkt);
    pkt.u.connect.has_username = true;
    assert_true(mqtt_encoded_size(&pkt) > 0);
}

static void test_encode_acks_reject_packet_id_0(void **state)
{
    (void)state;
    static const uint8_t types[] = {MQTT_PUBACK,   MQTT_PUBREC, MQTT_PUBREL,    MQTT_PUBCOMP,
                                    MQTT_UNSUBACK, MQTT_SUBACK, MQTT_SUBSCRIBE, MQTT_UNSUBSCRIBE};
    static const uint8_t code = 0;
    static const struct mqtt_topic_entry e = {{(const uint8_t *)"a", 1}, 0};
    for (size_t i = 0; i < sizeof(types); i++) {
        struct mqtt_packet pkt = {.type = types[i]};
        if (types[i] == MQTT_SUBACK)
            pkt.u.suback.return_codes = bin(&code, 1);
        if (types[i] == MQTT_SUBSCRIBE || types[i] == MQTT_UNSUBSCRIBE) {
            pkt.u.subscribe.entries = &e;
            pkt.u.subscribe.count = 1;
        }
        assert_invalid(&pkt);
    }
}

static void test_encode_subscribe_rejects_empty_and_qos_3(void **state)
{
    (void)state;
    struct mqtt_topic_entry e = {{(const uint8_t *)"a", 1}, 3};
    struct mqtt_packet pkt = {.type = MQTT_SUBSCRIBE};
    pkt.u.subscribe.packet_id = 1;
    assert_invalid(&pkt); /* no entries, empty raw [MQTT-3.8.3-3] */
    pkt.u.subscribe.entries = &e;
    assert_invalid(&pkt); /* count 0 */
    pkt.u.subscribe.count = 1;
    assert_invalid(&pkt); /* requested QoS 3 */
    pkt.type = MQTT_UNSUBSCRIBE;
    assert_int_equal(mqtt_encoded_size(&pkt), 2 + 2 + 3); /* QoS is not encoded */

    static const uint8_t dummy[1] = {0};
    pkt.u.subscribe.entries = NULL;
    pkt.u.subscribe.raw = bin(dummy, (size_t)MQTT_MAX_REMAINING_LENGTH + 1);
    assert_invalid(&pkt);
    pkt.u.subscribe.raw.len = MQTT_MAX_REMAINING_LENGTH - 1; /* + packet id: one too many */
    assert_invalid(&pkt);
}

static void test_encode_suback_rejects_empty_and_bad_codes_MQTT_3_9_3_2(void **state)
{
    (void)state;
    static const uint8_t codes[] = {0, 3};
    struct mqtt_packet pkt = {.type = MQTT_SUBACK};
    pkt.u.suback.packet_id = 1;
    assert_invalid(&pkt);
    pkt.u.suback.return_codes = bin(codes, sizeof(codes));
    assert_invalid(&pkt);
    pkt.u.suback.return_codes.len = 1;
    assert_int_equal(mqtt_encoded_size(&pkt), 5);
}

static void test_encode_small_buffer_for_every_type(void **state)
{
    (void)state;
    static const uint8_t code = 1;
    static const struct mqtt_topic_entry e = {{(const uint8_t *)"a", 1}, 1};
    for (uint8_t type = MQTT_CONNECT; type <= MQTT_DISCONNECT; type++) {
        struct mqtt_packet pkt = {.type = type};
        pkt.u.connect.protocol_name = str("MQTT"); /* only read for CONNECT */
        if (type == MQTT_PUBLISH) {
            memset(&pkt.u.publish, 0, sizeof(pkt.u.publish));
            pkt.u.publish.topic = str("t");
        }
        if (type == MQTT_SUBACK) {
            pkt.u.suback.packet_id = 1;
            pkt.u.suback.return_codes = bin(&code, 1);
        } else if (type == MQTT_SUBSCRIBE || type == MQTT_UNSUBSCRIBE) {
            pkt.u.subscribe.packet_id = 1;
            pkt.u.subscribe.entries = &e;
            pkt.u.subscribe.count = 1;
        } else if (type != MQTT_CONNECT && type != MQTT_PUBLISH) {
            pkt.u.ack.packet_id = 1;
        }
        size_t size = mqtt_encoded_size(&pkt);
        assert_true(size >= 2);
        uint8_t buf[64];
        size_t written = 0;
        assert_int_equal(mqtt_encode(&pkt, buf, 0, &written), MQTT_ERR_BUFFER_TOO_SMALL);
        assert_int_equal(mqtt_encode(&pkt, buf, size - 1, &written), MQTT_ERR_BUFFER_TOO_SMALL);
        assert_int_equal(mqtt_encode(&pkt, buf, size, &written), MQTT_OK);
        assert_int_equal(written, size);
    }
}

/* ---- zero-copy PUBLISH header ------------------------------------------ */

static void test_publish_header_plus_payload_equals_whole_packet(void **state)
{
    (void)state;
    static const uint8_t payload[300] = {0};
    for (uint8_t qos = 0; qos <= 2; qos++) {
        struct mqtt_packet pkt = {.type = MQTT_PUBLISH};
        pkt.u.publish.qos = qos;
        pkt.u.publish.retain = true;
        pkt.u.publish.packet_id = qos > 0 ? 9 : 0;
        pkt.u.publish.topic = str("x/y");
        pkt.u.publish.payload = bin(payload, sizeof(payload));
        uint8_t whole[BUF_CAP];
        uint8_t hdr[MQTT_MAX_FIXED_HEADER + 2 + 3 + 2];
        size_t n = 0, h = 0;
        assert_int_equal(mqtt_encode(&pkt, whole, sizeof(whole), &n), MQTT_OK);
        assert_int_equal(mqtt_encode_publish_header(&pkt.u.publish, hdr, sizeof(hdr), &h), MQTT_OK);
        assert_int_equal(h + sizeof(payload), n);
        assert_memory_equal(hdr, whole, h);
        assert_int_equal(mqtt_encode_publish_header(&pkt.u.publish, hdr, h - 1, &h),
                         MQTT_ERR_BUFFER_TOO_SMALL);
    }
}

static void test_publish_header_rejects_invalid_arguments(void **state)
{
    (void)state;
    static const uint8_t dummy[1] = {0};
    struct mqtt_publish pub = {.qos = 3, .packet_id = 1, .topic = {(const uint8_t *)"t", 1}};
    uint8_t hdr[16];
    size_t h = 0;
    assert_int_equal(mqtt_encode_publish_header(&pub, hdr, sizeof(hdr), &h),
                     MQTT_ERR_INVALID_ARGUMENT);
    pub.qos = 1;
    pub.packet_id = 0;
    assert_int_equal(mqtt_encode_publish_header(&pub, hdr, sizeof(hdr), &h),
                     MQTT_ERR_INVALID_ARGUMENT);
    /* A payload that would push the Remaining Length past the maximum. */
    pub.packet_id = 1;
    pub.payload = bin(dummy, MQTT_MAX_REMAINING_LENGTH - 5);
    assert_int_equal(mqtt_encode_publish_header(&pub, hdr, sizeof(hdr), &h), MQTT_OK);
    assert_int_equal(h, 1 + 4 + 3 + 2);
    pub.payload.len++;
    assert_int_equal(mqtt_encode_publish_header(&pub, hdr, sizeof(hdr), &h),
                     MQTT_ERR_INVALID_ARGUMENT);
}

/* ---- topic iterator on caller-built packets ----------------------------- */

static void test_topic_iter_stops_on_truncated_raw_and_other_types(void **state)
{
    (void)state;
    static const uint8_t raw[] = {0, 1, 'a', 1, 0, 5, 'b'}; /* 2nd filter runs past the end */
    struct mqtt_packet pkt = {.type = MQTT_SUBSCRIBE};
    pkt.u.subscribe.raw = bin(raw, sizeof(raw));
    struct mqtt_topic_iter it;
    struct mqtt_topic_entry e;
    mqtt_topic_iter_init(&it, &pkt);
    assert_true(mqtt_topic_iter_next(&it, &e));
    assert_int_equal(e.qos, 1);
    assert_false(mqtt_topic_iter_next(&it, &e));

    pkt.u.subscribe.raw = bin(raw, 3); /* QoS byte missing */
    mqtt_topic_iter_init(&it, &pkt);
    assert_false(mqtt_topic_iter_next(&it, &e));

    struct mqtt_packet ping = {.type = MQTT_PINGREQ};
    mqtt_topic_iter_init(&it, &ping);
    assert_false(mqtt_topic_iter_next(&it, &e));
}

/* ---- names ---------------------------------------------------------------- */

static void test_strerror_names_every_code(void **state)
{
    (void)state;
    const char *unknown = mqtt_strerror(-1000);
    assert_non_null(unknown);
    for (int code = MQTT_ERR_INVALID_ARGUMENT; code <= MQTT_NEED_MORE; code++) {
        const char *s = mqtt_strerror(code);
        assert_non_null(s);
        assert_string_not_equal(s, unknown);
    }
    assert_string_equal(mqtt_strerror(2), unknown);
}

static void test_packet_name_every_type(void **state)
{
    (void)state;
    static const char *names[] = {"CONNECT",  "CONNACK", "PUBLISH",   "PUBACK",     "PUBREC",
                                  "PUBREL",   "PUBCOMP", "SUBSCRIBE", "SUBACK",     "UNSUBSCRIBE",
                                  "UNSUBACK", "PINGREQ", "PINGRESP",  "DISCONNECT", "AUTH"};
    for (uint8_t t = MQTT_CONNECT; t <= MQTT_AUTH; t++)
        assert_string_equal(mqtt_packet_name(t), names[t - 1]);
    assert_string_equal(mqtt_packet_name(0), "UNKNOWN");
    assert_string_equal(mqtt_packet_name(16), "UNKNOWN");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_connect_with_will_user_password),
        cmocka_unit_test(test_roundtrip_connect_mqisdp_minimal),
        cmocka_unit_test(test_roundtrip_connack),
        cmocka_unit_test(test_roundtrip_publish_each_qos_with_binary_payload),
        cmocka_unit_test(test_encode_publish_qos0_ignores_packet_id),
        cmocka_unit_test(test_roundtrip_acks),
        cmocka_unit_test(test_roundtrip_subscribe_from_entries),
        cmocka_unit_test(test_roundtrip_unsubscribe_from_entries_and_raw),
        cmocka_unit_test(test_roundtrip_suback_with_zero_codes),
        cmocka_unit_test(test_roundtrip_bodiless_packets),
        cmocka_unit_test(test_roundtrip_publish_above_127_bytes),
        cmocka_unit_test(test_encode_rejects_unknown_types),
        cmocka_unit_test(test_encode_publish_rejects_qos_3_packet_id_0_and_dup_at_qos0),
        cmocka_unit_test(test_encode_rejects_strings_longer_than_65535),
        cmocka_unit_test(test_encode_connect_rejects_inconsistent_flags),
        cmocka_unit_test(test_encode_acks_reject_packet_id_0),
        cmocka_unit_test(test_encode_subscribe_rejects_empty_and_qos_3),
        cmocka_unit_test(test_encode_suback_rejects_empty_and_bad_codes_MQTT_3_9_3_2),
        cmocka_unit_test(test_encode_small_buffer_for_every_type),
        cmocka_unit_test(test_publish_header_plus_payload_equals_whole_packet),
        cmocka_unit_test(test_publish_header_rejects_invalid_arguments),
        cmocka_unit_test(test_topic_iter_stops_on_truncated_raw_and_other_types),
        cmocka_unit_test(test_strerror_names_every_code),
        cmocka_unit_test(test_packet_name_every_type),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
