/*
 * broker_internal.h - shared by the files of src/broker/ only.
 */
#ifndef SOL_BROKER_INTERNAL_H
#define SOL_BROKER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "auth.h"
#include "config.h"
#include "session.h"

/* A password file and an ACL (NULL when not configured). */
struct auth_files {
    struct auth_passwd *passwords;
    struct auth_acl *acl;
};

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

struct broker {
    struct sol_config cfg;
    struct broker_auth auth;
    struct store *store;
    struct session_mgr *mgr;
    struct server *srv;
    struct metrics *metrics;    /* NULL: no metrics_listener */
    struct bridge_set *bridges; /* NULL: no connection blocks */
    bool has_pid_file;
    time_t started_at;
};

/* auth_files.c */
int broker_auth_load(const struct sol_config *cfg, struct broker_auth *out, char *err,
                     size_t err_len);
void broker_auth_free(struct broker_auth *a);
/* SIGHUP: new password and ACL files, all or nothing; logs the outcome. */
void broker_auth_reload(struct broker *b);

/* stats.c */
/* Every sys_interval seconds: Mosquitto's $SYS/broker topics that Sol has. */
void broker_on_sys_timer(void *arg);
/* Starts the metrics endpoint if metrics_listener is configured. */
int broker_start_metrics(struct broker *b, char *err, size_t err_len);

#endif
