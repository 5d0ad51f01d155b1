/*
 * commit.c - applying a batch's op log in one LMDB write transaction, growing
 * the map on MDB_MAP_FULL and replaying once, reference counting and message
 * garbage, then running the completions.
 * Why an op log rather than writing through: the map can only be resized with
 * no transaction open, so a full map means abort, grow, and apply everything
 * again - which needs the operations kept in memory.
 * Not for: recording ops (batch.c).
 */
#include "store_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define GROW_SLACK (1024u * 1024u)

static void batch_free(struct store_batch *b)
{
    struct store_op *op = b->head;
    while (op != NULL) {
        struct store_op *next = op->next;
        free(op);
        op = next;
    }
    free(b->done);
    free(b);
}

static void run_completions(struct store_batch *b, int status)
{
    for (size_t i = 0; i < b->done_count; i++)
        b->done[i].fn(b->done[i].arg, status);
}

/* ---- reference counts ----------------------------------------------------- */

static int refs_get(struct store *s, MDB_txn *txn, uint64_t msg_id, uint32_t *count)
{
    uint8_t kb[8];
    store_put_u64(kb, msg_id);
    MDB_val k = {8, kb}, v;
    int rc = mdb_get(txn, s->dbi[DB_REFS], &k, &v);
    if (rc == 0 && v.mv_size != REFS_VAL_LEN)
        return MDB_CORRUPTED;
    if (rc == 0)
        *count = store_get_u32(v.mv_data);
    return rc;
}

static int refs_put(struct store *s, MDB_txn *txn, uint64_t msg_id, uint32_t count, unsigned flags)
{
    uint8_t kb[8], vb[REFS_VAL_LEN];
    store_put_u64(kb, msg_id);
    store_put_u32(vb, count);
    MDB_val k = {8, kb}, v = {REFS_VAL_LEN, vb};
    return mdb_put(txn, s->dbi[DB_REFS], &k, &v, flags);
}

static int del_if_present(MDB_txn *txn, MDB_dbi dbi, MDB_val *k)
{
    int rc = mdb_del(txn, dbi, k, NULL);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Deletes the message body and its count together: a body never outlives its
 * last queue reference. */
static int message_delete(struct store *s, MDB_txn *txn, uint64_t msg_id)
{
    uint8_t kb[8];
    store_put_u64(kb, msg_id);
    MDB_val k = {8, kb};
    int rc = del_if_present(txn, s->dbi[DB_REFS], &k);
    if (rc == 0)
        rc = del_if_present(txn, s->dbi[DB_MESSAGES], &k);
    return rc;
}

/* An unknown message is a caller bug: the batch fails rather than store a
 * dangling reference. */
static int ref_add(struct store *s, MDB_txn *txn, uint64_t msg_id)
{
    uint32_t count = 0;
    int rc = refs_get(s, txn, msg_id, &count);
    if (rc == 0 && count == UINT32_MAX)
        return MDB_BAD_VALSIZE;
    if (rc == 0)
        rc = refs_put(s, txn, msg_id, count + 1, 0);
    return rc;
}

/* A missing count is tolerated (store_check reports it): refusing would
 * wedge every later batch that touches the entry. */
static int ref_drop(struct store *s, MDB_txn *txn, uint64_t msg_id)
{
    uint32_t count = 0;
    int rc = refs_get(s, txn, msg_id, &count);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    if (count <= 1)
        return message_delete(s, txn, msg_id);
    return refs_put(s, txn, msg_id, count - 1, 0);
}

/* ---- applying ops ---------------------------------------------------------- */

/* Deletes every key starting with prefix (a "client 00"), dropping message
 * references for queue entries. Seeks again after each delete: simple, and
 * O(log n) per record. */
static int delete_prefix(struct store *s, MDB_txn *txn, enum store_db db, const uint8_t *prefix,
                         size_t prefix_len)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, s->dbi[db], &cur);
    if (rc != 0)
        return rc;
    for (;;) {
        MDB_val k = {prefix_len, (void *)prefix}, v;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc != 0 || k.mv_size < prefix_len || memcmp(k.mv_data, prefix, prefix_len) != 0)
            break;
        struct store_queue_entry e = {0};
        bool is_queue = db == DB_QUEUES || db == DB_GROUPQ || db == DB_BRIDGE_QUEUES;
        bool unref = is_queue && store_entry_decode(db, v.mv_data, v.mv_size, &e);
        rc = mdb_cursor_del(cur, 0);
        if (rc == 0 && unref)
            rc = ref_drop(s, txn, e.msg_id);
        if (rc != 0)
            break;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int apply_delete_session(struct store *s, MDB_txn *txn, struct store_op *op)
{
    MDB_val k = {op->key_len, op->data};
    int rc = del_if_present(txn, s->dbi[DB_SESSIONS], &k);
    uint8_t *prefix = malloc(op->key_len + 1);
    if (prefix == NULL)
        return rc != 0 ? rc : ENOMEM;
    memcpy(prefix, op->data, op->key_len);
    prefix[op->key_len] = 0;
    if (rc == 0)
        rc = delete_prefix(s, txn, DB_SUBS, prefix, op->key_len + 1);
    if (rc == 0)
        rc = delete_prefix(s, txn, DB_QUEUES, prefix, op->key_len + 1);
    if (rc == 0)
        rc = delete_prefix(s, txn, DB_QOS2IN, prefix, op->key_len + 1);
    free(prefix);
    return rc;
}

static int apply_put_message(struct store *s, MDB_txn *txn, struct store_op *op)
{
    MDB_val k = {op->key_len, op->data}, v = {op->val_len, op->data + op->key_len};
    int rc = mdb_put(txn, s->dbi[DB_MESSAGES], &k, &v, MDB_NOOVERWRITE);
    if (rc == 0)
        rc = refs_put(s, txn, op->msg_id, 0, MDB_NOOVERWRITE);
    return rc;
}

/* Queue ops apply to op->db: a client's queue (DB_QUEUES), a group's
 * (DB_GROUPQ) or a bridge's (DB_BRIDGE_QUEUES); all hold message references. */
static int apply_queue_append(struct store *s, MDB_txn *txn, struct store_op *op)
{
    MDB_val k = {op->key_len, op->data}, v = {op->val_len, op->data + op->key_len};
    int rc = mdb_put(txn, s->dbi[op->db], &k, &v, MDB_NOOVERWRITE);
    if (rc == 0)
        rc = ref_add(s, txn, op->msg_id);
    return rc;
}

/* Rewrites state and packet id, keeping everything else the entry holds
 * (message id, QoS, its MQTT 5 part; in a bridge's queue, its flags). */
static int apply_queue_update(struct store *s, MDB_txn *txn, struct store_op *op)
{
    MDB_val k = {op->key_len, op->data}, v;
    int rc = mdb_get(txn, s->dbi[op->db], &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    struct store_queue_entry e;
    if (!store_entry_decode(op->db, v.mv_data, v.mv_size, &e))
        return MDB_CORRUPTED;
    uint8_t small[QUEUE_VAL_LEN + 1 + 4 * 16];
    uint8_t *nv = v.mv_size <= sizeof(small) ? small : malloc(v.mv_size);
    if (nv == NULL)
        return ENOMEM;
    memcpy(nv, v.mv_data, v.mv_size);
    memcpy(nv + 9, op->data + op->key_len + 9, QUEUE_VAL_LEN - 9);
    MDB_val val = {v.mv_size, nv};
    rc = mdb_put(txn, s->dbi[op->db], &k, &val, 0);
    if (nv != small)
        free(nv);
    return rc;
}

static int apply_queue_delete(struct store *s, MDB_txn *txn, struct store_op *op)
{
    MDB_val k = {op->key_len, op->data}, v;
    int rc = mdb_get(txn, s->dbi[op->db], &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    struct store_queue_entry e = {0};
    bool has_ref = rc == 0 && store_entry_decode(op->db, v.mv_data, v.mv_size, &e);
    if (rc == 0)
        rc = mdb_del(txn, s->dbi[op->db], &k, NULL);
    if (rc == 0 && has_ref)
        rc = ref_drop(s, txn, e.msg_id);
    return rc;
}

static int apply_op(struct store *s, MDB_txn *txn, struct store_op *op)
{
    MDB_val k = {op->key_len, op->data}, v = {op->val_len, op->data + op->key_len};
    switch (op->type) {
    case OP_PUT_SESSION:
    case OP_PUT:
        return mdb_put(txn, s->dbi[op->db], &k, &v, 0);
    case OP_DEL:
        return del_if_present(txn, s->dbi[op->db], &k);
    case OP_DEL_SESSION:
        return apply_delete_session(s, txn, op);
    case OP_PUT_MESSAGE:
        return apply_put_message(s, txn, op);
    case OP_QUEUE_APPEND:
        return apply_queue_append(s, txn, op);
    case OP_QUEUE_UPDATE:
        return apply_queue_update(s, txn, op);
    case OP_QUEUE_DELETE:
        return apply_queue_delete(s, txn, op);
    case OP_DEL_PREFIX:
        return delete_prefix(s, txn, op->db, op->data, op->key_len);
    }
    return EINVAL;
}

/* Garbage rule of store_batch_put_message(): a body that ends the batch with
 * no reference is not kept. */
static int drop_unreferenced(struct store *s, MDB_txn *txn, const struct store_batch *b)
{
    for (const struct store_op *op = b->head; op != NULL; op = op->next) {
        if (op->type != OP_PUT_MESSAGE)
            continue;
        uint32_t count = 0;
        int rc = refs_get(s, txn, op->msg_id, &count);
        if (rc == 0 && count == 0)
            rc = message_delete(s, txn, op->msg_id);
        if (rc != 0 && rc != MDB_NOTFOUND)
            return rc;
    }
    return 0;
}

static int write_hwm(struct store *s, MDB_txn *txn, uint64_t hwm)
{
    if (hwm <= s->hwm_persisted)
        return 0;
    uint8_t vb[8];
    store_put_u64(vb, hwm);
    MDB_val k = {strlen(META_MSG_HWM), META_MSG_HWM}, v = {8, vb};
    return mdb_put(txn, s->dbi[DB_META], &k, &v, 0);
}

/* One attempt: begin, apply everything, commit. Returns an LMDB/errno code.
 * Runs on the storage thread too (committer.c): it reads only the batch, the
 * environment and hwm_persisted, which the owner writes only while no batch
 * is in flight. */
int store_commit_attempt(struct store_batch *b, uint64_t hwm)
{
    struct store *s = b->store;
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return rc;
    for (struct store_op *op = b->head; rc == 0 && op != NULL; op = op->next)
        rc = apply_op(s, txn, op);
    if (rc == 0)
        rc = drop_unreferenced(s, txn, b);
    if (rc == 0)
        rc = write_hwm(s, txn, hwm);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    return mdb_txn_commit(txn); /* frees txn on failure too */
}

/* Grows the map while no transaction is open: at least double, and at least
 * twice this batch's bytes, never past the maximum. Returns 0 if it grew. */
int store_grow_map(struct store *s, size_t batch_bytes)
{
    MDB_envinfo info;
    int rc = mdb_env_info(s->env, &info);
    if (rc != 0)
        return rc;
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    uint64_t cur = info.me_mapsize;
    uint64_t max = s->max_map_size / page * page;
    if (cur >= max)
        return MDB_MAP_FULL;
    uint64_t want = cur + 2 * (uint64_t)batch_bytes + GROW_SLACK;
    if (want < cur * 2)
        want = cur * 2;
    if (want > max)
        want = max;
    want = (want + page - 1) / page * page;
    rc = mdb_env_set_mapsize(s->env, (size_t)want);
    if (rc == 0)
        log_notice("store: map grown from %llu to %llu bytes", (unsigned long long)cur,
                   (unsigned long long)want);
    return rc;
}

/* Fail-stop: after an I/O error the kernel may have dropped the pages it
 * failed to write, and a retried commit could report success for data that
 * is not on disk. The store refuses every later commit; the broker stops, and
 * the next start recovers from the last good commit. */
static int fail_stop(struct store *s, int rc)
{
    if (s->fatal_err == 0)
        log_error("store: commit failed: %s; the store takes no more writes", mdb_strerror(rc));
    s->fatal_err = rc;
    return STORE_ERR_FATAL;
}

/* The owner's half of a commit, after the attempt(s): the high-water mark,
 * the fail-stop rule. Returns a store code. */
static int finish_ops(struct store_batch *b, int rc)
{
    struct store *s = b->store;
    if (rc == 0 && b->hwm > s->hwm_persisted)
        s->hwm_persisted = b->hwm;
    if (store_is_fatal_write_error(rc))
        return fail_stop(s, rc);
    return store_err_from_mdb(rc);
}

static int commit_ops(struct store_batch *b)
{
    struct store *s = b->store;
    if (s->read_only)
        return STORE_ERR_READ_ONLY;
    if (s->fatal_err != 0)
        return STORE_ERR_FATAL;
    b->hwm = s->next_msg_id - 1;
    int rc = store_commit_attempt(b, b->hwm);
    if (rc == MDB_MAP_FULL && store_grow_map(s, b->op_bytes) == 0)
        rc = store_commit_attempt(b, b->hwm); /* replay the op log once on the bigger map */
    return finish_ops(b, rc);
}

/* Space accounting, completions, free: every commit ends here. */
static int complete(struct store_batch *batch, int status)
{
    if (status == 0 && batch->op_count > 0)
        store_space_after_commit(batch->store, batch->reserved_bytes);
    else
        store_space_release(batch->store, batch->reserved_bytes);
    run_completions(batch, status);
    batch_free(batch);
    return status;
}

int store_batch_commit(struct store_batch *batch)
{
    int status = batch->err;
    if (status == 0 && batch->op_count > 0)
        status = commit_ops(batch);
    return complete(batch, status);
}

int store_commit_finish(struct store_batch *batch, int mdb_rc)
{
    return complete(batch, finish_ops(batch, mdb_rc));
}

void store_batch_discard(struct store_batch *batch)
{
    if (batch == NULL)
        return;
    store_space_release(batch->store, batch->reserved_bytes);
    run_completions(batch, STORE_ERR_CANCELED);
    batch_free(batch);
}
