/*
 * metrics.h - the Prometheus endpoint: GET /metrics over HTTP, served by
 * libmicrohttpd driven from the broker's libev loop (no thread of its own),
 * and the text exposition format (version 0.0.4) of a struct metrics_stats.
 *
 * The module knows nothing of sessions, the store or the server: at each
 * scrape it calls the fill callback its creator gave it, which copies the
 * broker's counters into a struct metrics_stats. Every metric name starts
 * with "sol_".
 *
 * Not for: computing the figures (the session manager, server and store keep
 * them as running counters), configuration files (src/broker/).
 */
#ifndef SOL_METRICS_H
#define SOL_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ev_loop;
struct metrics;

/* The most buckets a histogram may have (the commit latency one has 15). */
#define METRICS_HISTOGRAM_MAX 24

/* A histogram as Prometheus wants it: cumulative bucket counts. */
struct metrics_histogram {
    size_t bucket_count;                        /* <= METRICS_HISTOGRAM_MAX */
    uint64_t bound_us[METRICS_HISTOGRAM_MAX];   /* upper bounds, increasing, microseconds */
    uint64_t cumulative[METRICS_HISTOGRAM_MAX]; /* observations <= bound_us[i] */
    uint64_t count;                             /* all observations (the +Inf bucket) */
    uint64_t sum_us;                            /* their sum, microseconds */
};

/* One bridge (src/bridge/), labelled with its connection name. */
struct metrics_bridge {
    const char *name; /* [A-Za-z0-9_.-]: needs no escaping in a label */
    bool connected;
    uint64_t queued_messages, queued_bytes; /* its queue in the store */
    uint64_t inflight_messages;             /* sent to the remote, not yet acknowledged */
    uint64_t publishes_refused;             /* local publishes refused: its queue was full */
    uint64_t connects;                      /* connections accepted by the remote */
};

/* Everything one scrape shows. Counters are monotonic since start; gauges are
 * current values. Filled by the creator's metrics_fill_fn. */
struct metrics_stats {
    const char *version; /* sol_build_info{version=...}; NULL: not shown */
    uint64_t start_time_s;
    /* network (server) */
    uint64_t connections_open;
    uint64_t connections_accepted, connections_refused, tls_handshake_failures;
    uint64_t network_bytes_received, network_bytes_sent;
    uint64_t input_waits;
    /* sessions */
    uint64_t sessions_online, sessions_offline;
    uint64_t subscriptions, retained;
    uint64_t messages_received[3], payload_bytes_received[3]; /* by QoS */
    uint64_t messages_sent[3], payload_bytes_sent[3];
    uint64_t dropped_output_buffer, dropped_queue_limit, dropped_packet_too_large;
    uint64_t publishes_refused_store_full;
    uint64_t inflight_messages, queued_messages, queued_bytes;
    /* store */
    bool has_store; /* false: the store figures below could not be read */
    uint64_t store_map_size, store_map_used, store_max_size;
    uint64_t store_commits;
    struct metrics_histogram commit_latency;
    /* bridges: borrowed for the scrape; none when bridge_count is 0 */
    const struct metrics_bridge *bridges;
    size_t bridge_count;
};

/* Fills *out (zeroed before the call). Runs on the loop, inside a scrape. */
typedef void (*metrics_fill_fn)(void *arg, struct metrics_stats *out);

struct metrics_options {
    const char *address; /* numeric IPv4/IPv6; NULL: every address (IPv6 and IPv4) */
    uint16_t port;
    metrics_fill_fn fill;
    void *fill_arg;
    /* Bounds that keep a hostile HTTP client from hurting the broker; 0 in
     * metrics_options_init() means the defaults below. */
    unsigned max_connections; /* HTTP connections at once (default 8; more are closed) */
    unsigned timeout_s;       /* an idle HTTP connection is closed after this (default 5) */
};

#define METRICS_DEFAULT_MAX_CONNECTIONS 8
#define METRICS_DEFAULT_TIMEOUT_S       5

void metrics_options_init(struct metrics_options *opts);

/*
 * Binds the endpoint and starts serving on loop (borrowed; must outlive the
 * endpoint). Returns 0 and *out (owned: metrics_free()), or -1 with a
 * one-line reason in err (e.g. "bind 127.0.0.1:9100: Address already in use").
 * Requests: GET or HEAD /metrics -> 200 with the exposition text; another
 * path -> 404; another method -> 405. Request headers are bounded (16 KB),
 * and so are the connections (max_connections, timeout_s).
 */
int metrics_new(struct ev_loop *loop, const struct metrics_options *opts, struct metrics **out,
                char *err, size_t err_len);

/* Stops serving, closes every HTTP connection, frees m. NULL does nothing. */
void metrics_free(struct metrics *m);

/* Scrapes served (200 responses) since metrics_new(). */
uint64_t metrics_scrapes(const struct metrics *m);

/*
 * The text exposition format of *st: "# HELP", "# TYPE" and sample lines.
 * Returns 0 with *out (a NUL-terminated malloc()ed string, the caller's to
 * free()) and *out_len, or -ENOMEM (nothing allocated).
 */
int metrics_format(const struct metrics_stats *st, char **out, size_t *out_len);

#endif /* SOL_METRICS_H */
