/*
 * broker.h - the sol process: command line, configuration and the modules it
 * wires together (store, session manager, server, metrics), with the policies
 * that belong to no single module (the tick, SIGHUP reload, $SYS).
 * main.c only calls these.
 */
#ifndef SOL_BROKER_H
#define SOL_BROKER_H

#include <stdbool.h>
#include <stddef.h>

#define BROKER_ERR_LEN 512

/* What the command line asked for. */
struct broker_flags {
    const char *config_path;
    long port; /* -1: not given */
    bool is_verbose;
    bool is_daemon;
    bool is_test_config;
    bool is_check_store;
    double connect_timeout_s; /* < 0: not given */
    long max_packet_size;     /* < 0: not given */
};

/* Returns 0 to run, 1 to exit 0 (help, version printed), -1 to exit 2 (the
 * problem printed on stderr). */
int broker_parse_flags(int argc, char **argv, struct broker_flags *f);

struct broker;

/*
 * Everything that can fail before the store is opened: the config file,
 * TLS files, password and ACL files. Returns a new broker (release with
 * broker_free(), or hand it to broker_run()), or NULL with err.
 */
struct broker *broker_prepare(const struct broker_flags *f, char *err, size_t err_len);

/* Releases a prepared broker that was never run. broker_free(NULL) does nothing. */
void broker_free(struct broker *b);

/*
 * Opens the store, starts the session manager, the listeners and the metrics
 * endpoint, and runs until SIGINT/SIGTERM (or a fail-stop). notify_fd (-1:
 * none) gets "OK" once listening, or the start-up error. Takes b. Returns
 * the process exit code.
 */
int broker_run(struct broker *b, const struct broker_flags *f, int notify_fd);

/* --test-config: prepares and releases; prints "configuration OK" or the
 * error. Returns the process exit code. */
int broker_test_config(const struct broker_flags *f);

#endif
