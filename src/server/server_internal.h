/*
 * server_internal.h - what server.c, listener.c and conn.c share: the
 * server, listener and connection structs and the functions between them.
 * Not for: anything outside src/server/ (server.h is the public API).
 */
#ifndef SOL_SERVER_INTERNAL_H
#define SOL_SERVER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <ev.h>

#include "server.h"
#include "session.h"
#include "uring.h"

#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* Bytes read per read(2): one syscall picks up many small packets. */
#define SERVER_READ_CHUNK 16384
/* Plaintext bytes per SSL_write: one full TLS record. */
#define SERVER_TLS_RECORD_MAX 16384

struct ssl_st;     /* OpenSSL's SSL, kept out of the other includers' way */
struct ssl_ctx_st; /* SSL_CTX */
struct conn;

/*
 * How a connection moves bytes: plain TCP/unix (conn.c) or TLS (tls.c),
 * behind one table as in redis connection.h. conn.c never calls read(2),
 * writev(2) or SSL_* itself.
 *
 * read and writev return bytes moved (> 0), 0 from read at the orderly end
 * of the stream, or -1 with errno: EAGAIN when the call must be retried
 * later (the transport sets c->read_wants_write or c->write_wants_read
 * when the retry waits for the other direction), anything else when the
 * connection is broken. writev of a TLS transport must be retried with the
 * same queue (a prefix of the same bytes, at least as long): conn.c only
 * appends to its queue, never rewrites it.
 */
struct conn_transport {
    const char *name; /* "tcp", "tls": for log lines */
    /* Advances the handshake: 1 done, 0 waiting (c->handshake_wants_write
     * says for which event), -1 failed with a reason in why. */
    int (*handshake)(struct conn *c, char *why, size_t why_len);
    ssize_t (*read)(struct conn *c, void *buf, size_t len);
    ssize_t (*writev)(struct conn *c, const struct iovec *iov, int iovcnt);
    /* True when the transport holds input already taken off the socket
     * (SSL_pending): EV_READ will not fire for it, so read again now. */
    bool (*has_pending)(const struct conn *c);
    /* Why the last read/writev failed with errno err, for a log line. */
    void (*describe_error)(const struct conn *c, int err, char *buf, size_t len);
    /* Ends the transport and closes the socket (TLS: close_notify if the
     * session is healthy, never blocking). */
    void (*close)(struct conn *c);
    /* The handshake in progress, for log lines: "TLS", "WebSocket". */
    const char *(*stage)(const struct conn *c);
    /* True when the transport has bytes of its own to write (WebSocket
     * pong and close frames): writev is then called even with an empty
     * queue (iovcnt 0). NULL: never. */
    bool (*has_output)(const struct conn *c);
};

extern const struct conn_transport conn_transport_plain; /* conn.c */
extern const struct conn_transport conn_transport_tls;   /* tls.c */
extern const struct conn_transport conn_transport_ws;    /* websocket.c: over plain */
extern const struct conn_transport conn_transport_wss;   /* websocket.c: over TLS */

struct ws_conn; /* websocket.c */

/* A listening socket. */
struct listener {
    ev_io io;
    ev_timer retry; /* re-enables accept after EMFILE/ENFILE */
    struct server *srv;
    int fd;
    struct ssl_ctx_st *tls_ctx; /* one reference; NULL: plain */
    size_t listen_index;        /* which server_listen it came from (TLS reload) */
    bool use_identity_as_username;
    bool is_websockets;              /* MQTT over WebSockets (protocol websockets) */
    const struct session_auth *auth; /* borrowed; NULL: the broker-wide settings */
    char *unix_path;                 /* owned; unlinked at close */
    char name[80];                   /* "127.0.0.1:1883", "[::1]:1883", "unix:/path" */
};

/*
 * One block of the output queue: bytes it owns (data[0..len)), then
 * optionally bytes it only references (ref[0..ref_len): a message's payload,
 * shared by every subscriber, alive until release(ref_arg)). Written with
 * writev; freed, and the reference released exactly once, when all its bytes
 * are written or the connection is freed. Nothing is appended to a chunk
 * that holds a reference, so its bytes stay in queue order.
 */
struct out_chunk {
    struct out_chunk *next;
    size_t off; /* bytes already written: of data first, then of ref */
    size_t len; /* bytes filled */
    size_t cap;
    const uint8_t *ref; /* NULL: none */
    size_t ref_len;
    void (*release)(void *ref_arg);
    void *ref_arg;
    uint8_t data[];
};

/* A connection's place among those waiting for the input budget. */
struct input_wait {
    struct conn *prev, *next;
    size_t want;
};

struct conn {
    const struct conn_transport *tp;
    /* One watcher for both directions (an idle connection's size is the
     * broker's RSS per connection): EV_READ while is_reading, EV_WRITE while
     * is_write_armed; conn.c's io_update() keeps its events in step. */
    ev_io io;
    ev_timer timer; /* CONNECT deadline, then keepalive */
    struct server *srv;
    struct session_client *client;
    struct conn *prev, *next; /* srv->conns */
    struct conn *next_write;  /* srv->writes, while is_write_listed */
    struct conn *next_close;  /* srv->closing, while is_closing */
    uint8_t *in;              /* partial packet carried to the next read; NULL when empty */
    /* Waiting for the input budget (srv->input_waiters), NULL otherwise:
     * reading is stopped until in can grow to wait->want bytes. Apart
     * because it is rare and an idle connection's size is RSS. */
    struct input_wait *wait;
    struct out_chunk *out_head, *out_tail;
    size_t out_pending; /* bytes queued and not yet written */
    ev_tstamp last_packet;
    double timeout_s;   /* 0: no timer */
    struct ssl_st *ssl; /* TLS only, owned */
    struct ws_conn *ws; /* WebSockets only, owned (freed by its transport's close) */
    /* Small fields last, together (no padding holes): a conn is most of the
     * broker's RSS per idle connection. */
    /* ERR_get_error() of the last failed TLS call, 0 if none: OpenSSL 3's
     * codes fit in 32 bits (library << 23 | reason, or ERR_SYSTEM_FLAG). */
    uint32_t tls_error;
    /* Bytes carried in in / allocated there (counted in srv->input_bytes):
     * at most a packet (max_packet_size < 256 MiB) plus one read, doubled. */
    uint32_t in_len;
    uint32_t in_cap;
    int fd;
    enum session_close_reason close_reason;
    bool is_reading;     /* EV_READ armed: not waiting for input budget, not closing */
    bool is_write_armed; /* EV_WRITE armed (update_write_watcher) */
    bool is_closing;
    bool is_write_listed;
    bool is_read_listed;   /* on srv->reads: read at the end of the turn (io_uring) */
    bool is_connect_phase; /* the timer is the CONNECT (and AUTH exchange) deadline */
    bool has_packet;       /* the manager has seen a packet */
    bool is_write_blocked; /* the last write found the socket full */
    bool is_handshaking;   /* the transport is not ready for data yet */
    bool handshake_wants_write;
    bool read_wants_write; /* a TLS read waits for EV_WRITE */
    bool write_wants_read; /* a TLS write waits for EV_READ */
    bool is_tls_broken;    /* fatal TLS error: no close_notify */
    bool use_identity_as_username;
};

struct server {
    struct ev_loop *loop;
    struct session_mgr *mgr;
    size_t max_packet_size;
    size_t max_input_bytes;     /* max_input_buffer_bytes; 0: no limit */
    size_t input_bytes;         /* sum of every conn's in_cap */
    struct conn *input_waiters; /* conns waiting for input budget, oldest first */
    struct conn *input_waiters_tail;
    bool is_input_freed; /* input budget was given back since the last resume */
    double connect_timeout_s;
    double tick_s;
    struct listener *listeners;
    size_t listener_count;
    ev_signal sigint, sigterm, sighup;
    server_tick_fn reload_fn;
    void *reload_arg;
    ev_timer sys_timer;
    server_tick_fn sys_fn;
    void *sys_arg;
    struct server_stats stats; /* connections_current is conn_count, filled on read */
    size_t max_connections;    /* 0: unlimited */
    size_t refused_burst;      /* refusals since the last logged one */
    ev_tstamp refused_logged_at;
    ev_prepare prepare;
    ev_idle idle;          /* keeps the loop from sleeping while end-of-turn work is left */
    ev_timer commit_timer; /* commits a deferred store batch when it is due */
    ev_async commit_done;  /* the storage thread finished a batch (server_commit_notify) */
    ev_timer tick;
    server_tick_fn tick_fn;
    void *tick_arg;
    struct conn *conns;        /* all open connections */
    struct conn *writes;       /* connections with output to write this turn */
    struct conn *closing;      /* connections to free at the end of the turn */
    struct conn *closing_held; /* closed, waiting for the commit that holds their last sends */
    size_t conn_count;
    bool is_stopping;
    bool has_failed; /* server_fail(): stop without committing */
    /* io_uring: NULL when off or unavailable (plain read/writev). Reads
     * announced during a turn wait on reads[] (conn_read_listed) and land
     * in uring_in; writes are batched by conn_write_listed. */
    struct server_uring *uring;
    struct conn **reads;
    size_t read_count, read_cap;
    uint8_t uring_in[SERVER_URING_READS][SERVER_URING_READ_ROOM];
    uint8_t scratch[SERVER_READ_CHUNK];     /* every read lands here first */
    uint8_t tls_out[SERVER_TLS_RECORD_MAX]; /* small chunks gathered for one SSL_write */
    uint8_t ws_out[SERVER_TLS_RECORD_MAX];  /* small chunks gathered for one WebSocket frame */
};

/* ---- listener.c ---- */

/* Binds and listens on every address host:port resolves to (host NULL: all
 * local addresses), non-blocking, SO_REUSEADDR; IPv6 sockets are v6-only so
 * "::" and "0.0.0.0" can coexist. Stores up to max fds in fds[] and names in
 * names[]. Returns the count (>= 1), or -1 with a reason in err. */
int server_listen_tcp(const char *host, uint16_t port, int *fds, char (*names)[80], int max,
                      char *err, size_t err_len);

/* Binds and listens on a unix socket at path, replacing a stale socket file
 * (never another kind of file). Returns the fd, or -1 with a reason in err. */
int server_listen_unix(const char *path, char *err, size_t err_len);

/* Accepts one connection: non-blocking, close-on-exec, TCP_NODELAY on TCP.
 * Writes "ip:port" (or "unix") into peer. Returns the fd, or -1 with errno. */
int server_accept(int listen_fd, char *peer, size_t peer_len);

/* ---- conn.c ---- */

/* Takes ownership of fd: on failure it is closed. Starts reading (or the TLS
 * handshake when l has a TLS context). */
void conn_accept(struct server *srv, const struct listener *l, int fd, const char *peer);

/* Marks c closing (idempotent): stops reading and its timer, queues the free
 * for the end of the turn. */
void conn_close(struct conn *c, enum session_close_reason reason);

/* Tries to write c's queue now. Returns true when the queue is empty. */
bool conn_flush(struct conn *c);

/* Writes every connection on srv->writes (the list is taken first: output
 * queued meanwhile waits for the next round). */
void conn_write_listed(struct server *srv);

/* Reads every connection on srv->reads (io_uring: their EV_READ came during
 * the turn), handing what arrived to the session manager in list order.
 * First thing at the end of a turn, before its commit. */
void conn_read_listed(struct server *srv);

/* Calls session_client_gone(), closes the socket and frees c. Only at the end
 * of a turn, never from c's own callbacks. */
void conn_free(struct conn *c);

/* Restarts reading on the connections waiting for input budget that now fit
 * (max_input_buffer_bytes), if any budget was given back since the last call.
 * Called at the end of each turn. Returns true when some connection was
 * resumed (its read is already queued: the loop must not sleep). */
bool conn_resume_input(struct server *srv);

/* ---- tls.c ---- */

/* Builds the TLS context of one listener from a's files and settings.
 * Returns 0 and *out (release with tls_ctx_free()), or -1 with a one-line
 * reason in err naming `name` and the file. Never prompts for a passphrase. */
int tls_ctx_new(const struct server_listen *a, const char *name, struct ssl_ctx_st **out, char *err,
                size_t err_len);
void tls_ctx_free(struct ssl_ctx_st *ctx);
/* Takes one more reference on ctx (one per listening socket of a line). */
int tls_ctx_ref(struct ssl_ctx_st *ctx);

/* Switches c to the TLS transport in the accepting state. Returns 0 or
 * -ENOMEM (c is left plain; the caller closes it). */
int tls_conn_start(struct conn *c, struct ssl_ctx_st *ctx);

/* The sink table the session manager calls. */
extern const struct session_sink conn_sink;

#endif /* SOL_SERVER_INTERNAL_H */
