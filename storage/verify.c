/*
 * verify.c - the checks store_open() makes before it hands out a store, so a
 * damaged file is refused at start-up with a message that says what is wrong
 * instead of failing every commit later:
 *   - the file is as long as its meta page says (a shorter one would fault
 *     with SIGBUS on the first read of a missing page);
 *   - a bounded sample: every database's first and last records and
 *     VERIFY_PROBES records at random keys (with the few after each) decode
 *     and point at what they reference; the free-page list's first
 *     VERIFY_FREELIST_MAX records name pages inside the file; and a write
 *     transaction can allocate pages (it is aborted: nothing is written).
 * Cost: O(probes x tree depth) page reads, whatever the store's size, so
 * start-up stays fast with millions of records. The full walk is
 * store_check() (`solctl check`, `sol --check-store`).
 * Not for: repairing anything, or proving a store sound (only the full check
 * reads every record).
 */
#include "store_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define VERIFY_PROBES       32
#define VERIFY_RUN          4 /* records read after each probe */
#define VERIFY_FREELIST_MAX 1024
#define FREE_DBI            0 /* LMDB's free-page database */

int store_damaged(char *err, size_t err_len, const char *dir, const char *fmt, ...)
{
    char what[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    snprintf(err, err_len,
             "%s/data.mdb: damaged store: %s. Run `solctl check --data-dir %s` for details; "
             "restore a backup, or move the directory away to start with an empty store",
             dir, what, dir);
    return STORE_ERR_CORRUPT;
}

int store_verify_length(struct store *store, const char *dir, char *err, size_t err_len)
{
    int fd;
    MDB_envinfo info;
    MDB_stat st;
    struct stat sb;
    int rc = mdb_env_get_fd(store->env, &fd);
    if (rc == 0)
        rc = mdb_env_info(store->env, &info);
    if (rc == 0)
        rc = mdb_env_stat(store->env, &st);
    if (rc == 0 && fstat(fd, &sb) != 0)
        rc = errno;
    if (rc != 0) {
        snprintf(err, err_len, "%s: cannot inspect data.mdb: %s", dir, mdb_strerror(rc));
        return STORE_ERR_IO;
    }
    uint64_t need = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    if ((uint64_t)sb.st_size >= need)
        return 0;
    return store_damaged(err, err_len, dir,
                         "the file is %llu bytes but its meta page uses pages up to %llu (%llu "
                         "bytes): writes it depends on never reached the disk",
                         (unsigned long long)sb.st_size, (unsigned long long)info.me_last_pgno,
                         (unsigned long long)need);
}

/* ---- free-page list ------------------------------------------------------------ */

int store_check_freelist_record(const MDB_val *k, const MDB_val *v, uint64_t last_pgno, char *what,
                                size_t what_len)
{
    size_t w = sizeof(size_t);
    uint64_t txnid = 0;
    if (k->mv_size == w)
        memcpy(&txnid, k->mv_data, w);
    if (k->mv_size != w || v->mv_size < w || v->mv_size % w != 0) {
        snprintf(what, what_len, "free-page list: record of %zu/%zu bytes does not decode",
                 k->mv_size, v->mv_size);
        return -1;
    }
    size_t count;
    memcpy(&count, v->mv_data, w);
    if (count != v->mv_size / w - 1) {
        snprintf(what, what_len,
                 "free-page list: record of transaction %llu counts %zu pages "
                 "in %zu slots",
                 (unsigned long long)txnid, count, v->mv_size / w - 1);
        return -1;
    }
    for (size_t i = 1; i <= count; i++) {
        size_t pg;
        memcpy(&pg, (const uint8_t *)v->mv_data + i * w, w);
        if (pg < 2 || pg > last_pgno) {
            snprintf(what, what_len,
                     "free-page list: transaction %llu frees page %zu, outside "
                     "the file's pages 2..%llu",
                     (unsigned long long)txnid, pg, (unsigned long long)last_pgno);
            return -1;
        }
    }
    return 0;
}

/* ---- sampling -------------------------------------------------------------------- */

struct sampler {
    struct store *store;
    MDB_txn *txn;
    uint64_t hwm, rng;
    char what[320]; /* the first problem found */
};

static uint64_t next_rand(struct sampler *s)
{
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return s->rng;
}

static bool has_key(struct sampler *s, enum store_db db, const void *key, size_t len)
{
    MDB_val k = {len, (void *)key}, v;
    return mdb_get(s->txn, s->store->dbi[db], &k, &v) == 0;
}

static bool has_msg(struct sampler *s, enum store_db db, uint64_t id)
{
    uint8_t kb[8];
    store_put_u64(kb, id);
    return has_key(s, db, kb, 8);
}

static bool bad(struct sampler *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool bad(struct sampler *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->what, sizeof(s->what), fmt, ap);
    va_end(ap);
    return false;
}

/* A record of a client-keyed database: the key splits and its session exists. */
static bool client_record(struct sampler *s, enum store_db db, const MDB_val *k, size_t rest_len,
                          struct store_bytes *rest)
{
    struct store_bytes client;
    if (!store_key_split(k, &client, rest) || (rest_len && rest->len != rest_len) || rest->len == 0)
        return bad(s, "%s: a key of %zu bytes does not decode", store_db_names[db], k->mv_size);
    if (!has_key(s, DB_SESSIONS, client.data, client.len))
        return bad(s, "%s: a record of a client without a session", store_db_names[db]);
    return true;
}

static bool queue_record(struct sampler *s, const MDB_val *k, const MDB_val *v)
{
    struct store_bytes rest;
    struct store_queue_entry e;
    if (!client_record(s, DB_QUEUES, k, 8, &rest))
        return false;
    if (!store_queue_decode(v->mv_data, v->mv_size, &e))
        return bad(s, "queues: an entry does not decode");
    if (!has_msg(s, DB_MESSAGES, e.msg_id) || !has_msg(s, DB_REFS, e.msg_id))
        return bad(s, "queues: an entry points at message %llu, which is missing",
                   (unsigned long long)e.msg_id);
    return true;
}

/* A group queue entry: "group 00 seq" and a queue entry whose message exists. */
static bool group_record(struct sampler *s, const MDB_val *k, const MDB_val *v)
{
    struct store_bytes group, rest;
    struct store_queue_entry e;
    if (!store_key_split(k, &group, &rest) || rest.len != 8 ||
        !store_queue_decode(v->mv_data, v->mv_size, &e))
        return bad(s, "groupq: an entry does not decode");
    if (!has_msg(s, DB_MESSAGES, e.msg_id) || !has_msg(s, DB_REFS, e.msg_id))
        return bad(s, "groupq: an entry points at missing message %llu",
                   (unsigned long long)e.msg_id);
    return true;
}

static bool message_record(struct sampler *s, const MDB_val *k, const MDB_val *v)
{
    struct store_message msg;
    if (k->mv_size != 8 || !store_message_decode(v->mv_data, v->mv_size, &msg))
        return bad(s, "messages: a record does not decode");
    uint64_t id = store_get_u64(k->mv_data);
    if (id > s->hwm)
        return bad(s, "messages: id %llu above the high-water mark %llu", (unsigned long long)id,
                   (unsigned long long)s->hwm);
    if (!has_msg(s, DB_REFS, id))
        return bad(s, "messages: message %llu has no reference count", (unsigned long long)id);
    return true;
}

static bool refs_record(struct sampler *s, const MDB_val *k, const MDB_val *v)
{
    if (k->mv_size != 8 || v->mv_size != REFS_VAL_LEN || store_get_u32(v->mv_data) == 0)
        return bad(s, "refs: a record does not decode or counts 0");
    if (!has_msg(s, DB_MESSAGES, store_get_u64(k->mv_data)))
        return bad(s, "refs: a count for missing message %llu",
                   (unsigned long long)store_get_u64(k->mv_data));
    return true;
}

/* A bridge queue entry: key and value decode, the message is there. */
static bool bridge_record(struct sampler *s, const MDB_val *k, const MDB_val *v)
{
    struct store_bytes bridge, rest;
    struct store_queue_entry e;
    if (!store_key_split(k, &bridge, &rest) || rest.len != 8 ||
        !store_entry_decode(DB_BRIDGE_QUEUES, v->mv_data, v->mv_size, &e))
        return bad(s, "bridge_queues: an entry does not decode");
    if (!has_msg(s, DB_MESSAGES, e.msg_id) || !has_msg(s, DB_REFS, e.msg_id))
        return bad(s, "bridge_queues: an entry points at message %llu, which is missing",
                   (unsigned long long)e.msg_id);
    return true;
}

static bool sample_record(struct sampler *s, enum store_db db, const MDB_val *k, const MDB_val *v)
{
    struct store_bytes rest, bridge_name;
    struct store_session sess;
    struct store_retained r;
    uint8_t options;
    uint32_t sub_id;
    switch (db) {
    case DB_META:
        return k->mv_size > 0 || bad(s, "meta: an empty key");
    case DB_SESSIONS:
        if (store_check_client_id(s->store, (struct store_bytes){k->mv_data, k->mv_size}) != 0 ||
            !store_session_decode(v->mv_data, v->mv_size, &sess))
            return bad(s, "sessions: a record does not decode");
        return true;
    case DB_SUBS:
        if (!client_record(s, db, k, 0, &rest))
            return false;
        return store_sub_decode(v->mv_data, v->mv_size, &options, &sub_id) ||
               bad(s, "subs: bad subscription options");
    case DB_QOS2IN:
        return client_record(s, db, k, 2, &rest) &&
               (v->mv_size == 8 || bad(s, "qos2in: a bad record"));
    case DB_QUEUES:
        return queue_record(s, k, v);
    case DB_GROUPQ:
        return group_record(s, k, v);
    case DB_BRIDGE_QUEUES:
        return bridge_record(s, k, v);
    case DB_BRIDGE_QOS2IN:
        return (store_key_split(k, &bridge_name, &rest) && rest.len == 2 && v->mv_size == 8) ||
               bad(s, "bridge_qos2in: a record does not decode");
    case DB_REFS:
        return refs_record(s, k, v);
    case DB_MESSAGES:
        return message_record(s, k, v);
    case DB_RETAINED:
        return (k->mv_size > 0 &&
                store_retained_decode((struct store_bytes){k->mv_data, k->mv_size}, v->mv_data,
                                      v->mv_size, &r)) ||
               bad(s, "retained: a record does not decode");
    }
    return true;
}

#define PROBLEM (-1) /* a sampled record is wrong (s->what); never an LMDB or errno code */

/* Reads up to VERIFY_RUN records from the cursor's position (op) on. Returns
 * 0, PROBLEM, or an LMDB code. */
static int read_run(struct sampler *s, enum store_db db, MDB_cursor *cur, MDB_val *k,
                    MDB_cursor_op op)
{
    MDB_val v;
    int rc = mdb_cursor_get(cur, k, &v, op);
    for (int i = 0; rc == 0 && i < VERIFY_RUN; i++) {
        if (!sample_record(s, db, k, &v))
            return PROBLEM;
        rc = mdb_cursor_get(cur, k, &v, MDB_NEXT);
    }
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static uint64_t key_prefix(const MDB_val *k)
{
    uint8_t b[8] = {0};
    memcpy(b, k->mv_data, k->mv_size < 8 ? k->mv_size : 8);
    return store_get_u64(b);
}

/* The first records, the last one and records at random keys of one database. */
static int sample_db(struct sampler *s, enum store_db db, MDB_cursor *cur)
{
    MDB_stat ms;
    MDB_val k, v;
    int rc = mdb_stat(s->txn, s->store->dbi[db], &ms);
    if (rc == 0)
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    if ((rc == MDB_NOTFOUND) != (ms.ms_entries == 0)) {
        bad(s, "%s: the tree and its entry count (%zu) disagree", store_db_names[db],
            ms.ms_entries);
        return PROBLEM;
    }
    if (rc != 0)
        return rc == MDB_NOTFOUND ? 0 : rc;
    uint64_t lo = key_prefix(&k);
    rc = read_run(s, db, cur, &k, MDB_FIRST);
    if (rc == 0)
        rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    if (rc == 0 && !sample_record(s, db, &k, &v))
        rc = PROBLEM;
    uint64_t hi = rc == 0 ? key_prefix(&k) : 0;
    for (int i = 0; rc == 0 && i < VERIFY_PROBES && hi > lo; i++) {
        uint8_t kb[8];
        store_put_u64(kb, lo + next_rand(s) % (hi - lo + 1));
        k = (MDB_val){8, kb};
        rc = read_run(s, db, cur, &k, MDB_SET_RANGE);
    }
    return rc;
}

static int sample_each_db(struct sampler *s, const char **where)
{
    int rc = 0;
    for (int i = 0; rc == 0 && i < STORE_DB_COUNT; i++) {
        MDB_cursor *cur;
        if (s->store->absent_dbs & STORE_DB_BIT(i))
            continue;
        *where = store_db_names[i];
        rc = mdb_cursor_open(s->txn, s->store->dbi[i], &cur);
        if (rc == 0) {
            rc = sample_db(s, (enum store_db)i, cur);
            mdb_cursor_close(cur);
        }
    }
    return rc;
}

static int sample_freelist(struct sampler *s)
{
    MDB_cursor *cur;
    MDB_envinfo info;
    int rc = mdb_env_info(s->store->env, &info);
    if (rc == 0)
        rc = mdb_cursor_open(s->txn, FREE_DBI, &cur);
    if (rc != 0)
        return rc;
    MDB_val k, v;
    for (int i = 0; rc == 0 && i < VERIFY_FREELIST_MAX; i++) {
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        if (rc == 0 &&
            store_check_freelist_record(&k, &v, info.me_last_pgno, s->what, sizeof(s->what)) != 0)
            rc = PROBLEM;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* A write transaction that copies a page and allocates (from the free list
 * when it can), then aborts: what every commit of the broker will need. */
static int try_write(struct store *store)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(store->env, NULL, 0, &txn);
    if (rc != 0)
        return rc;
    MDB_val k = {strlen(META_SCHEMA), META_SCHEMA}, v;
    rc = mdb_get(txn, store->dbi[DB_META], &k, &v);
    if (rc == 0) {
        uint8_t copy[4];
        memcpy(copy, v.mv_data, v.mv_size < 4 ? v.mv_size : 4);
        MDB_val nv = {v.mv_size < 4 ? v.mv_size : 4, copy};
        rc = mdb_put(txn, store->dbi[DB_META], &k, &nv, 0);
    }
    mdb_txn_abort(txn);
    return rc == MDB_MAP_FULL ? 0 : rc; /* a full store must open: deletes drain it */
}

int store_verify_sample(struct store *store, const char *dir, char *err, size_t err_len)
{
    struct sampler s = {.store = store};
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    s.rng = (uint64_t)ts.tv_nsec * 2654435761u + 1;
    int rc = store_read_begin(store, &s.txn);
    if (rc != 0) {
        snprintf(err, err_len, "%s: cannot read store: %s", dir, store_strerror(rc));
        return rc;
    }
    const char *where = "meta";
    MDB_val k = {strlen(META_MSG_HWM), (void *)META_MSG_HWM}, v;
    int mrc = mdb_get(s.txn, store->dbi[DB_META], &k, &v);
    if (mrc == 0 && v.mv_size == 8)
        s.hwm = store_get_u64(v.mv_data);
    else if (mrc == 0 || mrc == MDB_NOTFOUND)
        mrc = bad(&s, "meta: the message id high-water mark is missing") ? 0 : PROBLEM;
    if (mrc == 0)
        mrc = sample_each_db(&s, &where);
    if (mrc == 0) {
        where = "free-page list";
        mrc = sample_freelist(&s);
    }
    mdb_txn_abort(s.txn);
    if (mrc == 0) {
        where = "a test write (aborted)";
        mrc = try_write(store);
    }
    if (mrc == 0)
        return 0;
    if (mrc == PROBLEM)
        return store_damaged(err, err_len, dir, "%s", s.what);
    if (mrc == ENOMEM) {
        snprintf(err, err_len, "%s: out of memory verifying the store", dir);
        return -ENOMEM;
    }
    return store_damaged(err, err_len, dir, "reading %s: %s", where, mdb_strerror(mrc));
}
