/*
 * main.c - the sol binary: flags, configuration, password and ACL files,
 * logging, daemon mode, open the store, create the session manager, run the
 * server; SIGHUP reloads the password and ACL files and reopens the log file;
 * $SYS topics every sys_interval. On SIGINT/SIGTERM it closes everything and
 * exits 0. Start-up errors print one line ("sol: FILE:LINE: ..." for the
 * config) and exit 1 (2 for bad flags).
 * Not for: anything the modules do themselves; this file only wires them.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "bridge.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "server.h"
#include "session.h"
#include "store.h"

#define ERR_LEN 512
/* In nosync mode the store is flushed to disk this often (seconds); the same
 * tick expires persistent sessions. */
#define TICK_S 1.0
/* A PUBLISH carrying message_size_limit payload bytes: fixed header (5),
 * topic length and the longest topic (2 + 65535), packet id (2). */
#define PUBLISH_OVERHEAD   (5u + 2u + 65535u + 2u)
#define PROTOCOL_MAX_BYTES (268435455u + 5u)

struct flags {
    const char *config_path;
    long port; /* -1: not given */
    bool is_verbose;
    bool is_daemon;
    bool is_test_config;
    bool is_check_store;
    double connect_timeout_s; /* < 0: not given */
    long max_packet_size;     /* < 0: not given */
};

enum {
    OPT_VERSION = 256,
    OPT_CONNECT_TIMEOUT,
    OPT_MAX_PACKET_SIZE,
    OPT_TEST_CONFIG,
    OPT_CHECK_STORE
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: sol [-c FILE] [-p PORT] [-v] [-d] [--test-config] [--check-store] [-h]\n"
            "           [--version]\n"
            "  -c FILE   read a Mosquitto-style config file (see conf/sol.conf)\n"
            "  -p PORT   listen on 127.0.0.1:PORT (default 1883; with -c, in addition to the\n"
            "            file's listeners)\n"
            "  -v        verbose (debug) logging\n"
            "  -d        run in the background as a daemon (pid_file is written); returns\n"
            "            once the broker listens, with its start-up error otherwise\n"
            "  --test-config  check the configuration (and the password, ACL and TLS files\n"
            "            it names), print \"configuration OK\" or the error, and exit\n"
            "  -h        this help\n"
            "  --version print the version\n"
            "  --connect-timeout SECONDS  close connections that send no CONNECT (default %.0f)\n"
            "  --max-packet-size BYTES    largest accepted packet (default: protocol maximum)\n"
            "  --check-store  before listening, check every record of the store (as\n"
            "            `solctl check`) and refuse to start on a problem; without it a\n"
            "            bounded sample is checked\n"
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
    case 'd':
        f->is_daemon = true;
        return 0;
    case OPT_TEST_CONFIG:
        f->is_test_config = true;
        return 0;
    case OPT_CHECK_STORE:
        f->is_check_store = true;
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
        {"test-config", no_argument, NULL, OPT_TEST_CONFIG},
        {"check-store", no_argument, NULL, OPT_CHECK_STORE},
        {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
        {"max-packet-size", required_argument, NULL, OPT_MAX_PACKET_SIZE},
        {NULL, 0, NULL, 0},
    };
    *f = (struct flags){.port = -1, .connect_timeout_s = -1, .max_packet_size = -1};
    int opt;
    while ((opt = getopt_long(argc, argv, "c:p:vdh", longs, NULL)) != -1) {
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

/* ---- configuration --------------------------------------------------------- */

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

/* "FILE:LINE: listener PORT" or "-p PORT" naming a listener in messages. */
static void listener_name(const struct config_listener *l, char *out, size_t len)
{
    if (l->unix_path != NULL)
        snprintf(out, len, "%s: listener 0 %s", l->where ? l->where : "-p", l->unix_path);
    else
        snprintf(out, len, "%s: listener %u", l->where ? l->where : "-p", (unsigned)l->port);
}

/* A file the broker will read: -1 with "NAME: PATH: REASON" if it cannot. */
static int check_readable(const char *what, const char *name, const char *path, char *err,
                          size_t err_len)
{
    if (path == NULL || access(path, R_OK) == 0)
        return 0;
    snprintf(err, err_len, "%.200s: %s %.200s: %s", what, name, path, strerror(errno));
    return -1;
}

/* The TLS settings of one listener make sense together, and their files are
 * readable. */
static int check_listener_tls(const struct config_listener *l, char *err, size_t err_len)
{
    char name[CONFIG_PATH_MAX + 64];
    listener_name(l, name, sizeof(name));
    bool has_tls_option =
        l->cafile || l->tls_version || l->require_certificate || l->use_identity_as_username;
    const char *problem = NULL;
    if ((l->certfile == NULL) != (l->keyfile == NULL))
        problem = "certfile and keyfile must be given together";
    else if (l->certfile == NULL && has_tls_option)
        problem = "TLS settings without certfile and keyfile";
    else if (l->require_certificate && l->cafile == NULL)
        problem = "require_certificate needs cafile";
    else if (l->use_identity_as_username && !l->require_certificate)
        problem = "use_identity_as_username needs require_certificate true";
    if (problem != NULL) {
        snprintf(err, err_len, "%.300s: %s", name, problem);
        return -1;
    }
    if (check_readable(name, "cafile", l->cafile, err, err_len) < 0 ||
        check_readable(name, "certfile", l->certfile, err, err_len) < 0 ||
        check_readable(name, "keyfile", l->keyfile, err, err_len) < 0)
        return -1;
    return 0;
}

static int check_tls(const struct sol_config *cfg, char *err, size_t err_len)
{
    for (size_t i = 0; i < cfg->listener_count; i++) {
        if (check_listener_tls(&cfg->listeners[i], err, err_len) < 0)
            return -1;
    }
    return 0;
}

/* A password file and an ACL (NULL when not configured). */
struct auth_files {
    struct auth_passwd *passwords;
    struct auth_acl *acl;
};

static void auth_files_free(struct auth_files *a)
{
    auth_passwd_free(a->passwords);
    auth_acl_free(a->acl);
    *a = (struct auth_files){0};
}

/* Loads both files (either path may be NULL); on failure frees what it
 * loaded, err holds "FILE:LINE: message" (or "FILE: reason"). */
static int auth_files_load(const char *password_file, const char *acl_file, struct auth_files *out,
                           char *err, size_t err_len)
{
    *out = (struct auth_files){0};
    if (password_file != NULL &&
        auth_passwd_load(password_file, &out->passwords, err, err_len) != AUTH_OK)
        return -1;
    if (acl_file != NULL && auth_acl_load(acl_file, &out->acl, err, err_len) != AUTH_OK) {
        auth_files_free(out);
        return -1;
    }
    return 0;
}

/*
 * Every password file and ACL of the configuration: the global ones, and with
 * per_listener_settings one set per listener. A listener's `slot` is what
 * the server and its clients point at; a reload changes its fields in place,
 * so the slot array is allocated once and never moves.
 */
struct listener_auth {
    struct auth_files files;
    struct session_auth slot;
};

struct broker_auth {
    struct auth_files global;
    struct listener_auth *listeners; /* cfg->listener_count entries, or NULL */
    size_t count;
};

static void broker_auth_free(struct broker_auth *a)
{
    auth_files_free(&a->global);
    for (size_t i = 0; i < a->count; i++)
        auth_files_free(&a->listeners[i].files);
    free(a->listeners);
    *a = (struct broker_auth){0};
}

static int broker_auth_load(const struct sol_config *cfg, struct broker_auth *out, char *err,
                            size_t err_len)
{
    *out = (struct broker_auth){0};
    if (auth_files_load(cfg->password_file, cfg->acl_file, &out->global, err, err_len) < 0)
        return -1;
    if (!cfg->per_listener_settings || cfg->listener_count == 0)
        return 0;
    out->listeners = calloc(cfg->listener_count, sizeof(*out->listeners));
    if (out->listeners == NULL) {
        snprintf(err, err_len, "out of memory");
        broker_auth_free(out);
        return -1;
    }
    for (size_t i = 0; i < cfg->listener_count; i++) {
        const struct config_listener *l = &cfg->listeners[i];
        struct listener_auth *la = &out->listeners[i];
        if (auth_files_load(l->password_file, l->acl_file, &la->files, err, err_len) < 0) {
            broker_auth_free(out);
            return -1;
        }
        out->count = i + 1;
        la->slot =
            (struct session_auth){la->files.passwords, la->files.acl, l->allow_anonymous == 1};
    }
    return 0;
}

/* log_type bits into log levels; -v adds debug. subscribe/unsubscribe have
 * no lines of their own yet. */
static unsigned log_levels(const struct flags *f, const struct sol_config *cfg)
{
    unsigned mask = 0;
    if (cfg->log_types & CONFIG_LOG_ERROR)
        mask |= LOG_LEVEL_BIT(LOG_LEVEL_ERROR);
    if (cfg->log_types & CONFIG_LOG_WARNING)
        mask |= LOG_LEVEL_BIT(LOG_LEVEL_WARNING);
    if (cfg->log_types & CONFIG_LOG_NOTICE)
        mask |= LOG_LEVEL_BIT(LOG_LEVEL_NOTICE);
    if (cfg->log_types & CONFIG_LOG_INFORMATION)
        mask |= LOG_LEVEL_BIT(LOG_LEVEL_INFO);
    if (f->is_verbose || (cfg->log_types & CONFIG_LOG_DEBUG))
        mask |= LOG_LEVEL_BIT(LOG_LEVEL_DEBUG);
    return mask;
}

static unsigned log_dests(const struct sol_config *cfg)
{
    unsigned dests = 0;
    if (cfg->log_dests & CONFIG_LOG_DEST_STDERR)
        dests |= LOG_DEST_STDERR;
    if (cfg->log_dests & CONFIG_LOG_DEST_STDOUT)
        dests |= LOG_DEST_STDOUT;
    if (cfg->log_dests & CONFIG_LOG_DEST_FILE)
        dests |= LOG_DEST_FILE;
    if (cfg->log_dests & CONFIG_LOG_DEST_SYSLOG)
        dests |= LOG_DEST_SYSLOG;
    return dests;
}

/* "stderr, file PATH, syslog" for the start-up line. */
static void describe_log_dests(const struct sol_config *cfg, char *out, size_t len)
{
    snprintf(out, len, "%s%s%s%s%s", cfg->log_dests & CONFIG_LOG_DEST_STDERR ? ", stderr" : "",
             cfg->log_dests & CONFIG_LOG_DEST_STDOUT ? ", stdout" : "",
             cfg->log_dests & CONFIG_LOG_DEST_SYSLOG ? ", syslog" : "",
             cfg->log_dests & CONFIG_LOG_DEST_FILE ? ", file " : "",
             cfg->log_dests & CONFIG_LOG_DEST_FILE ? cfg->log_file : "");
    if (out[0] == ',')
        memmove(out, out + 2, strlen(out + 2) + 1);
    else
        snprintf(out, len, "nowhere");
}

static int setup_log(const struct flags *f, const struct sol_config *cfg, char *err, size_t err_len)
{
    log_set_levels(log_levels(f, cfg));
    log_set_connection_messages(cfg->connection_messages);
    log_set_subscription_messages((cfg->log_types & CONFIG_LOG_SUBSCRIBE) != 0,
                                  (cfg->log_types & CONFIG_LOG_UNSUBSCRIBE) != 0);
    char why[ERR_LEN - 32];
    if (log_open(log_dests(cfg), cfg->log_file, why, sizeof(why)) < 0) {
        snprintf(err, err_len, "log_dest file: %s", why);
        return -1;
    }
    return 0;
}

/* ---- daemon mode ------------------------------------------------------------- */

/*
 * Double fork: the original process waits on a pipe until the daemon writes
 * "OK" (listening) or its start-up error, then returns. The middle process
 * (after setsid) only forks the daemon, so the daemon is no session leader
 * and cannot get a controlling terminal.
 */
enum daemon_role { ROLE_FOREGROUND, ROLE_DAEMON, ROLE_ORIGINAL, ROLE_MIDDLE };

/* The original process: relay the daemon's verdict. Returns the exit code. */
static int wait_for_daemon(int fd, pid_t middle)
{
    char msg[ERR_LEN];
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

/* Forks twice; *notify_fd is the daemon's end of the pipe. Returns the role
 * of the calling process, or -1 with err. */
static int daemonize(int *notify_fd, int *exit_code, char *err, size_t err_len)
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
        return ROLE_ORIGINAL;
    }
    close(fds[0]);
    if (setsid() < 0 || (pid = fork()) < 0) {
        dprintf(fds[1], "daemon: %s", strerror(errno));
        close(fds[1]);
        *exit_code = 1;
        return ROLE_MIDDLE;
    }
    if (pid > 0) {
        close(fds[1]);
        *exit_code = 0;
        return ROLE_MIDDLE;
    }
    char why[ERR_LEN];
    if (detach_stdio(why, sizeof(why)) < 0) {
        dprintf(fds[1], "%s", why);
        close(fds[1]);
        *exit_code = 1;
        return ROLE_MIDDLE; /* this process ends like the middle one */
    }
    *notify_fd = fds[1];
    return ROLE_DAEMON;
}

static int write_pid_file(const char *path, char *err, size_t err_len)
{
    FILE *f = fopen(path, "w");
    if (f == NULL || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0) {
        snprintf(err, err_len, "pid_file %.300s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- the broker -------------------------------------------------------------- */

struct broker {
    struct sol_config cfg;
    struct broker_auth auth;
    struct store *store;
    struct session_mgr *mgr;
    struct server *srv;
    struct metrics *metrics; /* NULL: no metrics_listener */
    struct bridge_set *bridges; /* NULL: no connection blocks */
    bool has_pid_file;
    time_t started_at;
};

static int open_store(const struct sol_config *cfg, bool is_check_store, struct store **out,
                      char *err, size_t err_len)
{
    struct store_options opts;
    store_options_init(&opts);
    opts.check_full = is_check_store;
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

static void fill_session_config(const struct broker *b, struct session_config *sc)
{
    const struct sol_config *cfg = &b->cfg;
    session_config_defaults(sc);
    sc->allow_anonymous = cfg->allow_anonymous == 1;
    sc->max_inflight_messages =
        cfg->max_inflight_messages > UINT16_MAX ? UINT16_MAX : (uint16_t)cfg->max_inflight_messages;
    sc->max_queued_messages = cfg->max_queued_messages;
    sc->max_queued_bytes =
        cfg->max_queued_bytes > SIZE_MAX ? SIZE_MAX : (size_t)cfg->max_queued_bytes;
    sc->max_qos0_output_bytes =
        cfg->max_output_buffer_bytes > SIZE_MAX ? SIZE_MAX : (size_t)cfg->max_output_buffer_bytes;
    sc->retain_available = cfg->retain_available;
    sc->max_keepalive_s = cfg->max_keepalive;
    sc->max_topic_levels = cfg->max_topic_levels;
    sc->max_subscriptions_per_client = cfg->max_subscriptions_per_client;
    sc->max_subscriptions = cfg->max_subscriptions;
    sc->persistent_client_expiration_s = cfg->persistent_client_expiration_s > UINT32_MAX
                                             ? UINT32_MAX
                                             : (uint32_t)cfg->persistent_client_expiration_s;
    sc->passwords = b->auth.global.passwords;
    sc->acl = b->auth.global.acl;
}

static int new_session_mgr(struct broker *b, char *err, size_t err_len)
{
    struct session_config sc;
    fill_session_config(b, &sc);
    char why[ERR_LEN - 32]; /* room for the prefix below in err */
    if (session_mgr_new(&sc, b->store, server_sink(), &b->mgr, why, sizeof(why)) != 0) {
        snprintf(err, err_len, "session manager: %s", why);
        return -1;
    }
    return 0;
}

/* The server's packet limit: --max-packet-size, else the smaller of
 * max_packet_size and a PUBLISH of message_size_limit payload bytes, else the
 * protocol maximum (0). */
static size_t max_packet_size(const struct flags *f, const struct sol_config *cfg)
{
    if (f->max_packet_size > 0)
        return (size_t)f->max_packet_size;
    uint64_t max = cfg->max_packet_size;
    if (cfg->message_size_limit != 0 &&
        cfg->message_size_limit <= PROTOCOL_MAX_BYTES - PUBLISH_OVERHEAD) {
        uint64_t fits_payload = (uint64_t)cfg->message_size_limit + PUBLISH_OVERHEAD;
        if (max == 0 || fits_payload < max)
            max = fits_payload;
    }
    return max >= PROTOCOL_MAX_BYTES ? 0 : (size_t)max;
}

static struct server_listen listen_of(const struct config_listener *l)
{
    return (struct server_listen){.host = l->bind_address,
                                  .port = l->port,
                                  .unix_path = l->unix_path,
                                  .cafile = l->cafile,
                                  .certfile = l->certfile,
                                  .keyfile = l->keyfile,
                                  .tls_version = l->tls_version,
                                  .require_certificate = l->require_certificate,
                                  .use_identity_as_username = l->use_identity_as_username};
}

/* The server's view of the configured listeners (release with free()), or
 * NULL when out of memory. */
static struct server_listen *listens_of(const struct broker *b)
{
    const struct sol_config *cfg = &b->cfg;
    struct server_listen *listens =
        calloc(cfg->listener_count ? cfg->listener_count : 1, sizeof(*listens));
    for (size_t i = 0; listens != NULL && i < cfg->listener_count; i++) {
        listens[i] = listen_of(&cfg->listeners[i]);
        if (i < b->auth.count)
            listens[i].auth = &b->auth.listeners[i].slot;
    }
    return listens;
}

static int new_server(const struct flags *f, struct broker *b, char *err, size_t err_len)
{
    const struct sol_config *cfg = &b->cfg;
    struct server_listen *listens = listens_of(b);
    if (listens == NULL) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    struct server_options opts;
    server_options_init(&opts);
    opts.listens = listens;
    opts.listen_count = cfg->listener_count;
    if (f->connect_timeout_s >= 0)
        opts.connect_timeout_s = f->connect_timeout_s;
    opts.max_packet_size = max_packet_size(f, cfg);
    opts.max_input_buffer_bytes =
        cfg->max_input_buffer_bytes > SIZE_MAX ? SIZE_MAX : (size_t)cfg->max_input_buffer_bytes;
    opts.max_connections = cfg->max_connections > INT32_MAX ? INT32_MAX : (int)cfg->max_connections;
    if (cfg->storage_sync == CONFIG_SYNC_NOSYNC || cfg->persistent_client_expiration_s > 0)
        opts.tick_s = TICK_S;
    int rc = server_new(&opts, &b->srv, err, err_len);
    free(listens);
    return rc;
}

/* The tick: push committed pages to disk (nosync) and expire persistent
 * sessions (persistent_client_expiration). */
static void on_tick(void *arg)
{
    struct broker *b = arg;
    if (b->cfg.storage_sync == CONFIG_SYNC_NOSYNC) {
        int rc = store_flush(b->store);
        if (rc == STORE_ERR_FATAL) {
            server_fail(b->srv, "store flush failed");
            return;
        }
        if (rc != 0)
            log_error("store flush: %s", store_strerror(rc));
    }
    if (b->cfg.persistent_client_expiration_s > 0)
        session_expire(b->mgr, (uint64_t)time(NULL));
}

/* SIGHUP: new password and ACL files (all or nothing), log file reopened.
 * Connected clients stay; the config file itself is not re-read. */
/* SIGHUP: the TLS listeners' certificates and keys (all or nothing). */
static void reload_certificates(struct broker *b)
{
    bool has_tls = false;
    for (size_t i = 0; i < b->cfg.listener_count; i++)
        has_tls |= b->cfg.listeners[i].certfile != NULL;
    if (!has_tls)
        return;
    char err[ERR_LEN];
    struct server_listen *listens = listens_of(b);
    if (listens == NULL)
        log_error("SIGHUP: out of memory; keeping the previous certificates");
    else if (server_reload_tls(b->srv, listens, b->cfg.listener_count, err, sizeof(err)) < 0)
        log_error("SIGHUP: %s; keeping the previous certificates", err);
    else
        log_notice("SIGHUP: reloaded the TLS certificates and keys");
    free(listens);
}

static void on_reload(void *arg)
{
    struct broker *b = arg;
    char err[ERR_LEN];
    if (log_reopen(err, sizeof(err)) < 0)
        log_error("SIGHUP: reopening the log file: %s", err);
    reload_certificates(b);
    struct broker_auth fresh;
    if (broker_auth_load(&b->cfg, &fresh, err, sizeof(err)) < 0) {
        log_error("SIGHUP: %s; keeping the previous password and ACL files", err);
        return;
    }
    session_set_auth(b->mgr, fresh.global.passwords, fresh.global.acl);
    auth_files_free(&b->auth.global);
    b->auth.global = fresh.global;
    fresh.global = (struct auth_files){0};
    /* Same listeners, same count: move the new files into the old slots. */
    for (size_t i = 0; i < b->auth.count && i < fresh.count; i++) {
        struct listener_auth *la = &b->auth.listeners[i];
        auth_files_free(&la->files);
        la->files = fresh.listeners[i].files;
        la->slot = fresh.listeners[i].slot;
        fresh.listeners[i].files = (struct auth_files){0};
    }
    broker_auth_free(&fresh);
    log_notice("SIGHUP: reloaded the password and ACL files");
}

/* ---- $SYS ---------------------------------------------------------------------- */

static void sys_publish(struct broker *b, const char *topic, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void sys_publish(struct broker *b, const char *topic, const char *fmt, ...)
{
    char value[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(value, sizeof(value), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(value))
        return;
    if (session_publish_internal(b->mgr, topic, value, (size_t)n, true) != 0)
        log_warning("$SYS: %s not published: out of memory", topic);
}

static void sys_publish_u64(struct broker *b, const char *topic, uint64_t v)
{
    sys_publish(b, topic, "%" PRIu64, v);
}

/* Every sys_interval seconds: Mosquitto's $SYS/broker topics that Sol has. */
static void on_sys_timer(void *arg)
{
    struct broker *b = arg;
    struct session_stats ss;
    session_get_stats(b->mgr, &ss);
    sys_publish(b, "$SYS/broker/version", "sol version %s", SOL_VERSION);
    sys_publish(b, "$SYS/broker/uptime", "%lld seconds", (long long)(time(NULL) - b->started_at));
    sys_publish_u64(b, "$SYS/broker/clients/connected", ss.clients_connected);
    sys_publish_u64(b, "$SYS/broker/clients/disconnected", ss.clients_disconnected);
    sys_publish_u64(b, "$SYS/broker/clients/total", ss.clients_connected + ss.clients_disconnected);
    sys_publish_u64(b, "$SYS/broker/messages/received", ss.messages_received);
    sys_publish_u64(b, "$SYS/broker/messages/sent", ss.messages_sent);
    sys_publish_u64(b, "$SYS/broker/messages/dropped", ss.messages_dropped);
    sys_publish_u64(b, "$SYS/broker/messages/dropped/queue limit", ss.messages_queue_dropped);
    sys_publish_u64(b, "$SYS/broker/messages/refused/store full", ss.publishes_refused);
    sys_publish_u64(b, "$SYS/broker/retained messages/count", ss.retained);
    sys_publish_u64(b, "$SYS/broker/subscriptions/count", ss.subscriptions);
    sys_publish_u64(b, "$SYS/broker/store/commits", ss.commits);
    sys_publish_u64(b, "$SYS/broker/store/commit latency/last us", ss.commit_latency_us_last);
    sys_publish_u64(b, "$SYS/broker/store/commit latency/max us", ss.commit_latency_us_max);
    sys_publish_u64(b, "$SYS/broker/store/commit latency/average us", ss.commit_latency_us_avg);
    struct server_stats net;
    server_get_stats(b->srv, &net);
    sys_publish_u64(b, "$SYS/broker/bytes/received", net.bytes_received);
    sys_publish_u64(b, "$SYS/broker/bytes/sent", net.bytes_sent);
    sys_publish_u64(b, "$SYS/broker/connections/total", net.connections_total);
    sys_publish_u64(b, "$SYS/broker/connections/refused", net.connections_refused);
    sys_publish_u64(b, "$SYS/broker/connections/input waits", net.input_waits);
    struct store_stats st;
    if (store_stats(b->store, &st) == 0)
        sys_publish_u64(b, "$SYS/broker/store/bytes", st.map_used);
}

/* ---- metrics ------------------------------------------------------------------- */

static void fill_session_metrics(const struct session_stats *ss, struct metrics_stats *out)
{
    out->sessions_offline = ss->clients_disconnected;
    out->sessions_online = ss->sessions - ss->clients_disconnected;
    out->subscriptions = ss->subscriptions;
    out->retained = ss->retained;
    memcpy(out->messages_received, ss->messages_received_qos, sizeof(out->messages_received));
    memcpy(out->payload_bytes_received, ss->payload_bytes_received_qos,
           sizeof(out->payload_bytes_received));
    memcpy(out->messages_sent, ss->messages_sent_qos, sizeof(out->messages_sent));
    memcpy(out->payload_bytes_sent, ss->payload_bytes_sent_qos, sizeof(out->payload_bytes_sent));
    out->dropped_queue_limit = ss->messages_queue_dropped;
    out->dropped_output_buffer = ss->messages_dropped - ss->messages_queue_dropped;
    out->publishes_refused_store_full = ss->publishes_refused;
    out->inflight_messages = ss->inflight_messages;
    out->queued_messages = ss->queued_messages;
    out->queued_bytes = ss->queued_bytes;
    out->store_commits = ss->commits;
    struct metrics_histogram *h = &out->commit_latency;
    _Static_assert(SESSION_COMMIT_BUCKETS <= METRICS_HISTOGRAM_MAX, "histogram too small");
    h->bucket_count = SESSION_COMMIT_BUCKETS;
    memcpy(h->bound_us, session_commit_bucket_us, sizeof(session_commit_bucket_us));
    memcpy(h->cumulative, ss->commit_latency_buckets, sizeof(ss->commit_latency_buckets));
    h->count = ss->commits;
    h->sum_us = ss->commit_latency_us_total;
}

/* A scrape: the broker's running counters into *out; O(1) apart from the
 * store's one read transaction. */
static void fill_metrics(void *arg, struct metrics_stats *out)
{
    struct broker *b = arg;
    out->version = SOL_VERSION;
    out->start_time_s = (uint64_t)b->started_at;
    struct server_stats net;
    server_get_stats(b->srv, &net);
    out->connections_open = net.connections_current;
    out->connections_accepted = net.connections_total;
    out->connections_refused = net.connections_refused;
    out->tls_handshake_failures = net.tls_handshake_failures;
    out->network_bytes_received = net.bytes_received;
    out->network_bytes_sent = net.bytes_sent;
    out->input_waits = net.input_waits;
    struct session_stats ss;
    session_peek_stats(b->mgr, &ss);
    fill_session_metrics(&ss, out);
    bridge_set_metrics(b->bridges, out);
    struct store_stats st;
    if (store_stats(b->store, &st) == 0) {
        out->has_store = true;
        out->store_map_size = st.map_size;
        out->store_map_used = st.map_used;
        out->store_max_size = st.max_map_size;
    }
}

static int start_metrics(struct broker *b, char *err, size_t err_len)
{
    const struct sol_config *cfg = &b->cfg;
    if (cfg->metrics_port == 0)
        return 0;
    struct metrics_options opts;
    metrics_options_init(&opts);
    opts.address = cfg->metrics_address;
    opts.port = cfg->metrics_port;
    opts.fill = fill_metrics;
    opts.fill_arg = b;
    char why[256];
    if (metrics_new(server_loop(b->srv), &opts, &b->metrics, why, sizeof(why)) < 0) {
        snprintf(err, err_len, "%.200s: metrics_listener: %s",
                 cfg->metrics_where ? cfg->metrics_where : "-", why);
        return -1;
    }
    log_notice("metrics: serving http://%s%s%s:%u/metrics",
               cfg->metrics_address && strchr(cfg->metrics_address, ':') ? "[" : "",
               cfg->metrics_address ? cfg->metrics_address : "*",
               cfg->metrics_address && strchr(cfg->metrics_address, ':') ? "]" : "",
               (unsigned)cfg->metrics_port);
    return 0;
}

/* The configured bridges (src/bridge/), on the server's loop. */
static int start_bridges(const struct flags *f, struct broker *b, char *err, size_t err_len)
{
    struct bridge_options opts = {.bridges = b->cfg.bridges,
                                  .bridge_count = b->cfg.bridge_count,
                                  .max_inflight = b->cfg.max_inflight_messages,
                                  .max_packet_size = max_packet_size(f, &b->cfg),
                                  .max_output_bytes = (size_t)b->cfg.max_output_buffer_bytes};
    if (b->cfg.bridge_count == 0)
        return 0;
    return bridge_set_new(server_loop(b->srv), &opts, b->mgr, b->store, &b->bridges, err,
                          err_len);
}

/* ---- start and stop -------------------------------------------------------------- */

/* Everything before the store: config, TLS files, password and ACL files. */
static int prepare(const struct flags *f, struct broker *b, char *err, size_t err_len)
{
    if (load_config(f, &b->cfg, err, err_len) < 0 || check_tls(&b->cfg, err, err_len) < 0 ||
        bridge_check_config(b->cfg.bridges, b->cfg.bridge_count, err, err_len) < 0 ||
        broker_auth_load(&b->cfg, &b->auth, err, err_len) < 0)
        return -1;
    return 0;
}

static int start(const struct flags *f, struct broker *b, char *err, size_t err_len)
{
    if (setup_log(f, &b->cfg, err, err_len) < 0)
        return -1;
    b->started_at = time(NULL);
    char dests[CONFIG_PATH_MAX + 64];
    describe_log_dests(&b->cfg, dests, sizeof(dests));
    log_notice("sol %s starting (pid %ld), logging to %s", SOL_VERSION, (long)getpid(), dests);
    log_notice("config: %s", f->config_path ? f->config_path : "none (defaults)");
    if (open_store(&b->cfg, f->is_check_store, &b->store, err, err_len) < 0 ||
        new_session_mgr(b, err, err_len) < 0 || new_server(f, b, err, err_len) < 0)
        return -1;
    server_set_session_mgr(b->srv, b->mgr);
    server_set_tick(b->srv, on_tick, b);
    server_set_reload(b->srv, on_reload, b);
    server_set_sys_timer(b->srv, b->cfg.sys_interval, on_sys_timer, b);
    if (start_metrics(b, err, err_len) < 0 || start_bridges(f, b, err, err_len) < 0)
        return -1;
    if (f->is_daemon && b->cfg.pid_file != NULL) {
        if (write_pid_file(b->cfg.pid_file, err, err_len) < 0)
            return -1;
        b->has_pid_file = true;
    }
    return 0;
}

/* Tears down in reverse order: connections first (the manager needs them
 * gone), then the manager's last commit, then the store. */
static void stop(struct broker *b)
{
    bool has_failed = b->store != NULL && store_has_failed(b->store);
    metrics_free(b->metrics); /* its watchers are on the server's loop */
    bridge_set_free(b->bridges); /* so are these; acks still waiting are dropped */
    server_free(b->srv);
    if (!has_failed && b->mgr != NULL && session_flush(b->mgr) != 0)
        log_error("shutdown: the final commit failed");
    session_mgr_free(b->mgr);
    if (!has_failed && b->store != NULL && store_flush(b->store) != 0)
        log_error("shutdown: store flush failed");
    store_close(b->store);
    broker_auth_free(&b->auth);
    if (b->has_pid_file && unlink(b->cfg.pid_file) != 0)
        log_warning("pid_file %s: %s", b->cfg.pid_file, strerror(errno));
    config_deinit(&b->cfg);
}

/* --test-config: everything that can fail before binding, nothing after. */
static int test_config(const struct flags *f)
{
    struct broker b = {0};
    char err[ERR_LEN] = "";
    int rc = prepare(f, &b, err, sizeof(err));
    if (rc == 0)
        printf("configuration OK\n");
    else
        fprintf(stderr, "sol: %s\n", err);
    broker_auth_free(&b.auth);
    config_deinit(&b.cfg);
    return rc == 0 ? 0 : 1;
}

/* Runs the broker in this process; notify_fd (-1: none) gets "OK" once it
 * listens, or the start-up error. */
static int run(const struct flags *f, struct broker *b, int notify_fd)
{
    char err[ERR_LEN] = "";
    int rc = start(f, b, err, sizeof(err));
    if (notify_fd >= 0) {
        dprintf(notify_fd, "%s", rc == 0 ? "OK" : err);
        close(notify_fd);
    }
    if (rc < 0) {
        fprintf(stderr, "sol: %s\n", err);
        log_error("start-up failed: %s", err);
        stop(b);
        log_close();
        return 1;
    }
    rc = server_run(b->srv);
    stop(b);
    log_notice("sol stopped");
    log_close();
    return rc == 0 ? 0 : 1;
}

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
    struct flags f;
    int rc = parse_flags(argc, argv, &f);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    if (f.is_test_config)
        return test_config(&f);
    struct broker b = {0};
    char err[ERR_LEN] = "";
    if (prepare(&f, &b, err, sizeof(err)) < 0) {
        fprintf(stderr, "sol: %s\n", err);
        broker_auth_free(&b.auth);
        config_deinit(&b.cfg);
        return 1;
    }
    int notify_fd = -1, exit_code = 0;
    int role = f.is_daemon ? daemonize(&notify_fd, &exit_code, err, sizeof(err)) : ROLE_FOREGROUND;
    if (role == ROLE_FOREGROUND || role == ROLE_DAEMON)
        return run(&f, &b, notify_fd);
    if (role < 0)
        fprintf(stderr, "sol: %s\n", err);
    broker_auth_free(&b.auth);
    config_deinit(&b.cfg);
    return role < 0 ? 1 : exit_code;
}
