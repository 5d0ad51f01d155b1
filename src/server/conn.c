/*
 * conn.c - one client connection: reads bytes and decodes them into packets
 * for the session manager, queues its replies and writes them with writev,
 * and runs the CONNECT deadline and the keepalive timer. Implements the
 * session_sink the manager answers through.
 *
 * Input: every read lands in the server's shared 16 KB scratch buffer and is
 * decoded in place; only the tail of a partial packet is copied into a
 * per-connection buffer (allocated then, freed when it empties), so an idle
 * connection holds no input memory. Output: a list of chunks, appended by
 * copying, except large message payloads, which are referenced where the
 * session manager keeps them (one body for every subscriber) and gathered by
 * writev; an unwritten tail stays queued and EV_WRITE is armed until it
 * drains. An idle connection holds no chunk.
 *
 * Not for: MQTT semantics (session manager), listening sockets (listener.c),
 * the end-of-turn ordering (server.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "server_internal.h"
#include "log.h"
#include "mqtt.h"
#include "uring.h"
#include "websocket.h"

/* A new output chunk holds at least this much (malloc size ~4 KB). */
#define OUT_CHUNK_MIN (4096 - sizeof(struct out_chunk))
/* Referenced payloads up to this size are copied instead: a memcpy into the
 * tail chunk costs less than a chunk of its own and a second iovec. */
#define OUT_COPY_MAX 1024
/* iovecs per writev; more chunks simply take another call. */
#define WRITE_IOV_MAX 64
/* writev calls per flush before yielding to the loop (bounds EINTR retries). */
#define WRITE_ATTEMPTS_MAX 16

static void on_io(struct ev_loop *loop, ev_io *w, int revents);

/* Arms c's watcher for what it is_reading / is_write_armed; restarted only
 * when that changed. */
static void io_update(struct conn *c)
{
    struct ev_loop *loop = c->srv->loop;
    int want = (c->is_reading ? EV_READ : 0) | (c->is_write_armed ? EV_WRITE : 0);
    if (ev_is_active(&c->io) && (c->io.events & (EV_READ | EV_WRITE)) == want)
        return;
    ev_io_stop(loop, &c->io);
    if (want == 0)
        return;
    ev_io_set(&c->io, c->fd, want);
    ev_io_start(loop, &c->io);
}
static void on_timer(struct ev_loop *loop, ev_timer *w, int revents);

static const char *conn_name(const struct conn *c)
{
    return session_client_name(c->client);
}

/* ---- lists ---- */

static void list_write(struct conn *c)
{
    if (c->is_write_listed)
        return;
    c->is_write_listed = true;
    c->next_write = c->srv->writes;
    c->srv->writes = c;
}

static void unlist_write(struct conn *c)
{
    struct conn **p = &c->srv->writes;
    while (*p != NULL && *p != c)
        p = &(*p)->next_write;
    if (*p == c)
        *p = c->next_write;
    c->is_write_listed = false;
}

/* ---- timers ---- */

static void arm_timer(struct conn *c, double timeout_s)
{
    struct ev_loop *loop = c->srv->loop;
    ev_timer_stop(loop, &c->timer);
    c->timeout_s = timeout_s;
    c->last_packet = ev_now(loop);
    if (timeout_s <= 0)
        return;
    ev_timer_set(&c->timer, timeout_s, 0.);
    ev_timer_start(loop, &c->timer);
}

/* Fires at the earliest possible expiry; packets since then only move
 * last_packet, so the timer is re-armed here rather than on every packet. */
static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    struct conn *c = container_of(w, struct conn, timer);
    double left_s = c->last_packet + c->timeout_s - ev_now(loop);
    if (left_s > 0) {
        ev_timer_set(w, left_s, 0.);
        ev_timer_start(loop, w);
        return;
    }
    if (c->is_handshaking) {
        const char *stage = c->tp->stage(c);
        if (strcmp(stage, "TLS") == 0)
            c->srv->stats.tls_handshake_failures++;
        log_info("client %s: closing: %s handshake not finished within %.1f s", conn_name(c), stage,
                 c->timeout_s);
    } else if (c->is_connect_phase && c->has_packet) {
        log_info("client %s: closing: authentication (AUTH) not finished within %.1f s",
                 conn_name(c), c->timeout_s);
    } else if (c->is_connect_phase) {
        log_info("client %s: closing: no CONNECT within %.1f s", conn_name(c), c->timeout_s);
    } else {
        log_info("client %s: closing: keepalive expired (no packet for %.1f s)", conn_name(c),
                 c->timeout_s);
        session_client_disconnect(c->srv->mgr, c->client, MQTT_RC_KEEP_ALIVE_TIMEOUT,
                                  "keep alive timeout");
    }
    conn_close(c, SESSION_CLOSE_KEEPALIVE);
}

/* ---- output queue ---- */

static size_t iov_total(const struct iovec *iov, int iovcnt)
{
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    return total;
}

/* Copies iov into the queue: fills the tail chunk, then one new chunk for the
 * rest. The new chunk is allocated before anything is copied, so on -ENOMEM
 * the queue is unchanged (never half a packet). */
static int out_append(struct conn *c, const struct iovec *iov, int iovcnt)
{
    size_t total = iov_total(iov, iovcnt);
    struct out_chunk *tail = c->out_tail;
    size_t room = tail != NULL && tail->ref == NULL ? tail->cap - tail->len : 0;
    struct out_chunk *fresh = NULL;
    if (total > room) {
        size_t cap = total - room > OUT_CHUNK_MIN ? total - room : OUT_CHUNK_MIN;
        fresh = malloc(sizeof(*fresh) + cap);
        if (fresh == NULL)
            return -ENOMEM;
        *fresh = (struct out_chunk){.cap = cap};
    }
    struct out_chunk *dst = room > 0 ? tail : fresh;
    for (int i = 0; i < iovcnt; i++) {
        const uint8_t *src = iov[i].iov_base;
        size_t left = iov[i].iov_len;
        while (left > 0) {
            if (dst->len == dst->cap)
                dst = fresh;
            size_t n = dst->cap - dst->len < left ? dst->cap - dst->len : left;
            memcpy(dst->data + dst->len, src, n);
            dst->len += n;
            src += n;
            left -= n;
        }
    }
    if (fresh != NULL) {
        if (tail != NULL)
            tail->next = fresh;
        else
            c->out_head = fresh;
        c->out_tail = fresh;
    }
    c->out_pending += total;
    return 0;
}

static void copy_iov(uint8_t *dst, const struct iovec *iov, int iovcnt)
{
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > 0)
            memcpy(dst, iov[i].iov_base, iov[i].iov_len);
        dst += iov[i].iov_len;
    }
}

/* Copies iov into the queue, then references data[0..len) after it (see
 * struct out_chunk): iov goes into the tail chunk when it fits whole, else
 * into a new chunk of just its size, which carries the reference. Takes the
 * reference on every path: on -ENOMEM it is released and the queue is
 * unchanged. */
static int out_append_ref(struct conn *c, const struct iovec *iov, int iovcnt, const void *data,
                          size_t len, void (*release)(void *), void *ref_arg)
{
    size_t total = iov_total(iov, iovcnt);
    struct out_chunk *tail = c->out_tail;
    struct out_chunk *dst = tail;
    if (tail == NULL || tail->ref != NULL || tail->cap - tail->len < total) {
        dst = malloc(sizeof(*dst) + total);
        if (dst == NULL) {
            release(ref_arg);
            return -ENOMEM;
        }
        *dst = (struct out_chunk){.cap = total};
        if (tail != NULL)
            tail->next = dst;
        else
            c->out_head = dst;
        c->out_tail = dst;
    }
    copy_iov(dst->data + dst->len, iov, iovcnt);
    dst->len += total;
    dst->ref = data;
    dst->ref_len = len;
    dst->release = release;
    dst->ref_arg = ref_arg;
    c->out_pending += total + len;
    return 0;
}

static void chunk_free(struct out_chunk *k)
{
    if (k->ref != NULL)
        k->release(k->ref_arg);
    free(k);
}

/* Drops n written bytes from the head of the queue, releasing the
 * references of the chunks written completely. */
static void out_consume(struct conn *c, size_t n)
{
    c->out_pending -= n;
    while (n > 0 && c->out_head != NULL) {
        struct out_chunk *head = c->out_head;
        size_t left = head->len + head->ref_len - head->off;
        if (n < left) {
            head->off += n;
            return;
        }
        n -= left;
        c->out_head = head->next;
        chunk_free(head);
    }
    if (c->out_head == NULL)
        c->out_tail = NULL;
}

static void out_clear(struct conn *c)
{
    out_consume(c, c->out_pending);
}

/* ---- writing ---- */

/* The queue's head as iovecs, in order: each chunk's own bytes, then its
 * referenced ones; never an empty iovec. */
static int fill_iov(const struct conn *c, struct iovec *iov, int max)
{
    int n = 0;
    for (struct out_chunk *k = c->out_head; k != NULL && n < max; k = k->next) {
        if (k->off < k->len) {
            iov[n].iov_base = k->data + k->off;
            iov[n].iov_len = k->len - k->off;
            n++;
        }
        if (k->ref_len > 0 && n < max) {
            size_t done = k->off > k->len ? k->off - k->len : 0;
            iov[n].iov_base = (void *)(k->ref + done);
            iov[n].iov_len = k->ref_len - done;
            n++;
        }
    }
    return n;
}

/* A write failed: the peer is gone. The queue is dropped with the socket. */
static void write_failed(struct conn *c, int err)
{
    if (!c->is_closing) {
        char why[128];
        c->tp->describe_error(c, err, why, sizeof(why));
        log_info("client %s: closing: write: %s", conn_name(c), why);
    }
    out_clear(c);
    conn_close(c, SESSION_CLOSE_SOCKET);
}

/* Bytes wait to be written: the queue's, or the transport's own (WebSocket
 * control frames). */
static bool has_output(const struct conn *c)
{
    return c->out_head != NULL || (c->tp->has_output != NULL && c->tp->has_output(c));
}

/* Arms EV_WRITE while the last write found the socket full, or while a TLS
 * read or handshake waits for a writable socket; never while a TLS write
 * waits for input (EV_WRITE would then fire in a loop). Output merely queued
 * during the turn waits for the end of the turn, not for EV_WRITE. */
static void update_write_watcher(struct conn *c)
{
    bool is_queue_blocked = has_output(c) && c->is_write_blocked;
    bool wants = !c->is_closing && (is_queue_blocked || c->read_wants_write ||
                                    (c->is_handshaking && c->handshake_wants_write));
    if (wants && !c->is_write_armed && is_queue_blocked)
        log_debug("client %s: socket full, %zu bytes queued", conn_name(c), c->out_pending);
    c->is_write_armed = wants;
    io_update(c);
}

/* One write's outcome (n bytes, or -1 with err): true to write on. */
static bool took_write(struct conn *c, ssize_t n, int err)
{
    if (n >= 0) {
        c->srv->stats.bytes_sent += (uint64_t)n;
        out_consume(c, (size_t)n);
        return true;
    }
    if (err == EINTR)
        return true;
    if (err != EAGAIN && err != EWOULDBLOCK)
        write_failed(c, err);
    else
        c->is_write_blocked = !c->write_wants_read;
    return false;
}

static void flush_begin(struct conn *c)
{
    c->write_wants_read = false;
    c->is_write_blocked = false;
}

static void flush_on(struct conn *c, int attempts)
{
    for (int attempt = 0; has_output(c) && attempt < attempts; attempt++) {
        struct iovec iov[WRITE_IOV_MAX];
        ssize_t n = c->tp->writev(c, iov, fill_iov(c, iov, WRITE_IOV_MAX));
        if (!took_write(c, n, n < 0 ? errno : 0))
            break;
    }
}

static bool flush_end(struct conn *c)
{
    /* Stopped by the attempt cap while the socket still takes bytes: no
     * EV_WRITE will come, so write on in the next round (found by a '#'
     * SUBSCRIBE over 40 MB of retained messages, which waited for this
     * output to drain and stalled). */
    if (has_output(c) && !c->is_write_blocked && !c->write_wants_read && !c->is_closing)
        list_write(c);
    update_write_watcher(c);
    return c->out_head == NULL;
}

bool conn_flush(struct conn *c)
{
    if (c->is_handshaking)
        return c->out_head == NULL; /* nothing can be written before the handshake */
    flush_begin(c);
    flush_on(c, WRITE_ATTEMPTS_MAX);
    return flush_end(c);
}

/* Writes what c has queued; once drained, lets the manager send more. */
static void write_and_notify(struct conn *c)
{
    if (conn_flush(c) && !c->is_closing)
        session_client_writable(c->srv->mgr, c->client);
}

/* io_uring is on and has not failed. */
static bool has_uring(const struct server *srv)
{
    return srv->uring != NULL && !server_uring_is_broken(srv->uring);
}

/* Queues the first write of c into the io_uring batch. False when c writes
 * itself: a TLS or WebSocket transport, a handshake, nothing queued, or a
 * batch that takes no more (full, or the ring failed). */
static bool queue_write(struct server *srv, struct conn *c)
{
    if (c->tp != &conn_transport_plain || c->is_handshaking || c->out_head == NULL)
        return false;
    struct iovec iov[SERVER_URING_IOV_MAX];
    flush_begin(c);
    int iovcnt = fill_iov(c, iov, SERVER_URING_IOV_MAX);
    return server_uring_queue_send(srv->uring, c->fd, iov, iovcnt, c) == 0;
}

static void on_batched_write(void *tag, int res, void *arg)
{
    (void)arg;
    struct conn *c = tag;
    if (took_write(c, res < 0 ? -1 : res, res < 0 ? -res : 0))
        flush_on(c, WRITE_ATTEMPTS_MAX - 1); /* a long queue: the rest by writev */
    flush_end(c);
}

/* Writes the queued batch; the manager hears which queues drained once the
 * whole batch is written. */
static void run_write_batch(struct server *srv, struct conn **batch, size_t n)
{
    server_uring_run(srv->uring, on_batched_write, NULL);
    for (size_t i = 0; i < n; i++)
        if (batch[i]->out_head == NULL && !batch[i]->is_closing)
            session_client_writable(srv->mgr, batch[i]->client);
}

/* With io_uring, the first write of every plain connection goes into one
 * batch (SERVER_URING_BATCH at a time); the others write as they come. */
void conn_write_listed(struct server *srv)
{
    struct conn *list = srv->writes;
    srv->writes = NULL; /* output queued from here on waits for the next round */
    bool is_batching = has_uring(srv);
    struct conn *batch[SERVER_URING_BATCH];
    size_t n = 0;
    while (list != NULL) {
        struct conn *c = list;
        list = c->next_write;
        c->is_write_listed = false;
        if (!is_batching || !queue_write(srv, c)) {
            write_and_notify(c);
            continue;
        }
        batch[n++] = c;
        if (n == SERVER_URING_BATCH) {
            run_write_batch(srv, batch, n);
            n = 0;
        }
    }
    if (n > 0)
        run_write_batch(srv, batch, n);
}

/* ---- errors: the one place that turns a result into an action ---- */

/*
 * Closes c after a failed packet. rc is a session_result; codec errors arrive
 * as SESSION_ERR_PROTOCOL with the codec's reason in why. An MQTT 5 client
 * is told why first: a DISCONNECT with reason (0: the one rc calls for) and
 * why as its Reason String (session_client_disconnect() sends it only to an
 * accepted MQTT 5 client, once).
 */
static void fail_with(struct conn *c, int rc, uint8_t reason, const char *why)
{
    bool is_quiet = c->is_closing; /* the manager already closed it, with its reason */
    if (!is_quiet && rc != SESSION_ERR_DISCONNECT && rc != SESSION_ERR_CONNECT_REFUSED)
        session_client_disconnect(c->srv->mgr, c->client,
                                  reason ? reason : session_error_reason(rc), why);
    switch (rc) {
    case SESSION_ERR_DISCONNECT:
        log_debug("client %s: disconnected", conn_name(c));
        conn_close(c, SESSION_CLOSE_DISCONNECT);
        return;
    case SESSION_ERR_CONNECT_REFUSED:
        if (!is_quiet)
            log_info("client %s: closing: CONNECT refused", conn_name(c));
        break;
    case SESSION_ERR_NOMEM:
        if (!is_quiet)
            log_warning("client %s: closing: out of memory", conn_name(c));
        break;
    case SESSION_ERR_STORE:
    case SESSION_ERR_PROTOCOL:
    default:
        if (!is_quiet)
            log_notice("client %s: closing: %s", conn_name(c), why);
        break;
    }
    conn_close(c, SESSION_CLOSE_PROTOCOL);
}

static void fail(struct conn *c, int rc, const char *why)
{
    fail_with(c, rc, 0, why);
}

/* The protocol level byte of a CONNECT frame (after the protocol name),
 * or 0 when the frame is too short to say. */
static uint8_t connect_frame_level(const struct mqtt_frame *frame)
{
    if (frame->body_len < 2)
        return 0;
    size_t name_len = ((size_t)frame->body[0] << 8) | frame->body[1];
    return frame->body_len > 2 + name_len ? frame->body[2 + name_len] : 0;
}

/* A first CONNECT that did not decode gets a CONNACK before the close:
 * an unsupported protocol level 0x01 (3.1.1's code, which any client reads)
 * [MQTT-3.1.2-2]; an MQTT 5 CONNECT the reason its error calls for (0x81
 * Malformed Packet, 0x82 Protocol Error, ...) [MQTT-4.13.1-1]. Later
 * CONNECTs are a plain protocol error. */
static void refuse_connect(struct conn *c, int rc, const struct mqtt_frame *frame)
{
    struct mqtt_packet ack = {.type = MQTT_CONNACK};
    ack.u.connack.return_code = MQTT_CONNACK_BAD_PROTOCOL;
    if (rc != MQTT_ERR_PROTOCOL_LEVEL) {
        if (connect_frame_level(frame) != MQTT_PROTOCOL_V5)
            return;
        ack.protocol_level = MQTT_PROTOCOL_V5;
        ack.u.connack.return_code = mqtt_reason_for_error(rc);
    }
    uint8_t buf[8];
    size_t len = 0;
    if (mqtt_encode(&ack, buf, sizeof(buf), &len) == MQTT_OK) {
        struct iovec iov = {.iov_base = buf, .iov_len = len};
        if (out_append(c, &iov, 1) == 0)
            list_write(c);
    }
}

/* frame is NULL when the packet could not be framed (type unknown). */
static void decode_failed(struct conn *c, int rc, const struct mqtt_frame *frame)
{
    char why[128];
    int type = frame ? frame->type : 0;
    if (type == MQTT_CONNECT && !c->has_packet)
        refuse_connect(c, rc, frame);
    if (type > 0)
        snprintf(why, sizeof(why), "malformed %s (%s)", mqtt_packet_name((uint8_t)type),
                 mqtt_strerror(rc));
    else
        snprintf(why, sizeof(why), "malformed packet (%s)", mqtt_strerror(rc));
    fail_with(c, SESSION_ERR_PROTOCOL, mqtt_reason_for_error(rc), why);
}

/* ---- reading ---- */

static void handle_frame(struct conn *c, const struct mqtt_frame *frame)
{
    struct mqtt_packet pkt;
    int rc = mqtt_decode_for(frame, session_client_protocol_level(c->client), &pkt);
    if (rc != MQTT_OK) {
        decode_failed(c, rc, frame);
        return;
    }
    /* The connect deadline is not moved by packets: a CONNECT and any
     * enhanced authentication exchange (AUTH packets) that follows it
     * finish within connect_timeout_s of the accept, or the connection
     * closes (on_timer). */
    if (!c->is_connect_phase)
        c->last_packet = ev_now(c->srv->loop);
    rc = session_handle_packet(c->srv->mgr, c->client, &pkt);
    c->has_packet = true;
    if (rc != SESSION_OK)
        fail(c, rc, session_strerror(rc));
}

/*
 * The largest packet c may send now. Until its CONNECT is accepted (the
 * connect phase ends; a refused one closes the connection, and an enhanced
 * authentication's AUTH packets come before that) nothing may be larger
 * than a CONNECT can be, so unauthenticated sockets cannot make the broker
 * buffer message_size_limit each.
 */
static size_t packet_size_limit(const struct conn *c)
{
    size_t max = c->srv->max_packet_size;
    if (c->has_packet && !c->is_connect_phase)
        return max;
    /* An MQTT 5 CONNECT may carry properties (MQTT_CONNECT_MAX_PACKET_SIZE_V5). */
    size_t connect_max = MQTT_CONNECT_MAX_PACKET_SIZE_V5;
    return max != 0 && max < connect_max ? max : connect_max;
}

/* [MQTT-3.1.0-1]: the first packet is a CONNECT. Anything else (an HTTP
 * request, TLS on a plain port, garbage) is refused on its first byte, not
 * after waiting for the rest of a "packet" that will never come. */
static bool is_bad_first_byte(const struct conn *c, uint8_t byte)
{
    return !c->has_packet && byte != MQTT_CONNECT_FIRST_BYTE;
}

/* Decodes every complete packet in buf[0..len); returns the bytes consumed. */
static size_t decode_all(struct conn *c, const uint8_t *buf, size_t len)
{
    size_t off = 0;
    while (!c->is_closing && off < len) {
        if (is_bad_first_byte(c, buf[off])) {
            char why[64];
            snprintf(why, sizeof(why), "first packet is not a CONNECT (byte 0x%02x)", buf[off]);
            fail(c, SESSION_ERR_PROTOCOL, why);
            break;
        }
        struct mqtt_frame frame;
        int rc = mqtt_frame_for(buf + off, len - off, packet_size_limit(c),
                                session_client_protocol_level(c->client), &frame);
        if (rc == MQTT_NEED_MORE)
            break;
        if (rc != MQTT_OK) {
            decode_failed(c, rc, NULL);
            break;
        }
        handle_frame(c, &frame);
        off += frame.total_len;
    }
    return off;
}

/* The size of the packet that starts at buf[0..len): known once its fixed
 * header is complete (mqtt_frame reports it with NEED_MORE), else len. */
static size_t packet_size_hint(const struct conn *c, const uint8_t *buf, size_t len)
{
    struct mqtt_frame frame;
    int rc = mqtt_frame_for(buf, len, packet_size_limit(c),
                            session_client_protocol_level(c->client), &frame);
    return rc == MQTT_NEED_MORE && frame.total_len > len ? frame.total_len : len;
}

/*
 * The input budget (max_input_buffer_bytes): every conn's carried buffer is
 * counted in srv->input_bytes. Growing one past INPUT_FREE_BYTES needs room
 * in the budget, unless no other connection holds any (so a single packet
 * larger than the budget still gets through, alone). A connection refused
 * keeps what it already read, stops reading, and waits on srv->input_waiters
 * until conn_resume_input() finds it room: N clients sending large packets
 * at once make the broker wait, not allocate N packets. Its output is never a
 * reason to stop reading (its PUBACKs are what drain it).
 */
#define INPUT_FREE_BYTES SERVER_READ_CHUNK

static bool input_fits(const struct conn *c, size_t cap)
{
    const struct server *srv = c->srv;
    if (srv->max_input_bytes == 0 || cap <= INPUT_FREE_BYTES)
        return true;
    size_t others = srv->input_bytes - c->in_cap;
    return others == 0 || (cap <= srv->max_input_bytes && others <= srv->max_input_bytes - cap);
}

/* Makes the carried buffer hold at least cap bytes, keeping its content.
 * Returns 0, -EAGAIN (over the input budget: nothing changed) or -ENOMEM.
 * is_forced skips the budget: for bytes already read, which must be kept. */
static int reserve_input(struct conn *c, size_t cap, bool is_forced)
{
    if (cap <= c->in_cap)
        return 0;
    if (cap > UINT32_MAX) /* cannot happen: a packet is < 256 MiB (see in_cap) */
        return -ENOMEM;
    if (!is_forced && !input_fits(c, cap))
        return -EAGAIN;
    uint8_t *grown = realloc(c->in, cap);
    if (grown == NULL)
        return -ENOMEM;
    c->srv->input_bytes += cap - c->in_cap;
    c->in = grown;
    c->in_cap = cap;
    return 0;
}

static void drop_input(struct conn *c)
{
    if (c->in_cap > 0 && c->srv->input_waiters != NULL)
        c->srv->is_input_freed = true;
    c->srv->input_bytes -= c->in_cap;
    free(c->in);
    c->in = NULL;
    c->in_len = 0;
    c->in_cap = 0;
}

/* Gives back most of a large carried buffer that now holds a small packet's
 * start, so a client streaming packets does not keep a past large packet's
 * share of the budget. A failed shrink keeps the larger buffer. */
static void shrink_input(struct conn *c, size_t want)
{
    size_t cap = want > INPUT_FREE_BYTES ? want : INPUT_FREE_BYTES;
    if (c->in_cap <= INPUT_FREE_BYTES || cap > c->in_cap / 4)
        return;
    uint8_t *smaller = realloc(c->in, cap);
    if (smaller == NULL)
        return;
    c->srv->input_bytes -= c->in_cap - cap;
    if (c->srv->input_waiters != NULL)
        c->srv->is_input_freed = true;
    c->in = smaller;
    c->in_cap = cap;
}

static void unlist_input_waiter(struct conn *c)
{
    struct server *srv = c->srv;
    struct input_wait *w = c->wait;
    if (w == NULL)
        return;
    if (w->prev != NULL)
        w->prev->wait->next = w->next;
    else
        srv->input_waiters = w->next;
    if (w->next != NULL)
        w->next->wait->prev = w->prev;
    else
        srv->input_waiters_tail = w->prev;
    free(w);
    c->wait = NULL;
}

/* Stops reading c until its carried buffer can grow to want bytes. Returns
 * 0, or -ENOMEM (the caller fails c). */
static int wait_for_input_budget(struct conn *c, size_t want)
{
    struct server *srv = c->srv;
    if (c->wait != NULL) {
        c->wait->want = want;
        return 0;
    }
    struct input_wait *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return -ENOMEM;
    w->want = want;
    c->wait = w;
    c->is_reading = false;
    io_update(c);
    w->prev = srv->input_waiters_tail;
    if (srv->input_waiters_tail != NULL)
        srv->input_waiters_tail->wait->next = c;
    else
        srv->input_waiters = c;
    srv->input_waiters_tail = c;
    srv->stats.input_waits++;
    log_debug("client %s: input budget (max_input_buffer_bytes %zu) in use: waiting to buffer a "
              "%zu-byte packet",
              conn_name(c), srv->max_input_bytes, want);
    return 0;
}

bool conn_resume_input(struct server *srv)
{
    if (!srv->is_input_freed || srv->input_waiters == NULL)
        return false;
    srv->is_input_freed = false;
    bool is_resumed = false;
    struct conn *next = NULL;
    for (struct conn *c = srv->input_waiters; c != NULL; c = next) {
        next = c->wait->next;
        int rc = reserve_input(c, c->wait->want, false);
        if (rc == -EAGAIN)
            continue; /* still too large for what is free; smaller ones go first */
        unlist_input_waiter(c);
        if (rc < 0) {
            fail(c, SESSION_ERR_NOMEM, "out of memory");
            continue;
        }
        c->is_reading = true;
        io_update(c);
        ev_feed_event(srv->loop, &c->io, EV_READ); /* TLS may hold decrypted bytes */
        is_resumed = true;
    }
    return is_resumed;
}

/*
 * Keeps the undecoded tail buf[used..len): a prefix of one packet, smaller
 * than the maximum packet size (mqtt_frame rejects a larger one as soon as
 * its length is known). The carried buffer is sized for the whole packet as
 * soon as its length is known, so the rest is read straight into it: a large
 * PUBLISH is copied once, not re-copied on every read. It is freed as soon as
 * it empties, so an idle connection holds no input memory.
 */
static int keep_tail(struct conn *c, const uint8_t *buf, size_t used, size_t len)
{
    size_t left = len - used;
    if (c->is_closing || left == 0) {
        drop_input(c);
        return 0;
    }
    size_t want = packet_size_hint(c, buf + used, left);
    if (c->in != NULL && buf == c->in) {
        memmove(c->in, buf + used, left);
        c->in_len = left;
        shrink_input(c, want);
    } else {
        /* Room for the whole packet if the budget allows, else just for
         * what was read (always kept). */
        int rc = reserve_input(c, want, false);
        if (rc == -EAGAIN)
            rc = reserve_input(c, left, true);
        if (rc < 0)
            return -ENOMEM;
        memcpy(c->in, buf + used, left);
        c->in_len = left;
    }
    int rc = reserve_input(c, want, false);
    if (rc == -EAGAIN)
        return wait_for_input_budget(c, want);
    return rc;
}

/* Appends fresh bytes to the carried partial packet (its header was still
 * incomplete, or the read came through the scratch buffer). */
static int append_input(struct conn *c, const uint8_t *data, size_t len)
{
    size_t need = c->in_len + len;
    size_t grown = need > 2 * c->in_cap ? need : 2 * c->in_cap;
    if (need > c->in_cap && reserve_input(c, grown, false) < 0 && reserve_input(c, need, true) < 0)
        return -ENOMEM;
    memcpy(c->in + c->in_len, data, len);
    c->in_len = need;
    return 0;
}

static void decode_carried(struct conn *c)
{
    size_t used = decode_all(c, c->in, c->in_len);
    if (keep_tail(c, c->in, used, c->in_len) < 0)
        fail(c, SESSION_ERR_NOMEM, "out of memory");
}

static void consume_input(struct conn *c, const uint8_t *data, size_t len)
{
    if (c->in != NULL) {
        if (append_input(c, data, len) < 0) {
            fail(c, SESSION_ERR_NOMEM, "out of memory");
            return;
        }
        decode_carried(c);
        return;
    }
    size_t used = decode_all(c, data, len);
    if (keep_tail(c, data, used, len) < 0)
        fail(c, SESSION_ERR_NOMEM, "out of memory");
}

static void read_failed(struct conn *c, ssize_t n, int err)
{
    char why[128];
    if (n == 0) {
        log_info("client %s: closing: connection closed by peer", conn_name(c));
    } else {
        c->tp->describe_error(c, err, why, sizeof(why));
        log_info("client %s: closing: read: %s", conn_name(c), why);
    }
    conn_close(c, SESSION_CLOSE_SOCKET);
}

/* Reads what the socket has; keeps reading while the transport holds
 * decrypted bytes EV_READ would not announce (bounded: no socket read
 * happens for those). */
/* Where c's next read lands: the rest of a partial packet whose size is
 * known goes straight into its buffer (returns true); everything else into
 * buf (the shared scratch, or an io_uring slot). */
static bool read_target(const struct conn *c, uint8_t *buf, size_t buf_len, uint8_t **dst,
                        size_t *room)
{
    bool is_direct = c->in != NULL && c->in_cap > c->in_len;
    *dst = is_direct ? c->in + c->in_len : buf;
    *room = is_direct ? c->in_cap - c->in_len : buf_len;
    return is_direct;
}

/* n > 0 bytes arrived where read_target() said. */
static void took_input(struct conn *c, const uint8_t *dst, size_t n, bool is_direct)
{
    c->srv->stats.bytes_received += (uint64_t)n;
    if (is_direct) {
        c->in_len += (uint32_t)n;
        decode_carried(c);
    } else {
        consume_input(c, dst, n);
    }
}

/* A read that brought nothing (n 0, or -1 with err): true if it only has
 * to wait for EV_READ; otherwise c is closed. */
static bool read_must_wait(struct conn *c, ssize_t n, int err)
{
    if (n < 0 && (err == EAGAIN || err == EWOULDBLOCK || err == EINTR))
        return true;
    read_failed(c, n, err);
    return false;
}

static void read_input(struct conn *c)
{
    if (c->wait != NULL)
        return; /* conn_resume_input() restarts it */
    c->read_wants_write = false;
    for (;;) {
        uint8_t *dst;
        size_t room;
        bool is_direct = read_target(c, c->srv->scratch, sizeof(c->srv->scratch), &dst, &room);
        ssize_t n = c->tp->read(c, dst, room);
        if (n <= 0) {
            if (!read_must_wait(c, n, errno))
                return;
            break;
        }
        took_input(c, dst, (size_t)n, is_direct);
        if (c->is_closing || c->wait != NULL || !c->tp->has_pending(c))
            break;
    }
    if (!c->is_closing && c->tp->has_output != NULL && c->tp->has_output(c))
        list_write(c); /* the transport answers (a WebSocket pong) */
    update_write_watcher(c);
}

static void handshake(struct conn *c)
{
    if (c->is_closing)
        return;
    char why[160];
    int rc = c->tp->handshake(c, why, sizeof(why));
    if (rc < 0) {
        const char *stage = c->tp->stage(c);
        if (strcmp(stage, "TLS") == 0)
            c->srv->stats.tls_handshake_failures++;
        log_notice("client %s: closing: %s handshake failed: %s", conn_name(c), stage, why);
        conn_close(c, SESSION_CLOSE_SOCKET);
        return;
    }
    update_write_watcher(c);
    if (rc == 1) {
        log_debug("client %s: %s handshake done", conn_name(c), c->tp->name);
        read_input(c); /* the CONNECT may already be decrypted */
    }
}

static void on_read(struct conn *c)
{
    if (c->is_handshaking) {
        handshake(c);
        return;
    }
    if (c->write_wants_read) {
        write_and_notify(c);
        if (c->is_closing)
            return;
    }
    read_input(c);
}

static void on_write(struct conn *c)
{
    if (c->is_handshaking) {
        handshake(c);
        return;
    }
    if (c->read_wants_write) {
        read_input(c);
        if (c->is_closing)
            return;
    }
    write_and_notify(c);
}

/* Plain TCP, past its handshake, free to read: its read can wait for the
 * end of the turn and go into an io_uring batch with the others'. */
static bool is_batchable_read(const struct conn *c)
{
    return has_uring(c->srv) && c->tp == &conn_transport_plain && !c->is_handshaking &&
           c->wait == NULL;
}

/* Lists c for conn_read_listed(); false if the list cannot grow. */
static bool list_read(struct conn *c)
{
    struct server *srv = c->srv;
    if (c->is_read_listed)
        return true;
    if (srv->read_count == srv->read_cap) {
        size_t cap = srv->read_cap ? 2 * srv->read_cap : 64;
        struct conn **grown = realloc(srv->reads, cap * sizeof(*grown));
        if (grown == NULL)
            return false;
        srv->reads = grown;
        srv->read_cap = cap;
    }
    srv->reads[srv->read_count++] = c;
    c->is_read_listed = true;
    return true;
}

static void unlist_read(struct conn *c)
{
    struct server *srv = c->srv;
    for (size_t i = 0; i < srv->read_count; i++)
        if (srv->reads[i] == c)
            srv->reads[i] = NULL;
    c->is_read_listed = false;
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    struct conn *c = container_of(w, struct conn, io);
    if (revents & EV_READ) {
        if (!is_batchable_read(c) || !list_read(c))
            on_read(c);
        if (c->is_closing)
            return;
    }
    if (revents & EV_WRITE)
        on_write(c);
}

/* ---- reading a turn's connections together (io_uring) ---- */

/* Where one batched read lands. */
struct batched_read {
    struct conn *c;
    uint8_t *dst;
    size_t room;
    bool is_direct; /* into c->in (the rest of a partial packet) */
};

static void on_batched_read(void *tag, int res, void *arg)
{
    (void)arg;
    struct batched_read *r = tag;
    struct conn *c = r->c;
    if (c->is_closing) {
        /* Closed by a packet read before it: its bytes go with it. */
        c->srv->stats.bytes_received += res > 0 ? (uint64_t)res : 0;
        return;
    }
    if (res <= 0) {
        if (read_must_wait(c, res == 0 ? 0 : -1, -res))
            update_write_watcher(c);
        return;
    }
    took_input(c, r->dst, (size_t)res, r->is_direct);
    /* A full slot: more may be waiting; one more read, as read_input would
     * have made with the whole scratch buffer. */
    if ((size_t)res == r->room && !c->is_closing)
        read_input(c);
    if (!c->is_closing)
        update_write_watcher(c);
}

/* Queues c's read into slot; false if there is nothing to read now. */
static bool queue_read(struct server *srv, struct conn *c, struct batched_read *r, uint8_t *slot)
{
    if (c->is_closing || c->wait != NULL)
        return false;
    c->read_wants_write = false;
    r->c = c;
    r->is_direct = read_target(c, slot, SERVER_URING_READ_ROOM, &r->dst, &r->room);
    return server_uring_queue_recv(srv->uring, c->fd, r->dst, r->room, r) == 0;
}

void conn_read_listed(struct server *srv)
{
    struct batched_read batch[SERVER_URING_READS];
    size_t next = 0;
    while (next < srv->read_count) {
        size_t n = 0;
        for (; next < srv->read_count && n < SERVER_URING_READS; next++) {
            struct conn *c = srv->reads[next];
            if (c == NULL)
                continue; /* freed since it was listed */
            c->is_read_listed = false;
            if (server_uring_is_broken(srv->uring)) {
                if (!c->is_closing)
                    read_input(c);
                continue;
            }
            if (queue_read(srv, c, &batch[n], srv->uring_in[n]))
                n++;
        }
        server_uring_run(srv->uring, on_batched_read, NULL);
    }
    srv->read_count = 0;
}

/* ---- the plain transport ---- */

static int plain_handshake(struct conn *c, char *why, size_t why_len)
{
    (void)why;
    (void)why_len;
    c->is_handshaking = false;
    return 1;
}

static ssize_t plain_read(struct conn *c, void *buf, size_t len)
{
    return read(c->fd, buf, len);
}

static ssize_t plain_writev(struct conn *c, const struct iovec *iov, int iovcnt)
{
    return writev(c->fd, iov, iovcnt);
}

static bool plain_has_pending(const struct conn *c)
{
    (void)c;
    return false;
}

static void plain_describe_error(const struct conn *c, int err, char *buf, size_t len)
{
    (void)c;
    snprintf(buf, len, "%s", strerror(err));
}

static void plain_close(struct conn *c)
{
    if (close(c->fd) < 0)
        log_debug("close fd %d: %s", c->fd, strerror(errno));
}

static const char *plain_stage(const struct conn *c)
{
    (void)c;
    return "TCP";
}

const struct conn_transport conn_transport_plain = {
    .name = "tcp",
    .handshake = plain_handshake,
    .read = plain_read,
    .writev = plain_writev,
    .has_pending = plain_has_pending,
    .describe_error = plain_describe_error,
    .close = plain_close,
    .stage = plain_stage,
};

/* ---- life cycle ---- */

/* A new conn on fd, plain or TLS as the listener says. Takes ownership of
 * fd: NULL when out of memory, with fd closed. */
static struct conn *conn_new(struct server *srv, const struct listener *l, int fd, const char *peer)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        return NULL;
    }
    c->srv = srv;
    c->fd = fd;
    c->tp = &conn_transport_plain;
    c->use_identity_as_username = l->use_identity_as_username;
    if (l->tls_ctx != NULL && tls_conn_start(c, l->tls_ctx) < 0)
        goto fail;
    if (l->is_websockets && ws_conn_start(c) < 0)
        goto fail;
    c->client = session_client_new(srv->mgr, c, peer);
    if (c->client == NULL)
        goto fail;
    if (l->auth != NULL)
        session_client_set_auth(c->client, l->auth);
    return c;
fail:
    c->tp->close(c); /* the socket, and the TLS state if any */
    free(c);
    return NULL;
}

void conn_accept(struct server *srv, const struct listener *l, int fd, const char *peer)
{
    struct conn *c = conn_new(srv, l, fd, peer);
    if (c == NULL) {
        log_warning("%s: refusing connection: out of memory", peer);
        srv->stats.connections_refused++;
        return;
    }
    ev_io_init(&c->io, on_io, fd, EV_READ);
    ev_init(&c->timer, on_timer);
    c->next = srv->conns;
    if (srv->conns != NULL)
        srv->conns->prev = c;
    srv->conns = c;
    srv->conn_count++;
    srv->stats.connections_total++;
    c->is_reading = true;
    io_update(c);
    c->is_connect_phase = true;
    arm_timer(c, srv->connect_timeout_s);
    log_debug("%s: connection accepted on %s (%s, %zu open)", peer, l->name, c->tp->name,
              srv->conn_count);
}

void conn_close(struct conn *c, enum session_close_reason reason)
{
    if (c->is_closing)
        return;
    c->is_closing = true;
    c->close_reason = reason;
    unlist_input_waiter(c);
    c->is_reading = false;
    c->is_write_armed = false;
    io_update(c);
    ev_timer_stop(c->srv->loop, &c->timer);
    c->next_close = c->srv->closing;
    c->srv->closing = c;
    if (c->out_pending > 0)
        list_write(c); /* one last attempt, e.g. a CONNACK refusing the client */
}

void conn_free(struct conn *c)
{
    struct server *srv = c->srv;
    if (c->client != NULL && srv->mgr != NULL)
        session_client_gone(srv->mgr, c->client, c->close_reason);
    c->client = NULL;
    if (c->is_write_listed)
        unlist_write(c);
    if (c->is_read_listed)
        unlist_read(c);
    ev_io_stop(srv->loop, &c->io);
    ev_timer_stop(srv->loop, &c->timer);
    c->tp->close(c);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    srv->conn_count--;
    out_clear(c);
    drop_input(c);
    free(c);
}

/* ---- the session sink ---- */

static int sink_send(void *conn, const struct iovec *iov, int iovcnt)
{
    struct conn *c = conn;
    if (out_append(c, iov, iovcnt) < 0)
        return -ENOMEM;
    list_write(c);
    return 0;
}

static int sink_send_ref(void *conn, const struct iovec *iov, int iovcnt, const void *data,
                         size_t len, void (*release)(void *ref), void *ref)
{
    struct conn *c = conn;
    int rc;
    if (len <= OUT_COPY_MAX && iovcnt < 4) {
        struct iovec all[4];
        for (int i = 0; i < iovcnt; i++)
            all[i] = iov[i];
        all[iovcnt] = (struct iovec){.iov_base = (void *)data, .iov_len = len};
        rc = out_append(c, all, iovcnt + 1);
        release(ref);
    } else {
        rc = out_append_ref(c, iov, iovcnt, data, len, release, ref);
    }
    if (rc < 0)
        return -ENOMEM;
    list_write(c);
    return 0;
}

static void sink_close(void *conn, const char *reason)
{
    struct conn *c = conn;
    if (c->is_closing)
        return;
    log_info("client %s: closing: %s", conn_name(c), reason);
    /* The manager asked for it and already knows why; PROTOCOL is the
     * unclean reason (the will fires), which fits takeover and errors. */
    conn_close(c, SESSION_CLOSE_PROTOCOL);
}

static void sink_set_keepalive(void *conn, uint16_t keepalive_s)
{
    struct conn *c = conn;
    if (c->is_closing)
        return;
    c->is_connect_phase = false;
    /* [MQTT-3.1.2-24]: one and a half times the keepalive; 0 disables it. */
    arm_timer(c, keepalive_s * 1.5);
}

static size_t sink_output_pending(void *conn)
{
    const struct conn *c = conn;
    return c->out_pending;
}

const struct session_sink conn_sink = {
    .send = sink_send,
    .close = sink_close,
    .set_keepalive = sink_set_keepalive,
    .output_pending = sink_output_pending,
    .send_ref = sink_send_ref,
};
