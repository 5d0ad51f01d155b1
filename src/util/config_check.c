/*
 * config_check.c - checks across directives that config.c reads one line at
 * a time: the TLS settings of each listener make sense together and name
 * files the broker can read. Run before anything starts (and by
 * --test-config), so a mistake is one clear line, not a failed handshake.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

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

int config_check_tls(const struct sol_config *cfg, char *err, size_t err_len)
{
    for (size_t i = 0; i < cfg->listener_count; i++) {
        if (check_listener_tls(&cfg->listeners[i], err, err_len) < 0)
            return -1;
    }
    return 0;
}
