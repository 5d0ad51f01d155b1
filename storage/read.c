/*
 * read.c - the read side: start-up loads (sessions, subscriptions, retained
 * index), on-demand queue reads in bounded batches, message and retained
 * fetches, and the walks solctl uses. Each read is one read-only transaction;
 * records are copied into a scratch buffer before a callback sees them, so no
 * pointer into the map ever leaves storage.
 * Not for: writes (batch.c, commit.c) or invariant checks (check.c).
 */
#include "store_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A growable buffer owned by one read call. */
struct scratch {
    uint8_t *buf;
    size_t cap;
};

static uint8_t *scratch_get(struct scratch *sc, size_t len)
{
    if (len > sc->cap) {
        size_t cap = len < 256 ? 256 : len;
        uint8_t *p = realloc(sc->buf, cap);
        if (p == NULL)
            return NULL;
        sc->buf = p;
        sc->cap = cap;
    }
    return sc->buf;
}

/* Called per record by walk(); returns 0 to go on. */
typedef int (*visit_fn)(void *ctx, MDB_txn *txn, const MDB_val *k, const MDB_val *v);

/*
 * Walks db in key order from `start` (NULL: the first key) while keys begin
 * with prefix (empty: no bound), in one read transaction.
 * Returns 0 at the end, the visitor's non-zero value, or a store code.
 */
static int walk_prefix(struct store *s, enum store_db db, const MDB_val *start,
                       struct store_bytes prefix, visit_fn visit, void *ctx)
{
    if (s->absent_dbs & STORE_DB_BIT(db))
        return 0; /* a store from before this database: nothing in it */
    MDB_txn *txn;
    int rc = store_read_begin(s, &txn);
    if (rc != 0)
        return rc;
    MDB_cursor *cur;
    int mrc = mdb_cursor_open(txn, s->dbi[db], &cur);
    if (mrc != 0) {
        mdb_txn_abort(txn);
        return store_err_from_mdb(mrc);
    }
    MDB_val k = start != NULL ? *start : (MDB_val){0, NULL}, v;
    MDB_cursor_op op = start != NULL ? MDB_SET_RANGE : MDB_FIRST;
    while ((mrc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
        op = MDB_NEXT;
        if (prefix.len > 0 &&
            (k.mv_size < prefix.len || memcmp(k.mv_data, prefix.data, prefix.len) != 0))
            break;
        rc = visit(ctx, txn, &k, &v);
        if (rc != 0)
            break;
    }
    if (rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND)
        rc = store_err_from_mdb(mrc);
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return rc;
}

/* walk_prefix() bounded by the first prefix_len bytes of start. */
static int walk(struct store *s, enum store_db db, const MDB_val *start, size_t prefix_len,
                visit_fn visit, void *ctx)
{
    struct store_bytes prefix = {start != NULL ? start->mv_data : NULL,
                                 start != NULL ? prefix_len : 0};
    return walk_prefix(s, db, start, prefix, visit, ctx);
}

/* A "client 00" start key for prefix walks; NULL client: no prefix. */
struct prefix_key {
    uint8_t *buf;
    MDB_val val;
};

static int prefix_init(struct prefix_key *pk, const struct store_bytes *client, size_t extra)
{
    pk->buf = malloc(client->len + 1 + extra);
    if (pk->buf == NULL)
        return -ENOMEM;
    pk->val.mv_size = store_key_client_prefix(pk->buf, *client);
    pk->val.mv_data = pk->buf;
    return 0;
}

static int prefixed_walk(struct store *s, enum store_db db, const struct store_bytes *client,
                         visit_fn visit, void *ctx)
{
    if (client == NULL)
        return walk(s, db, NULL, 0, visit, ctx);
    if (client->len == 0 || client->data == NULL)
        return STORE_ERR_INVALID;
    struct prefix_key pk;
    int rc = prefix_init(&pk, client, 0);
    if (rc == 0)
        rc = walk(s, db, &pk.val, pk.val.mv_size, visit, ctx);
    free(pk.buf);
    return rc;
}

/* ---- sessions ------------------------------------------------------------------ */

struct session_walk {
    struct store *store;
    store_session_fn fn;
    void *arg;
    struct scratch sc;
    MDB_cursor *queues; /* one cursor for all the per-session seeks */
    uint8_t *seek;      /* max_key_len + 1 bytes */
};

/* The highest seq of client: seek to the first key after "client 00 *"
 * ("client 01") and step back once. O(log n), never a scan. */
static int last_seq(struct session_walk *w, struct store_bytes client, bool *has, uint64_t *seq)
{
    memcpy(w->seek, client.data, client.len);
    w->seek[client.len] = 1;
    MDB_val k = {client.len + 1, w->seek}, v;
    int rc = mdb_cursor_get(w->queues, &k, &v, MDB_SET_RANGE);
    rc = mdb_cursor_get(w->queues, &k, &v, rc == 0 ? MDB_PREV : MDB_LAST);
    *has = false;
    *seq = 0;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return store_err_from_mdb(rc);
    const uint8_t *p = k.mv_data;
    if (k.mv_size == client.len + SEQ_KEY_EXTRA && memcmp(p, client.data, client.len) == 0 &&
        p[client.len] == 0) {
        *has = true;
        *seq = store_get_u64(p + client.len + 1);
    }
    return 0;
}

static int visit_session(void *ctx, MDB_txn *txn, const MDB_val *k, const MDB_val *v)
{
    struct session_walk *w = ctx;
    if (w->queues == NULL && mdb_cursor_open(txn, w->store->dbi[DB_QUEUES], &w->queues) != 0)
        return STORE_ERR_IO;
    uint8_t *buf = scratch_get(&w->sc, k->mv_size + v->mv_size);
    if (buf == NULL)
        return -ENOMEM;
    if (k->mv_size == 0 || k->mv_size > w->store->max_key_len)
        return STORE_ERR_CORRUPT;
    memcpy(buf, k->mv_data, k->mv_size);
    memcpy(buf + k->mv_size, v->mv_data, v->mv_size);
    struct store_session_info info = {.client_id = {buf, k->mv_size}};
    if (!store_session_decode(buf + k->mv_size, v->mv_size, &info.session))
        return STORE_ERR_CORRUPT;
    int rc = last_seq(w, info.client_id, &info.has_queue, &info.last_seq);
    return rc != 0 ? rc : w->fn(w->arg, &info);
}

int store_sessions_foreach(struct store *store, store_session_fn fn, void *arg)
{
    struct session_walk w = {.store = store, .fn = fn, .arg = arg};
    w.seek = malloc(store->max_key_len + 1);
    if (w.seek == NULL)
        return -ENOMEM;
    int rc = walk(store, DB_SESSIONS, NULL, 0, visit_session, &w);
    /* the cursor belongs to the walk's (now ended) read transaction */
    if (w.queues != NULL)
        mdb_cursor_close(w.queues);
    free(w.seek);
    free(w.sc.buf);
    return rc;
}

struct one_session {
    struct session_walk w;
    size_t id_len;
    bool is_found;
};

/* The walk starts at the first key >= the client id: the session itself, or
 * (when there is none) a longer or later id, where it stops. */
static int visit_one_session(void *ctx, MDB_txn *txn, const MDB_val *k, const MDB_val *v)
{
    struct one_session *o = ctx;
    if (k->mv_size != o->id_len)
        return 1;
    o->is_found = true;
    int rc = visit_session(&o->w, txn, k, v);
    return rc != 0 ? rc : 1;
}

int store_get_session(struct store *store, struct store_bytes client_id, store_session_fn fn,
                      void *arg)
{
    if (client_id.len == 0 || client_id.data == NULL || client_id.len > store->max_key_len)
        return STORE_ERR_INVALID;
    struct one_session o = {.w = {.store = store, .fn = fn, .arg = arg}, .id_len = client_id.len};
    o.w.seek = malloc(store->max_key_len + 1);
    if (o.w.seek == NULL)
        return -ENOMEM;
    MDB_val start = {client_id.len, (void *)client_id.data};
    int rc = walk(store, DB_SESSIONS, &start, client_id.len, visit_one_session, &o);
    if (o.w.queues != NULL)
        mdb_cursor_close(o.w.queues);
    free(o.w.seek);
    free(o.w.sc.buf);
    if (rc == 1)
        rc = 0;
    return rc != 0 ? rc : o.is_found;
}

/* ---- subscriptions and incoming QoS 2 ----------------------------------------- */

struct sub_walk {
    store_subscription_fn fn;
    store_qos2_fn qos2_fn;
    void *arg;
    struct scratch sc;
};

/* Copies a "client 00 rest" key out of the map into the walk's scratch and
 * splits it. Returns 0, -ENOMEM, or STORE_ERR_CORRUPT for a key without the
 * separator. */
static int copy_split_key(struct scratch *sc, const MDB_val *k, struct store_bytes *client,
                          struct store_bytes *rest)
{
    uint8_t *buf = scratch_get(sc, k->mv_size);
    if (buf == NULL)
        return -ENOMEM;
    memcpy(buf, k->mv_data, k->mv_size);
    MDB_val copy = {k->mv_size, buf};
    return store_key_split(&copy, client, rest) ? 0 : STORE_ERR_CORRUPT;
}

static int visit_sub(void *ctx, MDB_txn *txn, const MDB_val *k, const MDB_val *v)
{
    (void)txn;
    struct sub_walk *w = ctx;
    struct store_bytes client, filter;
    int rc = copy_split_key(&w->sc, k, &client, &filter);
    if (rc != 0)
        return rc;
    uint8_t options = 0;
    uint32_t sub_id = 0;
    if (filter.len == 0 || !store_sub_decode(v->mv_data, v->mv_size, &options, &sub_id))
        return STORE_ERR_CORRUPT;
    return w->fn(w->arg, client, filter, options, sub_id);
}

int store_subscriptions_foreach(struct store *store, const struct store_bytes *client_id,
                                store_subscription_fn fn, void *arg)
{
    struct sub_walk w = {.fn = fn, .arg = arg};
    int rc = prefixed_walk(store, DB_SUBS, client_id, visit_sub, &w);
    free(w.sc.buf);
    return rc;
}

static int visit_qos2(void *ctx, MDB_txn *txn, const MDB_val *k, const MDB_val *v)
{
    (void)txn;
    struct sub_walk *w = ctx;
    struct store_bytes client, rest;
    int rc = copy_split_key(&w->sc, k, &client, &rest);
    if (rc != 0)
        return rc;
    if (rest.len != 2 || v->mv_size != 8)
        return STORE_ERR_CORRUPT;
    return w->qos2_fn(w->arg, client, store_get_u16(rest.data), store_get_u64(v->mv_data));
}

int store_qos2_foreach(struct store *store, const struct store_bytes *client_id, store_qos2_fn fn,
                       void *arg)
{
    struct sub_walk w = {.qos2_fn = fn, .arg = arg};
    int rc = prefixed_walk(store, DB_QOS2IN, client_id, visit_qos2, &w);
    free(w.sc.buf);
    return rc;
}

int store_bridge_qos2_foreach(struct store *store, const struct store_bytes *bridge,
                              store_qos2_fn fn, void *arg)
{
    struct sub_walk w = {.qos2_fn = fn, .arg = arg};
    int rc = prefixed_walk(store, DB_BRIDGE_QOS2IN, bridge, visit_qos2, &w);
    free(w.sc.buf);
    return rc;
}

/* ---- retained -------------------------------------------------------------- */

struct retained_walk {
    store_retained_fn fn;
    void *arg;
    bool with_payload;
    struct store_bytes after; /* store_retained_scan: resume after this key */
    struct scratch sc;
};

static int visit_retained(void *ctx, MDB_txn *txn, const MDB_val *k, const MDB_val *v)
{
    (void)txn;
    struct retained_walk *w = ctx;
    size_t header = store_retained_payload_offset(v->mv_data, v->mv_size);
    size_t vlen = w->with_payload ? v->mv_size : header;
    if (header == 0 || k->mv_size == 0)
        return STORE_ERR_CORRUPT;
    uint8_t *buf = scratch_get(&w->sc, k->mv_size + vlen);
    if (buf == NULL)
        return -ENOMEM;
    memcpy(buf, k->mv_data, k->mv_size);
    memcpy(buf + k->mv_size, v->mv_data, vlen);
    struct store_retained r;
    if (!store_retained_decode((struct store_bytes){buf, k->mv_size}, buf + k->mv_size, vlen, &r))
        return STORE_ERR_CORRUPT;
    r.payload_len = (uint32_t)(v->mv_size - header);
    return w->fn(w->arg, &r);
}

int store_retained_foreach(struct store *store, store_retained_fn fn, void *arg)
{
    struct retained_walk w = {.fn = fn, .arg = arg, .with_payload = true};
    int rc = walk(store, DB_RETAINED, NULL, 0, visit_retained, &w);
    free(w.sc.buf);
    return rc;
}

int store_retained_index_foreach(struct store *store, store_retained_fn fn, void *arg)
{
    struct retained_walk w = {.fn = fn, .arg = arg, .with_payload = false};
    int rc = walk(store, DB_RETAINED, NULL, 0, visit_retained, &w);
    free(w.sc.buf);
    return rc;
}

/* visit_retained, skipping keys up to and including w->after. */
static int visit_retained_after(void *ctx, MDB_txn *txn, const MDB_val *k, const MDB_val *v)
{
    struct retained_walk *w = ctx;
    if (w->after.len > 0) {
        size_t n = k->mv_size < w->after.len ? k->mv_size : w->after.len;
        int cmp = memcmp(k->mv_data, w->after.data, n);
        if (cmp < 0 || (cmp == 0 && k->mv_size <= w->after.len))
            return 0;
    }
    return visit_retained(ctx, txn, k, v);
}

int store_retained_scan(struct store *store, struct store_bytes prefix, struct store_bytes after,
                        store_retained_fn fn, void *arg)
{
    if (prefix.len > store->max_key_len)
        return 0; /* no topic is stored under a longer key */
    struct retained_walk w = {.fn = fn, .arg = arg, .with_payload = true, .after = after};
    /* Start at the later of prefix and after: both are lower bounds. */
    bool from_after =
        after.len > 0 &&
        (prefix.len == 0 ||
         memcmp(after.data, prefix.data, after.len < prefix.len ? after.len : prefix.len) >= 0);
    MDB_val start = from_after ? (MDB_val){after.len, (void *)after.data}
                               : (MDB_val){prefix.len, (void *)prefix.data};
    bool has_start = from_after || prefix.len > 0;
    int rc = walk_prefix(store, DB_RETAINED, has_start ? &start : NULL, prefix,
                         visit_retained_after, &w);
    free(w.sc.buf);
    return rc > 0 ? 0 : rc;
}

int store_retained_count(struct store *store, uint64_t *out)
{
    *out = 0;
    MDB_txn *txn;
    int rc = store_read_begin(store, &txn);
    if (rc != 0)
        return rc;
    MDB_stat st;
    rc = store_err_from_mdb(mdb_stat(txn, store->dbi[DB_RETAINED], &st));
    if (rc == 0)
        *out = st.ms_entries;
    mdb_txn_abort(txn);
    return rc;
}

/* Runs one mdb_get in its own read transaction and hands the value to
 * `take`, which copies it out before the transaction ends. */
static int get_one(struct store *s, enum store_db db, const MDB_val *key,
                   int (*take)(void *ctx, MDB_txn *txn, const MDB_val *v), void *ctx)
{
    MDB_txn *txn;
    int rc = store_read_begin(s, &txn);
    if (rc != 0)
        return rc;
    MDB_val k = *key, v;
    rc = store_err_from_mdb(mdb_get(txn, s->dbi[db], &k, &v));
    if (rc == 0)
        rc = take(ctx, txn, &v);
    mdb_txn_abort(txn);
    return rc;
}

struct retained_get {
    struct store_bytes topic;
    struct store_retained *out;
};

static int take_retained(void *ctx, MDB_txn *txn, const MDB_val *v)
{
    (void)txn;
    struct retained_get *g = ctx;
    struct store_retained *r = malloc(sizeof(*r) + g->topic.len + v->mv_size);
    if (r == NULL)
        return -ENOMEM;
    uint8_t *topic = (uint8_t *)(r + 1);
    memcpy(topic, g->topic.data, g->topic.len);
    memcpy(topic + g->topic.len, v->mv_data, v->mv_size);
    if (!store_retained_decode((struct store_bytes){topic, g->topic.len}, topic + g->topic.len,
                               v->mv_size, r)) {
        free(r);
        return STORE_ERR_CORRUPT;
    }
    g->out = r;
    return 0;
}

static int take_nothing(void *ctx, MDB_txn *txn, const MDB_val *v)
{
    (void)ctx;
    (void)txn;
    (void)v;
    return 0;
}

int store_has_retained(struct store *store, struct store_bytes topic)
{
    if (topic.len == 0 || topic.len > store->max_key_len)
        return 0;
    MDB_val k = {topic.len, (void *)topic.data};
    int rc = get_one(store, DB_RETAINED, &k, take_nothing, NULL);
    if (rc == STORE_ERR_NOT_FOUND)
        return 0;
    return rc == 0 ? 1 : rc;
}

int store_get_retained(struct store *store, struct store_bytes topic, struct store_retained **out)
{
    *out = NULL;
    if (topic.len == 0 || topic.len > store->max_key_len)
        return topic.len == 0 ? STORE_ERR_INVALID : STORE_ERR_NOT_FOUND;
    struct retained_get g = {.topic = topic};
    MDB_val k = {topic.len, (void *)topic.data};
    int rc = get_one(store, DB_RETAINED, &k, take_retained, &g);
    *out = g.out;
    return rc;
}

/* ---- messages ------------------------------------------------------------------ */

static uint32_t refcount_of(struct store *s, MDB_txn *txn, uint64_t msg_id)
{
    uint8_t kb[8];
    store_put_u64(kb, msg_id);
    MDB_val k = {8, kb}, v;
    if (mdb_get(txn, s->dbi[DB_REFS], &k, &v) != 0 || v.mv_size != REFS_VAL_LEN)
        return 0;
    return store_get_u32(v.mv_data);
}

struct message_get {
    struct store *store;
    uint64_t msg_id;
    struct store_message *out;
    uint32_t refcount;
};

static int take_message(void *ctx, MDB_txn *txn, const MDB_val *v)
{
    struct message_get *g = ctx;
    struct store_message *m = malloc(sizeof(*m) + v->mv_size);
    if (m == NULL)
        return -ENOMEM;
    uint8_t *data = (uint8_t *)(m + 1);
    memcpy(data, v->mv_data, v->mv_size);
    if (!store_message_decode(data, v->mv_size, m)) {
        free(m);
        return STORE_ERR_CORRUPT;
    }
    g->refcount = refcount_of(g->store, txn, g->msg_id);
    g->out = m;
    return 0;
}

int store_get_message(struct store *store, uint64_t msg_id, struct store_message **out,
                      uint32_t *refcount)
{
    uint8_t kb[8];
    store_put_u64(kb, msg_id);
    MDB_val k = {8, kb};
    struct message_get g = {.store = store, .msg_id = msg_id};
    int rc = get_one(store, DB_MESSAGES, &k, take_message, &g);
    *out = g.out;
    if (refcount != NULL)
        *refcount = g.refcount;
    return rc;
}

struct message_walk {
    struct store *store;
    store_message_fn fn;
    void *arg;
    bool with_payload;
    struct scratch sc;
};

static int visit_message(void *ctx, MDB_txn *txn, const MDB_val *k, const MDB_val *v)
{
    struct message_walk *w = ctx;
    struct store_message m;
    size_t header = store_message_payload_offset(v->mv_data, v->mv_size);
    if (k->mv_size != 8 || header == 0)
        return STORE_ERR_CORRUPT;
    size_t len = w->with_payload ? v->mv_size : header;
    uint8_t *buf = scratch_get(&w->sc, len);
    if (buf == NULL)
        return -ENOMEM;
    memcpy(buf, v->mv_data, len);
    if (!store_message_decode(buf, len, &m))
        return STORE_ERR_CORRUPT;
    uint64_t id = store_get_u64(k->mv_data);
    return w->fn(w->arg, id, &m, refcount_of(w->store, txn, id));
}

int store_messages_foreach(struct store *store, bool with_payload, store_message_fn fn, void *arg)
{
    struct message_walk w = {.store = store, .fn = fn, .arg = arg, .with_payload = with_payload};
    int rc = walk(store, DB_MESSAGES, NULL, 0, visit_message, &w);
    free(w.sc.buf);
    return rc;
}

/* ---- queues ------------------------------------------------------------------- */

struct queue_walk {
    struct store *store;
    enum store_db db; /* DB_QUEUES or DB_BRIDGE_QUEUES */
    store_queue_fn fn;
    void *arg;
    bool with_body;
    size_t max_entries; /* 0 = no limit */
    size_t count;
    bool limit_hit;
    struct scratch sc;
};

/* Copies the message body of e (if wanted and present) into scratch at
 * offset `at` (after the client id and the entry). */
static int queue_item_body(struct queue_walk *w, MDB_txn *txn, struct store_queue_item *it,
                           struct store_message *m, size_t at)
{
    it->refcount = refcount_of(w->store, txn, it->entry.msg_id);
    if (!w->with_body)
        return 0;
    uint8_t kb[8];
    store_put_u64(kb, it->entry.msg_id);
    MDB_val k = {8, kb}, v;
    int rc = mdb_get(txn, w->store->dbi[DB_MESSAGES], &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return store_err_from_mdb(rc);
    uint8_t *buf = scratch_get(&w->sc, at + v.mv_size);
    if (buf == NULL)
        return -ENOMEM;
    memcpy(buf + at, v.mv_data, v.mv_size);
    if (!store_message_decode(buf + at, v.mv_size, m))
        return STORE_ERR_CORRUPT;
    it->message = m;
    return 0;
}

/* Scratch holds: the client id, the entry's value, then the message body. */
static int visit_queue(void *ctx, MDB_txn *txn, const MDB_val *k, const MDB_val *v)
{
    struct queue_walk *w = ctx;
    struct store_queue_item it = {0};
    struct store_message m;
    struct store_bytes client, rest;
    if (!store_key_split(k, &client, &rest) || rest.len != 8 ||
        !store_entry_decode(w->db, v->mv_data, v->mv_size, &it.entry))
        return STORE_ERR_CORRUPT;
    it.seq = store_get_u64(rest.data);
    int rc = queue_item_body(w, txn, &it, &m, client.len + v->mv_size);
    uint8_t *buf = rc == 0 ? scratch_get(&w->sc, client.len + v->mv_size) : NULL;
    if (rc == 0 && buf == NULL)
        rc = -ENOMEM;
    if (rc != 0)
        return rc;
    memcpy(buf, client.data, client.len); /* scratch already holds the body after them */
    memcpy(buf + client.len, v->mv_data, v->mv_size);
    if (!store_queue_decode(buf + client.len, v->mv_size, &it.entry))
        return STORE_ERR_CORRUPT;
    it.client_id = (struct store_bytes){buf, client.len};
    rc = w->fn(w->arg, &it);
    w->count++;
    if (rc == 0 && w->max_entries > 0 && w->count == w->max_entries) {
        w->limit_hit = true;
        return 1; /* stops the walk; store_queue_read() returns the count */
    }
    return rc;
}

/* A bounded read of one owner's queue (a client's in DB_QUEUES, a group's in
 * DB_GROUPQ, a bridge's in DB_BRIDGE_QUEUES) from from_seq on. */
static int queue_read(struct store *store, enum store_db db, struct store_bytes owner,
                      uint64_t from_seq, size_t max_entries, store_queue_fn fn, void *arg)
{
    if (owner.len == 0 || owner.data == NULL)
        return STORE_ERR_INVALID;
    if (max_entries == 0)
        return 0;
    struct prefix_key pk;
    int rc = prefix_init(&pk, &owner, 8);
    if (rc != 0)
        return rc;
    size_t prefix_len = pk.val.mv_size;
    store_put_u64(pk.buf + prefix_len, from_seq);
    pk.val.mv_size = prefix_len + 8;
    struct queue_walk w = {.store = store,
                           .db = db,
                           .fn = fn,
                           .arg = arg,
                           .with_body = true,
                           .max_entries = max_entries};
    rc = walk(store, db, &pk.val, prefix_len, visit_queue, &w);
    if (w.limit_hit)
        rc = 0;
    free(pk.buf);
    free(w.sc.buf);
    return rc != 0 ? rc : (int)(w.count < (size_t)INT32_MAX ? w.count : INT32_MAX);
}

int store_queue_read(struct store *store, struct store_bytes client_id, uint64_t from_seq,
                     size_t max_entries, store_queue_fn fn, void *arg)
{
    return queue_read(store, DB_QUEUES, client_id, from_seq, max_entries, fn, arg);
}

int store_bridge_queue_read(struct store *store, struct store_bytes bridge, uint64_t from_seq,
                            size_t max_entries, store_queue_fn fn, void *arg)
{
    return queue_read(store, DB_BRIDGE_QUEUES, bridge, from_seq, max_entries, fn, arg);
}

int store_queues_foreach(struct store *store, const struct store_bytes *client_id,
                         store_queue_fn fn, void *arg)
{
    struct queue_walk w = {.store = store, .db = DB_QUEUES, .fn = fn, .arg = arg};
    int rc = prefixed_walk(store, DB_QUEUES, client_id, visit_queue, &w);
    free(w.sc.buf);
    return rc;
}

int store_bridge_queues_foreach(struct store *store, const struct store_bytes *bridge,
                                store_queue_fn fn, void *arg)
{
    struct queue_walk w = {.store = store, .db = DB_BRIDGE_QUEUES, .fn = fn, .arg = arg};
    int rc = prefixed_walk(store, DB_BRIDGE_QUEUES, bridge, visit_queue, &w);
    free(w.sc.buf);
    return rc;
}

int store_group_queue_read(struct store *store, struct store_bytes group, uint64_t from_seq,
                           size_t max_entries, store_queue_fn fn, void *arg)
{
    return queue_read(store, DB_GROUPQ, group, from_seq, max_entries, fn, arg);
}

int store_group_queues_foreach(struct store *store, const struct store_bytes *group,
                               store_queue_fn fn, void *arg)
{
    struct queue_walk w = {.store = store, .db = DB_GROUPQ, .fn = fn, .arg = arg};
    int rc = prefixed_walk(store, DB_GROUPQ, group, visit_queue, &w);
    free(w.sc.buf);
    return rc;
}

/* ---- counters ------------------------------------------------------------------- */

static int take_u64(void *ctx, MDB_txn *txn, const MDB_val *v)
{
    (void)txn;
    if (v->mv_size != 8)
        return STORE_ERR_CORRUPT;
    *(uint64_t *)ctx = store_get_u64(v->mv_data);
    return 0;
}

int store_get_counter(struct store *store, const char *name, uint64_t *value)
{
    char key[sizeof(META_COUNTER) + COUNTER_NAME_MAX];
    size_t len = name != NULL ? strlen(name) : 0;
    if (len == 0 || len > COUNTER_NAME_MAX)
        return STORE_ERR_INVALID;
    memcpy(key, META_COUNTER, strlen(META_COUNTER));
    memcpy(key + strlen(META_COUNTER), name, len);
    MDB_val k = {strlen(META_COUNTER) + len, key};
    return get_one(store, DB_META, &k, take_u64, value);
}
