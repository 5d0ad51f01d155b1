/*
 * solbench.h - shared types of solbench, the MQTT load generator in tools/solbench.
 *
 * One process, one epoll loop, non-blocking sockets. Publishers stamp each
 * payload with (publisher, sequence, CLOCK_MONOTONIC send time); subscribers
 * check the stamps and feed a latency histogram. Not for: testing broker
 * semantics (tests/integration does that) or talking to more than one broker.
 *
 * Payload layout (big-endian, the rest of the payload is filler):
 *   bytes 0..7  : publisher index (bits 63..40) | sequence number (bits 39..0)
 *   bytes 8..15 : send time, CLOCK_MONOTONIC nanoseconds
 */
#ifndef SOL_SOLBENCH_H
#define SOL_SOLBENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define BENCH_STAMP_LEN 16u
#define BENCH_SEQ_BITS  40u
#define BENCH_SEQ_MASK  ((UINT64_C(1) << BENCH_SEQ_BITS) - 1)
/* Log-linear histogram: 64 sub-buckets per power of two (about 1.6% error). */
#define HIST_SUB_BITS    6u
#define HIST_BUCKETS     (59u * 64u)
#define PID_BITMAP_BYTES (65536u / 8u)

struct bench_opts {
    const char *host;
    const char *port;
    uint32_t pubs;
    uint32_t subs;
    uint32_t idle;
    uint8_t qos;
    size_t size;
    uint32_t topics;
    const char *filter;
    double rate;     /* messages/s, all publishers together; 0 = window-bound */
    uint64_t window; /* QoS>0: unacked publishes per publisher; QoS 0: unsent bytes */
    double duration_s;
    double drain_s;
    double connect_timeout_s;
    uint32_t connect_burst; /* handshakes in progress at once */
    bool is_clean;
    const char *prefix;
    bool json;
    long broker_pid;    /* 0: do not sample the broker's RSS */
    const char *source; /* first local IPv4 address to bind before connect; NULL: the kernel's */
    uint32_t sources;   /* connections spread round-robin over source .. source + sources - 1 */
};

/* Latency histogram in nanoseconds; fixed size, whatever the message count. */
struct hist {
    uint64_t counts[HIST_BUCKETS];
    uint64_t total;
    uint64_t max_ns;
};

/* What one subscriber has seen of one publisher's sequence numbers. */
struct stream {
    uint64_t *seen; /* bitmap indexed by sequence number, grown on demand */
    uint64_t seen_words;
    uint64_t max_seq;
    bool has_any;
    uint64_t unique;
    uint64_t dup;
    uint64_t ooo;
};

enum stream_verdict {
    STREAM_NEW,
    STREAM_NEW_OUT_OF_ORDER,
    STREAM_DUP,
};

/* A byte queue: data[head..tail) is pending. */
struct buf {
    uint8_t *data;
    size_t head;
    size_t tail;
    size_t cap;
};

enum conn_role {
    ROLE_IDLE,
    ROLE_SUB,
    ROLE_PUB,
};

enum conn_state {
    CONN_UNSTARTED,
    CONN_CONNECTING,   /* TCP connect in progress */
    CONN_WAIT_CONNACK, /* CONNECT sent */
    CONN_WAIT_SUBACK,  /* SUBSCRIBE sent */
    CONN_READY,
    CONN_CLOSED,
};

struct conn {
    int fd;
    enum conn_role role;
    enum conn_state state;
    uint32_t index; /* within its role */
    uint32_t events;
    struct buf in;
    struct buf out;
    /* publisher */
    uint64_t next_seq;
    uint64_t acked;
    uint64_t inflight;
    uint16_t next_pid;
    uint8_t *pid_used; /* 65536-bit bitmap of packet ids awaiting PUBACK/PUBCOMP */
    char topic[32];
    size_t topic_len;
    /* subscriber */
    struct stream *streams; /* one per publisher */
    uint64_t received;      /* first receipts only */
};

enum bench_phase {
    PHASE_IDLE_CONNECT,
    PHASE_SETUP,
    PHASE_RUN,
    PHASE_DRAIN,
    PHASE_DONE,
    PHASE_FAILED,
};

struct bench_result {
    uint64_t published;
    uint64_t acked;
    uint64_t expected;
    uint64_t received;
    uint64_t dup;
    uint64_t ooo;
    uint64_t stale; /* stamps from before this run (old persistent sessions) or foreign */
    uint64_t errors;
    uint64_t unexpected_acks;
    uint32_t idle_connected;
    uint64_t t_start_ns;
    uint64_t t_idle_done_ns;
    uint64_t t_run_ns;
    uint64_t t_run_end_ns;
    uint64_t t_last_rx_ns;
    uint64_t t_end_ns;
    long broker_rss_before_kb;
    long broker_rss_after_kb;
    char failure[160];
};

struct bench {
    struct bench_opts o;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    uint32_t source_base; /* o.source in host byte order, if o.source */
    int epfd;
    enum bench_phase phase;
    struct conn *conns; /* idle, then subscribers, then publishers */
    uint32_t nconns;
    uint32_t next_connect; /* next conn to start */
    uint32_t handshaking;  /* started, not yet READY or CLOSED */
    uint32_t ready[3];     /* by role */
    uint32_t settled_idle; /* idle conns READY or failed */
    bool *pub_matches;     /* does the subscribers' filter match publisher i's topic */
    uint8_t *payload;      /* filler template, o.size bytes */
    double rate_per_pub;
    struct hist lat;
    struct bench_result r;
    uint32_t errors_logged;
};

/* stats.c */
uint64_t bench_now_ns(void);
void hist_add(struct hist *h, uint64_t ns);
uint64_t hist_quantile(const struct hist *h, double q);
/* Records seq; returns a stream_verdict, or -ENOMEM (nothing recorded). */
int stream_record(struct stream *s, uint64_t seq);
void stream_free(struct stream *s);
void stamp_write(uint8_t *payload, uint32_t pub, uint64_t seq, uint64_t t_ns);
void stamp_read(const uint8_t *payload, uint32_t *pub, uint64_t *seq, uint64_t *t_ns);
long proc_rss_kb(long pid);

/* conn.c */
int conn_start(struct bench *b, struct conn *c);
void conn_on_event(struct bench *b, struct conn *c, uint32_t events);
void conn_pump(struct bench *b, struct conn *c);
void conn_close(struct bench *b, struct conn *c, const char *why);
void conn_disconnect(struct bench *b, struct conn *c);
void conn_free(struct conn *c, uint32_t nstreams);
bool conn_is_drained(const struct conn *c);

/* loop.c */
int bench_run(struct bench *b);

/* report.c */
void report_print(const struct bench *b);

#endif /* SOL_SOLBENCH_H */
