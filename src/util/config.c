/*
 * config.c - defaults and the Mosquitto-style config file parser.
 *
 * A line is "name args", split on spaces and tabs; blank lines and lines whose
 * first non-blank character is '#' are skipped; trailing blanks and a CR (from
 * CRLF files) are ignored. Each directive has one handler that checks its
 * arguments and sets a field; the first problem ends the load with
 * "PATH:LINE: message". Not for: acting on the values or logging.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/un.h>

#define BLANKS   " \t"
#define MAX_ARGS 2 /* the most any directive takes */

struct parser {
    struct sol_config *cfg;
    const char *path;
    unsigned line_no;
    const char *name; /* the directive being parsed, for messages */
    bool has_log_type;
    bool has_log_dest;
    int depth; /* include_dir nesting, 0 for the file given to config_load_file */
    char *err;
    size_t err_len;
};

void config_init(struct sol_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->default_port = CONFIG_DEFAULT_PORT;
    snprintf(cfg->persistence_location, sizeof(cfg->persistence_location), "%s",
             CONFIG_DEFAULT_PERSISTENCE_LOCATION);
    cfg->allow_anonymous = -1;
    cfg->max_inflight_messages = CONFIG_DEFAULT_MAX_INFLIGHT;
    cfg->max_queued_messages = CONFIG_DEFAULT_MAX_QUEUED;
    cfg->max_topic_levels = CONFIG_DEFAULT_MAX_TOPIC_LEVELS;
    cfg->storage_sync = CONFIG_SYNC_FSYNC;
    cfg->storage_thread = true;
    cfg->io_uring = true;
    cfg->storage_max_size = CONFIG_DEFAULT_STORAGE_MAX_SIZE;
    cfg->log_types = CONFIG_LOG_DEFAULT;
    cfg->log_dests = CONFIG_LOG_DEST_STDERR;
    cfg->connection_messages = true;
    cfg->sys_interval = CONFIG_DEFAULT_SYS_INTERVAL_S;
    cfg->retain_available = true;
    cfg->shared_subscriptions = true;
    cfg->receive_maximum = CONFIG_DEFAULT_RECEIVE_MAXIMUM;
    cfg->max_topic_alias = CONFIG_DEFAULT_MAX_TOPIC_ALIAS;
    cfg->max_output_buffer_bytes = CONFIG_DEFAULT_MAX_OUTPUT_BUFFER;
    cfg->max_queued_bytes = CONFIG_DEFAULT_MAX_QUEUED_BYTES;
    cfg->max_packet_size = CONFIG_DEFAULT_MAX_PACKET_SIZE;
    cfg->max_subscriptions_per_client = CONFIG_DEFAULT_MAX_SUBS_PER_CLIENT;
    cfg->max_subscriptions = CONFIG_DEFAULT_MAX_SUBSCRIPTIONS;
    cfg->max_input_buffer_bytes = CONFIG_DEFAULT_MAX_INPUT_BUFFER;
}

static void listener_deinit(struct config_listener *l)
{
    free(l->bind_address);
    free(l->unix_path);
    free(l->cafile);
    free(l->certfile);
    free(l->keyfile);
    free(l->tls_version);
    free(l->where);
    free(l->password_file);
    free(l->acl_file);
}

static void bridge_deinit(struct config_bridge *b)
{
    for (size_t i = 0; i < b->address_count; i++)
        free(b->addresses[i].host);
    free(b->addresses);
    for (size_t i = 0; i < b->topic_count; i++) {
        free(b->topics[i].pattern);
        free(b->topics[i].local_prefix);
        free(b->topics[i].remote_prefix);
    }
    free(b->topics);
    free(b->name);
    free(b->where);
    free(b->remote_clientid);
    free(b->remote_username);
    free(b->remote_password);
    free(b->notification_topic);
    free(b->cafile);
    free(b->capath);
    free(b->certfile);
    free(b->keyfile);
}

void config_deinit(struct sol_config *cfg)
{
    for (size_t i = 0; i < cfg->listener_count; i++)
        listener_deinit(&cfg->listeners[i]);
    free(cfg->listeners);
    for (size_t i = 0; i < cfg->bridge_count; i++)
        bridge_deinit(&cfg->bridges[i]);
    free(cfg->bridges);
    free(cfg->log_file);
    free(cfg->password_file);
    free(cfg->acl_file);
    free(cfg->pid_file);
    free(cfg->metrics_address);
    free(cfg->metrics_where);
    config_init(cfg);
}

/* strdup(NULL) is NULL; sets *failed when a copy cannot be made. */
static char *copy_or_null(const char *s, bool *failed)
{
    if (s == NULL)
        return NULL;
    char *copy = strdup(s);
    if (copy == NULL)
        *failed = true;
    return copy;
}

int config_add_listener(struct sol_config *cfg, uint16_t port, const char *bind_address,
                        const char *unix_path)
{
    bool failed = false;
    struct config_listener l = {.port = port,
                                .allow_anonymous = -1,
                                .bind_address = copy_or_null(bind_address, &failed),
                                .unix_path = copy_or_null(unix_path, &failed)};
    struct config_listener *list = NULL;
    if (!failed)
        list = realloc(cfg->listeners, (cfg->listener_count + 1) * sizeof(*list));
    if (list == NULL) {
        free(l.bind_address);
        free(l.unix_path);
        return -ENOMEM;
    }
    list[cfg->listener_count++] = l;
    cfg->listeners = list;
    return 0;
}

int config_apply_defaults(struct sol_config *cfg)
{
    if (cfg->listener_count > 0) {
        if (cfg->allow_anonymous == -1)
            cfg->allow_anonymous = 0; /* Mosquitto 2: explicit opt-in with a listener */
        for (size_t i = 0; i < cfg->listener_count; i++)
            if (cfg->listeners[i].allow_anonymous == -1)
                cfg->listeners[i].allow_anonymous = 0;
        return 0;
    }
    if (config_add_listener(cfg, cfg->default_port, CONFIG_DEFAULT_BIND_ADDRESS, NULL) != 0)
        return -ENOMEM;
    if (cfg->allow_anonymous == -1)
        cfg->allow_anonymous = 1; /* Mosquitto 2: local-only broker, open by default */
    cfg->listeners[0].allow_anonymous = cfg->allow_anonymous;
    return 0;
}

/* ---- messages ------------------------------------------------------------ */

/* Writes "PATH:LINE: " and the message into p->err; returns -1. */
__attribute__((format(printf, 2, 3))) static int fail(const struct parser *p, const char *fmt, ...)
{
    if (p->err == NULL || p->err_len == 0)
        return -1;
    int n = snprintf(p->err, p->err_len, "%s:%u: ", p->path, p->line_no);
    if (n < 0 || (size_t)n >= p->err_len)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err + n, p->err_len - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static int fail_value(const struct parser *p, const char *value, const char *what)
{
    return fail(p, "%s: '%s' is not %s", p->name, value, what);
}

/* ---- values -------------------------------------------------------------- */

/*
 * Splits args into blank-separated words, in place. Needs between min and
 * max words (words[] holds max). Returns the count, or -1 with a message.
 */
static int split_args(const struct parser *p, char *args, char **words, int min, int max)
{
    int n = 0;
    char *save = NULL;
    for (char *w = strtok_r(args, BLANKS, &save); w != NULL; w = strtok_r(NULL, BLANKS, &save)) {
        if (n == max)
            return fail(p, "%s: unexpected extra value '%s'", p->name, w);
        words[n++] = w;
    }
    if (n < min)
        return fail(p, "%s: missing value", p->name);
    return n;
}

/* The one word of a single-valued directive, or NULL with a message. */
static char *one_arg(const struct parser *p, char *args)
{
    char *word = NULL;
    return split_args(p, args, &word, 1, 1) == 1 ? word : NULL;
}

/* Parses a base-10 integer in [min, max] with strtol and full checks. */
static int parse_long(const struct parser *p, const char *s, long min, long max, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || (s[0] != '-' && s[0] != '+' && (s[0] < '0' || s[0] > '9')))
        return fail_value(p, s, "an integer");
    if (errno == ERANGE || v < min || v > max)
        return fail(p, "%s: '%s' is out of range %ld..%ld", p->name, s, min, max);
    *out = v;
    return 0;
}

static int parse_bool(const struct parser *p, const char *s, int *out)
{
    if (strcmp(s, "true") == 0)
        *out = 1;
    else if (strcmp(s, "false") == 0)
        *out = 0;
    else
        return fail_value(p, s, "true or false");
    return 0;
}

/* The shift of a size suffix ("" k K M G), or -1. */
static int size_shift(const char *suffix)
{
    if (suffix[0] == '\0')
        return 0;
    if (suffix[1] != '\0')
        return -1;
    switch (suffix[0]) {
    case 'k':
    case 'K':
        return 10;
    case 'M':
        return 20;
    case 'G':
        return 30;
    default:
        return -1;
    }
}

/* Parses a positive byte count with an optional k/K/M/G suffix (x1024). */
static int parse_size(const struct parser *p, const char *s, uint64_t *out)
{
    const char *what = "a positive size (bytes, or with suffix k, M or G)";
    if (s[0] < '0' || s[0] > '9') /* strtoull would accept "-1" */
        return fail_value(p, s, what);
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    int shift = size_shift(end);
    if (errno == ERANGE || shift < 0 || v == 0 || v > (UINT64_MAX >> shift))
        return fail_value(p, s, what);
    *out = (uint64_t)v << shift;
    return 0;
}

/* ---- directives ---------------------------------------------------------- */

/* listener PORT [ADDRESS]; port 0 with a path is a unix socket (Mosquitto 2). */
static int do_listener(struct parser *p, char *args)
{
    char *words[MAX_ARGS] = {NULL, NULL};
    long port = 0;
    if (split_args(p, args, words, 1, 2) < 0 || parse_long(p, words[0], 0, 65535, &port) != 0)
        return -1;
    const char *address = words[1];
    const char *unix_path = NULL;
    if (port == 0) {
        if (address == NULL)
            return fail(p,
                        "listener: port 0 needs a unix socket path (listener 0 /path/to/socket)");
        if (strlen(address) >= sizeof(((struct sockaddr_un *)NULL)->sun_path))
            return fail(p, "listener: unix socket path is longer than %zu bytes",
                        sizeof(((struct sockaddr_un *)NULL)->sun_path) - 1);
        unix_path = address;
        address = NULL;
    }
    char where[CONFIG_PATH_MAX + 16];
    snprintf(where, sizeof(where), "%s:%u", p->path, p->line_no);
    if (config_add_listener(p->cfg, (uint16_t)port, address, unix_path) != 0)
        return fail(p, "out of memory");
    struct config_listener *l = &p->cfg->listeners[p->cfg->listener_count - 1];
    l->where = strdup(where);
    if (l->where == NULL)
        return fail(p, "out of memory");
    return 0;
}

/* True for a numeric IPv4 or IPv6 address (no name: resolving one at
 * start-up would make the endpoint depend on DNS). */
static bool is_numeric_address(const char *s)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* metrics_listener PORT [ADDRESS] (Sol's own): the Prometheus endpoint. */
static int do_metrics_listener(struct parser *p, char *args)
{
    char *words[MAX_ARGS] = {NULL, NULL};
    long port = 0;
    if (split_args(p, args, words, 1, 2) < 0 || parse_long(p, words[0], 1, 65535, &port) != 0)
        return -1;
    if (words[1] != NULL && !is_numeric_address(words[1]))
        return fail_value(p, words[1], "a numeric IPv4 or IPv6 address");
    char where[CONFIG_PATH_MAX + 16];
    snprintf(where, sizeof(where), "%s:%u", p->path, p->line_no);
    char *address = words[1] != NULL ? strdup(words[1]) : NULL;
    char *where_copy = strdup(where);
    if ((words[1] != NULL && address == NULL) || where_copy == NULL) {
        free(address);
        free(where_copy);
        return fail(p, "out of memory");
    }
    free(p->cfg->metrics_address);
    free(p->cfg->metrics_where);
    p->cfg->metrics_port = (uint16_t)port;
    p->cfg->metrics_address = address;
    p->cfg->metrics_where = where_copy;
    return 0;
}

/* persistence_location DIR: the rest of the line, so DIR may hold spaces. */
static int do_persistence_location(struct parser *p, char *args)
{
    size_t len = strlen(args);
    if (len == 0)
        return fail(p, "%s: missing value", p->name);
    if (len >= sizeof(p->cfg->persistence_location))
        return fail(p, "%s: path is longer than %zu bytes", p->name,
                    sizeof(p->cfg->persistence_location) - 1);
    memcpy(p->cfg->persistence_location, args, len + 1);
    return 0;
}

/* With per_listener_settings, the listener an auth directive belongs to
 * (NULL after an error); without, NULL and no error: the setting is global. */
static struct config_listener *auth_listener(struct parser *p, bool *failed);
static int one_bool(struct parser *p, char *args, bool *out);

static int do_allow_anonymous(struct parser *p, char *args)
{
    bool failed = false;
    struct config_listener *l = auth_listener(p, &failed);
    char *word = failed ? NULL : one_arg(p, args);
    if (word == NULL)
        return -1;
    return parse_bool(p, word, l != NULL ? &l->allow_anonymous : &p->cfg->allow_anonymous);
}

static int do_per_listener_settings(struct parser *p, char *args)
{
    if (p->cfg->listener_count > 0)
        return fail(p, "%s: must come before the first listener", p->name);
    return one_bool(p, args, &p->cfg->per_listener_settings);
}

static int do_max_inflight_messages(struct parser *p, char *args)
{
    char *word = one_arg(p, args);
    long v = 0;
    if (word == NULL || parse_long(p, word, 0, 65535, &v) != 0)
        return -1;
    p->cfg->max_inflight_messages = (uint32_t)v;
    return 0;
}

static int do_max_queued_messages(struct parser *p, char *args)
{
    char *word = one_arg(p, args);
    long v = 0;
    if (word == NULL || parse_long(p, word, 0, INT32_MAX, &v) != 0)
        return -1;
    p->cfg->max_queued_messages = (uint32_t)v;
    return 0;
}

static int do_storage_sync(struct parser *p, char *args)
{
    char *word = one_arg(p, args);
    if (word == NULL)
        return -1;
    if (strcmp(word, "fsync") == 0)
        p->cfg->storage_sync = CONFIG_SYNC_FSYNC;
    else if (strcmp(word, "nosync") == 0)
        p->cfg->storage_sync = CONFIG_SYNC_NOSYNC;
    else
        return fail_value(p, word, "fsync or nosync");
    return 0;
}

static int do_storage_max_size(struct parser *p, char *args)
{
    char *word = one_arg(p, args);
    return word != NULL ? parse_size(p, word, &p->cfg->storage_max_size) : -1;
}

static const struct {
    const char *name;
    unsigned bits;
} log_type_names[] = {
    {"error", CONFIG_LOG_ERROR},
    {"warning", CONFIG_LOG_WARNING},
    {"notice", CONFIG_LOG_NOTICE},
    {"information", CONFIG_LOG_INFORMATION},
    {"debug", CONFIG_LOG_DEBUG},
    {"subscribe", CONFIG_LOG_SUBSCRIBE},
    {"unsubscribe", CONFIG_LOG_UNSUBSCRIBE},
    {"all", CONFIG_LOG_ALL},
    {"none", 0},
};

/* log_type TYPE, repeatable: the file's first one replaces the default set. */
static int do_log_type(struct parser *p, char *args)
{
    char *word = one_arg(p, args);
    if (word == NULL)
        return -1;
    for (size_t i = 0; i < sizeof(log_type_names) / sizeof(log_type_names[0]); i++) {
        if (strcmp(word, log_type_names[i].name) != 0)
            continue;
        if (!p->has_log_type)
            p->cfg->log_types = 0;
        p->has_log_type = true;
        p->cfg->log_types |= log_type_names[i].bits;
        return 0;
    }
    return fail_value(p, word,
                      "one of error, warning, notice, information, debug, subscribe, "
                      "unsubscribe, all, none");
}

/* A path: the rest of the line (it may hold spaces), replacing *field. */
static int set_path(struct parser *p, char *args, char **field)
{
    size_t len = strlen(args);
    if (len == 0)
        return fail(p, "%s: missing value", p->name);
    if (len >= CONFIG_PATH_MAX)
        return fail(p, "%s: path is longer than %d bytes", p->name, CONFIG_PATH_MAX - 1);
    char *copy = strdup(args);
    if (copy == NULL)
        return fail(p, "out of memory");
    free(*field);
    *field = copy;
    return 0;
}

/* The one word of args as an integer in [min, max]. */
static int one_long(struct parser *p, char *args, long min, long max, long *out)
{
    char *word = one_arg(p, args);
    return word != NULL ? parse_long(p, word, min, max, out) : -1;
}

static int one_bool(struct parser *p, char *args, bool *out)
{
    char *word = one_arg(p, args);
    int v = 0;
    if (word == NULL || parse_bool(p, word, &v) != 0)
        return -1;
    *out = v == 1;
    return 0;
}

/* The listener that per-listener settings apply to: the last one. */
static struct config_listener *current_listener(struct parser *p)
{
    if (p->cfg->listener_count == 0) {
        fail(p, "%s: must follow a listener line", p->name);
        return NULL;
    }
    return &p->cfg->listeners[p->cfg->listener_count - 1];
}

static int do_cafile(struct parser *p, char *args)
{
    struct config_listener *l = current_listener(p);
    return l != NULL ? set_path(p, args, &l->cafile) : -1;
}

static int do_certfile(struct parser *p, char *args)
{
    struct config_listener *l = current_listener(p);
    return l != NULL ? set_path(p, args, &l->certfile) : -1;
}

static int do_keyfile(struct parser *p, char *args)
{
    struct config_listener *l = current_listener(p);
    return l != NULL ? set_path(p, args, &l->keyfile) : -1;
}

/* tls_version tlsv1.3|tlsv1.2: the minimum version. Mosquitto 2 also takes
 * tlsv1.1; Sol does not (OpenSSL 3 refuses it at its default security level). */
static int do_tls_version(struct parser *p, char *args)
{
    struct config_listener *l = current_listener(p);
    char *word = l != NULL ? one_arg(p, args) : NULL;
    if (word == NULL)
        return -1;
    if (strcmp(word, "tlsv1.3") != 0 && strcmp(word, "tlsv1.2") != 0)
        return fail_value(p, word, "tlsv1.2 or tlsv1.3");
    return set_path(p, word, &l->tls_version);
}

static int do_require_certificate(struct parser *p, char *args)
{
    struct config_listener *l = current_listener(p);
    return l != NULL ? one_bool(p, args, &l->require_certificate) : -1;
}

static int do_use_identity_as_username(struct parser *p, char *args)
{
    struct config_listener *l = current_listener(p);
    return l != NULL ? one_bool(p, args, &l->use_identity_as_username) : -1;
}

/* protocol mqtt|websockets: what the listener line above speaks. */
static int do_protocol(struct parser *p, char *args)
{
    struct config_listener *l = current_listener(p);
    char *word = l != NULL ? one_arg(p, args) : NULL;
    if (word == NULL)
        return -1;
    if (strcmp(word, "mqtt") != 0 && strcmp(word, "websockets") != 0)
        return fail_value(p, word, "mqtt or websockets");
    l->is_websockets = strcmp(word, "websockets") == 0;
    return 0;
}

static struct config_listener *auth_listener(struct parser *p, bool *failed)
{
    if (!p->cfg->per_listener_settings)
        return NULL;
    if (p->cfg->listener_count == 0) {
        fail(p, "%s: must follow a listener line (per_listener_settings is true)", p->name);
        *failed = true;
        return NULL;
    }
    return &p->cfg->listeners[p->cfg->listener_count - 1];
}

static int do_password_file(struct parser *p, char *args)
{
    bool failed = false;
    struct config_listener *l = auth_listener(p, &failed);
    if (failed)
        return -1;
    return set_path(p, args, l != NULL ? &l->password_file : &p->cfg->password_file);
}

static int do_acl_file(struct parser *p, char *args)
{
    bool failed = false;
    struct config_listener *l = auth_listener(p, &failed);
    if (failed)
        return -1;
    return set_path(p, args, l != NULL ? &l->acl_file : &p->cfg->acl_file);
}

static int do_pid_file(struct parser *p, char *args)
{
    return set_path(p, args, &p->cfg->pid_file);
}

/* max_output_buffer_bytes N: a size > 0, as storage_max_size. */
static int do_max_output_buffer_bytes(struct parser *p, char *args)
{
    char *word = one_arg(p, args);
    return word != NULL ? parse_size(p, word, &p->cfg->max_output_buffer_bytes) : -1;
}

/* NAME N: 0 (no limit) or a size, as storage_max_size. */
static int one_size_or_zero(struct parser *p, char *args, uint64_t *out)
{
    char *word = one_arg(p, args);
    if (word == NULL)
        return -1;
    if (strcmp(word, "0") == 0) {
        *out = 0;
        return 0;
    }
    return parse_size(p, word, out);
}

static int do_max_queued_bytes(struct parser *p, char *args)
{
    return one_size_or_zero(p, args, &p->cfg->max_queued_bytes);
}

static int do_max_packet_size(struct parser *p, char *args)
{
    return one_size_or_zero(p, args, &p->cfg->max_packet_size);
}

static int do_max_input_buffer_bytes(struct parser *p, char *args)
{
    return one_size_or_zero(p, args, &p->cfg->max_input_buffer_bytes);
}

static int do_max_subscriptions_per_client(struct parser *p, char *args)
{
    long v = 0;
    if (one_long(p, args, 0, INT32_MAX, &v) != 0)
        return -1;
    p->cfg->max_subscriptions_per_client = (uint32_t)v;
    return 0;
}

static int do_max_subscriptions(struct parser *p, char *args)
{
    long v = 0;
    if (one_long(p, args, 0, INT32_MAX, &v) != 0)
        return -1;
    p->cfg->max_subscriptions = (uint32_t)v;
    return 0;
}

static int do_message_size_limit(struct parser *p, char *args)
{
    long v = 0;
    if (one_long(p, args, 0, CONFIG_MAX_MESSAGE_SIZE_LIMIT, &v) != 0)
        return -1;
    p->cfg->message_size_limit = (uint32_t)v;
    return 0;
}

/* max_connections N: -1 (Mosquitto's default) and 0 both mean no limit. */
static int do_max_connections(struct parser *p, char *args)
{
    long v = 0;
    if (one_long(p, args, -1, INT32_MAX, &v) != 0)
        return -1;
    p->cfg->max_connections = v < 0 ? 0 : (uint32_t)v;
    return 0;
}

static int do_max_keepalive(struct parser *p, char *args)
{
    long v = 0;
    if (one_long(p, args, 0, 65535, &v) != 0)
        return -1;
    p->cfg->max_keepalive = (uint16_t)v;
    return 0;
}

static int do_max_topic_levels(struct parser *p, char *args)
{
    long v = 0;
    if (one_long(p, args, 1, 65535, &v) != 0)
        return -1;
    p->cfg->max_topic_levels = (uint32_t)v;
    return 0;
}

static int do_receive_maximum(struct parser *p, char *args)
{
    long v = 0;
    if (one_long(p, args, 1, 65535, &v) != 0)
        return -1;
    p->cfg->receive_maximum = (uint16_t)v;
    return 0;
}

static int do_max_topic_alias(struct parser *p, char *args)
{
    long v = 0;
    if (one_long(p, args, 0, 65535, &v) != 0)
        return -1;
    p->cfg->max_topic_alias = (uint16_t)v;
    return 0;
}

static int do_sys_interval(struct parser *p, char *args)
{
    long v = 0;
    if (one_long(p, args, 0, 65535, &v) != 0)
        return -1;
    p->cfg->sys_interval = (uint32_t)v;
    return 0;
}

static int do_connection_messages(struct parser *p, char *args)
{
    return one_bool(p, args, &p->cfg->connection_messages);
}

static int do_storage_thread(struct parser *p, char *args)
{
    return one_bool(p, args, &p->cfg->storage_thread);
}

static int do_io_uring(struct parser *p, char *args)
{
    return one_bool(p, args, &p->cfg->io_uring);
}

static int do_retain_available(struct parser *p, char *args)
{
    return one_bool(p, args, &p->cfg->retain_available);
}

static int do_shared_subscriptions(struct parser *p, char *args)
{
    return one_bool(p, args, &p->cfg->shared_subscriptions);
}

/* Seconds per unit of a Mosquitto duration ("m" is a 30-day month), or 0. */
static uint64_t duration_unit_s(const char *unit)
{
    if (unit[0] == '\0' || unit[1] != '\0')
        return 0;
    switch (unit[0]) {
    case 's': /* Sol's own, for tests and short-lived deployments */
        return 1;
    case 'h':
        return 3600;
    case 'd':
        return 86400;
    case 'w':
        return 7 * 86400;
    case 'm':
        return 30 * 86400;
    case 'y':
        return 365 * 86400;
    default:
        return 0;
    }
}

/* persistent_client_expiration N{s|h|d|w|m|y}, N > 0. */
static int do_persistent_client_expiration(struct parser *p, char *args)
{
    char *word = one_arg(p, args);
    if (word == NULL)
        return -1;
    const char *what = "a duration (a positive number followed by h, d, w, m or y)";
    if (word[0] < '0' || word[0] > '9')
        return fail_value(p, word, what);
    char *end = NULL;
    errno = 0;
    unsigned long long n = strtoull(word, &end, 10);
    uint64_t unit_s = duration_unit_s(end);
    if (errno == ERANGE || unit_s == 0 || n == 0 || n > UINT64_MAX / unit_s)
        return fail_value(p, word, what);
    p->cfg->persistent_client_expiration_s = (uint64_t)n * unit_s;
    return 0;
}

static unsigned log_dest_bits(const char *word)
{
    if (strcmp(word, "stderr") == 0)
        return CONFIG_LOG_DEST_STDERR;
    if (strcmp(word, "stdout") == 0)
        return CONFIG_LOG_DEST_STDOUT;
    if (strcmp(word, "syslog") == 0)
        return CONFIG_LOG_DEST_SYSLOG;
    if (strcmp(word, "file") == 0)
        return CONFIG_LOG_DEST_FILE;
    return 0;
}

/* log_dest stderr|stdout|syslog|none|file PATH, repeatable: the file's first
 * one replaces the default (stderr), later ones add. */
static int do_log_dest(struct parser *p, char *args)
{
    size_t word_len = strcspn(args, BLANKS);
    char *rest = args + word_len;
    if (*rest != '\0')
        *rest++ = '\0';
    rest += strspn(rest, BLANKS);
    if (args[0] == '\0')
        return fail(p, "%s: missing value", p->name);
    unsigned bits = log_dest_bits(args);
    if (bits == 0 && strcmp(args, "none") != 0)
        return fail_value(p, args, "one of stderr, stdout, syslog, none, file PATH");
    if (bits == CONFIG_LOG_DEST_FILE) {
        if (set_path(p, rest, &p->cfg->log_file) != 0)
            return -1;
    } else if (rest[0] != '\0') {
        return fail(p, "%s: unexpected extra value '%s'", p->name, rest);
    }
    if (!p->has_log_dest)
        p->cfg->log_dests = 0;
    p->has_log_dest = true;
    p->cfg->log_dests |= bits;
    return 0;
}

/* ---- bridges ------------------------------------------------------------ */

#define BRIDGE_WORDS_MAX 8 /* the most words a bridge directive takes (address lists) */

/* The bridge that bridge directives apply to: the last connection line. */
static struct config_bridge *current_bridge(struct parser *p)
{
    if (p->cfg->bridge_count == 0) {
        fail(p, "%s: must follow a connection line", p->name);
        return NULL;
    }
    return &p->cfg->bridges[p->cfg->bridge_count - 1];
}

static bool is_bridge_name(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > CONFIG_BRIDGE_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

static void bridge_defaults(struct config_bridge *b)
{
    *b = (struct config_bridge){
        .try_private = true,
        .notifications = true,
        .keepalive_s = CONFIG_DEFAULT_BRIDGE_KEEPALIVE_S,
        .restart_base_s = CONFIG_DEFAULT_BRIDGE_RESTART_BASE_S,
        .restart_cap_s = CONFIG_DEFAULT_BRIDGE_RESTART_CAP_S,
        .protocol_level = 4,
        .max_queued_messages = CONFIG_DEFAULT_BRIDGE_MAX_QUEUED,
        .max_queued_bytes = CONFIG_DEFAULT_BRIDGE_MAX_QUEUED_BYTES,
    };
}

/* connection NAME: starts a bridge. */
static int do_connection(struct parser *p, char *args)
{
    char *name = one_arg(p, args);
    if (name == NULL)
        return -1;
    if (!is_bridge_name(name))
        return fail(p, "connection: '%s' is not a bridge name (1 to %d of A-Z a-z 0-9 _ . -)", name,
                    CONFIG_BRIDGE_NAME_MAX);
    for (size_t i = 0; i < p->cfg->bridge_count; i++) {
        if (strcmp(p->cfg->bridges[i].name, name) == 0)
            return fail(p, "connection: duplicate bridge name '%s' (first at %s)", name,
                        p->cfg->bridges[i].where);
    }
    struct config_bridge *list =
        realloc(p->cfg->bridges, (p->cfg->bridge_count + 1) * sizeof(*list));
    if (list == NULL)
        return fail(p, "out of memory");
    p->cfg->bridges = list;
    struct config_bridge *b = &list[p->cfg->bridge_count];
    bridge_defaults(b);
    char where[CONFIG_PATH_MAX + 16];
    snprintf(where, sizeof(where), "%s:%u", p->path, p->line_no);
    b->name = strdup(name);
    b->where = strdup(where);
    p->cfg->bridge_count++; /* freed by config_deinit from here, whatever happens */
    if (b->name == NULL || b->where == NULL)
        return fail(p, "out of memory");
    return 0;
}

/* host, host:port, [v6] or [v6]:port into a (host owned by *out). */
static int parse_address(struct parser *p, const char *word, struct config_bridge_address *out)
{
    const char *host = word, *port_s = NULL;
    size_t host_len = strlen(word);
    const char *colon = strrchr(word, ':');
    if (word[0] == '[') {
        const char *close = strchr(word, ']');
        if (close == NULL || (close[1] != '\0' && close[1] != ':'))
            return fail_value(p, word, "an address (host[:port] or [IPv6][:port])");
        host = word + 1;
        host_len = (size_t)(close - host);
        port_s = close[1] == ':' ? close + 2 : NULL;
    } else if (colon != NULL && strchr(word, ':') == colon) {
        host_len = (size_t)(colon - word);
        port_s = colon + 1;
    }
    long port = 1883;
    if (host_len == 0 || (port_s != NULL && parse_long(p, port_s, 1, 65535, &port) != 0))
        return host_len == 0 ? fail_value(p, word, "an address (host[:port])") : -1;
    out->host = strndup(host, host_len);
    out->port = (uint16_t)port;
    return out->host != NULL ? 0 : fail(p, "out of memory");
}

/* address host[:port] [host[:port]...] (also "addresses"): appended in order;
 * the bridge tries them in turn. */
static int do_address(struct parser *p, char *args)
{
    struct config_bridge *b = current_bridge(p);
    char *words[BRIDGE_WORDS_MAX] = {NULL};
    int n = b != NULL ? split_args(p, args, words, 1, BRIDGE_WORDS_MAX) : -1;
    if (n < 0)
        return -1;
    struct config_bridge_address *list =
        realloc(b->addresses, (b->address_count + (size_t)n) * sizeof(*list));
    if (list == NULL)
        return fail(p, "out of memory");
    b->addresses = list;
    for (int i = 0; i < n; i++) {
        if (parse_address(p, words[i], &list[b->address_count]) != 0)
            return -1;
        b->address_count++;
    }
    return 0;
}

/* A topic name fit for a prefix: no wildcards, no NUL (Mosquitto's
 * mosquitto_pub_topic_check). */
static bool is_topic_name(const char *s)
{
    return s[0] != '\0' && strpbrk(s, "+#") == NULL;
}

/* A topic filter [MQTT-4.7.1]: '#' alone in the last level, '+' alone in its level. */
static bool is_topic_filter(const char *s)
{
    size_t len = strlen(s);
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        bool starts_level = i == 0 || s[i - 1] == '/';
        bool ends_level = i + 1 == len || s[i + 1] == '/';
        if (s[i] == '#' && !(starts_level && i + 1 == len))
            return false;
        if (s[i] == '+' && !(starts_level && ends_level))
            return false;
    }
    return true;
}

/* "" is Mosquitto's empty word. */
static bool is_empty_word(const char *w)
{
    return strcmp(w, "\"\"") == 0;
}

static int topic_direction(struct parser *p, const char *w, enum config_bridge_direction *out)
{
    if (strcmp(w, "out") == 0)
        *out = CONFIG_BRIDGE_OUT;
    else if (strcmp(w, "in") == 0)
        *out = CONFIG_BRIDGE_IN;
    else if (strcmp(w, "both") == 0)
        *out = CONFIG_BRIDGE_BOTH;
    else
        return fail_value(p, w, "in, out or both");
    return 0;
}

/* The pattern and a prefix must make a valid filter together, as Mosquitto
 * checks (bridge__create_prefix). */
static int check_prefix(struct parser *p, const char *prefix, const char *pattern,
                        const char *which)
{
    if (prefix == NULL)
        return 0;
    if (!is_topic_name(prefix))
        return fail(p, "topic: %s prefix '%s' is not a topic name (no + or #)", which, prefix);
    char joined[2 * CONFIG_PATH_MAX];
    int n = snprintf(joined, sizeof(joined), "%s%s", prefix, pattern ? pattern : "");
    if (n < 0 || (size_t)n >= sizeof(joined) || !is_topic_filter(joined))
        return fail(p, "topic: %s prefix and pattern '%s' do not make a topic filter", which,
                    joined);
    return 0;
}

/* Checks the words of a topic line into t (strings still borrowed). */
static int parse_topic_words(struct parser *p, char **w, int n, struct config_bridge_topic *t)
{
    long qos = 0;
    *t = (struct config_bridge_topic){.direction = CONFIG_BRIDGE_OUT};
    t->pattern = is_empty_word(w[0]) ? NULL : w[0];
    if (n >= 2 && topic_direction(p, w[1], &t->direction) != 0)
        return -1;
    if (n >= 3 && parse_long(p, w[2], 0, 2, &qos) != 0)
        return -1;
    t->qos = (uint8_t)qos;
    if (n == 4)
        return fail(p, "topic: a local prefix needs a remote prefix after it (\"\" for none)");
    t->local_prefix = n >= 5 && !is_empty_word(w[3]) ? w[3] : NULL;
    t->remote_prefix = n >= 5 && !is_empty_word(w[4]) ? w[4] : NULL;
    if (t->pattern == NULL && (t->local_prefix == NULL || t->remote_prefix == NULL))
        return fail(p, "topic: an empty pattern (\"\") needs both a local and a remote prefix");
    if (t->pattern != NULL && !is_topic_filter(t->pattern))
        return fail_value(p, t->pattern, "a topic filter");
    if (check_prefix(p, t->local_prefix, t->pattern, "local") != 0 ||
        check_prefix(p, t->remote_prefix, t->pattern, "remote") != 0)
        return -1;
    return 0;
}

/* topic PATTERN [in|out|both] [QOS] [LOCAL_PREFIX REMOTE_PREFIX] */
static int do_topic(struct parser *p, char *args)
{
    struct config_bridge *b = current_bridge(p);
    char *w[5] = {NULL, NULL, NULL, NULL, NULL};
    int n = b != NULL ? split_args(p, args, w, 1, 5) : -1;
    struct config_bridge_topic t;
    if (n < 0 || parse_topic_words(p, w, n, &t) != 0)
        return -1;
    struct config_bridge_topic *list = realloc(b->topics, (b->topic_count + 1) * sizeof(*list));
    if (list == NULL)
        return fail(p, "out of memory");
    b->topics = list;
    bool failed = false;
    t.pattern = copy_or_null(t.pattern, &failed);
    t.local_prefix = copy_or_null(t.local_prefix, &failed);
    t.remote_prefix = copy_or_null(t.remote_prefix, &failed);
    list[b->topic_count++] = t; /* config_deinit frees what was copied */
    return failed ? fail(p, "out of memory") : 0;
}

/* A string value: the rest of the line, as Mosquitto's conf__parse_string. */
static int bridge_string(struct parser *p, char *args, char **field)
{
    if (current_bridge(p) == NULL)
        return -1;
    size_t len = strlen(args);
    if (len == 0)
        return fail(p, "%s: missing value", p->name);
    if (len > 65535)
        return fail(p, "%s: longer than 65535 bytes", p->name);
    char *copy = strdup(args);
    if (copy == NULL)
        return fail(p, "out of memory");
    free(*field);
    *field = copy;
    return 0;
}

static int bridge_bool(struct parser *p, char *args, size_t offset)
{
    struct config_bridge *b = current_bridge(p);
    return b != NULL ? one_bool(p, args, (bool *)((char *)b + offset)) : -1;
}

/* A path field of the current bridge (the rest of the line). */
static int bridge_path(struct parser *p, char *args, size_t offset)
{
    struct config_bridge *b = current_bridge(p);
    return b != NULL ? set_path(p, args, (char **)((char *)b + offset)) : -1;
}

#define BRIDGE_FIELD(f) offsetof(struct config_bridge, f)

static int do_remote_clientid(struct parser *p, char *args)
{
    struct config_bridge *b = current_bridge(p);
    return b != NULL ? bridge_string(p, args, &b->remote_clientid) : -1;
}

static int do_remote_username(struct parser *p, char *args)
{
    struct config_bridge *b = current_bridge(p);
    return b != NULL ? bridge_string(p, args, &b->remote_username) : -1;
}

static int do_remote_password(struct parser *p, char *args)
{
    struct config_bridge *b = current_bridge(p);
    return b != NULL ? bridge_string(p, args, &b->remote_password) : -1;
}

static int do_cleansession(struct parser *p, char *args)
{
    return bridge_bool(p, args, BRIDGE_FIELD(cleansession));
}

static int do_try_private(struct parser *p, char *args)
{
    return bridge_bool(p, args, BRIDGE_FIELD(try_private));
}

static int do_notifications(struct parser *p, char *args)
{
    return bridge_bool(p, args, BRIDGE_FIELD(notifications));
}

static int do_notifications_local_only(struct parser *p, char *args)
{
    return bridge_bool(p, args, BRIDGE_FIELD(notifications_local_only));
}

static int do_bridge_insecure(struct parser *p, char *args)
{
    return bridge_bool(p, args, BRIDGE_FIELD(insecure));
}

static int do_notification_topic(struct parser *p, char *args)
{
    struct config_bridge *b = current_bridge(p);
    char *word = b != NULL ? one_arg(p, args) : NULL;
    if (word == NULL)
        return -1;
    if (!is_topic_name(word))
        return fail_value(p, word, "a topic name (no + or #)");
    return bridge_string(p, word, &b->notification_topic);
}

static int do_keepalive_interval(struct parser *p, char *args)
{
    struct config_bridge *b = current_bridge(p);
    long v = 0;
    if (b == NULL || one_long(p, args, 5, 65535, &v) != 0)
        return -1;
    b->keepalive_s = (uint16_t)v;
    return 0;
}

/* restart_timeout BASE [CAP] (seconds): Mosquitto's constant delay or backoff. */
static int do_restart_timeout(struct parser *p, char *args)
{
    struct config_bridge *b = current_bridge(p);
    char *w[2] = {NULL, NULL};
    long base = 0, cap = 0;
    int n = b != NULL ? split_args(p, args, w, 1, 2) : -1;
    if (n < 0 || parse_long(p, w[0], 1, 3600, &base) != 0)
        return -1;
    if (n == 2 && parse_long(p, w[1], base, 86400, &cap) != 0)
        return -1;
    b->restart_base_s = (uint32_t)base;
    b->restart_cap_s = (uint32_t)cap;
    return 0;
}

static int do_bridge_protocol_version(struct parser *p, char *args)
{
    struct config_bridge *b = current_bridge(p);
    char *word = b != NULL ? one_arg(p, args) : NULL;
    if (word == NULL)
        return -1;
    if (strcmp(word, "mqttv311") == 0)
        b->protocol_level = 4;
    else if (strcmp(word, "mqttv31") == 0)
        b->protocol_level = 3;
    else if (strcmp(word, "mqttv50") == 0)
        return fail(p, "bridge_protocol_version: mqttv50 is not supported yet (MQTT 5 bridges "
                       "come with MQTT 5 support); use mqttv311");
    else
        return fail_value(p, word, "mqttv311 or mqttv31");
    return 0;
}

static int do_start_type(struct parser *p, char *args)
{
    char *word = current_bridge(p) != NULL ? one_arg(p, args) : NULL;
    if (word == NULL)
        return -1;
    if (strcmp(word, "automatic") == 0)
        return 0;
    if (strcmp(word, "manual") == 0 || strcmp(word, "lazy") == 0 || strcmp(word, "once") == 0)
        return fail(p, "start_type: '%s' is not supported: Sol's bridges are always automatic",
                    word);
    return fail_value(p, word, "automatic");
}

static int do_bridge_cafile(struct parser *p, char *args)
{
    return bridge_path(p, args, BRIDGE_FIELD(cafile));
}

static int do_bridge_capath(struct parser *p, char *args)
{
    return bridge_path(p, args, BRIDGE_FIELD(capath));
}

static int do_bridge_certfile(struct parser *p, char *args)
{
    return bridge_path(p, args, BRIDGE_FIELD(certfile));
}

static int do_bridge_keyfile(struct parser *p, char *args)
{
    return bridge_path(p, args, BRIDGE_FIELD(keyfile));
}

static int do_bridge_max_queued_messages(struct parser *p, char *args)
{
    struct config_bridge *b = current_bridge(p);
    long v = 0;
    if (b == NULL || one_long(p, args, 0, INT32_MAX, &v) != 0)
        return -1;
    b->max_queued_messages = (uint64_t)v;
    return 0;
}

static int do_bridge_max_queued_bytes(struct parser *p, char *args)
{
    struct config_bridge *b = current_bridge(p);
    return b != NULL ? one_size_or_zero(p, args, &b->max_queued_bytes) : -1;
}

/* Mosquitto options about its bridge's local connection, which Sol's bridge
 * (inside the broker) does not have: accepted so a Mosquitto file loads,
 * and ignored. */
static int do_bridge_ignored(struct parser *p, char *args)
{
    (void)args;
    return current_bridge(p) != NULL ? 0 : -1;
}

/* What a bridge must have once the file is read. Names its connection line. */
static int check_bridge(const struct parser *p, const struct config_bridge *b)
{
    const char *problem = NULL;
    if (b->address_count == 0)
        problem = "no address";
    else if (b->topic_count == 0)
        problem = "no topic";
    else if ((b->certfile == NULL) != (b->keyfile == NULL))
        problem = "bridge_certfile and bridge_keyfile must be given together";
    else if (b->cafile == NULL && b->capath == NULL && (b->certfile != NULL || b->insecure))
        problem = "TLS settings without bridge_cafile or bridge_capath";
    if (problem == NULL)
        return 0;
    if (p->err != NULL && p->err_len > 0)
        snprintf(p->err, p->err_len, "%s: connection %s: %s", b->where, b->name, problem);
    return -1;
}

static int check_bridges(const struct parser *p)
{
    for (size_t i = 0; i < p->cfg->bridge_count; i++) {
        if (check_bridge(p, &p->cfg->bridges[i]) != 0)
            return -1;
    }
    return 0;
}

static int load_file(struct parser *p);

/* Only names ending in ".conf" (and not just ".conf"), as Mosquitto. */
static int is_conf_file(const struct dirent *d)
{
    size_t len = strlen(d->d_name);
    return len > 5 && strcmp(d->d_name + len - 5, ".conf") == 0 && d->d_name[0] != '.';
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

/* Loads each entry of the include_dir listing; frees the listing. */
static int load_dir_entries(struct parser *p, const char *dir, struct dirent **names, int n)
{
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char path[CONFIG_PATH_MAX];
        int len = snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
        if (rc == 0 && (len < 0 || (size_t)len >= sizeof(path)))
            rc = fail(p, "%s: path is longer than %d bytes", p->name, CONFIG_PATH_MAX - 1);
        if (rc == 0) {
            /* The included file continues this one's log_type/log_dest state. */
            struct parser child = *p;
            child.path = path;
            child.line_no = 0;
            child.depth = p->depth + 1;
            rc = load_file(&child);
            p->has_log_type = child.has_log_type;
            p->has_log_dest = child.has_log_dest;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

/* include_dir DIR: DIR's *.conf files in strcmp order. */
static int do_include_dir(struct parser *p, char *args)
{
    if (args[0] == '\0')
        return fail(p, "%s: missing value", p->name);
    if (p->depth >= CONFIG_INCLUDE_DEPTH_MAX)
        return fail(p, "include_dir: nested more than %d deep", CONFIG_INCLUDE_DEPTH_MAX);
    struct dirent **names = NULL;
    int n = scandir(args, &names, is_conf_file, by_name);
    if (n < 0)
        return fail(p, "include_dir: cannot read %s: %s", args, strerror(errno));
    return load_dir_entries(p, args, names, n);
}

static const struct {
    const char *name;
    int (*parse)(struct parser *p, char *args);
} directives[] = {
    {"listener", do_listener},
    {"cafile", do_cafile},
    {"certfile", do_certfile},
    {"keyfile", do_keyfile},
    {"tls_version", do_tls_version},
    {"require_certificate", do_require_certificate},
    {"use_identity_as_username", do_use_identity_as_username},
    {"protocol", do_protocol},
    {"persistence_location", do_persistence_location},
    {"allow_anonymous", do_allow_anonymous},
    {"per_listener_settings", do_per_listener_settings},
    {"password_file", do_password_file},
    {"acl_file", do_acl_file},
    {"pid_file", do_pid_file},
    {"max_inflight_messages", do_max_inflight_messages},
    {"max_queued_messages", do_max_queued_messages},
    {"max_queued_bytes", do_max_queued_bytes},
    {"max_output_buffer_bytes", do_max_output_buffer_bytes},
    {"max_packet_size", do_max_packet_size},
    {"max_input_buffer_bytes", do_max_input_buffer_bytes},
    {"max_subscriptions_per_client", do_max_subscriptions_per_client},
    {"max_subscriptions", do_max_subscriptions},
    {"message_size_limit", do_message_size_limit},
    {"max_connections", do_max_connections},
    {"max_keepalive", do_max_keepalive},
    {"max_topic_levels", do_max_topic_levels},
    {"receive_maximum", do_receive_maximum},
    {"max_topic_alias", do_max_topic_alias},
    {"sys_interval", do_sys_interval},
    {"connection_messages", do_connection_messages},
    {"retain_available", do_retain_available},
    {"shared_subscriptions", do_shared_subscriptions},
    {"persistent_client_expiration", do_persistent_client_expiration},
    {"log_dest", do_log_dest},
    {"log_type", do_log_type},
    {"include_dir", do_include_dir},
    {"storage_sync", do_storage_sync},
    {"storage_thread", do_storage_thread},
    {"io_uring", do_io_uring},
    {"storage_max_size", do_storage_max_size},
    {"metrics_listener", do_metrics_listener},
    {"connection", do_connection},
    {"address", do_address},
    {"addresses", do_address},
    {"topic", do_topic},
    {"remote_clientid", do_remote_clientid},
    {"remote_username", do_remote_username},
    {"remote_password", do_remote_password},
    {"cleansession", do_cleansession},
    {"keepalive_interval", do_keepalive_interval},
    {"restart_timeout", do_restart_timeout},
    {"try_private", do_try_private},
    {"notifications", do_notifications},
    {"notifications_local_only", do_notifications_local_only},
    {"notification_topic", do_notification_topic},
    {"bridge_protocol_version", do_bridge_protocol_version},
    {"start_type", do_start_type},
    {"bridge_cafile", do_bridge_cafile},
    {"bridge_capath", do_bridge_capath},
    {"bridge_certfile", do_bridge_certfile},
    {"bridge_keyfile", do_bridge_keyfile},
    {"bridge_insecure", do_bridge_insecure},
    {"bridge_max_queued_messages", do_bridge_max_queued_messages},
    {"bridge_max_queued_bytes", do_bridge_max_queued_bytes},
    {"local_clientid", do_bridge_ignored},
    {"local_username", do_bridge_ignored},
    {"local_password", do_bridge_ignored},
    {"bridge_attempt_unsubscribe", do_bridge_ignored},
};

/* ---- lines and files ----------------------------------------------------- */

/* Drops trailing blanks, CR and LF in place. */
static void trim_end(char *s)
{
    size_t len = strlen(s);
    while (len > 0 && strchr(" \t\r\n", s[len - 1]) != NULL)
        s[--len] = '\0';
}

static int parse_line(struct parser *p, char *line)
{
    trim_end(line);
    line += strspn(line, BLANKS);
    if (line[0] == '\0' || line[0] == '#')
        return 0;
    size_t name_len = strcspn(line, BLANKS);
    char *args = line + name_len;
    if (*args != '\0')
        *args++ = '\0';
    args += strspn(args, BLANKS);
    p->name = line;
    for (size_t i = 0; i < sizeof(directives) / sizeof(directives[0]); i++) {
        if (strcmp(line, directives[i].name) == 0)
            return directives[i].parse(p, args);
    }
    return fail(p, "unknown directive '%s'", line);
}

static int parse_stream(struct parser *p, FILE *f)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;
    while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
        p->line_no++;
        if (strlen(line) != (size_t)len)
            rc = fail(p, "line contains a NUL byte");
        else
            rc = parse_line(p, line);
    }
    if (rc == 0 && ferror(f)) {
        snprintf(p->err, p->err_len, "%s: cannot read: %s", p->path, strerror(errno));
        rc = -1;
    }
    free(line);
    return rc;
}

/* Reads p->path from its first line. */
static int load_file(struct parser *p)
{
    FILE *f = fopen(p->path, "r");
    if (f == NULL) {
        snprintf(p->err, p->err_len, "%s: cannot read: %s", p->path, strerror(errno));
        return -1;
    }
    int rc = parse_stream(p, f);
    fclose(f);
    return rc;
}

int config_load_file(struct sol_config *cfg, const char *path, char *err, size_t err_len)
{
    struct parser p = {.cfg = cfg, .path = path, .err = err, .err_len = err_len};
    int rc = load_file(&p);
    return rc == 0 ? check_bridges(&p) : rc;
}
