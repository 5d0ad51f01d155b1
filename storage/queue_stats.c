/*
 * queue_stats.c - per-client totals of the entries still waiting in the
 * queues (state QUEUED): how many, and their payload bytes. The broker reads
 * them once at start so a restart does not grant a session a fresh
 * max_queued_messages / max_queued_bytes allowance.
 * Cost: one cursor walk over the queues plus, per QUEUED entry, one lookup of
 * its message's 6-byte header (the payload itself is not read or copied).
 * Not for: reading entries to send (read.c: store_queue_read).
 */
#include "store_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct stats_walk {
    struct store *store;
    MDB_txn *txn;
    store_queue_stats_fn fn;
    void *arg;
    uint8_t *client; /* the client being summed (a copy; max_key_len bytes) */
    size_t client_len;
    uint64_t count, bytes;
};

/* The payload bytes of message msg_id, from its header; 0 if it is missing
 * (store_check reports that) or does not decode. */
static uint64_t payload_len(struct stats_walk *w, uint64_t msg_id)
{
    uint8_t kb[8];
    store_put_u64(kb, msg_id);
    MDB_val k = {8, kb}, v;
    if (mdb_get(w->txn, w->store->dbi[DB_MESSAGES], &k, &v) != 0)
        return 0;
    size_t offset = store_message_payload_offset(v.mv_data, v.mv_size);
    return offset == 0 ? 0 : v.mv_size - offset;
}

/* Reports the client summed so far (if it has QUEUED entries). */
static int emit(struct stats_walk *w)
{
    if (w->client_len == 0 || w->count == 0)
        return 0;
    return w->fn(w->arg, (struct store_bytes){w->client, w->client_len}, w->count, w->bytes);
}

static int visit(struct stats_walk *w, const MDB_val *k, const MDB_val *v)
{
    struct store_bytes client, rest;
    struct store_queue_entry e;
    if (!store_key_split(k, &client, &rest) || rest.len != 8 || client.len == 0 ||
        client.len > w->store->max_key_len || !store_queue_decode(v->mv_data, v->mv_size, &e))
        return STORE_ERR_CORRUPT;
    if (client.len != w->client_len || memcmp(client.data, w->client, client.len) != 0) {
        int rc = emit(w);
        if (rc != 0)
            return rc;
        memcpy(w->client, client.data, client.len);
        w->client_len = client.len;
        w->count = 0;
        w->bytes = 0;
    }
    if (e.state == STORE_QUEUED) {
        w->count++;
        w->bytes += payload_len(w, e.msg_id);
    }
    return 0;
}

int store_queue_stats_foreach(struct store *store, store_queue_stats_fn fn, void *arg)
{
    struct stats_walk w = {.store = store, .fn = fn, .arg = arg};
    w.client = malloc(store->max_key_len + 1);
    if (w.client == NULL)
        return -ENOMEM;
    int rc = store_read_begin(store, &w.txn);
    MDB_cursor *cur = NULL;
    if (rc == 0)
        rc = store_err_from_mdb(mdb_cursor_open(w.txn, store->dbi[DB_QUEUES], &cur));
    MDB_val k, v;
    int mrc = MDB_NOTFOUND;
    for (MDB_cursor_op op = MDB_FIRST; rc == 0; op = MDB_NEXT) {
        mrc = mdb_cursor_get(cur, &k, &v, op);
        if (mrc != 0)
            break;
        rc = visit(&w, &k, &v);
    }
    if (rc == 0 && mrc != MDB_NOTFOUND)
        rc = store_err_from_mdb(mrc);
    if (rc == 0)
        rc = emit(&w);
    if (cur != NULL)
        mdb_cursor_close(cur);
    if (w.txn != NULL)
        mdb_txn_abort(w.txn);
    free(w.client);
    return rc;
}
