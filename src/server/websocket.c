/*
 * websocket.c - the WebSocket transport: RFC 6455 between the byte transport
 * (plain TCP or TLS, "inner") and the MQTT decoder, behind the same struct
 * conn_transport, so conn.c and the session manager see a byte stream.
 *
 * Handshake: the inner handshake (TLS) first, then the HTTP upgrade request
 * (ws_upgrade.c), answered 101 or 400. It runs under the connection's CONNECT
 * deadline, so a trickled request is closed like a silent client.
 *
 * Frames are wslay's (its frame API: framing only, no I/O or buffering of
 * its own beyond one 4 KB read buffer). Input: the payload of binary frames,
 * however the client splits MQTT packets across frames, goes to conn.c as a
 * stream; nothing is allocated per frame, and a frame longer than
 * max_packet_size is refused from its header (close 1009). Ping is answered,
 * close is answered and ends the connection, and what RFC 6455 forbids
 * (unmasked, text, reserved bits or opcodes, broken fragmentation) is
 * refused with a close frame (1002, 1003).
 * Output: each writev becomes the payload of one binary frame (conn.c's
 * queue gathered up to 16 KB, or one large referenced payload as is). A
 * frame cut short by a full socket is finished by the next writev, which
 * conn.c calls with the same bytes; pong and close frames wait for the end
 * of the frame in progress. So output stays in conn.c's queue, bounded by
 * max_output_buffer_bytes, plus a 512-byte control buffer here.
 *
 * Not for: MQTT (conn.c, the session manager), HTTP parsing (ws_upgrade.c).
 */
#include "websocket.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <wslay/wslay.h>

#include "server_internal.h"
#include "log.h"
#include "mqtt.h"

/* A control frame's payload, at most (RFC 6455 5.5). */
#define WS_CONTROL_MAX 125
/* A frame header: 2 bytes, 8 of extended length, 4 of mask. */
#define WS_HEADER_MAX 14
/* Rounds of the receive loop per ws_read: a guard against our own bugs,
 * never reached by input. Each wslay_frame_recv call that does not end the
 * loop consumes at least one byte, and one ws_read sees at most the bytes
 * read past the upgrade request (16 KB), one socket read and what wslay
 * still buffers (4 KB each). */
#define WS_RECV_CALLS_MAX 65536
/* EINTR retries of one control-buffer write. */
#define WS_WRITE_RETRIES 4

struct ws_conn {
    const struct conn_transport *inner; /* plain or TLS, below us */
    bool is_inner_ready;                /* the inner handshake is done */
    struct ws_upgrade *upgrade;         /* until the request is answered */
    wslay_frame_context_ptr frames;     /* from the 101 on */
    /* Bytes read past the upgrade request: the first frames, given to wslay
     * before anything more is read from the socket. */
    uint8_t *early;
    size_t early_off, early_len;

    /* Our own output, written before the next data frame: the 101/400,
     * then pong and close frames. Never changed while partly written. */
    uint8_t ctl[WS_RESPONSE_MAX_BYTES];
    size_t ctl_off, ctl_len;
    bool is_to_ctl;  /* wslay's send callback appends to ctl */
    int write_errno; /* why the send callback's last write failed */
    /* The data frame being written: its header (taken from wslay, written
     * with the first payload bytes) and the payload still due. */
    uint8_t hdr[WS_HEADER_MAX];
    size_t hdr_off, hdr_len;
    uint64_t out_frame_len, out_frame_left;
    uint8_t pong[WS_CONTROL_MAX]; /* the last ping's payload, to echo */
    size_t pong_len;
    bool has_pong;
    uint16_t close_code; /* the close frame to send; 0: none yet */
    bool is_close_sent;

    /* Input: payload wslay returned and conn.c has not taken yet (points
     * into wslay's read buffer, valid until the next wslay_frame_recv). */
    const uint8_t *rx;
    size_t rx_len;
    uint64_t rx_frame_left; /* payload of the current frame still to come */
    uint8_t rx_opcode;
    bool is_in_message;             /* a fragmented binary message goes on */
    uint8_t ctl_in[WS_CONTROL_MAX]; /* a control frame's payload so far */
    size_t ctl_in_len;
    bool is_close_received;
    bool is_rx_full; /* the last read filled conn.c's buffer: more may be ready */
    /* What the recv callback met during one ws_read. */
    bool has_read_socket; /* one socket read per ws_read, as for TCP */
    bool is_eof;
    int read_errno;
    bool is_broken;  /* the socket failed: no close frame */
    const char *why; /* the protocol error that ends the connection */
};

static const char *conn_name(const struct conn *c)
{
    return session_client_name(c->client);
}

/* ---- our own output ---- */

/* Writes what ctl holds. Returns 1 when it is all written, 0 when the socket
 * is full (errno EAGAIN), -1 when the connection failed (errno set). */
static int flush_ctl(struct conn *c)
{
    struct ws_conn *ws = c->ws;
    int retries = 0;
    while (ws->ctl_off < ws->ctl_len) {
        struct iovec iov = {.iov_base = ws->ctl + ws->ctl_off,
                            .iov_len = ws->ctl_len - ws->ctl_off};
        ssize_t n = ws->inner->writev(c, &iov, 1);
        if (n > 0) {
            ws->ctl_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR && retries++ < WS_WRITE_RETRIES)
            continue;
        if (n == 0 || errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            errno = EAGAIN;
            return 0;
        }
        ws->is_broken = true;
        return -1;
    }
    ws->ctl_off = ws->ctl_len = 0;
    return 1;
}

static bool is_at_frame_boundary(const struct ws_conn *ws)
{
    return ws->out_frame_left == 0 && ws->hdr_len == 0;
}

/* Serialises one control frame into the empty ctl buffer with wslay. */
static void queue_control(struct ws_conn *ws, uint8_t opcode, const uint8_t *data, size_t len)
{
    struct wslay_frame_iocb iocb = {
        .fin = 1, .opcode = opcode, .payload_length = len, .data = data, .data_length = len};
    ws->is_to_ctl = true;
    ssize_t n = wslay_frame_send(ws->frames, &iocb);
    ws->is_to_ctl = false;
    if (n < 0) /* cannot happen: ctl has room for any control frame */
        log_warning("websocket: cannot encode a control frame: wslay error %zd", n);
}

static void queue_close(struct ws_conn *ws)
{
    uint8_t payload[WS_CONTROL_MAX];
    size_t len = 2;
    payload[0] = (uint8_t)(ws->close_code >> 8);
    payload[1] = (uint8_t)(ws->close_code & 0xff);
    if (ws->why != NULL && strlen(ws->why) <= WS_CONTROL_MAX - 2) {
        memcpy(payload + 2, ws->why, strlen(ws->why)); /* the reason, for the peer's log */
        len += strlen(ws->why);
    }
    queue_control(ws, WSLAY_CONNECTION_CLOSE, payload, len);
    ws->is_close_sent = true;
}

/* Moves the pending pong, or the close frame when may_close (no MQTT bytes
 * left to send before it), into the empty ctl buffer. Returns true if it did. */
static bool queue_next_control(struct ws_conn *ws, bool may_close)
{
    if (ws->frames == NULL || ws->ctl_len > 0 || !is_at_frame_boundary(ws) || ws->is_close_sent)
        return false;
    if (ws->has_pong) {
        ws->has_pong = false;
        queue_control(ws, WSLAY_PONG, ws->pong, ws->pong_len);
        return true;
    }
    if (may_close && ws->close_code != 0) {
        queue_close(ws);
        return true;
    }
    return false;
}

/* Writes ctl, refilling it with pending control frames. 1: all written;
 * 0: blocked (errno EAGAIN); -1: failed. */
static int flush_control(struct conn *c, bool may_close)
{
    for (int round = 0; round < 3; round++) {
        int rc = flush_ctl(c);
        if (rc <= 0)
            return rc;
        if (!queue_next_control(c->ws, may_close))
            return 1;
    }
    return 1;
}

/* ---- wslay's callbacks ---- */

/* The header of a data frame comes first, flagged WSLAY_MSG_MORE: it is
 * kept and written in one writev with the payload that follows, so a frame
 * costs one syscall (one TLS record), not two. */
static ssize_t send_payload(struct conn *c, const uint8_t *data, size_t len)
{
    struct ws_conn *ws = c->ws;
    size_t hdr_left = ws->hdr_len - ws->hdr_off;
    struct iovec iov[2] = {{.iov_base = ws->hdr + ws->hdr_off, .iov_len = hdr_left},
                           {.iov_base = (void *)data, .iov_len = len}};
    ssize_t n = hdr_left > 0 ? ws->inner->writev(c, iov, 2) : ws->inner->writev(c, iov + 1, 1);
    if (n < 0) {
        ws->write_errno = errno;
        return -1;
    }
    if ((size_t)n < hdr_left) {
        ws->hdr_off += (size_t)n;
        ws->write_errno = EAGAIN;
        return -1;
    }
    ws->hdr_off = ws->hdr_len = 0;
    n -= (ssize_t)hdr_left;
    if (n == 0) {
        ws->write_errno = EAGAIN;
        return -1;
    }
    return n;
}

static ssize_t on_wslay_send(const uint8_t *data, size_t len, int flags, void *user_data)
{
    struct conn *c = user_data;
    struct ws_conn *ws = c->ws;
    uint8_t *dst = ws->is_to_ctl ? ws->ctl : ws->hdr;
    size_t *used = ws->is_to_ctl ? &ws->ctl_len : &ws->hdr_len;
    size_t cap = ws->is_to_ctl ? sizeof(ws->ctl) : sizeof(ws->hdr);
    if (ws->is_to_ctl || (flags & WSLAY_MSG_MORE)) {
        if (len > cap - *used)
            return -1;
        memcpy(dst + *used, data, len);
        *used += len;
        return (ssize_t)len;
    }
    return send_payload(c, data, len);
}

/* Bytes read past the upgrade request first; then at most one read from
 * the socket per ws_read, so a fast sender gets its turn like a TCP one. */
static ssize_t on_wslay_recv(uint8_t *buf, size_t len, int flags, void *user_data)
{
    (void)flags;
    struct conn *c = user_data;
    struct ws_conn *ws = c->ws;
    if (ws->early_off < ws->early_len) {
        size_t n = ws->early_len - ws->early_off < len ? ws->early_len - ws->early_off : len;
        memcpy(buf, ws->early + ws->early_off, n);
        ws->early_off += n;
        return (ssize_t)n;
    }
    if (ws->early != NULL) {
        free(ws->early);
        ws->early = NULL;
    }
    if (ws->has_read_socket)
        return -1; /* wslay returns WANT_READ; EV_READ brings us back */
    ssize_t n = ws->inner->read(c, buf, len);
    ws->has_read_socket = true;
    if (n > 0)
        return n;
    if (n == 0)
        ws->is_eof = true;
    else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        ws->read_errno = errno;
    return -1;
}

static const struct wslay_frame_callbacks wslay_callbacks = {
    .send_callback = on_wslay_send,
    .recv_callback = on_wslay_recv,
};

/* ---- the handshake ---- */

/* Queues the response (101 or 400) into ctl. */
static void queue_response(struct ws_conn *ws)
{
    ws->ctl_off = 0;
    ws->ctl_len = ws_upgrade_response(ws->upgrade, (char *)ws->ctl, sizeof(ws->ctl));
}

/* The request is valid: keep the bytes after it, start framing. */
static int accept_upgrade(struct conn *c, const uint8_t *rest, size_t rest_len)
{
    struct ws_conn *ws = c->ws;
    if (rest_len > 0) {
        ws->early = malloc(rest_len);
        if (ws->early == NULL)
            return -1;
        memcpy(ws->early, rest, rest_len);
        ws->early_len = rest_len;
    }
    if (wslay_frame_context_init(&ws->frames, &wslay_callbacks, c) != 0) {
        ws->frames = NULL;
        return -1;
    }
    log_debug("client %s: WebSocket upgrade accepted (subprotocol %s)", conn_name(c),
              ws_upgrade_subprotocol(ws->upgrade) ? ws_upgrade_subprotocol(ws->upgrade) : "none");
    queue_response(ws);
    ws_upgrade_free(ws->upgrade);
    ws->upgrade = NULL;
    return 0;
}

/*
 * Reads the upgrade request. Returns 1 when it is complete and valid (the
 * 101 is queued), 0 when more is needed, -1 when refused (a 400 is queued,
 * written by the close) or the socket failed, with a reason in why. Each
 * read feeds at least one byte and the request is capped at
 * WS_UPGRADE_MAX_BYTES, so the loop ends.
 */
static int read_request(struct conn *c, char *why, size_t why_len)
{
    struct ws_conn *ws = c->ws;
    uint8_t *buf = c->srv->scratch;
    for (;;) {
        ssize_t n = ws->inner->read(c, buf, sizeof(c->srv->scratch));
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            if (n == 0)
                snprintf(why, why_len, "connection closed by peer");
            else
                ws->inner->describe_error(c, errno, why, why_len);
            ws->is_broken = true;
            return -1;
        }
        if (n < 0) {
            c->handshake_wants_write = c->read_wants_write;
            return 0;
        }
        size_t used = 0;
        int rc = ws_upgrade_feed(ws->upgrade, buf, (size_t)n, &used);
        if (rc == WS_UPGRADE_MORE)
            continue;
        if (rc == WS_UPGRADE_BAD) {
            snprintf(why, why_len, "bad upgrade request: %s", ws_upgrade_error(ws->upgrade));
            queue_response(ws);
            return -1;
        }
        if (accept_upgrade(c, buf + used, (size_t)n - used) < 0) {
            snprintf(why, why_len, "out of memory");
            return -1;
        }
        return 1;
    }
}

static int ws_handshake(struct conn *c, char *why, size_t why_len)
{
    struct ws_conn *ws = c->ws;
    if (!ws->is_inner_ready) {
        int rc = ws->inner->handshake(c, why, why_len);
        if (rc <= 0)
            return rc;
        ws->is_inner_ready = true;
        c->is_handshaking = true; /* the upgrade request is still to come */
        c->handshake_wants_write = false;
    }
    if (ws->upgrade != NULL) {
        int rc = read_request(c, why, why_len);
        if (rc <= 0)
            return rc;
    }
    int rc = flush_ctl(c); /* the 101 */
    if (rc < 0) {
        ws->inner->describe_error(c, errno, why, why_len);
        return -1;
    }
    if (rc == 0) {
        c->handshake_wants_write = !c->write_wants_read;
        return 0;
    }
    c->is_handshaking = false;
    return 1;
}

/* ---- reading ---- */

static void protocol_error(struct ws_conn *ws, uint16_t code, const char *why)
{
    if (ws->why == NULL) {
        ws->why = why;
        ws->close_code = code;
    }
}

/* RFC 6455 5.5.1: a close payload is empty or starts with a 2-byte code. */
static void handle_control(struct ws_conn *ws)
{
    switch (ws->rx_opcode) {
    case WSLAY_PING:
        /* Only the latest ping needs its pong (RFC 6455 5.5.3). */
        memcpy(ws->pong, ws->ctl_in, ws->ctl_in_len);
        ws->pong_len = ws->ctl_in_len;
        ws->has_pong = true;
        break;
    case WSLAY_CONNECTION_CLOSE:
        if (ws->ctl_in_len == 1) {
            protocol_error(ws, WSLAY_CODE_PROTOCOL_ERROR, "close frame of 1 byte");
            break;
        }
        ws->is_close_received = true;
        if (ws->close_code == 0)
            ws->close_code = WSLAY_CODE_NORMAL_CLOSURE;
        break;
    default: /* pong: nothing to do */
        break;
    }
}

/* The largest frame a client may send: one MQTT packet of the largest size
 * allowed, or several smaller ones. */
static uint64_t frame_limit(const struct conn *c)
{
    size_t max = c->srv->max_packet_size;
    return max != 0 ? max : (uint64_t)MQTT_MAX_REMAINING_LENGTH + 5;
}

/* Checks the header of a new frame (RFC 6455 5.2-5.5). Returns 0, or -1
 * after protocol_error(). */
static int check_frame(struct conn *c, const struct wslay_frame_iocb *iocb)
{
    struct ws_conn *ws = c->ws;
    if (!iocb->mask) {
        protocol_error(ws, WSLAY_CODE_PROTOCOL_ERROR, "unmasked frame"); /* 5.1 */
        return -1;
    }
    if (iocb->rsv != 0) {
        protocol_error(ws, WSLAY_CODE_PROTOCOL_ERROR, "reserved bits set"); /* no extensions */
        return -1;
    }
    switch (iocb->opcode) {
    case WSLAY_CONTINUATION_FRAME:
        if (!ws->is_in_message)
            protocol_error(ws, WSLAY_CODE_PROTOCOL_ERROR, "continuation frame outside a message");
        break;
    case WSLAY_BINARY_FRAME:
        if (ws->is_in_message)
            protocol_error(ws, WSLAY_CODE_PROTOCOL_ERROR, "new message inside a fragmented one");
        break;
    case WSLAY_TEXT_FRAME:
        /* MQTT 3.1.1 section 6: MQTT goes in binary frames only. */
        protocol_error(ws, WSLAY_CODE_UNSUPPORTED_DATA, "text frame (MQTT needs binary frames)");
        break;
    case WSLAY_CONNECTION_CLOSE:
    case WSLAY_PING:
    case WSLAY_PONG:
        return 0; /* wslay checked fin and the 125-byte limit */
    default:
        protocol_error(ws, WSLAY_CODE_PROTOCOL_ERROR, "reserved opcode");
        break;
    }
    if (ws->why == NULL && iocb->payload_length > frame_limit(c))
        protocol_error(ws, WSLAY_CODE_MESSAGE_TOO_BIG, "frame larger than max_packet_size");
    if (ws->why != NULL)
        return -1;
    ws->is_in_message = !iocb->fin;
    return 0;
}

/* Takes one chunk wslay returned: data payload is offered to conn.c,
 * control payload is collected and acted on when complete. */
static void take_chunk(struct conn *c, const struct wslay_frame_iocb *iocb, size_t n)
{
    struct ws_conn *ws = c->ws;
    if (ws->rx_frame_left == 0) { /* the previous frame is done: a new one */
        if (check_frame(c, iocb) < 0)
            return;
        ws->rx_frame_left = iocb->payload_length;
        ws->rx_opcode = iocb->opcode;
        ws->ctl_in_len = 0;
    }
    ws->rx_frame_left -= n;
    if (!wslay_is_ctrl_frame(ws->rx_opcode)) {
        ws->rx = iocb->data;
        ws->rx_len = n;
        return;
    }
    if (n > sizeof(ws->ctl_in) - ws->ctl_in_len) { /* wslay bounds it; never trust it twice */
        protocol_error(ws, WSLAY_CODE_PROTOCOL_ERROR, "control frame too long");
        return;
    }
    memcpy(ws->ctl_in + ws->ctl_in_len, iocb->data, n);
    ws->ctl_in_len += n;
    if (ws->rx_frame_left == 0)
        handle_control(ws);
}

/* Moves pending payload into buf[*got..len). */
static void give_payload(struct ws_conn *ws, uint8_t *buf, size_t len, size_t *got)
{
    size_t n = ws->rx_len < len - *got ? ws->rx_len : len - *got;
    memcpy(buf + *got, ws->rx, n);
    ws->rx += n;
    ws->rx_len -= n;
    *got += n;
}

/* Runs wslay over what is buffered and one socket read, until buf is full,
 * more input is needed, or the connection must end. */
static void receive(struct conn *c, uint8_t *buf, size_t len, size_t *got)
{
    struct ws_conn *ws = c->ws;
    for (int i = 0; i < WS_RECV_CALLS_MAX; i++) {
        if (ws->rx_len > 0) {
            give_payload(ws, buf, len, got);
            if (*got == len) {
                ws->is_rx_full = true;
                return;
            }
            continue;
        }
        if (ws->why != NULL || ws->is_close_received)
            return;
        struct wslay_frame_iocb iocb;
        ssize_t r = wslay_frame_recv(ws->frames, &iocb);
        if (r == WSLAY_ERR_WANT_READ)
            return;
        if (r < 0) {
            protocol_error(ws, WSLAY_CODE_PROTOCOL_ERROR, "malformed frame header");
            return;
        }
        take_chunk(c, &iocb, (size_t)r);
    }
    ws->is_rx_full = true; /* not reached (see WS_RECV_CALLS_MAX); come back for the rest */
}

static ssize_t ws_read(struct conn *c, void *buf, size_t len)
{
    struct ws_conn *ws = c->ws;
    ws->has_read_socket = false;
    ws->is_eof = false;
    ws->read_errno = 0;
    ws->is_rx_full = false;
    size_t got = 0;
    receive(c, buf, len, &got);
    if (got > 0)
        return (ssize_t)got; /* an error or close found after it waits for the next call */
    if (ws->why != NULL) {
        errno = EPROTO;
        return -1;
    }
    if (ws->is_close_received || ws->is_eof)
        return 0;
    if (ws->read_errno != 0) {
        ws->is_broken = true;
        errno = ws->read_errno;
        return -1;
    }
    errno = EAGAIN;
    return -1;
}

/* ---- writing ---- */

/* One frame's worth of the queue: the first iov as is when it is large,
 * else the first iovs gathered into srv->ws_out. A retry sees the same
 * leading bytes, at least as many (the queue only grows at its tail). */
static const uint8_t *gather(struct conn *c, const struct iovec *iov, int iovcnt, size_t *len)
{
    if (iovcnt == 1 || iov[0].iov_len >= sizeof(c->srv->ws_out)) {
        *len = iov[0].iov_len;
        return iov[0].iov_base;
    }
    size_t used = 0;
    for (int i = 0; i < iovcnt && used < sizeof(c->srv->ws_out); i++) {
        size_t n = iov[i].iov_len;
        if (n > sizeof(c->srv->ws_out) - used)
            n = sizeof(c->srv->ws_out) - used;
        memcpy(c->srv->ws_out + used, iov[i].iov_base, n);
        used += n;
    }
    *len = used;
    return c->srv->ws_out;
}

/* Sends (part of) one binary frame of the queue's head. Returns payload
 * bytes written, or -1 with errno (EAGAIN: the socket is full). */
static ssize_t send_data(struct conn *c, const struct iovec *iov, int iovcnt)
{
    struct ws_conn *ws = c->ws;
    size_t len = 0;
    const uint8_t *data = gather(c, iov, iovcnt, &len);
    if (ws->out_frame_left == 0) {
        ws->out_frame_len = len;
        ws->out_frame_left = len;
    } else if (len > ws->out_frame_left) {
        len = (size_t)ws->out_frame_left;
    }
    struct wslay_frame_iocb iocb = {.fin = 1,
                                    .opcode = WSLAY_BINARY_FRAME,
                                    .payload_length = ws->out_frame_len,
                                    .data = data,
                                    .data_length = len};
    ws->write_errno = EAGAIN;
    ssize_t n = wslay_frame_send(ws->frames, &iocb);
    if (n > 0) {
        ws->out_frame_left -= (uint64_t)n;
        return n;
    }
    if (n == WSLAY_ERR_WANT_WRITE) {
        bool is_full =
            ws->write_errno == EAGAIN || ws->write_errno == EWOULDBLOCK || ws->write_errno == EINTR;
        if (!is_full)
            ws->is_broken = true;
        errno = is_full ? EAGAIN : ws->write_errno;
        return -1;
    }
    log_warning("client %s: WebSocket: cannot encode a frame: wslay error %zd", conn_name(c), n);
    errno = EPROTO;
    return -1;
}

static ssize_t ws_writev(struct conn *c, const struct iovec *iov, int iovcnt)
{
    struct ws_conn *ws = c->ws;
    if (is_at_frame_boundary(ws)) {
        int rc = flush_control(c, iovcnt == 0);
        if (rc <= 0)
            return -1; /* errno set */
    }
    if (iovcnt == 0)
        return 0;
    if (ws->is_close_sent) {
        errno = EPIPE; /* nothing may follow a close frame */
        return -1;
    }
    return send_data(c, iov, iovcnt);
}

/* ---- the rest of the transport ---- */

static bool ws_has_pending(const struct conn *c)
{
    const struct ws_conn *ws = c->ws;
    return ws->rx_len > 0 || ws->early_off < ws->early_len || ws->is_rx_full || ws->why != NULL ||
           ws->is_close_received || ws->inner->has_pending(c);
}

static bool ws_has_output(const struct conn *c)
{
    const struct ws_conn *ws = c->ws;
    return ws->ctl_off < ws->ctl_len || ws->has_pong ||
           (ws->frames != NULL && ws->close_code != 0 && !ws->is_close_sent);
}

static void ws_describe_error(const struct conn *c, int err, char *buf, size_t len)
{
    const struct ws_conn *ws = c->ws;
    if (err == EPROTO && ws->why != NULL)
        snprintf(buf, len, "WebSocket: %s (close %u)", ws->why, (unsigned)ws->close_code);
    else
        ws->inner->describe_error(c, err, buf, len);
}

static const char *ws_stage(const struct conn *c)
{
    const struct ws_conn *ws = c->ws;
    return ws->is_inner_ready ? "WebSocket" : ws->inner->stage(c);
}

/* Says goodbye when the socket still works: the 400, or a close frame
 * (RFC 6455 7.1.1: the server closes first), once and without blocking. */
static void say_goodbye(struct conn *c)
{
    struct ws_conn *ws = c->ws;
    if (ws->is_broken || !ws->is_inner_ready || !is_at_frame_boundary(ws))
        return;
    if (ws->frames != NULL && ws->close_code == 0)
        ws->close_code = WSLAY_CODE_NORMAL_CLOSURE;
    flush_control(c, true);
}

static void ws_close(struct conn *c)
{
    struct ws_conn *ws = c->ws;
    say_goodbye(c);
    c->ws = NULL;
    c->tp = ws->inner;
    c->tp->close(c);
    ws_upgrade_free(ws->upgrade);
    if (ws->frames != NULL)
        wslay_frame_context_free(ws->frames);
    free(ws->early);
    free(ws);
}

#define WS_TRANSPORT(tp_name)                                                                      \
    {                                                                                              \
        .name = tp_name, .handshake = ws_handshake, .read = ws_read, .writev = ws_writev,          \
        .has_pending = ws_has_pending, .describe_error = ws_describe_error, .close = ws_close,     \
        .stage = ws_stage, .has_output = ws_has_output,                                            \
    }

const struct conn_transport conn_transport_ws = WS_TRANSPORT("ws");
const struct conn_transport conn_transport_wss = WS_TRANSPORT("wss");

int ws_conn_start(struct conn *c)
{
    struct ws_conn *ws = calloc(1, sizeof(*ws));
    if (ws == NULL)
        return -ENOMEM;
    ws->upgrade = ws_upgrade_new();
    if (ws->upgrade == NULL) {
        free(ws);
        return -ENOMEM;
    }
    ws->inner = c->tp;
    c->ws = ws;
    c->tp = c->tp == &conn_transport_tls ? &conn_transport_wss : &conn_transport_ws;
    c->is_handshaking = true;
    return 0;
}
