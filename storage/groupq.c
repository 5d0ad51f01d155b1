/*
 * groupq.c - what the broker reads of the shared-subscription group queues
 * at start and after a failed commit: per group, its highest seq (appends
 * continue above it), how many entries wait and their payload bytes (the
 * group's max_queued_messages / max_queued_bytes allowance survives a
 * restart). One walk over the entries, a 6-byte header lookup per entry,
 * no payload read. The recorders live in batch.c with the client queue's,
 * the bounded reads in read.c.
 * Not for: client queues (queue_stats.c).
 */
#include "store_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct group_walk {
    struct store *store;
    MDB_txn *txn;
    store_group_stats_fn fn;
    void *arg;
    uint8_t *group; /* the group being summed (a copy; max_key_len bytes) */
    size_t group_len;
    uint64_t last_seq, count, bytes;
};

/* Payload bytes of msg_id from its header; 0 when missing (check reports it). */
static uint64_t payload_len(struct group_walk *w, uint64_t msg_id)
{
    uint8_t kb[8];
    store_put_u64(kb, msg_id);
    MDB_val k = {8, kb}, v;
    if (mdb_get(w->txn, w->store->dbi[DB_MESSAGES], &k, &v) != 0 || v.mv_size < MESSAGE_HDR_LEN)
        return 0;
    uint64_t topic_len = store_get_u32((const uint8_t *)v.mv_data + 2);
    if (topic_len > v.mv_size - MESSAGE_HDR_LEN)
        return 0;
    return v.mv_size - MESSAGE_HDR_LEN - topic_len;
}

static int emit(struct group_walk *w)
{
    if (w->group_len == 0 || w->count == 0)
        return 0;
    return w->fn(w->arg, (struct store_bytes){w->group, w->group_len}, w->last_seq, w->count,
                 w->bytes);
}

static int visit(struct group_walk *w, const MDB_val *k, const MDB_val *v)
{
    struct store_bytes group, rest;
    struct store_queue_entry e;
    if (!store_key_split(k, &group, &rest) || rest.len != 8 || group.len > w->store->max_key_len ||
        !store_queue_decode(v->mv_data, v->mv_size, &e))
        return STORE_ERR_CORRUPT;
    if (group.len != w->group_len || memcmp(group.data, w->group, group.len) != 0) {
        int rc = emit(w);
        if (rc != 0)
            return rc;
        memcpy(w->group, group.data, group.len);
        w->group_len = group.len;
        w->count = w->bytes = 0;
    }
    w->last_seq = store_get_u64(rest.data); /* keys ascend: the last one is the highest */
    w->count++;
    w->bytes += payload_len(w, e.msg_id);
    return 0;
}

/* Walks from start while keys begin with prefix_len bytes of it (0: all). */
static int walk_groups(struct group_walk *w, const MDB_val *start, size_t prefix_len)
{
    MDB_cursor *cur = NULL;
    int rc = store_err_from_mdb(mdb_cursor_open(w->txn, w->store->dbi[DB_GROUPQ], &cur));
    MDB_val k = start != NULL ? *start : (MDB_val){0, NULL}, v;
    MDB_cursor_op op = start != NULL ? MDB_SET_RANGE : MDB_FIRST;
    int mrc = MDB_NOTFOUND;
    while (rc == 0 && (mrc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
        op = MDB_NEXT;
        if (prefix_len > 0 &&
            (k.mv_size < prefix_len || memcmp(k.mv_data, start->mv_data, prefix_len) != 0))
            break;
        rc = visit(w, &k, &v);
    }
    if (rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND)
        rc = store_err_from_mdb(mrc);
    if (rc == 0)
        rc = emit(w);
    if (cur != NULL)
        mdb_cursor_close(cur);
    return rc;
}

int store_group_queue_stats_foreach(struct store *store, const struct store_bytes *group,
                                    store_group_stats_fn fn, void *arg)
{
    if (store->absent_dbs & STORE_DB_BIT(DB_GROUPQ))
        return 0; /* an older store opened read-only: no group queues */
    if (group != NULL && store_check_client_id(store, *group) != 0)
        return STORE_ERR_INVALID;
    struct group_walk w = {.store = store, .fn = fn, .arg = arg};
    w.group = malloc(store->max_key_len + 1);
    uint8_t *prefix = group != NULL ? malloc(group->len + 1) : NULL;
    if (w.group == NULL || (group != NULL && prefix == NULL)) {
        free(w.group);
        free(prefix);
        return -ENOMEM;
    }
    int rc = store_read_begin(store, &w.txn);
    if (rc == 0 && group != NULL) {
        MDB_val start = {store_key_client_prefix(prefix, *group), prefix};
        rc = walk_groups(&w, &start, start.mv_size);
    } else if (rc == 0) {
        rc = walk_groups(&w, NULL, 0);
    }
    if (w.txn != NULL)
        mdb_txn_abort(w.txn);
    free(prefix);
    free(w.group);
    return rc;
}
