/*
 * session.h - the session manager: MQTT semantics between connections.
 *
 * It owns sessions, the topic trie, retained messages, wills and the QoS 1/2
 * state machines, and records durable state in the turn's store batch. It
 * never sees a socket or a libev watcher: it answers through a session_sink
 * that the server implements. Not for: framing bytes (src/mqtt), moving bytes
 * (src/server), LMDB (storage/).
 *
 * Turn structure, driven by the server:
 *   read callbacks  -> session_handle_packet() for each decoded packet
 *   end of the turn -> session_flush(): one store commit; the acks and
 *                      deliveries that waited for it are released to the sink
 */
#ifndef SOL_SESSION_H
#define SOL_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "mqtt.h"

struct store;
struct auth_passwd;
struct auth_acl;
struct session_mgr;
struct session_client;

/*
 * What the server does for the session manager. `conn` is the server's own
 * handle, given to session_client_new() and passed back unchanged.
 */
struct session_sink {
    /* Appends iov's bytes to conn's output queue (copied; the caller keeps
     * ownership of iov). Returns 0, or -ENOMEM: the manager then closes conn. */
    int (*send)(void *conn, const struct iovec *iov, int iovcnt);
    /* Closes conn at the end of the turn; `reason` is logged. Idempotent.
     * The server later calls session_client_gone() for it, as for any close. */
    void (*close)(void *conn, const char *reason);
    /* Arms conn's keepalive timer: close after 1.5 x keepalive_s with no
     * packet; 0 disables it [MQTT-3.1.2-24]. */
    void (*set_keepalive)(void *conn, uint16_t keepalive_s);
    /* Bytes queued on conn and not yet written to the socket. */
    size_t (*output_pending)(void *conn);
    /* Appends iov's bytes (copied, as send()) followed by data[0..len) *by
     * reference*: one packet whose tail (a message's payload, shared by
     * every subscriber) is written from where it lies. Takes ownership of one
     * reference on those bytes, on every path: release(ref) is called exactly
     * once, when they have been written, when conn is freed, at once if the
     * server chooses to copy them (small ones), or before an -ENOMEM return
     * (the queue is then unchanged). data stays valid and unchanged until
     * then. Counted in output_pending() like copied bytes. Returns 0 or
     * -ENOMEM: the manager then closes conn. */
    int (*send_ref)(void *conn, const struct iovec *iov, int iovcnt, const void *data, size_t len,
                    void (*release)(void *ref), void *ref);
};

/*
 * Who may connect and what they may do: a password file and an ACL (both
 * borrowed; NULL = none: any username / everything allowed) and
 * allow_anonymous. One for the whole broker (in session_config), or one per
 * listener (per_listener_settings, see session_client_set_auth()). Its owner
 * may change the fields between packets (SIGHUP reload); connections see the
 * change at their next packet or delivery.
 */
struct session_auth {
    const struct auth_passwd *passwords;
    const struct auth_acl *acl;
    bool allow_anonymous;
};

/* Tunables, with Mosquitto's directive names where they exist. */
struct session_config {
    bool allow_anonymous; /* allow_anonymous (no auth yet: must be true) */
    /* How long a batch nobody waits on may wait for company (commit.c);
     * 10 ms. Tests raise it so that no assertion depends on the clock. */
    uint32_t commit_defer_us;
    uint16_t max_inflight_messages; /* outgoing QoS 1/2 window per session; 0 = unlimited */
    uint32_t max_queued_messages;   /* per session (clean ones too); 0 = unlimited */
    size_t max_qos0_output_bytes;   /* drop QoS 0 to a conn with more than this pending */
    bool retain_available;          /* retain_available */
    size_t max_queued_bytes;  /* per session queue (clean ones too), payload bytes; 0 = unlimited */
    uint16_t max_keepalive_s; /* max_keepalive: larger (or 0) is refused; 0 = no limit */
    uint32_t max_topic_levels; /* deeper topics and filters are refused; 0 = no limit */
    uint32_t persistent_client_expiration_s; /* drop offline persistent sessions; 0 = never */
    uint32_t max_subscriptions_per_client;   /* over it: SUBACK 0x80; 0 = no limit */
    uint32_t max_subscriptions;              /* all sessions together; 0 = no limit */
    /* MQTT 5 */
    uint16_t receive_maximum; /* receive_maximum: QoS 1/2 a client may have unacked (1..65535) */
    uint16_t max_topic_alias; /* max_topic_alias: aliases each way; 0 = none */
    uint32_t max_packet_size; /* the server's inbound limit, told in CONNACK; 0 = none */
    /* shared_subscriptions: false refuses "$share/..." filters (SUBACK 0x9E /
     * 0x80), says Shared Subscription Available 0 in CONNACK, and leaves
     * stored shared subscriptions and group queues untouched and unserved. */
    bool shared_subscription_available;
    /* Borrowed; NULL = no password file (any username accepted) / no ACL
     * (everything allowed). Replace at runtime with session_set_auth(). */
    const struct auth_passwd *passwords;
    const struct auth_acl *acl;
};

/* Fills *config with the defaults (Mosquitto's where they exist). */
void session_config_defaults(struct session_config *config);

enum session_result {
    SESSION_OK = 0,
    SESSION_ERR_PROTOCOL = -1,        /* packet not allowed in this state */
    SESSION_ERR_NOMEM = -2,           /* allocation failed: close this client only */
    SESSION_ERR_CONNECT_REFUSED = -3, /* CONNACK with an error code was sent: close */
    SESSION_ERR_DISCONNECT = -4,      /* client sent DISCONNECT: close, no will */
    SESSION_ERR_STORE = -5,           /* the store refused a record (e.g. key too long) */
    SESSION_ERR_STORE_FULL = -6, /* the store is full: close without the ack (client retries) */
    /* MQTT 5: close with a DISCONNECT carrying session_error_reason(code). */
    SESSION_ERR_RECEIVE_MAXIMUM = -7,       /* more unacknowledged QoS 1/2 than receive_maximum */
    SESSION_ERR_TOPIC_ALIAS = -8,           /* Topic Alias 0 or above max_topic_alias */
    SESSION_ERR_MALFORMED = -9,             /* a packet the codec accepts but the rules forbid */
    SESSION_ERR_PAYLOAD_FORMAT = -10,       /* QoS 0 payload not the UTF-8 its indicator says */
    SESSION_ERR_RETAIN_NOT_SUPPORTED = -11, /* retained PUBLISH while retain_available false */
    SESSION_ERR_NOT_AUTHORIZED = -12,       /* MQTT 5 re-authentication failed (0x87) */
};
const char *session_strerror(int code);
/* The MQTT 5 DISCONNECT reason code for a negative session_result (0x82
 * Protocol Error, 0x87 Not authorized, 0x93, 0x94, 0x97 Quota exceeded,
 * 0x80 otherwise). */
uint8_t session_error_reason(int code);

/* True once a commit failed so that the store takes no more writes (an I/O
 * error): the broker must stop (fail-stop), not retry. */
bool session_has_failed(const struct session_mgr *mgr);

/*
 * Creates the manager and rebuilds its state from the store (sessions,
 * subscriptions, retained index); `store` and `sink` are borrowed and must
 * outlive the manager. On failure returns a negative code with a message in
 * err. On success *out is owned by the caller: session_mgr_free().
 */
int session_mgr_new(const struct session_config *config, struct store *store,
                    const struct session_sink *sink, struct session_mgr **out, char *err,
                    size_t err_len);
/* Frees everything the manager holds. Connections must be gone first. */
void session_mgr_free(struct session_mgr *mgr);

/*
 * A new network connection. `peer` (copied) names it in log lines until
 * CONNECT gives a client id. Returns NULL on allocation failure (the server
 * closes the socket). Owned by the manager until session_client_gone().
 */
struct session_client *session_client_new(struct session_mgr *mgr, void *conn, const char *peer);

/*
 * Handles one decoded packet from client. pkt is borrowed until return.
 * Returns SESSION_OK, or a negative code: the server closes the connection
 * and logs session_strerror(code) naming session_client_name(client).
 */
int session_handle_packet(struct session_mgr *mgr, struct session_client *client,
                          const struct mqtt_packet *pkt);

/* Why a connection ended, for the will decision and the log. */
enum session_close_reason {
    SESSION_CLOSE_DISCONNECT = 0, /* after DISCONNECT: no will */
    SESSION_CLOSE_SOCKET,         /* peer closed or socket error */
    SESSION_CLOSE_KEEPALIVE,      /* keepalive expired */
    SESSION_CLOSE_PROTOCOL,       /* protocol error or malformed packet */
    SESSION_CLOSE_TAKEOVER,       /* same client id connected elsewhere */
    SESSION_CLOSE_SHUTDOWN,       /* broker shutting down */
};

/*
 * MQTT 5: sends client a DISCONNECT with reason_code (0x80 and above, or
 * 0x8B shutting down ...) and, when not NULL, why as its Reason String,
 * before the server closes the connection. Does nothing for a 3.1.1 client,
 * a client whose CONNECT was not accepted, or one that got a DISCONNECT
 * already. Ordered after what the client was already sent or held for it.
 */
void session_client_disconnect(struct session_mgr *mgr, struct session_client *client,
                               uint8_t reason_code, const char *why);

/*
 * The connection is closed (for any reason). Publishes the will where
 * 3.1.1 requires it, detaches or discards the session, frees client.
 */
void session_client_gone(struct session_mgr *mgr, struct session_client *client,
                         enum session_close_reason reason);

/* The connection's output queue drained: send more of its queued messages. */
void session_client_writable(struct session_mgr *mgr, struct session_client *client);

/* The protocol level of the accepted CONNECT (3, 4 or 5); before it, 5:
 * the highest level a CONNECT may use (mqtt_decode_for()). */
uint8_t session_client_protocol_level(const struct session_client *client);

/*
 * The connection came in on a listener with its own auth settings
 * (per_listener_settings true): they replace the broker-wide ones for this
 * client. `auth` is borrowed and must outlive the client. Call before CONNECT.
 */
void session_client_set_auth(struct session_client *client, const struct session_auth *auth);

/* Sends of client wait for a commit (output.c holds them): a closed
 * connection is freed after they leave. */
bool session_client_has_held(const struct session_client *client);

/* Client id after CONNECT, else the peer name; for log lines. Never NULL. */
const char *session_client_name(const struct session_client *client);

/*
 * End of a loop turn: commits the turn's store batch and releases the acks
 * and deliveries that waited for it. Returns 0 or the store's error (the
 * held acks are then dropped and logged; clients will retry).
 */
int session_flush(struct session_mgr *mgr);

/*
 * With the storage thread (store_committer_start() on the manager's store):
 * session_commit() starts a commit round for the open batch and returns
 * SESSION_COMMIT_STARTED while the thread has it (or right away, if a round is
 * already in flight: one at a time); without the thread, or with nothing to
 * write, the round finishes inside and its status is returned.
 * session_commit_collect() finishes the round in flight once the thread is
 * done (wait: blocks until it is): completions, held acks, top-ups. Returns
 * the round's status, SESSION_COMMIT_STARTED if still running, 0 if none.
 */
#define SESSION_COMMIT_STARTED 1 /* = STORE_COMMIT_STARTED */
int session_commit(struct session_mgr *mgr);
int session_commit_collect(struct session_mgr *mgr, bool wait);

/*
 * Replaces the password file and ACL (SIGHUP reload). Both borrowed; the old
 * ones may be freed once this returns. Connected clients stay connected; the
 * new ACL applies to their next packet and delivery.
 */
void session_set_auth(struct session_mgr *mgr, const struct auth_passwd *passwords,
                      const struct auth_acl *acl);

/*
 * The connection authenticated at the transport (TLS client certificate with
 * use_identity_as_username): `identity` (copied) becomes the username and the
 * CONNECT's username and password are not checked. Call before CONNECT.
 * Returns 0 or -ENOMEM.
 */
int session_client_set_identity(struct session_client *client, const char *identity);

/*
 * Publishes a message from the broker itself ($SYS topics): routed like a
 * client's publish at QoS 0; with retain, kept as the topic's retained
 * message in memory only (it is rewritten every interval, so not stored).
 * Returns 0 or -ENOMEM.
 */
int session_publish_internal(struct session_mgr *mgr, const char *topic, const void *payload,
                             size_t payload_len, bool retain);

/* ---- Bridges: their local side ------------------------------------------
 *
 * A bridge (src/bridge/) is a client of a remote broker. Its local side
 * lives here, because it is part of routing: a local publish that matches
 * one of a bridge's `out` filters is appended to the bridge's queue in the
 * store, in the same batch as the publish itself, so the publisher's ack
 * still means "committed" (at QoS 0 the copy is handed over at once and
 * never stored). A bridge whose queue is over its limits refuses the
 * publish as a full store does: no ack. Messages a bridge brings in are
 * published here and never routed back to the same bridge (loop
 * prevention; the remote's side is try_private).
 *
 * The manager owns each struct session_bridge (freed by
 * session_mgr_free()); the bridge module drives it: it reads the queue from
 * the store, sends, and reports what the remote acknowledged.
 */
struct session_bridge;

/* A completion: runs once after the turn's commit with 0 (what was
 * recorded before it is durable) or a negative store code (it was not:
 * send no ack). The same contract as store_done_fn. */
typedef void (*session_done_fn)(void *arg, int status);

/* One `out` topic as routing sees it: which local topics leave. */
struct session_bridge_filter {
    const char *filter; /* local_prefix + pattern; copied */
    uint8_t qos;        /* a copy leaves at min(published QoS, this) */
};

/* What the manager tells the bridge module; both run on the loop. */
struct session_bridge_ops {
    /* Entries were committed to the bridge's queue: send them if connected. */
    void (*queued)(void *arg);
    /* A QoS 0 copy of a local publish (views valid during the call; topic is
     * the local one): send it now if connected, else it is dropped. */
    void (*forward_qos0)(void *arg, struct mqtt_bytes topic, struct mqtt_bytes payload,
                         bool retain);
};

struct session_bridge_config {
    const char *name; /* the queue's key in the store; copied */
    const struct session_bridge_filter *filters;
    size_t filter_count;
    uint64_t max_queued_messages;         /* 0: no limit */
    uint64_t max_queued_bytes;            /* payload bytes; 0: no limit */
    const struct session_bridge_ops *ops; /* borrowed; must outlive the manager */
    void *arg;
};

/*
 * Adds a bridge to routing. Reads its queue's totals from the store, so the
 * limits count what waits there after a restart. Returns 0 and *out (owned
 * by the manager), or a negative code with a message in err.
 */
int session_bridge_new(struct session_mgr *mgr, const struct session_bridge_config *cfg,
                       struct session_bridge **out, char *err, size_t err_len);

/* Stops calling b's ops (the bridge module is going away); routing keeps
 * queueing for it in the store (a restart sends what waits). */
void session_bridge_detach(struct session_bridge *b);

struct session_bridge_stats {
    uint64_t queued_messages; /* the queue as the limits see it: committed or in the */
    uint64_t queued_bytes;    /* turn's batch (entries, payload bytes) */
    uint64_t refused;         /* local publishes refused: the queue was over its limits */
    uint64_t dropped;         /* wills and $SYS copies dropped for the same reason */
};
void session_bridge_get_stats(const struct session_bridge *b, struct session_bridge_stats *out);

/* The remote acknowledged the entry seq (PUBACK, or PUBCOMP at QoS 2):
 * records its delete in the turn's batch; the totals drop when it commits.
 * Returns 0 or a negative code (-ENOMEM, store codes). */
int session_bridge_acked(struct session_bridge *b, uint64_t seq, size_t payload_len);

/* Records that the remote sent PUBREC for the entry seq (QoS 2, sent under
 * packet_id): after a reconnect it gets PUBREL, not the message again.
 * Returns 0 or a negative code. */
int session_bridge_pubrec(struct session_bridge *b, uint64_t seq, uint16_t packet_id);

/* The remote released (PUBREL) its QoS 2 packet id: records the delete of
 * the id's record in the turn's batch. Returns 0 or a negative code. */
int session_bridge_qos2_released(struct session_bridge *b, uint16_t packet_id);

/*
 * Publishes a message the bridge's remote sent: retained if p->retain,
 * routed to local subscribers and to other bridges (never back to b), all
 * in the turn's batch; at QoS 2 with a record of p->packet_id (awaiting
 * PUBREL) in the same batch. done (may be NULL) runs after the commit. A
 * topic deeper than max_topic_levels is dropped (logged) and acknowledged
 * like a delivered one. Returns 0 (done will run), STORE_ERR_FULL (the
 * store or a bridge queue is full: nothing recorded, done never runs),
 * -ENOMEM or another negative code.
 */
int session_bridge_publish(struct session_bridge *b, const struct mqtt_publish *p,
                           session_done_fn done, void *arg);

/* Runs done after the turn's commit, and makes that commit happen now
 * rather than deferred. Returns 0 (done will run) or -ENOMEM. */
int session_after_commit(struct session_mgr *mgr, session_done_fn done, void *arg);

/* Upper bounds (microseconds) of the commit latency histogram's buckets:
 * 50 us to 1 s. */
#define SESSION_COMMIT_BUCKETS 15
extern const uint64_t session_commit_bucket_us[SESSION_COMMIT_BUCKETS];

struct session_stats {
    uint64_t clients_connected;          /* connections with an accepted CONNECT */
    uint64_t clients_disconnected;       /* persistent sessions without a connection */
    uint64_t messages_received;          /* PUBLISH packets from clients */
    uint64_t messages_sent;              /* PUBLISH packets to clients (resends included) */
    uint64_t messages_dropped;           /* QoS 0 over the output limit + queue-full drops +
                                            over a client's Maximum Packet Size */
    uint64_t messages_queue_dropped;     /* of those: dropped by max_queued_messages/bytes */
    uint64_t messages_too_large_dropped; /* of those: over an MQTT 5 client's Maximum
                                            Packet Size */
    uint64_t publishes_refused;          /* PUBLISH not acknowledged: the store was full */
    uint64_t subscriptions;
    uint64_t retained;
    uint64_t commits;                 /* store commits made by session_flush() */
    uint64_t commit_latency_us_last;  /* duration of the last commit */
    uint64_t commit_latency_us_max;   /* since the previous session_get_stats() */
    uint64_t commit_latency_us_avg;   /* over all commits */
    uint64_t commit_latency_us_total; /* sum over all commits */
    /* Commits that took at most session_commit_bucket_us[i] (cumulative, as
     * a Prometheus histogram's buckets; commits is the +Inf bucket). */
    uint64_t commit_latency_buckets[SESSION_COMMIT_BUCKETS];
    uint64_t sessions; /* in memory: online, offline persistent, clean */
    /* By QoS (index 0-2): PUBLISH packets and their payload bytes from
     * clients (duplicates of a QoS 2 id still waiting for PUBREL excluded) and
     * to clients (resends included). */
    uint64_t messages_received_qos[3], payload_bytes_received_qos[3];
    uint64_t messages_sent_qos[3], payload_bytes_sent_qos[3];
    /* Every session's window and queue, summed (running totals: O(1)). */
    uint64_t inflight_messages; /* sent QoS 1/2, not yet acknowledged */
    uint64_t queued_messages;   /* waiting for window space (clean: in memory; persistent: in
                                   the store) */
    uint64_t queued_bytes;      /* their payload bytes */
};
/* Fills *out; resets commit_latency_us_max (a per-interval figure for $SYS). */
void session_get_stats(struct session_mgr *mgr, struct session_stats *out);
/* As session_get_stats(), but resets nothing (for a metrics scrape, which
 * must not disturb $SYS). O(1): reads counters, walks nothing. */
void session_peek_stats(const struct session_mgr *mgr, struct session_stats *out);

/*
 * Does what is due at now_s (the manager's clock, session_now_s()):
 * publishes wills whose Will Delay Interval ended, and discards sessions
 * offline for longer than their Session Expiry Interval (3.1.1 sessions,
 * whose interval is "never": persistent_client_expiration, when set),
 * recording their removal in this turn's batch. O(log n) per session due,
 * never a walk over the sessions. Returns the number of sessions discarded.
 */
size_t session_expire(struct session_mgr *mgr, uint64_t now_s);

/*
 * The manager's clock, in unix seconds: what session expiry, will delays
 * and message expiry are measured with. It advances with the monotonic
 * clock while the broker runs, so a wall-clock jump does not expire
 * everything at once (see README, Durability).
 */
uint64_t session_now_s(const struct session_mgr *mgr);
/* Moves the manager's clock forward by seconds (tests, fuzzing). */
void session_clock_advance(struct session_mgr *mgr, uint64_t seconds);
/* The periodic work: expires sessions and publishes delayed wills that are
 * due at session_now_s(). Returns what session_expire() returns. */
size_t session_tick(struct session_mgr *mgr);

/*
 * True when session_flush() should run now: acks or top-ups wait for a
 * commit, or a deferred batch is due. A batch that nothing waits on (e.g. a
 * subscriber's PUBACK deleting its queue entry) is deferred up to 10 ms so it
 * rides along with the next commit instead of costing an fsync of its own.
 */
bool session_has_pending(const struct session_mgr *mgr);

/* Seconds until a deferred batch is due (0 = now), or -1 when none is. The
 * server arms a timer with it so a deferred batch is committed even when no
 * more packets arrive. */
double session_commit_delay_s(const struct session_mgr *mgr);

#endif /* SOL_SESSION_H */
