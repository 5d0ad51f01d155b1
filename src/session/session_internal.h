/*
 * session_internal.h - types shared by the session manager's own files
 * (session.c, connect.c, publish.c, deliver.c, subscribe.c, output.c,
 * table.c, msg.c). Nothing outside src/session/ includes it.
 */
#ifndef SOL_SESSION_INTERNAL_H
#define SOL_SESSION_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hashtable.h"
#include "mqtt.h"
#include "retained.h"
#include "session.h"
#include "store.h"

struct store;
struct store_batch;
struct trie;
struct share_index;
struct share_member;

/* ---- Messages: one body per published message, shared by deliveries ---- */

/* A message; topic, room for its QoS 0 PUBLISH header and payload live in
 * the same allocation (see msg_qos0_packet()). */
struct msg {
    uint32_t refs;
    uint32_t qos0_header_len; /* 0 until msg_qos0_packet() built it */
    uint64_t store_id;        /* id in the store's messages db; 0 until stored */
    uint64_t store_batch_gen; /* batch generation the body was put in */
    uint8_t qos;
    bool retain; /* the RETAIN flag deliveries of this body carry; fixed once sent */
    uint16_t topic_len;
    size_t payload_len;
    uint8_t *topic;
    uint8_t *payload;
};

/* Returns a new message with one reference (release with msg_unref()), or NULL. */
struct msg *msg_new(struct mqtt_bytes topic, struct mqtt_bytes payload, uint8_t qos, bool retain);
/* Adds a reference and returns m; msg_ref(NULL) is NULL. */
struct msg *msg_ref(struct msg *m);
/* Drops one reference; frees at zero. msg_unref(NULL) does nothing. */
void msg_unref(struct msg *m);
/* msg_unref() for a session_sink release callback (ref is a struct msg). */
void msg_release(void *ref);
/*
 * The whole QoS 0 PUBLISH of m (fixed header, topic, payload; retain flag
 * m->retain, no DUP, no packet id) as one contiguous span inside m: the
 * header is encoded on the first call into the room msg_new() left just
 * before the payload, then reused, so a QoS 0 fan-out encodes it once and
 * every subscriber's output can reference the same bytes. Valid while m
 * lives. Returns 0, or -EINVAL when m cannot be encoded (*out untouched).
 */
int msg_qos0_packet(struct msg *m, struct mqtt_bytes *out);

/* ---- Sessions by client id: table.c, intrusive (struct session's by_id),
 * on the broker's one keyed hash table ---- */

struct session;

struct table {
    struct hashtable h;
};

/* Allocates nothing; returns 0. */
int table_init(struct table *t);
/* Frees the entries, not the values. */
void table_deinit(struct table *t);
size_t table_count(const struct table *t);
void *table_get(const struct table *t, const uint8_t *key, size_t key_len);
/* Indexes s under its client_id (replacing another session with that id).
 * Returns 0 or -ENOMEM (table unchanged). */
int table_put(struct table *t, struct session *s);
/* Removes key; returns its value or NULL. */
void *table_remove(struct table *t, const uint8_t *key, size_t key_len);
/* Calls fn for every entry; fn must not change the table. */
void table_foreach(const struct table *t, void (*fn)(void *value, void *arg), void *arg);

/* ---- Sessions ---- */

/* A session logs a limit it hits (subscriptions refused, queue drops) at
 * most this often, with the count since its last notice. */
#define LIMIT_LOG_INTERVAL_S 60

/* A subscription as the session remembers it (the trie holds the index):
 * an entry of the session's subs table, keyed by its filter. */
struct sub_entry {
    struct hashtable_node link;
    uint8_t qos;
    uint16_t filter_len;
    uint8_t filter[];
};

enum outgoing_state {
    OUTGOING_SENT = 1,            /* PUBLISH sent; waiting for PUBACK / PUBREC */
    OUTGOING_PUBREC_RECEIVED = 2, /* PUBREL sent; waiting for PUBCOMP */
};

/* One QoS 1/2 delivery in a session's inflight window: in a list in send
 * order, and in a table by packet id, so an ack finds it in O(1). */
struct outgoing {
    struct outgoing *prev, *next;
    struct hashtable_node by_id; /* key: packet_id */
    uint64_t seq;                /* store queue seq (persistent sessions), else 0 */
    uint16_t packet_id;
    uint8_t qos;
    uint8_t state; /* enum outgoing_state */
};

/* A QoS 1/2 delivery waiting for window space (clean sessions only: a
 * persistent session's waiting deliveries live in its store queue). */
struct pending {
    struct pending *next;
    struct msg *msg;
    uint8_t qos;
};

/* An incoming QoS 2 packet id awaiting PUBREL, and where its store record
 * stands (a clean session's ids are STORED at once: it has no record). */
enum qos2_state {
    QOS2_ADDING = 1,    /* its put is in the open batch: a resend is answered after the commit */
    QOS2_STORED = 2,    /* durable */
    QOS2_RELEASING = 3, /* PUBREL seen; its delete is in the open batch */
};
struct qos2_in {
    struct hashtable_node by_id; /* in the session's qos2_ids; key: packet_id */
    uint16_t packet_id;
    uint8_t state; /* enum qos2_state */
};

/* Where a persistent session's own record stands (effects.c). */
enum session_record {
    SESSION_RECORD_ABSENT = 0,  /* not in the store (new, or its first commit failed) */
    SESSION_RECORD_PENDING = 1, /* first put in the open batch */
    SESSION_RECORD_STORED = 2,  /* durable */
};

struct session {
    size_t id_len;
    struct hashtable_node by_id;   /* in mgr->sessions, keyed by client_id */
    struct session_client *client; /* the attached connection, or NULL */
    struct hashtable subs;         /* struct sub_entry by filter: O(1) per filter */

    struct outgoing *inflight, *inflight_tail; /* in send order */
    struct hashtable inflight_ids;             /* struct outgoing by packet id */

    struct pending *queue_head, *queue_tail; /* clean sessions */
    size_t queued_bytes;                     /* payload bytes of the queued_count messages */

    uint64_t last_seq; /* persistent: highest store queue seq used */
    uint64_t read_seq; /* persistent: next queue seq to read from the store */
    struct session *refill_next;

    struct hashtable qos2_ids; /* incoming QoS 2 ids awaiting PUBREL: struct qos2_in */
    struct retained_stream *retained_streams; /* SUBSCRIBEs still sending retained messages */

    uint64_t serial; /* unique per session object: tells it from a later one with its id */
    /* Persistent sessions without a client, oldest last_seen_s first: expiry
     * and the offline count never walk every session. */
    struct session *offline_prev, *offline_next;

    uint64_t last_seen_s; /* unix time of the last connect or disconnect */

    /* Limit notices, at most one per LIMIT_LOG_INTERVAL_S per session. */
    uint64_t sub_refusal_logged_s; /* unix time of the last notice; 0 = none yet */
    uint64_t queue_drop_logged_s;
    uint64_t match_gen;          /* routing: last route that matched this session */
    struct share_member *shares; /* its shared subscriptions' groups (share.c) */

    /* Small fields last, together: an idle session's size is the broker's
     * RSS per idle connection (README, idle_conns). */
    uint32_t inflight_count;
    uint32_t queued_count; /* clean: length of the list; persistent: QUEUED entries in
                              the store (counted at start, then kept up to date) */
    uint32_t sub_refusals; /* subscriptions refused since the last notice */
    uint32_t queue_drops;  /* messages dropped by the queue limits since the last notice */
    uint16_t next_packet_id;
    bool persistent;    /* clean session 0: state kept in the store */
    bool backlog;       /* persistent: the store may hold entries at or after read_seq */
    bool refill_queued; /* on mgr->refill list */
    bool is_offline_listed;
    uint8_t record;      /* persistent: enum session_record */
    uint8_t match_qos;   /* routing: highest granted QoS among matching filters */
    uint8_t client_id[]; /* id_len bytes and a NUL, also usable in log lines */
};

/* ---- Connections, as the session manager sees them ---- */

struct session_client {
    struct session_mgr *mgr;
    void *conn;                      /* the server's handle */
    struct session *sess;            /* after an accepted CONNECT */
    struct msg *will;                /* will message (retain flag = will retain), or NULL */
    char *username;                  /* from CONNECT or the TLS identity; NULL = anonymous */
    const struct session_auth *auth; /* the listener's, or NULL: the broker's */
    uint32_t held_sends;             /* sends of this client waiting for the commit */
    bool connected;
    bool has_identity;    /* username came from the transport */
    bool is_connack_held; /* CONNACK 0 waits for the commit: not accepted yet */
    uint8_t protocol_level;
    char peer[]; /* "ADDRESS:PORT" (or "unknown"), NUL-terminated */
};

/* A send that waits for the turn's commit (it acknowledges durable state). */
struct held_send {
    struct held_send *next;
    struct session_client *client; /* NULL once the client is gone */
    size_t len;
    /* A payload sent after bytes by reference (ref NULL: none); the held
     * send owns one reference on ref until it is released or dropped. */
    struct msg *ref;
    const uint8_t *ref_data;
    size_t ref_len;
    uint8_t bytes[];
};

struct session_mgr {
    struct session_config config;
    struct store *store;
    const struct session_sink *sink;
    struct trie *trie;
    struct share_index *shares; /* shared subscription groups (share.c) */
    struct table sessions;      /* client id -> struct session */
    /* Retained messages live in the store, read when a SUBSCRIBE asks
     * (retained_stream.c); memory holds only those never stored ($SYS). */
    struct retained_index retained_volatile;
    uint64_t retained_stored; /* committed retained messages in the store */
    bool is_retained_changed; /* the open batch changes retained messages */

    struct store_batch *batch; /* the turn's batch, created on first use */
    uint64_t batch_gen;        /* incremented at each commit */
    uint64_t batch_opened_us;  /* monotonic time the open batch was created */
    struct held_send *held_head, *held_tail;
    struct session *refill; /* sessions to top up from the store after the commit */

    uint64_t route_gen;
    struct session **matched; /* scratch for routing */
    size_t matched_cap;

    uint64_t next_serial;
    struct session *offline_head, *offline_tail; /* see struct session */
    size_t offline_count;
    bool is_recovering; /* session_mgr_new() is loading the store */
    bool is_closing;    /* session_mgr_free(): failed batches undo nothing */
    uint64_t auto_id_counter;
    uint64_t dropped_qos0, dropped_queue_full;
    uint64_t refused_store_full;  /* publishes refused: store full */
    uint64_t store_full_logged_s; /* when that was last logged */
    bool has_failed;              /* a commit failed fatally: the broker must stop */
    uint64_t messages_received, messages_sent;
    uint64_t clients_connected;
    uint64_t commits, commit_us_total, commit_us_last, commit_us_max;
    /* Commits per latency bucket (session_commit_bucket_us; the last slot:
     * longer than every bound), summed into cumulative counts when read. */
    uint64_t commit_buckets[SESSION_COMMIT_BUCKETS + 1];
    /* By QoS, for metrics: PUBLISH packets and payload bytes in and out. */
    uint64_t received_qos[3], received_bytes_qos[3];
    uint64_t sent_qos[3], sent_bytes_qos[3];
    /* Sums of every session's inflight_count, queued_count and queued_bytes,
     * kept by session_set_inflight() / session_set_queued() so reading them
     * never walks the sessions. */
    uint64_t inflight_total, queued_total, queued_bytes_total;
    struct session_bridge *bridges; /* bridges.c: every bridge, in the order added */
    uint64_t next_bridge_serial;
    bool has_waiters; /* session_after_commit() was called: commit this turn */
};

/* The only ways a session's window and queue counts change: they keep the
 * manager's totals in step. */
static inline void session_set_inflight(struct session_mgr *mgr, struct session *s, uint32_t count)
{
    mgr->inflight_total = mgr->inflight_total - s->inflight_count + count;
    s->inflight_count = count;
}

static inline void session_set_queued(struct session_mgr *mgr, struct session *s, uint32_t count,
                                      size_t bytes)
{
    mgr->queued_total = mgr->queued_total - s->queued_count + count;
    mgr->queued_bytes_total = mgr->queued_bytes_total - s->queued_bytes + bytes;
    s->queued_count = count;
    s->queued_bytes = bytes;
}

/* output.c: encoding and sending, held behind the batch when it has changes. */
int output_send_packet(struct session_mgr *mgr, struct session_client *c,
                       const struct mqtt_packet *pkt);
int output_send_ack(struct session_mgr *mgr, struct session_client *c, uint8_t type,
                    uint16_t packet_id);
/* The READ gate: may c receive m (the ACL's read check for c's user and
 * client id)? c is never NULL here: a delivery always has a receiver. */
bool output_may_read(const struct session_mgr *mgr, const struct session_client *c,
                     const struct msg *m);
/* output_send_publish() result: the READ gate refused; nothing was sent. */
#define OUTPUT_DENIED 1
/* Sends m to c as a PUBLISH, if the READ gate allows it (the only way a
 * PUBLISH reaches a client). The payload is not copied: the send takes its
 * own reference on m until the bytes are written. Returns 0, OUTPUT_DENIED,
 * -EINVAL (not encodable) or -ENOMEM. */
int output_send_publish(struct session_mgr *mgr, struct session_client *c, struct msg *m,
                        uint8_t qos, uint16_t packet_id, bool dup);
/* Releases (status 0) or drops (and closes their clients) the held sends. */
void output_release_held(struct session_mgr *mgr, int status);
/* Forgets the held sends of a client that is going away. */
void output_forget_client(struct session_mgr *mgr, struct session_client *c);

/* session.c: the turn's batch (NULL on allocation failure). */
struct store_batch *mgr_batch(struct session_mgr *mgr);
bool mgr_batch_has_changes(const struct session_mgr *mgr);
struct session *session_new(struct session_mgr *mgr, const uint8_t *id, size_t id_len,
                            bool persistent);
/* Removes a session everywhere: table, trie, memory; and the store if persistent. */
void session_discard(struct session_mgr *mgr, struct session *s);
int session_add_subscription(struct session_mgr *mgr, struct session *s, struct mqtt_bytes filter,
                             uint8_t qos);
int session_remove_subscription(struct session_mgr *mgr, struct session *s,
                                struct mqtt_bytes filter);
/* Subscriptions of every session, plain and shared. O(1). */
size_t session_subscriptions_total(const struct session_mgr *mgr);
/* O(1): is filter one of s's subscriptions? How many has s? */
bool session_has_subscription(const struct session *s, struct mqtt_bytes filter);
size_t session_subscription_count(const struct session *s);
bool session_is_online(const struct session *s);
/* Incoming QoS 2 ids: add (0 or -ENOMEM), find (NULL if absent), remove. */
int session_qos2_add(struct session *s, uint16_t packet_id, enum qos2_state state);
struct qos2_in *session_qos2_find(struct session *s, uint16_t packet_id);
void session_qos2_remove(struct session *s, uint16_t packet_id);
/* The QoS of s's subscription to filter, or -1 when it has none. */
int session_subscription_qos(struct session *s, struct mqtt_bytes filter);
/* Reads client id's session (record, subscriptions, QoS 2 ids) from the store
 * into memory. Returns 1 (loaded), 0 (not in the store) or a negative code. */
int session_reload(struct session_mgr *mgr, const uint8_t *id, size_t id_len);
/* The offline list (session.c): s leaves it when a client attaches. */
void session_offline_remove(struct session_mgr *mgr, struct session *s);
/* Detaches c from its session (publishing the will first if fire_will);
 * discards a clean session. c itself stays allocated. */
void session_client_detach(struct session_mgr *mgr, struct session_client *c, bool fire_will);
/* Detaches c from its session (will first if fire_will) and leaves the
 * session's fate to the caller (takeover: the new CONNECT decides). */
void session_client_unlink(struct session_mgr *mgr, struct session_client *c, bool fire_will);
struct store_bytes session_store_id(const struct session *s);

/* connect.c */
int connect_handle(struct session_mgr *mgr, struct session_client *c, const struct mqtt_connect *p);
int connect_store_session(struct session_mgr *mgr, struct session *s);

/* publish.c: incoming PUBLISH / PUBREL, routing, retained. */
int publish_handle(struct session_mgr *mgr, struct session_client *c, const struct mqtt_publish *p);
int publish_handle_pubrel(struct session_mgr *mgr, struct session_client *c, uint16_t packet_id);
/* Routes m to every matching session and bridge (whose copies carry the
 * RETAIN flag retain; a full bridge queue drops its copy); returns 0 or a
 * negative code. */
int publish_route(struct session_mgr *mgr, struct msg *m, bool retain);
/* Sets (or with an empty payload clears) topic's retained message; durable
 * records it in the turn's batch. */
int publish_set_retained(struct session_mgr *mgr, struct mqtt_bytes topic,
                         struct mqtt_bytes payload, uint8_t qos, bool durable);
/* The auth settings that apply to c: its listener's, else the broker's. */
struct session_auth client_auth(const struct session_mgr *mgr, const struct session_client *c);
/* True when topic (or filter) has more levels than max_topic_levels. */
bool topic_is_too_deep(const struct session_mgr *mgr, struct mqtt_bytes topic);
enum write_verdict { WRITE_ALLOWED, WRITE_DENIED, WRITE_TOO_DEEP };
/* The WRITE gate, for PUBLISH and wills alike: may client c, whose client id
 * is client_id (its session may not be attached yet), publish on topic?
 * Refuses topics deeper than max_topic_levels, $SYS, and what the ACL denies.
 * Returns an enum write_verdict. */
int publish_write_gate(const struct session_mgr *mgr, const struct session_client *c,
                       const char *client_id, struct mqtt_bytes topic);
/* ACL check for client c (NULL = the broker itself: always allowed). */
bool acl_allows(const struct session_mgr *mgr, const struct session_client *c,
                struct mqtt_bytes topic, unsigned access);

/* effects.c: memory follows the store. Each registers, on the turn's batch,
 * the confirmation or undo of a memory change just made for a store op just
 * recorded. Returns 0, or -ENOMEM: then the change is already undone and the
 * batch failed (nothing of it will be written). */
int effect_qos2_added(struct session_mgr *mgr, struct session *s, uint16_t packet_id);
int effect_qos2_released(struct session_mgr *mgr, struct session *s, uint16_t packet_id);
/* old_qos: the subscription's QoS before the change, -1 for none. */
int effect_subscription_changed(struct session_mgr *mgr, struct session *s,
                                struct mqtt_bytes filter, int old_qos);
/* s's record was put for the first time (s->record is PENDING). */
int effect_session_stored(struct session_mgr *mgr, struct session *s);
/* client_id's session was deleted from the store and freed in memory. */
int effect_session_discarded(struct session_mgr *mgr, struct mqtt_bytes client_id);

/* deliver.c: outgoing QoS state machines and queues. */
int deliver(struct session_mgr *mgr, struct session *s, struct msg *m, uint8_t qos);
int deliver_handle_ack(struct session_mgr *mgr, struct session_client *c, uint8_t type,
                       uint16_t packet_id);
/* Frees the in-memory window and queue (their store records stay). */
void deliver_forget(struct session_mgr *mgr, struct session *s);
/* Marks s to be topped up from its store queue after the commit. */
void deliver_schedule_refill(struct session_mgr *mgr, struct session *s);
/* s's connection wrote all its output: send what waits for the output
 * limit (clean: at once; persistent: a top-up after the commit). */
void deliver_output_drained(struct session_mgr *mgr, struct session *s);
/* Runs the scheduled top-ups (after a successful commit). */
void deliver_run_refills(struct session_mgr *mgr);
/* Room to send s one more message at qos now: its output is under
 * max_output_buffer_bytes, and for QoS 1/2 its window has room and nothing
 * waits in its queue. */
bool deliver_has_room(const struct session_mgr *mgr, const struct session *s, uint8_t qos);

/* retained_stream.c: retained messages for a SUBSCRIBE, read from the store
 * at the subscriber's pace. */
struct retained_stream;
/* Starts sending filter's retained messages to s at most at qos (after the
 * turn's commit). 0 or -ENOMEM. */
int retained_stream_start(struct session_mgr *mgr, struct session *s, struct mqtt_bytes filter,
                          uint8_t qos);
/* Stops the stream of filter (UNSUBSCRIBE), if any. */
void retained_stream_cancel(struct session *s, struct mqtt_bytes filter);
void retained_stream_free_all(struct session *s);
/* Sends what s has room for; called after the commit (deliver_run_refills). */
void retained_stream_pump(struct session_mgr *mgr, struct session *s);
/* How many QoS 1/2 messages s could send at once now: 0 when it is offline,
 * its output is full, or older messages of its own wait (share.c). */
uint32_t deliver_send_room(const struct session_mgr *mgr, const struct session *s);
/* Puts m's body in this turn's batch once (sets m->store_id), however many
 * queues (clients', groups' and bridges') reference it. 0 or an error. */
int deliver_store_body(struct session_mgr *mgr, struct msg *m);

/* bridges.c: routing to bridges. A route first matches (bridges_match),
 * then, once the whole publish has its room reserved, delivers
 * (bridges_deliver) to the bridges matched. */
struct bridge_route {
    const struct session_bridge *origin; /* the bridge the message came from: skipped */
    bool retain;                         /* the RETAIN flag the bridges' copies carry */
    bool refuse_when_full;               /* a client's publish: refused; a will: dropped */
};
/* Marks the bridges m goes to. Returns how many queue entries delivering
 * will append (>= 0), or STORE_ERR_FULL when a bridge's queue is over its
 * limits and r->refuse_when_full (nothing marked). */
int bridges_match(struct session_mgr *mgr, const struct msg *m, const struct bridge_route *r);
/* Appends m to the marked bridges' queues (QoS 1/2) or hands them a QoS 0
 * copy. Returns 0 or a negative code. */
int bridges_deliver(struct session_mgr *mgr, struct msg *m, const struct bridge_route *r);
/* Forgets the marks of bridges_match() without delivering. */
void bridges_unmark(struct session_mgr *mgr);
/* Frees every bridge (session_mgr_free). */
void bridges_free(struct session_mgr *mgr);
struct session_mgr *session_bridge_mgr(const struct session_bridge *b);
/* Records an incoming QoS 2 id of b's remote in the turn's batch (failing
 * the batch when it cannot). 0 or a negative code. */
int bridge_remember_qos2(struct session_bridge *b, uint16_t packet_id);
const char *session_bridge_name(const struct session_bridge *b);

/* subscribe.c */
int subscribe_handle(struct session_mgr *mgr, struct session_client *c,
                     const struct mqtt_subscribe *p);
int unsubscribe_handle(struct session_mgr *mgr, struct session_client *c,
                       const struct mqtt_subscribe *p);

#endif /* SOL_SESSION_INTERNAL_H */
