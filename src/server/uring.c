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
#include <string.h>
#include <sys/socket.h>

#include <liburing.h>

#include "uring.h"

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
    /* SUBMIT_ALL: an operation the kernel refuses to start does not stop
     * the ones after it (they would stay queued, borrowing our buffers);
     * SINGLE_ISSUER: only the loop's thread uses it. Both since Linux 6.0. */
    int rc = io_uring_queue_init(SERVER_URING_BATCH, &u->ring,
                                 IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER);
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

/* Reaps n completions into their slots. The operations are non-blocking and
 * finished during the submit, so waiting only retries interruptions. */
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

int server_uring_run(struct server_uring *u, server_uring_done_fn done, void *arg)
{
    size_t queued = u->queued;
    if (queued == 0)
        return 0;
    u->queued = 0;
    for (size_t i = 0; i < queued; i++)
        u->slots[i].res = RES_UNKNOWN;
    int rc = u->is_broken ? -EIO : io_uring_submit(&u->ring);
    size_t taken = rc > 0 ? (size_t)rc : 0;
    /* The kernel takes entries in order and fails only before the first:
     * the rest never ran. They stay in the ring, borrowing our buffers, so
     * it is never submitted again (the caller falls back to system calls). */
    for (size_t i = taken; i < queued; i++)
        u->slots[i].res = -EAGAIN;
    if (taken < queued)
        u->is_broken = true;
    rc = rc < 0 ? rc : reap(u, taken);
    if (rc < 0) {
        u->is_broken = true;
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
