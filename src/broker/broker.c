/*
 * broker.c - the sol process from configuration to shutdown: opens the store,
 * creates the session manager, the server and the bridges, and owns the policies that
 * span modules: the tick (nosync flushes, session expiry) and SIGHUP.
 * Start-up errors come back as one line in err ("FILE:LINE: ..." for the
 * config); only main() prints and exits.
 * Not for: flags (flags.c), password/ACL sets (auth_files.c), $SYS and
 * metrics (stats.c).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bridge.h"
#include "broker.h"
#include "broker_internal.h"
#include "config.h"
#include "daemon.h"
#include "log.h"
#include "log_config.h"
#include "metrics.h"
#include "server.h"
#include "session.h"
#include "store.h"

/* In nosync mode the store is flushed to disk this often (seconds); the same
 * tick expires persistent sessions. */
#define TICK_S 1.0
/* A PUBLISH carrying message_size_limit payload bytes: fixed header (5),
 * topic length and the longest topic (2 + 65535), packet id (2). */
#define PUBLISH_OVERHEAD   (5u + 2u + 65535u + 2u)
#define PROTOCOL_MAX_BYTES (268435455u + 5u)

/* Flags and the config file into cfg; -1 with a message in err. */
static int load_config(const struct broker_flags *f, struct sol_config *cfg, char *err,
                       size_t err_len)
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

static int open_store(const struct sol_config *cfg, bool is_check_store, struct store **out,
                      char *err, size_t err_len)
{
    struct store_options opts;
    store_options_init(&opts);
    opts.check_full = is_check_store;
    opts.dir = cfg->persistence_location;
    opts.sync = cfg->storage_sync == CONFIG_SYNC_NOSYNC ? STORE_SYNC_NOSYNC : STORE_SYNC_FSYNC;
    opts.max_map_size = cfg->storage_max_size;
    char why[BROKER_ERR_LEN - 32]; /* room for the prefix below in err */
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
    sc->shared_subscription_available = cfg->shared_subscriptions;
    sc->max_keepalive_s = cfg->max_keepalive;
    sc->max_topic_levels = cfg->max_topic_levels;
    sc->max_subscriptions_per_client = cfg->max_subscriptions_per_client;
    sc->max_subscriptions = cfg->max_subscriptions;
    sc->persistent_client_expiration_s = cfg->persistent_client_expiration_s > UINT32_MAX
                                             ? UINT32_MAX
                                             : (uint32_t)cfg->persistent_client_expiration_s;
    sc->passwords = b->auth.global.passwords;
    sc->acl = b->auth.global.acl;
    sc->receive_maximum = cfg->receive_maximum;
    sc->max_topic_alias = cfg->max_topic_alias;
}

static size_t max_packet_size(const struct broker_flags *f, const struct sol_config *cfg);

static int new_session_mgr(const struct broker_flags *f, struct broker *b, char *err,
                           size_t err_len)
{
    struct session_config sc;
    fill_session_config(b, &sc);
    sc.max_packet_size = (uint32_t)max_packet_size(f, &b->cfg); /* told in MQTT 5 CONNACK */
    char why[BROKER_ERR_LEN - 32]; /* room for the prefix below in err */
    if (session_mgr_new(&sc, b->store, server_sink(), &b->mgr, why, sizeof(why)) != 0) {
        snprintf(err, err_len, "session manager: %s", why);
        return -1;
    }
    return 0;
}

/* The server's packet limit: --max-packet-size, else the smaller of
 * max_packet_size and a PUBLISH of message_size_limit payload bytes, else the
 * protocol maximum (0). */
static size_t max_packet_size(const struct broker_flags *f, const struct sol_config *cfg)
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
                                  .use_identity_as_username = l->use_identity_as_username,
                                  .is_websockets = l->is_websockets};
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

static int new_server(const struct broker_flags *f, struct broker *b, char *err, size_t err_len)
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
    opts.tick_s = TICK_S; /* session expiry and will delays (MQTT 5) need it always */
    opts.use_io_uring = cfg->io_uring;
    int rc = server_new(&opts, &b->srv, err, err_len);
    free(listens);
    return rc;
}

/* The tick: push committed pages to disk (nosync), expire sessions and
 * publish delayed wills. */
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
    session_tick(b->mgr);
}

/* SIGHUP: the TLS listeners' certificates and keys (all or nothing). */
static void reload_certificates(struct broker *b)
{
    bool has_tls = false;
    for (size_t i = 0; i < b->cfg.listener_count; i++)
        has_tls |= b->cfg.listeners[i].certfile != NULL;
    if (!has_tls)
        return;
    char err[BROKER_ERR_LEN];
    struct server_listen *listens = listens_of(b);
    if (listens == NULL)
        log_error("SIGHUP: out of memory; keeping the previous certificates");
    else if (server_reload_tls(b->srv, listens, b->cfg.listener_count, err, sizeof(err)) < 0)
        log_error("SIGHUP: %s; keeping the previous certificates", err);
    else
        log_notice("SIGHUP: reloaded the TLS certificates and keys");
    free(listens);
}

/* SIGHUP: log file reopened, certificates and password/ACL files reloaded
 * (each all or nothing). Connected clients stay; the config file itself is
 * not re-read. */
static void on_reload(void *arg)
{
    struct broker *b = arg;
    char err[BROKER_ERR_LEN];
    if (log_reopen(err, sizeof(err)) < 0)
        log_error("SIGHUP: reopening the log file: %s", err);
    reload_certificates(b);
    broker_auth_reload(b);
}

struct broker *broker_prepare(const struct broker_flags *f, char *err, size_t err_len)
{
    struct broker *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    if (load_config(f, &b->cfg, err, err_len) < 0 || config_check_tls(&b->cfg, err, err_len) < 0 ||
        bridge_check_config(b->cfg.bridges, b->cfg.bridge_count, err, err_len) < 0 ||
        broker_auth_load(&b->cfg, &b->auth, err, err_len) < 0) {
        broker_free(b);
        return NULL;
    }
    return b;
}

void broker_free(struct broker *b)
{
    if (b == NULL)
        return;
    broker_auth_free(&b->auth);
    config_deinit(&b->cfg);
    free(b);
}

/* The configured bridges (src/bridge/), on the server's loop. */
static int start_bridges(const struct broker_flags *f, struct broker *b, char *err, size_t err_len)
{
    struct bridge_options opts = {.bridges = b->cfg.bridges,
                                  .bridge_count = b->cfg.bridge_count,
                                  .max_inflight = b->cfg.max_inflight_messages,
                                  .max_packet_size = max_packet_size(f, &b->cfg),
                                  .max_output_bytes = (size_t)b->cfg.max_output_buffer_bytes};
    if (b->cfg.bridge_count == 0)
        return 0;
    return bridge_set_new(server_loop(b->srv), &opts, b->mgr, b->store, &b->bridges, err, err_len);
}

static int start(const struct broker_flags *f, struct broker *b, char *err, size_t err_len)
{
    if (log_setup_from_config(&b->cfg, f->is_verbose, err, err_len) < 0)
        return -1;
    b->started_at = time(NULL);
    char dests[CONFIG_PATH_MAX + 64];
    log_describe_dests(&b->cfg, dests, sizeof(dests));
    log_notice("sol %s starting (pid %ld), logging to %s", SOL_VERSION, (long)getpid(), dests);
    log_notice("config: %s", f->config_path ? f->config_path : "none (defaults)");
    if (open_store(&b->cfg, f->is_check_store, &b->store, err, err_len) < 0 ||
        new_session_mgr(f, b, err, err_len) < 0 || new_server(f, b, err, err_len) < 0)
        return -1;
    server_set_session_mgr(b->srv, b->mgr);
    server_set_tick(b->srv, on_tick, b);
    server_set_reload(b->srv, on_reload, b);
    server_set_sys_timer(b->srv, b->cfg.sys_interval, broker_on_sys_timer, b);
    if (broker_start_metrics(b, err, err_len) < 0 || start_bridges(f, b, err, err_len) < 0)
        return -1;
    if (b->cfg.storage_thread) {
        int rc = store_committer_start(b->store, server_commit_notify, b->srv);
        if (rc != 0) {
            snprintf(err, err_len, "cannot start the storage thread: %s", store_strerror(rc));
            return -1;
        }
        log_info("store: commits run on a storage thread (storage_thread true)");
    }
    if (f->is_daemon && b->cfg.pid_file != NULL) {
        if (daemon_write_pid_file(b->cfg.pid_file, err, err_len) < 0)
            return -1;
        b->has_pid_file = true;
    }
    return 0;
}

/* Tears down in reverse order: connections first (the manager needs them
 * gone), then the manager's last commit, then the store; releases b. */
static void stop(struct broker *b)
{
    bool has_failed = b->store != NULL && store_has_failed(b->store);
    if (b->mgr != NULL) /* the storage thread signals the server's loop: done first */
        (void)session_commit_collect(b->mgr, true);
    if (b->store != NULL)
        store_committer_stop(b->store);
    metrics_free(b->metrics);    /* its watchers are on the server's loop */
    bridge_set_free(b->bridges); /* so are these; acks still waiting are dropped */
    server_free(b->srv);
    if (!has_failed && b->mgr != NULL && session_flush(b->mgr) != 0)
        log_error("shutdown: the final commit failed");
    session_mgr_free(b->mgr);
    if (!has_failed && b->store != NULL && store_flush(b->store) != 0)
        log_error("shutdown: store flush failed");
    store_close(b->store);
    if (b->has_pid_file && unlink(b->cfg.pid_file) != 0)
        log_warning("pid_file %s: %s", b->cfg.pid_file, strerror(errno));
    broker_free(b);
}

/* Everything that can fail before binding, nothing after. */
int broker_test_config(const struct broker_flags *f)
{
    char err[BROKER_ERR_LEN] = "";
    struct broker *b = broker_prepare(f, err, sizeof(err));
    if (b == NULL) {
        fprintf(stderr, "sol: %s\n", err);
        return 1;
    }
    printf("configuration OK\n");
    broker_free(b);
    return 0;
}

int broker_run(struct broker *b, const struct broker_flags *f, int notify_fd)
{
    char err[BROKER_ERR_LEN] = "";
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
