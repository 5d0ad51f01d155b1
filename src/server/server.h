/*
 * server.h - the network layer: one libev loop, the listeners, and the
 * connections that turn bytes into packets for the session manager and its
 * replies back into bytes.
 *
 * Turn structure: read callbacks decode packets and hand them to
 * session_handle_packet(); before the loop sleeps, an ev_prepare watcher
 * calls session_flush() (one store commit per turn), writes every connection
 * that got output, and frees the connections closed during the turn.
 *
 * Not for: MQTT semantics (the session manager decides), configuration files
 * (src/broker/), storage.
 */
#ifndef SOL_SERVER_H
#define SOL_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "session.h"

struct server;
struct ev_loop;

/*
 * One address to listen on: TCP when unix_path is NULL, else a unix socket.
 * TLS when certfile is set (Mosquitto's per-listener directives); the files
 * are read by server_new() and the strings are not kept.
 */
struct server_listen {
    const char *host; /* numeric or name; NULL: every local address (IPv4 and IPv6) */
    uint16_t port;
    const char *unix_path;
    const char *cafile;            /* PEM CA bundle that client certificates must chain to */
    const char *certfile;          /* PEM server certificate (chain); NULL: plain TCP */
    const char *keyfile;           /* PEM private key matching certfile */
    const char *tls_version;       /* minimum: "tlsv1.2" or "tlsv1.3"; NULL: tlsv1.2 */
    bool require_certificate;      /* handshake fails without a client cert valid for cafile */
    bool use_identity_as_username; /* the client cert's subject CN becomes the username */
    /* MQTT over WebSockets (Mosquitto's "protocol websockets"): ws://, or
     * wss:// when certfile is set. */
    bool is_websockets;
    /* per_listener_settings: this listener's password file, ACL and
     * allow_anonymous (borrowed; must outlive the server); NULL: the broker's. */
    const struct session_auth *auth;
};

struct server_options {
    const struct server_listen *listens; /* borrowed for server_new() only */
    size_t listen_count;
    size_t max_packet_size;   /* bytes, 0 = protocol maximum (MQTT_MAX_REMAINING_LENGTH + 5) */
    double connect_timeout_s; /* close connections that send no CONNECT in time; 0 = never */
    double tick_s;            /* period of the tick callback; 0 = no tick */
    int max_connections;      /* open connections at most; <= 0 = unlimited (Mosquitto's -1) */
    /* Input buffered for unfinished packets, all connections together; past
     * it, connections needing more wait (reading stops) until others finish.
     * A connection may always keep what one read brought in (16 KB), so small
     * packets are never held up. 0 = no limit. */
    size_t max_input_buffer_bytes;
    /* Submit a turn's socket reads and writes to io_uring together (plain
     * TCP connections; falls back to system calls if the kernel refuses). */
    bool use_io_uring;
};

#define SERVER_DEFAULT_CONNECT_TIMEOUT_S 10.0

/* Fills *opts with defaults: no listeners, protocol maximum packet size,
 * SERVER_DEFAULT_CONNECT_TIMEOUT_S, no tick, unlimited connections,
 * io_uring. */
void server_options_init(struct server_options *opts);

/*
 * Creates the server on libev's default loop, loads each TLS listener's
 * certificate, key and CA, binds and listens on every address of opts (all or
 * nothing), and installs SIGINT/SIGTERM/SIGHUP handlers.
 * Returns 0 and *out (owned by the caller: server_free()), or -1 with a
 * one-line reason in err[0..err_len) naming the address or file that failed
 * (e.g. "listener 8883: keyfile /x/key.pem: key values mismatch").
 */
int server_new(const struct server_options *opts, struct server **out, char *err, size_t err_len);

/* The server's libev loop, for other watchers on the same thread (the
 * metrics endpoint). Valid until server_free(); stop those watchers first. */
struct ev_loop *server_loop(struct server *srv);

/* The sink to hand to session_mgr_new(); static, valid forever. */
const struct session_sink *server_sink(void);

/* Attaches the session manager (borrowed; must outlive server_run()). Must be
 * called before server_run(). */
void server_set_session_mgr(struct server *srv, struct session_mgr *mgr);

/* Calls fn(arg) every opts->tick_s seconds on the loop (e.g. a periodic store
 * flush). fn may be NULL to remove it. */
typedef void (*server_tick_fn)(void *arg);
void server_set_tick(struct server *srv, server_tick_fn fn, void *arg);

/* Calls fn(arg) on the loop when the process gets SIGHUP (reload the
 * password/ACL files, reopen logs). The server keeps running and its
 * connections stay open. fn may be NULL: SIGHUP is then logged and ignored.
 * Certificates are not reloaded. */
void server_set_reload(struct server *srv, server_tick_fn fn, void *arg);

/* Calls fn(arg) every interval_s seconds on the loop, independent of the
 * tick (for $SYS publishing). interval_s <= 0 or fn NULL disables it. May be
 * called again to change the period. */
void server_set_sys_timer(struct server *srv, double interval_s, server_tick_fn fn, void *arg);

/* The storage thread's notify (store_committer_start(store,
 * server_commit_notify, srv)): safe on any thread; wakes srv's loop to
 * finish the commit round. The committer must be stopped before
 * server_free(). */
void server_commit_notify(void *arg);

/* Counters since server_new(); all monotonic except connections_current. */
struct server_stats {
    uint64_t bytes_received;         /* payload bytes read from clients (after TLS decryption) */
    uint64_t bytes_sent;             /* bytes written to clients (before TLS encryption) */
    uint64_t connections_current;    /* open connections, TLS handshakes included */
    uint64_t connections_total;      /* connections accepted (refused ones excluded) */
    uint64_t connections_refused;    /* closed at once: over max_connections or out of memory */
    uint64_t tls_handshake_failures; /* TLS handshakes that failed or timed out */
    uint64_t input_waits;            /* reads stopped for max_input_buffer_bytes */
};
void server_get_stats(const struct server *srv, struct server_stats *out);

/*
 * Runs the loop until SIGINT or SIGTERM (SIGHUP calls the reload callback).
 * Then it stops accepting, commits (session_flush()), closes every
 * connection with SESSION_CLOSE_SHUTDOWN, commits what closing recorded, and
 * returns 0. After server_fail() it returns -1 at once, committing nothing.
 */
int server_run(struct server *srv);

/*
 * Re-reads the certificates and keys of the TLS listeners (SIGHUP): listens
 * must describe the listeners server_new() was given, in the same order. All
 * or nothing: when any file fails to load, -1 with err set and every
 * listener keeps its context. New connections get the new certificates;
 * connections already made keep theirs.
 */
int server_reload_tls(struct server *srv, const struct server_listen *listens, size_t count,
                      char *err, size_t err_len);

/* Fail-stop: the store cannot be trusted (a write failed with an I/O
 * error). Logs why and stops the loop; server_run() returns -1 without
 * another commit, and the next start recovers from the last good one. */
void server_fail(struct server *srv, const char *why);

/* Closes listeners (unlinking unix sockets) and any connection left, frees
 * srv. server_free(NULL) does nothing. */
void server_free(struct server *srv);

#endif /* SOL_SERVER_H */
