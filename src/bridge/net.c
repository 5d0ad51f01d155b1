/*
 * net.c - a bridge's transport: resolving the remote's name without
 * blocking the loop (getaddrinfo_a, polled from the bridge's timer), a
 * non-blocking connect to each address it resolves to in turn, the TLS
 * client handshake (OpenSSL: the chain checked against bridge_cafile /
 * bridge_capath, the host name against the certificate unless
 * bridge_insecure), and moving bytes: an output buffer that only grows at
 * its end (so a TLS write can be retried with the same bytes) and the read
 * loop that hands complete packets to proto.c.
 *
 * Every failure ends in bridge_fail(), which closes and schedules the next
 * attempt. Nothing here blocks.
 * Not for: MQTT (proto.c) or when to reconnect (bridge.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "bridge_internal.h"
#include "log.h"

#define RESOLVE_POLL_S 0.05

static void on_io(struct ev_loop *loop, ev_io *w, int revents);

/* ---- TLS context ---- */

static const char *ssl_reason(void)
{
    unsigned long e = ERR_get_error();
    while (ERR_get_error() != 0)
        ;
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r ? r : "unknown error";
}

static int no_passphrase(char *buf, int size, int rwflag, void *arg)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)arg;
    return 0; /* never prompt: an encrypted key fails to load */
}

/* A file the TLS context needs: readable (the error names the directive
 * and says why), then loaded. */
static int readable(const char *what, const char *path, char *why, size_t why_len)
{
    if (path == NULL || access(path, R_OK) == 0)
        return 0;
    snprintf(why, why_len, "%s %s: %s", what, path, strerror(errno));
    return -1;
}

static int load_tls_files(SSL_CTX *ctx, const struct config_bridge *c, char *why, size_t why_len)
{
    if (readable("bridge_cafile", c->cafile, why, why_len) != 0 ||
        readable("bridge_capath", c->capath, why, why_len) != 0 ||
        readable("bridge_certfile", c->certfile, why, why_len) != 0 ||
        readable("bridge_keyfile", c->keyfile, why, why_len) != 0)
        return -1;
    const char *what = "bridge_cafile/bridge_capath";
    if (SSL_CTX_load_verify_locations(ctx, c->cafile, c->capath) == 1) {
        what = "bridge_certfile";
        if (c->certfile == NULL)
            return 0;
        if (SSL_CTX_use_certificate_chain_file(ctx, c->certfile) == 1) {
            what = "bridge_keyfile";
            if (SSL_CTX_use_PrivateKey_file(ctx, c->keyfile, SSL_FILETYPE_PEM) == 1) {
                what = "bridge_keyfile does not match bridge_certfile";
                if (SSL_CTX_check_private_key(ctx) == 1)
                    return 0;
            }
        }
    }
    snprintf(why, why_len, "%s: %s", what, ssl_reason());
    return -1;
}

int net_tls_ctx_new(struct bridge *b, char *err, size_t err_len)
{
    const struct config_bridge *c = b->cfg;
    if (c->cafile == NULL && c->capath == NULL)
        return 0;
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    char why[256] = "";
    if (ctx == NULL || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
        snprintf(why, sizeof(why), "TLS: %s", ssl_reason());
    else
        SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    if (why[0] != '\0' || load_tls_files(ctx, c, why, sizeof(why)) != 0) {
        snprintf(err, err_len, "%s: connection %s: %s", c->where, c->name, why);
        SSL_CTX_free(ctx);
        return -1;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    b->tls_ctx = ctx;
    return 0;
}

void net_tls_ctx_free(struct bridge *b)
{
    SSL_CTX_free(b->tls_ctx);
    b->tls_ctx = NULL;
}

/* ---- closing ---- */

void net_forget_resolve(struct bridge *b)
{
    if (!b->is_resolving)
        return;
    /* A request that cannot be canceled is still writing into b->gai: wait
     * for it (it ends within the resolver's own timeout). */
    if (gai_cancel(&b->gai) == EAI_NOTCANCELED) {
        const struct gaicb *list[1] = {&b->gai};
        while (gai_error(&b->gai) == EAI_INPROGRESS)
            gai_suspend(list, 1, NULL);
    }
    if (b->gai.ar_result)
        freeaddrinfo(b->gai.ar_result);
    free((void *)b->gai.ar_name);
    free((void *)b->gai.ar_service);
    memset(&b->gai, 0, sizeof(b->gai));
    b->is_resolving = false;
}

static void close_socket(struct bridge *b)
{
    ev_io_stop(b->set->loop, &b->rio);
    ev_io_stop(b->set->loop, &b->wio);
    if (b->ssl != NULL) {
        ERR_clear_error();
        if (b->state == BRIDGE_CONNACK || b->state == BRIDGE_ONLINE)
            (void)SSL_shutdown(b->ssl); /* one non-blocking close_notify; not awaited */
        ERR_clear_error();
        SSL_free(b->ssl);
        b->ssl = NULL;
    }
    if (b->fd >= 0)
        close(b->fd);
    b->fd = -1;
}

void net_close(struct bridge *b)
{
    close_socket(b);
    net_forget_resolve(b);
    if (b->addrs)
        freeaddrinfo(b->addrs);
    b->addrs = b->addr_next = NULL;
    b->in_len = 0;
    b->out_off = b->out_len = 0;
    b->read_wants_write = b->write_wants_read = false;
    b->handshake_wants_write = b->is_write_blocked = false;
    b->write_errno = 0;
}

/* ---- resolving and connecting ---- */

static void set_peer(struct bridge *b, const struct config_bridge_address *a)
{
    bool v6 = strchr(a->host, ':') != NULL;
    snprintf(b->peer, sizeof(b->peer), "%s%s%s:%u", v6 ? "[" : "", a->host, v6 ? "]" : "",
             (unsigned)a->port);
}

static void connect_next(struct bridge *b);

/* Resolved: try the addresses in turn. Takes ownership of list. */
static void resolved(struct bridge *b, struct addrinfo *list)
{
    b->addrs = b->addr_next = list;
    b->state = BRIDGE_CONNECTING;
    connect_next(b);
}

static struct addrinfo hints_for(int flags)
{
    return (struct addrinfo){.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = flags};
}

/* A name goes to getaddrinfo_a, polled from the timer; a numeric address is
 * resolved at once. */
static void resolve(struct bridge *b, const struct config_bridge_address *a)
{
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)a->port);
    struct addrinfo hints = hints_for(AI_NUMERICHOST | AI_NUMERICSERV), *list = NULL;
    if (getaddrinfo(a->host, port, &hints, &list) == 0) {
        resolved(b, list);
        return;
    }
    static struct addrinfo name_hints; /* getaddrinfo_a reads it while it runs */
    name_hints = hints_for(AI_NUMERICSERV);
    b->gai = (struct gaicb){
        .ar_name = strdup(a->host), .ar_service = strdup(port), .ar_request = &name_hints};
    struct gaicb *reqs[1] = {&b->gai};
    struct sigevent none = {.sigev_notify = SIGEV_NONE};
    if (!b->gai.ar_name || !b->gai.ar_service || getaddrinfo_a(GAI_NOWAIT, reqs, 1, &none) != 0) {
        free((void *)b->gai.ar_name);
        free((void *)b->gai.ar_service);
        memset(&b->gai, 0, sizeof(b->gai));
        bridge_fail(b, "cannot start resolving %s", a->host);
        return;
    }
    b->is_resolving = true;
    b->state = BRIDGE_RESOLVING;
    ev_timer_set(&b->timer, RESOLVE_POLL_S, 0.);
    ev_timer_start(b->set->loop, &b->timer);
}

void net_poll_resolve(struct bridge *b)
{
    int rc = gai_error(&b->gai);
    if (rc == EAI_INPROGRESS) {
        if (ev_now(b->set->loop) >= b->deadline) {
            bridge_fail(b, "resolving %s timed out", b->peer);
            return;
        }
        ev_timer_set(&b->timer, RESOLVE_POLL_S, 0.);
        ev_timer_start(b->set->loop, &b->timer);
        return;
    }
    struct addrinfo *list = b->gai.ar_result;
    b->gai.ar_result = NULL;
    net_forget_resolve(b);
    if (rc != 0) {
        bridge_fail(b, "cannot resolve %s: %s", b->peer, gai_strerror(rc));
        return;
    }
    resolved(b, list);
}

void net_start_attempt(struct bridge *b)
{
    const struct config_bridge *c = b->cfg;
    const struct config_bridge_address *a = &c->addresses[b->address_next % c->address_count];
    b->address_next++;
    set_peer(b, a);
    double timeout_s = c->keepalive_s < 30 ? c->keepalive_s : 30;
    b->deadline = ev_now(b->set->loop) + timeout_s;
    log_notice("bridge %s: connecting to %s%s", c->name, b->peer, b->tls_ctx ? " (TLS)" : "");
    resolve(b, a);
}

static int open_socket(const struct addrinfo *ai)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return -1;
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS)
        return fd;
    int e = errno;
    close(fd);
    errno = e;
    return -1;
}

/* The next resolved address, or bridge_fail() when none is left. */
static void connect_next(struct bridge *b)
{
    int last_errno = ECONNREFUSED;
    while (b->addr_next != NULL) {
        const struct addrinfo *ai = b->addr_next;
        b->addr_next = ai->ai_next;
        int fd = open_socket(ai);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        b->fd = fd;
        ev_io_set(&b->rio, fd, EV_READ);
        ev_io_set(&b->wio, fd, EV_WRITE);
        ev_io_start(b->set->loop, &b->wio); /* writable: connected (or failed) */
        ev_timer_set(&b->timer, b->deadline - ev_now(b->set->loop), 0.);
        ev_timer_start(b->set->loop, &b->timer);
        return;
    }
    bridge_fail(b, "cannot connect to %s: %s", b->peer, strerror(last_errno));
}

static void start_tls(struct bridge *b)
{
    const struct config_bridge_address *a =
        &b->cfg->addresses[(b->address_next - 1) % b->cfg->address_count];
    ERR_clear_error();
    b->ssl = SSL_new(b->tls_ctx);
    if (b->ssl == NULL || SSL_set_fd(b->ssl, b->fd) != 1) {
        bridge_fail(b, "TLS: %s", ssl_reason());
        return;
    }
    unsigned char ip[sizeof(struct in6_addr)];
    bool is_ip = inet_pton(AF_INET, a->host, ip) == 1 || inet_pton(AF_INET6, a->host, ip) == 1;
    if (!is_ip)
        SSL_set_tlsext_host_name(b->ssl, a->host); /* SNI */
    if (!b->cfg->insecure && (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(b->ssl), a->host)
                                    : SSL_set1_host(b->ssl, a->host)) != 1) {
        bridge_fail(b, "TLS: cannot set the host name to verify: %s", ssl_reason());
        return;
    }
    SSL_set_connect_state(b->ssl);
    b->state = BRIDGE_TLS;
}

/* writable during CONNECTING: the connect finished, one way or the other. */
static void connect_done(struct bridge *b)
{
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    if (getsockopt(b->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
        soerr = errno;
    if (soerr != 0) {
        log_debug("bridge %s: %s: %s", b->cfg->name, b->peer, strerror(soerr));
        close_socket(b);
        connect_next(b);
        return;
    }
    if (b->addrs)
        freeaddrinfo(b->addrs);
    b->addrs = b->addr_next = NULL;
    ev_io_stop(b->set->loop, &b->wio);
    ev_io_start(b->set->loop, &b->rio);
    if (b->tls_ctx) {
        start_tls(b);
        if (b->state == BRIDGE_TLS)
            on_io(b->set->loop, &b->wio, EV_WRITE); /* first handshake step */
        return;
    }
    bridge_transport_ready(b);
}

/* ---- TLS handshake ---- */

static void handshake(struct bridge *b)
{
    ERR_clear_error();
    int rc = SSL_do_handshake(b->ssl);
    if (rc == 1) {
        b->handshake_wants_write = false;
        ev_io_stop(b->set->loop, &b->wio);
        bridge_transport_ready(b);
        return;
    }
    int e = SSL_get_error(b->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        b->handshake_wants_write = e == SSL_ERROR_WANT_WRITE;
        if (b->handshake_wants_write)
            ev_io_start(b->set->loop, &b->wio);
        else
            ev_io_stop(b->set->loop, &b->wio);
        return;
    }
    long verify = SSL_get_verify_result(b->ssl);
    const char *why = ssl_reason();
    if (verify != X509_V_OK)
        bridge_fail(b, "TLS handshake with %s failed: %s (%s)", b->peer, why,
                    X509_verify_cert_error_string(verify));
    else
        bridge_fail(b, "TLS handshake with %s failed: %s", b->peer,
                    e == SSL_ERROR_SYSCALL ? "connection closed" : why);
}

/* ---- moving bytes ---- */

/* read(2) or SSL_read: > 0 bytes, 0 at the end of the stream, -1 with errno
 * (EAGAIN: later). */
static ssize_t transport_read(struct bridge *b, void *buf, size_t len)
{
    if (b->ssl == NULL)
        return read(b->fd, buf, len);
    ERR_clear_error();
    int n = SSL_read(b->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    if (n > 0)
        return n;
    int e = SSL_get_error(b->ssl, n);
    b->read_wants_write = e == SSL_ERROR_WANT_WRITE;
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        errno = EAGAIN;
        return -1;
    }
    if (e == SSL_ERROR_ZERO_RETURN)
        return 0;
    errno = e == SSL_ERROR_SYSCALL && errno != 0 ? errno : EPROTO;
    return -1;
}

static ssize_t transport_write(struct bridge *b, const void *buf, size_t len)
{
    if (b->ssl == NULL)
        return send(b->fd, buf, len, MSG_NOSIGNAL);
    ERR_clear_error();
    int n = SSL_write(b->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    if (n > 0)
        return n;
    int e = SSL_get_error(b->ssl, n);
    b->write_wants_read = e == SSL_ERROR_WANT_READ;
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        errno = EAGAIN;
        return -1;
    }
    errno = e == SSL_ERROR_SYSCALL && errno != 0 ? errno : EPIPE;
    return -1;
}

size_t net_output_pending(const struct bridge *b)
{
    return b->out_len - b->out_off;
}

/* Writes what the socket takes. Returns 0, or -1 when the write failed
 * (b->write_errno; the I/O callback ends the connection). */
static int flush(struct bridge *b)
{
    if (b->fd < 0 || b->state < BRIDGE_CONNACK)
        return 0; /* CONNECT is the first thing written, once the transport is up */
    while (b->out_off < b->out_len) {
        ssize_t n = transport_write(b, b->out + b->out_off, b->out_len - b->out_off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            b->is_write_blocked = true;
            if (!b->write_wants_read)
                ev_io_start(b->set->loop, &b->wio);
            return 0;
        }
        if (n <= 0) {
            /* Ended from the I/O callback, never from inside the caller (a
             * pump walking the queue, a completion). */
            b->write_errno = errno != 0 ? errno : EPIPE;
            b->is_write_blocked = true;
            ev_feed_event(b->set->loop, &b->wio, EV_WRITE);
            return -1;
        }
        b->out_off += (size_t)n;
    }
    b->out_off = b->out_len = 0;
    b->is_write_blocked = false;
    ev_io_stop(b->set->loop, &b->wio);
    return 0;
}

uint8_t *net_output_space(struct bridge *b, size_t len)
{
    if (b->out_off > 0 && b->out_off == b->out_len && !b->is_write_blocked)
        b->out_off = b->out_len = 0;
    if (len > SIZE_MAX - b->out_len)
        return NULL;
    size_t need = b->out_len + len;
    if (need > b->out_cap) {
        size_t cap = b->out_cap ? b->out_cap : 4096;
        while (cap < need)
            cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        uint8_t *out = realloc(b->out, cap);
        if (!out)
            return NULL;
        b->out = out;
        b->out_cap = cap;
    }
    return b->out + b->out_len;
}

void net_commit_output(struct bridge *b, size_t len)
{
    b->out_len += len;
    if (!b->is_write_blocked)
        (void)flush(b);
}

int net_send(struct bridge *b, const void *data, size_t len)
{
    uint8_t *p = net_output_space(b, len);
    if (!p)
        return -ENOMEM;
    memcpy(p, data, len);
    net_commit_output(b, len);
    return 0;
}

/* Makes room for the packet being received (at most the packet limit). */
static int reserve_input(struct bridge *b, size_t need)
{
    if (need <= b->in_cap)
        return 0;
    size_t cap = b->in_cap ? b->in_cap : BRIDGE_READ_CHUNK;
    while (cap < need)
        cap *= 2;
    uint8_t *in = realloc(b->in, cap);
    if (!in)
        return -1;
    b->in = in;
    b->in_cap = cap;
    return 0;
}

/* Decodes and handles every complete packet in the input. Returns 0, or
 * -1 after bridge_fail(). */
static int parse_input(struct bridge *b)
{
    size_t off = 0;
    uint64_t gen = b->conn_gen;
    while (off < b->in_len) {
        struct mqtt_frame frame;
        int rc = mqtt_frame(b->in + off, b->in_len - off, b->set->max_packet_size, &frame);
        if (rc == MQTT_NEED_MORE) {
            if (frame.total_len > 0 && reserve_input(b, frame.total_len) != 0) {
                bridge_fail(b, "out of memory for a packet of %zu bytes", frame.total_len);
                return -1;
            }
            break;
        }
        struct mqtt_packet pkt;
        if (rc == MQTT_OK)
            rc = mqtt_decode_for(&frame, b->cfg->protocol_level, &pkt);
        if (rc != MQTT_OK) {
            bridge_fail(b, "malformed packet from %s: %s", b->peer, mqtt_strerror(rc));
            return -1;
        }
        if (proto_handle(b, &pkt) != 0 || b->conn_gen != gen || b->fd < 0)
            return -1;
        off += frame.total_len;
    }
    memmove(b->in, b->in + off, b->in_len - off);
    b->in_len -= off;
    return 0;
}

static void read_input(struct bridge *b)
{
    for (int rounds = 0; rounds < 64; rounds++) {
        if (reserve_input(b, b->in_len + BRIDGE_READ_CHUNK) != 0) {
            bridge_fail(b, "out of memory reading from %s", b->peer);
            return;
        }
        ssize_t n = transport_read(b, b->in + b->in_len, BRIDGE_READ_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0) {
            b->is_closed_by_peer = n == 0 || errno == ECONNRESET;
            bridge_fail(b, "%s closed the connection%s%s", b->peer, n < 0 ? ": " : "",
                        n < 0 ? strerror(errno) : "");
            return;
        }
        b->in_len += (size_t)n;
        if (parse_input(b) != 0)
            return;
        if ((size_t)n < BRIDGE_READ_CHUNK && (b->ssl == NULL || SSL_pending(b->ssl) == 0))
            break;
    }
    if (b->read_wants_write)
        ev_io_start(b->set->loop, &b->wio);
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    struct bridge *b = (revents & EV_READ) ? container_of(w, struct bridge, rio)
                                           : container_of(w, struct bridge, wio);
    uint64_t gen = b->conn_gen;
    if (b->write_errno != 0) {
        bridge_fail(b, "write to %s: %s", b->peer, strerror(b->write_errno));
        return;
    }
    switch (b->state) {
    case BRIDGE_CONNECTING:
        if (revents & EV_WRITE)
            connect_done(b);
        return;
    case BRIDGE_TLS:
        handshake(b);
        return;
    case BRIDGE_CONNACK:
    case BRIDGE_ONLINE:
        break;
    default:
        return;
    }
    if (((revents & EV_WRITE) || b->write_wants_read) && flush(b) != 0)
        return; /* fed back to this callback, which ends the connection */
    if ((revents & EV_READ) || b->read_wants_write) {
        b->read_wants_write = false;
        read_input(b);
        if (gen == b->conn_gen && b->state == BRIDGE_ONLINE && !b->is_write_blocked)
            proto_pump(b); /* acks may have freed the window */
    } else if (gen == b->conn_gen && b->state == BRIDGE_ONLINE && !b->is_write_blocked) {
        proto_pump(b); /* the output drained */
    }
}

void net_init_watchers(struct bridge *b)
{
    ev_init(&b->rio, on_io);
    ev_init(&b->wio, on_io);
}
