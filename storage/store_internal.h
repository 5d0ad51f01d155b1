/*
 * store_internal.h - what the storage .c files share: the store and batch
 * structs, database indices, key and record codecs, error mapping and
 * transaction helpers. Private to storage/ (it includes lmdb.h).
 * Not for: anything outside storage/; the public API is store.h.
 */
#ifndef SOL_STORE_INTERNAL_H
#define SOL_STORE_INTERNAL_H

#include "store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>

#define STORE_SCHEMA_VERSION 2u
/* The oldest schema this build still opens (read-write: upgrading it). */
#define STORE_SCHEMA_OLDEST 1u

/* The named databases, in the order stats report them. */
enum store_db {
    DB_META = 0,
    DB_SESSIONS,
    DB_SUBS,
    DB_RETAINED,
    DB_MESSAGES,
    DB_REFS,
    DB_QUEUES,
    DB_QOS2IN,
    DB_GROUPQ,        /* added after schema 1: created on open when missing */
    DB_BRIDGE_QUEUES, /* likewise */
    DB_BRIDGE_QOS2IN, /* likewise */
};

/* Databases a store written before them may lack: a read-write open creates
 * them, a read-only one reads them as empty (store->absent_dbs). */
#define STORE_DB_IS_OPTIONAL(db)                                                                   \
    ((db) == DB_GROUPQ || (db) == DB_BRIDGE_QUEUES || (db) == DB_BRIDGE_QOS2IN)
#define STORE_DB_BIT(db) (1u << (db))

extern const char *const store_db_names[STORE_DB_COUNT];

/* meta keys (ASCII); counters are "c." + name */
#define META_SCHEMA      "schema"
#define META_STORE_ID    "store_id"
#define META_MSG_HWM     "msg_id_hwm"
#define META_CREATED_AT  "created_at"
#define META_UPGRADED    "upgraded_from" /* u32: the schema an upgrade started from */
#define META_COUNTER     "c."
#define COUNTER_NAME_MAX 64

struct store {
    MDB_env *env;
    MDB_dbi dbi[STORE_DB_COUNT];
    bool read_only;
    unsigned absent_dbs; /* STORE_DB_BIT()s of optional databases this (read-only) open
                            did not find: reads of them see no records */
    enum store_sync sync;
    uint64_t max_map_size;
    size_t max_key_len;
    uint64_t next_msg_id;   /* the next id store_next_message_id() hands out */
    uint64_t hwm_persisted; /* the high-water mark in meta as of the last commit */
    /* space.c: what the store can still take, and what open batches reserved */
    uint64_t page_size;
    uint64_t room_bytes;
    uint64_t reserved_bytes;
    unsigned commits_since_refresh;
    /* Set by the first write that failed in a way no retry can be trusted
     * after (EIO, MDB_PANIC, ...): every later commit fails with
     * STORE_ERR_FATAL (commit.c). An LMDB/errno code. */
    int fatal_err;
    struct store_committer *committer; /* the storage thread, if started */
};

/* One recorded operation. Keys and values are encoded at record time into
 * data[] (key first, then value), so applying is a plain put/del. */
enum op_type {
    OP_PUT_SESSION,
    OP_DEL_SESSION,
    OP_PUT,          /* plain put of key/value in db (subs, retained, qos2in, meta) */
    OP_DEL,          /* plain delete of key in db; missing is fine */
    OP_PUT_MESSAGE,  /* messages + refs = 0; msg_id set */
    OP_QUEUE_APPEND, /* db (queues, groupq, bridge_queues): no overwrite + refs += 1; msg_id
                        set */
    OP_QUEUE_UPDATE, /* db: value rewrite keeping the message id, QoS and flags */
    OP_QUEUE_DELETE, /* db: del + refs -= 1 */
    OP_DEL_PREFIX,   /* delete every key of db starting with key (refs -= 1 per entry) */
};

struct store_op {
    struct store_op *next;
    enum op_type type;
    enum store_db db;
    uint64_t msg_id;
    size_t key_len;
    size_t val_len;
    uint8_t data[]; /* key_len + val_len bytes */
};

struct store_completion {
    store_done_fn fn;
    void *arg;
};

struct store_batch {
    struct store *store;
    struct store_op *head, *tail;
    size_t op_count;
    size_t op_bytes;         /* sum of key and value sizes: sizes the map growth */
    int err;                 /* sticky: the first recording failure */
    uint64_t reserved_bytes; /* store_batch_reserve() total (space.c) */
    struct store_completion *done;
    size_t done_count, done_cap;
    /* commit.c / committer.c */
    uint64_t hwm;   /* the message-id high-water mark this commit records */
    int mdb_rc;     /* the storage thread's attempt: an LMDB/errno code */
    bool has_grown; /* the map was grown for it once already */
};

/* ---- commits (commit.c) ---- */
/* Grows the map (no transaction open) for about bytes more: at least
 * double, never past the maximum. Returns 0, or an LMDB code (MDB_MAP_FULL
 * at the maximum). */
int store_grow_map(struct store *s, size_t bytes);
/* Begin, apply the op log, commit: an LMDB/errno code. Thread-safe as
 * described in committer.c. */
int store_commit_attempt(struct store_batch *b, uint64_t hwm);
/* The owner's end of a commit whose attempt returned mdb_rc: fail-stop rule,
 * space, completions, free. Returns the status the completions got. */
int store_commit_finish(struct store_batch *b, int mdb_rc);

/* ---- space (space.c) ---- */
/* Re-measures the room exactly. Returns a store code. */
int store_space_refresh(struct store *s);
/* A batch that reserved this much committed / wrote nothing. */
void store_space_after_commit(struct store *s, uint64_t reserved);
void store_space_release(struct store *s, uint64_t reserved);

/* ---- errors (store.c) ---- */
/* Maps an LMDB or errno code to a store code; 0 stays 0. */
int store_err_from_mdb(int rc);
/* True for a failed write (commit or sync) that is not a full store or a
 * lack of memory: an I/O error or a damaged environment, after which the
 * broker must stop rather than retry. */
bool store_is_fatal_write_error(int rc);

/* ---- transactions (store.c) ---- */
/* Begins a read-only transaction, adopting a map grown by another process
 * (MDB_MAP_RESIZED) once. Returns a store code. */
int store_read_begin(struct store *store, MDB_txn **txn);

/* ---- verification at open (verify.c) ---- */
/* Writes "DIR/data.mdb: damaged store: WHAT. Run `solctl check` ..." into err
 * and returns STORE_ERR_CORRUPT. */
int store_damaged(char *err, size_t err_len, const char *dir, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The file holds every page its meta page uses (else reading one would
 * SIGBUS). Returns 0, STORE_ERR_CORRUPT or STORE_ERR_IO with err set. */
int store_verify_length(struct store *store, const char *dir, char *err, size_t err_len);
/* The bounded sample of verify.c (read-write stores). Returns 0,
 * STORE_ERR_CORRUPT (err says what is wrong), STORE_ERR_IO or -ENOMEM. */
int store_verify_sample(struct store *store, const char *dir, char *err, size_t err_len);
/* One record of LMDB's free-page list (key: txn id; value: count, page
 * numbers): 0, or -1 with the problem in what. */
int store_check_freelist_record(const MDB_val *k, const MDB_val *v, uint64_t last_pgno, char *what,
                                size_t what_len);

/* ---- byte order (keys.c) ---- */
void store_put_u16(uint8_t *p, uint16_t v);
void store_put_u32(uint8_t *p, uint32_t v);
void store_put_u64(uint8_t *p, uint64_t v);
uint16_t store_get_u16(const uint8_t *p);
uint32_t store_get_u32(const uint8_t *p);
uint64_t store_get_u64(const uint8_t *p);

/* ---- keys (keys.c) ---- */
/* Validates a client id: 1..max_client_id_len bytes, no 0x00. */
int store_check_client_id(const struct store *store, struct store_bytes id);
/* Validates a topic or filter as the part of a key after `prefix_len` bytes. */
int store_check_key_string(const struct store *store, struct store_bytes s, size_t prefix_len);

#define SEQ_KEY_EXTRA  9 /* 00 + u64 */
#define PKID_KEY_EXTRA 3 /* 00 + u16 */

/* Writes client 00 into out; returns bytes written (client.len + 1). */
size_t store_key_client_prefix(uint8_t *out, struct store_bytes client);
/* Splits a key "client 00 rest" into its parts; false if it doesn't decode. */
bool store_key_split(const MDB_val *key, struct store_bytes *client, struct store_bytes *rest);

/* ---- records (records.c) ---- */
#define QUEUE_VAL_LEN    12 /* msg id u64, qos u8, state u8, packet id u16 (+ MQTT 5 part) */
#define BRIDGE_VAL_LEN   13 /* a queue value, then flags u8 (bit 0: retain) */
#define REFS_VAL_LEN     4
#define MESSAGE_HDR_LEN  6  /* qos u8, flags u8, topic len u32 */
#define RETAINED_HDR_LEN 9  /* qos u8, stored at u64 */
#define SESSION_HDR_LEN  42 /* schema 2's session header */

size_t store_session_len(const struct store_session *s);
void store_session_encode(uint8_t *out, const struct store_session *s);
/* Decodes a schema 2 record, or a schema 1 one (expiry 0 read as never). */
bool store_session_decode(const uint8_t *p, size_t len, struct store_session *s);
/* A schema 1 record as schema 2 writes it: its length, and the bytes into
 * out (if not NULL; store_session_upgrade(p, len, NULL) bytes). 0: p is not
 * a schema 1 record that decodes. */
size_t store_session_upgrade(const uint8_t *p, size_t len, uint8_t *out);

size_t store_message_len(const struct store_message *m);
void store_message_encode(uint8_t *out, const struct store_message *m);
bool store_message_decode(const uint8_t *p, size_t len, struct store_message *m);
/* Where a message value's payload starts (header, topic and properties
 * before it); 0 if the header does not decode. */
size_t store_message_payload_offset(const uint8_t *p, size_t len);

size_t store_queue_len(const struct store_queue_entry *e);
void store_queue_encode(uint8_t *out, const struct store_queue_entry *e);
bool store_queue_decode(const uint8_t *p, size_t len, struct store_queue_entry *e);
/* The value of a queue entry in db (DB_QUEUES, DB_GROUPQ or DB_BRIDGE_QUEUES):
 * length, encoder and decoder. */
size_t store_entry_len(enum store_db db, const struct store_queue_entry *e);
void store_entry_encode(enum store_db db, uint8_t *out, const struct store_queue_entry *e);
bool store_entry_decode(enum store_db db, const uint8_t *p, size_t len,
                        struct store_queue_entry *e);

size_t store_retained_len(const struct store_retained *r);
void store_retained_encode(uint8_t *out, const struct store_retained *r);
bool store_retained_decode(struct store_bytes topic, const uint8_t *p, size_t len,
                           struct store_retained *r);
/* Where a retained value's payload starts; 0 if the header does not decode. */
size_t store_retained_payload_offset(const uint8_t *p, size_t len);

/* A subscription value: writes 1 or 5 bytes into out, returns how many. */
size_t store_sub_encode(uint8_t *out, uint8_t options, uint32_t sub_id);
bool store_sub_decode(const uint8_t *p, size_t len, uint8_t *options, uint32_t *sub_id);
bool store_sub_options_valid(uint8_t options);

bool store_qos_valid(uint8_t qos);

/* ---- schema upgrade (upgrade.c) ---- */
/* Upgrades a schema `from` store to STORE_SCHEMA_VERSION in one write
 * transaction (all or nothing), creating the databases it lacks. Returns 0,
 * or a store code with err set. */
int store_upgrade(struct store *store, uint32_t from, const char *dir, char *err, size_t err_len);

#endif /* SOL_STORE_INTERNAL_H */
