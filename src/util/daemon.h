/*
 * daemon.h - running in the background (`sol -d`).
 */
#ifndef SOL_DAEMON_H
#define SOL_DAEMON_H

#include <stddef.h>

/* Longest start-up error relayed from the daemon to the original process. */
#define DAEMON_ERR_LEN 512

/* Which process a caller of daemon_start() is. */
enum daemon_role {
    DAEMON_ROLE_FOREGROUND,
    DAEMON_ROLE_DAEMON,
    DAEMON_ROLE_ORIGINAL,
    DAEMON_ROLE_MIDDLE
};

/*
 * Double fork. Returns the role of the calling process, or -1 with err:
 * - DAEMON_ROLE_DAEMON: run the broker; write "OK" or the start-up error to
 *   *notify_fd once listening (or failed), then close it.
 * - DAEMON_ROLE_ORIGINAL / DAEMON_ROLE_MIDDLE: exit with *exit_code (the
 *   original relays the daemon's verdict: 0 on "OK", else 1 with the error
 *   printed on stderr).
 */
int daemon_start(int *notify_fd, int *exit_code, char *err, size_t err_len);

/* PATH holds this process's pid; -1 with "pid_file PATH: reason" in err. */
int daemon_write_pid_file(const char *path, char *err, size_t err_len);

#endif
