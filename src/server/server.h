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
 * (main.c), storage.
 */
#ifndef SOL_SERVER_H
#define SOL_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "session.h"

struct server;

/* One address to listen on: TCP when unix_path is NULL, else a unix socket. */
struct server_listen {
    const char *host; /* numeric or name; NULL: every local address (IPv4 and IPv6) */
    uint16_t port;
    const char *unix_path;
};

struct server_options {
    const struct server_listen *listens; /* borrowed for server_new() only */
    size_t listen_count;
    size_t max_packet_size;   /* bytes, 0 = protocol maximum (MQTT_MAX_REMAINING_LENGTH + 5) */
    double connect_timeout_s; /* close connections that send no CONNECT in time; 0 = never */
    double tick_s;            /* period of the tick callback; 0 = no tick */
};

#define SERVER_DEFAULT_CONNECT_TIMEOUT_S 10.0

/* Fills *opts with defaults: no listeners, protocol maximum packet size,
 * SERVER_DEFAULT_CONNECT_TIMEOUT_S, no tick. */
void server_options_init(struct server_options *opts);

/*
 * Creates the server on libev's default loop, binds and listens on every
 * address of opts (all or nothing), and installs SIGINT/SIGTERM handlers.
 * Returns 0 and *out (owned by the caller: server_free()), or -1 with a
 * one-line reason in err[0..err_len) naming the address that failed.
 */
int server_new(const struct server_options *opts, struct server **out, char *err, size_t err_len);

/* The sink to hand to session_mgr_new(); static, valid forever. */
const struct session_sink *server_sink(void);

/* Attaches the session manager (borrowed; must outlive server_run()). Must be
 * called before server_run(). */
void server_set_session_mgr(struct server *srv, struct session_mgr *mgr);

/* Calls fn(arg) every opts->tick_s seconds on the loop (e.g. a periodic store
 * flush). fn may be NULL to remove it. */
typedef void (*server_tick_fn)(void *arg);
void server_set_tick(struct server *srv, server_tick_fn fn, void *arg);

/*
 * Runs the loop until SIGINT or SIGTERM. Then it stops accepting, commits
 * (session_flush()), closes every connection with SESSION_CLOSE_SHUTDOWN,
 * commits what closing recorded, and returns 0.
 */
int server_run(struct server *srv);

/* Closes listeners (unlinking unix sockets) and any connection left, frees
 * srv. server_free(NULL) does nothing. */
void server_free(struct server *srv);

#endif /* SOL_SERVER_H */
