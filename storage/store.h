/*
 * store.h - Sol's durable record: an LMDB environment with a versioned schema,
 * written through batches (one write transaction per event-loop turn) and read
 * back at start-up and on demand.
 *
 * The in-memory broker is authoritative at runtime; the store is the durable
 * record of what the broker acknowledged. The session manager records
 * operations in a batch during a loop turn and commits once; completions
 * (e.g. "now send this PUBACK") run after the commit with its status.
 *
 * Not for: packets, sockets or MQTT semantics (this module never sees a
 * packet), and not for LMDB types: no MDB_val, MDB_txn or MDB_* code ever
 * leaves storage/. Every string goes in as a (pointer, length) view that is
 * copied before the call returns, and every read copies data out.
 *
 * Threading: one thread per struct store. Other processes (solctl) may open
 * the same directory read-only at the same time; LMDB readers never block the
 * writer.
 *
 * On-disk layout (named LMDB databases; integers in keys are big-endian so a
 * cursor walks them in numeric order; client ids and topics never contain
 * 0x00 - the codec rejects U+0000 [MQTT-1.5.3-2] - so 0x00 separates key parts
 * and sorts a client's records before any longer client id's):
 *   meta      ASCII name          -> schema version, store id, id high-water, counters
 *   sessions  client id           -> session record (struct store_session): expiry,
 *                                    online flag, will with its delay and properties
 *   subs      client 00 filter    -> subscription options (QoS, No Local, Retain As
 *                                    Published, Retain Handling), Subscription Identifier
 *   retained  topic               -> QoS, stored time, expiry deadline, properties, payload
 *   messages  msg id (u64)        -> QoS, retain, expiry deadline, topic, properties,
 *                                    payload (one body per message)
 *   refs      msg id (u64)        -> reference count (u32)
 *   queues    client 00 seq (u64) -> msg id, QoS, delivery state, packet id, RETAIN of
 *                                    this delivery, Subscription Identifiers
 *   qos2in    client 00 pkt id (u16) -> time received
 *   groupq    group 00 seq (u64)  -> msg id, QoS, state QUEUED, packet id 0: a
 *             shared-subscription group's queue ("$share/GROUP/FILTER" is the
 *             group), holding references like a client's queue (groupq.c)
 *   bridge_queues  bridge 00 seq (u64) -> msg id, QoS, delivery state, packet id, flags
 *   bridge_qos2in  bridge 00 pkt id (u16) -> time received
 * groupq and the two bridge databases came during schema version 1 without
 * changing it: a read-write open creates them when they are missing (a store
 * written before them), a read-only open (solctl) reads them as empty.
 * Bridge queues reference message bodies like client queues do, and count in
 * the same reference counts.
 * Records written by schema 1 (MQTT 3.1.1 only) are a prefix of these: a
 * record carries its MQTT 5 part only when it has one (records.c says how
 * each tells), so a 3.1.1 workload writes exactly what it wrote before.
 * Schema 1 stores are upgraded in place on their first read-write open
 * (upgrade.c). Times are unix seconds of the broker's clock (see the session
 * manager: a wall clock that does not jump while the broker runs). Properties
 * are MQTT 5 property blocks without their length prefix, stored as bytes:
 * storage never parses them.
 * Reference counts live in their own small database: an ack changes one
 * 4-byte value on a small page instead of copy-on-writing a message body of up
 * to 256 MB (LMDB rewrites a whole value, overflow pages included, on update).
 *
 * Keys: LMDB keys are limited to store_max_key_len() bytes (511 with Debian's
 * liblmdb). Storage does not hash long keys; it rejects them cleanly with
 * STORE_ERR_KEY_TOO_LONG before anything is recorded, and the batch stays
 * usable. The broker turns that into a refused CONNECT (identifier rejected),
 * a SUBACK failure (0x80) for that filter, or a retained message not stored.
 * Limits: client id <= store_max_client_id_len() (max key - 9: the queue key
 * is client 00 seq), client id + 1 + filter <= max key, retained topic <= max
 * key. Message topics and will topics are values: up to 65535 bytes.
 */
#ifndef SOL_STORE_H
#define SOL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;
struct store_batch;

/* ---- Errors ------------------------------------------------------------ */

/* Return codes: 0 for success, -ENOMEM for allocation failure, or one of these.
 * They are far from errno values so both fit in one int. */
enum store_error {
    STORE_OK = 0,
    STORE_ERR_FULL = -2001,         /* map at its maximum size, or the disk is full */
    STORE_ERR_KEY_TOO_LONG = -2002, /* a client id, filter or topic exceeds the key limit */
    STORE_ERR_INVALID = -2003,      /* bad argument: empty id, 0x00 in a key, bad QoS/state */
    STORE_ERR_NOT_FOUND = -2004,    /* no such record */
    STORE_ERR_EXISTS = -2005,       /* queue append over an existing (client, seq) */
    STORE_ERR_SCHEMA = -2006,       /* the store was written by an unknown schema version */
    STORE_ERR_CORRUPT = -2007,      /* the file is not a valid LMDB file or a record is bad */
    STORE_ERR_NOT_A_STORE = -2008,  /* the directory holds something that is not a Sol store */
    STORE_ERR_LOCKED = -2009,       /* another process has the store open for writing */
    STORE_ERR_READ_ONLY = -2010,    /* a write on a store opened read_only */
    STORE_ERR_CANCELED = -2011,     /* the batch was discarded before commit */
    STORE_ERR_IO = -2012,           /* any other I/O or LMDB failure (see the log) */
    STORE_ERR_FATAL = -2013,        /* a write failed so that no retry can be trusted (EIO,
                                       MDB_PANIC): stop; a restart recovers the last commit */
};

/* A static, one-line description of any code above (or a negated errno). */
const char *store_strerror(int code);

/* ---- Open and close ---------------------------------------------------- */

enum store_sync {
    STORE_SYNC_FSYNC = 0,  /* commit returns after the data and meta page are on disk:
                              survives power loss */
    STORE_SYNC_NOSYNC = 1, /* commit returns after its data pages are on disk, its meta page
                              not (MDB_NOMETASYNC): survives kill -9; a power cut loses at most
                              the last commit and never corrupts the store. store_flush()
                              (periodically and at shutdown) syncs the meta page */
};

struct store_options {
    const char *dir;           /* data directory; created (mode 0700) if missing */
    enum store_sync sync;      /* default STORE_SYNC_FSYNC */
    uint64_t initial_map_size; /* bytes; 0 = 64 MiB. An existing larger map is kept */
    uint64_t max_map_size;     /* bytes; the map never grows past it; 0 = 16 GiB */
    bool read_only;            /* for solctl: no writes, no locks taken, nothing created */
    bool check_full;           /* run store_check() before returning and refuse a store with
                                  problems (`sol --check-store`; reads every record) */
};

/* Fills *opts with the defaults above and dir = "./sol-data". */
void store_options_init(struct store_options *opts);

/*
 * Opens (or creates) the store in opts->dir. opts is borrowed for the call.
 *
 * Directory rule: a directory that is missing, or exists and is empty, gets a
 * new store (read-write only; read_only gives STORE_ERR_NOT_A_STORE). A
 * directory with data.mdb is opened. A directory with other files but no
 * data.mdb, or a data.mdb without Sol's meta database, is STORE_ERR_NOT_A_STORE.
 * A data.mdb that is not valid LMDB is STORE_ERR_CORRUPT; an unknown schema
 * version is STORE_ERR_SCHEMA. All three change nothing on disk (a lock file
 * this call created is removed again).
 *
 * A read-write open takes an exclusive flock on data.mdb (a second broker on
 * the same directory gets STORE_ERR_LOCKED) and clears stale reader slots left
 * by killed processes (mdb_reader_check). It restores the message-id counter.
 * It fsyncs the directory (and, when it made the directory, its parent), so a
 * power cut cannot lose data.mdb's directory entry.
 *
 * Damage: any open refuses a data.mdb shorter than its meta page says. A
 * read-write open also checks a bounded sample (verify.c: every database's
 * first, last and random records, the free-page list's head, a test write),
 * in O(probes x tree depth) whatever the store's size; check_full adds the
 * whole store_check(). A damaged store is STORE_ERR_CORRUPT with err naming
 * the file, what is wrong and `solctl check`.
 *
 * Returns 0 and *out (owned by the caller: store_close()), or a negative code
 * with a one-line reason in err (err_len bytes, always NUL-terminated) and
 * *out set to NULL.
 */
int store_open(const struct store_options *opts, struct store **out, char *err, size_t err_len);

/* Flushes (read-write stores) and closes. Batches must be committed or
 * discarded first. store_close(NULL) does nothing. */
void store_close(struct store *store);

/*
 * Forces committed data to disk (mdb_env_sync with force). In nosync mode the
 * broker calls it periodically and at shutdown; in fsync mode it is cheap.
 * Returns 0, STORE_ERR_READ_ONLY, STORE_ERR_FULL or STORE_ERR_IO.
 */
int store_flush(struct store *store);

/* The largest key LMDB accepts here (mdb_env_get_maxkeysize, 511 by default). */
size_t store_max_key_len(const struct store *store);

/* The longest client id the store accepts: store_max_key_len() - 9. */
size_t store_max_client_id_len(const struct store *store);

/*
 * Hands out the next message id: monotonic, never 0, never repeated across
 * restarts (each commit persists the high-water mark in meta in the same
 * transaction, and open restores it). Ids handed out in a batch that fails are
 * simply skipped. Never fails.
 */
uint64_t store_next_message_id(struct store *store);

/* ---- Records ----------------------------------------------------------- */

/* A borrowed byte view. Client ids and topics must not contain 0x00. */
struct store_bytes {
    const uint8_t *data;
    size_t len;
};

/* The Session Expiry Interval "never" (MQTT 5; 3.1.1 persistent sessions). */
#define STORE_EXPIRY_NEVER UINT32_MAX

/* A session record: what a session needs to survive a restart. */
struct store_session {
    bool clean_session;      /* [MQTT-3.1.2-6]; the broker only stores clean=0 in practice */
    bool is_online;          /* a client was connected when this was written: after a crash,
                                its connection ended abnormally (its will is due) */
    uint8_t protocol_level;  /* 3 (MQIsdp), 4 (MQTT 3.1.1) or 5 */
    uint64_t last_seen_s;    /* unix seconds of the last disconnect (or connect) */
    uint32_t expiry_s;       /* Session Expiry Interval: the session ends this long after
                                last_seen_s while offline; STORE_EXPIRY_NEVER = never; 0 = at
                                the end of its connection (a record only while connected) */
    uint16_t next_packet_id; /* next outgoing packet id to try (1..65535) */
    bool has_will;           /* the will fields below are meaningful only if true */
    struct store_bytes will_topic;
    struct store_bytes will_payload;
    struct store_bytes will_props; /* MQTT 5 will properties (without Will Delay Interval) */
    uint8_t will_qos;              /* 0..2 */
    bool will_retain;
    uint32_t will_delay_s; /* Will Delay Interval */
    uint64_t will_at_s;    /* offline: when the waiting will is published; 0: none waits */
};

/* A message body: stored once per published message, however many queues. */
struct store_message {
    struct store_bytes topic; /* 1..65535 bytes */
    struct store_bytes payload;
    struct store_bytes props; /* MQTT 5 properties forwarded with it (may be empty) */
    uint64_t expiry_at_s;     /* Message Expiry: dropped if not sent by then; 0 = never */
    uint8_t qos;              /* 0..2: the QoS it was published with */
    bool retain;
};

/* A retained message for one topic. */
struct store_retained {
    struct store_bytes topic;
    struct store_bytes payload; /* empty in index-only reads; payload_len is still set */
    struct store_bytes props;   /* MQTT 5 properties (may be empty) */
    uint32_t payload_len;
    uint8_t qos;
    uint64_t stored_at_s; /* unix seconds */
    uint64_t expiry_at_s; /* Message Expiry: gone after it; 0 = never */
};

/* Delivery state of a queue entry: the offline queue and the inflight window. */
enum store_queue_state {
    STORE_QUEUED = 0,          /* not sent yet (offline queue, or waiting for window space) */
    STORE_SENT = 1,            /* PUBLISH sent with packet_id; awaiting PUBACK or PUBREC */
    STORE_PUBREC_RECEIVED = 2, /* QoS 2: PUBREC received, PUBREL sent; awaiting PUBCOMP */
};

/* One entry of a client's or a bridge's queue. (No DUP flag: any entry in
 * state SENT is resent with DUP=1 after a reconnect [MQTT-4.4.0-1].) */
struct store_queue_entry {
    uint64_t msg_id;
    uint8_t qos;                  /* delivery QoS: min(published, granted), 1 or 2 */
    enum store_queue_state state; /* STORE_QUEUED has packet_id 0 */
    uint16_t packet_id;
    bool retain;               /* RETAIN of this delivery, besides the message's own flag: Retain
                                  As Published (client queues), the forwarded copy's (bridge
                                  queues) */
    size_t sub_id_count;       /* MQTT 5 Subscription Identifiers this delivery carries (client
                                  queues only) */
    const uint32_t *sub_ids;   /* to write: sub_id_count values (copied) */
    const uint8_t *sub_ids_be; /* as read: a view of them; get each with store_queue_sub_id() */
};

/* Most Subscription Identifiers one queue entry keeps. */
#define STORE_SUB_IDS_MAX 255

/* The i-th Subscription Identifier of e (i < e->sub_id_count), written or read. */
uint32_t store_queue_sub_id(const struct store_queue_entry *e, size_t i);

/* ---- Batches ----------------------------------------------------------- */

/*
 * A batch is a recorded list of operations (an op log in memory that owns
 * copies of its keys and values) plus a list of completions. Nothing touches
 * LMDB until store_batch_commit(), which applies every op in ONE write
 * transaction. On MDB_MAP_FULL the commit aborts, grows the map (no
 * transaction open), replays the op log and retries once; if it is still full,
 * or the map is at its maximum, the batch fails with STORE_ERR_FULL and
 * nothing of it is written. The store stays usable.
 *
 * Sticky error: when an op cannot be recorded for lack of memory (-ENOMEM),
 * that op and all later ops are no-ops and the commit reports the first
 * failure. Argument errors (STORE_ERR_INVALID, STORE_ERR_KEY_TOO_LONG) are
 * returned by the op, which is not recorded, and do NOT poison the batch: the
 * broker refuses that one client or filter and carries on.
 */

/* Completion: runs exactly once, after the commit, with status 0 (the batch is
 * durable per the sync mode) or a negative code (nothing of the batch was
 * written: send no ack). It may start a new batch, but not commit the batch it
 * belongs to. */
typedef void (*store_done_fn)(void *arg, int status);

/* Starts an empty batch on store (borrowed; must outlive the batch). Returns
 * NULL on allocation failure. Owned by the caller until store_batch_commit()
 * or store_batch_discard(), which free it. */
struct store_batch *store_batch_new(struct store *store);

/*
 * Adds a completion. Completions run in the order added. Returns 0 (fn will
 * run exactly once), or -ENOMEM / the batch's sticky error: fn will never run
 * (libuv's rule), and a -ENOMEM here also poisons the batch.
 */
int store_batch_on_commit(struct store_batch *batch, store_done_fn fn, void *arg);

/*
 * Quotas before records: reserves room for a decision's records (bytes: the
 * largest value it writes, e.g. a message body; records: how many small
 * records come with it) before any of them is recorded. Returns 0, or
 * STORE_ERR_FULL when the store could not take them and still keep its
 * headroom for deletes: nothing is reserved and the batch stays usable, so
 * the caller refuses that one client. Deletes and updates need no
 * reservation: the headroom is theirs, so a full store can always drain.
 */
int store_batch_reserve(struct store_batch *batch, size_t bytes, size_t records);

/* True once a write failed fatally (STORE_ERR_FATAL): nothing more is written. */
bool store_has_failed(const struct store *store);

/* Makes the batch fail (sticky err, as a failed op would; NULL: nothing): its commit writes
 * nothing and runs the completions with err. For callers that could not
 * record what they need to undo a change if the commit failed. */
void store_batch_fail(struct store_batch *batch, int err);

/* True if the batch has no recorded operations (completions don't count). */
bool store_batch_is_empty(const struct store_batch *batch);

/*
 * Commits the batch: applies all ops in one write transaction (growing the map
 * if needed, see above), then runs the completions in order with the result,
 * then frees the batch. A batch with no ops and no error runs its completions
 * with 0 without opening a transaction. Returns the status the completions
 * got: 0, STORE_ERR_FULL, STORE_ERR_NOT_FOUND (queue append of an unknown
 * message), STORE_ERR_EXISTS, STORE_ERR_READ_ONLY, STORE_ERR_IO, -ENOMEM.
 * The batch is freed on every path.
 */
int store_batch_commit(struct store_batch *batch);

/* Frees the batch without writing anything; completions run with
 * STORE_ERR_CANCELED. store_batch_discard(NULL) does nothing. */
void store_batch_discard(struct store_batch *batch);

/*
 * The storage thread (committer.c): commits one batch at a time off the
 * caller's thread, so the caller goes on while the disk syncs. The owner
 * (the thread that opened the store and calls everything else) starts it,
 * submits, and collects; completions run on the owner, in
 * store_commit_collect(). notify runs on the storage thread when a batch
 * finished and must be safe there (ev_async_send is). Returns 0, -errno or
 * STORE_ERR_READ_ONLY.
 */
typedef void (*store_notify_fn)(void *arg);
int store_committer_start(struct store *store, store_notify_fn notify, void *arg);

/* Fuzzing and tests: the same protocol without a thread. A batch handed
 * over stays in flight until store_commit_collect(wait = true) commits it on
 * the caller; collect without wait leaves it there. Returns 0, -ENOMEM or
 * STORE_ERR_READ_ONLY. */
int store_committer_start_manual(struct store *store);

/* Collects (waiting) what is in flight and joins the thread. Safe without
 * a thread. store_close() calls it. */
void store_committer_stop(struct store *store);

/* store_batch_commit_async() handed a batch to the thread. */
#define STORE_COMMIT_STARTED 1

/*
 * Hands batch to the storage thread and returns STORE_COMMIT_STARTED; the
 * batch is the store's from here. A batch with nothing to write, a failed
 * batch or store, or a store without a thread is committed here instead, as
 * store_batch_commit() does (its status is returned). STORE_ERR_INVALID (the
 * batch untouched) while another one is in flight.
 */
int store_batch_commit_async(struct store_batch *batch);

/* A batch is in flight: submitted and not collected. */
bool store_commit_in_flight(const struct store *store);

/*
 * If the batch in flight finished (wait: once it has), runs its completions
 * here and returns their status, as store_batch_commit() would; otherwise
 * STORE_COMMIT_STARTED (also when it was handed over again after growing the
 * map). STORE_ERR_INVALID if nothing is in flight.
 */
int store_commit_collect(struct store *store, bool wait);

/*
 * Operations. Each copies its arguments (nothing is borrowed after it returns)
 * and returns 0, -ENOMEM (sticky), or STORE_ERR_INVALID / STORE_ERR_KEY_TOO_LONG
 * (not recorded, not sticky). After a sticky error every op returns it.
 */

/* Creates or replaces client_id's session record. */
int store_batch_put_session(struct store_batch *batch, struct store_bytes client_id,
                            const struct store_session *session);

/* Deletes client_id's session with all its subscriptions, queue entries
 * (dropping their message references, so bodies go with their last reference)
 * and incoming QoS 2 records, in the same transaction. A missing session is
 * not an error. */
int store_batch_delete_session(struct store_batch *batch, struct store_bytes client_id);

/* Creates or replaces the subscription (client_id, filter): options is the
 * MQTT 5 subscription options byte (QoS in bits 0-1, No Local bit 2, Retain
 * As Published bit 3, Retain Handling bits 4-5; 3.1.1: the granted QoS);
 * sub_id its Subscription Identifier (0: none). */
int store_batch_put_subscription(struct store_batch *batch, struct store_bytes client_id,
                                 struct store_bytes filter, uint8_t options, uint32_t sub_id);

/* Deletes the subscription (client_id, filter); missing is not an error. */
int store_batch_delete_subscription(struct store_batch *batch, struct store_bytes client_id,
                                    struct store_bytes filter);

/* Creates or replaces the retained message of r->topic (its own copy of the
 * payload and properties, independent of the messages database); payload_len
 * is taken from r->payload. */
int store_batch_put_retained(struct store_batch *batch, const struct store_retained *r);

/* Deletes topic's retained message; missing is not an error. */
int store_batch_delete_retained(struct store_batch *batch, struct store_bytes topic);

/*
 * Stores a message body under msg_id (from store_next_message_id()) with a
 * reference count of 0. Queue appends in the same or later batches reference
 * it. Garbage rule: a message that no queue entry references when its batch
 * commits is not kept (e.g. all its subscribers were QoS 0 or clean).
 */
int store_batch_put_message(struct store_batch *batch, uint64_t msg_id,
                            const struct store_message *msg);

/*
 * Appends (client_id, seq) -> entry and adds one reference to entry->msg_id.
 * seq must be above the client's current last seq (see store_session_info).
 * At commit: an unknown message fails the batch with STORE_ERR_NOT_FOUND, an
 * existing (client_id, seq) with STORE_ERR_EXISTS (both are caller bugs; the
 * reference counts would otherwise drift).
 */
int store_batch_queue_append(struct store_batch *batch, struct store_bytes client_id, uint64_t seq,
                             const struct store_queue_entry *entry);

/* Sets the delivery state and packet id of (client_id, seq); the message
 * reference is unchanged. A missing entry (e.g. deleted earlier in the same
 * batch) is ignored. */
int store_batch_queue_update(struct store_batch *batch, struct store_bytes client_id, uint64_t seq,
                             enum store_queue_state state, uint16_t packet_id);

/* Deletes (client_id, seq) and drops its message reference; the body is
 * deleted with its last reference. A missing entry is ignored. */
int store_batch_queue_delete(struct store_batch *batch, struct store_bytes client_id, uint64_t seq);

/*
 * Incoming QoS 2: the broker delivers an incoming QoS 2 PUBLISH on receipt
 * (routing it to queues in the same batch) and remembers only "packet id X of
 * this client was received, PUBREL pending", so a resent PUBLISH with that id
 * is not delivered twice [MQTT-4.3.3-2]. The record holds the time received
 * and no message reference (nothing to garbage-collect). Put on PUBLISH,
 * delete on PUBREL. Deleting a missing record is not an error.
 */
int store_batch_put_qos2_in(struct store_batch *batch, struct store_bytes client_id,
                            uint16_t packet_id, uint64_t received_at_s);
int store_batch_delete_qos2_in(struct store_batch *batch, struct store_bytes client_id,
                               uint16_t packet_id);

/* Sets the named u64 counter in meta (name: 1..64 bytes of [a-z0-9_.]). */
int store_batch_set_counter(struct store_batch *batch, const char *name, uint64_t value);

/* ---- Reads -------------------------------------------------------------- */

/*
 * Each read runs in its own read-only transaction and copies records into a
 * scratch buffer owned by storage: the views a callback receives are valid
 * only until the callback returns. A callback returns 0 to continue or any
 * other value to stop; the read then returns that value. Otherwise reads
 * return 0 (or a count where stated) or a negative code (STORE_ERR_CORRUPT for
 * a record that does not decode, STORE_ERR_IO, -ENOMEM). A callback must not
 * call any other function on the same store: LMDB allows one read transaction
 * per thread, so collect what you need and read it after the walk.
 */

/* A session as loaded at start-up. */
struct store_session_info {
    struct store_bytes client_id;
    struct store_session session;
    bool has_queue;    /* the client has queue entries */
    uint64_t last_seq; /* the highest queue seq if has_queue, else 0: continue above it */
};
typedef int (*store_session_fn)(void *arg, const struct store_session_info *info);

/* Calls fn for every session in client id order. Cost: one cursor walk over
 * sessions plus one cursor seek per session in queues - it never scans the
 * queues, so start-up time does not grow with queue depth. */
int store_sessions_foreach(struct store *store, store_session_fn fn, void *arg);

/* Calls fn (which must return 0) for client_id's session if there is one.
 * Returns 1 (found), 0 (no such session) or a negative code. */
int store_get_session(struct store *store, struct store_bytes client_id, store_session_fn fn,
                      void *arg);

/* options and sub_id as store_batch_put_subscription() stored them. */
typedef int (*store_subscription_fn)(void *arg, struct store_bytes client_id,
                                     struct store_bytes filter, uint8_t options, uint32_t sub_id);

/* Calls fn for every subscription of client_id, or of every client if
 * client_id is NULL, in (client, filter) order. */
int store_subscriptions_foreach(struct store *store, const struct store_bytes *client_id,
                                store_subscription_fn fn, void *arg);

typedef int (*store_retained_fn)(void *arg, const struct store_retained *retained);

/* Calls fn for every retained message in topic order, payload included. */
int store_retained_foreach(struct store *store, store_retained_fn fn, void *arg);

/* Index-only: as above but payload is empty (payload_len still set), so the
 * broker can rebuild its retained index without reading bodies. */
int store_retained_index_foreach(struct store *store, store_retained_fn fn, void *arg);

/* Calls fn for every retained message whose topic starts with prefix (every
 * one when prefix is empty) and sorts after `after` (empty: from the
 * start), in topic order, payload included: a wildcard SUBSCRIBE reads only
 * the part of the store its literal levels allow, a page at a time. One read
 * transaction; committed state only. fn returns 0 to go on, > 0 to stop
 * (the scan then returns 0) or < 0 (returned). */
int store_retained_scan(struct store *store, struct store_bytes prefix, struct store_bytes after,
                        store_retained_fn fn, void *arg);

/* The number of retained messages committed. */
int store_retained_count(struct store *store, uint64_t *out);

/* 1 if topic has a committed retained message, 0 if not, or a negative
 * STORE_ERR_* code. Reads no payload. */
int store_has_retained(struct store *store, struct store_bytes topic);

/* Copies topic's retained message into one allocation: *out (views point
 * inside it) is owned by the caller and released with free(). Returns 0 or
 * STORE_ERR_NOT_FOUND, -ENOMEM, ... */
int store_get_retained(struct store *store, struct store_bytes topic, struct store_retained **out);

/* One queue entry with its message, as read back. */
struct store_queue_item {
    struct store_bytes client_id;
    uint64_t seq;
    struct store_queue_entry entry;
    const struct store_message *message; /* NULL if the body is missing (store_check reports
                                            it) or the read was index-only */
    uint32_t refcount;                   /* the message's reference count (0 if missing) */
};
typedef int (*store_queue_fn)(void *arg, const struct store_queue_item *item);

/*
 * Reads up to max_entries entries of client_id's queue with seq >= from_seq,
 * in seq order, each with its message body. Returns the number of entries
 * passed to fn (>= 0; fewer than max_entries means the end was reached), a
 * callback's non-zero value, or a negative code. Memory use is bounded by one
 * entry at a time: continue from the last seq + 1 for the next batch.
 */
int store_queue_read(struct store *store, struct store_bytes client_id, uint64_t from_seq,
                     size_t max_entries, store_queue_fn fn, void *arg);

/* Index-only walk of every queue entry of client_id (or all clients if NULL),
 * without message bodies (item->message is NULL; refcount is set). For solctl
 * and store_check. */
int store_queues_foreach(struct store *store, const struct store_bytes *client_id,
                         store_queue_fn fn, void *arg);

/* Copies message msg_id into one allocation: *out (views point inside it) is
 * owned by the caller and released with free(); *refcount (optional) gets its
 * reference count. Returns 0, STORE_ERR_NOT_FOUND, -ENOMEM, ... */
int store_get_message(struct store *store, uint64_t msg_id, struct store_message **out,
                      uint32_t *refcount);

typedef int (*store_message_fn)(void *arg, uint64_t msg_id, const struct store_message *msg,
                                uint32_t refcount);

/* Calls fn for every stored message in id order; with_payload false gives an
 * empty payload (cheaper: overflow pages are not copied). */
int store_messages_foreach(struct store *store, bool with_payload, store_message_fn fn, void *arg);

typedef int (*store_qos2_fn)(void *arg, struct store_bytes client_id, uint16_t packet_id,
                             uint64_t received_at_s);

/* Calls fn for every incoming QoS 2 record of client_id (all clients if NULL). */
int store_qos2_foreach(struct store *store, const struct store_bytes *client_id, store_qos2_fn fn,
                       void *arg);

/* Reads the named counter (STORE_ERR_NOT_FOUND if never set). */
int store_get_counter(struct store *store, const char *name, uint64_t *value);

/* ---- Inspection (solctl) ----------------------------------------------- */

struct store_db_stats {
    const char *name; /* static */
    uint64_t entries;
    uint64_t branch_pages, leaf_pages, overflow_pages;
    uint32_t depth;
};

enum { STORE_DB_COUNT = 11 };

struct store_stats {
    uint32_t schema_version;
    uint32_t upgraded_from;  /* the schema this store was upgraded from, 0: never upgraded */
    uint8_t store_id[16];    /* random, made at creation */
    uint64_t message_id_hwm; /* highest message id ever handed out and committed */
    uint64_t created_at_s;
    uint32_t page_size;
    uint64_t map_size;     /* bytes currently mapped */
    uint64_t map_used;     /* bytes in use: (last page + 1) * page size */
    uint64_t max_map_size; /* the configured maximum (this process's option) */
    uint32_t max_readers, readers_used;
    struct store_db_stats dbs[STORE_DB_COUNT];
};

/* Fills *out from one read transaction. */
int store_stats(struct store *store, struct store_stats *out);

/* A problem found by store_check(): one line of text, valid during the call. */
typedef void (*store_problem_fn)(void *arg, const char *problem);

/*
 * Verifies the store's invariants in one read transaction: LMDB's free-page
 * list names only pages inside the file; schema version and meta records; every key and value
 * decodes; every queue entry's message exists; every reference count equals the number of queue
 * entries pointing at the message; no message without references; no subscription, queue entry or
 * QoS 2 record without its session; no message id above the high-water mark. Calls fn (if not NULL)
 * once per problem. Returns the number of problems (0 = consistent) or a negative code if the check
 * could not run. Memory: one hash of message ids seen in queues (bounded by the messages).
 */
int store_check(struct store *store, store_problem_fn fn, void *arg);

/* ---- Backup (backup.c) -------------------------------------------------- */

/*
 * Writes a consistent copy of store (as of one commit; the writer keeps
 * going) into dir as dir/data.mdb, creating dir if needed; dir must not hold
 * a store already. compact leaves free pages out. The copy is fsynced (file
 * and directory) before returning. Returns 0, or a code with a one-line
 * reason in err. Works on a store opened read-only.
 */
int store_backup(struct store *store, const char *dir, bool compact, char *err, size_t err_len);

/* ---- Queue totals (queue_stats.c) -------------------------------------- */

typedef int (*store_queue_stats_fn)(void *arg, struct store_bytes client_id, uint64_t queued_count,
                                    uint64_t queued_bytes);

/*
 * Calls fn once per client that has entries in state STORE_QUEUED, in client
 * order, with their number and their messages' payload bytes (a missing
 * message counts 0 bytes). One read transaction; the rules of the reads above
 * apply (views valid during the call, fn must not call the store). Cost: one
 * walk over the queues and a header lookup per QUEUED entry, no payload read.
 * Returns 0, fn's non-zero value, or a negative code.
 */
int store_queue_stats_foreach(struct store *store, store_queue_stats_fn fn, void *arg);

/* ---- Bridges (bridge.c) ------------------------------------------------ */

/*
 * A bridge's outgoing queue: what local publishes left through its `out`
 * topics, in seq order, until the remote broker acknowledged them. Keyed by
 * the bridge's name (store_check_client_id()'s rules: 1..max client id
 * bytes, no 0x00), which has no session record: the queue lives as long as
 * it has entries. Entries reference message bodies as client queue entries
 * do (one body per message, however many queues hold it). The same rules as
 * the client queue ops above: seq above the bridge's last one, an unknown
 * message fails the commit with STORE_ERR_NOT_FOUND, an existing seq with
 * STORE_ERR_EXISTS, update and delete of a missing entry are ignored.
 */
int store_batch_bridge_append(struct store_batch *batch, struct store_bytes bridge, uint64_t seq,
                              const struct store_queue_entry *entry);
int store_batch_bridge_update(struct store_batch *batch, struct store_bytes bridge, uint64_t seq,
                              enum store_queue_state state, uint16_t packet_id);
int store_batch_bridge_delete(struct store_batch *batch, struct store_bytes bridge, uint64_t seq);

/* Incoming QoS 2 from the bridge's remote broker: packet id received,
 * PUBREL pending (as store_batch_put_qos2_in() for a client). */
int store_batch_put_bridge_qos2_in(struct store_batch *batch, struct store_bytes bridge,
                                   uint16_t packet_id, uint64_t received_at_s);
int store_batch_delete_bridge_qos2_in(struct store_batch *batch, struct store_bytes bridge,
                                      uint16_t packet_id);

/*
 * As store_queue_read() for the bridge's queue: up to max_entries entries
 * with seq >= from_seq, each with its message body (item->client_id is the
 * bridge's name). Returns the count passed to fn, a callback's non-zero
 * value, or a negative code.
 */
int store_bridge_queue_read(struct store *store, struct store_bytes bridge, uint64_t from_seq,
                            size_t max_entries, store_queue_fn fn, void *arg);

/* Index-only walk (item->message NULL) of bridge's queue, or of every
 * bridge's if bridge is NULL, in (bridge, seq) order. For solctl. */
int store_bridge_queues_foreach(struct store *store, const struct store_bytes *bridge,
                                store_queue_fn fn, void *arg);

/* What a bridge's queue holds, read once at start-up. */
struct store_bridge_queue_info {
    uint64_t count;     /* entries, whatever their state */
    uint64_t bytes;     /* their messages' payload bytes */
    uint64_t first_seq; /* the lowest seq (0 when empty) */
    uint64_t last_seq;  /* the highest seq (0 when empty): append above it */
};

/* Fills *info for bridge. Cost: one walk over that queue and a message
 * header lookup per entry (payloads are not read). Returns 0 or a code. */
int store_bridge_queue_info(struct store *store, struct store_bytes bridge,
                            struct store_bridge_queue_info *info);

typedef int (*store_bridge_name_fn)(void *arg, struct store_bytes bridge, uint64_t count);

/* Calls fn once per bridge that has queue entries, with their number, in
 * name order (so the broker can name queues of bridges no longer
 * configured). Same rules as the reads above. */
int store_bridge_names_foreach(struct store *store, store_bridge_name_fn fn, void *arg);

/* Calls fn for every incoming QoS 2 record of bridge (all bridges if NULL);
 * the client_id argument is the bridge's name. */
int store_bridge_qos2_foreach(struct store *store, const struct store_bytes *bridge,
                              store_qos2_fn fn, void *arg);

/* ---- Shared-subscription group queues (groupq.c) ----------------------- */

/*
 * A group ("$share/GROUP/FILTER", the whole shared filter as the client sent
 * it) whose members are all offline persistent sessions keeps the messages
 * routed to it in its own queue until a member connects and takes them. An
 * entry references its message body like a client's queue entry (the
 * reference counts and store_check() count both), and is always in state
 * STORE_QUEUED: a message leaves the group queue when it is handed to a
 * member (deleted here, appended to that member's queue in the same batch).
 * Group names obey the client id rules (1..store_max_client_id_len() bytes,
 * no 0x00). The groupq database is new in this build but needs no schema
 * change: a read-write open of an older store creates it empty; a read-only
 * open of a store that lacks it sees no group queues.
 */

/* Appends (group, seq) -> (msg_id, qos, retain) with one reference on
 * msg_id; seq above the group's last (store_group_queue_stats_foreach);
 * retain: the RETAIN the message was published with (the entry's `retain`
 * as read back), which a member with Retain As Published gets. Errors as
 * store_batch_queue_append(). */
int store_batch_group_queue_append(struct store_batch *batch, struct store_bytes group,
                                   uint64_t seq, uint64_t msg_id, uint8_t qos, bool retain);

/* Deletes (group, seq) and drops its reference; a missing entry is ignored. */
int store_batch_group_queue_delete(struct store_batch *batch, struct store_bytes group,
                                   uint64_t seq);

/* Deletes the whole queue of group (the group ended), dropping references. */
int store_batch_delete_group_queue(struct store_batch *batch, struct store_bytes group);

/* As store_queue_read(), for group's queue (item->client_id is the group). */
int store_group_queue_read(struct store *store, struct store_bytes group, uint64_t from_seq,
                           size_t max_entries, store_queue_fn fn, void *arg);

/* Index-only walk of group's queue (every group if NULL), as
 * store_queues_foreach(); for solctl. */
int store_group_queues_foreach(struct store *store, const struct store_bytes *group,
                               store_queue_fn fn, void *arg);

typedef int (*store_group_stats_fn)(void *arg, struct store_bytes group, uint64_t last_seq,
                                    uint64_t count, uint64_t bytes);

/* Calls fn once per group with a non-empty queue (in group order, or only
 * for `group` if not NULL) with its highest seq, its entry count and their
 * payload bytes. One read transaction, one walk over the entries (no
 * payload is read). Returns 0, fn's non-zero value, or a negative code. */
int store_group_queue_stats_foreach(struct store *store, const struct store_bytes *group,
                                    store_group_stats_fn fn, void *arg);

#endif /* SOL_STORE_H */
