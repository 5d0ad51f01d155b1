/*
 * upgrade.c - in-place upgrade of a store written by an older schema, run by
 * the first read-write open (store_open). One write transaction does it all,
 * so a crash (or a full disk) leaves either the old store, upgraded again at
 * the next start, or the new one - never half of each.
 *
 * Schema 1 -> 2 (MQTT 5): every database this build knows and the store
 * lacks is created; every session record is rewritten in the version 2
 * format (its expiry "0 = never" becomes STORE_EXPIRY_NEVER); meta gets the
 * new schema version and "upgraded_from". Messages, retained messages, queue
 * entries and subscriptions written by schema 1 are already valid schema 2
 * records (records.c): they are not touched, so the upgrade costs one pass
 * over the sessions, not over the queued messages.
 * Not for: opening (store.c) or checking (check.c) the store.
 */
#include "store_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Up to UPGRADE_CHUNK session records are rewritten per cursor walk: the
 * records are copied out, the cursor closed, then put back, so the tree is
 * never changed under an open cursor; memory stays bounded. */
#define UPGRADE_CHUNK 1024

struct rewrite {
    size_t key_len, val_len;
    uint8_t data[]; /* key, then the version 2 value */
};

static void free_rewrites(struct rewrite **r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(r[i]);
}

/* A copy of one schema 1 record as version 2, or NULL (*rc set). */
static struct rewrite *rewrite_of(const MDB_val *k, const MDB_val *v, int *rc)
{
    size_t len = store_session_upgrade(v->mv_data, v->mv_size, NULL);
    if (len == 0) {
        *rc = MDB_CORRUPTED;
        return NULL;
    }
    struct rewrite *r = malloc(sizeof(*r) + k->mv_size + len);
    if (r == NULL) {
        *rc = ENOMEM;
        return NULL;
    }
    r->key_len = k->mv_size;
    r->val_len = len;
    memcpy(r->data, k->mv_data, k->mv_size);
    store_session_upgrade(v->mv_data, v->mv_size, r->data + k->mv_size);
    return r;
}

/* Collects the next version 1 records at or after *from (NULL: the start)
 * into out; *n is how many, *done whether the walk reached the end. */
static int collect(struct store *s, MDB_txn *txn, const MDB_val *from, struct rewrite **out,
                   size_t *n, bool *done)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, s->dbi[DB_SESSIONS], &cur);
    if (rc != 0)
        return rc;
    MDB_val k = from ? *from : (MDB_val){0, NULL}, v;
    MDB_cursor_op op = from ? MDB_SET_RANGE : MDB_FIRST;
    *n = 0;
    *done = false;
    while (*n < UPGRADE_CHUNK && (rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
        op = MDB_NEXT;
        if (v.mv_size > 0 && ((const uint8_t *)v.mv_data)[0] != 1)
            continue; /* already version 2 */
        if ((out[*n] = rewrite_of(&k, &v, &rc)) == NULL)
            break;
        (*n)++;
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND) {
        *done = true;
        rc = 0;
    }
    return rc;
}

static int upgrade_sessions(struct store *s, MDB_txn *txn, size_t *count)
{
    struct rewrite **chunk = calloc(UPGRADE_CHUNK, sizeof(*chunk));
    if (chunk == NULL)
        return ENOMEM;
    uint8_t *resume = malloc(s->max_key_len + 1);
    if (resume == NULL) {
        free(chunk);
        return ENOMEM;
    }
    MDB_val from = {0, resume};
    bool done = false;
    int rc = 0;
    for (bool first = true; rc == 0 && !done; first = false) {
        size_t n = 0;
        rc = collect(s, txn, first ? NULL : &from, chunk, &n, &done);
        for (size_t i = 0; rc == 0 && i < n; i++) {
            MDB_val k = {chunk[i]->key_len, chunk[i]->data};
            MDB_val v = {chunk[i]->val_len, chunk[i]->data + chunk[i]->key_len};
            rc = mdb_put(txn, s->dbi[DB_SESSIONS], &k, &v, 0);
        }
        if (n > 0 && chunk[n - 1]->key_len <= s->max_key_len) {
            /* the next walk starts at the last record rewritten (now version 2) */
            from.mv_size = chunk[n - 1]->key_len;
            memcpy(resume, chunk[n - 1]->data, from.mv_size);
        }
        *count += n;
        free_rewrites(chunk, n);
    }
    free(resume);
    free(chunk);
    return rc;
}

static int put_u32(MDB_txn *txn, MDB_dbi dbi, const char *name, uint32_t value)
{
    uint8_t b[4];
    store_put_u32(b, value);
    MDB_val k = {strlen(name), (void *)name}, v = {4, b};
    return mdb_put(txn, dbi, &k, &v, 0);
}

static int attempt(struct store *s, uint32_t from, size_t *count)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return rc;
    for (int i = 0; rc == 0 && i < STORE_DB_COUNT; i++)
        rc = mdb_dbi_open(txn, store_db_names[i], MDB_CREATE, &s->dbi[i]);
    *count = 0;
    if (rc == 0)
        rc = upgrade_sessions(s, txn, count);
    if (rc == 0)
        rc = put_u32(txn, s->dbi[DB_META], META_UPGRADED, from);
    if (rc == 0)
        rc = put_u32(txn, s->dbi[DB_META], META_SCHEMA, STORE_SCHEMA_VERSION);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    return mdb_txn_commit(txn);
}

int store_upgrade(struct store *store, uint32_t from, const char *dir, char *err, size_t err_len)
{
    size_t count = 0;
    int rc = attempt(store, from, &count);
    if (rc == MDB_MAP_FULL && store_grow_map(store, 1u << 20) == 0)
        rc = attempt(store, from, &count);
    if (rc == MDB_CORRUPTED)
        return store_damaged(err, err_len, dir, "a schema %u session record does not decode", from);
    if (rc != 0) {
        snprintf(err, err_len, "%s: upgrading the store from schema %u to %u: %s", dir, from,
                 STORE_SCHEMA_VERSION, mdb_strerror(rc));
        return store_err_from_mdb(rc);
    }
    store->absent_dbs = 0; /* attempt() created every database the store lacked */
    log_notice("store %s: upgraded from schema %u to %u (%zu session records rewritten)", dir, from,
               STORE_SCHEMA_VERSION, count);
    return 0;
}
