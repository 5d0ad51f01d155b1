/*
 * retained_stream.c - the retained messages a SUBSCRIBE asks for, read from
 * the store (where they live; memory holds none) and sent at the pace the
 * subscriber takes them.
 *
 * Each granted filter gets a stream: an exact filter is one lookup; a
 * wildcard filter reads the topics under its literal levels (dev/7/+ reads
 * the keys starting "dev/7", '#' and "+/x" read them all), in key order, a
 * page of STREAM_PAGE_KEYS keys at a time, remembering the last key read. A
 * page stops early when the subscriber has no room: its output is over
 * max_output_buffer_bytes, or (QoS 1/2) its window is full or messages wait
 * in its queue. The stream resumes when room comes back (deliver.c's top-up
 * schedules it), so a '#' SUBSCRIBE over a million retained messages holds at
 * most one page and one output buffer, never the whole set.
 *
 * Streams run after the turn's commit (deliver_run_refills), so they read
 * what the store holds then: the SUBACK has left before any retained message,
 * and a retained message set in the same turn is seen. They live in memory
 * with their session: a persistent session that goes offline resumes its
 * streams when it comes back; a restart of the broker ends them.
 *
 * Not for: storing retained messages (publish.c), $SYS retained messages
 * (kept in memory, sent at once), delivery itself (deliver.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mqtt_topic.h"
#include "session_internal.h"
#include "store.h"

/* Store keys read per stream per pump: bounds the time one SUBSCRIBE takes
 * from others in a turn (a '+' at the first level reads keys it does not
 * match). */
#define STREAM_PAGE_KEYS 512

/* Streams per session at most: a client re-subscribing in a loop without
 * reading cannot grow them without bound. */
#define STREAMS_PER_SESSION_MAX 128

struct retained_stream {
    struct retained_stream *next;
    uint8_t qos;     /* granted */
    uint32_t sub_id; /* the subscription's MQTT 5 Subscription Identifier; 0: none */
    uint8_t *after;  /* the last key read (owned), or NULL before the first */
    size_t after_len;
    size_t after_cap;
    uint16_t filter_len;
    uint8_t filter[];
};

enum pump_result {
    PUMP_DONE = 0,   /* the stream has sent everything */
    PUMP_PAUSED = 1, /* the subscriber has no room; top-up resumes it */
    PUMP_MORE = 2,   /* a full page read; more next turn */
};

static struct mqtt_bytes stream_filter(const struct retained_stream *rs)
{
    return (struct mqtt_bytes){rs->filter, rs->filter_len};
}

/* The store keys a wildcard filter can match all start with this: the
 * filter up to its first wildcard level, without the '/' before it ("a/#"
 * also matches "a" [MQTT-4.7.1-2]). Empty when the first level is one; the
 * whole filter when it has no wildcard. */
static struct mqtt_bytes literal_prefix(struct mqtt_bytes filter)
{
    size_t level_start = 0;
    for (size_t i = 0; i < filter.len; i++) {
        if ((filter.data[i] == '+' || filter.data[i] == '#') && i == level_start)
            return (struct mqtt_bytes){filter.data, level_start ? level_start - 1 : 0};
        if (filter.data[i] == '/')
            level_start = i + 1;
    }
    return filter;
}

static bool has_wildcard(struct mqtt_bytes filter)
{
    return literal_prefix(filter).len != filter.len;
}

static void stream_free(struct retained_stream *rs)
{
    if (rs) {
        free(rs->after);
        free(rs);
    }
}

/* Unlinks and frees s's stream for filter, if any. */
static void cancel(struct session *s, struct mqtt_bytes filter)
{
    for (struct retained_stream **p = &s->retained_streams; *p; p = &(*p)->next) {
        struct retained_stream *rs = *p;
        if (rs->filter_len == filter.len && memcmp(rs->filter, filter.data, filter.len) == 0) {
            *p = rs->next;
            stream_free(rs);
            return;
        }
    }
}

static size_t stream_count(const struct session *s)
{
    size_t n = 0;
    for (const struct retained_stream *rs = s->retained_streams; rs; rs = rs->next)
        n++;
    return n;
}

/* The retained messages memory holds ($SYS: never stored, so never many)
 * are sent at once. */
struct volatile_ctx {
    struct session_mgr *mgr;
    struct session *s;
    uint8_t qos;
    uint32_t sub_id;
    int err;
};

/* A retained message's delivery: at most the granted QoS, with the
 * subscription's identifier. RETAIN is the message's own (1 [MQTT-3.3.1-8]). */
static struct delivery retained_delivery(const struct msg *m, uint8_t qos, const uint32_t *sub_id)
{
    return (struct delivery){
        .qos = m->qos < qos ? m->qos : qos, .sub_id_count = *sub_id ? 1 : 0, .sub_ids = sub_id};
}

static void send_volatile(struct msg *m, void *arg)
{
    struct volatile_ctx *ctx = arg;
    struct delivery d = retained_delivery(m, ctx->qos, &ctx->sub_id);
    if (ctx->err == 0)
        ctx->err = deliver(ctx->mgr, ctx->s, m, &d);
}

int retained_stream_start(struct session_mgr *mgr, struct session *s, struct mqtt_bytes filter,
                          uint8_t qos, uint32_t sub_id)
{
    cancel(s, filter); /* subscribing again sends them again [MQTT-3.8.4-3] */
    struct volatile_ctx vctx = {mgr, s, qos, sub_id, 0};
    int rc = retained_match(&mgr->retained_volatile, filter, send_volatile, &vctx);
    if (rc == 0)
        rc = vctx.err;
    if (rc != 0)
        return rc;
    if (stream_count(s) >= STREAMS_PER_SESSION_MAX) {
        log_notice("client %s: %d subscriptions still receiving retained messages; those of %.*s "
                   "are not sent",
                   (char *)s->client_id, STREAMS_PER_SESSION_MAX, (int)filter.len,
                   (const char *)filter.data);
        return 0;
    }
    struct retained_stream *rs = calloc(1, sizeof(*rs) + filter.len);
    if (!rs)
        return -ENOMEM;
    rs->qos = qos;
    rs->sub_id = sub_id;
    rs->filter_len = (uint16_t)filter.len;
    memcpy(rs->filter, filter.data, filter.len);
    /* Appended: a SUBSCRIBE's filters stream in the order they were granted. */
    struct retained_stream **tail = &s->retained_streams;
    while (*tail)
        tail = &(*tail)->next;
    *tail = rs;
    /* After the open batch's commit, even if a top-up was due sooner: a
     * retained message set earlier in this batch must be seen. */
    deliver_schedule_refill(mgr, s);
    return 0;
}

void retained_stream_cancel(struct session *s, struct mqtt_bytes filter)
{
    cancel(s, filter);
}

void retained_stream_free_all(struct session *s)
{
    while (s->retained_streams) {
        struct retained_stream *rs = s->retained_streams;
        s->retained_streams = rs->next;
        stream_free(rs);
    }
}

/* ---- pumping ---- */

struct pump_ctx {
    struct session_mgr *mgr;
    struct session *s;
    struct retained_stream *rs;
    size_t keys;
    enum pump_result result;
    int err;
};

static int remember_key(struct retained_stream *rs, struct store_bytes key)
{
    if (key.len > rs->after_cap) {
        uint8_t *p = realloc(rs->after, key.len);
        if (!p)
            return -ENOMEM;
        rs->after = p;
        rs->after_cap = key.len;
    }
    memcpy(rs->after, key.data, key.len);
    rs->after_len = key.len;
    return 0;
}

/* A retained message past its Message Expiry [3.3.2.3.3] is not sent, and
 * its removal is recorded (the turn's batch: nothing read here changes).
 * Not while the open batch changes retained messages: it may hold a newer
 * message for this topic, which the removal would delete (a later read
 * removes it). */
static int remove_expired(struct session_mgr *mgr, struct mqtt_bytes topic)
{
    if (mgr->is_retained_changed)
        return 0;
    struct msg *clear = msg_new(topic, (struct mqtt_bytes){NULL, 0}, 0, true);
    if (!clear)
        return -ENOMEM;
    log_debug("retained message on %.*s expired: removed", (int)topic.len,
              (const char *)topic.data);
    int rc = publish_set_retained(mgr, clear, true);
    msg_unref(clear);
    return rc == -ENOMEM ? rc : 0;
}

static int send_stored(struct pump_ctx *ctx, const struct store_retained *r)
{
    struct mqtt_bytes topic = {r->topic.data, r->topic.len};
    if (!mqtt_topic_matches(stream_filter(ctx->rs), topic))
        return 0;
    if (r->expiry_at_s && session_now_s(ctx->mgr) > r->expiry_at_s)
        return remove_expired(ctx->mgr, topic);
    struct msg *m =
        msg_new_v5(topic, (struct mqtt_bytes){r->payload.data, r->payload.len},
                   (struct mqtt_bytes){r->props.data, r->props.len}, r->expiry_at_s, r->qos, true);
    if (!m)
        return -ENOMEM;
    /* Retained messages go out with RETAIN 1 [MQTT-3.3.1-8]. */
    struct delivery d = retained_delivery(m, ctx->rs->qos, &ctx->rs->sub_id);
    int rc = deliver(ctx->mgr, ctx->s, m, &d);
    msg_unref(m);
    return rc;
}

/* store_retained_scan() callback: one key of the stream's range. */
static int pump_key(void *arg, const struct store_retained *r)
{
    struct pump_ctx *ctx = arg;
    int rc = remember_key(ctx->rs, r->topic);
    if (rc == 0)
        rc = send_stored(ctx, r);
    if (rc != 0)
        return rc;
    if (!deliver_has_room(ctx->mgr, ctx->s, ctx->rs->qos)) {
        ctx->result = PUMP_PAUSED;
        return 1;
    }
    if (++ctx->keys >= STREAM_PAGE_KEYS) {
        ctx->result = PUMP_MORE;
        return 1;
    }
    return 0;
}

/* One exact filter: one lookup. */
static int pump_exact(struct pump_ctx *ctx)
{
    struct mqtt_bytes filter = stream_filter(ctx->rs);
    struct store_retained *r = NULL;
    int rc = store_get_retained(ctx->mgr->store, (struct store_bytes){filter.data, filter.len}, &r);
    if (rc == 0)
        rc = send_stored(ctx, r);
    free(r);
    ctx->result = PUMP_DONE;
    return rc == STORE_ERR_NOT_FOUND ? 0 : rc;
}

static int pump_one(struct session_mgr *mgr, struct session *s, struct retained_stream *rs,
                    enum pump_result *result)
{
    struct pump_ctx ctx = {mgr, s, rs, 0, PUMP_DONE, 0};
    if (!deliver_has_room(mgr, s, rs->qos)) {
        *result = PUMP_PAUSED;
        return 0;
    }
    int rc;
    if (!has_wildcard(stream_filter(rs))) {
        rc = pump_exact(&ctx);
    } else {
        struct mqtt_bytes prefix = literal_prefix(stream_filter(rs));
        rc = store_retained_scan(mgr->store, (struct store_bytes){prefix.data, prefix.len},
                                 (struct store_bytes){rs->after, rs->after_len}, pump_key, &ctx);
    }
    *result = ctx.result;
    return rc;
}

void retained_stream_pump(struct session_mgr *mgr, struct session *s)
{
    while (s->retained_streams && session_is_online(s)) {
        struct retained_stream *rs = s->retained_streams;
        enum pump_result result;
        int rc = pump_one(mgr, s, rs, &result);
        if (rc != 0) {
            log_error("client %s: retained messages for %.*s: %s", (char *)s->client_id,
                      (int)rs->filter_len, (const char *)rs->filter,
                      rc == -ENOMEM ? "out of memory" : store_strerror(rc));
            retained_stream_free_all(s);
            mgr->sink->close(s->client->conn, "could not deliver retained messages");
            return;
        }
        if (result == PUMP_PAUSED)
            return; /* deliver.c's top-up schedules the next pump */
        if (result == PUMP_MORE) {
            deliver_schedule_topup(mgr, s);
            return;
        }
        s->retained_streams = rs->next;
        stream_free(rs);
    }
}
