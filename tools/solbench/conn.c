/*
 * conn.c - one client connection of solbench: non-blocking connect, the
 * CONNECT/SUBSCRIBE handshake, publishing inside a window, acknowledging
 * deliveries (PUBACK; PUBREC -> PUBREL -> PUBCOMP) and recording what a
 * subscriber receives.
 *
 * Every socket is non-blocking and registered with the bench's epoll set,
 * level-triggered; EPOLLOUT is armed only while there is something to write.
 * Not for: deciding when phases start or end (loop.c) or printing (report.c).
 */
#include "solbench.h"

#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "mqtt.h"
#include "mqtt_topic.h"

#define BUF_INITIAL_CAP   1024u
#define BUF_MAX_CAP       (64u << 20)
#define READ_CHUNK        (64u << 10)
#define READ_CHUNK_SMALL  512u
#define READ_BUDGET       (1u << 20) /* bytes read per wakeup, for fairness */
#define OUT_SOFT_CAP      (1u << 20) /* QoS>0: stop generating above this many unsent bytes */
#define PUMP_BATCH        64u        /* messages generated per fill */
#define PUMP_ROUNDS       4u         /* fill+write rounds per wakeup */
#define PUMP_ROUNDS_PACED 64u        /* --rate: catch up with the schedule within one tick */
#define ERRORS_LOGGED_MAX 10u

static size_t buf_pending(const struct buf *bf)
{
    return bf->tail - bf->head;
}

/* Makes room for extra bytes at the tail; returns 0 or -ENOMEM. */
static int buf_reserve(struct buf *bf, size_t extra)
{
    if (bf->cap - bf->tail >= extra)
        return 0;
    if (bf->head > 0) {
        memmove(bf->data, bf->data + bf->head, buf_pending(bf));
        bf->tail -= bf->head;
        bf->head = 0;
        if (bf->cap - bf->tail >= extra)
            return 0;
    }
    size_t cap = bf->cap ? bf->cap : BUF_INITIAL_CAP;
    while (cap - bf->tail < extra) {
        if (cap >= BUF_MAX_CAP)
            return -ENOMEM;
        cap *= 2;
    }
    uint8_t *p = realloc(bf->data, cap);
    if (p == NULL)
        return -ENOMEM;
    bf->data = p;
    bf->cap = cap;
    return 0;
}

static void log_error(struct bench *b, const struct conn *c, const char *why)
{
    static const char *const role_names[] = {"idle", "sub", "pub"};
    if (b->errors_logged++ < ERRORS_LOGGED_MAX)
        fprintf(stderr, "solbench: %s-%u: closing: %s\n", role_names[c->role], c->index, why);
}

/* Closes the socket; returns the state it was in. */
static enum conn_state close_fd(struct bench *b, struct conn *c)
{
    enum conn_state was = c->state;
    if (was == CONN_CONNECTING || was == CONN_WAIT_CONNACK || was == CONN_WAIT_SUBACK)
        b->handshaking--;
    if (c->role == ROLE_IDLE && was != CONN_READY && was != CONN_CLOSED)
        b->settled_idle++;
    if (c->fd >= 0 && close(c->fd) != 0 && b->errors_logged++ < ERRORS_LOGGED_MAX)
        perror("solbench: close");
    c->fd = -1;
    c->state = CONN_CLOSED;
    return was;
}

void conn_close(struct bench *b, struct conn *c, const char *why)
{
    if (c->state == CONN_CLOSED)
        return;
    log_error(b, c, why);
    b->r.errors++;
    close_fd(b, c);
    if (c->role != ROLE_IDLE && b->phase <= PHASE_SETUP) {
        snprintf(b->r.failure, sizeof(b->r.failure), "a %s connection failed during setup: %s",
                 c->role == ROLE_PUB ? "publisher" : "subscriber", why);
        b->phase = PHASE_FAILED;
    }
}

/* Appends an encoded packet to the output queue; closes c on failure. */
static int out_packet(struct bench *b, struct conn *c, const struct mqtt_packet *pkt)
{
    size_t n = mqtt_encoded_size(pkt);
    size_t written = 0;
    int rc = n == 0 ? MQTT_ERR_INVALID_ARGUMENT : buf_reserve(&c->out, n);
    if (rc == 0)
        rc = mqtt_encode(pkt, c->out.data + c->out.tail, c->out.cap - c->out.tail, &written);
    if (rc != 0) {
        conn_close(b, c, rc == -ENOMEM ? "out of memory" : mqtt_strerror(rc));
        return -1;
    }
    c->out.tail += written;
    return 0;
}

static int out_ack(struct bench *b, struct conn *c, uint8_t type, uint16_t packet_id)
{
    struct mqtt_packet pkt = {.type = type, .u.ack.packet_id = packet_id};
    return out_packet(b, c, &pkt);
}

static void send_connect(struct bench *b, struct conn *c)
{
    static const char *const role_names[] = {"idle", "sub", "pub"};
    char client_id[128];
    snprintf(client_id, sizeof(client_id), "%s%s-%u", b->o.prefix, role_names[c->role], c->index);
    struct mqtt_packet pkt = {.type = MQTT_CONNECT};
    struct mqtt_connect *cn = &pkt.u.connect;
    cn->protocol_name = mqtt_bytes_from_cstr("MQTT");
    cn->protocol_level = MQTT_PROTOCOL_V311;
    /* Only subscribers keep sessions: that is what --clean 0 measures. */
    cn->clean_session = c->role == ROLE_SUB ? b->o.is_clean : true;
    cn->keepalive_s = 0; /* runs are bounded; no PINGREQ traffic in the figures */
    cn->client_id = mqtt_bytes_from_cstr(client_id);
    if (out_packet(b, c, &pkt) == 0)
        c->state = CONN_WAIT_CONNACK;
}

/*
 * Binds c's socket to its source address (round-robin over --sources by
 * connection number). IP_BIND_ADDRESS_NO_PORT leaves the port to connect(),
 * which only needs the whole (source, port, broker) 4-tuple to be unique, so
 * each source address adds a full ephemeral port range. Returns 0 or -errno.
 */
static int bind_source(const struct bench *b, const struct conn *c)
{
    uint32_t n = (uint32_t)(c - b->conns);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(b->source_base + n % b->o.sources);
    int one = 1;
#ifdef IP_BIND_ADDRESS_NO_PORT
    /* Without it bind() picks the port; still correct, but ports are then per address only. */
    (void)setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
#else
    (void)one;
#endif
    return bind(c->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 0 : -errno;
}

int conn_start(struct bench *b, struct conn *c)
{
    c->fd = socket(b->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        c->state = CONN_WAIT_CONNACK; /* counted as a handshake that failed */
        b->handshaking++;
        conn_close(b, c, strerror(errno));
        return -1;
    }
    c->state = CONN_CONNECTING;
    b->handshaking++;
    int one = 1;
    const char *fail = NULL;
    if (setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
        fail = "setsockopt(TCP_NODELAY)";
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    if (fail == NULL && b->o.source != NULL && bind_source(b, c) != 0)
        fail = "bind(--source)";
    if (fail == NULL && epoll_ctl(b->epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0)
        fail = "epoll_ctl(ADD)";
    c->events = ev.events;
    if (fail == NULL && connect(c->fd, (struct sockaddr *)&b->addr, b->addr_len) != 0 &&
        errno != EINPROGRESS)
        fail = "connect";
    if (fail != NULL) {
        char why[160];
        snprintf(why, sizeof(why), "%s: %s", fail, strerror(errno));
        conn_close(b, c, why);
        return -1;
    }
    return 0;
}

static void on_connected(struct bench *b, struct conn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err != 0) {
        char why[160];
        snprintf(why, sizeof(why), "connect: %s", strerror(err));
        conn_close(b, c, why);
        return;
    }
    send_connect(b, c);
}

static void conn_ready(struct bench *b, struct conn *c)
{
    c->state = CONN_READY;
    b->handshaking--;
    b->ready[c->role]++;
    if (c->role == ROLE_IDLE) {
        b->settled_idle++;
        b->r.idle_connected++;
        b->r.t_idle_done_ns = bench_now_ns();
    }
}

static void send_subscribe(struct bench *b, struct conn *c)
{
    struct mqtt_topic_entry entry = {.filter = mqtt_bytes_from_cstr(b->o.filter), .qos = b->o.qos};
    struct mqtt_packet pkt = {.type = MQTT_SUBSCRIBE};
    pkt.u.subscribe.packet_id = 1;
    pkt.u.subscribe.count = 1;
    pkt.u.subscribe.entries = &entry;
    if (out_packet(b, c, &pkt) == 0)
        c->state = CONN_WAIT_SUBACK;
}

static void on_connack(struct bench *b, struct conn *c, const struct mqtt_connack *ack)
{
    if (c->state != CONN_WAIT_CONNACK) {
        conn_close(b, c, "unexpected CONNACK");
        return;
    }
    if (ack->return_code != MQTT_CONNACK_ACCEPTED) {
        char why[64];
        snprintf(why, sizeof(why), "CONNACK refused with code %u", ack->return_code);
        conn_close(b, c, why);
        return;
    }
    if (c->role == ROLE_SUB)
        send_subscribe(b, c);
    else
        conn_ready(b, c);
}

static void on_suback(struct bench *b, struct conn *c, const struct mqtt_suback *ack)
{
    if (c->state != CONN_WAIT_SUBACK || ack->return_codes.len != 1) {
        conn_close(b, c, "unexpected SUBACK");
        return;
    }
    if (ack->return_codes.data[0] == MQTT_SUBACK_FAILURE) {
        conn_close(b, c, "subscription refused (SUBACK 0x80)");
        return;
    }
    conn_ready(b, c);
}

/* Counts a delivery once per (publisher, sequence) and feeds the latency histogram. */
static void record_delivery(struct bench *b, struct conn *c, struct mqtt_bytes payload)
{
    uint64_t now = bench_now_ns();
    uint32_t pub = 0;
    uint64_t seq = 0;
    uint64_t t_ns = 0;
    if (payload.len < BENCH_STAMP_LEN) {
        b->r.stale++;
        return;
    }
    stamp_read(payload.data, &pub, &seq, &t_ns);
    /* Stamps from an earlier run (a persistent session's queue) or another sender. */
    if (pub >= b->o.pubs || t_ns < b->r.t_start_ns || t_ns > now ||
        seq >= b->conns[b->nconns - b->o.pubs + pub].next_seq) {
        b->r.stale++;
        return;
    }
    int verdict = stream_record(&c->streams[pub], seq);
    if (verdict < 0) {
        snprintf(b->r.failure, sizeof(b->r.failure), "out of memory tracking sequences");
        b->phase = PHASE_FAILED;
        return;
    }
    if (verdict == STREAM_DUP)
        return;
    c->received++;
    b->r.received++;
    b->r.t_last_rx_ns = now;
    hist_add(&b->lat, now - t_ns);
}

static void on_publish(struct bench *b, struct conn *c, const struct mqtt_publish *p)
{
    if (c->role != ROLE_SUB || (c->state != CONN_READY && c->state != CONN_WAIT_SUBACK)) {
        conn_close(b, c, "unexpected PUBLISH");
        return;
    }
    record_delivery(b, c, p->payload);
    if (p->qos == 1)
        out_ack(b, c, MQTT_PUBACK, p->packet_id);
    else if (p->qos == 2)
        out_ack(b, c, MQTT_PUBREC, p->packet_id);
}

static bool pid_is_used(const struct conn *c, uint16_t pid)
{
    return (c->pid_used[pid / 8] >> (pid % 8)) & 1u;
}

/* Takes a free packet id; the caller guarantees fewer than 65535 are in use. */
static uint16_t pid_take(struct conn *c)
{
    uint16_t pid = c->next_pid;
    while (pid == 0 || pid_is_used(c, pid))
        pid++;
    c->pid_used[pid / 8] |= (uint8_t)(1u << (pid % 8));
    c->next_pid = (uint16_t)(pid + 1);
    return pid;
}

/* PUBACK (QoS 1) or PUBCOMP (QoS 2): the publish is complete. */
static void on_pub_done(struct bench *b, struct conn *c, uint8_t type, uint16_t pid)
{
    uint8_t want = b->o.qos == 1 ? MQTT_PUBACK : MQTT_PUBCOMP;
    if (c->role != ROLE_PUB || b->o.qos == 0 || type != want) {
        conn_close(b, c, type == MQTT_PUBACK ? "unexpected PUBACK" : "unexpected PUBCOMP");
        return;
    }
    if (!pid_is_used(c, pid)) {
        b->r.unexpected_acks++;
        return;
    }
    c->pid_used[pid / 8] &= (uint8_t) ~(1u << (pid % 8));
    c->inflight--;
    c->acked++;
    b->r.acked++;
}

static void on_pubrec(struct bench *b, struct conn *c, uint16_t pid)
{
    if (c->role != ROLE_PUB || b->o.qos != 2) {
        conn_close(b, c, "unexpected PUBREC");
        return;
    }
    if (!pid_is_used(c, pid)) {
        b->r.unexpected_acks++;
        return;
    }
    out_ack(b, c, MQTT_PUBREL, pid);
}

static void on_pubrel(struct bench *b, struct conn *c, uint16_t pid)
{
    if (c->role != ROLE_SUB || c->state != CONN_READY) {
        conn_close(b, c, "unexpected PUBREL");
        return;
    }
    out_ack(b, c, MQTT_PUBCOMP, pid);
}

static void handle_packet(struct bench *b, struct conn *c, const struct mqtt_packet *pkt)
{
    switch (pkt->type) {
    case MQTT_CONNACK:
        on_connack(b, c, &pkt->u.connack);
        break;
    case MQTT_SUBACK:
        on_suback(b, c, &pkt->u.suback);
        break;
    case MQTT_PUBLISH:
        on_publish(b, c, &pkt->u.publish);
        break;
    case MQTT_PUBACK:
    case MQTT_PUBCOMP:
        on_pub_done(b, c, pkt->type, pkt->u.ack.packet_id);
        break;
    case MQTT_PUBREC:
        on_pubrec(b, c, pkt->u.ack.packet_id);
        break;
    case MQTT_PUBREL:
        on_pubrel(b, c, pkt->u.ack.packet_id);
        break;
    case MQTT_PINGRESP:
        break;
    default:
        conn_close(b, c, "unexpected packet type from the broker");
        break;
    }
}

static void decode_all(struct bench *b, struct conn *c)
{
    while (c->state != CONN_CLOSED && buf_pending(&c->in) > 0) {
        struct mqtt_packet pkt;
        size_t used = 0;
        int rc = mqtt_decode_stream(c->in.data + c->in.head, buf_pending(&c->in), 0, &pkt, &used);
        if (rc == MQTT_NEED_MORE)
            break;
        if (rc != MQTT_OK) {
            conn_close(b, c, mqtt_strerror(rc));
            return;
        }
        handle_packet(b, c, &pkt);
        c->in.head += used;
    }
    if (c->in.head == c->in.tail)
        c->in.head = c->in.tail = 0;
}

static void on_readable(struct bench *b, struct conn *c)
{
    /* Only subscribers receive much; idle and publishing connections stay small. */
    size_t chunk = c->role == ROLE_SUB ? READ_CHUNK : READ_CHUNK_SMALL;
    size_t total = 0;
    while (c->state != CONN_CLOSED && total < READ_BUDGET) {
        if (buf_reserve(&c->in, chunk) != 0) {
            conn_close(b, c, "input buffer limit reached");
            return;
        }
        ssize_t n = recv(c->fd, c->in.data + c->in.tail, c->in.cap - c->in.tail, 0);
        if (n > 0) {
            c->in.tail += (size_t)n;
            total += (size_t)n;
            decode_all(b, c);
        } else if (n == 0) {
            conn_close(b, c, "the broker closed the connection");
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        } else if (errno != EINTR) {
            conn_close(b, c, strerror(errno));
        }
    }
}

/* Writes what the socket takes; returns -1 if c was closed. */
static int flush(struct bench *b, struct conn *c)
{
    while (buf_pending(&c->out) > 0) {
        ssize_t n = send(c->fd, c->out.data + c->out.head, buf_pending(&c->out), MSG_NOSIGNAL);
        if (n >= 0) {
            c->out.head += (size_t)n;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return 0;
        } else if (errno != EINTR) {
            conn_close(b, c, strerror(errno));
            return -1;
        }
    }
    c->out.head = c->out.tail = 0;
    return 0;
}

static bool pub_may_send(const struct bench *b, const struct conn *c, uint64_t now)
{
    if (c->role != ROLE_PUB || c->state != CONN_READY || b->phase != PHASE_RUN)
        return false;
    size_t pending = buf_pending(&c->out);
    if (b->o.qos == 0 && pending >= b->o.window)
        return false;
    if (b->o.qos > 0 && (c->inflight >= b->o.window || pending >= OUT_SOFT_CAP))
        return false;
    if (b->o.rate <= 0)
        return true;
    /* Fixed rate: message n leaves no earlier than n / rate after the start. */
    double allowed = b->rate_per_pub * (double)(now - b->r.t_run_ns) / 1e9;
    return (double)c->next_seq <= allowed;
}

/* Appends one stamped PUBLISH; returns 0 or closes c and returns -1. */
static int pub_emit(struct bench *b, struct conn *c)
{
    struct mqtt_publish p = {.qos = b->o.qos};
    p.topic = (struct mqtt_bytes){(const uint8_t *)c->topic, c->topic_len};
    p.payload = (struct mqtt_bytes){b->payload, b->o.size};
    size_t header_max = MQTT_MAX_FIXED_HEADER + 2 + c->topic_len + 2;
    if (buf_reserve(&c->out, header_max + b->o.size) != 0) {
        conn_close(b, c, "out of memory");
        return -1;
    }
    if (p.qos > 0)
        p.packet_id = pid_take(c);
    uint8_t *dst = c->out.data + c->out.tail;
    size_t header_len = 0;
    int rc = mqtt_encode_publish_header(&p, dst, header_max, &header_len);
    if (rc != MQTT_OK) {
        conn_close(b, c, mqtt_strerror(rc));
        return -1;
    }
    memcpy(dst + header_len, b->payload, b->o.size);
    stamp_write(dst + header_len, c->index, c->next_seq, bench_now_ns());
    c->out.tail += header_len + b->o.size;
    c->next_seq++;
    c->inflight += p.qos > 0;
    b->r.published++;
    return 0;
}

/* Generates and writes a bounded amount; returns -1 if c was closed. */
static int pub_fill(struct bench *b, struct conn *c)
{
    uint32_t rounds = b->o.rate > 0 ? PUMP_ROUNDS_PACED : PUMP_ROUNDS;
    for (uint32_t round = 0; round < rounds; round++) {
        uint32_t n = 0;
        while (n < PUMP_BATCH && pub_may_send(b, c, bench_now_ns())) {
            if (pub_emit(b, c) != 0)
                return -1;
            n++;
        }
        if (flush(b, c) != 0)
            return -1;
        if (n == 0 || buf_pending(&c->out) > 0)
            break;
    }
    return 0;
}

static void update_events(struct bench *b, struct conn *c)
{
    uint32_t want = EPOLLIN;
    if (c->state == CONN_CONNECTING || buf_pending(&c->out) > 0 ||
        pub_may_send(b, c, bench_now_ns()))
        want |= EPOLLOUT;
    if (want == c->events)
        return;
    struct epoll_event ev = {.events = want, .data.ptr = c};
    if (epoll_ctl(b->epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0) {
        conn_close(b, c, "epoll_ctl(MOD) failed");
        return;
    }
    c->events = want;
}

void conn_pump(struct bench *b, struct conn *c)
{
    if (c->state == CONN_CLOSED || c->state == CONN_UNSTARTED)
        return;
    if (c->state != CONN_CONNECTING) {
        int rc = c->role == ROLE_PUB ? pub_fill(b, c) : flush(b, c);
        if (rc != 0)
            return;
    }
    update_events(b, c);
}

void conn_on_event(struct bench *b, struct conn *c, uint32_t events)
{
    if (c->state == CONN_CONNECTING) {
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            on_connected(b, c);
    } else if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        on_readable(b, c);
    }
    conn_pump(b, c);
}

bool conn_is_drained(const struct conn *c)
{
    return c->state == CONN_CLOSED || (buf_pending(&c->out) == 0 && c->inflight == 0);
}

/* Sends DISCONNECT if the socket takes it, then closes; not an error. */
void conn_disconnect(struct bench *b, struct conn *c)
{
    if (c->state == CONN_CLOSED || c->state == CONN_UNSTARTED)
        return;
    if (c->state == CONN_READY) {
        struct mqtt_packet pkt = {.type = MQTT_DISCONNECT};
        if (out_packet(b, c, &pkt) != 0 || flush(b, c) != 0)
            return;
    }
    close_fd(b, c);
}

void conn_free(struct conn *c, uint32_t nstreams)
{
    free(c->in.data);
    free(c->out.data);
    free(c->pid_used);
    for (uint32_t i = 0; c->streams != NULL && i < nstreams; i++)
        stream_free(&c->streams[i]);
    free(c->streams);
    memset(c, 0, sizeof(*c));
    c->fd = -1;
}
