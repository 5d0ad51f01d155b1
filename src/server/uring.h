/*
 * uring.h - a turn's socket reads and writes submitted to io_uring together:
 * one io_uring_enter for many sockets instead of one read(2) or writev(2)
 * each. Every operation is non-blocking (MSG_DONTWAIT): it completes during
 * the submit with the bytes moved, -EAGAIN or another -errno, exactly as the
 * system call would have, so a batch is run to completion before the caller
 * goes on and nothing is in flight between two calls.
 *
 * Why: on this project's VMs a system call costs more than the TCP work of
 * a small packet (issue 11: the per-delivery floor of a paced fan-out is one
 * writev and one read); tools/floor measures what batching saves.
 *
 * Not for: TLS or WebSocket transports (OpenSSL and wslay do their own I/O),
 * waiting for readiness (libev's epoll does that), anything asynchronous.
 */
#ifndef SOL_SERVER_URING_H
#define SOL_SERVER_URING_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

/* Operations per batch (a larger set of sockets takes several batches). */
#define SERVER_URING_BATCH 256
/* Reads per batch, and the bytes each may bring in (a full one is followed
 * by a plain read): small, because their buffers are the server's. */
#define SERVER_URING_READS     32
#define SERVER_URING_READ_ROOM 2048
/* iovecs per queued send (a longer queue is finished by plain writev). */
#define SERVER_URING_IOV_MAX 8

struct server_uring;

/* One finished operation: tag as queued, res as the system call would
 * return it (bytes, 0 at the end of the stream) or -errno. */
typedef void (*server_uring_done_fn)(void *tag, int res, void *arg);

/* Sets up a ring. Returns 0, or -errno (ENOSYS: the kernel has no
 * io_uring, EPERM: it is disabled or filtered) with *out NULL: the caller
 * then uses plain system calls. */
int server_uring_new(struct server_uring **out);
void server_uring_free(struct server_uring *u);

/* Operations that can still be queued before server_uring_run(). */
size_t server_uring_room(const struct server_uring *u);

/* Queues sendmsg(fd, iov, MSG_DONTWAIT | MSG_NOSIGNAL); iov (at most
 * SERVER_URING_IOV_MAX, copied) is not kept, the bytes it points to stay
 * borrowed until server_uring_run() returns. Returns -ENOSPC when the batch
 * is full. */
int server_uring_queue_send(struct server_uring *u, int fd, const struct iovec *iov, int iovcnt,
                            void *tag);

/* Queues recv(fd, buf, len, MSG_DONTWAIT); buf stays borrowed until
 * server_uring_run() returns. Returns -ENOSPC when the batch is full. */
int server_uring_queue_recv(struct server_uring *u, int fd, void *buf, size_t len, void *tag);

/* Submits what is queued, waits until every operation finished, then
 * calls done once per operation, in the order they were queued. Returns 0,
 * or -EIO if the ring failed: it is then broken for good
 * (server_uring_is_broken()), operations that never ran get -EAGAIN (the
 * caller waits for readiness and uses a system call), and one that ran
 * with an outcome never reported gets -EIO (its stream is lost). */
int server_uring_run(struct server_uring *u, server_uring_done_fn done, void *arg);

/* True after a failed run: queue nothing more, use system calls. */
bool server_uring_is_broken(const struct server_uring *u);

#endif
