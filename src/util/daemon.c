/*
 * daemon.c - `sol -d`: detach into the background, and report the start-up
 * verdict to the process that was started, so `sol -d` returns only once the
 * broker listens (or with its start-up error).
 * Not for: what the broker does once detached.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"

/*
 * Double fork: the original process waits on a pipe until the daemon writes
 * "OK" (listening) or its start-up error, then returns. The middle process
 * (after setsid) only forks the daemon, so the daemon is no session leader
 * and cannot get a controlling terminal.
 */
/* The original process: relay the daemon's verdict. Returns the exit code. */
static int wait_for_daemon(int fd, pid_t middle)
{
    char msg[DAEMON_ERR_LEN];
    size_t len = 0;
    ssize_t n;
    while (len < sizeof(msg) - 1 &&
           ((n = read(fd, msg + len, sizeof(msg) - 1 - len)) > 0 || (n < 0 && errno == EINTR)))
        len += n > 0 ? (size_t)n : 0;
    msg[len] = '\0';
    close(fd);
    waitpid(middle, NULL, 0);
    if (strcmp(msg, "OK") == 0)
        return 0;
    fprintf(stderr, "sol: %s\n", len > 0 ? msg : "the daemon exited during start-up");
    return 1;
}

/* The daemon's stdin, stdout and stderr become /dev/null. */
static int detach_stdio(char *err, size_t err_len)
{
    int fd = open("/dev/null", O_RDWR);
    if (fd < 0 || dup2(fd, STDIN_FILENO) < 0 || dup2(fd, STDOUT_FILENO) < 0 ||
        dup2(fd, STDERR_FILENO) < 0) {
        snprintf(err, err_len, "daemon: /dev/null: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (fd > STDERR_FILENO)
        close(fd);
    return 0;
}

int daemon_start(int *notify_fd, int *exit_code, char *err, size_t err_len)
{
    int fds[2];
    if (pipe(fds) < 0) {
        snprintf(err, err_len, "daemon: pipe: %s", strerror(errno));
        return -1;
    }
    fflush(NULL); /* nothing buffered may be written twice */
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, err_len, "daemon: fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid > 0) {
        close(fds[1]);
        *exit_code = wait_for_daemon(fds[0], pid);
        return DAEMON_ROLE_ORIGINAL;
    }
    close(fds[0]);
    if (setsid() < 0 || (pid = fork()) < 0) {
        dprintf(fds[1], "daemon: %s", strerror(errno));
        close(fds[1]);
        *exit_code = 1;
        return DAEMON_ROLE_MIDDLE;
    }
    if (pid > 0) {
        close(fds[1]);
        *exit_code = 0;
        return DAEMON_ROLE_MIDDLE;
    }
    char why[DAEMON_ERR_LEN];
    if (detach_stdio(why, sizeof(why)) < 0) {
        dprintf(fds[1], "%s", why);
        close(fds[1]);
        *exit_code = 1;
        return DAEMON_ROLE_MIDDLE; /* this process ends like the middle one */
    }
    *notify_fd = fds[1];
    return DAEMON_ROLE_DAEMON;
}

int daemon_write_pid_file(const char *path, char *err, size_t err_len)
{
    FILE *f = fopen(path, "w");
    if (f == NULL || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0) {
        snprintf(err, err_len, "pid_file %.300s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}
