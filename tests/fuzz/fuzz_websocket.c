/*
 * fuzz_websocket.c - libFuzzer target for the WebSocket transport
 * (src/server/websocket.c over src/server/ws_upgrade.c): the HTTP upgrade
 * request, then frames, as they would arrive on one connection.
 *
 * Input: byte 0 picks max_packet_size (the frame limit); the rest is what
 * the client sends, handed to the transport by a fake inner transport in
 * reads of pseudo-random sizes (seeded by the input, so a run replays).
 * Meanwhile the driver writes a known byte pattern through the transport's
 * writev, which the fake transport accepts in pseudo-random partial writes
 * or refuses (EAGAIN), as a full socket would.
 *
 * Checked after each input: a read never returns more than asked; what the
 * transport wrote is an HTTP response, then (after a 101) well-formed
 * unmasked server frames (parsed back with wslay) whose binary payload is
 * exactly the pattern bytes writev reported as written, in order, with
 * control frames only between data frames. abort() marks such a broken
 * invariant of our own code; hostile input must only ever close.
 * Not for: the MQTT decoder (fuzz_stream) or the session manager.
 */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <wslay/wslay.h>

#include "server_internal.h"
#include "websocket.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PATTERN_LEN (48u * 1024u)
#define CAPTURE_MAX (256u * 1024u)
#define STEPS_MAX   4000

/* ---- what the transport needs from the rest of the server ---- */

const char *session_client_name(const struct session_client *client)
{
    (void)client;
    return "fuzz";
}

/* Only its address is compared (TLS or not). */
const struct conn_transport conn_transport_tls;

/* ---- the fake inner transport ---- */

static struct {
    const uint8_t *in;
    size_t in_len, in_off;
    uint32_t rng;
    uint8_t out[CAPTURE_MAX];
    size_t out_len;
} fake;

static uint8_t pattern[PATTERN_LEN];

static uint32_t next_rand(void)
{
    uint32_t x = fake.rng; /* xorshift32 */
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    fake.rng = x;
    return x;
}

static void die(const char *what)
{
    fprintf(stderr, "fuzz_websocket: invariant broken: %s\n", what);
    abort();
}

static int fake_handshake(struct conn *c, char *why, size_t why_len)
{
    (void)why;
    (void)why_len;
    c->is_handshaking = false;
    return 1;
}

static ssize_t fake_read(struct conn *c, void *buf, size_t len)
{
    (void)c;
    if (fake.in_off == fake.in_len) {
        errno = EAGAIN;
        return -1;
    }
    size_t n = 1 + next_rand() % 700;
    if (n > len)
        n = len;
    if (n > fake.in_len - fake.in_off)
        n = fake.in_len - fake.in_off;
    memcpy(buf, fake.in + fake.in_off, n);
    fake.in_off += n;
    return (ssize_t)n;
}

static ssize_t fake_writev(struct conn *c, const struct iovec *iov, int iovcnt)
{
    (void)c;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (total == 0)
        return 0;
    uint32_t mode = next_rand() % 4;
    if (mode == 0) {
        errno = EAGAIN;
        return -1;
    }
    size_t n = mode == 1 ? 1 + next_rand() % total : total;
    size_t left = n;
    for (int i = 0; i < iovcnt && left > 0; i++) {
        size_t k = iov[i].iov_len < left ? iov[i].iov_len : left;
        if (fake.out_len + k > CAPTURE_MAX)
            die("more output than the capture holds");
        memcpy(fake.out + fake.out_len, iov[i].iov_base, k);
        fake.out_len += k;
        left -= k;
    }
    return (ssize_t)n;
}

static bool fake_has_pending(const struct conn *c)
{
    (void)c;
    return false;
}

static void fake_describe_error(const struct conn *c, int err, char *buf, size_t len)
{
    (void)c;
    snprintf(buf, len, "%s", strerror(err));
}

static void fake_close(struct conn *c)
{
    (void)c;
}

static const char *fake_stage(const struct conn *c)
{
    (void)c;
    return "TCP";
}

static const struct conn_transport fake_transport = {
    .name = "fake",
    .handshake = fake_handshake,
    .read = fake_read,
    .writev = fake_writev,
    .has_pending = fake_has_pending,
    .describe_error = fake_describe_error,
    .close = fake_close,
    .stage = fake_stage,
};

/* ---- driving the transport ---- */

/* Writes the next pattern bytes in 1-3 iovecs; *sent counts what the
 * transport reported written. Returns false when the connection failed. */
static bool write_some(struct conn *c, size_t *sent)
{
    struct iovec iov[3];
    int cnt = 0;
    size_t off = *sent;
    for (int i = 0; i < 3 && off < PATTERN_LEN; i++) {
        size_t n = 1 + next_rand() % 20000;
        if (n > PATTERN_LEN - off)
            n = PATTERN_LEN - off;
        iov[cnt++] = (struct iovec){.iov_base = pattern + off, .iov_len = n};
        off += n;
    }
    bool has_own = c->tp->has_output != NULL && c->tp->has_output(c);
    if (cnt == 0 && !has_own)
        return true;
    ssize_t n = c->tp->writev(c, iov, cnt);
    if (n > 0) {
        *sent += (size_t)n;
        return true;
    }
    return n == 0 || errno == EAGAIN;
}

static bool read_some(struct conn *c)
{
    uint8_t buf[1024];
    size_t want = 1 + next_rand() % sizeof(buf);
    ssize_t n = c->tp->read(c, buf, want);
    if (n > 0 && (size_t)n > want)
        die("read returned more than asked");
    if (n == 0 || (n < 0 && errno != EAGAIN)) {
        char why[160];
        c->tp->describe_error(c, errno, why, sizeof(why));
        return false;
    }
    return true;
}

/* Handshake, then reads and writes until the input is used up or the
 * connection ends; then the output is drained as far as it goes. */
static void drive(struct conn *c, size_t *sent)
{
    char why[160];
    for (int step = 0; step < STEPS_MAX; step++) {
        if (c->is_handshaking) {
            int rc = c->tp->handshake(c, why, sizeof(why));
            if (rc < 0 || (rc == 0 && fake.in_off == fake.in_len && !c->handshake_wants_write))
                return;
            continue;
        }
        if (!read_some(c) || !write_some(c, sent))
            return;
        if (fake.in_off == fake.in_len && !c->tp->has_pending(c))
            break;
    }
    for (int step = 0; step < 64 && !c->is_handshaking; step++)
        if (!write_some(c, sent))
            return;
}

/* ---- checking what was written ---- */

static size_t parse_off;

static ssize_t replay_recv(uint8_t *buf, size_t len, int flags, void *user_data)
{
    (void)flags;
    (void)user_data;
    size_t n = fake.out_len - parse_off < len ? fake.out_len - parse_off : len;
    if (n == 0)
        return -1;
    memcpy(buf, fake.out + parse_off, n);
    parse_off += n;
    return (ssize_t)n;
}

static ssize_t replay_send(const uint8_t *d, size_t len, int flags, void *user_data)
{
    (void)d;
    (void)len;
    (void)flags;
    (void)user_data;
    return -1;
}

/* The frames after the 101: binary payload equals pattern[0..sent). */
static void check_frames(size_t sent)
{
    static const struct wslay_frame_callbacks callbacks = {.send_callback = replay_send,
                                                           .recv_callback = replay_recv};
    wslay_frame_context_ptr ctx = NULL;
    if (wslay_frame_context_init(&ctx, &callbacks, NULL) != 0)
        return;
    size_t got = 0;
    uint64_t left = 0; /* payload of the current frame still to come */
    uint8_t opcode = 0;
    for (size_t i = 0; i < CAPTURE_MAX; i++) {
        struct wslay_frame_iocb iocb;
        ssize_t r = wslay_frame_recv(ctx, &iocb);
        if (r == WSLAY_ERR_WANT_READ)
            break;
        if (r < 0 || iocb.mask || iocb.rsv || !iocb.fin)
            die("the transport wrote a malformed frame");
        if (left == 0) {
            left = iocb.payload_length;
            opcode = iocb.opcode;
        }
        left -= (uint64_t)r;
        if (opcode == WSLAY_BINARY_FRAME) {
            if (got + (size_t)r > sent || memcmp(pattern + got, iocb.data, (size_t)r) != 0)
                die("binary payload differs from what writev reported written");
            got += (size_t)r;
        } else if (opcode != WSLAY_PONG && opcode != WSLAY_CONNECTION_CLOSE) {
            die("unexpected opcode from the server");
        }
    }
    wslay_frame_context_free(ctx);
    /* Every byte writev reported written went out inside a frame. */
    if (got != sent)
        die("a written byte is missing from the frames");
}

static void check_output(size_t sent)
{
    const uint8_t *end = memmem(fake.out, fake.out_len, "\r\n\r\n", 4);
    static const char http[] = "HTTP/1.1 ";
    size_t prefix = fake.out_len < sizeof(http) - 1 ? fake.out_len : sizeof(http) - 1;
    if (memcmp(fake.out, http, prefix) != 0)
        die("output does not start with an HTTP response");
    if (end == NULL)
        return; /* nothing, or a response cut short by a partial write */
    parse_off = (size_t)(end + 4 - fake.out);
    if (memcmp(fake.out, "HTTP/1.1 101 ", 13) == 0)
        check_frames(sent);
    else if (memcmp(fake.out, "HTTP/1.1 400 ", 13) != 0 || sent != 0)
        die("neither a 101 nor a 400, or data after a 400");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    for (size_t i = 0; i < PATTERN_LEN; i++)
        pattern[i] = (uint8_t)(i * 7 + i / 251);
    struct server *srv = calloc(1, sizeof(*srv));
    struct conn *c = calloc(1, sizeof(*c));
    if (srv == NULL || c == NULL)
        goto done;
    srv->max_packet_size = data[0] == 0 ? 0 : (size_t)data[0] * 97;
    c->srv = srv;
    c->fd = -1;
    c->tp = &fake_transport;
    fake.in = data + 1;
    fake.in_len = size - 1;
    fake.in_off = 0;
    fake.out_len = 0;
    fake.rng = 0x9e3779b9u ^ (uint32_t)size;
    if (ws_conn_start(c) != 0)
        goto done;
    size_t sent = 0;
    drive(c, &sent);
    c->tp->close(c); /* says goodbye (400 or close frame) and frees the WebSocket state */
    check_output(sent);
done:
    free(c);
    free(srv);
    return 0;
}
