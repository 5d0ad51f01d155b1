/*
 * main.c - the sol binary: parse the flags, prepare the broker (config,
 * TLS, password and ACL files), detach with -d, run. Exit codes: 0 after
 * SIGINT/SIGTERM, 1 for a start-up error or a fail-stop (one line on
 * stderr), 2 for bad flags.
 * Not for: anything else; src/broker/ wires the modules together.
 */
#include <malloc.h>
#include <stdio.h>

#include "broker.h"
#include "daemon.h"

/*
 * Payloads up to 256 MB come and go at message rate. glibc's defaults mmap
 * every block above 128 KB and trim the heap eagerly, so each large message
 * got fresh zero-filled pages (a page fault per 4 KB) for its input, body
 * and output copies. Keeping freed memory for reuse made 256 KB QoS 1
 * messages ~7x faster (tools/bench-vs-mosquitto.sh, qos1_256k). Blocks above
 * 4 MB are still mmapped, and at most 64 MB of free heap is kept.
 */
static void tune_malloc(void)
{
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
}

int main(int argc, char **argv)
{
    tune_malloc();
    struct broker_flags f;
    int rc = broker_parse_flags(argc, argv, &f);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    if (f.is_test_config)
        return broker_test_config(&f);
    char err[BROKER_ERR_LEN] = "";
    struct broker *b = broker_prepare(&f, err, sizeof(err));
    if (b == NULL) {
        fprintf(stderr, "sol: %s\n", err);
        return 1;
    }
    int notify_fd = -1, exit_code = 0;
    int role = f.is_daemon ? daemon_start(&notify_fd, &exit_code, err, sizeof(err))
                           : DAEMON_ROLE_FOREGROUND;
    if (role == DAEMON_ROLE_FOREGROUND || role == DAEMON_ROLE_DAEMON)
        return broker_run(b, &f, notify_fd);
    if (role < 0)
        fprintf(stderr, "sol: %s\n", err);
    broker_free(b);
    return role < 0 ? 1 : exit_code;
}
