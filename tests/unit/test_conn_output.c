/*
 * test_conn_output.c - the connection's output queue (src/server/conn.c):
 * bytes copied into chunks and message payloads referenced in place
 * (session_sink send_ref), written with writev. writev is wrapped
 * (-Wl,--wrap=writev) so a test scripts short writes and EAGAIN; the
 * connection is a real struct conn on a socketpair, with a real session
 * manager on a store in a fresh temporary directory (conn_free() reports the
 * close to it). Not for: TLS (test_tls.py) or MQTT semantics.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cmocka.h>

#include "server_internal.h"
#include "session.h"
#include "store.h"

#include "server_fixture.h"

/* ---- writev mock: each call takes a scripted byte budget, -1 = EAGAIN ---- */

#define WRITE_BROKEN (-2) /* budget: fail with EPIPE */

static uint8_t written[1 << 20];
static size_t written_len;
static int writev_calls;

ssize_t __wrap_writev(int fd, const struct iovec *iov, int iovcnt);
ssize_t __wrap_writev(int fd, const struct iovec *iov, int iovcnt)
{
    (void)fd;
    writev_calls++;
    long budget = mock_type(long);
    if (budget < 0) {
        errno = budget == WRITE_BROKEN ? EPIPE : EAGAIN;
        return -1;
    }
    size_t n = 0;
    for (int i = 0; i < iovcnt && n < (size_t)budget; i++) {
        assert_true(iov[i].iov_len > 0); /* the queue never gathers an empty piece */
        size_t take = iov[i].iov_len;
        if (take > (size_t)budget - n)
            take = (size_t)budget - n;
        assert_true(written_len + take <= sizeof(written));
        memcpy(written + written_len, iov[i].iov_base, take);
        written_len += take;
        n += take;
    }
    return (ssize_t)n;
}

/* ---- a referenced payload that counts its releases ---- */

struct payload {
    uint8_t bytes[8192];
    int releases;
};

static void release_payload(void *ref)
{
    ((struct payload *)ref)->releases++;
}

static void fill_pattern(uint8_t *p, size_t len, uint8_t seed)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(seed + i * 7);
}

/* ---- fixture ---- */

struct fixture {
    struct server_shell sh;
    struct conn *c;
    int peer_fd;
    struct payload *pl;
};

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    server_shell_open(&f->sh, "/tmp/sol-test-conn-XXXXXX");
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    f->peer_fd = fds[1];

    struct conn *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    c->srv = f->sh.srv;
    c->fd = fds[0];
    c->tp = &conn_transport_plain;
    c->client = session_client_new(f->sh.mgr, c, "test-peer");
    assert_non_null(c->client);
    ev_io_init(&c->io, on_io, c->fd, EV_READ); /* not started: only writes are tested */
    ev_init(&c->timer, NULL);
    f->sh.srv->conns = c;
    f->sh.srv->conn_count = 1;
    f->c = c;

    f->pl = calloc(1, sizeof(*f->pl));
    assert_non_null(f->pl);
    fill_pattern(f->pl->bytes, sizeof(f->pl->bytes), 3);
    written_len = 0;
    writev_calls = 0;
    *state = f;
    return 0;
}

/* The connection's watcher is armed for EV_WRITE. */
static bool waits_for_write(const struct conn *c)
{
    return ev_is_active(&c->io) && (c->io.events & EV_WRITE) != 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->c != NULL)
        conn_free(f->c);
    close(f->peer_fd);
    int rc = server_shell_close(&f->sh);
    free(f->pl);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* Queues header + f->pl->bytes[0..len) by reference. */
static void send_ref(struct fixture *f, const uint8_t *header, size_t header_len, size_t len)
{
    struct iovec iov = {.iov_base = (void *)header, .iov_len = header_len};
    assert_int_equal(conn_sink.send_ref(f->c, &iov, 1, f->pl->bytes, len, release_payload, f->pl),
                     0);
}

static void send_bytes(struct fixture *f, const uint8_t *bytes, size_t len)
{
    struct iovec iov = {.iov_base = (void *)bytes, .iov_len = len};
    assert_int_equal(conn_sink.send(f->c, &iov, 1), 0);
}

/* ---- tests ---- */

static void test_ref_partial_writes_across_header_and_payload_keep_every_byte(void **state)
{
    struct fixture *f = *state;
    static const uint8_t header[10] = {0x30, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    send_ref(f, header, sizeof(header), 4000);
    assert_int_equal(conn_sink.output_pending(f->c), 4010);
    assert_int_equal(f->pl->releases, 0); /* referenced, not copied */

    will_return(__wrap_writev, 4);    /* inside the header */
    will_return(__wrap_writev, 8);    /* the header's end and the payload's start */
    will_return(__wrap_writev, 1000); /* inside the payload */
    will_return(__wrap_writev, -1);   /* EAGAIN */
    assert_false(conn_flush(f->c));
    assert_int_equal(written_len, 1012);
    assert_int_equal(conn_sink.output_pending(f->c), 4010 - 1012);
    assert_int_equal(f->pl->releases, 0);
    assert_true(waits_for_write(f->c)); /* waits for EV_WRITE */

    will_return(__wrap_writev, 2997); /* all but the last byte */
    will_return(__wrap_writev, 1);
    assert_true(conn_flush(f->c));
    assert_int_equal(f->pl->releases, 1); /* released once, when fully written */
    assert_int_equal(conn_sink.output_pending(f->c), 0);
    assert_int_equal(written_len, 4010);
    assert_memory_equal(written, header, sizeof(header));
    assert_memory_equal(written + sizeof(header), f->pl->bytes, 4000);
    assert_false(waits_for_write(f->c));
}

/* A socket that keeps taking a little at a time: after the attempt cap the
 * connection is listed to write on next round, not left waiting for an
 * EV_WRITE that never comes. */
static void test_write_cap_reached_writes_on_next_round(void **state)
{
    struct fixture *f = *state;
    static uint8_t bytes[100];
    fill_pattern(bytes, sizeof(bytes), 5);
    send_bytes(f, bytes, sizeof(bytes));
    for (int i = 0; i < 16; i++)
        will_return(__wrap_writev, 1);
    conn_write_listed(f->sh.srv);
    assert_int_equal(written_len, 16);
    assert_true(f->sh.srv->writes == f->c); /* listed again */
    will_return(__wrap_writev, 1 << 20);
    conn_write_listed(f->sh.srv);
    assert_int_equal(written_len, sizeof(bytes));
    assert_memory_equal(written, bytes, sizeof(bytes));
    assert_null(f->sh.srv->writes);
}

static void test_ref_eagain_keeps_queue_and_reference(void **state)
{
    struct fixture *f = *state;
    static const uint8_t header[3] = {0x30, 0xa0, 0x1f};
    send_ref(f, header, sizeof(header), 4000);
    will_return(__wrap_writev, -1);
    assert_false(conn_flush(f->c));
    assert_int_equal(written_len, 0);
    assert_int_equal(conn_sink.output_pending(f->c), 4003);
    assert_int_equal(f->pl->releases, 0);
    assert_true(waits_for_write(f->c));

    will_return(__wrap_writev, 1 << 20);
    assert_true(conn_flush(f->c));
    assert_int_equal(f->pl->releases, 1);
    assert_int_equal(written_len, 4003);
}

static void test_ref_released_once_when_connection_freed_unwritten(void **state)
{
    struct fixture *f = *state;
    static const uint8_t header[4] = {0x32, 0xa4, 0x1f, 0};
    send_ref(f, header, sizeof(header), 4000);
    send_ref(f, header, sizeof(header), 5000);
    will_return(__wrap_writev, 100); /* part of the first */
    will_return(__wrap_writev, -1);
    assert_false(conn_flush(f->c));
    assert_int_equal(f->pl->releases, 0);
    conn_free(f->c);
    f->c = NULL;
    assert_int_equal(f->pl->releases, 2); /* one per send_ref, no more */
}

static void test_ref_released_once_when_write_fails(void **state)
{
    struct fixture *f = *state;
    static const uint8_t header[2] = {0x30, 0};
    send_ref(f, header, sizeof(header), 4000);
    will_return(__wrap_writev, 2000);
    will_return(__wrap_writev, WRITE_BROKEN);
    assert_true(conn_flush(f->c)); /* nothing left to write: the queue was dropped */
    assert_true(f->c->is_closing);
    assert_int_equal(f->pl->releases, 1); /* the queue went with the socket */
    assert_int_equal(conn_sink.output_pending(f->c), 0);
    conn_free(f->c);
    f->c = NULL;
    assert_int_equal(f->pl->releases, 1);
}

static void test_small_ref_is_copied_and_released_at_once(void **state)
{
    struct fixture *f = *state;
    static const uint8_t header[2] = {0x30, 100};
    send_ref(f, header, sizeof(header), 100);
    assert_int_equal(f->pl->releases, 1); /* copied: the caller's bytes are free again */
    assert_int_equal(conn_sink.output_pending(f->c), 102);
    fill_pattern(f->pl->bytes, 100, 99); /* the queue holds its own copy */
    will_return(__wrap_writev, 1 << 20);
    assert_true(conn_flush(f->c));
    uint8_t expect[100];
    fill_pattern(expect, sizeof(expect), 3);
    assert_int_equal(written_len, 102);
    assert_memory_equal(written + 2, expect, sizeof(expect));
}

static void test_bytes_and_refs_leave_in_queue_order(void **state)
{
    struct fixture *f = *state;
    static const uint8_t ack[4] = {0x40, 2, 0, 1};
    static const uint8_t header[5] = {0x32, 0xa0, 0x1f, 0xaa, 0xbb};
    static const uint8_t ping[2] = {0xd0, 0};
    size_t expect_len = 0;
    uint8_t *expect = malloc(64 * (sizeof(ack) + sizeof(header) + 4000 + sizeof(ping)));
    assert_non_null(expect);
    for (int i = 0; i < 40; i++) { /* 120+ iovecs: more than one writev */
        send_bytes(f, ack, sizeof(ack));
        send_ref(f, header, sizeof(header), 4000 + (size_t)i);
        send_bytes(f, ping, sizeof(ping));
        memcpy(expect + expect_len, ack, sizeof(ack));
        expect_len += sizeof(ack);
        memcpy(expect + expect_len, header, sizeof(header));
        expect_len += sizeof(header);
        memcpy(expect + expect_len, f->pl->bytes, 4000 + (size_t)i);
        expect_len += 4000 + (size_t)i;
        memcpy(expect + expect_len, ping, sizeof(ping));
        expect_len += sizeof(ping);
    }
    assert_int_equal(conn_sink.output_pending(f->c), expect_len);
    /* Odd-sized short writes land on every kind of boundary. */
    for (int i = 0; i < 16; i++)
        will_return(__wrap_writev, 523 * (i + 1));
    assert_false(conn_flush(f->c));
    assert_true(f->pl->releases > 0 && f->pl->releases < 40);
    will_return(__wrap_writev, 1 << 20);
    assert_true(conn_flush(f->c));
    assert_int_equal(f->pl->releases, 40);
    assert_int_equal(written_len, expect_len);
    assert_memory_equal(written, expect, expect_len);
    free(expect);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_ref_partial_writes_across_header_and_payload_keep_every_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_cap_reached_writes_on_next_round, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ref_eagain_keeps_queue_and_reference, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ref_released_once_when_connection_freed_unwritten,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_ref_released_once_when_write_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_small_ref_is_copied_and_released_at_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bytes_and_refs_leave_in_queue_order, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
