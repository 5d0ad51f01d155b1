/*
 * test_uring.c - batched socket I/O through io_uring (src/server/uring.c) and
 * the connection paths that use it (conn.c: conn_read_listed,
 * conn_write_listed). Real sockets (socketpairs and loopback TCP), a real
 * kernel ring; every operation must finish during the submit, so a test that
 * would block instead fails on the alarm. Not for: TLS or WebSockets (they
 * never take these paths) or MQTT semantics.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "server_internal.h"
#include "session.h"
#include "store.h"
#include "uring.h"

#include "server_fixture.h"

/* ---- the ring alone ---- */

struct result {
    void *tag;
    int res;
};

struct results {
    struct result r[SERVER_URING_BATCH];
    size_t n;
};

static void record(void *tag, int res, void *arg)
{
    struct results *rs = arg;
    rs->r[rs->n++] = (struct result){tag, res};
}

static struct server_uring *new_ring(void)
{
    struct server_uring *u;
    int rc = server_uring_new(&u);
    if (rc < 0)
        fail_msg("io_uring_setup failed: %s (the broker would fall back; this test needs it)",
                 strerror(-rc));
    return u;
}

static void pair(int fds[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
}

static void test_sends_and_recvs_report_in_queue_order(void **state)
{
    (void)state;
    struct server_uring *u = new_ring();
    int a[2], b[2], c[2];
    pair(a);
    pair(b);
    pair(c);
    struct iovec two[2] = {{"hel", 3}, {"lo", 2}}, one = {"abc", 3};
    assert_int_equal(server_uring_queue_send(u, b[0], two, 2, "B"), 0);
    assert_int_equal(server_uring_queue_send(u, a[0], &one, 1, "A"), 0);
    assert_int_equal(server_uring_room(u), SERVER_URING_BATCH - 2);
    struct results rs = {0};
    assert_int_equal(server_uring_run(u, record, &rs), 0);
    assert_int_equal(rs.n, 2);
    assert_string_equal(rs.r[0].tag, "B");
    assert_int_equal(rs.r[0].res, 5);
    assert_string_equal(rs.r[1].tag, "A");
    assert_int_equal(rs.r[1].res, 3);

    char in_b[16] = {0}, in_a[16] = {0}, in_c[16] = {0};
    assert_int_equal(server_uring_queue_recv(u, c[1], in_c, sizeof(in_c), "C"), 0);
    assert_int_equal(server_uring_queue_recv(u, b[1], in_b, sizeof(in_b), "B"), 0);
    assert_int_equal(server_uring_queue_recv(u, a[1], in_a, sizeof(in_a), "A"), 0);
    rs.n = 0;
    alarm(10); /* a recv that waited for data would hang here */
    assert_int_equal(server_uring_run(u, record, &rs), 0);
    alarm(0);
    assert_int_equal(rs.n, 3);
    assert_int_equal(rs.r[0].res, -EAGAIN); /* nothing was sent on c */
    assert_int_equal(rs.r[1].res, 5);
    assert_memory_equal(in_b, "hello", 5);
    assert_int_equal(rs.r[2].res, 3);
    assert_memory_equal(in_a, "abc", 3);
    for (int i = 0; i < 2; i++) {
        close(a[i]);
        close(b[i]);
        close(c[i]);
    }
    server_uring_free(u);
}

static void test_end_of_stream_full_socket_and_gone_peer(void **state)
{
    (void)state;
    struct server_uring *u = new_ring();
    int eof[2], full[2], gone[2];
    pair(eof);
    pair(full);
    pair(gone);
    close(eof[1]);
    close(gone[1]);
    int small = 4096;
    assert_int_equal(setsockopt(full[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    static uint8_t big[1 << 20];
    struct iovec iov = {big, sizeof(big)};
    uint8_t in[16];
    assert_int_equal(server_uring_queue_recv(u, eof[0], in, sizeof(in), "eof"), 0);
    assert_int_equal(server_uring_queue_send(u, full[0], &iov, 1, "full"), 0);
    assert_int_equal(server_uring_queue_send(u, gone[0], &iov, 1, "gone"), 0);
    struct results rs = {0};
    alarm(10); /* a send that waited for room would hang here */
    assert_int_equal(server_uring_run(u, record, &rs), 0);
    alarm(0);
    assert_int_equal(rs.r[0].res, 0);
    assert_true(rs.r[1].res > 0 && rs.r[1].res < (int)sizeof(big)); /* short, not blocked */
    assert_int_equal(rs.r[2].res, -EPIPE); /* and no SIGPIPE killed the test */

    rs.n = 0; /* the full socket stays full: now nothing fits */
    assert_int_equal(server_uring_queue_send(u, full[0], &iov, 1, "full"), 0);
    assert_int_equal(server_uring_run(u, record, &rs), 0);
    assert_int_equal(rs.r[0].res, -EAGAIN);
    close(eof[0]);
    close(gone[0]);
    close(full[0]);
    close(full[1]);
    server_uring_free(u);
}

static void test_a_full_batch_refuses_more(void **state)
{
    (void)state;
    struct server_uring *u = new_ring();
    int p[2];
    pair(p);
    uint8_t in[1];
    for (int i = 0; i < SERVER_URING_BATCH; i++)
        assert_int_equal(server_uring_queue_recv(u, p[0], in, 1, NULL), 0);
    assert_int_equal(server_uring_room(u), 0);
    assert_int_equal(server_uring_queue_recv(u, p[0], in, 1, NULL), -ENOSPC);
    struct iovec iov = {"x", 1};
    assert_int_equal(server_uring_queue_send(u, p[0], &iov, 1, NULL), -ENOSPC);
    struct results rs = {0};
    assert_int_equal(server_uring_run(u, record, &rs), 0);
    assert_int_equal(rs.n, SERVER_URING_BATCH);
    assert_int_equal(server_uring_room(u), SERVER_URING_BATCH); /* usable again */
    close(p[0]);
    close(p[1]);
    server_uring_free(u);
}

/* Replaces the ring's file descriptor with /dev/null, so the next
 * io_uring_enter fails as a broken ring would (the mapped queues stay). */
static void break_ring(void)
{
    char path[64], target[64];
    int broken = 0;
    for (int fd = 3; fd < 1024; fd++) {
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, target, sizeof(target) - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        if (strstr(target, "io_uring") == NULL)
            continue;
        int null_fd = open("/dev/null", O_RDWR);
        assert_true(null_fd >= 0);
        assert_int_equal(dup2(null_fd, fd), fd);
        close(null_fd);
        broken++;
    }
    assert_int_equal(broken, 1);
}

static void test_a_failed_submit_breaks_the_ring_for_good(void **state)
{
    (void)state;
    struct server_uring *u = new_ring();
    int p[2];
    pair(p);
    break_ring();
    struct iovec iov = {"abc", 3};
    assert_int_equal(server_uring_queue_send(u, p[0], &iov, 1, "S"), 0);
    struct results rs = {0};
    assert_int_equal(server_uring_run(u, record, &rs), -EIO);
    assert_int_equal(rs.n, 1);
    assert_int_equal(rs.r[0].res, -EAGAIN); /* never ran: nothing was sent */
    uint8_t in[4];
    assert_int_equal(recv(p[1], in, sizeof(in), MSG_DONTWAIT), -1);
    assert_true(server_uring_is_broken(u));
    assert_int_equal(server_uring_queue_send(u, p[0], &iov, 1, "S"), -ENOSPC);
    close(p[0]);
    close(p[1]);
    server_uring_free(u);
}

/* ---- connections ---- */

#define CONNS 3

struct fixture {
    struct server_shell sh;
    struct listener listener;
    int peer[CONNS]; /* the client ends */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    server_shell_open(&f->sh, "/tmp/sol-test-uring-XXXXXX"); /* anonymous clients allowed */
    f->sh.srv->uring = new_ring();
    snprintf(f->listener.name, sizeof(f->listener.name), "test");
    f->listener.srv = f->sh.srv;
    for (int i = 0; i < CONNS; i++) {
        int fds[2];
        pair(fds);
        f->peer[i] = fds[1];
        conn_accept(f->sh.srv, &f->listener, fds[0], "peer");
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    while (f->sh.srv->conns != NULL)
        conn_free(f->sh.srv->conns); /* unlinks it */
    for (int i = 0; i < CONNS; i++)
        close(f->peer[i]);
    int rc = server_shell_close(&f->sh);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* An MQTT 3.1.1 CONNECT for client id "cN", clean session, keepalive 60. */
static size_t connect_packet(uint8_t *p, int n)
{
    static const uint8_t head[] = {0x10, 14, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, 2, 'c', '0'};
    memcpy(p, head, sizeof(head));
    p[sizeof(head) - 1] = (uint8_t)('0' + n);
    return sizeof(head);
}

/* Runs one loop iteration's watchers (EV_READ lists the connections) and
 * the end of the turn's reads and writes, as server.c does. */
static void turn(struct fixture *f)
{
    ev_run(f->sh.srv->loop, EVRUN_NOWAIT);
    conn_read_listed(f->sh.srv);
    session_commit(f->sh.mgr);
    conn_write_listed(f->sh.srv);
}

/* Every peer sends its CONNECT; one loop iteration's EV_READ lists them. */
static void send_connects_and_list_them(struct fixture *f)
{
    for (int i = 0; i < CONNS; i++) {
        uint8_t p[32];
        size_t len = connect_packet(p, i);
        assert_int_equal(write(f->peer[i], p, len), (ssize_t)len);
    }
    ev_run(f->sh.srv->loop, EVRUN_NOWAIT);
}

static void test_reads_of_a_turn_are_batched_and_each_gets_its_connack(void **state)
{
    struct fixture *f = *state;
    send_connects_and_list_them(f);
    /* EV_READ only listed them: nothing is read before the end of the turn. */
    assert_int_equal(f->sh.srv->read_count, CONNS);
    for (struct conn *c = f->sh.srv->conns; c != NULL; c = c->next)
        assert_false(c->has_packet);
    conn_read_listed(f->sh.srv);
    assert_int_equal(f->sh.srv->read_count, 0);
    for (struct conn *c = f->sh.srv->conns; c != NULL; c = c->next) {
        assert_true(c->has_packet);
        assert_false(c->is_read_listed);
    }
    session_commit(f->sh.mgr);
    conn_write_listed(f->sh.srv);
    for (int i = 0; i < CONNS; i++) {
        uint8_t ack[8];
        assert_int_equal(read(f->peer[i], ack, sizeof(ack)), 4);
        static const uint8_t connack[4] = {0x20, 2, 0, 0};
        assert_memory_equal(ack, connack, 4);
    }
}

static void test_packet_split_across_turns_and_larger_than_a_slot(void **state)
{
    struct fixture *f = *state;
    uint8_t p[32];
    size_t len = connect_packet(p, 0);
    assert_int_equal(write(f->peer[0], p, 5), 5); /* half a CONNECT */
    turn(f);
    assert_int_equal(write(f->peer[0], p + 5, len - 5), (ssize_t)(len - 5));
    turn(f);
    uint8_t ack[8];
    assert_int_equal(read(f->peer[0], ack, sizeof(ack)), 4);
    assert_int_equal(ack[0], 0x20);

    /* A PUBLISH bigger than a read slot (and than the socketpair takes at
     * once): the batch reads a slot, a plain read and later turns the rest. */
    static uint8_t pub[3 * SERVER_URING_READ_ROOM + 64];
    size_t payload = sizeof(pub) - 3 - 2 - 3;
    size_t remaining = 2 + 3 + payload;
    pub[0] = 0x30;
    pub[1] = (uint8_t)(0x80 | (remaining & 127));
    pub[2] = (uint8_t)(remaining >> 7);
    pub[3] = 0;
    pub[4] = 3;
    memcpy(pub + 5, "t/x", 3);
    memset(pub + 8, 'p', payload);
    /* Subscribe the same client to it first, so the PUBLISH comes back. */
    static const uint8_t sub[] = {0x82, 8, 0, 1, 0, 3, 't', '/', 'x', 0};
    assert_int_equal(write(f->peer[0], sub, sizeof(sub)), (ssize_t)sizeof(sub));
    turn(f);
    assert_int_equal(read(f->peer[0], ack, sizeof(ack)), 5); /* SUBACK */
    assert_int_equal(ack[0], 0x90);
    assert_int_equal(write(f->peer[0], pub, sizeof(pub)), (ssize_t)sizeof(pub));
    static uint8_t back[sizeof(pub) + 16];
    size_t got = 0;
    for (int i = 0; i < 50 && got < sizeof(pub); i++) {
        turn(f);
        ssize_t n = read(f->peer[0], back + got, sizeof(back) - got);
        if (n > 0)
            got += (size_t)n;
    }
    assert_int_equal(got, sizeof(pub));
    assert_memory_equal(back, pub, sizeof(pub)); /* QoS 0 comes back byte for byte */
}

static void test_a_full_socket_keeps_its_tail_for_ev_write(void **state)
{
    struct fixture *f = *state;
    struct conn *c = NULL;
    for (struct conn *k = f->sh.srv->conns; k != NULL; k = k->next)
        c = k; /* the first accepted: peer[0] */
    int small = 4096;
    assert_int_equal(setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    static uint8_t bytes[1 << 20];
    for (size_t i = 0; i < sizeof(bytes); i++)
        bytes[i] = (uint8_t)(i * 13);
    struct iovec iov = {bytes, sizeof(bytes)};
    assert_int_equal(conn_sink.send(c, &iov, 1), 0);
    conn_write_listed(f->sh.srv);
    size_t left = c->out_pending;
    assert_true(left > 0 && left < sizeof(bytes));
    assert_true(c->is_write_blocked);
    assert_true(ev_is_active(&c->io) && (c->io.events & EV_WRITE) != 0);
    static uint8_t got[sizeof(bytes)];
    size_t n_got = 0;
    for (int i = 0; i < 10000 && n_got < sizeof(bytes); i++) {
        ssize_t n = read(f->peer[0], got + n_got, sizeof(got) - n_got);
        if (n > 0)
            n_got += (size_t)n;
        ev_run(f->sh.srv->loop, EVRUN_NOWAIT); /* EV_WRITE writes on */
        conn_write_listed(f->sh.srv);
    }
    assert_int_equal(n_got, sizeof(bytes));
    assert_memory_equal(got, bytes, sizeof(bytes));
    assert_int_equal(c->out_pending, 0);
}

static void test_connections_fall_back_to_system_calls_when_the_ring_breaks(void **state)
{
    struct fixture *f = *state;
    send_connects_and_list_them(f);
    break_ring();
    conn_read_listed(f->sh.srv); /* the first run fails: nothing read, all wait for EV_READ */
    assert_true(server_uring_is_broken(f->sh.srv->uring));
    for (int i = 0; i < 20; i++)
        turn(f); /* EV_READ again: now read(2) and writev(2) */
    for (struct conn *c = f->sh.srv->conns; c != NULL; c = c->next)
        assert_true(c->has_packet);
    for (int i = 0; i < CONNS; i++) {
        uint8_t ack[8];
        assert_int_equal(read(f->peer[i], ack, sizeof(ack)), 4);
        assert_int_equal(ack[0], 0x20);
    }
}

static void test_a_closed_connection_leaves_the_read_list(void **state)
{
    struct fixture *f = *state;
    send_connects_and_list_them(f);
    assert_int_equal(f->sh.srv->read_count, CONNS);
    struct conn *c = f->sh.srv->conns;
    conn_close(c, SESSION_CLOSE_SOCKET);
    f->sh.srv->closing = NULL;
    conn_free(c); /* as free_closing would, before the reads ran */
    conn_read_listed(f->sh.srv);
    int connected = 0;
    for (struct conn *k = f->sh.srv->conns; k != NULL; k = k->next)
        connected += k->has_packet;
    assert_int_equal(connected, CONNS - 1);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as the broker does: a write to a gone peer is EPIPE */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sends_and_recvs_report_in_queue_order),
        cmocka_unit_test(test_end_of_stream_full_socket_and_gone_peer),
        cmocka_unit_test(test_a_full_batch_refuses_more),
        cmocka_unit_test_setup_teardown(test_reads_of_a_turn_are_batched_and_each_gets_its_connack,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_packet_split_across_turns_and_larger_than_a_slot,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_full_socket_keeps_its_tail_for_ev_write, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_closed_connection_leaves_the_read_list, setup,
                                        teardown),
        cmocka_unit_test(test_a_failed_submit_breaks_the_ring_for_good),
        cmocka_unit_test_setup_teardown(
            test_connections_fall_back_to_system_calls_when_the_ring_breaks, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
