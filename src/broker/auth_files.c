/*
 * auth_files.c - the password files and ACLs the broker runs with: loaded at
 * start, swapped whole on SIGHUP (a file with an error keeps the old set).
 * Not for: parsing the files or checking a client (src/auth/).
 */
#include <stdio.h>
#include <stdlib.h>

#include "broker.h"
#include "broker_internal.h"
#include "log.h"

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

void broker_auth_free(struct broker_auth *a)
{
    auth_files_free(&a->global);
    for (size_t i = 0; i < a->count; i++)
        auth_files_free(&a->listeners[i].files);
    free(a->listeners);
    *a = (struct broker_auth){0};
}

int broker_auth_load(const struct sol_config *cfg, struct broker_auth *out, char *err,
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

void broker_auth_reload(struct broker *b)
{
    char err[BROKER_ERR_LEN];
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
