/*
 * check.c - store_check(), the invariant checker shared by the tests and
 * `solctl check`, and store_stats(). Both run in one read transaction, so
 * they see one consistent snapshot next to a running broker.
 * Not for: repairing anything; the checker only reports.
 */
#include "store_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a small open-addressing map: message id -> queue references seen ---- */

struct ref_slot {
    uint64_t msg_id; /* 0 = empty (message ids are never 0) */
    uint32_t count;
    bool has_refs_record;
};

struct ref_map {
    struct ref_slot *slots;
    size_t cap, used; /* cap is a power of two */
};

static size_t slot_of(const struct ref_map *m, uint64_t id)
{
    uint64_t h = id * 0x9E3779B97F4A7C15ull;
    size_t i = (size_t)(h >> 17) & (m->cap - 1);
    while (m->slots[i].msg_id != 0 && m->slots[i].msg_id != id)
        i = (i + 1) & (m->cap - 1);
    return i;
}

static int map_grow(struct ref_map *m)
{
    struct ref_map bigger = {calloc(m->cap ? m->cap * 2 : 1024, sizeof(struct ref_slot)),
                             m->cap ? m->cap * 2 : 1024, m->used};
    if (bigger.slots == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].msg_id != 0)
            bigger.slots[slot_of(&bigger, m->slots[i].msg_id)] = m->slots[i];
    free(m->slots);
    *m = bigger;
    return 0;
}

/* Returns the slot for id, inserting it; NULL on allocation failure. */
static struct ref_slot *map_get(struct ref_map *m, uint64_t id)
{
    if ((m->used + 1) * 2 > m->cap && map_grow(m) != 0)
        return NULL;
    struct ref_slot *s = &m->slots[slot_of(m, id)];
    if (s->msg_id == 0) {
        s->msg_id = id;
        m->used++;
    }
    return s;
}

/* ---- reporting ---------------------------------------------------------------- */

struct checker {
    struct store *store;
    MDB_txn *txn;
    store_problem_fn fn;
    void *arg;
    int problems;
    uint64_t hwm;
    struct ref_map refs;
    char client[160]; /* printable form of the client id being reported */
};

static void problem(struct checker *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void problem(struct checker *c, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (c->problems < INT32_MAX)
        c->problems++;
    if (c->fn != NULL)
        c->fn(c->arg, line);
}

/* Client ids are UTF-8 but may hold anything; print them escaped. */
static const char *printable(struct checker *c, struct store_bytes s)
{
    size_t o = 0;
    for (size_t i = 0; i < s.len && o + 8 < sizeof(c->client); i++) {
        uint8_t b = s.data[i];
        if (b >= 0x20 && b < 0x7f && b != '\\')
            c->client[o++] = (char)b;
        else
            o += (size_t)snprintf(c->client + o, sizeof(c->client) - o, "\\x%02x", b);
    }
    c->client[o] = 0;
    return c->client;
}

static bool has_session(struct checker *c, struct store_bytes client)
{
    MDB_val k = {client.len, (void *)client.data}, v;
    return mdb_get(c->txn, c->store->dbi[DB_SESSIONS], &k, &v) == 0;
}

static bool has_message(struct checker *c, uint64_t id)
{
    uint8_t kb[8];
    store_put_u64(kb, id);
    MDB_val k = {8, kb}, v;
    return mdb_get(c->txn, c->store->dbi[DB_MESSAGES], &k, &v) == 0;
}

/* Visits every record of db; a cursor error is returned as a store code. */
static int each(struct checker *c, enum store_db db,
                int (*fn)(struct checker *c, const MDB_val *k, const MDB_val *v))
{
    if (c->store->absent_dbs & STORE_DB_BIT(db))
        return 0; /* a store from before this database: nothing to check */
    MDB_cursor *cur;
    int rc = mdb_cursor_open(c->txn, c->store->dbi[db], &cur);
    if (rc != 0)
        return store_err_from_mdb(rc);
    MDB_val k, v;
    int mrc, err = 0;
    while (err == 0 && (mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0)
        err = fn(c, &k, &v);
    mdb_cursor_close(cur);
    if (err != 0)
        return err;
    return mrc == MDB_NOTFOUND ? 0 : store_err_from_mdb(mrc);
}

/* ---- per-database checks ------------------------------------------------------ */

static bool meta_is(const MDB_val *k, const char *name)
{
    return k->mv_size == strlen(name) && memcmp(k->mv_data, name, k->mv_size) == 0;
}

static int check_meta_record(struct checker *c, const MDB_val *k, const MDB_val *v)
{
    size_t want = 8;
    if (meta_is(k, META_SCHEMA) || meta_is(k, META_UPGRADED))
        want = 4;
    else if (meta_is(k, META_STORE_ID))
        want = 16;
    else if (!meta_is(k, META_MSG_HWM) && !meta_is(k, META_CREATED_AT) &&
             !meta_is(k, META_UPGRADED) &&
             (k->mv_size <= 2 || memcmp(k->mv_data, META_COUNTER, 2) != 0))
        problem(c, "meta: unknown key '%.*s'", (int)(k->mv_size > 64 ? 64 : k->mv_size),
                (const char *)k->mv_data);
    if (v->mv_size != want)
        problem(c, "meta: key '%.*s' has %zu bytes, expected %zu",
                (int)(k->mv_size > 64 ? 64 : k->mv_size), (const char *)k->mv_data, v->mv_size,
                want);
    uint32_t version = v->mv_size == 4 ? store_get_u32(v->mv_data) : 0;
    if (meta_is(k, META_SCHEMA) &&
        (version < STORE_SCHEMA_OLDEST || version > STORE_SCHEMA_VERSION))
        problem(c, "meta: schema version %u, expected %u to %u", version, STORE_SCHEMA_OLDEST,
                STORE_SCHEMA_VERSION);
    if (meta_is(k, META_MSG_HWM) && v->mv_size == 8)
        c->hwm = store_get_u64(v->mv_data);
    return 0;
}

static int check_meta(struct checker *c)
{
    const char *required[] = {META_SCHEMA, META_STORE_ID, META_MSG_HWM, META_CREATED_AT};
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        MDB_val k = {strlen(required[i]), (void *)required[i]}, v;
        if (mdb_get(c->txn, c->store->dbi[DB_META], &k, &v) != 0)
            problem(c, "meta: missing '%s'", required[i]);
    }
    return each(c, DB_META, check_meta_record);
}

static int check_session(struct checker *c, const MDB_val *k, const MDB_val *v)
{
    struct store_bytes id = {k->mv_data, k->mv_size};
    struct store_session s;
    if (store_check_client_id(c->store, id) != 0)
        problem(c, "sessions: bad client id key '%s'", printable(c, id));
    if (!store_session_decode(v->mv_data, v->mv_size, &s))
        problem(c, "sessions: record of '%s' does not decode", printable(c, id));
    return 0;
}

static int check_sub(struct checker *c, const MDB_val *k, const MDB_val *v)
{
    struct store_bytes client, filter;
    if (!store_key_split(k, &client, &filter) || filter.len == 0) {
        problem(c, "subs: key of %zu bytes does not decode", k->mv_size);
        return 0;
    }
    uint8_t options = 0;
    uint32_t sub_id = 0;
    if (!store_sub_decode(v->mv_data, v->mv_size, &options, &sub_id))
        problem(c, "subs: bad subscription options or identifier for '%s'", printable(c, client));
    if (!has_session(c, client))
        problem(c, "subs: subscription of '%s' has no session", printable(c, client));
    return 0;
}

static int check_qos2(struct checker *c, const MDB_val *k, const MDB_val *v)
{
    struct store_bytes client, rest;
    if (!store_key_split(k, &client, &rest) || rest.len != 2 || store_get_u16(rest.data) == 0) {
        problem(c, "qos2in: key of %zu bytes does not decode", k->mv_size);
        return 0;
    }
    if (v->mv_size != 8)
        problem(c, "qos2in: bad record for '%s'", printable(c, client));
    if (!has_session(c, client))
        problem(c, "qos2in: record of '%s' has no session", printable(c, client));
    return 0;
}

static int check_queue(struct checker *c, const MDB_val *k, const MDB_val *v)
{
    struct store_bytes client, rest;
    struct store_queue_entry e;
    if (!store_key_split(k, &client, &rest) || rest.len != 8) {
        problem(c, "queues: key of %zu bytes does not decode", k->mv_size);
        return 0;
    }
    uint64_t seq = store_get_u64(rest.data);
    if (!store_queue_decode(v->mv_data, v->mv_size, &e)) {
        problem(c, "queues: entry '%s' #%llu does not decode", printable(c, client),
                (unsigned long long)seq);
        return 0;
    }
    if (!has_session(c, client))
        problem(c, "queues: entry '%s' #%llu has no session", printable(c, client),
                (unsigned long long)seq);
    if (!has_message(c, e.msg_id))
        problem(c, "queues: entry '%s' #%llu points at missing message %llu", printable(c, client),
                (unsigned long long)seq, (unsigned long long)e.msg_id);
    struct ref_slot *slot = map_get(&c->refs, e.msg_id);
    if (slot == NULL)
        return -ENOMEM;
    slot->count++;
    return 0;
}

/* A group queue entry: a valid shared filter as its group, always QUEUED,
 * and a reference on a message like a client's entry. A group queue whose
 * group has no member left is not a problem: the broker deletes it when it
 * starts (a crash can leave one whose last member was a clean session). */
static int check_group_entry(struct checker *c, const MDB_val *k, const MDB_val *v)
{
    struct store_bytes group, rest;
    struct store_queue_entry e;
    if (!store_key_split(k, &group, &rest) || rest.len != 8) {
        problem(c, "groupq: key of %zu bytes does not decode", k->mv_size);
        return 0;
    }
    uint64_t seq = store_get_u64(rest.data);
    if (group.len < 8 || memcmp(group.data, "$share/", 7) != 0)
        problem(c, "groupq: group '%s' is not a $share/ filter", printable(c, group));
    if (!store_queue_decode(v->mv_data, v->mv_size, &e)) {
        problem(c, "groupq: entry '%s' #%llu does not decode", printable(c, group),
                (unsigned long long)seq);
        return 0;
    }
    if (e.state != STORE_QUEUED || e.packet_id != 0 || e.qos == 0)
        problem(c, "groupq: entry '%s' #%llu is not a queued QoS 1/2 entry", printable(c, group),
                (unsigned long long)seq);
    if (!has_message(c, e.msg_id))
        problem(c, "groupq: entry '%s' #%llu points at missing message %llu", printable(c, group),
                (unsigned long long)seq, (unsigned long long)e.msg_id);
    struct ref_slot *slot = map_get(&c->refs, e.msg_id);
    if (slot == NULL)
        return -ENOMEM;
    slot->count++;
    return 0;
}

/* A bridge's queue entry: decodes, and points at a message it counts a
 * reference of. Bridges have no session record. */
static int check_bridge_entry(struct checker *c, const MDB_val *k, const MDB_val *v)
{
    struct store_bytes bridge, rest;
    struct store_queue_entry e;
    if (!store_key_split(k, &bridge, &rest) || rest.len != 8 ||
        store_check_client_id(c->store, bridge) != 0) {
        problem(c, "bridge_queues: key of %zu bytes does not decode", k->mv_size);
        return 0;
    }
    uint64_t seq = store_get_u64(rest.data);
    if (!store_entry_decode(DB_BRIDGE_QUEUES, v->mv_data, v->mv_size, &e)) {
        problem(c, "bridge_queues: entry '%s' #%llu does not decode", printable(c, bridge),
                (unsigned long long)seq);
        return 0;
    }
    if (!has_message(c, e.msg_id))
        problem(c, "bridge_queues: entry '%s' #%llu points at missing message %llu",
                printable(c, bridge), (unsigned long long)seq, (unsigned long long)e.msg_id);
    struct ref_slot *slot = map_get(&c->refs, e.msg_id);
    if (slot == NULL)
        return -ENOMEM;
    slot->count++;
    return 0;
}

static int check_bridge_qos2(struct checker *c, const MDB_val *k, const MDB_val *v)
{
    struct store_bytes bridge, rest;
    if (!store_key_split(k, &bridge, &rest) || rest.len != 2 || store_get_u16(rest.data) == 0) {
        problem(c, "bridge_qos2in: key of %zu bytes does not decode", k->mv_size);
        return 0;
    }
    if (v->mv_size != 8)
        problem(c, "bridge_qos2in: bad record for '%s'", printable(c, bridge));
    return 0;
}

static int check_refs(struct checker *c, const MDB_val *k, const MDB_val *v)
{
    if (k->mv_size != 8 || v->mv_size != REFS_VAL_LEN) {
        problem(c, "refs: record does not decode");
        return 0;
    }
    uint64_t id = store_get_u64(k->mv_data);
    uint32_t count = store_get_u32(v->mv_data);
    struct ref_slot *slot = map_get(&c->refs, id);
    if (slot == NULL)
        return -ENOMEM;
    slot->has_refs_record = true;
    if (count != slot->count)
        problem(c,
                "refs: message %llu has reference count %u but %u queue entries (clients' and "
                "bridges')",
                (unsigned long long)id, count, slot->count);
    if (count == 0)
        problem(c, "refs: message %llu is unreferenced garbage", (unsigned long long)id);
    if (!has_message(c, id))
        problem(c, "refs: count for missing message %llu", (unsigned long long)id);
    return 0;
}

static int check_message(struct checker *c, const MDB_val *k, const MDB_val *v)
{
    struct store_message m;
    if (k->mv_size != 8) {
        problem(c, "messages: key of %zu bytes does not decode", k->mv_size);
        return 0;
    }
    uint64_t id = store_get_u64(k->mv_data);
    if (!store_message_decode(v->mv_data, v->mv_size, &m))
        problem(c, "messages: message %llu does not decode", (unsigned long long)id);
    if (id > c->hwm)
        problem(c, "messages: message id %llu above the high-water mark %llu",
                (unsigned long long)id, (unsigned long long)c->hwm);
    struct ref_slot *slot = map_get(&c->refs, id);
    if (slot == NULL)
        return -ENOMEM;
    if (!slot->has_refs_record)
        problem(c, "messages: message %llu has no reference count", (unsigned long long)id);
    return 0;
}

static int check_retained(struct checker *c, const MDB_val *k, const MDB_val *v)
{
    struct store_retained r;
    struct store_bytes topic = {k->mv_data, k->mv_size};
    if (k->mv_size == 0 || !store_retained_decode(topic, v->mv_data, v->mv_size, &r))
        problem(c, "retained: record for '%s' does not decode", printable(c, topic));
    return 0;
}

/* LMDB's free-page list: every page it names is inside the file. A bad list
 * makes later commits fail or hand out live pages. */
static int check_freelist(struct checker *c)
{
    MDB_envinfo info;
    MDB_cursor *cur;
    int rc = mdb_env_info(c->store->env, &info);
    if (rc == 0)
        rc = mdb_cursor_open(c->txn, 0 /* FREE_DBI */, &cur);
    if (rc != 0)
        return store_err_from_mdb(rc);
    MDB_val k, v;
    char what[256];
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0)
        if (store_check_freelist_record(&k, &v, info.me_last_pgno, what, sizeof(what)) != 0)
            problem(c, "%s", what);
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : store_err_from_mdb(rc);
}

int store_check(struct store *store, store_problem_fn fn, void *arg)
{
    struct checker c = {.store = store, .fn = fn, .arg = arg};
    int rc = store_read_begin(store, &c.txn);
    if (rc != 0)
        return rc;
    rc = check_freelist(&c);
    if (rc == 0)
        rc = check_meta(&c);
    if (rc == 0)
        rc = each(&c, DB_SESSIONS, check_session);
    if (rc == 0)
        rc = each(&c, DB_SUBS, check_sub);
    if (rc == 0)
        rc = each(&c, DB_QOS2IN, check_qos2);
    if (rc == 0)
        rc = each(&c, DB_QUEUES, check_queue);
    if (rc == 0)
        rc = each(&c, DB_GROUPQ, check_group_entry);
    if (rc == 0)
        rc = each(&c, DB_BRIDGE_QUEUES, check_bridge_entry);
    if (rc == 0)
        rc = each(&c, DB_BRIDGE_QOS2IN, check_bridge_qos2);
    if (rc == 0)
        rc = each(&c, DB_REFS, check_refs);
    if (rc == 0)
        rc = each(&c, DB_MESSAGES, check_message);
    if (rc == 0)
        rc = each(&c, DB_RETAINED, check_retained);
    for (size_t i = 0; rc == 0 && i < c.refs.cap; i++) {
        const struct ref_slot *s = &c.refs.slots[i];
        if (s->msg_id != 0 && s->count > 0 && !s->has_refs_record)
            problem(&c, "refs: message %llu has %u queue entries but no reference count",
                    (unsigned long long)s->msg_id, s->count);
    }
    mdb_txn_abort(c.txn);
    free(c.refs.slots);
    return rc != 0 ? rc : c.problems;
}

/* ---- stats -------------------------------------------------------------------- */

static void meta_into_stats(struct store *store, MDB_txn *txn, struct store_stats *out)
{
    MDB_val k = {strlen(META_SCHEMA), META_SCHEMA}, v;
    if (mdb_get(txn, store->dbi[DB_META], &k, &v) == 0 && v.mv_size == 4)
        out->schema_version = store_get_u32(v.mv_data);
    k = (MDB_val){strlen(META_STORE_ID), META_STORE_ID};
    if (mdb_get(txn, store->dbi[DB_META], &k, &v) == 0 && v.mv_size == 16)
        memcpy(out->store_id, v.mv_data, 16);
    k = (MDB_val){strlen(META_MSG_HWM), META_MSG_HWM};
    if (mdb_get(txn, store->dbi[DB_META], &k, &v) == 0 && v.mv_size == 8)
        out->message_id_hwm = store_get_u64(v.mv_data);
    k = (MDB_val){strlen(META_CREATED_AT), META_CREATED_AT};
    if (mdb_get(txn, store->dbi[DB_META], &k, &v) == 0 && v.mv_size == 8)
        out->created_at_s = store_get_u64(v.mv_data);
    k = (MDB_val){strlen(META_UPGRADED), META_UPGRADED};
    if (mdb_get(txn, store->dbi[DB_META], &k, &v) == 0 && v.mv_size == 4)
        out->upgraded_from = store_get_u32(v.mv_data);
}

int store_stats(struct store *store, struct store_stats *out)
{
    memset(out, 0, sizeof(*out));
    MDB_txn *txn;
    int rc = store_read_begin(store, &txn);
    if (rc != 0)
        return rc;
    MDB_envinfo info;
    MDB_stat st;
    int mrc = mdb_env_info(store->env, &info);
    if (mrc == 0)
        mrc = mdb_env_stat(store->env, &st);
    for (int i = 0; mrc == 0 && i < STORE_DB_COUNT; i++) {
        MDB_stat ds = {0};
        if (!(store->absent_dbs & STORE_DB_BIT(i)))
            mrc = mdb_stat(txn, store->dbi[i], &ds);
        if (mrc == 0)
            out->dbs[i] =
                (struct store_db_stats){store_db_names[i], ds.ms_entries,        ds.ms_branch_pages,
                                        ds.ms_leaf_pages,  ds.ms_overflow_pages, ds.ms_depth};
    }
    if (mrc == 0) {
        meta_into_stats(store, txn, out);
        out->page_size = st.ms_psize;
        out->map_size = info.me_mapsize;
        out->map_used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
        out->max_map_size = store->max_map_size;
        out->max_readers = info.me_maxreaders;
        out->readers_used = info.me_numreaders;
    }
    mdb_txn_abort(txn);
    return store_err_from_mdb(mrc);
}
