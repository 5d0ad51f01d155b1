/*
 * bridge.c - totals of the bridges' outgoing queues, read at start-up: how
 * many entries a bridge's queue holds, their payload bytes and its seq
 * range (so the broker continues above the last seq and counts what waits
 * against the bridge's limits), and which bridges have queues at all (so it
 * can name those no longer configured).
 * Cost: one cursor walk over the queue(s) plus, per entry, one lookup of its
 * message's 6-byte header (payloads are not read or copied).
 * Not for: the batch ops (batch.c) or reading entries to send (read.c).
 */
#include "store_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The payload bytes of message msg_id, from its header; 0 if it is missing
 * (store_check reports that) or does not decode. */
static uint64_t payload_len(struct store *s, MDB_txn *txn, uint64_t msg_id)
{
    uint8_t kb[8];
    store_put_u64(kb, msg_id);
    MDB_val k = {8, kb}, v;
    if (mdb_get(txn, s->dbi[DB_MESSAGES], &k, &v) != 0 || v.mv_size < MESSAGE_HDR_LEN)
        return 0;
    uint64_t topic_len = store_get_u32((const uint8_t *)v.mv_data + 2);
    if (topic_len > v.mv_size - MESSAGE_HDR_LEN)
        return 0;
    return v.mv_size - MESSAGE_HDR_LEN - topic_len;
}

/* Calls visit for each record of the bridge queues whose key starts with
 * prefix[0..prefix_len) (every record when prefix_len is 0), in one read
 * transaction. visit returns 0 to go on. */
static int walk_queues(struct store *s, const uint8_t *prefix, size_t prefix_len,
                       int (*visit)(void *ctx, MDB_txn *txn, struct store_bytes bridge,
                                    uint64_t seq, const struct store_queue_entry *e),
                       void *ctx)
{
    if (s->absent_dbs & STORE_DB_BIT(DB_BRIDGE_QUEUES))
        return 0;
    MDB_txn *txn;
    MDB_cursor *cur = NULL;
    int rc = store_read_begin(s, &txn);
    if (rc != 0)
        return rc;
    rc = store_err_from_mdb(mdb_cursor_open(txn, s->dbi[DB_BRIDGE_QUEUES], &cur));
    MDB_val k = {prefix_len, (void *)prefix}, v;
    MDB_cursor_op op = prefix_len > 0 ? MDB_SET_RANGE : MDB_FIRST;
    int mrc = MDB_NOTFOUND;
    while (rc == 0 && (mrc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
        op = MDB_NEXT;
        if (prefix_len > 0 && (k.mv_size < prefix_len || memcmp(k.mv_data, prefix, prefix_len)))
            break;
        struct store_bytes bridge, rest;
        struct store_queue_entry e;
        if (!store_key_split(&k, &bridge, &rest) || rest.len != 8 ||
            !store_entry_decode(DB_BRIDGE_QUEUES, v.mv_data, v.mv_size, &e)) {
            rc = STORE_ERR_CORRUPT;
            break;
        }
        rc = visit(ctx, txn, bridge, store_get_u64(rest.data), &e);
    }
    if (rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND)
        rc = store_err_from_mdb(mrc);
    if (cur != NULL)
        mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return rc;
}

struct info_walk {
    struct store *store;
    struct store_bridge_queue_info *info;
};

static int add_to_info(void *ctx, MDB_txn *txn, struct store_bytes bridge, uint64_t seq,
                       const struct store_queue_entry *e)
{
    (void)bridge;
    struct info_walk *w = ctx;
    if (w->info->count++ == 0)
        w->info->first_seq = seq;
    w->info->last_seq = seq; /* the walk is in seq order */
    w->info->bytes += payload_len(w->store, txn, e->msg_id);
    return 0;
}

int store_bridge_queue_info(struct store *store, struct store_bytes bridge,
                            struct store_bridge_queue_info *info)
{
    memset(info, 0, sizeof(*info));
    int rc = store_check_client_id(store, bridge);
    if (rc != 0)
        return rc;
    uint8_t *prefix = malloc(bridge.len + 1);
    if (prefix == NULL)
        return -ENOMEM;
    size_t prefix_len = store_key_client_prefix(prefix, bridge);
    struct info_walk w = {store, info};
    rc = walk_queues(store, prefix, prefix_len, add_to_info, &w);
    free(prefix);
    return rc;
}

struct names_walk {
    store_bridge_name_fn fn;
    void *arg;
    uint8_t *name; /* the bridge being counted (a copy) */
    size_t name_len;
    uint64_t count;
};

static int emit_name(struct names_walk *w)
{
    if (w->count == 0)
        return 0;
    return w->fn(w->arg, (struct store_bytes){w->name, w->name_len}, w->count);
}

static int count_name(void *ctx, MDB_txn *txn, struct store_bytes bridge, uint64_t seq,
                      const struct store_queue_entry *e)
{
    (void)txn;
    (void)seq;
    (void)e;
    struct names_walk *w = ctx;
    if (bridge.len != w->name_len || memcmp(bridge.data, w->name, bridge.len) != 0) {
        int rc = emit_name(w);
        uint8_t *copy = rc == 0 ? realloc(w->name, bridge.len) : NULL;
        if (rc != 0)
            return rc;
        if (copy == NULL)
            return -ENOMEM;
        memcpy(copy, bridge.data, bridge.len);
        w->name = copy;
        w->name_len = bridge.len;
        w->count = 0;
    }
    w->count++;
    return 0;
}

int store_bridge_names_foreach(struct store *store, store_bridge_name_fn fn, void *arg)
{
    struct names_walk w = {.fn = fn, .arg = arg};
    int rc = walk_queues(store, NULL, 0, count_name, &w);
    if (rc == 0)
        rc = emit_name(&w);
    free(w.name);
    return rc;
}
