/*
 * format.c - Prometheus text exposition format (0.0.4) of a struct
 * metrics_stats: a pure function from numbers to text.
 * Not for: HTTP (http.c), or where the numbers come from (the fill callback).
 */
#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A growing text buffer; the error is sticky, as a store batch's: after the
 * first failed allocation every append is a no-op and the end reports it. */
struct text {
    char *buf;
    size_t len, cap;
    int err;
};

__attribute__((format(printf, 2, 3))) static void put(struct text *t, const char *fmt, ...)
{
    for (int attempt = 0; attempt < 2 && t->err == 0; attempt++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->err = -EINVAL;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap * 2 + (size_t)n + 1;
        char *grown = realloc(t->buf, cap);
        if (grown == NULL) {
            t->err = -ENOMEM;
            return;
        }
        t->buf = grown;
        t->cap = cap;
    }
}

/* "# HELP" and "# TYPE" lines of one metric family. */
static void family(struct text *t, const char *name, const char *type, const char *help)
{
    put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample(struct text *t, const char *name, const char *labels, uint64_t v)
{
    put(t, "%s%s %" PRIu64 "\n", name, labels, v);
}

static void counter(struct text *t, const char *name, const char *help, uint64_t v)
{
    family(t, name, "counter", help);
    sample(t, name, "", v);
}

static void gauge(struct text *t, const char *name, const char *help, uint64_t v)
{
    family(t, name, "gauge", help);
    sample(t, name, "", v);
}

/* One family with a qos="0".."2" label. */
static void by_qos(struct text *t, const char *name, const char *help, const uint64_t v[3])
{
    family(t, name, "counter", help);
    for (int q = 0; q < 3; q++)
        put(t, "%s{qos=\"%d\"} %" PRIu64 "\n", name, q, v[q]);
}

/* Microseconds as decimal seconds without trailing zeros: 50 -> "0.00005",
 * 1000000 -> "1", 1500 -> "0.0015". */
static void seconds_text(uint64_t us, char *out, size_t len)
{
    uint64_t frac = us % 1000000;
    if (frac == 0) {
        snprintf(out, len, "%" PRIu64, us / 1000000);
        return;
    }
    char digits[8];
    snprintf(digits, sizeof(digits), "%06" PRIu64, frac);
    size_t n = strlen(digits);
    while (n > 0 && digits[n - 1] == '0')
        digits[--n] = '\0';
    snprintf(out, len, "%" PRIu64 ".%s", us / 1000000, digits);
}

static void histogram(struct text *t, const char *name, const char *help,
                      const struct metrics_histogram *h)
{
    family(t, name, "histogram", help);
    size_t count =
        h->bucket_count < METRICS_HISTOGRAM_MAX ? h->bucket_count : METRICS_HISTOGRAM_MAX;
    char le[32];
    for (size_t i = 0; i < count; i++) {
        seconds_text(h->bound_us[i], le, sizeof(le));
        put(t, "%s_bucket{le=\"%s\"} %" PRIu64 "\n", name, le, h->cumulative[i]);
    }
    put(t, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, h->count);
    seconds_text(h->sum_us, le, sizeof(le));
    put(t, "%s_sum %s\n", name, le);
    put(t, "%s_count %" PRIu64 "\n", name, h->count);
}

static void format_network(struct text *t, const struct metrics_stats *st)
{
    gauge(t, "sol_connections", "Open network connections (TLS handshakes included).",
          st->connections_open);
    counter(t, "sol_connections_accepted_total", "Connections accepted.", st->connections_accepted);
    counter(t, "sol_connections_refused_total",
            "Connections closed at once: over max_connections or out of memory.",
            st->connections_refused);
    counter(t, "sol_tls_handshake_failures_total", "TLS handshakes that failed or timed out.",
            st->tls_handshake_failures);
    counter(t, "sol_network_received_bytes_total",
            "Bytes read from MQTT clients (after TLS decryption).", st->network_bytes_received);
    counter(t, "sol_network_sent_bytes_total", "Bytes written to MQTT clients (before TLS).",
            st->network_bytes_sent);
    counter(t, "sol_input_waits_total", "Reads stopped by max_input_buffer_bytes.",
            st->input_waits);
}

static void format_sessions(struct text *t, const struct metrics_stats *st)
{
    family(t, "sol_sessions", "gauge",
           "Sessions: online (a client is connected) and offline (persistent, no client).");
    sample(t, "sol_sessions", "{state=\"online\"}", st->sessions_online);
    sample(t, "sol_sessions", "{state=\"offline\"}", st->sessions_offline);
    gauge(t, "sol_subscriptions", "Subscriptions of all sessions.", st->subscriptions);
    gauge(t, "sol_retained_messages", "Retained messages.", st->retained);
    by_qos(t, "sol_messages_received_total", "PUBLISH packets received from clients, by QoS.",
           st->messages_received);
    by_qos(t, "sol_messages_sent_total", "PUBLISH packets sent to clients (resends included).",
           st->messages_sent);
    by_qos(t, "sol_payload_received_bytes_total", "Payload bytes of PUBLISH packets received.",
           st->payload_bytes_received);
    by_qos(t, "sol_payload_sent_bytes_total", "Payload bytes of PUBLISH packets sent.",
           st->payload_bytes_sent);
    family(t, "sol_messages_dropped_total", "counter",
           "Messages dropped: QoS 0 over max_output_buffer_bytes, over a queue limit, or "
           "larger than an MQTT 5 client's Maximum Packet Size.");
    sample(t, "sol_messages_dropped_total", "{reason=\"output_buffer\"}",
           st->dropped_output_buffer);
    sample(t, "sol_messages_dropped_total", "{reason=\"queue_limit\"}", st->dropped_queue_limit);
    sample(t, "sol_messages_dropped_total", "{reason=\"packet_too_large\"}",
           st->dropped_packet_too_large);
    counter(t, "sol_publishes_refused_store_full_total",
            "PUBLISH packets not acknowledged because the store was full.",
            st->publishes_refused_store_full);
    gauge(t, "sol_inflight_messages", "QoS 1/2 messages sent and not yet acknowledged.",
          st->inflight_messages);
    gauge(t, "sol_queued_messages", "Messages waiting for a session's inflight window.",
          st->queued_messages);
    gauge(t, "sol_queued_bytes", "Payload bytes of the queued messages.", st->queued_bytes);
}

static void format_store(struct text *t, const struct metrics_stats *st)
{
    if (st->has_store) {
        gauge(t, "sol_store_map_size_bytes", "Bytes of the store's memory map.",
              st->store_map_size);
        gauge(t, "sol_store_used_bytes", "Bytes of the store in use.", st->store_map_used);
        gauge(t, "sol_store_max_size_bytes", "storage_max_size.", st->store_max_size);
    }
    counter(t, "sol_store_commits_total", "Store write transactions committed.", st->store_commits);
    histogram(t, "sol_store_commit_duration_seconds",
              "Time a store commit takes (what a durable acknowledgement waits for).",
              &st->commit_latency);
}

/* One family with a sample per bridge, labelled name="...". */
static void per_bridge(struct text *t, const char *name, const char *type, const char *help,
                       const struct metrics_stats *st,
                       uint64_t (*value)(const struct metrics_bridge *b))
{
    family(t, name, type, help);
    for (size_t i = 0; i < st->bridge_count; i++)
        put(t, "%s{name=\"%s\"} %" PRIu64 "\n", name, st->bridges[i].name, value(&st->bridges[i]));
}

static uint64_t bridge_connected(const struct metrics_bridge *b)
{
    return b->connected ? 1 : 0;
}

static uint64_t bridge_queued(const struct metrics_bridge *b)
{
    return b->queued_messages;
}

static uint64_t bridge_queued_bytes(const struct metrics_bridge *b)
{
    return b->queued_bytes;
}

static uint64_t bridge_inflight(const struct metrics_bridge *b)
{
    return b->inflight_messages;
}

static uint64_t bridge_refused(const struct metrics_bridge *b)
{
    return b->publishes_refused;
}

static uint64_t bridge_connects(const struct metrics_bridge *b)
{
    return b->connects;
}

static void format_bridges(struct text *t, const struct metrics_stats *st)
{
    if (st->bridge_count == 0)
        return;
    per_bridge(t, "sol_bridge_connected", "gauge",
               "1 when the bridge is connected to its remote broker, else 0.", st,
               bridge_connected);
    per_bridge(t, "sol_bridge_queued_messages", "gauge",
               "Messages in the bridge's queue in the store, not yet acknowledged by the remote.",
               st, bridge_queued);
    per_bridge(t, "sol_bridge_queued_bytes", "gauge", "Payload bytes of those messages.", st,
               bridge_queued_bytes);
    per_bridge(t, "sol_bridge_inflight_messages", "gauge",
               "Messages sent to the remote and not yet acknowledged.", st, bridge_inflight);
    per_bridge(t, "sol_bridge_publishes_refused_total", "counter",
               "Local publishes refused because the bridge's queue was full.", st, bridge_refused);
    per_bridge(t, "sol_bridge_connects_total", "counter",
               "Connections the remote accepted (CONNACK 0).", st, bridge_connects);
}

int metrics_format(const struct metrics_stats *st, char **out, size_t *out_len)
{
    struct text t = {.cap = 8192};
    t.buf = malloc(t.cap);
    if (t.buf == NULL)
        return -ENOMEM;
    t.buf[0] = '\0';
    if (st->version != NULL) {
        family(&t, "sol_build_info", "gauge", "Always 1; the version is a label.");
        put(&t, "sol_build_info{version=\"%s\"} 1\n", st->version);
    }
    gauge(&t, "sol_start_time_seconds", "Unix time the broker started.", st->start_time_s);
    format_network(&t, st);
    format_sessions(&t, st);
    format_store(&t, st);
    format_bridges(&t, st);
    if (t.err != 0) {
        free(t.buf);
        return t.err;
    }
    *out = t.buf;
    *out_len = t.len;
    return 0;
}
