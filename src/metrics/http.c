/*
 * http.c - the /metrics endpoint: libmicrohttpd in its "external epoll" mode,
 * driven from the broker's libev loop, so scrapes run on the loop thread
 * between MQTT events and no lock is needed to read the counters.
 *
 * MHD keeps its own epoll set (listening socket and HTTP connections); an
 * ev_io watches that epoll descriptor and calls MHD_run() when it is
 * readable, and an ev_timer armed from MHD_get_timeout() after every run
 * lets MHD close idle connections. MHD_run() never blocks in this mode.
 *
 * Not for: the text format (format.c) or the figures (the fill callback).
 */
#define _GNU_SOURCE /* SOCK_CLOEXEC, SOCK_NONBLOCK */
#include "metrics.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>
#include <microhttpd.h>

#include "log.h"

#define LISTEN_BACKLOG 16
/* Request line and headers of one HTTP connection, at most (MHD's pool). */
#define CONNECTION_MEMORY_BYTES (16u * 1024u)
#define CONTENT_TYPE            "text/plain; version=0.0.4; charset=utf-8"

struct metrics {
    struct ev_loop *loop;
    struct MHD_Daemon *daemon;
    ev_io io;       /* MHD's epoll descriptor */
    ev_timer timer; /* MHD_get_timeout() */
    metrics_fill_fn fill;
    void *fill_arg;
    struct MHD_Response *not_found, *not_allowed; /* made once, shared */
    uint64_t scrapes;
};

#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

void metrics_options_init(struct metrics_options *opts)
{
    *opts = (struct metrics_options){.max_connections = METRICS_DEFAULT_MAX_CONNECTIONS,
                                     .timeout_s = METRICS_DEFAULT_TIMEOUT_S};
}

uint64_t metrics_scrapes(const struct metrics *m)
{
    return m->scrapes;
}

/* ---- requests ---- */

static enum MHD_Result send_metrics(struct metrics *m, struct MHD_Connection *conn)
{
    struct metrics_stats st;
    memset(&st, 0, sizeof(st));
    m->fill(m->fill_arg, &st);
    char *text = NULL;
    size_t len = 0;
    if (metrics_format(&st, &text, &len) != 0) {
        log_warning("metrics: scrape refused: out of memory");
        return MHD_NO; /* MHD closes the connection */
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(text);
        return MHD_NO;
    }
    enum MHD_Result rc = MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, CONTENT_TYPE);
    if (rc == MHD_YES)
        rc = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r); /* the connection holds its own reference */
    if (rc == MHD_YES)
        m->scrapes++;
    return rc;
}

/*
 * MHD's access handler: called once the request line and headers are in.
 * Only GET (and HEAD) /metrics is served; a body is never read (the response
 * is queued on the first call, and MHD then closes the connection instead of
 * reading an upload).
 */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)req_cls;
    struct metrics *m = cls;
    if (strcmp(url, "/metrics") != 0)
        return MHD_queue_response(conn, MHD_HTTP_NOT_FOUND, m->not_found);
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return MHD_queue_response(conn, MHD_HTTP_METHOD_NOT_ALLOWED, m->not_allowed);
    return send_metrics(m, conn);
}

/* MHD's error messages into Sol's log, one line each. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[256];
    vsnprintf(line, sizeof(line), fmt, ap);
    size_t len = strlen(line);
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        line[--len] = '\0';
    log_info("metrics: %s", line);
}

/* ---- the loop ---- */

/* After every MHD_run(): wake up when MHD next has something timed to do
 * (an idle connection to close); no timer when it has none. */
static void arm_timer(struct metrics *m)
{
    ev_timer_stop(m->loop, &m->timer);
    MHD_UNSIGNED_LONG_LONG ms = 0;
    if (MHD_get_timeout(m->daemon, &ms) != MHD_YES)
        return;
    ev_timer_set(&m->timer, (double)ms / 1000.0, 0.);
    ev_timer_start(m->loop, &m->timer);
}

static unsigned open_connections(struct metrics *m)
{
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(m->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    return info != NULL ? info->num_connections : 0;
}

/*
 * At its connection limit MHD takes the listening socket out of its epoll
 * set, and (0.9.75) puts it back only at the start of a run; a run that
 * closed connections is therefore followed by one more, which takes the
 * socket back and accepts what waits in the backlog. Without it a scrape
 * after a burst of connections waited for the next timeout (5 s; seen in
 * test_metrics.py).
 */
static void run_daemon(struct metrics *m)
{
    unsigned before = open_connections(m);
    if (MHD_run(m->daemon) != MHD_YES)
        log_debug("metrics: MHD_run failed");
    if (open_connections(m) < before && MHD_run(m->daemon) != MHD_YES)
        log_debug("metrics: MHD_run failed");
    arm_timer(m);
}

static void on_epoll(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    run_daemon(container_of(w, struct metrics, io));
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    run_daemon(container_of(w, struct metrics, timer));
}

/* ---- start and stop ---- */

/* A listening socket on address:port (address NULL: "::" taking IPv4 too,
 * else 0.0.0.0 when the host has no IPv6); -1 with err set. */
static int listen_on(const char *address, uint16_t port, char *err, size_t err_len)
{
    const char *hosts[2] = {address, NULL};
    if (address == NULL) {
        hosts[0] = "::";
        hosts[1] = "0.0.0.0";
    }
    char service[8];
    snprintf(service, sizeof(service), "%u", (unsigned)port);
    int last_errno = EADDRNOTAVAIL;
    const char *what = "getaddrinfo";
    for (size_t i = 0; i < 2 && hosts[i] != NULL; i++) {
        struct addrinfo hints = {.ai_family = AF_UNSPEC,
                                 .ai_socktype = SOCK_STREAM,
                                 .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV};
        struct addrinfo *ai = NULL;
        int gai = getaddrinfo(hosts[i], service, &hints, &ai);
        if (gai != 0) {
            snprintf(err, err_len, "%s: %s", hosts[i], gai_strerror(gai));
            return -1;
        }
        int fd =
            socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        int one = 1, zero = 0;
        if (fd >= 0 && (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
                        (ai->ai_family == AF_INET6 && address == NULL &&
                         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) < 0)))
            what = "setsockopt";
        else if (fd >= 0 && bind(fd, ai->ai_addr, ai->ai_addrlen) < 0)
            what = "bind";
        else if (fd >= 0 && listen(fd, LISTEN_BACKLOG) < 0)
            what = "listen";
        else if (fd >= 0) {
            freeaddrinfo(ai);
            return fd;
        } else
            what = "socket";
        last_errno = errno;
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        if (address != NULL || last_errno != EAFNOSUPPORT)
            break; /* only "no IPv6 here" falls back to 0.0.0.0 */
    }
    snprintf(err, err_len, "%s %s port %u: %s", what, address ? address : "*", (unsigned)port,
             strerror(last_errno));
    return -1;
}

static int make_static_responses(struct metrics *m)
{
    static const char not_found[] = "not found: the metrics are at /metrics\n";
    static const char not_allowed[] = "only GET /metrics\n";
    m->not_found = MHD_create_response_from_buffer(sizeof(not_found) - 1, (void *)not_found,
                                                   MHD_RESPMEM_PERSISTENT);
    m->not_allowed = MHD_create_response_from_buffer(sizeof(not_allowed) - 1, (void *)not_allowed,
                                                     MHD_RESPMEM_PERSISTENT);
    if (m->not_found == NULL || m->not_allowed == NULL ||
        MHD_add_response_header(m->not_allowed, MHD_HTTP_HEADER_ALLOW, "GET, HEAD") != MHD_YES)
        return -1;
    return 0;
}

/* Starts MHD on fd (which it then owns, also on failure). */
static int start_daemon(struct metrics *m, const struct metrics_options *opts, int fd)
{
    unsigned max_conns =
        opts->max_connections ? opts->max_connections : METRICS_DEFAULT_MAX_CONNECTIONS;
    unsigned timeout_s = opts->timeout_s ? opts->timeout_s : METRICS_DEFAULT_TIMEOUT_S;
    /* MHD_USE_EPOLL without MHD_USE_INTERNAL_POLLING_THREAD: no thread, the
     * caller runs it (the logger goes first so every message reaches it). */
    m->daemon = MHD_start_daemon(
        MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, m, MHD_OPTION_EXTERNAL_LOGGER,
        on_mhd_log, NULL, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd, MHD_OPTION_CONNECTION_LIMIT,
        max_conns, MHD_OPTION_CONNECTION_TIMEOUT, timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)CONNECTION_MEMORY_BYTES, MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)LISTEN_BACKLOG,
        MHD_OPTION_END);
    if (m->daemon == NULL) {
        close(fd);
        return -1;
    }
    return 0;
}

int metrics_new(struct ev_loop *loop, const struct metrics_options *opts, struct metrics **out,
                char *err, size_t err_len)
{
    *out = NULL;
    struct metrics *m = calloc(1, sizeof(*m));
    if (m == NULL || make_static_responses(m) < 0) {
        snprintf(err, err_len, "out of memory");
        metrics_free(m);
        return -1;
    }
    *m = (struct metrics){.loop = loop,
                          .fill = opts->fill,
                          .fill_arg = opts->fill_arg,
                          .not_found = m->not_found,
                          .not_allowed = m->not_allowed};
    int fd = listen_on(opts->address, opts->port, err, err_len);
    if (fd < 0 || start_daemon(m, opts, fd) < 0) {
        if (fd >= 0)
            snprintf(err, err_len, "cannot start the HTTP server (libmicrohttpd)");
        metrics_free(m);
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(m->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    if (info == NULL) {
        snprintf(err, err_len, "libmicrohttpd has no epoll descriptor");
        metrics_free(m);
        return -1;
    }
    ev_io_init(&m->io, on_epoll, info->epoll_fd, EV_READ);
    ev_io_start(loop, &m->io);
    ev_init(&m->timer, on_timer);
    arm_timer(m);
    *out = m;
    return 0;
}

void metrics_free(struct metrics *m)
{
    if (m == NULL)
        return;
    if (m->daemon != NULL) {
        ev_io_stop(m->loop, &m->io);
        ev_timer_stop(m->loop, &m->timer);
        MHD_stop_daemon(m->daemon); /* closes the listening socket and connections */
    }
    if (m->not_found != NULL)
        MHD_destroy_response(m->not_found);
    if (m->not_allowed != NULL)
        MHD_destroy_response(m->not_allowed);
    free(m);
}
