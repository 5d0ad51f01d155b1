/*
 * server.c - the loop: listeners and accept, signals, the end-of-turn work
 * (commit, write, free closed connections) and the periodic tick.
 * Not for: per-connection buffers and timers (conn.c), socket set-up
 * (listener.c), MQTT semantics (the session manager).
 */
#include "server.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server_internal.h"
#include "log.h"
#include "mqtt.h"

/* Connections accepted per listener event, so a connection storm cannot
 * starve the connections already open. */
#define ACCEPT_MAX_PER_EVENT 64
/* After EMFILE/ENFILE, accepting pauses this long. */
#define ACCEPT_RETRY_S 1.0
/* Rounds of commit/write/free per turn before the loop looks at sockets again. */
#define END_OF_TURN_ROUNDS 8
/* Addresses one TCP listen line may resolve to. */
#define LISTEN_FDS_MAX 8
/* While connections keep being refused over max_connections, a reminder with
 * the count is logged at most this often. */
#define REFUSED_LOG_INTERVAL_S 60.0

void server_options_init(struct server_options *opts)
{
    *opts = (struct server_options){.connect_timeout_s = SERVER_DEFAULT_CONNECT_TIMEOUT_S,
                                    .use_io_uring = true};
}

struct ev_loop *server_loop(struct server *srv)
{
    return srv->loop;
}

const struct session_sink *server_sink(void)
{
    return &conn_sink;
}

void server_set_session_mgr(struct server *srv, struct session_mgr *mgr)
{
    srv->mgr = mgr;
}

/* ---- listeners ---- */

/* Over max_connections: accept and close at once (Mosquitto does the same),
 * so the peer sees a closed connection rather than a full backlog. Logged
 * once per burst, with a periodic reminder while it lasts. */
static void refuse(struct server *srv, int fd, const char *peer)
{
    close(fd);
    srv->stats.connections_refused++;
    ev_tstamp now = ev_now(srv->loop);
    if (srv->refused_burst == 0 || now - srv->refused_logged_at >= REFUSED_LOG_INTERVAL_S) {
        log_warning("%s: refusing connection: max_connections (%zu) reached (%zu refused so far "
                    "in this burst)",
                    peer, srv->max_connections, srv->refused_burst + 1);
        srv->refused_logged_at = now;
    }
    srv->refused_burst++;
}

static bool is_full(const struct server *srv)
{
    return srv->max_connections > 0 && srv->conn_count >= srv->max_connections;
}

static void admit(struct server *srv, const struct listener *l, int fd, const char *peer)
{
    if (is_full(srv)) {
        refuse(srv, fd, peer);
        return;
    }
    if (srv->refused_burst > 0) {
        log_notice("accepting connections again: %zu refused over max_connections (%zu)",
                   srv->refused_burst, srv->max_connections);
        srv->refused_burst = 0;
    }
    conn_accept(srv, l, fd, peer);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    struct listener *l = container_of(w, struct listener, io);
    for (int i = 0; i < ACCEPT_MAX_PER_EVENT; i++) {
        char peer[96];
        int fd = server_accept(l->fd, peer, sizeof(peer));
        if (fd >= 0) {
            if (l->unix_path != NULL)
                snprintf(peer, sizeof(peer), "%s#%d", l->name, fd);
            admit(l->srv, l, fd, peer);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        log_warning("%s: accept: %s; pausing accepts for %.0f s", l->name, strerror(errno),
                    ACCEPT_RETRY_S);
        ev_io_stop(loop, &l->io);
        ev_timer_start(loop, &l->retry);
        return;
    }
}

static void on_accept_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    struct listener *l = container_of(w, struct listener, retry);
    if (l->fd >= 0)
        ev_io_start(loop, &l->io);
}

/* Appends a listener for fd. On success the listener owns fd and one
 * reference on tls_ctx; on -ENOMEM it owns nothing. */
static int add_listener(struct server *srv, int fd, const char *name, const struct server_listen *a,
                        size_t listen_index, struct ssl_ctx_st *tls_ctx)
{
    struct listener *grown =
        realloc(srv->listeners, (srv->listener_count + 1) * sizeof(*srv->listeners));
    if (grown == NULL)
        return -ENOMEM;
    srv->listeners = grown;
    struct listener *l = &grown[srv->listener_count];
    *l = (struct listener){.srv = srv, .fd = fd};
    snprintf(l->name, sizeof(l->name), "%s", name);
    if (a->unix_path != NULL && (l->unix_path = strdup(a->unix_path)) == NULL)
        return -ENOMEM;
    if (tls_ctx != NULL && tls_ctx_ref(tls_ctx) < 0) {
        free(l->unix_path);
        return -ENOMEM;
    }
    l->tls_ctx = tls_ctx;
    l->listen_index = listen_index;
    l->use_identity_as_username = tls_ctx != NULL && a->use_identity_as_username;
    l->is_websockets = a->is_websockets;
    l->auth = a->auth;
    srv->listener_count++;
    return 0;
}

static void close_listener(struct server *srv, struct listener *l)
{
    if (l->fd < 0)
        return;
    ev_io_stop(srv->loop, &l->io);
    ev_timer_stop(srv->loop, &l->retry);
    close(l->fd);
    l->fd = -1;
    tls_ctx_free(l->tls_ctx);
    l->tls_ctx = NULL;
    if (l->unix_path != NULL && unlink(l->unix_path) < 0 && errno != ENOENT)
        log_warning("%s: unlink: %s", l->unix_path, strerror(errno));
}

/* Opens the sockets of one address: fds[] and names[], the count or -1. */
static int open_sockets(const struct server_listen *a, int *fds, char (*names)[80], char *err,
                        size_t err_len)
{
    if (a->unix_path == NULL)
        return server_listen_tcp(a->host, a->port, fds, names, LISTEN_FDS_MAX, err, err_len);
    fds[0] = server_listen_unix(a->unix_path, err, err_len);
    snprintf(names[0], sizeof(names[0]), "unix:%.70s", a->unix_path);
    return fds[0] < 0 ? -1 : 1;
}

/* The TLS context of a (NULL when a is plain); -1 with err set on failure. */
static int open_tls(const struct server_listen *a, struct ssl_ctx_st **ctx, char *err,
                    size_t err_len)
{
    char name[96];
    *ctx = NULL;
    if (a->certfile == NULL && a->keyfile == NULL)
        return 0;
    if (a->unix_path != NULL)
        snprintf(name, sizeof(name), "listener unix:%.70s", a->unix_path);
    else
        snprintf(name, sizeof(name), "listener %s:%u", a->host ? a->host : "*", (unsigned)a->port);
    if (a->certfile == NULL) {
        snprintf(err, err_len, "%s: keyfile without certfile", name);
        return -1;
    }
    return tls_ctx_new(a, name, ctx, err, err_len);
}

/* Opens the sockets of one address; -1 with err set on failure. */
static int open_listen(struct server *srv, const struct server_listen *a, size_t listen_index,
                       char *err, size_t err_len)
{
    int fds[LISTEN_FDS_MAX];
    char names[LISTEN_FDS_MAX][80];
    struct ssl_ctx_st *ctx = NULL;
    if (open_tls(a, &ctx, err, err_len) < 0)
        return -1;
    int count = open_sockets(a, fds, names, err, err_len);
    int rc = count < 0 ? -1 : 0;
    for (int i = 0; i < count; i++) {
        if (rc == 0 && add_listener(srv, fds[i], names[i], a, listen_index, ctx) == 0)
            continue;
        if (rc == 0)
            snprintf(err, err_len, "%s: out of memory", names[i]);
        rc = -1;
        close(fds[i]); /* not handed to a listener */
    }
    tls_ctx_free(ctx); /* each listener holds its own reference */
    return rc;
}

int server_reload_tls(struct server *srv, const struct server_listen *listens, size_t count,
                      char *err, size_t err_len)
{
    struct ssl_ctx_st **fresh = calloc(count ? count : 1, sizeof(*fresh));
    if (fresh == NULL) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < count; i++)
        rc = open_tls(&listens[i], &fresh[i], err, err_len);
    for (size_t j = 0; rc == 0 && j < srv->listener_count; j++) {
        struct listener *l = &srv->listeners[j];
        struct ssl_ctx_st *ctx = l->listen_index < count ? fresh[l->listen_index] : NULL;
        if (l->tls_ctx == NULL || ctx == NULL || tls_ctx_ref(ctx) < 0)
            continue; /* plain stays plain; no memory for a reference: the old one stays */
        /* Connections made so far keep the context they hold a reference to. */
        tls_ctx_free(l->tls_ctx);
        l->tls_ctx = ctx;
    }
    for (size_t i = 0; i < count; i++)
        tls_ctx_free(fresh[i]);
    free(fresh);
    return rc;
}

/* Starts the watchers once the listener array has its final address. */
static void start_listeners(struct server *srv)
{
    for (size_t i = 0; i < srv->listener_count; i++) {
        struct listener *l = &srv->listeners[i];
        ev_io_init(&l->io, on_accept, l->fd, EV_READ);
        ev_timer_init(&l->retry, on_accept_retry, ACCEPT_RETRY_S, 0.);
        ev_io_start(srv->loop, &l->io);
        const char *kind = l->tls_ctx != NULL ? " (TLS)" : "";
        if (l->is_websockets)
            kind = l->tls_ctx != NULL ? " (WebSockets over TLS)" : " (WebSockets)";
        log_notice("listening on %s%s", l->name, kind);
    }
}

static void stop_listeners(struct server *srv)
{
    for (size_t i = 0; i < srv->listener_count; i++)
        close_listener(srv, &srv->listeners[i]);
}

/* ---- end of turn ---- */

/* Frees the connections closed this turn. One whose client still has sends
 * held behind a commit (a PUBACK, or a CONNACK refusing it, queued before
 * the close) waits for that commit in closing_held when may_wait: its last
 * packets still leave, as they do when the commit runs on the loop. */
static void free_closing(struct server *srv, bool may_wait)
{
    while (srv->closing != NULL) {
        struct conn *c = srv->closing;
        srv->closing = c->next_close;
        if (may_wait && c->client != NULL && srv->mgr != NULL &&
            session_client_has_held(c->client)) {
            c->next_close = srv->closing_held;
            srv->closing_held = c;
            continue;
        }
        conn_free(c);
    }
}

/* After a commit: the connections that waited for it are freed (or wait
 * again) at the end of the turn. */
static void requeue_closing_held(struct server *srv)
{
    while (srv->closing_held != NULL) {
        struct conn *c = srv->closing_held;
        srv->closing_held = c->next_close;
        c->next_close = srv->closing;
        srv->closing = c;
    }
}

/* Reads listed for io_uring (srv->reads) are not counted: end_turn takes
 * them first, before it asks. */
static bool has_turn_work(const struct server *srv)
{
    return srv->writes != NULL || srv->closing != NULL ||
           (srv->mgr != NULL && session_has_pending(srv->mgr));
}

/*
 * The end of a loop turn, as redis's beforeSleep: commit the turn's batch
 * (which releases the acks that waited for it), write every connection that
 * got output, then free the connections closed this turn (their wills may
 * queue more, hence the rounds). Work still left after the rounds keeps the
 * loop from sleeping via the idle watcher.
 */
/* A batch the session deferred gets committed when due, even if the loop
 * would otherwise sleep. */
static void arm_commit_timer(struct server *srv)
{
    double delay_s = srv->mgr != NULL ? session_commit_delay_s(srv->mgr) : -1.0;
    if (delay_s < 0) {
        ev_timer_stop(srv->loop, &srv->commit_timer);
        return;
    }
    if (ev_is_active(&srv->commit_timer))
        return;
    ev_timer_set(&srv->commit_timer, delay_s, 0.);
    ev_timer_start(srv->loop, &srv->commit_timer);
}

static void end_turn(struct server *srv)
{
    if (srv->read_count > 0)
        conn_read_listed(srv); /* the turn's reads, batched (io_uring) */
    for (int round = 0; round < END_OF_TURN_ROUNDS; round++) {
        if (srv->mgr != NULL && session_has_pending(srv->mgr)) {
            /* What is already queued needs no commit (the session holds
             * back what does): send it before the commit's fsync. */
            conn_write_listed(srv);
            int rc = session_commit(srv->mgr); /* with the storage thread: in flight */
            if (rc != 0 && rc != SESSION_COMMIT_STARTED)
                log_debug("end of turn: commit failed (%d)", rc);
            if (session_has_failed(srv->mgr)) {
                server_fail(srv, "store write failed");
                return;
            }
        }
        conn_write_listed(srv);
        free_closing(srv, true);
        bool is_resumed = conn_resume_input(srv);
        if (!has_turn_work(srv)) {
            if (is_resumed) /* their reads run next: no sleeping before them */
                ev_idle_start(srv->loop, &srv->idle);
            else
                ev_idle_stop(srv->loop, &srv->idle);
            arm_commit_timer(srv);
            return;
        }
    }
    ev_idle_start(srv->loop, &srv->idle);
    arm_commit_timer(srv);
}

static void on_commit_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    end_turn(container_of(w, struct server, commit_timer));
}

/* The storage thread finished the batch in flight: its round ends here
 * (acks released, top-ups read); the prepare watcher then ends the turn,
 * which writes them out and hands over the next batch. */
static void on_commit_done(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop;
    (void)revents;
    struct server *srv = container_of(w, struct server, commit_done);
    if (srv->mgr == NULL)
        return;
    int rc = session_commit_collect(srv->mgr, false);
    if (rc != 0 && rc != SESSION_COMMIT_STARTED)
        log_debug("storage thread: commit failed (%d)", rc);
    requeue_closing_held(srv);
    if (session_has_failed(srv->mgr))
        server_fail(srv, "store write failed");
}

void server_commit_notify(void *arg)
{
    struct server *srv = arg;
    ev_async_send(srv->loop, &srv->commit_done);
}

static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)revents;
    end_turn(container_of(w, struct server, prepare));
}

static void on_idle(struct ev_loop *loop, ev_idle *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents; /* nothing to do: its being active keeps ev_run from blocking */
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct server *srv = container_of(w, struct server, tick);
    if (srv->tick_fn != NULL)
        srv->tick_fn(srv->tick_arg);
}

void server_set_tick(struct server *srv, server_tick_fn fn, void *arg)
{
    srv->tick_fn = fn;
    srv->tick_arg = arg;
}

static void on_sys_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct server *srv = container_of(w, struct server, sys_timer);
    if (srv->sys_fn != NULL)
        srv->sys_fn(srv->sys_arg);
}

void server_set_sys_timer(struct server *srv, double interval_s, server_tick_fn fn, void *arg)
{
    ev_timer_stop(srv->loop, &srv->sys_timer);
    srv->sys_fn = fn;
    srv->sys_arg = arg;
    if (fn == NULL || interval_s <= 0)
        return;
    ev_timer_set(&srv->sys_timer, interval_s, interval_s);
    ev_timer_start(srv->loop, &srv->sys_timer);
}

/* ---- reload and stats ---- */

static void on_sighup(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    struct server *srv = container_of(w, struct server, sighup);
    if (srv->reload_fn == NULL) {
        log_notice("received SIGHUP: nothing to reload");
        return;
    }
    log_notice("received SIGHUP: reloading");
    srv->reload_fn(srv->reload_arg);
}

void server_set_reload(struct server *srv, server_tick_fn fn, void *arg)
{
    srv->reload_fn = fn;
    srv->reload_arg = arg;
}

void server_get_stats(const struct server *srv, struct server_stats *out)
{
    *out = srv->stats;
    out->connections_current = srv->conn_count;
}

/* ---- shutdown ---- */

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)revents;
    struct server *srv = w->data;
    log_notice("received %s: shutting down", w->signum == SIGINT ? "SIGINT" : "SIGTERM");
    srv->is_stopping = true;
    stop_listeners(srv);
    end_turn(srv); /* commit and send what this turn acknowledged */
    for (struct conn *c = srv->conns; c != NULL; c = c->next) {
        if (srv->mgr != NULL && c->client != NULL && !c->is_closing)
            session_client_disconnect(srv->mgr, c->client, MQTT_RC_SERVER_SHUTTING_DOWN,
                                      "server shutting down");
        conn_close(c, SESSION_CLOSE_SHUTDOWN);
    }
    ev_break(loop, EVBREAK_ALL);
}

/* After the loop: free the closed connections and commit what closing them
 * recorded, until nothing is left (bounded). */
static void finish(struct server *srv)
{
    for (int i = 0; i < END_OF_TURN_ROUNDS && has_turn_work(srv); i++)
        end_turn(srv);
    if (srv->mgr != NULL && session_flush(srv->mgr) != 0)
        log_error("shutdown: the last commit failed");
    requeue_closing_held(srv); /* their held sends left with that commit */
    conn_write_listed(srv);
    free_closing(srv, false);
    ev_timer_stop(srv->loop, &srv->commit_timer);
    ev_idle_stop(srv->loop, &srv->idle);
}

void server_fail(struct server *srv, const char *why)
{
    if (!srv->has_failed)
        log_error("%s: stopping now (exit 1); acknowledged messages are in the last good commit, "
                  "which the next start recovers",
                  why);
    srv->has_failed = true;
    ev_break(srv->loop, EVBREAK_ALL);
}

int server_run(struct server *srv)
{
    ev_run(srv->loop, 0);
    if (srv->has_failed)
        return -1;
    finish(srv);
    log_notice("server stopped (%zu connections left)", srv->conn_count);
    return 0;
}

/* ---- create and free ---- */

/* io_uring when asked for and the kernel allows it; plain system calls
 * otherwise (a container's seccomp filter often refuses io_uring_setup). */
static void start_uring(struct server *srv, bool wanted)
{
    if (!wanted) {
        log_info("network: plain read and writev per connection (io_uring false)");
        return;
    }
    int rc = server_uring_new(&srv->uring);
    if (rc < 0)
        log_notice("network: io_uring unavailable (%s): plain read and writev per connection",
                   strerror(-rc));
    else
        log_info("network: a turn's reads and writes go to io_uring together (io_uring true)");
}

static void start_loop_watchers(struct server *srv)
{
    ev_signal_init(&srv->sigint, on_signal, SIGINT);
    ev_signal_init(&srv->sigterm, on_signal, SIGTERM);
    srv->sigint.data = srv;
    srv->sigterm.data = srv;
    ev_signal_start(srv->loop, &srv->sigint);
    ev_signal_start(srv->loop, &srv->sigterm);
    ev_signal_init(&srv->sighup, on_sighup, SIGHUP);
    ev_signal_start(srv->loop, &srv->sighup);
    ev_prepare_init(&srv->prepare, on_prepare);
    ev_prepare_start(srv->loop, &srv->prepare);
    ev_idle_init(&srv->idle, on_idle);
    ev_init(&srv->commit_timer, on_commit_timer);
    ev_async_init(&srv->commit_done, on_commit_done);
    ev_async_start(srv->loop, &srv->commit_done);
    ev_timer_init(&srv->tick, on_tick, srv->tick_s, srv->tick_s);
    if (srv->tick_s > 0)
        ev_timer_start(srv->loop, &srv->tick);
    ev_init(&srv->sys_timer, on_sys_timer);
}

int server_new(const struct server_options *opts, struct server **out, char *err, size_t err_len)
{
    *out = NULL;
    struct server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL) {
        snprintf(err, err_len, "server: out of memory");
        return -1;
    }
    srv->loop = ev_default_loop(EVFLAG_AUTO);
    if (srv->loop == NULL) {
        snprintf(err, err_len, "server: cannot create the event loop (bad LIBEV_FLAGS?)");
        free(srv);
        return -1;
    }
    srv->max_packet_size = opts->max_packet_size;
    srv->max_input_bytes = opts->max_input_buffer_bytes;
    srv->connect_timeout_s = opts->connect_timeout_s;
    srv->tick_s = opts->tick_s;
    srv->max_connections = opts->max_connections > 0 ? (size_t)opts->max_connections : 0;
    start_uring(srv, opts->use_io_uring);
    /* A peer that vanishes mid-write must cost an EPIPE, not the process. */
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
        snprintf(err, err_len, "server: ignoring SIGPIPE: %s", strerror(errno));
        goto fail;
    }
    for (size_t i = 0; i < opts->listen_count; i++)
        if (open_listen(srv, &opts->listens[i], i, err, err_len) < 0)
            goto fail;
    if (srv->listener_count == 0) {
        snprintf(err, err_len, "server: no listener configured");
        goto fail;
    }
    start_listeners(srv);
    start_loop_watchers(srv);
    *out = srv;
    return 0;
fail:
    server_free(srv);
    return -1;
}

void server_free(struct server *srv)
{
    if (srv == NULL)
        return;
    stop_listeners(srv);
    requeue_closing_held(srv);
    free_closing(srv, false);
    while (srv->conns != NULL) {
        conn_close(srv->conns, SESSION_CLOSE_SHUTDOWN);
        free_closing(srv, false);
    }
    for (size_t i = 0; i < srv->listener_count; i++)
        free(srv->listeners[i].unix_path);
    free(srv->listeners);
    ev_signal_stop(srv->loop, &srv->sigint);
    ev_signal_stop(srv->loop, &srv->sigterm);
    ev_signal_stop(srv->loop, &srv->sighup);
    ev_timer_stop(srv->loop, &srv->sys_timer);
    ev_prepare_stop(srv->loop, &srv->prepare);
    ev_idle_stop(srv->loop, &srv->idle);
    ev_timer_stop(srv->loop, &srv->commit_timer);
    ev_async_stop(srv->loop, &srv->commit_done);
    ev_timer_stop(srv->loop, &srv->tick);
    ev_loop_destroy(srv->loop);
    server_uring_free(srv->uring);
    free(srv->reads);
    free(srv);
}
