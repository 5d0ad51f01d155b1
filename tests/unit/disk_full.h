/*
 * disk_full.h - a disk that fills up on demand, for test binaries that run
 * a real LMDB store in process (test_session.c, fuzz_session.c): the binary
 * interposes LMDB's write calls (liblmdb reaches them through the PLT, so
 * the executable's definitions win); while disk_is_full is set, writes to any
 * descriptor but stdio fail with ENOSPC. Include it in one file per binary,
 * after defining _GNU_SOURCE (RTLD_NEXT).
 */
#ifndef SOL_TEST_DISK_FULL_H
#define SOL_TEST_DISK_FULL_H

#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <sys/types.h>
#include <sys/uio.h>

static bool disk_is_full;

static bool fails_write(int fd)
{
    if (!disk_is_full || fd <= 2)
        return false;
    errno = ENOSPC;
    return true;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    static ssize_t (*real)(int, const void *, size_t, off_t);
    if (fails_write(fd))
        return -1;
    if (!real)
        real = (ssize_t(*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite");
    return real(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    return pwrite(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
    static ssize_t (*real)(int, const struct iovec *, int);
    if (fails_write(fd))
        return -1;
    if (!real)
        real = (ssize_t(*)(int, const struct iovec *, int))dlsym(RTLD_NEXT, "writev");
    return real(fd, iov, iovcnt);
}

#endif /* SOL_TEST_DISK_FULL_H */
