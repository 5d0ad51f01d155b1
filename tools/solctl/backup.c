/*
 * backup.c - `solctl backup DEST`: a consistent copy of the live store.
 *
 * The copy comes from one LMDB read transaction while the broker goes on
 * writing (store_backup()). That transaction pins every page it sees, so the
 * store grows by what the broker writes during the copy; solctl refuses to
 * start when the store already uses more than BACKUP_MAX_USE of
 * storage_max_size (taken from sol's config with -c FILE, or --max-size,
 * else Sol's default), rather than risk the broker refusing publishes as
 * "store full" mid-copy.
 * Not for: restoring (start sol with persistence_location on the copy).
 */
#include "solctl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

/* Refuse above this share of storage_max_size (percent). */
#define BACKUP_MAX_USE_PERCENT 90

/* storage_max_size: --max-size, else the config file's, else the default. */
static int max_size(const struct solctl_opts *o, uint64_t *out)
{
    if (o->max_size != 0) {
        *out = o->max_size;
        return 0;
    }
    struct sol_config cfg;
    config_init(&cfg);
    int rc = 0;
    char err[512];
    if (o->config_file != NULL && config_load_file(&cfg, o->config_file, err, sizeof(err)) != 0) {
        fprintf(stderr, "solctl: %s\n", err);
        rc = -1;
    }
    *out = cfg.storage_max_size;
    config_deinit(&cfg);
    return rc;
}

static int check_room(struct store *store, const struct solctl_opts *o)
{
    uint64_t max = 0;
    if (max_size(o, &max) != 0)
        return -1;
    struct store_stats st;
    int rc = store_stats(store, &st);
    if (rc != 0) {
        fprintf(stderr, "solctl: reading the store: %s\n", store_strerror(rc));
        return -1;
    }
    if (st.map_used * 100 > max * BACKUP_MAX_USE_PERCENT) {
        fprintf(stderr,
                "solctl: the store uses %llu MiB of storage_max_size %llu MiB: a backup keeps the "
                "pages it reads until it ends, so the broker could run out of room; free space or "
                "raise storage_max_size first\n",
                (unsigned long long)(st.map_used >> 20), (unsigned long long)(max >> 20));
        return -1;
    }
    return 0;
}

int solctl_backup(struct store *store, const struct solctl_opts *o)
{
    if (o->dest == NULL) {
        fprintf(stderr, "solctl: backup needs a destination directory (try --help)\n");
        return SOLCTL_EXIT_ERROR;
    }
    if (check_room(store, o) != 0)
        return SOLCTL_EXIT_ERROR;
    char err[512];
    int rc = store_backup(store, o->dest, o->compact, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "solctl: backup: %s\n", err);
        return SOLCTL_EXIT_ERROR;
    }
    printf("backed up %s to %s (%s)\n", o->data_dir, o->dest,
           o->compact ? "compacted" : "page for page");
    return SOLCTL_EXIT_OK;
}
