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

#include <ev.h>

#include "server.h"
#include "session.h"

#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* Bytes read per read(2): one syscall picks up many small packets. */
#define SERVER_READ_CHUNK 16384

/* A listening socket. */
struct listener {
    ev_io io;
    ev_timer retry; /* re-enables accept after EMFILE/ENFILE */
    struct server *srv;
    int fd;
    char *unix_path; /* owned; unlinked at close */
    char name[80];   /* "127.0.0.1:1883", "[::1]:1883", "unix:/path" */
};

/* One block of the output queue; written with writev, freed when sent. */
struct out_chunk {
    struct out_chunk *next;
    size_t off; /* bytes already written */
    size_t len; /* bytes filled */
    size_t cap;
    uint8_t data[];
};

struct conn {
    ev_io rio;
    ev_io wio;
    ev_timer timer; /* CONNECT deadline, then keepalive */
    struct server *srv;
    struct session_client *client;
    struct conn *prev, *next; /* srv->conns */
    struct conn *next_write;  /* srv->writes, while is_write_listed */
    struct conn *next_close;  /* srv->closing, while is_closing */
    uint8_t *in;              /* partial packet carried to the next read; NULL when empty */
    size_t in_len;
    struct out_chunk *out_head, *out_tail;
    size_t out_pending; /* bytes queued and not yet written */
    ev_tstamp last_packet;
    double timeout_s; /* 0: no timer */
    int fd;
    enum session_close_reason close_reason;
    bool is_closing;
    bool is_write_listed;
    bool is_connect_phase; /* the timer is the CONNECT deadline */
    bool has_packet;       /* the manager has seen a packet */
};

struct server {
    struct ev_loop *loop;
    struct session_mgr *mgr;
    size_t max_packet_size;
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
    ev_idle idle; /* keeps the loop from sleeping while end-of-turn work is left */
    ev_timer tick;
    server_tick_fn tick_fn;
    void *tick_arg;
    struct conn *conns;   /* all open connections */
    struct conn *writes;  /* connections with output to write this turn */
    struct conn *closing; /* connections to free at the end of the turn */
    size_t conn_count;
    bool is_stopping;
    uint8_t scratch[SERVER_READ_CHUNK]; /* every read lands here first */
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

/* Takes ownership of fd: on failure it is closed. Starts reading. */
void conn_accept(struct server *srv, int fd, const char *peer);

/* Marks c closing (idempotent): stops reading and its timer, queues the free
 * for the end of the turn. */
void conn_close(struct conn *c, enum session_close_reason reason);

/* Tries to write c's queue now. Returns true when the queue is empty. */
bool conn_flush(struct conn *c);

/* Writes every connection on srv->writes (the list is taken first: output
 * queued meanwhile waits for the next round). */
void conn_write_listed(struct server *srv);

/* Calls session_client_gone(), closes the socket and frees c. Only at the end
 * of a turn, never from c's own callbacks. */
void conn_free(struct conn *c);

/* The sink table the session manager calls. */
extern const struct session_sink conn_sink;

#endif /* SOL_SERVER_INTERNAL_H */
