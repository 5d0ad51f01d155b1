/*
 * config.h - Sol's configuration: defaults, and a parser for Mosquitto-style
 * config files (one "name value..." directive per line, '#' comments).
 *
 * Directive names and meanings follow Mosquitto 2 where Sol has the feature.
 * Not for: acting on the settings (src/broker/, the server and the session
 * manager do that), command-line flags (src/broker/flags.c), or logging
 * anything: errors come back as text in the caller's buffer, in the style of
 * redis anet's char *err.
 */
#ifndef SOL_CONFIG_H
#define SOL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_DEFAULT_PORT                 1883
#define CONFIG_DEFAULT_BIND_ADDRESS         "127.0.0.1"
#define CONFIG_DEFAULT_PERSISTENCE_LOCATION "./sol-data"
#define CONFIG_DEFAULT_MAX_INFLIGHT         20
#define CONFIG_DEFAULT_MAX_QUEUED           1000
#define CONFIG_DEFAULT_MAX_TOPIC_LEVELS     200
/* Limits one client cannot exceed; conf/sol.conf gives each one's worst-case
 * cost (about 64 MB per client in all with these defaults). */
#define CONFIG_DEFAULT_MAX_QUEUED_BYTES    ((uint64_t)8 << 20)
#define CONFIG_DEFAULT_MAX_OUTPUT_BUFFER   ((uint64_t)16 << 20)
#define CONFIG_DEFAULT_MAX_PACKET_SIZE     ((uint64_t)8 << 20)
#define CONFIG_DEFAULT_MAX_SUBS_PER_CLIENT 100
#define CONFIG_DEFAULT_MAX_SUBSCRIPTIONS   1000000
#define CONFIG_DEFAULT_MAX_INPUT_BUFFER    ((uint64_t)64 << 20)
#define CONFIG_DEFAULT_STORAGE_MAX_SIZE    ((uint64_t)1 << 30) /* 1G */
#define CONFIG_DEFAULT_SYS_INTERVAL_S      10
#define CONFIG_DEFAULT_RECEIVE_MAXIMUM     100
#define CONFIG_DEFAULT_MAX_TOPIC_ALIAS     10         /* Mosquitto's */
#define CONFIG_MAX_MESSAGE_SIZE_LIMIT      268435455u /* MQTT's largest remaining length */
#define CONFIG_INCLUDE_DEPTH_MAX           8          /* include_dir nesting */
#define CONFIG_PATH_MAX                    4096       /* bytes, including the NUL */

/*
 * One listener: a TCP port (on bind_address, or on every address when it is
 * NULL), or a unix socket when unix_path is set (Mosquitto 2's
 * "listener 0 /path/to/socket"; port is then 0).
 *
 * The TLS directives (cafile, certfile, keyfile, tls_version,
 * require_certificate, use_identity_as_username) apply to the listener line
 * above them, as in Mosquitto; before any listener line they are an error.
 * password_file, acl_file and allow_anonymous are global, as in Mosquitto's
 * default "per_listener_settings false"; with "per_listener_settings true"
 * (before the first listener) they belong to the listener line above them.
 * TLS is on when certfile is set; config_check_tls() checks that certfile
 * and keyfile come together.
 */
struct config_listener {
    uint16_t port;
    char *bind_address;            /* owned; NULL: all addresses */
    char *unix_path;               /* owned; NULL: TCP */
    char *cafile;                  /* owned; NULL: not set. CA to verify client certificates */
    char *certfile;                /* owned; NULL: plain TCP */
    char *keyfile;                 /* owned; NULL: not set */
    char *tls_version;             /* owned; NULL: TLS 1.2. "tlsv1.2" or "tlsv1.3" (no tlsv1.1) */
    bool require_certificate;      /* clients must present a certificate signed by cafile */
    bool use_identity_as_username; /* the certificate's CN becomes the username */
    /* Directive: protocol mqtt|websockets (Mosquitto's), after the listener
     * line: MQTT over WebSockets, wss:// with the listener's TLS files. */
    bool is_websockets;
    char *where; /* owned; "PATH:LINE" of the listener line, NULL if not from a file */
    /* per_listener_settings true: this listener's own auth settings, given
     * after its listener line (allow_anonymous -1 = unset). */
    int allow_anonymous;
    char *password_file; /* owned; NULL: none */
    char *acl_file;      /* owned; NULL: none */
};

/*
 * Bridges (Mosquitto's `connection NAME` blocks): every bridge directive
 * applies to the connection line above it, wherever it is (global
 * directives may come between them, as in Mosquitto); before any connection
 * line it is an error. config_load_file() checks each bridge once the whole
 * file is read (an address and a topic, TLS files given together) and
 * names the connection line on failure.
 */
enum config_bridge_direction {
    CONFIG_BRIDGE_OUT = 1, /* local publishes matching local_prefix+pattern leave */
    CONFIG_BRIDGE_IN = 2,  /* the remote's remote_prefix+pattern are subscribed to and come in */
    CONFIG_BRIDGE_BOTH = 3,
};

/* topic PATTERN [in|out|both] [QOS] [LOCAL_PREFIX REMOTE_PREFIX]; "" for an
 * empty pattern or prefix. Mosquitto's defaults: out, QoS 0. */
struct config_bridge_topic {
    char *pattern;       /* owned; NULL: "" (the prefixes alone name the topic) */
    char *local_prefix;  /* owned; NULL: none */
    char *remote_prefix; /* owned; NULL: none */
    enum config_bridge_direction direction;
    uint8_t qos; /* 0..2 */
};

struct config_bridge_address {
    char *host;    /* owned: a name or a numeric address ([v6] brackets removed) */
    uint16_t port; /* default 1883 */
};

#define CONFIG_DEFAULT_BRIDGE_KEEPALIVE_S      60
#define CONFIG_DEFAULT_BRIDGE_RESTART_BASE_S   5 /* Mosquitto 2's backoff */
#define CONFIG_DEFAULT_BRIDGE_RESTART_CAP_S    30
#define CONFIG_DEFAULT_BRIDGE_MAX_QUEUED       1000000
#define CONFIG_DEFAULT_BRIDGE_MAX_QUEUED_BYTES ((uint64_t)1 << 30)
#define CONFIG_BRIDGE_NAME_MAX                 64

struct config_bridge {
    char *name;                              /* owned; [A-Za-z0-9_.-]{1,64}, unique */
    char *where;                             /* owned; "PATH:LINE" of the connection line */
    struct config_bridge_address *addresses; /* owned array: address/addresses */
    size_t address_count;
    struct config_bridge_topic *topics; /* owned array */
    size_t topic_count;
    char *remote_clientid; /* owned; NULL: "HOSTNAME.NAME" (Mosquitto's default) */
    char *remote_username; /* owned; NULL: none */
    char *remote_password; /* owned; NULL: none */
    bool cleansession;     /* default false */
    bool try_private;      /* default true: CONNECT protocol level | 0x80 */
    bool notifications;    /* default true */
    bool notifications_local_only;
    char *notification_topic; /* owned; NULL: $SYS/broker/connection/REMOTE_CLIENTID/state */
    uint16_t keepalive_s;     /* keepalive_interval, 5..65535 */
    /* restart_timeout BASE [CAP]: one value is a constant delay; two are
     * Mosquitto's backoff (a random delay between BASE and 3x the last one,
     * at most CAP). restart_cap_s 0: constant. */
    uint32_t restart_base_s;
    uint32_t restart_cap_s;
    uint8_t protocol_level; /* bridge_protocol_version: 4 (mqttv311, default) or 3 (mqttv31) */
    char *cafile, *capath, *certfile, *keyfile; /* owned; TLS when cafile or capath is set */
    bool insecure; /* bridge_insecure: no check of the certificate's host name */
    /* Sol's own: what the bridge's queue may hold (entries, payload bytes;
     * 0 = no limit). Past either, a local publish it would take is refused
     * like one to a full store: no PUBACK. */
    uint64_t max_queued_messages;
    uint64_t max_queued_bytes;
};

enum config_storage_sync {
    CONFIG_SYNC_FSYNC = 0, /* a commit is on disk before its acks leave */
    CONFIG_SYNC_NOSYNC,    /* committed to the page cache only */
};

/* log_type values, as a bit set. */
enum config_log_type {
    CONFIG_LOG_ERROR = 1u << 0,
    CONFIG_LOG_WARNING = 1u << 1,
    CONFIG_LOG_NOTICE = 1u << 2,
    CONFIG_LOG_INFORMATION = 1u << 3,
    CONFIG_LOG_DEBUG = 1u << 4,
    CONFIG_LOG_SUBSCRIBE = 1u << 5,
    CONFIG_LOG_UNSUBSCRIBE = 1u << 6,
    CONFIG_LOG_DEFAULT =
        CONFIG_LOG_ERROR | CONFIG_LOG_WARNING | CONFIG_LOG_NOTICE | CONFIG_LOG_INFORMATION,
    CONFIG_LOG_ALL = (1u << 7) - 1,
};

/* log_dest values, as a bit set. */
enum config_log_dest {
    CONFIG_LOG_DEST_STDERR = 1u << 0,
    CONFIG_LOG_DEST_STDOUT = 1u << 1,
    CONFIG_LOG_DEST_FILE = 1u << 2, /* sol_config.log_file */
    CONFIG_LOG_DEST_SYSLOG = 1u << 3,
};

struct sol_config {
    struct config_listener *listeners; /* owned array of listener_count */
    size_t listener_count;
    /* Port of the listener config_apply_defaults() adds when none is
     * configured (main's -p sets it). */
    uint16_t default_port;
    /* Directory of the LMDB store. Directive: persistence_location DIR
     * (the rest of the line, so the path may contain spaces). */
    char persistence_location[CONFIG_PATH_MAX];
    /* Directive: per_listener_settings true|false (before any listener).
     * When true, allow_anonymous, password_file and acl_file belong to the
     * listener line above them, as in Mosquitto; when false they are global. */
    bool per_listener_settings;
    /* -1 unset, 0 or 1. Directive: allow_anonymous true|false.
     * config_apply_defaults() resolves -1 the Mosquitto 2 way. */
    int allow_anonymous;
    /* 0 means no maximum, as in Mosquitto. Directive: max_inflight_messages N
     * (0..65535). */
    uint32_t max_inflight_messages;
    /* 0 means no maximum. Directive: max_queued_messages N (0..INT32_MAX). */
    uint32_t max_queued_messages;
    /* Directive: storage_sync fsync|nosync (Sol's own). */
    enum config_storage_sync storage_sync;
    /* Directive: storage_thread true|false (Sol's own): commit on a thread of
     * its own while the loop reads the next turn (default true). */
    bool storage_thread;
    /* Directive: io_uring true|false (Sol's own): submit a turn's socket
     * reads and writes together through io_uring (default true; plain
     * system calls where the kernel refuses it). */
    bool io_uring;
    /* Bytes, > 0. Directive: storage_max_size N[k|K|M|G] (Sol's own; powers
     * of 1024). */
    uint64_t storage_max_size;
    /* Bit set of enum config_log_type. Directive: log_type
     * error|warning|notice|information|debug|subscribe|unsubscribe|all|none,
     * repeatable: the first log_type line of a config_load_file() call (the
     * file or a file it includes) replaces the set, later lines add to it. */
    unsigned log_types;
    /* Bit set of enum config_log_dest; default stderr. Directive: log_dest
     * stderr|stdout|syslog|none|file PATH, repeatable like log_type. */
    unsigned log_dests;
    char *log_file; /* owned; the PATH of log_dest file (the rest of the line) */
    /* Directive: connection_messages true|false (default true). */
    bool connection_messages;
    /* Owned paths, NULL when unset (the rest of the line). Directives:
     * password_file, acl_file, pid_file. */
    char *password_file;
    char *acl_file;
    char *pid_file;
    /* Payload bytes queued per session (clean sessions too); 0 = no limit.
     * Directive: max_queued_bytes N (0..INT64_MAX; Sol also takes k, M, G
     * suffixes). Default CONFIG_DEFAULT_MAX_QUEUED_BYTES (Mosquitto's: 0). */
    uint64_t max_queued_bytes;
    /* Mosquitto 2's max_packet_size: the largest packet (all of it, not just
     * the payload) a client may send, so also the most input one client can
     * make the broker buffer; 0 = the protocol maximum. Directive:
     * max_packet_size N (k, M, G suffixes; 0 = no limit). Default
     * CONFIG_DEFAULT_MAX_PACKET_SIZE. */
    uint64_t max_packet_size;
    /* Sol's own: subscriptions one client may hold, and all clients together;
     * over either, SUBACK 0x80 for that filter. 0 = no limit. Directives:
     * max_subscriptions_per_client N, max_subscriptions N (0..INT32_MAX). */
    uint32_t max_subscriptions_per_client;
    uint32_t max_subscriptions;
    /* Sol's own: input bytes buffered for unfinished packets, all connections
     * together; over it the broker stops reading from the connections with
     * the largest unfinished packets until others finish. 0 = no limit.
     * Directive: max_input_buffer_bytes N (k, M, G suffixes). */
    uint64_t max_input_buffer_bytes;
    /* Sol's own: QoS 0 messages to a client whose unsent output exceeds this
     * many bytes are dropped (and counted), so a stalled reader cannot make the
     * broker buffer without bound. Directive: max_output_buffer_bytes N (> 0;
     * k, M, G suffixes). Default 16M. */
    uint64_t max_output_buffer_bytes;
    /* Largest PUBLISH payload in bytes; 0 = no limit (default). A client
     * sending a larger packet is disconnected. Directive: message_size_limit N
     * (0..CONFIG_MAX_MESSAGE_SIZE_LIMIT). */
    uint32_t message_size_limit;
    /* Concurrent connections; 0 = no limit. Directive: max_connections N
     * (-1 or 0 = no limit, as in Mosquitto; default -1). */
    uint32_t max_connections;
    /* Largest keepalive a client may ask for, seconds; 0 = no limit (Sol's
     * default; Mosquitto's is 65535). With a limit, keepalive 0 is refused too,
     * as in Mosquitto. Directive: max_keepalive N (0..65535). */
    uint16_t max_keepalive;
    /* Levels a topic or filter may have (Mosquitto hard-codes 200); deeper
     * ones are refused. Directive: max_topic_levels N (1..65535, Sol's own). */
    uint32_t max_topic_levels;
    /* Seconds between $SYS updates; 0 = no $SYS. Directive: sys_interval N
     * (0..65535, default 10). */
    uint32_t sys_interval;
    /* Directive: retain_available true|false (default true). */
    bool retain_available;
    /* Shared subscriptions ("$share/GROUP/FILTER"); false: refused (MQTT 5
     * SUBACK 0x9E, 3.1.1 0x80), CONNACK says Shared Subscription Available 0,
     * and stored ones are kept but get no messages. Directive:
     * shared_subscriptions true|false (Sol's own; default true). */
    bool shared_subscriptions;
    /* MQTT 5: the Receive Maximum Sol sends in CONNACK: QoS 1/2 PUBLISH a
     * client may have unacknowledged at once (one over it: DISCONNECT 0x93).
     * Directive: receive_maximum N (1..65535, Sol's own; default 100). */
    uint16_t receive_maximum;
    /* MQTT 5: Topic Alias Maximum, as Mosquitto: the aliases a client may
     * use towards Sol (sent in CONNACK), and the most Sol assigns towards a
     * client that accepts them. 0: no aliases. Directive: max_topic_alias N
     * (0..65535; default 10). */
    uint16_t max_topic_alias;
    /* Seconds; 0 = persistent sessions never expire (default). Directive:
     * persistent_client_expiration N{h|d|w|m|y} (hours, days, weeks, months of
     * 30 days, years of 365 days, as Mosquitto; Sol also takes s for seconds). */
    uint64_t persistent_client_expiration_s;
    /* Sol's own: the Prometheus endpoint (GET /metrics). Directive:
     * metrics_listener PORT [ADDRESS] (1..65535; ADDRESS a numeric IPv4 or
     * IPv6 address, every address when left out); a later line replaces an
     * earlier one. metrics_port 0: off (the default). */
    uint16_t metrics_port;
    char *metrics_address; /* owned; NULL: every address */
    char *metrics_where;   /* owned; "PATH:LINE" of the directive, for messages */
    /* Bridges, in file order (see struct config_bridge). */
    struct config_bridge *bridges; /* owned array */
    size_t bridge_count;
};

/* Sets every field to its default: no listeners, allow_anonymous -1,
 * default_port 1883, and the CONFIG_DEFAULT_* values. Allocates nothing. */
void config_init(struct sol_config *cfg);

/* Frees what cfg owns (listeners, paths) and re-initialises it.
 * Safe to call twice. */
void config_deinit(struct sol_config *cfg);

/*
 * Reads directives from path into cfg (initialised with config_init(), maybe
 * already filled by an earlier file; later lines override earlier ones,
 * listeners accumulate). Returns 0, or -1 with a NUL-terminated message in
 * err[0..err_len) (truncated to fit; err may be NULL only if err_len is 0):
 *   "PATH:LINE: unknown directive 'NAME'"
 *   "PATH:LINE: NAME: missing value" / "NAME: unexpected extra value 'V'"
 *   "PATH:LINE: NAME: 'V' is not an integer" / "...'V' is out of range MIN..MAX"
 *   "PATH:LINE: NAME: 'V' is not true or false" (and likewise per directive)
 *   "PATH:LINE: NAME: must follow a listener line" (per-listener settings)
 *   "PATH:LINE: include_dir: cannot read DIR: REASON"
 *   "PATH:LINE: out of memory"
 *   "PATH: cannot read: REASON" when the file cannot be opened or read.
 * include_dir DIR reads DIR's *.conf files in strcmp order (case-sensitive,
 * as Mosquitto), each with its own PATH:LINE in messages; nesting deeper
 * than CONFIG_INCLUDE_DEPTH_MAX is an error.
 * On failure cfg keeps what the lines before the bad one set; the caller is
 * expected to config_deinit() it.
 */
int config_load_file(struct sol_config *cfg, const char *path, char *err, size_t err_len);

/*
 * Appends a listener without TLS; copies bind_address and unix_path (either
 * may be NULL). Returns 0 or -ENOMEM (cfg unchanged).
 */
int config_add_listener(struct sol_config *cfg, uint16_t port, const char *bind_address,
                        const char *unix_path);

/*
 * Call once after loading, before using cfg. Mosquitto 2's secure defaults:
 * with no listener configured, adds CONFIG_DEFAULT_BIND_ADDRESS:default_port
 * and, if allow_anonymous is unset, allows anonymous clients; with a listener
 * configured, an unset allow_anonymous becomes 0.
 * Returns 0 or -ENOMEM (cfg unchanged).
 */
int config_apply_defaults(struct sol_config *cfg);

/*
 * The TLS settings of every listener make sense together (certfile with
 * keyfile, require_certificate with cafile, ...) and their files are
 * readable (config_check.c). Returns 0, or -1 with
 * "FILE:LINE: listener PORT: problem" in err.
 */
int config_check_tls(const struct sol_config *cfg, char *err, size_t err_len);

#endif /* SOL_CONFIG_H */
