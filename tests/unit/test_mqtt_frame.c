/*
 * test_mqtt_frame.c - mqtt_frame(), the Remaining Length, the maximum packet
 * size, and mqtt_decode_stream() over split and coalesced streams.
 *
 * Not for: the validation of packet bodies (test_mqtt_decode.c) or encoding
 * (test_mqtt_encode.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mqtt.h"

/* ---- fixed header and Remaining Length -------------------------------- */

static void test_frame_empty_buffer_needs_more(void **state)
{
    (void)state;
    struct mqtt_frame f;
    static const uint8_t b[] = {0x30};
    assert_int_equal(mqtt_frame(b, 0, 0, &f), MQTT_NEED_MORE);
    assert_int_equal(mqtt_frame(b, 1, 0, &f), MQTT_NEED_MORE);
}

static void test_frame_incomplete_remaining_length_needs_more(void **state)
{
    (void)state;
    static const uint8_t b[] = {0x30, 0x80, 0x80, 0x80};
    struct mqtt_frame f;
    for (size_t n = 1; n <= sizeof(b); n++)
        assert_int_equal(mqtt_frame(b, n, 0, &f), MQTT_NEED_MORE);
}

static void test_frame_need_more_reports_total_once_header_is_complete(void **state)
{
    (void)state;
    /* PUBLISH with Remaining Length 200 (0xc8 0x01): 203 bytes in all. */
    static const uint8_t b[] = {0x30, 0xc8, 0x01, 0x00, 0x01, 't'};
    struct mqtt_frame f;
    assert_int_equal(mqtt_frame(b, 2, 0, &f), MQTT_NEED_MORE);
    assert_int_equal(f.total_len, 0); /* length still incomplete */
    assert_int_equal(mqtt_frame(b, 3, 0, &f), MQTT_NEED_MORE);
    assert_int_equal(f.total_len, 203);
    assert_int_equal(mqtt_frame(b, sizeof(b), 0, &f), MQTT_NEED_MORE);
    assert_int_equal(f.total_len, 203);
}

static void test_frame_5_byte_remaining_length_is_error_MQTT_2_2_3(void **state)
{
    (void)state;
    static const uint8_t b[] = {0x30, 0xff, 0xff, 0xff, 0xff, 0x7f};
    static const uint8_t zeros[] = {0x30, 0x80, 0x80, 0x80, 0x80, 0x00};
    struct mqtt_frame f;
    /* Known as soon as the 4th length byte asks for a 5th. */
    assert_int_equal(mqtt_frame(b, 5, 0, &f), MQTT_ERR_REMAINING_LENGTH);
    assert_int_equal(mqtt_frame(b, sizeof(b), 0, &f), MQTT_ERR_REMAINING_LENGTH);
    assert_int_equal(mqtt_frame(zeros, sizeof(zeros), 0, &f), MQTT_ERR_REMAINING_LENGTH);
}

static void test_frame_reserved_types_0_and_15_MQTT_2_2_1(void **state)
{
    (void)state;
    static const uint8_t zero[] = {0x00, 0x00};
    static const uint8_t fifteen[] = {0xf0, 0x00};
    struct mqtt_frame f;
    assert_int_equal(mqtt_frame(zero, 2, 0, &f), MQTT_ERR_PACKET_TYPE);
    assert_int_equal(mqtt_frame(zero, 1, 0, &f), MQTT_ERR_PACKET_TYPE);
    assert_int_equal(mqtt_frame(fifteen, 2, 0, &f), MQTT_ERR_PACKET_TYPE);
}

static void test_frame_reports_type_flags_body_and_total(void **state)
{
    (void)state;
    static const uint8_t b[] = {0x3b, 3, 'a', 'b', 'c', 0xc0, 0};
    struct mqtt_frame f;
    assert_int_equal(mqtt_frame(b, sizeof(b), 0, &f), MQTT_OK);
    assert_int_equal(f.type, MQTT_PUBLISH);
    assert_int_equal(f.flags, 0xb);
    assert_ptr_equal(f.body, b + 2);
    assert_int_equal(f.body_len, 3);
    assert_int_equal(f.total_len, 5);
}

static void test_frame_accepts_non_minimal_remaining_length(void **state)
{
    (void)state;
    static const uint8_t b[] = {0xc0, 0x80, 0x00};
    struct mqtt_frame f;
    assert_int_equal(mqtt_frame(b, sizeof(b), 0, &f), MQTT_OK);
    assert_int_equal(f.body_len, 0);
    assert_int_equal(f.total_len, 3);
}

struct rl_case {
    uint32_t value;
    uint8_t bytes[4];
    size_t len;
};

/* Table 2.4 of [MQTT-2.2.3]: the boundaries of 1, 2, 3 and 4 bytes. */
static const struct rl_case rl_cases[] = {
    {0, {0x00}, 1},
    {127, {0x7f}, 1},
    {128, {0x80, 0x01}, 2},
    {16383, {0xff, 0x7f}, 2},
    {16384, {0x80, 0x80, 0x01}, 3},
    {2097151, {0xff, 0xff, 0x7f}, 3},
    {2097152, {0x80, 0x80, 0x80, 0x01}, 4},
    {268435455, {0xff, 0xff, 0xff, 0x7f}, 4},
};

static void test_remaining_length_encodes_table_2_4(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rl_cases) / sizeof(rl_cases[0]); i++) {
        uint8_t out[4] = {0};
        size_t n = mqtt_encode_remaining_length(rl_cases[i].value, out);
        assert_int_equal(n, rl_cases[i].len);
        assert_memory_equal(out, rl_cases[i].bytes, n);
    }
}

/*
 * Frames a header alone: a body of `value` bytes is not allocated. The total
 * is checked through the limit: the exact size is NEED_MORE, one less is
 * TOO_LARGE.
 */
static void test_frame_remaining_length_boundaries_table_2_4(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rl_cases) / sizeof(rl_cases[0]); i++) {
        const struct rl_case *c = &rl_cases[i];
        uint8_t hdr[MQTT_MAX_FIXED_HEADER] = {0x30};
        memcpy(hdr + 1, c->bytes, c->len);
        size_t hdr_len = 1 + c->len;
        size_t total = hdr_len + c->value;
        struct mqtt_frame f;
        if (c->value == 0) {
            hdr[0] = 0xc0; /* PINGREQ: a complete packet */
            assert_int_equal(mqtt_frame(hdr, hdr_len, 0, &f), MQTT_OK);
            assert_int_equal(f.total_len, 2);
            continue;
        }
        assert_int_equal(mqtt_frame(hdr, hdr_len, 0, &f), MQTT_NEED_MORE);
        assert_int_equal(mqtt_frame(hdr, hdr_len, total, &f), MQTT_NEED_MORE);
        assert_int_equal(mqtt_frame(hdr, hdr_len, total - 1, &f), MQTT_ERR_TOO_LARGE);
        /* Each prefix of the length bytes is also NEED_MORE. */
        for (size_t n = 1; n < hdr_len; n++)
            assert_int_equal(mqtt_frame(hdr, n, 0, &f), MQTT_NEED_MORE);
    }
}

static void test_remaining_length_268435456_rejected_by_encoder(void **state)
{
    (void)state;
    uint8_t out[4];
    assert_int_equal(mqtt_encode_remaining_length(268435456u, out), 0);
    assert_int_equal(mqtt_encode_remaining_length(UINT32_MAX, out), 0);

    /* A PUBLISH whose body would be exactly the maximum, then one more (never allocated). */
    static const uint8_t dummy[1] = {0};
    struct mqtt_packet pkt = {.type = MQTT_PUBLISH};
    pkt.u.publish.topic.data = (const uint8_t *)"t";
    pkt.u.publish.topic.len = 1;
    pkt.u.publish.payload.data = dummy;
    pkt.u.publish.payload.len = MQTT_MAX_REMAINING_LENGTH - 3;
    assert_int_equal(mqtt_encoded_size(&pkt), 5 + (size_t)MQTT_MAX_REMAINING_LENGTH);
    pkt.u.publish.payload.len++;
    assert_int_equal(mqtt_encoded_size(&pkt), 0);
    size_t written = 0;
    uint8_t buf[16];
    assert_int_equal(mqtt_encode(&pkt, buf, sizeof(buf), &written), MQTT_ERR_INVALID_ARGUMENT);
}

/* ---- maximum packet size ---------------------------------------------- */

static void test_frame_max_packet_size_enforced_before_body_arrives(void **state)
{
    (void)state;
    /* Claims a 1000-byte body; only the header and 2 bytes are here. */
    static const uint8_t b[] = {0x30, 0xe8, 0x07, 0, 1};
    struct mqtt_frame f;
    assert_int_equal(mqtt_frame(b, sizeof(b), 100, &f), MQTT_ERR_TOO_LARGE);
    assert_int_equal(mqtt_frame(b, 3, 100, &f), MQTT_ERR_TOO_LARGE);
    assert_int_equal(mqtt_frame(b, 2, 100, &f), MQTT_NEED_MORE); /* length not yet known */
    assert_int_equal(mqtt_frame(b, sizeof(b), 1003, &f), MQTT_NEED_MORE);
    assert_int_equal(mqtt_frame(b, sizeof(b), 1002, &f), MQTT_ERR_TOO_LARGE);

    struct mqtt_packet pkt;
    size_t consumed = 99;
    assert_int_equal(mqtt_decode_stream(b, sizeof(b), 100, &pkt, &consumed), MQTT_ERR_TOO_LARGE);
    assert_int_equal(consumed, 0);
}

static void test_frame_packet_exactly_at_max_size_is_ok(void **state)
{
    (void)state;
    static const uint8_t b[] = {0x40, 2, 0, 7};
    struct mqtt_frame f;
    assert_int_equal(mqtt_frame(b, sizeof(b), 4, &f), MQTT_OK);
    assert_int_equal(mqtt_frame(b, sizeof(b), 3, &f), MQTT_ERR_TOO_LARGE);
}

/* ---- mqtt_decode_stream ------------------------------------------------ */

static void test_decode_stream_reports_consumed_and_errors(void **state)
{
    (void)state;
    static const uint8_t two[] = {0xc0, 0, 0xe0, 0};
    static const uint8_t bad[] = {0x82, 2, 0, 1};
    struct mqtt_packet pkt;
    size_t consumed = 0;
    assert_int_equal(mqtt_decode_stream(two, sizeof(two), 0, &pkt, &consumed), MQTT_OK);
    assert_int_equal(consumed, 2);
    assert_int_equal(pkt.type, MQTT_PINGREQ);
    assert_int_equal(mqtt_decode_stream(two + 2, 2, 0, &pkt, &consumed), MQTT_OK);
    assert_int_equal(pkt.type, MQTT_DISCONNECT);
    assert_int_equal(mqtt_decode_stream(two, 1, 0, &pkt, &consumed), MQTT_NEED_MORE);
    assert_int_equal(consumed, 0);
    assert_int_equal(mqtt_decode_stream(bad, sizeof(bad), 0, &pkt, &consumed),
                     MQTT_ERR_EMPTY_PAYLOAD);
    assert_int_equal(consumed, 0);
}

/* Every proper prefix of a packet, in a buffer of exactly that size (ASan sees overreads). */
static void test_frame_never_reads_past_len(void **state)
{
    (void)state;
    static const uint8_t b[] = {0x82, 0x8e, 0x00, 0, 10,  0,   3,   'a', '/',
                                'b',  1,    0,    3, 'c', '/', 'd', 2};
    for (size_t n = 0; n < sizeof(b); n++) {
        uint8_t *copy = malloc(n > 0 ? n : 1);
        assert_non_null(copy);
        memcpy(copy, b, n);
        struct mqtt_packet pkt;
        size_t consumed = 0;
        assert_int_equal(mqtt_decode_stream(copy, n, 0, &pkt, &consumed), MQTT_NEED_MORE);
        free(copy);
    }
    struct mqtt_packet pkt;
    size_t consumed = 0;
    assert_int_equal(mqtt_decode_stream(b, sizeof(b), 0, &pkt, &consumed), MQTT_OK);
    assert_int_equal(consumed, sizeof(b));
}

/* A deterministic generator so every run feeds the same chunks. */
static uint32_t next_random(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

#define STREAM_PACKETS 100
#define BIG_PAYLOAD    20000

struct stream {
    uint8_t *bytes;
    size_t len;
    size_t offsets[STREAM_PACKETS + 1]; /* packet i is bytes[offsets[i]..offsets[i+1]) */
    uint8_t types[STREAM_PACKETS];
    size_t count;
};

static uint8_t payload[BIG_PAYLOAD];
static const struct mqtt_topic_entry sub_entries[] = {
    {{(const uint8_t *)"a/+/c", 5}, 1},
    {{(const uint8_t *)"#", 1}, 2},
};
static const uint8_t suback_codes[] = {0, 0x80, 2, 1};

/* The i-th packet of the stream: all 14 types, payloads of 0..20000 bytes with zero bytes. */
static struct mqtt_packet stream_packet(size_t i)
{
    struct mqtt_packet p;
    memset(&p, 0, sizeof(p));
    p.type = (uint8_t)(1 + i % 14);
    uint16_t id = (uint16_t)(i + 1);
    switch (p.type) {
    case MQTT_CONNECT:
        p.u.connect.protocol_name = (struct mqtt_bytes){(const uint8_t *)"MQTT", 4};
        p.u.connect.protocol_level = 4;
        p.u.connect.clean_session = true;
        p.u.connect.client_id = (struct mqtt_bytes){(const uint8_t *)"client", 6};
        break;
    case MQTT_CONNACK:
        p.u.connack.return_code = (uint8_t)(i % 6);
        break;
    case MQTT_PUBLISH: {
        static const size_t sizes[] = {0, 1, 127, 128, 16383, 16384, BIG_PAYLOAD};
        p.u.publish.qos = (uint8_t)(i % 3);
        p.u.publish.packet_id = p.u.publish.qos > 0 ? id : 0;
        p.u.publish.topic = (struct mqtt_bytes){(const uint8_t *)"s/t", 3};
        p.u.publish.payload = (struct mqtt_bytes){payload, sizes[(i / 14) % 7]};
        break;
    }
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        p.u.subscribe.packet_id = id;
        p.u.subscribe.entries = sub_entries;
        p.u.subscribe.count = 2;
        break;
    case MQTT_SUBACK:
        p.u.suback.packet_id = id;
        p.u.suback.return_codes = (struct mqtt_bytes){suback_codes, sizeof(suback_codes)};
        break;
    case MQTT_PINGREQ:
    case MQTT_PINGRESP:
    case MQTT_DISCONNECT:
        break;
    default:
        p.u.ack.packet_id = id;
        break;
    }
    return p;
}

static int stream_setup(void **state)
{
    for (size_t i = 0; i < BIG_PAYLOAD; i++)
        payload[i] = (uint8_t)(i * 7); /* includes zero bytes */
    struct stream *s = calloc(1, sizeof(*s));
    size_t cap = STREAM_PACKETS * 64 + 10 * (BIG_PAYLOAD + 16);
    s->bytes = malloc(cap);
    if (s == NULL || s->bytes == NULL)
        return -1;
    for (size_t i = 0; i < STREAM_PACKETS; i++) {
        struct mqtt_packet p = stream_packet(i);
        size_t written = 0;
        s->offsets[i] = s->len;
        if (mqtt_encode(&p, s->bytes + s->len, cap - s->len, &written) != MQTT_OK)
            return -1;
        s->types[i] = p.type;
        s->len += written;
    }
    s->offsets[STREAM_PACKETS] = s->len;
    s->count = STREAM_PACKETS;
    *state = s;
    return 0;
}

static int stream_teardown(void **state)
{
    struct stream *s = *state;
    free(s->bytes);
    free(s);
    return 0;
}

/* A connection's input buffer: bytes are appended, decoded packets removed from the front. */
struct inbuf {
    uint8_t data[BIG_PAYLOAD + 64];
    size_t len;
};

/* Decodes every complete packet in `in`; checks each against the stream; returns how many. */
static size_t drain(struct inbuf *in, const struct stream *s, size_t next)
{
    for (;;) {
        struct mqtt_packet pkt;
        size_t consumed = 0;
        int rc = mqtt_decode_stream(in->data, in->len, sizeof(in->data), &pkt, &consumed);
        if (rc == MQTT_NEED_MORE)
            return next;
        assert_int_equal(rc, MQTT_OK);
        assert_true(next < s->count);
        size_t want = s->offsets[next + 1] - s->offsets[next];
        assert_int_equal(pkt.type, s->types[next]);
        assert_int_equal(consumed, want);
        assert_memory_equal(in->data, s->bytes + s->offsets[next], want);

        /* The decoded packet encodes back to the same bytes. */
        uint8_t *again = malloc(want);
        size_t written = 0;
        assert_non_null(again);
        assert_int_equal(mqtt_encode(&pkt, again, want, &written), MQTT_OK);
        assert_int_equal(written, want);
        assert_memory_equal(again, s->bytes + s->offsets[next], want);
        free(again);

        memmove(in->data, in->data + consumed, in->len - consumed);
        in->len -= consumed;
        next++;
    }
}

/* Feeds the stream in chunks of max_chunk bytes (1 = byte at a time, 0 = random 1..4096). */
static void feed(const struct stream *s, size_t max_chunk, uint32_t seed)
{
    struct inbuf *in = calloc(1, sizeof(*in));
    assert_non_null(in);
    size_t off = 0, next = 0;
    while (off < s->len) {
        size_t chunk = max_chunk != 0 ? max_chunk : 1 + next_random(&seed) % 4096;
        if (chunk > s->len - off)
            chunk = s->len - off;
        if (chunk > sizeof(in->data) - in->len)
            chunk = sizeof(in->data) - in->len;
        memcpy(in->data + in->len, s->bytes + off, chunk);
        in->len += chunk;
        off += chunk;
        next = drain(in, s, next);
    }
    assert_int_equal(next, s->count);
    assert_int_equal(in->len, 0);
    free(in);
}

static void test_stream_fed_one_byte_at_a_time_gives_same_packets(void **state)
{
    feed(*state, 1, 0);
}

static void test_stream_fed_in_random_chunks_gives_same_packets(void **state)
{
    feed(*state, 0, 0x5eed1234u);
    feed(*state, 0, 42u);
}

static void test_stream_coalesced_in_one_buffer_gives_same_packets(void **state)
{
    const struct stream *s = *state;
    size_t off = 0;
    for (size_t i = 0; i < s->count; i++) {
        struct mqtt_packet pkt;
        size_t consumed = 0;
        assert_int_equal(mqtt_decode_stream(s->bytes + off, s->len - off, 0, &pkt, &consumed),
                         MQTT_OK);
        assert_int_equal(pkt.type, s->types[i]);
        assert_int_equal(consumed, s->offsets[i + 1] - s->offsets[i]);
        off += consumed;
    }
    assert_int_equal(off, s->len);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_empty_buffer_needs_more),
        cmocka_unit_test(test_frame_incomplete_remaining_length_needs_more),
        cmocka_unit_test(test_frame_need_more_reports_total_once_header_is_complete),
        cmocka_unit_test(test_frame_5_byte_remaining_length_is_error_MQTT_2_2_3),
        cmocka_unit_test(test_frame_reserved_types_0_and_15_MQTT_2_2_1),
        cmocka_unit_test(test_frame_reports_type_flags_body_and_total),
        cmocka_unit_test(test_frame_accepts_non_minimal_remaining_length),
        cmocka_unit_test(test_remaining_length_encodes_table_2_4),
        cmocka_unit_test(test_frame_remaining_length_boundaries_table_2_4),
        cmocka_unit_test(test_remaining_length_268435456_rejected_by_encoder),
        cmocka_unit_test(test_frame_max_packet_size_enforced_before_body_arrives),
        cmocka_unit_test(test_frame_packet_exactly_at_max_size_is_ok),
        cmocka_unit_test(test_decode_stream_reports_consumed_and_errors),
        cmocka_unit_test(test_frame_never_reads_past_len),
        cmocka_unit_test_setup_teardown(test_stream_fed_one_byte_at_a_time_gives_same_packets,
                                        stream_setup, stream_teardown),
        cmocka_unit_test_setup_teardown(test_stream_fed_in_random_chunks_gives_same_packets,
                                        stream_setup, stream_teardown),
        cmocka_unit_test_setup_teardown(test_stream_coalesced_in_one_buffer_gives_same_packets,
                                        stream_setup, stream_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
