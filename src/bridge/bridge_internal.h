/*
 * bridge_internal.h - what the bridge module's files share: the bridge
 * struct and the functions between bridge.c (life cycle, reconnects,
 * timers), net.c (resolving, connecting, TLS, moving bytes), proto.c (the
 * MQTT client: CONNECT, SUBSCRIBE, the outgoing window, incoming messages)
 * and topics.c (prefix remapping).
 * Not for: anything outside src/bridge/ (bridge.h is the public API).
 */
#ifndef SOL_BRIDGE_INTERNAL_H
#define SOL_BRIDGE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ev.h>
#include <netdb.h>

#include "bridge.h"
#include "config.h"
#include "hashtable.h"
#include "mqtt.h"

#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* Packet ids: SUBSCRIBE and the remote "1" notification have their own;
 * queue entries take BRIDGE_PKID_FIRST + seq % BRIDGE_PKID_SPAN, so an
 * entry has the same id on every send, across reconnects and restarts (the
 * remote recognises a resent QoS 2 message by it [MQTT-4.3.3]). */
#define BRIDGE_PKID_SUBSCRIBE    1
#define BRIDGE_PKID_NOTIFICATION 2
#define BRIDGE_PKID_FIRST        3
#define BRIDGE_PKID_SPAN         65533u
#define BRIDGE_READ_CHUNK        16384

struct ssl_st;
struct ssl_ctx_st;

enum bridge_state {
    BRIDGE_IDLE = 0,   /* waiting for the restart timer */
    BRIDGE_RESOLVING,  /* getaddrinfo_a in progress (names only) */
    BRIDGE_CONNECTING, /* non-blocking connect in progress */
    BRIDGE_TLS,        /* TLS handshake */
    BRIDGE_CONNACK,    /* CONNECT sent, waiting for CONNACK */
    BRIDGE_ONLINE,     /* CONNACK 0: forwarding */
};

/* One topic line, resolved as Mosquitto does (bridge_topic.c): the local
 * and remote filters are prefix + pattern (or the prefix alone for ""). */
struct bridge_topic {
    enum config_bridge_direction direction;
    uint8_t qos;
    struct mqtt_bytes local_prefix;  /* empty: none */
    struct mqtt_bytes remote_prefix; /* empty: none */
    char *local_filter;              /* owned */
    char *remote_filter;             /* owned */
};

/* A queue entry sent to the remote and not yet acknowledged. */
enum out_state {
    OUT_SENT,          /* PUBLISH sent: waiting for PUBACK / PUBREC */
    OUT_PUBREC_SAVING, /* PUBREC received: its record commits, then PUBREL */
    OUT_PUBREL_SENT,   /* PUBREL sent: waiting for PUBCOMP */
};

struct out_entry {
    struct hashtable_node by_id;
    struct out_entry *prev, *next; /* in seq order */
    uint64_t seq;
    size_t payload_len;
    uint16_t packet_id;
    uint8_t qos;
    uint8_t state; /* enum out_state */
};

/* An incoming QoS 2 id of the remote's, awaiting PUBREL. */
enum in_state {
    IN_ADDING,    /* its record is in the open batch */
    IN_STORED,    /* durable: a resent PUBLISH is answered, not delivered again */
    IN_RELEASING, /* PUBREL received: its delete is in the open batch */
};

struct in_id {
    struct hashtable_node by_id;
    uint16_t packet_id;
    uint8_t state; /* enum in_state */
};

struct bridge {
    struct bridge_set *set;
    const struct config_bridge *cfg; /* borrowed from the configuration */
    struct session_bridge *sb;       /* the manager's side (owned by the manager) */
    char *client_id;                 /* remote_clientid, or HOSTNAME.NAME */
    char *state_topic;               /* notification topic */
    struct bridge_topic *topics;
    size_t topic_count;
    struct ssl_ctx_st *tls_ctx; /* NULL: plain TCP */
    unsigned refs;              /* the set's, plus one per completion pending */
    bool is_dead;               /* the set is gone: completions only drop their reference */

    enum bridge_state state;
    uint64_t conn_gen; /* incremented at every connection attempt */
    int fd;
    struct ssl_st *ssl;
    bool read_wants_write, write_wants_read, handshake_wants_write, is_write_blocked;
    int write_errno; /* a write failed: the connection ends in the next I/O callback */
    ev_io rio, wio;
    ev_timer timer;      /* restart delay, resolve polling, connect deadline, keepalive */
    ev_tstamp deadline;  /* of the current connection phase */
    size_t address_next; /* which configured address the next attempt uses */
    struct gaicb gai;
    bool is_resolving;
    struct addrinfo *addrs, *addr_next;
    char peer[80];        /* "host:port" of the attempt, for log lines */
    bool use_private;     /* CONNECT level | 0x80 on this attempt */
    bool is_closed_by_peer; /* the remote closed the connection (not a timeout or bad data) */
    bool private_refused; /* the remote refused it: later attempts go without */
    double last_delay_s;  /* backoff */

    uint8_t *in; /* unparsed input */
    size_t in_len, in_cap;
    uint8_t *out; /* unsent output: out[out_off..out_len) */
    size_t out_off, out_len, out_cap;
    uint8_t *topic_buf; /* remapped topics */
    size_t topic_cap;

    bool ping_outstanding;
    bool session_present;
    struct hashtable out_ids; /* struct out_entry by packet id */
    struct out_entry *out_head, *out_tail;
    uint32_t out_count;
    uint64_t read_seq;       /* the next queue seq to read */
    uint64_t sent_high;      /* highest seq sent by this process: a resend carries DUP */
    bool is_caught_up;       /* read_seq is past the queue's end: wait for ops->queued */
    bool is_pump_due;        /* a pump waits for the next commit (after a reconnect) */
    struct hashtable in_ids; /* struct in_id by packet id */
    uint64_t connects;
    uint64_t qos0_dropped;
};

struct bridge_set {
    struct ev_loop *loop;
    struct session_mgr *mgr;
    struct store *store;
    uint32_t window;        /* max_inflight */
    size_t max_packet_size; /* 0: protocol max */
    size_t max_output_bytes;
    struct bridge **bridges;
    size_t count;
    struct metrics_bridge *metrics; /* count entries, refreshed by bridge_set_metrics() */
};

/* ---- bridge.c ---- */
/* Ends the connection (if any) with reason logged, and schedules the next
 * attempt. Never frees b. */
void bridge_fail(struct bridge *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The connection is ready for MQTT (TCP connected, TLS done): send CONNECT. */
void bridge_transport_ready(struct bridge *b);
/* CONNACK 0 arrived: the bridge is online. */
void bridge_online(struct bridge *b);
/* Publishes the local notification ("1" online, "0" not). */
void bridge_notify_local(struct bridge *b, bool online);
/* Drops a reference; the last one frees b. */
void bridge_unref(struct bridge *b);

/* ---- net.c ---- */
/* Sets up b's I/O watchers (once, at creation). */
void net_init_watchers(struct bridge *b);
/* Starts connecting to the next configured address (resolving it first if
 * it is a name). Failures go through bridge_fail(). */
void net_start_attempt(struct bridge *b);
/* The timer fired during RESOLVING: polls the resolver. */
void net_poll_resolve(struct bridge *b);
/* Closes the socket and TLS, stops the watchers, frees the resolver state
 * and the buffers' contents. */
void net_close(struct bridge *b);
/* Appends bytes to the output and writes what the socket takes. Returns 0
 * or -ENOMEM (nothing appended). */
int net_send(struct bridge *b, const void *data, size_t len);
/* Reserves len bytes at the end of the output for the caller to fill, then
 * net_commit_output(len). NULL on allocation failure. */
uint8_t *net_output_space(struct bridge *b, size_t len);
void net_commit_output(struct bridge *b, size_t len);
/* Bytes queued and not yet written. */
size_t net_output_pending(const struct bridge *b);
/* Builds the TLS context of b's configuration; -1 with err. */
int net_tls_ctx_new(struct bridge *b, char *err, size_t err_len);
void net_tls_ctx_free(struct bridge *b);
/* Frees the resolver's request if one is still running (waits for it to
 * finish if it cannot be canceled). */
void net_forget_resolve(struct bridge *b);

/* ---- proto.c ---- */
int proto_send_connect(struct bridge *b);
/* Handles one decoded packet; returns 0 or -1 after bridge_fail(). */
int proto_handle(struct bridge *b, const struct mqtt_packet *pkt);
/* Sends what the queue holds while the window and output have room. */
void proto_pump(struct bridge *b);
/* Connection ended: forgets the window (the store keeps the entries). */
void proto_reset_window(struct bridge *b);
/* Reads the incoming QoS 2 ids of b from the store. 0 or a code. */
int proto_load_in_ids(struct bridge *b);
void proto_free_in_ids(struct bridge *b);
/* The session manager's ops (session.h). */
void proto_on_queued(void *arg);
void proto_forward_qos0(void *arg, struct mqtt_bytes topic, struct mqtt_bytes payload, bool retain);

/* ---- topics.c ---- */
/* Builds b->topics from the configuration. 0 or -ENOMEM. */
int topics_build(struct bridge *b);
void topics_free(struct bridge *b);
/* Maps a local topic to the remote's (first out/both topic with a prefix
 * whose local filter matches: strip the local prefix, add the remote one),
 * into b->topic_buf. Returns the view, or data NULL when the result would
 * be too long (65535) or memory ran out. */
struct mqtt_bytes topics_to_remote(struct bridge *b, struct mqtt_bytes local);
/* The reverse, for in/both topics. */
struct mqtt_bytes topics_to_local(struct bridge *b, struct mqtt_bytes remote);

#endif /* SOL_BRIDGE_INTERNAL_H */
