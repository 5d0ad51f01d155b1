/*
 * backup.c - a consistent copy of a live store (`solctl backup`).
 *
 * LMDB copies from one read transaction (mdb_env_copy2), so the copy is the
 * store as of one commit while the broker keeps writing. That read
 * transaction pins the pages it sees: the writer cannot reuse pages freed
 * while the copy runs, so the store grows by what is written meanwhile (the
 * caller checks there is room first). The copy is fsynced, file and
 * directory, before this returns: a backup that a power cut can take away is
 * not one.
 *
 * Not for: restoring (start sol with persistence_location on the copy).
 */
#include "store_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* dir must exist (made here if missing) and hold no data.mdb. */
static int prepare_dir(const char *dir, char *err, size_t err_len)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, err_len, "%s: %s", dir, strerror(errno));
        return STORE_ERR_IO;
    }
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/data.mdb", dir) >= (int)sizeof(path)) {
        snprintf(err, err_len, "%s: path too long", dir);
        return STORE_ERR_INVALID;
    }
    if (access(path, F_OK) == 0) {
        snprintf(err, err_len,
                 "%s already holds a store (data.mdb): back up into an empty "
                 "directory",
                 dir);
        return STORE_ERR_EXISTS;
    }
    return 0;
}

static int fsync_path(const char *path, int flags, char *err, size_t err_len)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        snprintf(err, err_len, "%s: fsync: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return STORE_ERR_IO;
    }
    close(fd);
    return 0;
}

int store_backup(struct store *store, const char *dir, bool compact, char *err, size_t err_len)
{
    int rc = prepare_dir(dir, err, err_len);
    if (rc != 0)
        return rc;
    int mrc = mdb_env_copy2(store->env, dir, compact ? MDB_CP_COMPACT : 0);
    if (mrc != 0) {
        snprintf(err, err_len, "%s: copy failed: %s", dir, mdb_strerror(mrc));
        return store_err_from_mdb(mrc);
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    rc = fsync_path(path, O_RDONLY, err, err_len);
    if (rc == 0)
        rc = fsync_path(dir, O_RDONLY | O_DIRECTORY, err, err_len);
    return rc;
}
