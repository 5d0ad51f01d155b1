/*
 * stats.c - the broker's counters published two ways: Mosquitto's $SYS
 * topics every sys_interval, and the Prometheus endpoint on each scrape.
 * Gathers from the server, the session manager and the store, which do not
 * know each other's counters.
 * Not for: counting (each module keeps its own) or HTTP (src/metrics/).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "broker.h"
#include "bridge.h"
#include "broker_internal.h"
#include "log.h"
#include "metrics.h"
#include "server.h"
#include "session.h"
#include "store.h"

static void sys_publish(struct broker *b, const char *topic, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void sys_publish(struct broker *b, const char *topic, const char *fmt, ...)
{
    char value[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(value, sizeof(value), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(value))
        return;
    if (session_publish_internal(b->mgr, topic, value, (size_t)n, true) != 0)
        log_warning("$SYS: %s not published: out of memory", topic);
}

static void sys_publish_u64(struct broker *b, const char *topic, uint64_t v)
{
    sys_publish(b, topic, "%" PRIu64, v);
}

void broker_on_sys_timer(void *arg)
{
    struct broker *b = arg;
    struct session_stats ss;
    session_get_stats(b->mgr, &ss);
    sys_publish(b, "$SYS/broker/version", "sol version %s", SOL_VERSION);
    sys_publish(b, "$SYS/broker/uptime", "%lld seconds", (long long)(time(NULL) - b->started_at));
    sys_publish_u64(b, "$SYS/broker/clients/connected", ss.clients_connected);
    sys_publish_u64(b, "$SYS/broker/clients/disconnected", ss.clients_disconnected);
    sys_publish_u64(b, "$SYS/broker/clients/total", ss.clients_connected + ss.clients_disconnected);
    sys_publish_u64(b, "$SYS/broker/messages/received", ss.messages_received);
    sys_publish_u64(b, "$SYS/broker/messages/sent", ss.messages_sent);
    sys_publish_u64(b, "$SYS/broker/messages/dropped", ss.messages_dropped);
    sys_publish_u64(b, "$SYS/broker/messages/dropped/queue limit", ss.messages_queue_dropped);
    sys_publish_u64(b, "$SYS/broker/messages/dropped/packet too large",
                    ss.messages_too_large_dropped);
    sys_publish_u64(b, "$SYS/broker/messages/refused/store full", ss.publishes_refused);
    sys_publish_u64(b, "$SYS/broker/retained messages/count", ss.retained);
    sys_publish_u64(b, "$SYS/broker/subscriptions/count", ss.subscriptions);
    sys_publish_u64(b, "$SYS/broker/store/commits", ss.commits);
    sys_publish_u64(b, "$SYS/broker/store/commit latency/last us", ss.commit_latency_us_last);
    sys_publish_u64(b, "$SYS/broker/store/commit latency/max us", ss.commit_latency_us_max);
    sys_publish_u64(b, "$SYS/broker/store/commit latency/average us", ss.commit_latency_us_avg);
    struct server_stats net;
    server_get_stats(b->srv, &net);
    sys_publish_u64(b, "$SYS/broker/bytes/received", net.bytes_received);
    sys_publish_u64(b, "$SYS/broker/bytes/sent", net.bytes_sent);
    sys_publish_u64(b, "$SYS/broker/connections/total", net.connections_total);
    sys_publish_u64(b, "$SYS/broker/connections/refused", net.connections_refused);
    sys_publish_u64(b, "$SYS/broker/connections/input waits", net.input_waits);
    struct store_stats st;
    if (store_stats(b->store, &st) == 0)
        sys_publish_u64(b, "$SYS/broker/store/bytes", st.map_used);
}

static void fill_session_metrics(const struct session_stats *ss, struct metrics_stats *out)
{
    out->sessions_offline = ss->clients_disconnected;
    out->sessions_online = ss->sessions - ss->clients_disconnected;
    out->subscriptions = ss->subscriptions;
    out->retained = ss->retained;
    memcpy(out->messages_received, ss->messages_received_qos, sizeof(out->messages_received));
    memcpy(out->payload_bytes_received, ss->payload_bytes_received_qos,
           sizeof(out->payload_bytes_received));
    memcpy(out->messages_sent, ss->messages_sent_qos, sizeof(out->messages_sent));
    memcpy(out->payload_bytes_sent, ss->payload_bytes_sent_qos, sizeof(out->payload_bytes_sent));
    out->dropped_queue_limit = ss->messages_queue_dropped;
    out->dropped_packet_too_large = ss->messages_too_large_dropped;
    out->dropped_output_buffer =
        ss->messages_dropped - ss->messages_queue_dropped - ss->messages_too_large_dropped;
    out->publishes_refused_store_full = ss->publishes_refused;
    out->inflight_messages = ss->inflight_messages;
    out->queued_messages = ss->queued_messages;
    out->queued_bytes = ss->queued_bytes;
    out->store_commits = ss->commits;
    struct metrics_histogram *h = &out->commit_latency;
    _Static_assert(SESSION_COMMIT_BUCKETS <= METRICS_HISTOGRAM_MAX, "histogram too small");
    h->bucket_count = SESSION_COMMIT_BUCKETS;
    memcpy(h->bound_us, session_commit_bucket_us, sizeof(session_commit_bucket_us));
    memcpy(h->cumulative, ss->commit_latency_buckets, sizeof(ss->commit_latency_buckets));
    h->count = ss->commits;
    h->sum_us = ss->commit_latency_us_total;
}

/* A scrape: the broker's running counters into *out; O(1) apart from the
 * store's one read transaction. */
static void fill_metrics(void *arg, struct metrics_stats *out)
{
    struct broker *b = arg;
    out->version = SOL_VERSION;
    out->start_time_s = (uint64_t)b->started_at;
    struct server_stats net;
    server_get_stats(b->srv, &net);
    out->connections_open = net.connections_current;
    out->connections_accepted = net.connections_total;
    out->connections_refused = net.connections_refused;
    out->tls_handshake_failures = net.tls_handshake_failures;
    out->network_bytes_received = net.bytes_received;
    out->network_bytes_sent = net.bytes_sent;
    out->input_waits = net.input_waits;
    struct session_stats ss;
    session_peek_stats(b->mgr, &ss);
    fill_session_metrics(&ss, out);
    struct store_stats st;
    bridge_set_metrics(b->bridges, out);
    if (store_stats(b->store, &st) == 0) {
        out->has_store = true;
        out->store_map_size = st.map_size;
        out->store_map_used = st.map_used;
        out->store_max_size = st.max_map_size;
    }
}

int broker_start_metrics(struct broker *b, char *err, size_t err_len)
{
    const struct sol_config *cfg = &b->cfg;
    if (cfg->metrics_port == 0)
        return 0;
    struct metrics_options opts;
    metrics_options_init(&opts);
    opts.address = cfg->metrics_address;
    opts.port = cfg->metrics_port;
    opts.fill = fill_metrics;
    opts.fill_arg = b;
    char why[256];
    if (metrics_new(server_loop(b->srv), &opts, &b->metrics, why, sizeof(why)) < 0) {
        snprintf(err, err_len, "%.200s: metrics_listener: %s",
                 cfg->metrics_where ? cfg->metrics_where : "-", why);
        return -1;
    }
    log_notice("metrics: serving http://%s%s%s:%u/metrics",
               cfg->metrics_address && strchr(cfg->metrics_address, ':') ? "[" : "",
               cfg->metrics_address ? cfg->metrics_address : "*",
               cfg->metrics_address && strchr(cfg->metrics_address, ':') ? "]" : "",
               (unsigned)cfg->metrics_port);
    return 0;
}
