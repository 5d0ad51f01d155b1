/*
 * listener.c - sockets: listening on TCP (IPv4, IPv6) and unix addresses,
 * and accepting. Errors come back as text in err, in the style of redis anet.
 * Not for: the event loop or connections (server.c, conn.c).
 */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "server_internal.h"

#define LISTEN_BACKLOG 511

static int set_nonblock_cloexec(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return -1;
    flags = fcntl(fd, F_GETFD);
    if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
        return -1;
    return 0;
}

/* "1.2.3.4:port" or "[::1]:port" for a socket address. */
static void format_addr(const struct sockaddr *sa, char *out, size_t out_len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
        snprintf(out, out_len, "%s:%u", host, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
        snprintf(out, out_len, "[%s]:%u", host, port);
    } else {
        snprintf(out, out_len, "unix");
    }
}

/* One socket bound and listening on ai; -1 with err set on failure. */
static int listen_one(const struct addrinfo *ai, char *name, char *err, size_t err_len)
{
    int one = 1;
    format_addr(ai->ai_addr, name, 80);
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0) {
        snprintf(err, err_len, "%s: socket: %s", name, strerror(errno));
        return -1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        (ai->ai_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
        set_nonblock_cloexec(fd) < 0) {
        snprintf(err, err_len, "%s: socket options: %s", name, strerror(errno));
        goto fail;
    }
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        snprintf(err, err_len, "%s: bind: %s", name, strerror(errno));
        goto fail;
    }
    if (listen(fd, LISTEN_BACKLOG) < 0) {
        snprintf(err, err_len, "%s: listen: %s", name, strerror(errno));
        goto fail;
    }
    return fd;
fail:
    close(fd);
    return -1;
}

int server_listen_tcp(const char *host, uint16_t port, int *fds, char (*names)[80], int max,
                      char *err, size_t err_len)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char service[8];
    snprintf(service, sizeof(service), "%u", (unsigned)port);
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) {
        snprintf(err, err_len, "%s:%u: %s", host ? host : "*", (unsigned)port, gai_strerror(rc));
        return -1;
    }
    int count = 0;
    for (const struct addrinfo *ai = res; ai != NULL && count < max; ai = ai->ai_next) {
        int fd = listen_one(ai, names[count], err, err_len);
        if (fd < 0) {
            while (count > 0)
                close(fds[--count]);
            break;
        }
        fds[count++] = fd;
    }
    freeaddrinfo(res);
    if (count == 0)
        return -1;
    return count;
}

/* Removes path if it is a socket nobody listens on (a broker killed with -9
 * leaves it behind). Any other file, or a live socket, is left alone. */
static int remove_stale_socket(const struct sockaddr_un *sun, char *err, size_t err_len)
{
    struct stat st;
    if (lstat(sun->sun_path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, err_len, "%s: %s", sun->sun_path, strerror(errno));
        return -1;
    }
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, err_len, "%s: exists and is not a socket", sun->sun_path);
        return -1;
    }
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0) {
        snprintf(err, err_len, "%s: socket: %s", sun->sun_path, strerror(errno));
        return -1;
    }
    int live = connect(probe, (const struct sockaddr *)sun, sizeof(*sun)) == 0;
    close(probe);
    if (live) {
        snprintf(err, err_len, "%s: another process is listening on it", sun->sun_path);
        return -1;
    }
    if (unlink(sun->sun_path) < 0) {
        snprintf(err, err_len, "%s: unlink: %s", sun->sun_path, strerror(errno));
        return -1;
    }
    return 0;
}

int server_listen_unix(const char *path, char *err, size_t err_len)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sun.sun_path)) {
        snprintf(err, err_len, "%s: unix socket path too long (max %zu bytes)", path,
                 sizeof(sun.sun_path) - 1);
        return -1;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    if (remove_stale_socket(&sun, err, err_len) < 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) {
        snprintf(err, err_len, "%s: socket: %s", path, strerror(errno));
        return -1;
    }
    if (set_nonblock_cloexec(fd) < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
        listen(fd, LISTEN_BACKLOG) < 0) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int server_accept(int listen_fd, char *peer, size_t peer_len)
{
    struct sockaddr_storage ss;
    socklen_t ss_len = sizeof(ss);
    int fd = accept4(listen_fd, (struct sockaddr *)&ss, &ss_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return -1;
    format_addr((const struct sockaddr *)&ss, peer, peer_len);
    if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
        int one = 1;
        /* MQTT packets are small and latency matters more than segment count;
         * the output queue already coalesces a turn's packets into one writev. */
        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) {
            int saved = errno;
            close(fd);
            errno = saved;
            return -1;
        }
    }
    return fd;
}
