/*
 * fuzz_stream.c - libFuzzer target for the streaming decoder.
 *
 * Treats the input as bytes arriving on one connection: decodes packets with
 * mqtt_decode_stream() until the buffer is used up, needs more bytes or is
 * malformed, as the server would. Each decoded packet is re-encoded and
 * decoded again, and its topics go through the topic helpers.
 *
 * abort() here marks a broken invariant of our own codec (decode/encode
 * symmetry, documented contracts), never a reaction to hostile input: the
 * codec itself must answer hostile input with an error code.
 * Not for: the session or server layers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt.h"
#include "mqtt_topic.h"

/* The limit the decode loop runs with, and a small one to compare against. */
#define FUZZ_MAX_PACKET   (1u << 20)
#define FUZZ_SMALL_PACKET 64u
/* PUBLISH topics kept per input, to match SUBSCRIBE filters against. */
#define FUZZ_MAX_TOPICS 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_state {
    struct mqtt_bytes topics[FUZZ_MAX_TOPICS];
    size_t ntopics;
};

static void die(const char *what, const struct mqtt_packet *pkt)
{
    fprintf(stderr, "fuzz_stream: invariant broken: %s (packet %s)\n", what,
            pkt != NULL ? mqtt_packet_name(pkt->type) : "-");
    abort();
}

/*
 * The same bytes framed with a smaller limit give the same answer, except
 * that a packet above the limit is MQTT_ERR_TOO_LARGE as soon as its
 * Remaining Length is known.
 */
static void check_frame_limit(const uint8_t *buf, size_t len)
{
    struct mqtt_frame big, small;
    int rb = mqtt_frame(buf, len, FUZZ_MAX_PACKET, &big);
    int rs = mqtt_frame(buf, len, FUZZ_SMALL_PACKET, &small);

    if (rs == MQTT_ERR_TOO_LARGE) {
        if (rb == MQTT_OK && big.total_len <= FUZZ_SMALL_PACKET)
            die("TOO_LARGE for a packet within the limit", NULL);
        if (rb != MQTT_OK && rb != MQTT_NEED_MORE && rb != MQTT_ERR_TOO_LARGE)
            die("TOO_LARGE where a bigger limit gives another error", NULL);
        return;
    }
    if (rs != rb)
        die("frame result depends on the packet limit", NULL);
    if (rs == MQTT_OK && (small.total_len != big.total_len || small.total_len > len))
        die("frame length depends on the packet limit", NULL);
}

/* Level splitting covers the whole topic: sum of levels + separators. */
static size_t count_levels(struct mqtt_bytes topic)
{
    struct mqtt_level_iter it;
    struct mqtt_bytes level;
    size_t n = 0, bytes = 0;

    mqtt_level_iter_init(&it, topic);
    while (mqtt_level_iter_next(&it, &level)) {
        if (level.len > topic.len)
            die("level longer than topic", NULL);
        bytes += level.len;
        n++;
    }
    if (n == 0 || bytes + (n - 1) != topic.len)
        die("levels do not cover the topic", NULL);
    return n;
}

static void visit_publish(struct fuzz_state *st, const struct mqtt_packet *pkt)
{
    struct mqtt_bytes topic = pkt->u.publish.topic;

    if (mqtt_topic_name_check(topic) != MQTT_OK)
        die("decoded PUBLISH has an invalid topic name", pkt);
    count_levels(topic);
    if (st->ntopics < FUZZ_MAX_TOPICS)
        st->topics[st->ntopics++] = topic;
}

static void visit_filter(struct fuzz_state *st, const struct mqtt_packet *pkt,
                         const struct mqtt_topic_entry *e)
{
    if (mqtt_utf8_check(e->filter.data, e->filter.len) != MQTT_OK)
        die("decoded filter is not valid UTF-8", pkt);
    count_levels(e->filter);
    if (mqtt_topic_filter_check(e->filter) != MQTT_OK)
        return; /* answered with SUBACK 0x80, never matched */
    for (size_t i = 0; i < st->ntopics; i++)
        (void)mqtt_topic_matches(e->filter, st->topics[i]);
    /* A filter without wildcards is a topic name that matches itself. */
    if (mqtt_topic_name_check(e->filter) == MQTT_OK && !mqtt_topic_matches(e->filter, e->filter))
        die("a plain filter does not match itself", pkt);
}

static void visit_subscribe(struct fuzz_state *st, const struct mqtt_packet *pkt)
{
    struct mqtt_topic_iter it;
    struct mqtt_topic_entry e;
    size_t n = 0;

    mqtt_topic_iter_init(&it, pkt);
    while (mqtt_topic_iter_next(&it, &e)) {
        if (pkt->type == MQTT_SUBSCRIBE && e.qos > 2)
            die("decoded SUBSCRIBE entry with QoS > 2", pkt);
        visit_filter(st, pkt, &e);
        n++;
    }
    if (n == 0 || n != pkt->u.subscribe.count)
        die("entry count differs from what the iterator yields", pkt);
}

static void visit_connect(const struct mqtt_packet *pkt)
{
    const struct mqtt_connect *c = &pkt->u.connect;

    if (mqtt_utf8_check(c->client_id.data, c->client_id.len) != MQTT_OK)
        die("decoded client id is not valid UTF-8", pkt);
    if (c->has_will)
        (void)mqtt_topic_name_check(c->will_topic);
    if (c->has_username && mqtt_utf8_check(c->username.data, c->username.len) != MQTT_OK)
        die("decoded username is not valid UTF-8", pkt);
}

/* PUBLISH header + payload, encoded apart, equal the whole packet. */
static void check_publish_header(const struct mqtt_packet *pkt, const uint8_t *enc, size_t n)
{
    const struct mqtt_publish *pub = &pkt->u.publish;
    size_t cap = MQTT_MAX_FIXED_HEADER + 2 + pub->topic.len + 2; /* as mqtt.h promises */
    uint8_t *hdr = malloc(cap);
    size_t written = 0;

    if (hdr == NULL)
        abort();
    if (mqtt_encode_publish_header(pub, hdr, cap, &written) != MQTT_OK)
        die("PUBLISH header does not encode", pkt);
    if (written + pub->payload.len != n || memcmp(hdr, enc, written) != 0)
        die("PUBLISH header differs from the whole-packet encoding", pkt);
    free(hdr);
}

/* Encoded fixed header byte and body equal the bytes that were decoded. */
static void check_same_bytes(const struct mqtt_packet *pkt, const uint8_t *orig, size_t orig_len,
                             const uint8_t *enc, size_t n)
{
    struct mqtt_frame f1, f2;

    if (mqtt_frame(orig, orig_len, 0, &f1) != MQTT_OK || mqtt_frame(enc, n, 0, &f2) != MQTT_OK)
        die("cannot re-frame", pkt);
    if (orig[0] != enc[0])
        die("re-encoded type/flags byte differs", pkt);
    if (f1.body_len != f2.body_len || memcmp(f1.body, f2.body, f1.body_len) != 0)
        die("re-encoded body differs from the decoded body", pkt);
}

static void check_roundtrip(const struct mqtt_packet *pkt, const uint8_t *orig, size_t orig_len)
{
    size_t n = mqtt_encoded_size(pkt);
    if (n == 0)
        die("a decoded packet has no encoded size", pkt);
    uint8_t *buf = malloc(n);
    if (buf == NULL)
        abort(); /* the fuzzer's own memory, not codec input */

    size_t written = 0;
    if (mqtt_encode(pkt, buf, n - 1, &written) != MQTT_ERR_BUFFER_TOO_SMALL)
        die("encode into a buffer one byte short did not fail", pkt);
    if (mqtt_encode(pkt, buf, n, &written) != MQTT_OK || written != n)
        die("encode failed or wrote other than mqtt_encoded_size()", pkt);

    struct mqtt_packet again;
    size_t consumed = 0;
    if (mqtt_decode_stream(buf, n, 0, &again, &consumed) != MQTT_OK)
        die("re-encoded packet does not decode", pkt);
    if (consumed != n || again.type != pkt->type)
        die("re-encoded packet decodes to another type or size", pkt);
    check_same_bytes(pkt, orig, orig_len, buf, n);
    if (pkt->type == MQTT_PUBLISH)
        check_publish_header(pkt, buf, n);
    free(buf);
}

static void visit_packet(struct fuzz_state *st, const struct mqtt_packet *pkt, const uint8_t *orig,
                         size_t orig_len)
{
    switch (pkt->type) {
    case MQTT_CONNECT:
        visit_connect(pkt);
        break;
    case MQTT_PUBLISH:
        visit_publish(st, pkt);
        break;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        visit_subscribe(st, pkt);
        break;
    default:
        break;
    }
    check_roundtrip(pkt, orig, orig_len);
}

/* MQTT 3.1 decoding accepts everything 3.1.1 decoding does, with the same
 * result; the only extra it accepts is DUP on PUBREL/SUBSCRIBE/UNSUBSCRIBE. */
static void check_v31_superset(const uint8_t *buf, size_t len)
{
    struct mqtt_frame frame;
    if (mqtt_frame(buf, len, FUZZ_MAX_PACKET, &frame) != MQTT_OK)
        return;
    struct mqtt_packet a, b;
    int r311 = mqtt_decode_for(&frame, MQTT_PROTOCOL_V311, &a);
    int r31 = mqtt_decode_for(&frame, MQTT_PROTOCOL_V31, &b);
    if (r311 == MQTT_OK && (r31 != MQTT_OK || a.type != b.type))
        die("MQTT 3.1 decoding refused or changed a valid 3.1.1 packet", &a);
    if (r311 != MQTT_OK && r31 == MQTT_OK && (frame.flags != 0xa || r311 != MQTT_ERR_HEADER_FLAGS))
        die("MQTT 3.1 decoding accepted more than DUP on a QoS 1 control packet", &b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_state st = {.ntopics = 0};
    size_t off = 0;

    while (off < size) {
        struct mqtt_packet pkt;
        size_t consumed = 0;
        check_frame_limit(data + off, size - off);
        check_v31_superset(data + off, size - off);
        int rc = mqtt_decode_stream(data + off, size - off, FUZZ_MAX_PACKET, &pkt, &consumed);
        if (mqtt_strerror(rc) == NULL)
            die("mqtt_strerror returned NULL", NULL);
        if (rc != MQTT_OK)
            break; /* wait for more bytes, or close the connection */
        if (consumed < 2 || consumed > size - off)
            die("consumed outside the buffer", &pkt);
        visit_packet(&st, &pkt, data + off, consumed);
        off += consumed;
    }
    return 0;
}
