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
    uint64_t expiry_at_s;     /* Message Expiry deadline (session_now_s()); 0 = none */
    uint8_t qos;
    bool retain; /* the RETAIN flag deliveries of this body carry; fixed once sent */
    uint16_t topic_len;
    uint32_t props_len; /* MQTT 5 properties forwarded with it (see msg_new_v5()) */
    size_t payload_len;
    uint8_t *topic;
    uint8_t *props;
    uint8_t *payload;
};

/* Returns a new message with one reference (release with msg_unref()), or NULL. */
struct msg *msg_new(struct mqtt_bytes topic, struct mqtt_bytes payload, uint8_t qos, bool retain);
/* As msg_new(), with the MQTT 5 properties forwarded to every subscriber
 * (props: a property block without its length, copied; PUBLISH's minus the
 * Topic Alias, Subscription Identifiers and Message Expiry Interval, which
 * are per delivery) and a Message Expiry deadline (0: none). */
struct msg *msg_new_v5(struct mqtt_bytes topic, struct mqtt_bytes payload, struct mqtt_bytes props,
                       uint64_t expiry_at_s, uint8_t qos, bool retain);
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
    uint8_t options; /* MQTT 5 subscription options byte: QoS, No Local, Retain As
                        Published, Retain Handling (3.1.1: the granted QoS) */
    uint16_t filter_len;
    uint32_t sub_id; /* MQTT 5 Subscription Identifier; 0: none */
    uint8_t filter[];
};

/* The subscription options byte [3.8.3.1] (and the low bits of a grant). */
#define SUB_QOS_MASK            0x03u
#define SUB_NO_LOCAL            0x04u
#define SUB_RETAIN_AS_PUBLISHED 0x08u
#define SUB_RETAIN_HANDLING(o)  (((o) >> 4) & 0x03u)

/* What the trie keeps per (filter, session): the options routing needs
 * (QoS, No Local, Retain As Published) and the Subscription Identifier
 * (1..268435455 fits the upper 28 bits). */
static inline uint32_t sub_grant(uint8_t options, uint32_t sub_id)
{
    return (sub_id << 4) | (options & 0x0Fu);
}
static inline uint32_t grant_sub_id(uint32_t grant)
{
    return grant >> 4;
}

/* A subscription's options and identifier, as undo records keep them. */
struct sub_state {
    uint8_t options;
    uint32_t sub_id;
};

/* One delivery of a message to a session: what differs per subscriber. */
struct delivery {
    uint8_t qos;           /* min(published, granted) */
    bool retain;           /* RETAIN set by Retain As Published (besides the message's) */
    uint16_t sub_id_count; /* MQTT 5 Subscription Identifiers of the matching filters */
    const uint32_t *sub_ids;
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
    bool retain;
    uint16_t sub_id_count;
    uint32_t sub_ids[]; /* the delivery's Subscription Identifiers */
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
    uint8_t state;     /* enum qos2_state */
    uint32_t conn_gen; /* the session's conn_gen when it arrived (Receive Maximum) */
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

    uint64_t last_seen_s;      /* session_now_s() of the last connect or disconnect */
    uint64_t due_s;            /* when the timers heap wakes it (timers.c) */
    struct waiting_will *will; /* a will waiting for its Will Delay Interval, or NULL */

    uint64_t match_gen;          /* routing: last route that matched this session */
    struct share_member *shares; /* its shared subscriptions' groups (share.c) */

    /* Small fields last, together: an idle session's size is the broker's
     * RSS per idle connection (README, idle_conns). */
    uint32_t inflight_count;
    uint32_t queued_count; /* clean: length of the list; persistent: QUEUED entries in
                              the store (counted at start, then kept up to date) */
    /* Limit notices, at most one per LIMIT_LOG_INTERVAL_S per session: unix
     * times (32 bits last until 2106) of the last ones, 0 = none yet, and
     * what was refused or dropped since. */
    uint32_t sub_refusal_logged_s;
    uint32_t queue_drop_logged_s;
    uint32_t sub_refusals;
    uint32_t queue_drops;
    /* Session Expiry Interval [3.1.2.11.2]: SESSION_EXPIRY_NEVER for a 3.1.1
     * persistent session, 0 for one that ends with its connection. */
    uint32_t expiry_s;
    uint32_t timer_slot; /* its place + 1 in mgr->timers; 0: not there */
    uint32_t conn_gen;   /* incremented at each CONNECT that attaches a client */
    uint32_t queued_gen; /* persistent: (uint32_t)batch_gen of its newest QUEUED append */
    uint16_t next_packet_id;
    bool persistent;     /* its state is kept in the store */
    bool backlog;        /* persistent: the store may hold entries at or after read_seq */
    bool refill_queued;  /* on mgr->refill list */
    uint8_t refill_wait; /* on mgr->refill: which commit its top-up waits for (enum refill_wait) */
    bool is_offline;     /* persistent, without a client: counted in mgr->offline_count */
    uint8_t record;      /* persistent: enum session_record */
    uint32_t match_slot; /* routing: its entry in mgr->matched while match_gen is current */
    uint8_t client_id[]; /* id_len bytes and a NUL, also usable in log lines */
};

/* MQTT 5 Session Expiry Interval "never" [3.1.2.11.2]; 3.1.1's persistent
 * sessions have it. */
#define SESSION_EXPIRY_NEVER STORE_EXPIRY_NEVER

/* A will whose connection ended before its Will Delay Interval did. */
struct waiting_will {
    struct msg *msg;
    uint64_t at_s;    /* session_now_s() when it is published */
    uint32_t delay_s; /* its Will Delay Interval (the record keeps it) */
};

/* ---- MQTT 5 topic aliases of one connection (alias.c) ---- */

/* Hashes of topics sent once without an alias: a second send while its hash
 * is here assigns one. */
#define ALIAS_RECENT 32

struct alias_slot {
    struct hashtable_node link; /* in topic_aliases.by_topic while topic is set */
    uint8_t *topic;             /* NULL: free */
    uint16_t topic_len;
};

struct topic_aliases {
    uint16_t in_max;           /* aliases the client may set: Sol's Topic Alias Maximum */
    uint16_t out_max;          /* aliases Sol may set: the client's, capped by max_topic_alias */
    struct mqtt_bytes *in;     /* in_max topics (data owned), allocated on first use */
    struct alias_slot *out;    /* out_max slots, allocated on first use */
    struct hashtable by_topic; /* struct alias_slot by topic */
    uint64_t *recent;          /* ALIAS_RECENT hashes; 0 = empty */
    uint16_t next_victim;      /* the slot reassigned next once all are used */
    uint8_t recent_pos;
};

enum { ALIAS_OK = 0, ALIAS_INVALID = 1, ALIAS_UNKNOWN = 2 };
/* Empty tables; allocates nothing. */
void aliases_init(struct topic_aliases *a, uint16_t in_max, uint16_t out_max);
void aliases_deinit(struct topic_aliases *a);
/* An incoming PUBLISH's Topic Alias: with a topic, maps alias to it (a copy);
 * with an empty topic, sets *topic to the mapped one (borrowed from a until
 * the alias changes). Returns ALIAS_OK, ALIAS_INVALID (0 or above in_max),
 * ALIAS_UNKNOWN (empty topic, alias never set) or -ENOMEM. */
int aliases_resolve(struct topic_aliases *a, uint16_t alias, struct mqtt_bytes *topic);
/* The alias topic already has towards the client, or 0. */
uint16_t aliases_find(const struct topic_aliases *a, struct mqtt_bytes topic);
/* Gives topic an alias if it is sent often enough (see alias.c); the PUBLISH
 * then carries topic and alias. Returns it, or 0 (send the topic alone). */
uint16_t aliases_assign(struct topic_aliases *a, struct mqtt_bytes topic);

/* Routing: a session a message goes to, merged over its matching filters
 * (one delivery per session [MQTT-3.3.4-2]). */
struct route_match {
    struct session *s;
    uint32_t ids_head; /* first of its identifiers in mgr->match_ids, + 1; 0: none */
    uint16_t id_count;
    uint8_t qos;                 /* the highest granted QoS */
    bool is_retain_as_published; /* some matching filter has Retain As Published */
};
struct match_id {
    uint32_t id;
    uint32_t next; /* index + 1; 0: the last */
};

/* ---- Connections, as the session manager sees them ---- */

/* What an MQTT 5 connection adds, from its CONNECT; allocated only for
 * MQTT 5 clients, so a 3.1.1 connection costs one pointer. */
struct client_v5 {
    struct topic_aliases aliases;
    uint32_t max_packet_size;       /* the client's; 0 = no limit */
    uint32_t connect_expiry_s;      /* the CONNECT's Session Expiry Interval */
    uint32_t will_delay_interval_s; /* Will Delay Interval */
    uint32_t inbound_unacked;       /* QoS 1/2 PUBLISH from it whose ack is not out yet */
    uint16_t receive_maximum;       /* the client's: unacked QoS 1/2 PUBLISH towards it */
    bool request_problem_info;      /* Reason Strings allowed on acks [3.1.2.11.7] */
    bool has_sent_disconnect;       /* a DISCONNECT went out: nothing more does */
    bool is_will_on_disconnect;     /* its DISCONNECT's reason was not 0x00: will fires */
    bool has_auth_method;           /* accepted through enhanced authentication (SCRAM) */
    struct connect_auth *auth;      /* an enhanced authentication in progress, or NULL */
};

struct session_client {
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
    struct client_v5 *v5; /* MQTT 5 connection state; NULL for 3.1.1 and 3.1 */
    char peer[];          /* "ADDRESS:PORT" (or "unknown"), NUL-terminated */
};

/* An MQTT 5 client whose connection state exists (from its CONNECT on). */
static inline bool client_is_v5(const struct session_client *c)
{
    return c->v5 != NULL;
}

/* Unacknowledged QoS 1/2 PUBLISH Sol may have towards c. */
static inline uint16_t client_receive_maximum(const struct session_client *c)
{
    return c->v5 ? c->v5->receive_maximum : UINT16_MAX;
}

/* The largest packet c accepts; 0 = no limit. */
static inline uint32_t client_max_packet_size(const struct session_client *c)
{
    return c->v5 ? c->v5->max_packet_size : 0;
}

/* A send that waits for the turn's commit (it acknowledges durable state). */
struct held_send {
    struct held_send *next;
    struct session_client *client; /* NULL once the client is gone */
    bool is_inbound_ack;           /* a PUBACK counted in client->inbound_unacked */
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

    struct store_batch *batch;               /* the turn's batch, created on first use */
    uint64_t batch_gen;                      /* incremented at each commit */
    uint64_t batch_opened_us;                /* monotonic time the open batch was created */
    struct held_send *held_head, *held_tail; /* wait for the open batch */
    struct held_send *flight_held;           /* wait for the batch in flight (commit.c) */
    uint64_t flight_started_us;              /* when the batch in flight was handed over; 0: none */
    bool is_flight_retained_changed;         /* it changes retained messages */
    struct session *refill; /* sessions to top up from the store after the commit */
    /* On that list: REFILL_ANYTIME ones, and those waiting for a commit
     * (deliver.c keeps both; the end of every turn asks them). */
    uint32_t refills_due, refills_waiting;

    uint64_t route_gen;
    struct route_match *matched; /* scratch for routing (publish.c) */
    size_t matched_cap;
    struct match_id *match_ids; /* their Subscription Identifiers, as lists */
    size_t match_id_count, match_id_cap;
    uint32_t *delivery_ids; /* one delivery's identifiers, gathered */
    size_t delivery_ids_cap;

    uint64_t next_serial;
    size_t offline_count;    /* persistent sessions without a client */
    bool is_recovering;      /* session_mgr_new() is loading the store */
    struct session **timers; /* min-heap by due_s (timers.c) */
    size_t timer_count, timer_cap;
    uint64_t clock_base_us; /* session_now_s(), in microseconds, at clock_base_mono_us */
    uint64_t clock_base_mono_us;
    uint64_t clock_skew_s;      /* session_clock_advance() */
    uint64_t clock_recorded_s;  /* the last time recorded in the store (session.c) */
    uint64_t dropped_too_large; /* PUBLISH over a client's Maximum Packet Size */
    uint64_t too_large_logged_s;
    uint64_t dropped_expired; /* deliveries whose Message Expiry passed first */
    bool is_closing;          /* session_mgr_free(): failed batches undo nothing */
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
/* As output_send_ack(), with an MQTT 5 reason code and (if not NULL, and
 * the client allows them) a Reason String; a 3.1.1 client gets the plain ack. */
int output_send_ack_reason(struct session_mgr *mgr, struct session_client *c, uint8_t type,
                           uint16_t packet_id, uint8_t reason, const char *why);
/* The READ gate: may c receive m (the ACL's read check for c's user and
 * client id)? c is never NULL here: a delivery always has a receiver. */
bool output_may_read(const struct session_mgr *mgr, const struct session_client *c,
                     const struct msg *m);
/* output_send_publish() results: the READ gate refused; the PUBLISH is over
 * the client's Maximum Packet Size; the message expired. Nothing was sent:
 * the delivery is over. */
#define OUTPUT_DENIED    1
#define OUTPUT_TOO_LARGE 2
#define OUTPUT_EXPIRED   3 /* its Message Expiry passed before it was sent */
static inline bool output_is_dropped(int rc)
{
    return rc == OUTPUT_DENIED || rc == OUTPUT_TOO_LARGE || rc == OUTPUT_EXPIRED;
}
/* Sends m to c as a PUBLISH, if the READ gate allows it (the only way a
 * PUBLISH reaches a client). The payload is not copied: the send takes its
 * own reference on m until the bytes are written. Returns 0, OUTPUT_DENIED,
 * -EINVAL (not encodable) or -ENOMEM. */
int output_send_publish(struct session_mgr *mgr, struct session_client *c, struct msg *m,
                        const struct delivery *d, uint16_t packet_id, bool dup);
/* Releases (status 0) or drops (and closes their clients) the held sends of
 * list (mgr->flight_held, taken by the caller), and frees them. */
void output_release_held(struct session_mgr *mgr, struct held_send *list, int status);
/* Forgets the held sends of a client that is going away. */
void output_forget_client(struct session_mgr *mgr, struct session_client *c);

/* commit.c: the turn's batch (NULL on allocation failure). */
struct store_batch *mgr_batch(struct session_mgr *mgr);
bool mgr_batch_has_changes(const struct session_mgr *mgr);
/* A batch is with the storage thread. */
bool mgr_commit_in_flight(const struct session_mgr *mgr);
/* A durable send now would leave before the state it answers is committed:
 * the open batch has changes, or a batch is in flight. */
bool mgr_acks_must_wait(const struct session_mgr *mgr);
/* session.c */
uint64_t monotonic_us(void);
struct session *session_new(struct session_mgr *mgr, const uint8_t *id, size_t id_len,
                            bool persistent);
/* Removes a session everywhere: table, trie, memory; and the store if persistent. */
void session_discard(struct session_mgr *mgr, struct session *s);
int session_add_subscription(struct session_mgr *mgr, struct session *s, struct mqtt_bytes filter,
                             struct sub_state sub);
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
/* s's subscription to filter: true and *out, or false when it has none. */
bool session_subscription_get(const struct session *s, struct mqtt_bytes filter,
                              struct sub_state *out);
/* Reads client id's session (record, subscriptions, QoS 2 ids) from the store
 * into memory. Returns 1 (loaded), 0 (not in the store) or a negative code. */
int session_reload(struct session_mgr *mgr, const uint8_t *id, size_t id_len);
/* Offline bookkeeping (session.c): s gets a client / loses it. */
void session_offline_remove(struct session_mgr *mgr, struct session *s);
void session_offline_add(struct session_mgr *mgr, struct session *s);
/* Publishes s's waiting will now, if it has one (its delay ended, or the
 * session ends). */
void session_fire_pending_will(struct session_mgr *mgr, struct session *s);
/* Forgets s's waiting will unpublished (the session resumed in time). */
void session_drop_waiting_will(struct session *s);

/* timers.c: the heap of sessions by when they next need attention. */
/* The deadline of an interval of interval_s seconds starting at start_s
 * (session_now_s()): the clock is truncated to whole seconds, so an interval
 * n > 0 ends at start_s + n + 1 - never early, at most a second late; 0 ends
 * at start_s. */
uint64_t timers_deadline(uint64_t start_s, uint64_t interval_s);
uint64_t timers_expires_at(const struct session_mgr *mgr, const struct session *s);
/* (Re)computes s's due time from its will and expiry and places it; 0 or
 * -ENOMEM (s then keeps its old place, if any). */
int timers_schedule(struct session_mgr *mgr, struct session *s);
void timers_remove(struct session_mgr *mgr, struct session *s);
/* The session due first if it is due at now_s, else NULL. */
struct session *timers_first_due(const struct session_mgr *mgr, uint64_t now_s);
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
/* What an enhanced authentication puts in CONNACK [3.2.2.3.17] [3.2.2.3.18]:
 * its method and data (views, valid until the CONNACK is sent). */
struct connect_auth_reply {
    struct mqtt_bytes method;
    struct mqtt_bytes data;
};
/* Refuses the CONNECT p with reason (MQTT 5; a 3.1.1 client gets the return
 * code that says the same), why as the log's and the Reason String's text,
 * and, when reply is not NULL, its Authentication Method and Data. Returns
 * SESSION_ERR_CONNECT_REFUSED. */
int connect_refuse(struct session_mgr *mgr, struct session_client *c, const struct mqtt_connect *p,
                   uint8_t reason, const char *why, const struct connect_auth_reply *reply);
/* The rest of CONNECT once the client is authenticated (c->username set):
 * client id, keepalive, quotas, will, session, CONNACK (carrying reply when
 * not NULL). Returns a session_result. */
int connect_accept(struct session_mgr *mgr, struct session_client *c, const struct mqtt_connect *p,
                   const struct connect_auth_reply *reply);

/* connect_auth.c: MQTT 5 enhanced authentication [4.12], SCRAM-SHA-512. */
struct connect_auth;
/* A CONNECT with an Authentication Method: refuses an unknown method (0x8C)
 * or starts the exchange (AUTH 0x18), keeping a copy of p. */
int connect_auth_start(struct session_mgr *mgr, struct session_client *c,
                       const struct mqtt_connect *p);
/* A packet from a client whose CONNECT started an exchange (no CONNACK yet). */
int connect_auth_handle(struct session_mgr *mgr, struct session_client *c,
                        const struct mqtt_packet *pkt);
/* An AUTH packet after CONNACK (re-authentication, [4.12.1]). */
int connect_auth_handle_connected(struct session_mgr *mgr, struct session_client *c,
                                  const struct mqtt_disconnect *auth);
/* Frees c's exchange, if any (every path: success, failure, close). */
void connect_auth_end(struct session_client *c);
/* Is c in the middle of an enhanced authentication before its CONNACK? */
bool connect_auth_is_pending(const struct session_client *c);

/* publish.c: incoming PUBLISH / PUBREL, routing, retained. */
int publish_handle(struct session_mgr *mgr, struct session_client *c,
                   const struct mqtt_publish *in);
int publish_handle_pubrel(struct session_mgr *mgr, struct session_client *c, uint16_t packet_id);
/* Routes m to every matching session and bridge; published_retain: the
 * RETAIN flag it was published with (kept for Retain As Published
 * subscriptions, and by bridge copies; m's own is 0 for live forwards; a full
 * bridge queue drops its copy). publisher: whose it is (No Local), NULL: the
 * broker's. Returns 0 or a negative code. */
int publish_route(struct session_mgr *mgr, struct msg *m, bool published_retain,
                  const struct session *publisher);
/* Makes a copy of src (RETAIN set; its topic, payload, properties, QoS and
 * expiry) its topic's retained message, or with an empty payload clears it;
 * durable records it in the turn's batch. */
int publish_set_retained(struct session_mgr *mgr, const struct msg *src, bool durable);
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
/* old: the subscription before the change, NULL for none. */
int effect_subscription_changed(struct session_mgr *mgr, struct session *s,
                                struct mqtt_bytes filter, const struct sub_state *old);
/* s's record was put for the first time (s->record is PENDING). */
int effect_session_stored(struct session_mgr *mgr, struct session *s);
/* client_id's session was deleted from the store and freed in memory. */
int effect_session_discarded(struct session_mgr *mgr, struct mqtt_bytes client_id);

/* deliver.c: outgoing QoS state machines and queues. */
int deliver(struct session_mgr *mgr, struct session *s, struct msg *m, const struct delivery *d);
int deliver_handle_ack(struct session_mgr *mgr, struct session_client *c, uint8_t type,
                       uint16_t packet_id);
/* Frees the in-memory window and queue (their store records stay). */
void deliver_forget(struct session_mgr *mgr, struct session *s);
/* What a scheduled top-up waits for before it reads the store (commit.c). */
enum refill_wait {
    REFILL_ANYTIME = 0,      /* nothing: it reads what is committed (an ack made room) */
    REFILL_AFTER_FLIGHT = 1, /* the commit of the batch in flight */
    REFILL_AFTER_OPEN = 2,   /* the commit of the open batch (what it reads may be there) */
    REFILL_RUNNING = 3,      /* taken off the list by deliver_run_refills(): runs now */
};
/* Marks s to be topped up from its store queue after the open batch's
 * commit: for reads that must see what this turn recorded (a resumed
 * session's queue states, a new SUBSCRIBE's retained messages). */
void deliver_schedule_refill(struct session_mgr *mgr, struct session *s);
/* Marks s to be topped up as soon as the loop gets to it (at the end of the
 * turn or a commit's completion), reading what is committed: window or
 * output room was freed. */
void deliver_schedule_topup(struct session_mgr *mgr, struct session *s);
/* Schedules s at wait (a later wait wins over an earlier one). */
void deliver_schedule(struct session_mgr *mgr, struct session *s, enum refill_wait wait);
/* Takes s off mgr->refill (it is going away). */
void deliver_unschedule(struct session_mgr *mgr, struct session *s);
/* s's connection wrote all its output: send what waits for the output
 * limit (clean: at once; persistent: a top-up after the commit). */
void deliver_output_drained(struct session_mgr *mgr, struct session *s);
/* Runs the scheduled top-ups that wait for nothing more than max (commit.c). */
void deliver_run_refills(struct session_mgr *mgr, enum refill_wait max);
/* For a queue whose newest append is queued_gen: REFILL_ANYTIME when every
 * append is committed, else the commit a read must wait for to see it (a
 * read that came back short before then has not drained the queue). */
enum refill_wait deliver_appends_wait(const struct session_mgr *mgr, uint32_t queued_gen);
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
                          uint8_t qos, uint32_t sub_id);
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
/* How many bridges bridges_match() marked (a QoS 0 copy included). */
size_t bridges_marked(const struct session_mgr *mgr);
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
