/*
 * main.c - the sol binary: flags, configuration, open the store, create the
 * session manager, run the server, and on SIGINT/SIGTERM close everything
 * and exit 0. Start-up errors print one line and exit 1 (2 for bad flags).
 * Not for: anything the modules do themselves; this file only wires them.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "server.h"
#include "session.h"
#include "store.h"

#define ERR_LEN 512
/* In nosync mode the store is flushed to disk this often (seconds). */
#define NOSYNC_FLUSH_S 1.0

struct flags {
    const char *config_path;
    long port; /* -1: not given */
    bool is_verbose;
    double connect_timeout_s; /* < 0: not given */
    long max_packet_size;     /* < 0: not given */
};

enum { OPT_VERSION = 256, OPT_CONNECT_TIMEOUT, OPT_MAX_PACKET_SIZE };

static void usage(FILE *out)
{
    fprintf(out,
            "usage: sol [-c FILE] [-p PORT] [-v] [-h] [--version]\n"
            "  -c FILE   read a Mosquitto-style config file\n"
            "  -p PORT   listen on 127.0.0.1:PORT (default 1883; with -c, in addition to the\n"
            "            file's listeners)\n"
            "  -v        verbose (debug) logging\n"
            "  -h        this help\n"
            "  --version print the version\n"
            "  --connect-timeout SECONDS  close connections that send no CONNECT (default %.0f)\n"
            "  --max-packet-size BYTES    largest accepted packet (default: protocol maximum)\n"
            "With no arguments sol listens on %s:%d, stores in %s/ and logs to stderr.\n",
            SERVER_DEFAULT_CONNECT_TIMEOUT_S, CONFIG_DEFAULT_BIND_ADDRESS, CONFIG_DEFAULT_PORT,
            CONFIG_DEFAULT_PERSISTENCE_LOCATION);
}

/* A whole-string number in [min, max]; -1 when it is not one. */
static int parse_long(const char *s, long min, long max, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_seconds(const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= 0 && v <= 86400))
        return -1;
    *out = v;
    return 0;
}

/* One flag into *f; -1 on a bad value (message printed). */
static int apply_flag(int opt, const char *arg, struct flags *f)
{
    switch (opt) {
    case 'c':
        f->config_path = arg;
        return 0;
    case 'p':
        if (parse_long(arg, 1, 65535, &f->port) == 0)
            return 0;
        fprintf(stderr, "sol: -p: not a port number (1-65535): %s\n", arg);
        return -1;
    case 'v':
        f->is_verbose = true;
        return 0;
    case OPT_CONNECT_TIMEOUT:
        if (parse_seconds(arg, &f->connect_timeout_s) == 0)
            return 0;
        fprintf(stderr, "sol: --connect-timeout: not a number of seconds: %s\n", arg);
        return -1;
    case OPT_MAX_PACKET_SIZE:
        if (parse_long(arg, 2, 268435460, &f->max_packet_size) == 0)
            return 0;
        fprintf(stderr, "sol: --max-packet-size: not a size in bytes: %s\n", arg);
        return -1;
    default:
        usage(stderr);
        return -1;
    }
}

/* Returns 0 to run, 1 to exit 0 (help, version), -1 to exit 2. */
static int parse_flags(int argc, char **argv, struct flags *f)
{
    static const struct option longs[] = {
        {"version", no_argument, NULL, OPT_VERSION},
        {"help", no_argument, NULL, 'h'},
        {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
        {"max-packet-size", required_argument, NULL, OPT_MAX_PACKET_SIZE},
        {NULL, 0, NULL, 0},
    };
    *f = (struct flags){.port = -1, .connect_timeout_s = -1, .max_packet_size = -1};
    int opt;
    while ((opt = getopt_long(argc, argv, "c:p:vh", longs, NULL)) != -1) {
        if (opt == 'h') {
            usage(stdout);
            return 1;
        }
        if (opt == OPT_VERSION) {
            printf("sol %s\n", SOL_VERSION);
            return 1;
        }
        if (apply_flag(opt, optarg, f) < 0)
            return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "sol: unexpected argument: %s\n", argv[optind]);
        usage(stderr);
        return -1;
    }
    return 0;
}

/* Flags and the config file into cfg; -1 with a message in err. */
static int load_config(const struct flags *f, struct sol_config *cfg, char *err, size_t err_len)
{
    config_init(cfg);
    if (f->config_path != NULL && config_load_file(cfg, f->config_path, err, err_len) < 0)
        return -1;
    if (f->port > 0) {
        cfg->default_port = (uint16_t)f->port;
        if (cfg->listener_count > 0 &&
            config_add_listener(cfg, (uint16_t)f->port, CONFIG_DEFAULT_BIND_ADDRESS, NULL) < 0) {
            snprintf(err, err_len, "out of memory");
            return -1;
        }
    }
    if (config_apply_defaults(cfg) < 0) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    return 0;
}

static void set_log_level(const struct flags *f, const struct sol_config *cfg)
{
    enum log_level level = LOG_LEVEL_ERROR;
    if (cfg->log_types & CONFIG_LOG_WARNING)
        level = LOG_LEVEL_WARNING;
    if (cfg->log_types & CONFIG_LOG_NOTICE)
        level = LOG_LEVEL_NOTICE;
    if (cfg->log_types & CONFIG_LOG_INFORMATION)
        level = LOG_LEVEL_INFO;
    if (f->is_verbose || (cfg->log_types & CONFIG_LOG_DEBUG))
        level = LOG_LEVEL_DEBUG;
    log_set_level(level);
}

static int open_store(const struct sol_config *cfg, struct store **out, char *err, size_t err_len)
{
    struct store_options opts;
    store_options_init(&opts);
    opts.dir = cfg->persistence_location;
    opts.sync = cfg->storage_sync == CONFIG_SYNC_NOSYNC ? STORE_SYNC_NOSYNC : STORE_SYNC_FSYNC;
    opts.max_map_size = cfg->storage_max_size;
    char why[ERR_LEN - 32]; /* room for the prefix below in err */
    if (store_open(&opts, out, why, sizeof(why)) != 0) {
        snprintf(err, err_len, "store: %s", why);
        return -1;
    }
    log_notice("store: %s (%s, max %llu MiB)", opts.dir,
               opts.sync == STORE_SYNC_NOSYNC ? "nosync" : "fsync",
               (unsigned long long)(cfg->storage_max_size >> 20));
    return 0;
}

static int new_session_mgr(const struct sol_config *cfg, struct store *store,
                           struct session_mgr **out, char *err, size_t err_len)
{
    struct session_config sc;
    session_config_defaults(&sc);
    sc.allow_anonymous = cfg->allow_anonymous == 1;
    sc.max_inflight_messages =
        cfg->max_inflight_messages > UINT16_MAX ? UINT16_MAX : (uint16_t)cfg->max_inflight_messages;
    sc.max_queued_messages = cfg->max_queued_messages;
    char why[ERR_LEN - 32]; /* room for the prefix below in err */
    if (session_mgr_new(&sc, store, server_sink(), out, why, sizeof(why)) != 0) {
        snprintf(err, err_len, "session manager: %s", why);
        return -1;
    }
    return 0;
}

static int new_server(const struct flags *f, const struct sol_config *cfg, struct server **out,
                      char *err, size_t err_len)
{
    struct server_listen *listens = calloc(cfg->listener_count, sizeof(*listens));
    if (listens == NULL) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < cfg->listener_count; i++)
        listens[i] = (struct server_listen){.host = cfg->listeners[i].bind_address,
                                            .port = cfg->listeners[i].port,
                                            .unix_path = cfg->listeners[i].unix_path};
    struct server_options opts;
    server_options_init(&opts);
    opts.listens = listens;
    opts.listen_count = cfg->listener_count;
    if (f->connect_timeout_s >= 0)
        opts.connect_timeout_s = f->connect_timeout_s;
    if (f->max_packet_size > 0)
        opts.max_packet_size = (size_t)f->max_packet_size;
    if (cfg->storage_sync == CONFIG_SYNC_NOSYNC)
        opts.tick_s = NOSYNC_FLUSH_S;
    int rc = server_new(&opts, out, err, err_len);
    free(listens);
    return rc;
}

/* The tick in nosync mode: push committed pages to disk. */
static void flush_store(void *arg)
{
    int rc = store_flush(arg);
    if (rc != 0)
        log_error("store flush: %s", store_strerror(rc));
}

struct broker {
    struct sol_config cfg;
    struct store *store;
    struct session_mgr *mgr;
    struct server *srv;
};

static int start(const struct flags *f, struct broker *b, char *err, size_t err_len)
{
    if (load_config(f, &b->cfg, err, err_len) < 0)
        return -1;
    set_log_level(f, &b->cfg);
    log_notice("sol %s starting (pid %ld), logging to stderr", SOL_VERSION, (long)getpid());
    log_notice("config: %s", f->config_path ? f->config_path : "none (defaults)");
    if (open_store(&b->cfg, &b->store, err, err_len) < 0 ||
        new_session_mgr(&b->cfg, b->store, &b->mgr, err, err_len) < 0 ||
        new_server(f, &b->cfg, &b->srv, err, err_len) < 0)
        return -1;
    server_set_session_mgr(b->srv, b->mgr);
    server_set_tick(b->srv, flush_store, b->store);
    return 0;
}

/* Tears down in reverse order: connections first (the manager needs them
 * gone), then the manager's last commit, then the store. */
static void stop(struct broker *b)
{
    server_free(b->srv);
    if (b->mgr != NULL && session_flush(b->mgr) != 0)
        log_error("shutdown: the final commit failed");
    session_mgr_free(b->mgr);
    if (b->store != NULL && store_flush(b->store) != 0)
        log_error("shutdown: store flush failed");
    store_close(b->store);
    config_deinit(&b->cfg);
}

int main(int argc, char **argv)
{
    struct flags f;
    int rc = parse_flags(argc, argv, &f);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    struct broker b = {0};
    char err[ERR_LEN] = "";
    if (start(&f, &b, err, sizeof(err)) < 0) {
        fprintf(stderr, "sol: %s\n", err);
        stop(&b);
        return 1;
    }
    rc = server_run(b.srv);
    stop(&b);
    log_notice("sol stopped");
    return rc == 0 ? 0 : 1;
}
