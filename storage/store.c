/*
 * store.c - opening, validating, creating and closing the LMDB environment;
 * error mapping; the message-id counter. The directory rule and the schema
 * check live here so a bad directory is refused before anything is written.
 * Not for: batches (batch.c, commit.c), reads (read.c), store_check (check.c).
 */
#include "store_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define MIB                 (1024ull * 1024ull)
#define DEFAULT_INITIAL_MAP (64ull * MIB)
#define DEFAULT_MAX_MAP     (16ull * 1024ull * MIB)
#define PATH_BUF            4096

const char *const store_db_names[STORE_DB_COUNT] = {
    "meta",   "sessions", "subs",   "retained",      "messages",      "refs",
    "queues", "qos2in",   "groupq", "bridge_queues", "bridge_qos2in",
};

const char *store_strerror(int code)
{
    switch (code) {
    case STORE_OK:
        return "success";
    case STORE_ERR_FULL:
        return "store full (map at its maximum size, or disk full)";
    case STORE_ERR_KEY_TOO_LONG:
        return "client id, topic or filter too long for a store key";
    case STORE_ERR_INVALID:
        return "invalid argument";
    case STORE_ERR_NOT_FOUND:
        return "no such record";
    case STORE_ERR_EXISTS:
        return "record already exists";
    case STORE_ERR_SCHEMA:
        return "unknown store schema version";
    case STORE_ERR_CORRUPT:
        return "store file is corrupt";
    case STORE_ERR_NOT_A_STORE:
        return "not a Sol store";
    case STORE_ERR_LOCKED:
        return "store is in use by another process";
    case STORE_ERR_READ_ONLY:
        return "store is read-only";
    case STORE_ERR_CANCELED:
        return "batch discarded";
    case STORE_ERR_IO:
        return "store I/O error";
    case STORE_ERR_FATAL:
        return "store write failed (I/O error): no later write can be trusted";
    default:
        return code < 0 ? strerror(-code) : "unknown store error";
    }
}

bool store_is_fatal_write_error(int rc)
{
    switch (rc) {
    case 0:
    case MDB_MAP_FULL:
    case ENOSPC:
    case EDQUOT:
    case ENOMEM:
    case MDB_KEYEXIST: /* an op's own error: the batch fails, the store is fine */
    case MDB_NOTFOUND:
    case MDB_BAD_VALSIZE:
    case MDB_TXN_FULL:
        return false;
    default:
        return true; /* EIO, MDB_PANIC, MDB_CORRUPTED, MDB_BAD_TXN, ... */
    }
}

int store_err_from_mdb(int rc)
{
    switch (rc) {
    case 0:
        return 0;
    case MDB_MAP_FULL:
    case ENOSPC:
    case EDQUOT:
        return STORE_ERR_FULL;
    case MDB_NOTFOUND:
        return STORE_ERR_NOT_FOUND;
    case MDB_KEYEXIST:
        return STORE_ERR_EXISTS;
    case MDB_BAD_VALSIZE:
        return STORE_ERR_KEY_TOO_LONG;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
    case MDB_INCOMPATIBLE:
        return STORE_ERR_CORRUPT;
    case ENOMEM:
        return -ENOMEM;
    case EACCES:
        return STORE_ERR_READ_ONLY;
    default:
        log_error("store: %s", mdb_strerror(rc));
        return STORE_ERR_IO;
    }
}

void store_options_init(struct store_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->dir = "./sol-data";
    opts->sync = STORE_SYNC_FSYNC;
    opts->initial_map_size = DEFAULT_INITIAL_MAP;
    opts->max_map_size = DEFAULT_MAX_MAP;
}

size_t store_max_key_len(const struct store *store)
{
    return store->max_key_len;
}

size_t store_max_client_id_len(const struct store *store)
{
    return store->max_key_len - SEQ_KEY_EXTRA;
}

uint64_t store_next_message_id(struct store *store)
{
    return store->next_msg_id++;
}

int store_read_begin(struct store *store, MDB_txn **txn)
{
    int rc = mdb_txn_begin(store->env, NULL, MDB_RDONLY, txn);
    if (rc == MDB_MAP_RESIZED) {
        /* The writer grew the map: adopt the new size and retry once. */
        rc = mdb_env_set_mapsize(store->env, 0);
        if (rc == 0)
            rc = mdb_txn_begin(store->env, NULL, MDB_RDONLY, txn);
    }
    return store_err_from_mdb(rc);
}

/* ---- the directory rule -------------------------------------------------- */

struct dir_state {
    bool exists;
    bool has_data;      /* data.mdb exists and is not empty */
    bool has_lock;      /* lock.mdb exists */
    bool has_foreign;   /* files other than data.mdb and lock.mdb */
    uint64_t data_size; /* bytes of data.mdb */
};

static bool path_join(char *out, const char *dir, const char *name)
{
    int n = snprintf(out, PATH_BUF, "%s/%s", dir, name);
    return n > 0 && n < PATH_BUF;
}

static int scan_dir(const char *dir, struct dir_state *st, char *err, size_t err_len)
{
    memset(st, 0, sizeof(*st));
    DIR *d = opendir(dir);
    if (d == NULL) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, err_len, "%s: %s", dir, strerror(errno));
        return errno == ENOTDIR ? STORE_ERR_NOT_A_STORE : STORE_ERR_IO;
    }
    st->exists = true;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (strcmp(e->d_name, "lock.mdb") == 0)
            st->has_lock = true;
        else if (strcmp(e->d_name, "data.mdb") != 0)
            st->has_foreign = true;
    }
    closedir(d);
    char path[PATH_BUF];
    struct stat sb;
    if (path_join(path, dir, "data.mdb") && stat(path, &sb) == 0 && sb.st_size > 0) {
        st->has_data = true;
        st->data_size = (uint64_t)sb.st_size;
    }
    return 0;
}

/* fsync of a directory: makes the entries created in it (data.mdb,
 * lock.mdb, a new subdirectory) survive a power cut; neither LMDB nor the
 * file system does it for us. */
static int sync_dir(const char *dir, char *err, size_t err_len)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        int e = errno;
        if (fd >= 0 && (e == EINVAL || e == EOPNOTSUPP)) {
            close(fd); /* a file system without directory fsync: nothing to do */
            return 0;
        }
        snprintf(err, err_len, "%s: cannot sync the directory: %s", dir, strerror(e));
        if (fd >= 0)
            close(fd);
        return STORE_ERR_IO;
    }
    close(fd);
    return 0;
}

static int sync_parent_dir(const char *dir, char *err, size_t err_len)
{
    char parent[PATH_BUF];
    int n = snprintf(parent, sizeof(parent), "%s", dir);
    if (n <= 0 || n >= PATH_BUF)
        return 0;
    while (n > 1 && parent[n - 1] == '/')
        parent[--n] = 0;
    char *slash = strrchr(parent, '/');
    if (slash == NULL)
        return sync_dir(".", err, err_len);
    slash[slash == parent ? 1 : 0] = 0;
    return sync_dir(parent, err, err_len);
}

/* Missing or empty (a zero-length data.mdb never held a commit): a new store.
 * Other files without data.mdb: refused, so a typo in --data-dir never turns
 * someone's directory into a store. */
static int check_dir(const struct store_options *opts, struct dir_state *st, char *err,
                     size_t err_len)
{
    int rc = scan_dir(opts->dir, st, err, err_len);
    if (rc != 0 || st->has_data)
        return rc;
    if (st->has_foreign) {
        snprintf(err, err_len, "%s: not a Sol store (it has files but no data.mdb)", opts->dir);
        return STORE_ERR_NOT_A_STORE;
    }
    if (opts->read_only) {
        snprintf(err, err_len, "%s: no store here (%s)", opts->dir,
                 st->exists ? "no data.mdb" : "no such directory");
        return STORE_ERR_NOT_A_STORE;
    }
    if (!st->exists && mkdir(opts->dir, 0700) != 0) {
        snprintf(err, err_len, "%s: cannot create directory: %s", opts->dir, strerror(errno));
        return STORE_ERR_IO;
    }
    return st->exists ? 0 : sync_parent_dir(opts->dir, err, err_len);
}

/* ---- environment -------------------------------------------------------- */

static uint64_t round_up(uint64_t v, uint64_t unit)
{
    return (v + unit - 1) / unit * unit;
}

static int env_open(struct store *store, const struct store_options *opts,
                    const struct dir_state *st, char *err, size_t err_len)
{
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    uint64_t map = opts->initial_map_size ? opts->initial_map_size : DEFAULT_INITIAL_MAP;
    if (opts->max_map_size && map > opts->max_map_size)
        map = opts->max_map_size; /* storage_max_size below the initial map */
    if (st->data_size > map)
        map = st->data_size; /* keep an existing larger map */
    map = round_up(map, page);
    unsigned flags = 0;
    if (opts->read_only)
        flags |= MDB_RDONLY | (st->has_lock ? 0 : MDB_NOLOCK); /* create nothing */
    /* No MDB_WRITEMAP: the store's writes go through pwrite/writev, which is
     * what the power-cut shim (tests/fault/solfault.c) journals and reverts.
     * nosync: each commit's data pages are fdatasync'ed before its meta page
     * is written, but the meta page itself is not synced (the next commit's
     * sync or the periodic store_flush() carries it). A power cut loses at
     * most the last commit and never leaves a meta page pointing at pages
     * that did not reach the disk. MDB_NOSYNC would give no such order:
     * after a power cut its store may not open at all. */
    if (opts->sync == STORE_SYNC_NOSYNC)
        flags |= MDB_NOMETASYNC;
    int rc = mdb_env_create(&store->env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(store->env, STORE_DB_COUNT);
    if (rc == 0)
        rc = mdb_env_set_mapsize(store->env, (size_t)map);
    if (rc == 0)
        rc = mdb_env_open(store->env, opts->dir, flags, 0600);
    if (rc == 0)
        return 0;
    int code = store_err_from_mdb(rc);
    if (code == STORE_ERR_CORRUPT)
        snprintf(err, err_len, "%s/data.mdb: not a valid LMDB file (%s)", opts->dir,
                 mdb_strerror(rc));
    else
        snprintf(err, err_len, "%s: cannot open store: %s", opts->dir, mdb_strerror(rc));
    return code == STORE_ERR_READ_ONLY ? STORE_ERR_IO : code;
}

/* A second broker on the same directory would interleave commits with ours;
 * LMDB allows that, Sol must not. flock on data.mdb is independent of LMDB's
 * own fcntl locks on lock.mdb and is released when the process dies. */
static int lock_writer(struct store *store, const char *dir, char *err, size_t err_len)
{
    int fd;
    int rc = mdb_env_get_fd(store->env, &fd);
    if (rc != 0) {
        snprintf(err, err_len, "%s: %s", dir, mdb_strerror(rc));
        return STORE_ERR_IO;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) == 0)
        return 0;
    if (errno == EWOULDBLOCK) {
        snprintf(err, err_len, "%s: store is in use by another process", dir);
        return STORE_ERR_LOCKED;
    }
    snprintf(err, err_len, "%s: cannot lock data.mdb: %s", dir, strerror(errno));
    return STORE_ERR_IO;
}

/* ---- schema -------------------------------------------------------------- */

static int meta_get_u64(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t *out)
{
    MDB_val k = {strlen(name), (void *)name}, v;
    int rc = mdb_get(txn, dbi, &k, &v);
    if (rc != 0)
        return store_err_from_mdb(rc);
    if (v.mv_size != 8)
        return STORE_ERR_CORRUPT;
    *out = store_get_u64(v.mv_data);
    return 0;
}

/* Is this an LMDB file with nothing in it (ours, created but never
 * initialised)? Then it may become a store; anything else is someone else's. */
static bool env_is_blank(MDB_txn *txn)
{
    MDB_dbi main_dbi;
    MDB_stat ms;
    return mdb_dbi_open(txn, NULL, 0, &main_dbi) == 0 && mdb_stat(txn, main_dbi, &ms) == 0 &&
           ms.ms_entries == 0;
}

/* Reads the schema version into *version: this build's, or an older one it
 * upgrades (STORE_SCHEMA_OLDEST on). */
static int check_schema(MDB_txn *txn, MDB_dbi meta, const char *dir, uint32_t *version, char *err,
                        size_t err_len)
{
    MDB_val k = {strlen(META_SCHEMA), META_SCHEMA}, v;
    int rc = mdb_get(txn, meta, &k, &v);
    /* The meta database exists, so this is a Sol store: a missing or
     * malformed schema record is damage, not someone else's file. */
    if (rc == MDB_NOTFOUND)
        return store_damaged(err, err_len, dir, "the meta database has no schema version");
    if (rc != 0)
        return store_damaged(err, err_len, dir, "reading the schema version: %s", mdb_strerror(rc));
    if (v.mv_size != 4)
        return store_damaged(err, err_len, dir, "the schema version record has %zu bytes, not 4",
                             v.mv_size);
    *version = store_get_u32(v.mv_data);
    if (*version < STORE_SCHEMA_OLDEST || *version > STORE_SCHEMA_VERSION) {
        snprintf(err, err_len, "%s: store schema version %u, this build reads versions %u to %u",
                 dir, *version, STORE_SCHEMA_OLDEST, STORE_SCHEMA_VERSION);
        return STORE_ERR_SCHEMA;
    }
    return 0;
}

/* The id counter continues above both the persisted high-water mark and the
 * last message actually stored, so ids never repeat. */
static int restore_msg_id(struct store *store, MDB_txn *txn)
{
    uint64_t hwm = 0;
    int rc = meta_get_u64(txn, store->dbi[DB_META], META_MSG_HWM, &hwm);
    if (rc != 0 && rc != STORE_ERR_NOT_FOUND)
        return rc;
    MDB_cursor *cur;
    rc = mdb_cursor_open(txn, store->dbi[DB_MESSAGES], &cur);
    if (rc != 0)
        return store_err_from_mdb(rc);
    MDB_val k, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    if (rc == 0 && k.mv_size == 8 && store_get_u64(k.mv_data) > hwm)
        hwm = store_get_u64(k.mv_data);
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return store_err_from_mdb(rc);
    store->hwm_persisted = hwm;
    store->next_msg_id = hwm + 1;
    return 0;
}

/* How many of Sol's databases other than meta the main database names. */
static int sol_names_present(MDB_txn *txn)
{
    MDB_dbi main_dbi;
    if (mdb_dbi_open(txn, NULL, 0, &main_dbi) != 0)
        return 0;
    int n = 0;
    for (int i = DB_META + 1; i < STORE_DB_COUNT; i++) {
        MDB_val k = {strlen(store_db_names[i]), (void *)store_db_names[i]}, v;
        n += mdb_get(txn, main_dbi, &k, &v) == 0;
    }
    return n;
}

/* No usable meta database: a new store (an LMDB file that was never
 * committed to), a damaged Sol store, or someone else's LMDB file. */
static int no_meta(struct store *store, MDB_txn *txn, int mrc, const char *dir, bool *blank,
                   char *err, size_t err_len)
{
    MDB_envinfo info;
    uint64_t txnid = mdb_env_info(store->env, &info) == 0 ? info.me_last_txnid : 0;
    int sol = sol_names_present(txn);
    if (mrc == MDB_NOTFOUND && env_is_blank(txn) && txnid == 0) {
        *blank = true;
        return 0;
    }
    if (sol > 0)
        return store_damaged(err, err_len, dir,
                             "the meta database is %s but %d of Sol's other %d databases are there",
                             mrc == MDB_NOTFOUND ? "missing" : "not a database", sol,
                             STORE_DB_COUNT - 1);
    if (mrc == MDB_NOTFOUND && env_is_blank(txn))
        return store_damaged(err, err_len, dir,
                             "the main database is empty after %llu transactions: its pages "
                             "were lost (or this is an empty LMDB file of another program)",
                             (unsigned long long)txnid);
    MDB_dbi main_dbi;
    MDB_stat ms = {0};
    if (mdb_dbi_open(txn, NULL, 0, &main_dbi) != 0 || mdb_stat(txn, main_dbi, &ms) != 0)
        ms.ms_entries = 0;
    snprintf(err, err_len,
             "%s/data.mdb: not a Sol store, or a damaged one: its main database has %zu entries "
             "but no Sol meta database (after %llu transactions). If it was a Sol store, run "
             "`solctl check --data-dir %s`; otherwise point persistence_location elsewhere",
             dir, ms.ms_entries, (unsigned long long)txnid, dir);
    return STORE_ERR_NOT_A_STORE;
}

/* Opens the existing databases in a read transaction; committing it keeps the
 * handles for the life of the environment. *blank is set if the environment
 * is an empty LMDB file that still needs initialising. */
static int load_existing(struct store *store, const char *dir, bool *blank, uint32_t *version,
                         char *err, size_t err_len)
{
    MDB_txn *txn;
    int rc = store_read_begin(store, &txn);
    if (rc != 0) {
        snprintf(err, err_len, "%s: cannot read store: %s", dir, store_strerror(rc));
        return rc;
    }
    *blank = false;
    int mrc = mdb_dbi_open(txn, store_db_names[DB_META], 0, &store->dbi[DB_META]);
    if (mrc == MDB_NOTFOUND || mrc == MDB_INCOMPATIBLE)
        rc = no_meta(store, txn, mrc, dir, blank, err, err_len);
    else if (mrc != 0)
        rc = store_damaged(err, err_len, dir, "reading the main database: %s", mdb_strerror(mrc));
    else
        rc = check_schema(txn, store->dbi[DB_META], dir, version, err, err_len);
    for (int i = DB_META + 1; rc == 0 && !*blank && i < STORE_DB_COUNT; i++) {
        int drc = mdb_dbi_open(txn, store_db_names[i], 0, &store->dbi[i]);
        if (drc == MDB_NOTFOUND && STORE_DB_IS_OPTIONAL(i))
            store->absent_dbs |= STORE_DB_BIT(i); /* created below, or read as empty */
        else if (drc != 0)
            rc = store_damaged(err, err_len, dir, "database %s: %s", store_db_names[i],
                               mdb_strerror(drc));
    }
    if (rc == 0 && !*blank) {
        rc = restore_msg_id(store, txn);
        if (rc == STORE_ERR_CORRUPT || rc == STORE_ERR_IO)
            rc = store_damaged(err, err_len, dir, "reading the message id counter: %s",
                               store_strerror(rc));
    }
    if (rc == 0)
        rc = store_err_from_mdb(mdb_txn_commit(txn));
    else
        mdb_txn_abort(txn);
    if (rc != 0 && err[0] == 0)
        snprintf(err, err_len, "%s: %s", dir, store_strerror(rc));
    return rc;
}

/* A store written before the optional databases existed (group queues,
 * bridges) gets them now, empty, in one transaction; the schema version
 * stays (nothing else about the store differs). */
static int create_optional(struct store *store, const char *dir, char *err, size_t err_len)
{
    char names[128] = "";
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(store->env, NULL, 0, &txn);
    for (int i = 0; rc == 0 && i < STORE_DB_COUNT; i++) {
        if (!(store->absent_dbs & STORE_DB_BIT(i)))
            continue;
        rc = mdb_dbi_open(txn, store_db_names[i], MDB_CREATE, &store->dbi[i]);
        size_t used = strlen(names);
        snprintf(names + used, sizeof(names) - used, "%s%s", used ? ", " : "", store_db_names[i]);
    }
    if (rc == 0)
        rc = mdb_txn_commit(txn);
    else if (txn != NULL)
        mdb_txn_abort(txn);
    if (rc != 0) {
        snprintf(err, err_len, "%s: cannot add the databases %s: %s", dir, names, mdb_strerror(rc));
        return store_err_from_mdb(rc);
    }
    log_notice("store %s: added the databases %s (a store written before them)", dir, names);
    store->absent_dbs = 0;
    return 0;
}

static int put_meta(MDB_txn *txn, MDB_dbi dbi, const char *name, const void *data, size_t len)
{
    MDB_val k = {strlen(name), (void *)name}, v = {len, (void *)data};
    return mdb_put(txn, dbi, &k, &v, 0);
}

static int init_meta(MDB_txn *txn, MDB_dbi meta)
{
    uint8_t schema[4], zero[8], created[8], id[16];
    store_put_u32(schema, STORE_SCHEMA_VERSION);
    store_put_u64(zero, 0);
    store_put_u64(created, (uint64_t)time(NULL));
    if (getrandom(id, sizeof(id), 0) != (ssize_t)sizeof(id))
        return errno ? errno : EIO;
    int rc = put_meta(txn, meta, META_SCHEMA, schema, 4);
    if (rc == 0)
        rc = put_meta(txn, meta, META_STORE_ID, id, sizeof(id));
    if (rc == 0)
        rc = put_meta(txn, meta, META_MSG_HWM, zero, 8);
    if (rc == 0)
        rc = put_meta(txn, meta, META_CREATED_AT, created, 8);
    return rc;
}

/* Creates every database and the meta records in one transaction: a crash
 * leaves either no store (blank, initialised again next time) or a whole one. */
static int create_store(struct store *store, const char *dir, char *err, size_t err_len)
{
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(store->env, NULL, 0, &txn);
    for (int i = 0; rc == 0 && i < STORE_DB_COUNT; i++)
        rc = mdb_dbi_open(txn, store_db_names[i], MDB_CREATE, &store->dbi[i]);
    if (rc == 0)
        rc = init_meta(txn, store->dbi[DB_META]);
    if (rc == 0) {
        rc = mdb_txn_commit(txn);
    } else if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    if (rc != 0) {
        snprintf(err, err_len, "%s: cannot create store: %s", dir, mdb_strerror(rc));
        return store_err_from_mdb(rc);
    }
    store->next_msg_id = 1;
    store->hwm_persisted = 0;
    return 0;
}

struct first_problem {
    int count;
    char text[256];
};

static void keep_first(void *arg, const char *problem)
{
    struct first_problem *fp = arg;
    if (fp->count++ == 0)
        snprintf(fp->text, sizeof(fp->text), "%s", problem);
}

/* store_check() at open (`sol --check-store`): any problem refuses the store. */
static int full_check(struct store *store, const char *dir, char *err, size_t err_len)
{
    struct first_problem fp = {0};
    int n = store_check(store, keep_first, &fp);
    if (n < 0)
        return store_damaged(err, err_len, dir, "the full check could not run: %s",
                             store_strerror(n));
    if (n > 0)
        return store_damaged(err, err_len, dir, "the full check found %d problem%s, the first: %s",
                             n, n == 1 ? "" : "s", fp.text);
    return 0;
}

static int open_env_and_schema(struct store *store, const struct store_options *opts,
                               const struct dir_state *st, char *err, size_t err_len)
{
    int rc = env_open(store, opts, st, err, err_len);
    if (rc == 0)
        rc = store_verify_length(store, opts->dir, err, err_len);
    if (rc == 0 && !opts->read_only)
        rc = lock_writer(store, opts->dir, err, err_len);
    if (rc != 0)
        return rc;
    if (!(opts->read_only && !st->has_lock)) {
        int dead = 0;
        if (mdb_reader_check(store->env, &dead) == 0 && dead > 0)
            log_notice("store %s: cleared %d stale reader slot(s)", opts->dir, dead);
    }
    store->max_key_len = (size_t)mdb_env_get_maxkeysize(store->env);
    bool blank = false;
    uint32_t version = STORE_SCHEMA_VERSION;
    rc = load_existing(store, opts->dir, &blank, &version, err, err_len);
    if (rc == 0 && blank && opts->read_only) {
        snprintf(err, err_len, "%s: not a Sol store (empty LMDB environment)", opts->dir);
        rc = STORE_ERR_NOT_A_STORE;
    }
    if (rc == 0 && blank)
        rc = create_store(store, opts->dir, err, err_len);
    /* An older schema is upgraded on the first read-write open (creating
     * every database it lacks); a read-only open (solctl) reads it as it is:
     * the decoders know both. */
    if (rc == 0 && !blank && version < STORE_SCHEMA_VERSION && !opts->read_only)
        rc = store_upgrade(store, version, opts->dir, err, err_len);
    if (rc == 0 && !opts->read_only && store->absent_dbs != 0)
        rc = create_optional(store, opts->dir, err, err_len);
    if (rc == 0 && !opts->read_only)
        rc = sync_dir(opts->dir, err, err_len); /* data.mdb and lock.mdb may be new */
    if (rc == 0 && !opts->read_only && !blank)
        rc = store_verify_sample(store, opts->dir, err, err_len);
    if (rc == 0 && opts->check_full)
        rc = full_check(store, opts->dir, err, err_len);
    return rc;
}

int store_open(const struct store_options *opts, struct store **out, char *err, size_t err_len)
{
    char scratch[8];
    if (err == NULL || err_len == 0) {
        err = scratch;
        err_len = sizeof(scratch);
    }
    err[0] = 0;
    *out = NULL;
    if (opts == NULL || opts->dir == NULL || opts->dir[0] == 0) {
        snprintf(err, err_len, "store: no data directory given");
        return STORE_ERR_INVALID;
    }
    struct dir_state st;
    int rc = check_dir(opts, &st, err, err_len);
    if (rc != 0)
        return rc;
    struct store *store = calloc(1, sizeof(*store));
    if (store == NULL) {
        snprintf(err, err_len, "%s: out of memory", opts->dir);
        return -ENOMEM;
    }
    store->read_only = opts->read_only;
    store->sync = opts->sync;
    store->max_map_size = opts->max_map_size ? opts->max_map_size : DEFAULT_MAX_MAP;
    rc = open_env_and_schema(store, opts, &st, err, err_len);
    if (rc != 0) {
        if (store->env != NULL)
            mdb_env_close(store->env);
        free(store);
        char path[PATH_BUF];
        /* "changes nothing": drop the lock file only this call created */
        if (!st.has_lock && !opts->read_only && path_join(path, opts->dir, "lock.mdb"))
            unlink(path);
        return rc;
    }
    if (!store->read_only)
        store_space_refresh(store);
    *out = store;
    return 0;
}

bool store_has_failed(const struct store *store)
{
    return store->fatal_err != 0;
}

int store_flush(struct store *store)
{
    if (store->read_only)
        return STORE_ERR_READ_ONLY;
    if (store->fatal_err != 0)
        return STORE_ERR_FATAL;
    int rc = mdb_env_sync(store->env, 1);
    if (rc != 0 && store_is_fatal_write_error(rc)) {
        /* After a failed fsync the kernel may have dropped the dirty pages:
         * a later fsync can succeed without them ever reaching the disk. */
        store->fatal_err = rc;
        log_error("store: flush failed: %s", mdb_strerror(rc));
        return STORE_ERR_FATAL;
    }
    return store_err_from_mdb(rc);
}

void store_close(struct store *store)
{
    if (store == NULL)
        return;
    store_committer_stop(store);
    if (!store->read_only && store->fatal_err == 0) {
        int rc = mdb_env_sync(store->env, 1);
        if (rc != 0)
            log_error("store: final flush failed: %s", mdb_strerror(rc));
    }
    mdb_env_close(store->env);
    free(store);
}
