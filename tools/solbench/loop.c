/*
 * loop.c - solbench's event loop and phases: connect the idle connections,
 * then the subscribers and publishers, publish for --duration seconds, drain
 * for at most --drain seconds, disconnect.
 *
 * Every phase has a deadline, so every run ends by itself: at most
 * --connect-timeout + --duration + --drain seconds, plus one loop turn.
 * Not for: protocol handling (conn.c) or output (report.c).
 */
#include "solbench.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define NS_PER_S   1e9

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static int install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    if (sigemptyset(&sa.sa_mask) != 0 || sigaction(SIGINT, &sa, NULL) != 0 ||
        sigaction(SIGTERM, &sa, NULL) != 0)
        return -errno;
    sa.sa_handler = SIG_IGN;
    return sigaction(SIGPIPE, &sa, NULL) != 0 ? -errno : 0;
}

static double seconds_since(uint64_t t0_ns, uint64_t now_ns)
{
    return (double)(now_ns - t0_ns) / NS_PER_S;
}

static void fail(struct bench *b, const char *why)
{
    snprintf(b->r.failure, sizeof(b->r.failure), "%s", why);
    b->phase = PHASE_FAILED;
}

/* Starts connections of the current phase, at most connect_burst handshakes at once. */
static void start_connects(struct bench *b)
{
    uint32_t limit = b->phase == PHASE_IDLE_CONNECT ? b->o.idle : b->nconns;
    if (b->phase != PHASE_IDLE_CONNECT && b->phase != PHASE_SETUP)
        return;
    while (b->next_connect < limit && b->handshaking < b->o.connect_burst &&
           b->phase <= PHASE_SETUP)
        conn_start(b, &b->conns[b->next_connect++]);
}

static void pump_publishers(struct bench *b)
{
    for (uint32_t i = b->nconns - b->o.pubs; i < b->nconns; i++)
        conn_pump(b, &b->conns[i]);
}

/* Deliveries expected so far: each publish times the subscribers its topic reaches. */
static uint64_t expected_deliveries(const struct bench *b)
{
    uint64_t sum = 0;
    for (uint32_t i = 0; i < b->o.pubs; i++) {
        if (b->pub_matches[i])
            sum += b->conns[b->nconns - b->o.pubs + i].next_seq * b->o.subs;
    }
    return sum;
}

static bool all_drained(const struct bench *b)
{
    for (uint32_t i = b->o.idle; i < b->nconns; i++) {
        if (!conn_is_drained(&b->conns[i]))
            return false;
    }
    return b->r.received >= expected_deliveries(b);
}

static void check_setup_deadline(struct bench *b, uint64_t now)
{
    if (seconds_since(b->r.t_start_ns, now) < b->o.connect_timeout_s)
        return;
    char why[160];
    snprintf(why, sizeof(why),
             "setup timed out after %.1f s: %u/%u idle, %u/%u subscribers, %u/%u publishers ready",
             b->o.connect_timeout_s, b->ready[ROLE_IDLE], b->o.idle, b->ready[ROLE_SUB], b->o.subs,
             b->ready[ROLE_PUB], b->o.pubs);
    fail(b, why);
}

static void start_run(struct bench *b, uint64_t now)
{
    b->r.t_run_ns = now;
    b->phase = PHASE_RUN;
    pump_publishers(b);
}

static void end_run(struct bench *b, uint64_t now)
{
    b->r.t_run_end_ns = now;
    if (b->o.broker_pid > 0)
        b->r.broker_rss_after_kb = proc_rss_kb(b->o.broker_pid);
    b->phase = PHASE_DRAIN;
}

static void advance(struct bench *b, uint64_t now)
{
    switch (b->phase) {
    case PHASE_IDLE_CONNECT:
        if (b->settled_idle == b->o.idle)
            b->phase = PHASE_SETUP;
        else
            check_setup_deadline(b, now);
        break;
    case PHASE_SETUP:
        if (b->next_connect == b->nconns && b->ready[ROLE_SUB] == b->o.subs &&
            b->ready[ROLE_PUB] == b->o.pubs)
            start_run(b, now);
        else
            check_setup_deadline(b, now);
        break;
    case PHASE_RUN:
        if (seconds_since(b->r.t_run_ns, now) >= b->o.duration_s)
            end_run(b, now);
        break;
    case PHASE_DRAIN:
        if (all_drained(b) || seconds_since(b->r.t_run_end_ns, now) >= b->o.drain_s)
            b->phase = PHASE_DONE;
        break;
    case PHASE_DONE:
    case PHASE_FAILED:
        break;
    }
}

static int loop_timeout_ms(const struct bench *b)
{
    /* A fixed rate is paced by this tick. */
    if (b->phase == PHASE_RUN && b->o.rate > 0)
        return 1;
    return 10;
}

static int loop_once(struct bench *b, struct epoll_event *events)
{
    start_connects(b);
    int n = epoll_wait(b->epfd, events, MAX_EVENTS, loop_timeout_ms(b));
    if (n < 0 && errno != EINTR) {
        fail(b, "epoll_wait failed");
        return -1;
    }
    for (int i = 0; i < n; i++)
        conn_on_event(b, events[i].data.ptr, events[i].events);
    if (b->phase == PHASE_RUN && b->o.rate > 0)
        pump_publishers(b);
    if (interrupted)
        fail(b, "interrupted");
    advance(b, bench_now_ns());
    return 0;
}

/* Runs the whole benchmark; returns 0 if it completed, -1 if it failed (see b->r.failure). */
int bench_run(struct bench *b)
{
    struct epoll_event events[MAX_EVENTS];
    if (install_signals() != 0) {
        fail(b, "sigaction failed");
        return -1;
    }
    b->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (b->epfd < 0) {
        fail(b, "epoll_create1 failed");
        return -1;
    }
    b->r.t_start_ns = bench_now_ns();
    if (b->o.broker_pid > 0)
        b->r.broker_rss_before_kb = proc_rss_kb(b->o.broker_pid);
    b->phase = b->o.idle > 0 ? PHASE_IDLE_CONNECT : PHASE_SETUP;
    while (b->phase != PHASE_DONE && b->phase != PHASE_FAILED) {
        if (loop_once(b, events) != 0)
            break;
    }
    for (uint32_t i = 0; i < b->nconns; i++)
        conn_disconnect(b, &b->conns[i]);
    b->r.t_end_ns = bench_now_ns();
    if (close(b->epfd) != 0)
        perror("solbench: close(epoll)");
    return b->phase == PHASE_DONE ? 0 : -1;
}
