/*
 * uring.c - see uring.h. A ring of SERVER_URING_BATCH entries; each queued
 * operation owns a slot (its msghdr and iovecs must outlive the submit) and
 * carries the slot index as user_data, so results are handed back in queue
 * order whatever order the kernel completes them in.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <liburing.h>

#include "log.h"
#include "uring.h"

/* Submit attempts per batch before the ring is given up. */
#define SUBMIT_ATTEMPTS 4
/* A slot's result before its completion arrived. */
#define RES_UNKNOWN INT_MIN

struct uring_slot {
    struct msghdr msg;
    struct iovec iov[SERVER_URING_IOV_MAX];
    void *tag;
    int res;
};

struct server_uring {
    struct io_uring ring;
    size_t queued;
    bool is_broken; /* a submit or reap failed: never used again */
    struct uring_slot slots[SERVER_URING_BATCH];
};

int server_uring_new(struct server_uring **out)
{
    *out = NULL;
    struct server_uring *u = calloc(1, sizeof(*u));
    if (u == NULL)
        return -ENOMEM;
    /* SUBMIT_ALL (Linux 5.18): an operation the kernel refuses to start
     * does not stop the ones after it (they would stay queued, borrowing our
     * buffers); SINGLE_ISSUER (6.0): only the loop's thread uses it, which
     * lets the kernel skip some locking - optional. */
    int rc = io_uring_queue_init(SERVER_URING_BATCH, &u->ring,
                                 IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER);
    if (rc == -EINVAL)
        rc = io_uring_queue_init(SERVER_URING_BATCH, &u->ring, IORING_SETUP_SUBMIT_ALL);
    if (rc < 0) {
        free(u);
        return rc;
    }
    *out = u;
    return 0;
}

void server_uring_free(struct server_uring *u)
{
    if (u == NULL)
        return;
    io_uring_queue_exit(&u->ring);
    free(u);
}

size_t server_uring_room(const struct server_uring *u)
{
    return SERVER_URING_BATCH - u->queued;
}

/* The next slot and its submission entry, or NULL when the batch is full. */
static struct io_uring_sqe *next_sqe(struct server_uring *u, void *tag, struct uring_slot **slot)
{
    if (u->queued == SERVER_URING_BATCH || u->is_broken)
        return NULL;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (sqe == NULL)
        return NULL;
    *slot = &u->slots[u->queued];
    (*slot)->tag = tag;
    io_uring_sqe_set_data64(sqe, u->queued);
    u->queued++;
    return sqe;
}

int server_uring_queue_send(struct server_uring *u, int fd, const struct iovec *iov, int iovcnt,
                            void *tag)
{
    struct uring_slot *slot;
    if (iovcnt < 0 || iovcnt > SERVER_URING_IOV_MAX)
        return -EINVAL;
    struct io_uring_sqe *sqe = next_sqe(u, tag, &slot);
    if (sqe == NULL)
        return -ENOSPC;
    memcpy(slot->iov, iov, (size_t)iovcnt * sizeof(*iov));
    slot->msg = (struct msghdr){.msg_iov = slot->iov, .msg_iovlen = (size_t)iovcnt};
    io_uring_prep_sendmsg(sqe, fd, &slot->msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    return 0;
}

int server_uring_queue_recv(struct server_uring *u, int fd, void *buf, size_t len, void *tag)
{
    struct uring_slot *slot;
    struct io_uring_sqe *sqe = next_sqe(u, tag, &slot);
    if (sqe == NULL)
        return -ENOSPC;
    io_uring_prep_recv(sqe, fd, buf, len, MSG_DONTWAIT);
    return 0;
}

/* Reaps n completions into their slots. The operations are non-blocking
 * (MSG_DONTWAIT: io_uring returns -EAGAIN instead of waiting for the socket)
 * and finished during the submit, so the wait never sleeps and only retries
 * interruptions. A timeout would not be safe here: an operation still
 * running borrows buffers its caller frees after the batch. */
static int reap(struct server_uring *u, size_t n)
{
    int interrupted = 0;
    for (size_t got = 0; got < n;) {
        struct io_uring_cqe *cqe;
        int rc = io_uring_wait_cqe(&u->ring, &cqe);
        if (rc == -EINTR && ++interrupted < 100)
            continue;
        if (rc < 0)
            return rc;
        uint64_t index = io_uring_cqe_get_data64(cqe);
        if (index < n)
            u->slots[index].res = cqe->res;
        io_uring_cqe_seen(&u->ring, cqe);
        got++;
    }
    return 0;
}

/* Submits the n queued entries. A transient refusal (EAGAIN: the kernel is
 * short of memory for requests, EINTR, a short count) is retried: what the
 * kernel did not take is still queued, its buffers still valid. Returns
 * how many it took (in queue order), or -errno if it took none. */
static int submit_all(struct server_uring *u, size_t n)
{
    size_t taken = 0;
    int rc = 0;
    for (int attempt = 0; attempt < SUBMIT_ATTEMPTS && taken < n; attempt++) {
        rc = io_uring_submit(&u->ring);
        if (rc > 0)
            taken += (size_t)rc;
        else if (rc != -EAGAIN && rc != -EINTR && rc != 0)
            break;
    }
    if (taken > 0)
        return (int)taken;
    return rc < 0 ? rc : -EIO;
}

static void mark_broken(struct server_uring *u, int rc)
{
    if (!u->is_broken)
        log_warning("network: io_uring failed (%s): plain read and writev from now on",
                    strerror(rc < 0 ? -rc : EIO));
    u->is_broken = true;
}

int server_uring_run(struct server_uring *u, server_uring_done_fn done, void *arg)
{
    size_t queued = u->queued;
    if (queued == 0)
        return 0;
    u->queued = 0;
    for (size_t i = 0; i < queued; i++)
        u->slots[i].res = RES_UNKNOWN;
    int rc = u->is_broken ? -EIO : submit_all(u, queued);
    size_t taken = rc > 0 ? (size_t)rc : 0;
    /* The kernel takes entries in order: the rest never ran. They stay in
     * the ring, borrowing our buffers, so it is never submitted again (the
     * caller falls back to system calls). */
    for (size_t i = taken; i < queued; i++)
        u->slots[i].res = -EAGAIN;
    if (taken < queued)
        mark_broken(u, rc < 0 ? rc : -EIO);
    rc = rc < 0 ? rc : reap(u, taken);
    if (rc < 0) {
        mark_broken(u, rc);
        for (size_t i = 0; i < taken; i++)
            if (u->slots[i].res == RES_UNKNOWN)
                u->slots[i].res = -EIO; /* ran, outcome unknown: the stream is lost */
    }
    for (size_t i = 0; i < queued; i++)
        done(u->slots[i].tag, u->slots[i].res, arg);
    return u->is_broken ? -EIO : 0;
}

bool server_uring_is_broken(const struct server_uring *u)
{
    return u->is_broken;
}
