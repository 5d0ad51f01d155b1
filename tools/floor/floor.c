/*
 * floor - the least work an MQTT broker can do per delivered message, to
 * measure how much of a broker's CPU per message the kernel takes on this
 * machine (issue 11: "CPU per delivered message <= 0.3x mosquitto").
 *
 * Not a broker: no topics (every SUBSCRIBE subscribes to everything), no
 * sessions, no QoS 2, no limits, no persistence, no error recovery beyond
 * closing the connection. It speaks just enough MQTT 3.1.1 for
 * tools/solbench: CONNECT -> CONNACK, SUBSCRIBE -> SUBACK, PUBLISH ->
 * PUBACK (QoS 1) and one PUBLISH to every subscriber, PINGREQ -> PINGRESP,
 * PUBACK ignored. Like Sol it reads each ready socket once per loop turn
 * and writes each connection once per turn; so its syscalls per delivered
 * message are the fewest a readiness-based broker can make.
 *
 * --uring submits the turn's reads and, separately, its writes to io_uring
 * (one io_uring_enter each for the whole turn, instead of one read or write
 * per socket): what batching syscalls across sockets would save.
 *
 * --uring-writes batches only the writes (reads stay one read() per socket).
 *
 * Usage: floor PORT [--uring|--uring-writes]  (127.0.0.1:PORT; SIGTERM stops it)
 * Run by tools/bench-vs-mosquitto.sh with FLOOR=1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <liburing.h>

#define MAX_CONNS    4096
#define READ_CHUNK   16384
#define MAX_EVENTS   1024
#define RING_ENTRIES 4096

struct buf {
    uint8_t *data;
    size_t len, cap;
};

struct conn {
    int fd;
    bool subscriber;
    uint8_t granted_qos;
    uint16_t next_id;
    bool dirty; /* on the flush list this turn */
    struct buf in, out;
};

static struct conn *conns[MAX_CONNS]; /* by fd */
static struct conn *dirty[MAX_CONNS];
static size_t ndirty;
static struct conn *closed[MAX_CONNS]; /* freed at the end of the turn */
static size_t nclosed;
static int subscriber_fds[MAX_CONNS];
static size_t nsubscribers;
static int epfd;
static volatile sig_atomic_t stopping;
static struct io_uring ring;
static bool uring_reads, uring_writes;

static void on_term(int sig)
{
    (void)sig;
    stopping = 1;
}

static bool buf_reserve(struct buf *b, size_t more)
{
    if (b->len + more <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more)
        cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return false;
    b->data = p;
    b->cap = cap;
    return true;
}

static bool buf_put(struct buf *b, const void *p, size_t n)
{
    if (!buf_reserve(b, n))
        return false;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return true;
}

static size_t put_varint(uint8_t *p, size_t v)
{
    size_t n = 0;
    do {
        p[n] = v % 128;
        v /= 128;
        if (v)
            p[n] |= 128;
        n++;
    } while (v);
    return n;
}

static void mark_dirty(struct conn *c)
{
    if (!c->dirty) {
        c->dirty = true;
        dirty[ndirty++] = c;
    }
}

static void close_conn(struct conn *c)
{
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    conns[c->fd] = NULL;
    if (c->subscriber) {
        for (size_t i = 0; i < nsubscribers; i++) {
            if (subscriber_fds[i] == c->fd) {
                subscriber_fds[i] = subscriber_fds[--nsubscribers];
                break;
            }
        }
    }
    c->fd = -1; /* freed after the turn: it may be on the dirty list */
    closed[nclosed++] = c;
}

/* One PUBLISH to one subscriber at min(qos, granted). */
static bool deliver(struct conn *s, uint8_t qos, const uint8_t *topic, size_t topic_len,
                    const uint8_t *payload, size_t payload_len)
{
    uint8_t q = qos < s->granted_qos ? qos : s->granted_qos;
    size_t remaining = 2 + topic_len + (q ? 2 : 0) + payload_len;
    uint8_t hdr[8];
    size_t h = 1 + put_varint(hdr + 1, remaining);
    hdr[0] = (uint8_t)(0x30 | (q << 1));
    if (!buf_reserve(&s->out, h + remaining))
        return false;
    buf_put(&s->out, hdr, h);
    uint8_t tl[2] = {(uint8_t)(topic_len >> 8), (uint8_t)topic_len};
    buf_put(&s->out, tl, 2);
    buf_put(&s->out, topic, topic_len);
    if (q) {
        if (++s->next_id == 0)
            s->next_id = 1;
        uint8_t id[2] = {(uint8_t)(s->next_id >> 8), (uint8_t)s->next_id};
        buf_put(&s->out, id, 2);
    }
    buf_put(&s->out, payload, payload_len);
    mark_dirty(s);
    return true;
}

static bool on_publish(struct conn *c, uint8_t flags, const uint8_t *p, size_t n)
{
    uint8_t qos = (flags >> 1) & 3;
    if (n < 2 || qos > 1)
        return false;
    size_t topic_len = (size_t)p[0] << 8 | p[1];
    size_t at = 2 + topic_len + (qos ? 2 : 0);
    if (at > n)
        return false;
    if (qos) {
        uint8_t ack[4] = {0x40, 2, p[2 + topic_len], p[3 + topic_len]};
        if (!buf_put(&c->out, ack, 4))
            return false;
        mark_dirty(c);
    }
    for (size_t i = 0; i < nsubscribers; i++) {
        struct conn *s = conns[subscriber_fds[i]];
        if (s && !deliver(s, qos, p + 2, topic_len, p + at, n - at))
            return false;
    }
    return true;
}

static bool on_subscribe(struct conn *c, const uint8_t *p, size_t n)
{
    uint8_t ack[64];
    size_t count = 0, at = 2;
    if (n < 2)
        return false;
    while (at + 2 < n && count < sizeof(ack) - 8) {
        size_t len = (size_t)p[at] << 8 | p[at + 1];
        if (at + 2 + len >= n)
            return false;
        uint8_t qos = p[at + 2 + len] > 1 ? 1 : p[at + 2 + len];
        ack[4 + count++] = qos;
        c->granted_qos = qos > c->granted_qos ? qos : c->granted_qos;
        at += 3 + len;
    }
    ack[0] = 0x90;
    ack[1] = (uint8_t)(2 + count);
    ack[2] = p[0];
    ack[3] = p[1];
    if (!c->subscriber) {
        c->subscriber = true;
        subscriber_fds[nsubscribers++] = c->fd;
    }
    mark_dirty(c);
    return buf_put(&c->out, ack, 4 + count);
}

static bool on_packet(struct conn *c, uint8_t type_flags, const uint8_t *p, size_t n)
{
    static const uint8_t connack[4] = {0x20, 2, 0, 0}, pingresp[2] = {0xd0, 0};
    switch (type_flags >> 4) {
    case 1:
        mark_dirty(c);
        return buf_put(&c->out, connack, 4);
    case 3:
        return on_publish(c, type_flags & 15, p, n);
    case 4:
        return true;
    case 8:
        return on_subscribe(c, p, n);
    case 12:
        mark_dirty(c);
        return buf_put(&c->out, pingresp, 2);
    default: /* DISCONNECT and everything this floor does not speak */
        return false;
    }
}

/* Decodes every whole packet in c->in; false: close the connection. */
static bool consume_input(struct conn *c)
{
    size_t at = 0;
    while (c->in.len - at >= 2) {
        size_t remaining = 0, mult = 1, i = at + 1;
        for (;; i++) {
            if (i >= c->in.len)
                goto partial;
            remaining += (c->in.data[i] & 127) * mult;
            mult *= 128;
            if (!(c->in.data[i] & 128))
                break;
            if (i - at >= 4)
                return false;
        }
        size_t body = i + 1;
        if (c->in.len - body < remaining)
            break;
        if (!on_packet(c, c->in.data[at], c->in.data + body, remaining))
            return false;
        at = body + remaining;
    }
partial:
    memmove(c->in.data, c->in.data + at, c->in.len - at);
    c->in.len -= at;
    return true;
}

static void on_read_result(struct conn *c, ssize_t n)
{
    if (n == 0 || (n < 0 && n != -EAGAIN && n != -EINTR)) {
        close_conn(c);
        return;
    }
    if (n < 0)
        return;
    c->in.len += (size_t)n;
    if (!consume_input(c))
        close_conn(c);
}

static void wrote(struct conn *c, ssize_t n)
{
    if (n < 0 && n != -EAGAIN && n != -EINTR) {
        close_conn(c);
        return;
    }
    if (n > 0) {
        memmove(c->out.data, c->out.data + n, c->out.len - (size_t)n);
        c->out.len -= (size_t)n;
    }
    struct epoll_event ev = {.events = EPOLLIN | (c->out.len ? EPOLLOUT : 0), .data.fd = c->fd};
    if (c->out.len || n == 0)
        epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void flush_plain(void)
{
    for (size_t i = 0; i < ndirty; i++) {
        struct conn *c = dirty[i];
        if (c->fd >= 0 && c->out.len) {
            ssize_t n = write(c->fd, c->out.data, c->out.len);
            wrote(c, n < 0 ? -errno : n);
        }
    }
}

static void read_plain(struct conn **ready, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct conn *c = ready[i];
        if (c->fd < 0 || !buf_reserve(&c->in, READ_CHUNK))
            continue;
        ssize_t r = read(c->fd, c->in.data + c->in.len, READ_CHUNK);
        on_read_result(c, r < 0 ? -errno : r);
    }
}

/* Submits what is queued, waits for all of it, hands each result to apply. */
static void run_ring(unsigned queued, void (*apply)(void *tag, int res))
{
    if (!queued)
        return;
    io_uring_submit_and_wait(&ring, queued);
    struct io_uring_cqe *cqe;
    while (queued && io_uring_peek_cqe(&ring, &cqe) == 0) {
        apply(io_uring_cqe_get_data(cqe), cqe->res);
        io_uring_cqe_seen(&ring, cqe);
        queued--;
    }
}

static void apply_write(void *tag, int res)
{
    wrote(tag, res);
}

static void apply_read(void *tag, int res)
{
    on_read_result(tag, res);
}

static void flush_uring(void)
{
    unsigned queued = 0;
    for (size_t i = 0; i < ndirty; i++) {
        struct conn *c = dirty[i];
        if (c->fd < 0 || !c->out.len)
            continue;
        if (queued == RING_ENTRIES) {
            run_ring(queued, apply_write);
            queued = 0;
        }
        struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
        io_uring_prep_send(sqe, c->fd, c->out.data, c->out.len, MSG_DONTWAIT);
        io_uring_sqe_set_data(sqe, c);
        queued++;
    }
    run_ring(queued, apply_write);
}

static void read_uring(struct conn **ready, size_t n)
{
    unsigned queued = 0;
    for (size_t i = 0; i < n; i++) {
        struct conn *c = ready[i];
        if (c->fd < 0 || !buf_reserve(&c->in, READ_CHUNK))
            continue;
        struct io_uring_sqe *sqe = io_uring_get_sqe(&ring); /* n <= MAX_EVENTS < RING_ENTRIES */
        io_uring_prep_recv(sqe, c->fd, c->in.data + c->in.len, READ_CHUNK, MSG_DONTWAIT);
        io_uring_sqe_set_data(sqe, c);
        queued++;
    }
    run_ring(queued, apply_read);
}

static void accept_all(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
        if (fd < 0)
            return;
        struct conn *c = fd < MAX_CONNS ? calloc(1, sizeof(*c)) : NULL;
        if (!c) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c->fd = fd;
        conns[fd] = c;
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
    }
}

static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
        bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 1024)) {
        perror("floor: listen");
        exit(1);
    }
    return fd;
}

static void run_turn(int lfd, struct epoll_event *ev, int n)
{
    static struct conn *ready[MAX_EVENTS];
    size_t nready = 0;
    for (int i = 0; i < n; i++) {
        if (ev[i].data.fd == lfd) {
            accept_all(lfd);
            continue;
        }
        struct conn *c = conns[ev[i].data.fd];
        if (!c)
            continue;
        if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
            ready[nready++] = c;
        if (ev[i].events & EPOLLOUT)
            mark_dirty(c);
    }
    if (uring_reads)
        read_uring(ready, nready);
    else
        read_plain(ready, nready);
    if (uring_writes)
        flush_uring();
    else
        flush_plain();
    for (size_t i = 0; i < ndirty; i++)
        dirty[i]->dirty = false;
    ndirty = 0;
    for (size_t i = 0; i < nclosed; i++) {
        free(closed[i]->in.data);
        free(closed[i]->out.data);
        free(closed[i]);
    }
    nclosed = 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: floor PORT [--uring|--uring-writes]\n");
        return 2;
    }
    uring_writes = argc > 2 && strncmp(argv[2], "--uring", 7) == 0;
    uring_reads = argc > 2 && strcmp(argv[2], "--uring") == 0;
    if (uring_writes && io_uring_queue_init(RING_ENTRIES, &ring, 0) < 0) {
        fprintf(stderr, "floor: io_uring_queue_init failed\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_term};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    int lfd = listen_on(atoi(argv[1]));
    epfd = epoll_create1(0);
    struct epoll_event lev = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev);
    struct epoll_event ev[MAX_EVENTS];
    while (!stopping) {
        int n = epoll_wait(epfd, ev, MAX_EVENTS, 1000);
        if (n > 0)
            run_turn(lfd, ev, n);
    }
    return 0;
}
