/*
 * fuzz_stream.c - libFuzzer target for the streaming decoder.
 *
 * Treats the input as bytes arriving on one connection, three times: at
 * protocol levels 3 (MQTT 3.1), 4 (3.1.1) and 5 (MQTT 5.0). Decodes packets
 * with mqtt_decode_stream_for() until the buffer is used up, needs more
 * bytes or is malformed, as the server would. Each decoded packet is
 * re-encoded and decoded again (same bytes, or for an MQTT 5 short form the
 * same meaning), and its topics go through the topic helpers. MQTT 5
 * property blocks are walked, rebuilt from the decoded fields and compared,
 * and go through the Maximum Packet Size and copy helpers.
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
static void check_frame_limit(const uint8_t *buf, size_t len, uint8_t level)
{
    struct mqtt_frame big, small;
    int rb = mqtt_frame_for(buf, len, FUZZ_MAX_PACKET, level, &big);
    int rs = mqtt_frame_for(buf, len, FUZZ_SMALL_PACKET, level, &small);

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

    if (pkt->protocol_level == MQTT_PROTOCOL_V5 && topic.len == 0) {
        if (!mqtt_properties_has(&pkt->u.publish.props, MQTT_PROP_TOPIC_ALIAS))
            die("empty v5 topic without a Topic Alias", pkt);
        return; /* the alias stands for a topic set earlier */
    }
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
    bool v5 = pkt->protocol_level == MQTT_PROTOCOL_V5;
    size_t cap = MQTT_MAX_FIXED_HEADER + 2 + pub->topic.len + 2; /* as mqtt.h promises */
    if (v5)
        cap = mqtt_publish_header_size(pub, MQTT_PROTOCOL_V5);
    uint8_t *hdr = malloc(cap);
    size_t written = 0;

    if (hdr == NULL)
        abort();
    int rc = v5 ? mqtt_encode_publish_header_for(pub, MQTT_PROTOCOL_V5, hdr, cap, &written)
                : mqtt_encode_publish_header(pub, hdr, cap, &written);
    if (rc != MQTT_OK)
        die("PUBLISH header does not encode", pkt);
    if (written + pub->payload.len != n || memcmp(hdr, enc, written) != 0)
        die("PUBLISH header differs from the whole-packet encoding", pkt);
    free(hdr);
}

static bool same_bytes(struct mqtt_bytes a, struct mqtt_bytes b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

/*
 * MQTT 5 lets PUBACK, PUBREC, PUBREL, PUBCOMP, DISCONNECT and AUTH leave out
 * a Success reason and an empty property block [3.4.2.1] [3.14.2.1]
 * [3.15.2.1]; the encoder writes the shortest form, so a longer input
 * re-encodes to other bytes with the same meaning.
 */
static bool is_v5_short_form_type(const struct mqtt_packet *pkt)
{
    if (pkt->protocol_level != MQTT_PROTOCOL_V5)
        return false;
    switch (pkt->type) {
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        return true;
    default:
        return false;
    }
}

/* Same meaning: type, packet id, reason code and property block. */
static bool same_short_form(const struct mqtt_packet *a, const struct mqtt_packet *b)
{
    if (a->type != b->type)
        return false;
    if (a->type == MQTT_DISCONNECT || a->type == MQTT_AUTH)
        return a->u.disconnect.reason_code == b->u.disconnect.reason_code &&
               same_bytes(a->u.disconnect.props.raw, b->u.disconnect.props.raw);
    return a->u.ack.packet_id == b->u.ack.packet_id &&
           a->u.ack.reason_code == b->u.ack.reason_code &&
           same_bytes(a->u.ack.props.raw, b->u.ack.props.raw);
}

/* Encoded fixed header byte and body equal the bytes that were decoded, or
 * (v5 short forms) mean the same and are the encoder's fixed point. */
static void check_same_bytes(const struct mqtt_packet *pkt, const struct mqtt_packet *again,
                             const uint8_t *orig, size_t orig_len, const uint8_t *enc, size_t n)
{
    struct mqtt_frame f1, f2;
    uint8_t v5 = MQTT_PROTOCOL_V5;

    if (mqtt_frame_for(orig, orig_len, 0, v5, &f1) != MQTT_OK ||
        mqtt_frame_for(enc, n, 0, v5, &f2) != MQTT_OK)
        die("cannot re-frame", pkt);
    /* MQTT 3.1's DUP on PUBREL/SUBSCRIBE/UNSUBSCRIBE decodes as 0010 (mqtt.h) */
    bool v31_dup = pkt->protocol_level == MQTT_PROTOCOL_V31 && (orig[0] & 0x0fu) == 0x0au &&
                   enc[0] == (orig[0] & 0xf7u);
    if (orig[0] != enc[0] && !v31_dup)
        die("re-encoded type/flags byte differs", pkt);
    if (f1.body_len == f2.body_len && memcmp(f1.body, f2.body, f1.body_len) == 0)
        return;
    if (!is_v5_short_form_type(pkt))
        die("re-encoded body differs from the decoded body", pkt);
    if (!same_short_form(pkt, again))
        die("re-encoded short form means something else", pkt);
    uint8_t out[16]; /* a short form without properties is at most 5 bytes */
    size_t m = 0;
    if (mqtt_encoded_size(again) != n ||
        (n <= sizeof(out) && (mqtt_encode(again, out, sizeof(out), &m) != MQTT_OK || m != n ||
                              memcmp(out, enc, n) != 0)))
        die("the encoder's short form is not a fixed point", pkt);
}

static void check_roundtrip(const struct mqtt_packet *pkt, uint8_t level, const uint8_t *orig,
                            size_t orig_len)
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
    if (mqtt_decode_stream_for(buf, n, 0, level, &again, &consumed) != MQTT_OK)
        die("re-encoded packet does not decode", pkt);
    if (consumed != n || again.type != pkt->type || again.protocol_level != pkt->protocol_level)
        die("re-encoded packet decodes to another type, size or level", pkt);
    check_same_bytes(pkt, &again, orig, orig_len, buf, n);
    if (pkt->type == MQTT_PUBLISH)
        check_publish_header(pkt, buf, n);
    free(buf);
}

/* ---- MQTT 5 properties ---- */

/* Up to two property blocks of a decoded v5 packet (CONNECT: its own and the will's). */
static size_t property_blocks(struct mqtt_packet *pkt, struct mqtt_properties *out[2])
{
    switch (pkt->type) {
    case MQTT_CONNECT:
        out[0] = &pkt->u.connect.props;
        out[1] = &pkt->u.connect.will_props;
        return pkt->u.connect.has_will ? 2 : 1;
    case MQTT_CONNACK:
        out[0] = &pkt->u.connack.props;
        return 1;
    case MQTT_PUBLISH:
        out[0] = &pkt->u.publish.props;
        return 1;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
    case MQTT_UNSUBACK:
        out[0] = &pkt->u.ack.props;
        return 1;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        out[0] = &pkt->u.subscribe.props;
        return 1;
    case MQTT_SUBACK:
        out[0] = &pkt->u.suback.props;
        return 1;
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        out[0] = &pkt->u.disconnect.props;
        return 1;
    default:
        return 0;
    }
}

/* Fields decoded from a block, as a comparable summary. */
static bool same_fields(const struct mqtt_properties *a, const struct mqtt_properties *b)
{
    return a->present == b->present && a->payload_format_indicator == b->payload_format_indicator &&
           a->request_problem_information == b->request_problem_information &&
           a->request_response_information == b->request_response_information &&
           a->maximum_qos == b->maximum_qos && a->retain_available == b->retain_available &&
           a->wildcard_subscription_available == b->wildcard_subscription_available &&
           a->subscription_identifier_available == b->subscription_identifier_available &&
           a->shared_subscription_available == b->shared_subscription_available &&
           a->server_keep_alive_s == b->server_keep_alive_s &&
           a->receive_maximum == b->receive_maximum &&
           a->topic_alias_maximum == b->topic_alias_maximum && a->topic_alias == b->topic_alias &&
           a->message_expiry_interval_s == b->message_expiry_interval_s &&
           a->session_expiry_interval_s == b->session_expiry_interval_s &&
           a->will_delay_interval_s == b->will_delay_interval_s &&
           a->maximum_packet_size == b->maximum_packet_size &&
           a->subscription_identifier == b->subscription_identifier &&
           same_bytes(a->content_type, b->content_type) &&
           same_bytes(a->response_topic, b->response_topic) &&
           same_bytes(a->correlation_data, b->correlation_data) &&
           same_bytes(a->assigned_client_identifier, b->assigned_client_identifier) &&
           same_bytes(a->authentication_method, b->authentication_method) &&
           same_bytes(a->authentication_data, b->authentication_data) &&
           same_bytes(a->response_information, b->response_information) &&
           same_bytes(a->server_reference, b->server_reference) &&
           same_bytes(a->reason_string, b->reason_string) &&
           a->user_property_count == b->user_property_count &&
           a->subscription_id_count == b->subscription_id_count;
}

/* The lists of a decoded block, copied out for encoding from fields. */
struct prop_lists {
    struct mqtt_user_property *users;
    uint32_t *ids;
};

/* Walks a decoded block: it covers raw exactly, and its lists match the counts. */
static void walk_block(const struct mqtt_packet *pkt, const struct mqtt_properties *p,
                       struct prop_lists *l)
{
    struct mqtt_property_iter it;
    struct mqtt_property prop;
    size_t bytes = 0, users = 0, ids = 0;

    l->users = calloc(p->user_property_count + 1, sizeof(*l->users));
    l->ids = calloc(p->subscription_id_count + 1, sizeof(*l->ids));
    if (l->users == NULL || l->ids == NULL)
        abort();
    mqtt_property_iter_init(&it, p);
    while (mqtt_property_iter_next(&it, &prop)) {
        bytes += prop.wire.len;
        if (!mqtt_properties_has(p, prop.id))
            die("iterated property not marked present", pkt);
        if (prop.id == MQTT_PROP_USER_PROPERTY && users < p->user_property_count)
            l->users[users++] = (struct mqtt_user_property){prop.data, prop.data2};
        else if (prop.id == MQTT_PROP_SUBSCRIPTION_IDENTIFIER && ids < p->subscription_id_count)
            l->ids[ids++] = prop.value;
        else if (prop.id == MQTT_PROP_USER_PROPERTY || prop.id == MQTT_PROP_SUBSCRIPTION_IDENTIFIER)
            die("more list properties than counted", pkt);
    }
    if (bytes != p->raw.len || users != p->user_property_count || ids != p->subscription_id_count)
        die("property iterator does not cover the block", pkt);
}

/* A verbatim copy with nothing dropped is the block itself. */
static void check_copy(const struct mqtt_packet *pkt, const struct mqtt_properties *p)
{
    uint8_t *out = malloc(p->raw.len + 1);
    size_t n = 0;
    if (out == NULL)
        abort();
    if (mqtt_properties_copy(p->raw, 0, out, p->raw.len, &n) != MQTT_OK || n != p->raw.len ||
        (n > 0 && memcmp(out, p->raw.data, n) != 0))
        die("mqtt_properties_copy of a whole block differs", pkt);
    free(out);
}

/*
 * Encodes the packet again with every block given as fields (raw cleared,
 * lists as arrays): it decodes to the same fields. Then the Maximum Packet
 * Size helper, asked for one byte less, either fails or fits.
 */
static void check_fields_encode(const struct mqtt_packet *pkt, uint8_t level)
{
    struct mqtt_packet copy = *pkt;
    struct mqtt_properties *blocks[2], *orig[2];
    struct prop_lists lists[2] = {{NULL, NULL}, {NULL, NULL}};
    struct mqtt_packet *src = (struct mqtt_packet *)pkt; /* read only */
    size_t nb = property_blocks(&copy, blocks);
    property_blocks(src, orig);

    for (size_t i = 0; i < nb; i++) {
        walk_block(pkt, orig[i], &lists[i]);
        check_copy(pkt, orig[i]);
        blocks[i]->raw = (struct mqtt_bytes){NULL, 0};
        blocks[i]->user_properties = lists[i].users;
        blocks[i]->subscription_ids = lists[i].ids;
    }
    size_t n = mqtt_encoded_size(&copy);
    uint8_t *buf = n > 0 ? malloc(n) : NULL;
    size_t written = 0;
    if (buf == NULL || mqtt_encode(&copy, buf, n, &written) != MQTT_OK || written != n)
        die("packet does not encode from its decoded fields", pkt);
    struct mqtt_packet back;
    size_t consumed = 0;
    if (mqtt_decode_stream_for(buf, n, 0, level, &back, &consumed) != MQTT_OK)
        die("packet encoded from fields does not decode", pkt);
    struct mqtt_properties *again[2];
    property_blocks(&back, again);
    for (size_t i = 0; i < nb; i++) {
        if (!same_fields(orig[i], again[i]))
            die("properties encoded from fields decode to other values", pkt);
    }
    size_t fit = 0;
    int rc = mqtt_fit_packet(&copy, n - 1, &fit);
    if (rc != MQTT_ERR_TOO_LARGE &&
        (rc != MQTT_OK || fit > n - 1 || fit != mqtt_encoded_size(&copy)))
        die("mqtt_fit_packet neither fits nor refuses", pkt);
    free(buf);
    for (size_t i = 0; i < nb; i++) {
        free(lists[i].users);
        free(lists[i].ids);
    }
}

static void visit_packet(struct fuzz_state *st, const struct mqtt_packet *pkt, uint8_t level,
                         const uint8_t *orig, size_t orig_len)
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
    check_roundtrip(pkt, level, orig, orig_len);
    if (pkt->protocol_level == MQTT_PROTOCOL_V5)
        check_fields_encode(pkt, level);
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

/* One connection's bytes at one protocol level. */
static void run_stream(const uint8_t *data, size_t size, uint8_t level)
{
    struct fuzz_state st = {.ntopics = 0};
    size_t off = 0;

    while (off < size) {
        struct mqtt_packet pkt;
        size_t consumed = 0;
        check_frame_limit(data + off, size - off, level);
        if (level == MQTT_PROTOCOL_V311)
            check_v31_superset(data + off, size - off);
        int rc =
            mqtt_decode_stream_for(data + off, size - off, FUZZ_MAX_PACKET, level, &pkt, &consumed);
        if (mqtt_strerror(rc) == NULL)
            die("mqtt_strerror returned NULL", NULL);
        if (rc != MQTT_OK) {
            uint8_t reason = mqtt_reason_for_error(rc);
            if (rc < 0 && (reason < 0x80 || mqtt_reason_name(MQTT_DISCONNECT, reason) == NULL))
                die("a decoding error maps to no error reason code", NULL);
            break; /* wait for more bytes, or close the connection */
        }
        if (consumed < 2 || consumed > size - off)
            die("consumed outside the buffer", &pkt);
        visit_packet(&st, &pkt, level, data + off, consumed);
        off += consumed;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run_stream(data, size, MQTT_PROTOCOL_V31);
    run_stream(data, size, MQTT_PROTOCOL_V311);
    run_stream(data, size, MQTT_PROTOCOL_V5);
    return 0;
}
