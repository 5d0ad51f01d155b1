/*
 * test_mqtt_decode.c - mqtt_decode(): the spec's published examples and every
 * malformed case the decoder must refuse, each with its exact error code.
 *
 * Not for: framing and streams (test_mqtt_frame.c) or encoding and round
 * trips (test_mqtt_encode.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mqtt.h"

/* Frames buf (which must hold exactly one packet) and decodes it. */
static int decode(const uint8_t *buf, size_t len, struct mqtt_packet *pkt)
{
    struct mqtt_frame frame;
    int rc = mqtt_frame(buf, len, 0, &frame);
    if (rc != MQTT_OK)
        return rc;
    assert_int_equal(frame.total_len, len);
    return mqtt_decode(&frame, pkt);
}

#define DECODE(arr, pkt) decode((arr), sizeof(arr), (pkt))

static void assert_bytes(struct mqtt_bytes b, const void *want, size_t len)
{
    assert_int_equal(b.len, len);
    if (len > 0)
        assert_memory_equal(b.data, want, len);
}

#define ASSERT_STR(b, s) assert_bytes((b), (s), strlen(s))

/* ---- CONNECT ---------------------------------------------------------- */

/* Variable header of the spec's non-normative example (3.1.2.10, figure 3.6):
 * "MQTT", level 4, flags 0xCE (user, password, will QoS 1, will, clean), keepalive 10. */
static void test_decode_connect_spec_example_figure_3_6(void **state)
{
    (void)state;
    static const uint8_t pkt_bytes[] = {
        0x10, 38, 0,   4,   'M', 'Q', 'T', 'T', 4,    0xce, 0,   10, /* variable header */
        0,    3,  'c', 'i', 'd', 0,   3,   'w', '/',  't',  0,   3,    'b', 0, 'y', /* id, will */
        0,    4,  'u', 's', 'e', 'r', 0,   5,   0xff, 0,    's', 0xc0, 0x80}; /* user, password */
    struct mqtt_packet pkt;
    assert_int_equal(DECODE(pkt_bytes, &pkt), MQTT_OK);
    const struct mqtt_connect *c = &pkt.u.connect;
    assert_int_equal(pkt.type, MQTT_CONNECT);
    ASSERT_STR(c->protocol_name, "MQTT");
    assert_int_equal(c->protocol_level, 4);
    assert_true(c->clean_session && c->has_will && c->has_username && c->has_password);
    assert_int_equal(c->will_qos, 1);
    assert_false(c->will_retain);
    assert_int_equal(c->keepalive_s, 10);
    ASSERT_STR(c->client_id, "cid");
    ASSERT_STR(c->will_topic, "w/t");
    assert_bytes(c->will_payload, "b\0y", 3);
    ASSERT_STR(c->username, "user");
    /* The password is binary: zero bytes and ill-formed UTF-8 are fine. */
    assert_bytes(c->password, "\xff\0s\xc0\x80", 5);
}

static void test_decode_connect_minimal_with_empty_client_id_is_ok_MQTT_3_1_3_6(void **state)
{
    (void)state;
    /* clean session 0 with an empty id is the session's CONNACK 2, not a decode error */
    static const uint8_t b[] = {0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x00, 0, 60, 0, 0};
    struct mqtt_packet pkt;
    assert_int_equal(DECODE(b, &pkt), MQTT_OK);
    assert_false(pkt.u.connect.clean_session);
    assert_int_equal(pkt.u.connect.client_id.len, 0);
    assert_false(pkt.u.connect.has_will);
    assert_int_equal(pkt.u.connect.keepalive_s, 60);
}

static void test_decode_connect_mqisdp_level_3_with_long_client_id_is_ok(void **state)
{
    (void)state;
    uint8_t b[64] = {0x10, 0, 0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 3, 0x02, 0, 30, 0, 40};
    memset(b + 16, 'x', 40); /* 3.1 imposed no 23-byte limit on the codec */
    b[1] = 14 + 40;
    struct mqtt_packet pkt;
    assert_int_equal(decode(b, 56, &pkt), MQTT_OK);
    ASSERT_STR(pkt.u.connect.protocol_name, "MQIsdp");
    assert_int_equal(pkt.u.connect.protocol_level, 3);
    assert_int_equal(pkt.u.connect.client_id.len, 40);
}

static void test_decode_connect_unknown_protocol_name_MQTT_3_1_2_1(void **state)
{
    (void)state;
    static const uint8_t b[] = {0x10, 12, 0, 4, 'M', 'Q', 'T', 'X', 4, 0x02, 0, 60, 0, 0};
    static const uint8_t empty[] = {0x10, 8, 0, 0, 4, 0x02, 0, 60, 0, 0};
    static const uint8_t mqisdp_prefix[] = {0x10, 10, 0, 2, 'M', 'Q', 4, 0x02, 0, 60, 0, 0};
    struct mqtt_packet pkt;
    assert_int_equal(DECODE(b, &pkt), MQTT_ERR_PROTOCOL_NAME);
    assert_int_equal(DECODE(empty, &pkt), MQTT_ERR_PROTOCOL_NAME);
    assert_int_equal(DECODE(mqisdp_prefix, &pkt), MQTT_ERR_PROTOCOL_NAME);
}

static void test_decode_connect_wrong_level_for_known_name_is_level_error_MQTT_3_1_2_2(void **state)
{
    (void)state;
    uint8_t mqtt[] = {0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 3, 0x02, 0, 60, 0, 0};
    uint8_t isdp[] = {0x10, 14, 0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 4, 0x02, 0, 60, 0, 0};
    struct mqtt_packet pkt;
    assert_int_equal(DECODE(mqtt, &pkt), MQTT_ERR_PROTOCOL_LEVEL);
    mqtt[8] = 5;
    assert_int_equal(DECODE(mqtt, &pkt), MQTT_ERR_PROTOCOL_LEVEL);
    assert_int_equal(DECODE(isdp, &pkt), MQTT_ERR_PROTOCOL_LEVEL);
}

/* A CONNECT "MQTT"/4 with the given flags byte and no payload beyond a 1-byte id. */
static int decode_connect_flags(uint8_t flags)
{
    uint8_t b[] = {0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, flags, 0, 60, 0, 1, 'c'};
    struct mqtt_packet pkt;
    return DECODE(b, &pkt);
}

static void test_decode_connect_reserved_flag_MQTT_3_1_2_3(void **state)
{
    (void)state;
    assert_int_equal(decode_connect_flags(0x01), MQTT_ERR_CONNECT_RESERVED);
    assert_int_equal(decode_connect_flags(0x03), MQTT_ERR_CONNECT_RESERVED);
}

static void test_decode_connect_will_qos_or_retain_without_will_MQTT_3_1_2_13_15(void **state)
{
    (void)state;
    assert_int_equal(decode_connect_flags(0x08), MQTT_ERR_WILL_FLAGS); /* QoS 1 */
    assert_int_equal(decode_connect_flags(0x10), MQTT_ERR_WILL_FLAGS); /* QoS 2 */
    assert_int_equal(decode_connect_flags(0x20), MQTT_ERR_WILL_FLAGS); /* retain */
    assert_int_equal(decode_connect_flags(0x18), MQTT_ERR_WILL_FLAGS); /* QoS 3, no will */
}

static void test_decode_connect_will_qos_3_is_qos_error_MQTT_3_1_2_14(void **state)
{
    (void)state;
    assert_int_equal(decode_connect_flags(0x1c), MQTT_ERR_QOS);
}

static void test_decode_connect_password_without_username_MQTT_3_1_2_22(void **state)
{
    (void)state;
    assert_int_equal(decode_connect_flags(0x40), MQTT_ERR_PASSWORD_NO_USER);
}

static void test_decode_connect_flag_without_its_field_is_truncated(void **state)
{
    (void)state;
    assert_int_equal(decode_connect_flags(0x80), MQTT_ERR_TRUNCATED); /* username */
    assert_int_equal(decode_connect_flags(0x04), MQTT_ERR_TRUNCATED); /* will */
    assert_int_equal(decode_connect_flags(0xc0), MQTT_ERR_TRUNCATED); /* user + password */
}

static void test_decode_connect_variable_header_truncated(void **state)
{
    (void)state;
    static const uint8_t no_keepalive[] = {0x10, 7, 0, 4, 'M', 'Q', 'T', 'T', 4};
    static const uint8_t half_keepalive[] = {0x10, 9, 0, 4, 'M', 'Q', 'T', 'T', 4, 0, 0};
    static const uint8_t no_flags[] = {0x10, 7, 0, 4, 'M', 'Q', 'T', 'T', 4};
    static const uint8_t name_past_end[] = {0x10, 4, 0, 9, 'M', 'Q'};
    static const uint8_t empty[] = {0x10, 0};
    static const uint8_t id_past_end[] = {0x10, 13, 0, 4,  'M', 'Q', 'T', 'T',
                                          4,    2,  0, 60, 0,   5,   'c'};
    struct mqtt_packet pkt;
    assert_int_equal(DECODE(no_keepalive, &pkt), MQTT_ERR_TRUNCATED);
    assert_int_equal(DECODE(half_keepalive, &pkt), MQTT_ERR_TRUNCATED);
    assert_int_equal(DECODE(no_flags, &pkt), MQTT_ERR_TRUNCATED);
    assert_int_equal(DECODE(name_past_end, &pkt), MQTT_ERR_TRUNCATED);
    assert_int_equal(DECODE(empty, &pkt), MQTT_ERR_TRUNCATED);
    assert_int_equal(DECODE(id_past_end, &pkt), MQTT_ERR_TRUNCATED);
}

static void test_decode_connect_with_extra_bytes_is_trailing(void **state)
{
    (void)state;
    static const uint8_t b[] = {0x10, 14, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 1, 'c', 0};
    struct mqtt_packet pkt;
    assert_int_equal(DECODE(b, &pkt), MQTT_ERR_TRAILING);
}

static void test_decode_connect_client_id_ill_formed_utf8_MQTT_3_1_3_4(void **state)
{
    (void)state;
    uint8_t b[] = {0x10, 14, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 2, 0xc0, 0x80};
    struct mqtt_packet pkt;
    assert_int_equal(DECODE(b, &pkt), MQTT_ERR_UTF8); /* overlong U+0000 */
    b[14] = 'a';
    b[15] = 0; /* U+0000 [MQTT-1.5.3-2] */
    assert_int_equal(DECODE(b, &pkt), MQTT_ERR_UTF8);
    b[14] = 0xed;
    b[15] = 0xa0; /* truncated surrogate lead */
    assert_int_equal(DECODE(b, &pkt), MQTT_ERR_UTF8);
}

static void test_decode_connect_username_ill_formed_utf8_MQTT_3_1_3_11(void **state)
{
    (void)state;
    static const uint8_t b[] = {0x10, 17, 0, 4, 'M', 'Q', 'T', 'T',  4,   0x82,
                                0,    60, 0, 1, 'c', 0,   3,   0xed, 0xa0};
    struct mqtt_packet pkt;
    assert_int_equal(DECODE(b, &pkt), MQTT_ERR_TRUNCATED);
    static const uint8_t ok_len[] = {0x10, 18, 0, 4, 'M', 'Q', 'T', 'T',  4,    0x82,
                                     0,    60, 0, 1, 'c', 0,   3,   0xed, 0xa0, 0x80};
    assert_int_equal(DECODE(ok_len, &pkt), MQTT_ERR_UTF8); /* U+D800, a surrogate */
}

/* CONNECT with will flag and the given will topic (1..3 bytes). */
static int decode_will_topic(const char *topic, size_t len)
{
    uint8_t b[32] = {0x10, 0, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x06, 0, 60, 0, 1, 'c', 0, (uint8_t)len};
    memcpy(b + 17, topic, len);
    size_t n = 17 + len;
    b[n++] = 0;
    b[n++] = 1;
    b[n++] = 'm';
    b[1] = (uint8_t)(n - 2);
    struct mqtt_packet pkt;
    int rc = decode(b, n, &pkt);
    if (rc == MQTT_OK)
        assert_bytes(pkt.u.connect.will_topic, topic, len);
    return rc;
}

static void test_decode_connect_will_topic_rules_MQTT_3_1_3_10(void **state)
{
    (void)state;
    assert_int_equal(decode_will_topic("a/b", 3), MQTT_OK);
    assert_int_equal(decode_will_topic("", 0), MQTT_ERR_TOPIC_NAME);
    assert_int_equal(decode_will_topic("a/#", 3), MQTT_ERR_TOPIC_NAME);
    assert_int_equal(decode_will_topic("+", 1), MQTT_ERR_TOPIC_NAME);
    assert_int_equal(decode_will_topic("\xff", 1), MQTT_ERR_UTF8);
}

static void test_decode_connect_will_payload_is_binary(void **state)
{
    (void)state;
    static const uint8_t b[] = {0x10, 21, 0, 4, 'M', 'Q', 'T', 'T', 4,    0x2e, 0,   0,
                                0,    0,  0, 1, 't', 0,   4,   0,   0xff, 0,    0xfe};
    struct mqtt_packet pkt;
    assert_int_equal(DECODE(b, &pkt), MQTT_OK);
    assert_true(pkt.u.connect.will_retain);
    assert_int_equal(pkt.u.connect.will_qos, 1);
    assert_bytes(pkt.u.connect.will_payload, "\0\xff\0\xfe", 4);
}

/* ---- fixed-header flags and types ------------------------------------ */

static void test_decode_subscribe_with_flags_0000_is_header_flags_error_MQTT_2_2_2_2(void **state)
{
    (void)state;
    static const uint8_t b[] = {0x80, 6, 0, 1, 0, 1, 'a', 0};
    struct mqtt_packet pkt;
    assert_int_equal(DECODE(b, &pkt), MQTT_ERR_HEADER_FLAGS);
}

static void
test_decode_pubrel_subscribe_unsubscribe_need_0010_MQTT_3_6_1_1_3_8_1_1_3_10_1_1(void **state)
{
    (void)state;
    static const uint8_t pubrel[] = {0x60, 2, 0, 1};
    static const uint8_t pubrel_dup[] = {0x6a, 2, 0, 1};
    static const uint8_t unsub[] = {0xa0, 5, 0, 1, 0, 1, 'a'};
    static const uint8_t sub_0011[] = {0x83, 6, 0, 1, 0, 1, 'a', 0};
    struct mqtt_packet pkt;
    assert_int_equal(DECODE(pubrel, &pkt), MQTT_ERR_HEADER_FLAGS);
    assert_int_equal(DECODE(pubrel_dup, &pkt), MQTT_ERR_HEADER_FLAGS);
    assert_int_equal(DECODE(unsub, &pkt), MQTT_ERR_HEADER_FLAGS);
    assert_int_equal(DECODE(sub_0011, &pkt), MQTT_ERR_HEADER_FLAGS);
}

static void test_decode_other_types_need_flags_0000_MQTT_2_2_2_1(void **state)
{
    (void)state;
    static const uint8_t connect[] = {0x12, 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 0};
    static const uint8_t connack[] = {0x21, 2, 0, 0};
    static const uint8_t puback[] = {0x41, 2, 0, 1};
    static const uint8_t pubrec[] = {0x58, 2, 0, 1};
    static const uint8_t pubcomp[] = {0x72, 2, 0, 1};
    static const uint8_t suback[] = {0x92, 3, 0, 1, 0};
    static const uint8_t unsuback[] = {0xb2, 2, 0, 1};
    static const uint8_t pingreq[] = {0xc1, 0};
    static const uint8_t pingresp[] = {0xd4, 0};
    static const uint8_t disconnect[] = {0xe2, 0};
    struct mqtt_packet pkt;
    assert_int_equal(DECODE(connect, &pkt), MQTT_ERR_HEADER_FLAGS);
    assert_int_equal(DECODE(connack, &pkt), MQTT_ERR_HEADER_FLAGS);
    assert_int_equal(DECODE(puback, &pkt), MQTT_ERR_HEADER_FLAGS);
    assert_int_equal(DECODE(pubrec, &pkt), MQTT_ERR_HEADER_FLAGS);
    assert_int_equal(DECODE(pubcomp, &pkt), MQTT_ERR_HEADER_FLAGS);
    assert_int_equal(DECODE(suback, &pkt), MQTT_ERR_HEADER_FLAGS);
    assert_int_equal(DECODE(unsuback, &pkt), MQTT_ERR_HEADER_FLAGS);
    assert_int_equal(DECODE(pingreq, &pkt), MQTT_ERR_HEADER_FLAGS);
    assert_int_equal(DECODE(pingresp, &pkt), MQTT_ERR_HEADER_FLAGS);
    assert_int_equal(DECODE(disconnect, &pkt), MQTT_ERR_HEADER_FLAGS);
}

static void test_decode_frame_with_reserved_type_is_packet_type_error(void **state)
{
    (void)state;
    static const uint8_t body[] = {0};
    struct mqtt_frame frame = {.type = 0, .flags = 0, .body = body, .body_len = 0, .total_len = 2};
    struct mqtt_packet pkt;
    assert_int_equal(mqtt_decode(&frame, &pkt), MQTT_ERR_PACKET_TYPE);
    frame.type = 15;
    assert_int_equal(mqtt_decode(&frame, &pkt), MQTT_ERR_PACKET_TYPE);
}

/* ---- CONNACK ---------------------------------------------------------- */

static void test_decode_connack_session_present_and_code(void **state)
{
    (void)state;
    static const uint8_t b[] = {0x20, 2, 0x01, 0x00};
    static const uint8_t refused[] = {0x20, 2, 0x00, 0x05};
    struct mqtt_packet pkt;
    assert_int_equal(DECODE(b, &pkt), MQTT_OK);
    assert_true(pkt.u.connack.session_present);
    assert_int_equal(pkt.u.connack.return_code, 0);
    assert_int_equal(DECODE(refused, &pkt), MQTT_OK);
    assert_false(pkt.u.connack.session_present);
    assert_int_equal(pkt.u.connack.return_code, MQTT_CONNACK_NOT_AUTHORIZED);
}

static void test_decode_connack_reserved_flags_MQTT_3_2_2_1(void **state)
{
    (void)state;
    static const uint8_t b[] = {0x20, 2, 0x02, 0x00};
    static const uint8_t high[] = {0x20, 2, 0x81, 0x00};
    struct mqtt_packet pkt;
    assert_int_equal(DECODE(b, &pkt), MQTT_ERR_CONNACK_FLAGS);
    assert_int_equal(DECODE(high, &pkt), MQTT_ERR_CONNACK_FLAGS);
}

static void test_decode_connack_wrong_length(void **state)
{
    (void)state;
    static const uint8_t short_b[] = {0x20, 1, 0x00};
    static const uint8_t long_b[] = {0x20, 3, 0x00, 0x00, 0x00};
    struct mqtt_packet pkt;
    assert_int_equal(DECODE(short_b, &pkt), MQTT_ERR_TRUNCATED);
    assert_int_equal(DECODE(long_b, &pkt), MQTT_ERR_TRAILING);
}

/* ---- PUBLISH ---------------------------------------------------------- */

/* Example of 3.3.2.3: topic "a/b", packet id 10. */
static void test_decode_publish_spec_example_3_3_2_3(void **state)
{
    (void)state;
    static const uint8_t b[] = {0x3b, 9, 0, 3, 'a', '/', 'b', 0, 10, 'h', 'i'};
    struct mqtt_packet pkt;
    assert_int_equal(DECODE(b, &pkt), MQTT_OK);
    assert_true(pkt.u.publish.dup);
    assert_int_equal(pkt.u.publish.qos, 1);
    assert_true(pkt.u.publish.retain);
    ASSERT_STR(pkt.u.publish.topic, "a/b");
    assert_int_equal(pkt.u.publish.packet_id, 10);
    ASSERT_STR(pkt.u.publish.payload, "hi");
}

static void test_decode_publish_qos0_binary_payload_with_zero_bytes(void **state)
{
    (void)state;
    static const uint8_t b[] = {0x30, 7, 0, 1, 't', 0, 0xff, 0, 0};
    struct mqtt_packet pkt;
    assert_int_equal(DECODE(b, &pkt), MQTT_OK);
    assert_int_equal(pkt.u.publish.qos, 0);
    assert_int_equal(pkt.u.publish.packet_id, 0);
    assert_bytes(pkt.u.publish.payload, "\0\xff\0\0", 4);
}

static void test_decode_publish_empty_payload_is_ok_MQTT_3_3_3(void **state)
{
    (void)state;
    static const uint8_t b[] = {0x34, 5, 0, 1, 't', 0x12, 0x34};
    struct mqtt_packet pkt;
    assert_int_equal(DECODE(b, &pkt), MQTT_OK);
    assert_int_equal(pkt.u.publish.qos, 2);
    assert_int_equal(pkt.u.publish.packet_id, 0x1234);
    assert_int_equal(pkt.u.publish.payload.len, 0);
}

static void test_decode_publish_qos_3_MQTT_3_3_1_4(void **state)
{
    (void)state;
    static const uint8_t b[] = {0x36, 5, 0, 1, 't', 0, 1};
    struct mqtt_packet pkt;
    assert_int_equal(DECODE(b, &pkt), MQTT_ERR_QOS);
}

static void test_decode_publish_dup_at_qos0_is_header_flags_error_MQTT_3_3_1_2(void **state)
{
    (void)state;
    static const uint8_t b[] = {0x38, 3, 0, 1, 't'};
    static const uint8_t retain[] = {0x39, 3, 0, 1, 't'};
    struct mqtt_packet pkt;
    assert_int_equal(DECODE(b, &pkt), MQTT_ERR_HEADER_FLAGS);
    assert_int_equal(DECODE(retain, &pkt), MQTT_ERR_HEADER_FLAGS);
}

static void test_decode_publish_topic_with_wildcards_MQTT_3_3_2_2(void **state)
{
    (void)state;
    static const uint8_t plus[] = {0x30, 5, 0, 3, 'a', '/', '+'};
    static const uint8_t hash[] = {0x30, 3, 0, 1, '#'};
    static const uint8_t mid[] = {0x30, 5, 0, 3, 'a', '#', 'b'};
    struct mqtt_packet pkt;
    assert_int_equal(DECODE(plus, &pkt), MQTT_ERR_TOPIC_NAME);
    assert_int_equal(DECODE(hash, &pkt), MQTT_ERR_TOPIC_NAME);
    assert_int_equal(DECODE(mid, &pkt), MQTT_ERR_TOPIC_NAME);
}

static void test_decode_publish_empty_topic_MQTT_4_7_3_1(void **state)
{
    (void)state;
    static const uint8_t b[] = {0x30, 3, 0, 0, 'x'};
    struct mqtt_packet pkt;
    assert_int_equal(DECODE(b, &pkt), MQTT_ERR_TOPIC_NAME);
}

static void test_decode_publish_topic_ill_formed_utf8_MQTT_3_3_2_1(void **state)
{
    (void)state;
    static const uint8_t b[] = {0x30, 4, 0, 2, 'a', 0x80};
    static const uint8_t nul[] = {0x30, 4, 0, 2, 'a', 0};
    struct mqtt_packet pkt;
    assert_int_equal(DECODE(b, &pkt), MQTT_ERR_UTF8);
    assert_int_equal(DECODE(nul, &pkt), MQTT_ERR_UTF8);
}

static void test_decode_publish_qos1_packet_id_0_MQTT_2_3_1_1(void **state)
{
    (void)state;
    static const uint8_t b[] = {0x32, 5, 0, 1, 't', 0, 0};
    static const uint8_t qos2[] = {0x34, 6, 0, 1, 't', 0, 0, 'p'};
    struct mqtt_packet pkt;
    assert_int_equal(DECODE(b, &pkt), MQTT_ERR_PACKET_ID);
    assert_int_equal(DECODE(qos2, &pkt), MQTT_ERR_PACKET_ID);
}

static void test_decode_publish_topic_longer_than_frame_is_truncated(void **state)
{
    (void)state;
    static const uint8_t b[] = {0x30, 4, 0, 5, 'a', 'b'};
    static const uint8_t no_len[] = {0x30, 1, 0};
    static const uint8_t no_id[] = {0x32, 4, 0, 1, 't', 0};
    struct mqtt_packet pkt;
    assert_int_equal(DECODE(b, &pkt), MQTT_ERR_TRUNCATED);
    assert_int_equal(DECODE(no_len, &pkt), MQTT_ERR_TRUNCATED);
    assert_int_equal(DECODE(no_id, &pkt), MQTT_ERR_TRUNCATED);
}

/* ---- PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK ------------------------ */

static void test_decode_acks_carry_packet_id(void **state)
{
    (void)state;
    static const uint8_t heads[] = {0x40, 0x50, 0x62, 0x70, 0xb0};
    static const uint8_t types[] = {MQTT_PUBACK, MQTT_PUBREC, MQTT_PUBREL, MQTT_PUBCOMP,
                                    MQTT_UNSUBACK};
    for (size_t i = 0; i < sizeof(heads); i++) {
        uint8_t b[] = {heads[i], 2, 0xab, 0xcd};
        struct mqtt_packet pkt;
        assert_int_equal(DECODE(b, &pkt), MQTT_OK);
        assert_int_equal(pkt.type, types[i]);
        assert_int_equal(pkt.u.ack.packet_id, 0xabcd);
    }
}

static void test_decode_acks_packet_id_0_MQTT_2_3_1_1(void **state)
{
    (void)state;
    static const uint8_t heads[] = {0x40, 0x50, 0x62, 0x70, 0xb0};
    for (size_t i = 0; i < sizeof(heads); i++) {
        uint8_t b[] = {heads[i], 2, 0, 0};
        struct mqtt_packet pkt;
        assert_int_equal(DECODE(b, &pkt), MQTT_ERR_PACKET_ID);
    }
}

static void test_decode_puback_with_3_bytes_is_trailing_and_1_byte_truncated(void **state)
{
    (void)state;
    static const uint8_t heads[] = {0x40, 0x50, 0x62, 0x70, 0xb0};
    for (size_t i = 0; i < sizeof(heads); i++) {
        uint8_t three[] = {heads[i], 3, 0, 1, 0};
        uint8_t one[] = {heads[i], 1, 1};
        uint8_t none[] = {heads[i], 0};
        struct mqtt_packet pkt;
        assert_int_equal(DECODE(three, &pkt), MQTT_ERR_TRAILING);
        assert_int_equal(DECODE(one, &pkt), MQTT_ERR_TRUNCATED);
        assert_int_equal(DECODE(none, &pkt), MQTT_ERR_TRUNCATED);
    }
}

/* ---- SUBSCRIBE, SUBACK, UNSUBSCRIBE ----------------------------------- */

/* Example of 3.8.3: packet id 10, "a/b" QoS 1, "c/d" QoS 2. */
static void test_decode_subscribe_spec_example_3_8_3(void **state)
{
    (void)state;
    static const uint8_t b[] = {0x82, 14, 0, 10, 0, 3, 'a', '/', 'b', 1, 0, 3, 'c', '/', 'd', 2};
    struct mqtt_packet pkt;
    assert_int_equal(DECODE(b, &pkt), MQTT_OK);
    assert_int_equal(pkt.u.subscribe.packet_id, 10);
    assert_int_equal(pkt.u.subscribe.count, 2);
    assert_null(pkt.u.subscribe.entries);
    assert_bytes(pkt.u.subscribe.raw, b + 4, 12);

    struct mqtt_topic_iter it;
    struct mqtt_topic_entry e;
    mqtt_topic_iter_init(&it, &pkt);
    assert_true(mqtt_topic_iter_next(&it, &e));
    ASSERT_STR(e.filter, "a/b");
    assert_int_equal(e.qos, 1);
    assert_true(mqtt_topic_iter_next(&it, &e));
    ASSERT_STR(e.filter, "c/d");
    assert_int_equal(e.qos, 2);
    assert_false(mqtt_topic_iter_next(&it, &e));
    assert_false(mqtt_topic_iter_next(&it, &e));
}

static void test_decode_subscribe_empty_payload_MQTT_3_8_3_3(void **state)
{
    (void)state;
    static const uint8_t b[] = {0x82, 2, 0, 1};
    struct mqtt_packet pkt;
    assert_int_equal(DECODE(b, &pkt), MQTT_ERR_EMPTY_PAYLOAD);
}

static void test_decode_subscribe_requested_qos_above_2_or_reserved_bits_MQTT_3_8_3_4(void **state)
{
    (void)state;
    uint8_t b[] = {0x82, 6, 0, 1, 0, 1, 'a', 3};
    struct mqtt_packet pkt;
    assert_int_equal(DECODE(b, &pkt), MQTT_ERR_SUBSCRIBE_QOS);
    b[7] = 0x81;
    assert_int_equal(DECODE(b, &pkt), MQTT_ERR_SUBSCRIBE_QOS);
    b[7] = 0x04;
    assert_int_equal(DECODE(b, &pkt), MQTT_ERR_SUBSCRIBE_QOS);
    b[7] = 2;
    assert_int_equal(DECODE(b, &pkt), MQTT_OK);
}

static void test_decode_subscribe_packet_id_0_MQTT_2_3_1_1(void **state)
{
    (void)state;
    static const uint8_t sub[] = {0x82, 6, 0, 0, 0, 1, 'a', 0};
    static const uint8_t unsub[] = {0xa2, 5, 0, 0, 0, 1, 'a'};
    struct mqtt_packet pkt;
    assert_int_equal(DECODE(sub, &pkt), MQTT_ERR_PACKET_ID);
    assert_int_equal(DECODE(unsub, &pkt), MQTT_ERR_PACKET_ID);
}

static void test_decode_subscribe_missing_qos_or_short_filter_is_truncated(void **state)
{
    (void)state;
    static const uint8_t no_qos[] = {0x82, 5, 0, 1, 0, 1, 'a'};
    static const uint8_t second_no_qos[] = {0x82, 9, 0, 1, 0, 1, 'a', 0, 0, 1, 'b'};
    static const uint8_t short_filter[] = {0x82, 6, 0, 1, 0, 4, 'a', 0};
    static const uint8_t half_len[] = {0x82, 3, 0, 1, 0};
    static const uint8_t no_id[] = {0x82, 1, 0};
    struct mqtt_packet pkt;
    assert_int_equal(DECODE(no_qos, &pkt), MQTT_ERR_TRUNCATED);
    assert_int_equal(DECODE(second_no_qos, &pkt), MQTT_ERR_TRUNCATED);
    assert_int_equal(DECODE(short_filter, &pkt), MQTT_ERR_TRUNCATED);
    assert_int_equal(DECODE(half_len, &pkt), MQTT_ERR_TRUNCATED);
    assert_int_equal(DECODE(no_id, &pkt), MQTT_ERR_TRUNCATED);
}

static void test_decode_subscribe_empty_filter_MQTT_4_7_3_1(void **state)
{
    (void)state;
    static const uint8_t sub[] = {0x82, 5, 0, 1, 0, 0, 0};
    static const uint8_t unsub[] = {0xa2, 4, 0, 1, 0, 0};
    struct mqtt_packet pkt;
    assert_int_equal(DECODE(sub, &pkt), MQTT_ERR_TOPIC_FILTER);
    assert_int_equal(DECODE(unsub, &pkt), MQTT_ERR_TOPIC_FILTER);
}

static void test_decode_subscribe_filter_ill_formed_utf8_MQTT_3_8_3_1(void **state)
{
    (void)state;
    static const uint8_t sub[] = {0x82, 7, 0, 1, 0, 2, 0xc3, 0x28, 0};
    static const uint8_t unsub[] = {0xa2, 5, 0, 1, 0, 1, 0xfe};
    struct mqtt_packet pkt;
    assert_int_equal(DECODE(sub, &pkt), MQTT_ERR_UTF8);
    assert_int_equal(DECODE(unsub, &pkt), MQTT_ERR_UTF8);
}

/* "a/b#" is well-formed on the wire; the broker answers it with SUBACK 0x80. */
static void test_decode_subscribe_does_not_check_wildcard_placement(void **state)
{
    (void)state;
    static const uint8_t b[] = {0x82, 9, 0, 7, 0, 4, 'a', '/', 'b', '#', 1};
    struct mqtt_packet pkt;
    assert_int_equal(DECODE(b, &pkt), MQTT_OK);
    assert_int_equal(pkt.u.subscribe.count, 1);
}

/* Example of 3.10.3: "a/b", "c/d". */
static void test_decode_unsubscribe_spec_example_3_10_3(void **state)
{
    (void)state;
    static const uint8_t b[] = {0xa2, 12, 0, 10, 0, 3, 'a', '/', 'b', 0, 3, 'c', '/', 'd'};
    struct mqtt_packet pkt;
    assert_int_equal(DECODE(b, &pkt), MQTT_OK);
    assert_int_equal(pkt.type, MQTT_UNSUBSCRIBE);
    assert_int_equal(pkt.u.subscribe.count, 2);
    struct mqtt_topic_iter it;
    struct mqtt_topic_entry e;
    mqtt_topic_iter_init(&it, &pkt);
    assert_true(mqtt_topic_iter_next(&it, &e));
    ASSERT_STR(e.filter, "a/b");
    assert_int_equal(e.qos, 0);
    assert_true(mqtt_topic_iter_next(&it, &e));
    ASSERT_STR(e.filter, "c/d");
    assert_false(mqtt_topic_iter_next(&it, &e));
}

static void test_decode_unsubscribe_empty_payload_MQTT_3_10_3_2(void **state)
{
    (void)state;
    static const uint8_t b[] = {0xa2, 2, 0, 1};
    struct mqtt_packet pkt;
    assert_int_equal(DECODE(b, &pkt), MQTT_ERR_EMPTY_PAYLOAD);
}

/* Example of 3.9.3: success QoS 0, success QoS 2, failure; zero bytes kept. */
static void test_decode_suback_spec_example_3_9_3(void **state)
{
    (void)state;
    static const uint8_t b[] = {0x90, 5, 0, 10, 0x00, 0x02, 0x80};
    struct mqtt_packet pkt;
    assert_int_equal(DECODE(b, &pkt), MQTT_OK);
    assert_int_equal(pkt.u.suback.packet_id, 10);
    assert_bytes(pkt.u.suback.return_codes, "\x00\x02\x80", 3);
}

static void test_decode_suback_invalid_return_code_MQTT_3_9_3_2(void **state)
{
    (void)state;
    uint8_t b[] = {0x90, 4, 0, 1, 0, 3};
    struct mqtt_packet pkt;
    assert_int_equal(DECODE(b, &pkt), MQTT_ERR_SUBACK_CODE);
    b[5] = 0x81;
    assert_int_equal(DECODE(b, &pkt), MQTT_ERR_SUBACK_CODE);
    b[5] = 0xff;
    assert_int_equal(DECODE(b, &pkt), MQTT_ERR_SUBACK_CODE);
}

static void test_decode_suback_packet_id_0_or_no_codes(void **state)
{
    (void)state;
    static const uint8_t zero[] = {0x90, 3, 0, 0, 0};
    static const uint8_t none[] = {0x90, 2, 0, 1};
    static const uint8_t short_b[] = {0x90, 1, 0};
    struct mqtt_packet pkt;
    assert_int_equal(DECODE(zero, &pkt), MQTT_ERR_PACKET_ID);
    assert_int_equal(DECODE(none, &pkt), MQTT_ERR_EMPTY_PAYLOAD);
    assert_int_equal(DECODE(short_b, &pkt), MQTT_ERR_TRUNCATED);
}

/* ---- PINGREQ, PINGRESP, DISCONNECT ------------------------------------ */

static void test_decode_bodiless_packets(void **state)
{
    (void)state;
    static const uint8_t heads[] = {0xc0, 0xd0, 0xe0};
    static const uint8_t types[] = {MQTT_PINGREQ, MQTT_PINGRESP, MQTT_DISCONNECT};
    for (size_t i = 0; i < sizeof(heads); i++) {
        uint8_t ok[] = {heads[i], 0};
        uint8_t extra[] = {heads[i], 1, 0};
        struct mqtt_packet pkt;
        assert_int_equal(DECODE(ok, &pkt), MQTT_OK);
        assert_int_equal(pkt.type, types[i]);
        assert_int_equal(DECODE(extra, &pkt), MQTT_ERR_TRAILING);
    }
}

static void test_decode_mqtt31_allows_dup_on_subscribe_unsubscribe_pubrel(void **state)
{
    (void)state;
    /* SUBSCRIBE id 1, "a" QoS 0; UNSUBSCRIBE id 1, "a"; PUBREL id 1 - each with flags 1010. */
    static const uint8_t sub[] = {0x8a, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x00};
    static const uint8_t unsub[] = {0xaa, 0x05, 0x00, 0x01, 0x00, 0x01, 'a'};
    static const uint8_t rel[] = {0x6a, 0x02, 0x00, 0x01};
    const uint8_t *bufs[] = {sub, unsub, rel};
    size_t lens[] = {sizeof(sub), sizeof(unsub), sizeof(rel)};
    for (size_t i = 0; i < 3; i++) {
        struct mqtt_frame f;
        struct mqtt_packet p;
        assert_int_equal(mqtt_frame(bufs[i], lens[i], 0, &f), MQTT_OK);
        assert_int_equal(mqtt_decode_for(&f, MQTT_PROTOCOL_V31, &p), MQTT_OK);
        assert_int_equal(mqtt_decode_for(&f, MQTT_PROTOCOL_V311, &p), MQTT_ERR_HEADER_FLAGS);
        assert_int_equal(mqtt_decode(&f, &p), MQTT_ERR_HEADER_FLAGS);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_mqtt31_allows_dup_on_subscribe_unsubscribe_pubrel),
        cmocka_unit_test(test_decode_connect_spec_example_figure_3_6),
        cmocka_unit_test(test_decode_connect_minimal_with_empty_client_id_is_ok_MQTT_3_1_3_6),
        cmocka_unit_test(test_decode_connect_mqisdp_level_3_with_long_client_id_is_ok),
        cmocka_unit_test(test_decode_connect_unknown_protocol_name_MQTT_3_1_2_1),
        cmocka_unit_test(
            test_decode_connect_wrong_level_for_known_name_is_level_error_MQTT_3_1_2_2),
        cmocka_unit_test(test_decode_connect_reserved_flag_MQTT_3_1_2_3),
        cmocka_unit_test(test_decode_connect_will_qos_or_retain_without_will_MQTT_3_1_2_13_15),
        cmocka_unit_test(test_decode_connect_will_qos_3_is_qos_error_MQTT_3_1_2_14),
        cmocka_unit_test(test_decode_connect_password_without_username_MQTT_3_1_2_22),
        cmocka_unit_test(test_decode_connect_flag_without_its_field_is_truncated),
        cmocka_unit_test(test_decode_connect_variable_header_truncated),
        cmocka_unit_test(test_decode_connect_with_extra_bytes_is_trailing),
        cmocka_unit_test(test_decode_connect_client_id_ill_formed_utf8_MQTT_3_1_3_4),
        cmocka_unit_test(test_decode_connect_username_ill_formed_utf8_MQTT_3_1_3_11),
        cmocka_unit_test(test_decode_connect_will_topic_rules_MQTT_3_1_3_10),
        cmocka_unit_test(test_decode_connect_will_payload_is_binary),
        cmocka_unit_test(test_decode_subscribe_with_flags_0000_is_header_flags_error_MQTT_2_2_2_2),
        cmocka_unit_test(
            test_decode_pubrel_subscribe_unsubscribe_need_0010_MQTT_3_6_1_1_3_8_1_1_3_10_1_1),
        cmocka_unit_test(test_decode_other_types_need_flags_0000_MQTT_2_2_2_1),
        cmocka_unit_test(test_decode_frame_with_reserved_type_is_packet_type_error),
        cmocka_unit_test(test_decode_connack_session_present_and_code),
        cmocka_unit_test(test_decode_connack_reserved_flags_MQTT_3_2_2_1),
        cmocka_unit_test(test_decode_connack_wrong_length),
        cmocka_unit_test(test_decode_publish_spec_example_3_3_2_3),
        cmocka_unit_test(test_decode_publish_qos0_binary_payload_with_zero_bytes),
        cmocka_unit_test(test_decode_publish_empty_payload_is_ok_MQTT_3_3_3),
        cmocka_unit_test(test_decode_publish_qos_3_MQTT_3_3_1_4),
        cmocka_unit_test(test_decode_publish_dup_at_qos0_is_header_flags_error_MQTT_3_3_1_2),
        cmocka_unit_test(test_decode_publish_topic_with_wildcards_MQTT_3_3_2_2),
        cmocka_unit_test(test_decode_publish_empty_topic_MQTT_4_7_3_1),
        cmocka_unit_test(test_decode_publish_topic_ill_formed_utf8_MQTT_3_3_2_1),
        cmocka_unit_test(test_decode_publish_qos1_packet_id_0_MQTT_2_3_1_1),
        cmocka_unit_test(test_decode_publish_topic_longer_than_frame_is_truncated),
        cmocka_unit_test(test_decode_acks_carry_packet_id),
        cmocka_unit_test(test_decode_acks_packet_id_0_MQTT_2_3_1_1),
        cmocka_unit_test(test_decode_puback_with_3_bytes_is_trailing_and_1_byte_truncated),
        cmocka_unit_test(test_decode_subscribe_spec_example_3_8_3),
        cmocka_unit_test(test_decode_subscribe_empty_payload_MQTT_3_8_3_3),
        cmocka_unit_test(test_decode_subscribe_requested_qos_above_2_or_reserved_bits_MQTT_3_8_3_4),
        cmocka_unit_test(test_decode_subscribe_packet_id_0_MQTT_2_3_1_1),
        cmocka_unit_test(test_decode_subscribe_missing_qos_or_short_filter_is_truncated),
        cmocka_unit_test(test_decode_subscribe_empty_filter_MQTT_4_7_3_1),
        cmocka_unit_test(test_decode_subscribe_filter_ill_formed_utf8_MQTT_3_8_3_1),
        cmocka_unit_test(test_decode_subscribe_does_not_check_wildcard_placement),
        cmocka_unit_test(test_decode_unsubscribe_spec_example_3_10_3),
        cmocka_unit_test(test_decode_unsubscribe_empty_payload_MQTT_3_10_3_2),
        cmocka_unit_test(test_decode_suback_spec_example_3_9_3),
        cmocka_unit_test(test_decode_suback_invalid_return_code_MQTT_3_9_3_2),
        cmocka_unit_test(test_decode_suback_packet_id_0_or_no_codes),
        cmocka_unit_test(test_decode_bodiless_packets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
