/*
 * dump.c - `solctl dump [section]` (bridge queues included) and `solctl stats`: walks the store's
 * databases through read-only transactions and prints one line per record,
 * for humans or as JSON Lines (--json), filtered by --client, --topic and
 * --limit. Store callbacks only print or collect; reads that need another
 * transaction happen after the walk (one read transaction per thread).
 * Not for: invariant checks (check.c) or argument parsing (main.c).
 */
#include "solctl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt_topic.h"

#define QUEUE_CHUNK 256

struct dump_ctx {
    const struct solctl_opts *opts;
    FILE *out;
    uint64_t count; /* records printed in this section */
};

static bool client_wanted(const struct dump_ctx *d, struct store_bytes client)
{
    const char *want = d->opts->client;
    return want == NULL ||
           (client.len == strlen(want) && memcmp(client.data, want, client.len) == 0);
}

static struct mqtt_bytes mb(struct store_bytes b)
{
    return (struct mqtt_bytes){b.data, b.len};
}

/* --topic FILTER on a topic name: MQTT matching [MQTT-4.7]. */
static bool topic_wanted(const struct dump_ctx *d, struct store_bytes topic)
{
    if (d->opts->topic == NULL)
        return true;
    struct mqtt_bytes f = mqtt_bytes_from_cstr(d->opts->topic);
    return mqtt_topic_filter_check(f) == MQTT_OK && mqtt_topic_name_check(mb(topic)) == MQTT_OK &&
           mqtt_topic_matches(f, mb(topic));
}

/* Counts a printed record; returns 1 (stop the walk) at --limit. */
static int printed(struct dump_ctx *d)
{
    d->count++;
    return d->opts->limit > 0 && d->count >= d->opts->limit ? 1 : 0;
}

static void begin(struct dump_ctx *d, const char *type, const char *key, struct store_bytes v)
{
    if (d->opts->json) {
        fprintf(d->out, "{\"type\":\"%s\",\"%s\":", type, key);
        solctl_json_string(d->out, v);
    } else {
        fprintf(d->out, "%s %s=\"", type, key);
        solctl_text(d->out, v);
        fputc('"', d->out);
    }
}

static void end(struct dump_ctx *d)
{
    fputs(d->opts->json ? "}\n" : "\n", d->out);
}

static void field_u64(struct dump_ctx *d, const char *key, uint64_t v)
{
    fprintf(d->out, d->opts->json ? ",\"%s\":%llu" : " %s=%llu", key, (unsigned long long)v);
}

static void field_bool(struct dump_ctx *d, const char *key, bool v)
{
    if (d->opts->json)
        fprintf(d->out, ",\"%s\":%s", key, v ? "true" : "false");
    else
        fprintf(d->out, " %s=%d", key, v ? 1 : 0);
}

static void field_str(struct dump_ctx *d, const char *key, struct store_bytes v)
{
    if (d->opts->json) {
        fprintf(d->out, ",\"%s\":", key);
        solctl_json_string(d->out, v);
    } else {
        fprintf(d->out, " %s=\"", key);
        solctl_text(d->out, v);
        fputc('"', d->out);
    }
}

static void field_time(struct dump_ctx *d, const char *key, uint64_t unix_s)
{
    char buf[40];
    if (d->opts->json)
        field_u64(d, key, unix_s);
    else
        fprintf(d->out, " %s=%s", key, solctl_time(buf, sizeof(buf), unix_s));
}

/* A Session Expiry Interval: "never" for STORE_EXPIRY_NEVER (JSON: null). */
static void field_expiry(struct dump_ctx *d, const char *key, uint32_t expiry_s)
{
    if (expiry_s != STORE_EXPIRY_NEVER)
        field_u64(d, key, expiry_s);
    else if (d->opts->json)
        fprintf(d->out, ",\"%s\":null", key);
    else
        fprintf(d->out, " %s=never", key);
}

/* The session's end: last_seen + interval while offline (nothing when it has
 * a client, or never ends). */
static void field_session_end(struct dump_ctx *d, const struct store_session *s)
{
    if (s->is_online || s->expiry_s == STORE_EXPIRY_NEVER)
        return;
    field_time(d, "expires_at", s->last_seen_s + s->expiry_s);
}

/* ---- sessions ------------------------------------------------------------------ */

static int print_session(void *arg, const struct store_session_info *info)
{
    struct dump_ctx *d = arg;
    const struct store_session *s = &info->session;
    if (!client_wanted(d, info->client_id))
        return 0;
    begin(d, "session", "client_id", info->client_id);
    field_bool(d, "clean_session", s->clean_session);
    field_u64(d, "protocol_level", s->protocol_level);
    field_bool(d, "online", s->is_online);
    field_time(d, "last_seen", s->last_seen_s);
    field_expiry(d, "expiry_s", s->expiry_s);
    field_session_end(d, s);
    field_u64(d, "next_packet_id", s->next_packet_id);
    field_bool(d, "has_queue", info->has_queue);
    field_u64(d, "last_seq", info->last_seq);
    field_bool(d, "has_will", s->has_will);
    if (s->has_will) {
        field_str(d, "will_topic", s->will_topic);
        field_u64(d, "will_qos", s->will_qos);
        field_bool(d, "will_retain", s->will_retain);
        field_u64(d, "will_delay_s", s->will_delay_s);
        if (s->will_at_s != 0)
            field_time(d, "will_at", s->will_at_s);
        solctl_properties(d->out, d->opts, "will_properties", s->will_props);
        solctl_payload(d->out, d->opts, "will_payload", s->will_payload, s->will_payload.len);
    }
    end(d);
    return printed(d);
}

/* ---- subscriptions -------------------------------------------------------------- */

/* --topic on subscriptions: the same filter, or a filter matching that name. */
static bool filter_wanted(const struct dump_ctx *d, struct store_bytes filter)
{
    const char *t = d->opts->topic;
    if (t == NULL || (filter.len == strlen(t) && memcmp(filter.data, t, filter.len) == 0))
        return true;
    struct mqtt_bytes name = mqtt_bytes_from_cstr(t);
    return mqtt_topic_name_check(name) == MQTT_OK &&
           mqtt_topic_filter_check(mb(filter)) == MQTT_OK && mqtt_topic_matches(mb(filter), name);
}

static int print_sub(void *arg, struct store_bytes client, struct store_bytes filter,
                     uint8_t options, uint32_t sub_id)
{
    struct dump_ctx *d = arg;
    if (!filter_wanted(d, filter))
        return 0;
    begin(d, "subscription", "client_id", client);
    field_str(d, "filter", filter);
    field_u64(d, "qos", options & 0x03u);
    field_bool(d, "no_local", options & 0x04u);
    field_bool(d, "retain_as_published", options & 0x08u);
    field_u64(d, "retain_handling", (options >> 4) & 0x03u);
    if (sub_id != 0)
        field_u64(d, "subscription_id", sub_id);
    end(d);
    return printed(d);
}

/* ---- retained and messages ---------------------------------------------------- */

static int print_retained(void *arg, const struct store_retained *r)
{
    struct dump_ctx *d = arg;
    if (!topic_wanted(d, r->topic))
        return 0;
    begin(d, "retained", "topic", r->topic);
    field_u64(d, "qos", r->qos);
    field_time(d, "stored_at", r->stored_at_s);
    if (r->expiry_at_s != 0)
        field_time(d, "expires_at", r->expiry_at_s);
    solctl_properties(d->out, d->opts, "properties", r->props);
    solctl_payload(d->out, d->opts, "payload", r->payload, r->payload_len);
    end(d);
    return printed(d);
}

static int print_message(void *arg, uint64_t id, const struct store_message *m, uint32_t refs)
{
    struct dump_ctx *d = arg;
    if (!topic_wanted(d, m->topic))
        return 0;
    if (d->opts->json)
        fprintf(d->out, "{\"type\":\"message\",\"msg_id\":%llu", (unsigned long long)id);
    else
        fprintf(d->out, "message msg_id=%llu", (unsigned long long)id);
    field_u64(d, "refcount", refs);
    field_str(d, "topic", m->topic);
    field_u64(d, "qos", m->qos);
    field_bool(d, "retain", m->retain);
    if (m->expiry_at_s != 0)
        field_time(d, "expires_at", m->expiry_at_s);
    solctl_properties(d->out, d->opts, "properties", m->props);
    solctl_payload(d->out, d->opts, "payload", m->payload, m->payload.len);
    end(d);
    return printed(d);
}

/* ---- queues and inflight -------------------------------------------------------- */

static const char *state_name(enum store_queue_state s)
{
    switch (s) {
    case STORE_QUEUED:
        return "queued";
    case STORE_SENT:
        return "sent";
    case STORE_PUBREC_RECEIVED:
        return "pubrec_received";
    }
    return "unknown";
}

/* The Subscription Identifiers a queued delivery carries. */
static void print_sub_ids(struct dump_ctx *d, const struct store_queue_entry *e)
{
    if (e->sub_id_count == 0)
        return;
    fputs(d->opts->json ? ",\"subscription_ids\":[" : " subscription_ids=", d->out);
    for (size_t i = 0; i < e->sub_id_count; i++)
        fprintf(d->out, "%s%u", i ? "," : "", (unsigned)store_queue_sub_id(e, i));
    if (d->opts->json)
        fputc(']', d->out);
}

struct queue_ctx {
    struct dump_ctx *d;
    bool inflight_only;
    uint64_t last_seq;
};

static int print_queue_item(void *arg, const struct store_queue_item *it)
{
    struct queue_ctx *q = arg;
    struct dump_ctx *d = q->d;
    q->last_seq = it->seq;
    if (q->inflight_only && it->entry.state == STORE_QUEUED)
        return 0;
    if (it->message != NULL && !topic_wanted(d, it->message->topic))
        return 0;
    begin(d, q->inflight_only ? "inflight" : "queue", "client_id", it->client_id);
    field_u64(d, "seq", it->seq);
    field_u64(d, "msg_id", it->entry.msg_id);
    field_u64(d, "qos", it->entry.qos);
    fprintf(d->out, d->opts->json ? ",\"state\":\"%s\"" : " state=%s", state_name(it->entry.state));
    field_u64(d, "packet_id", it->entry.packet_id);
    if (it->entry.retain)
        field_bool(d, "retain", true);
    print_sub_ids(d, &it->entry);
    if (it->message != NULL) {
        field_str(d, "topic", it->message->topic);
        solctl_payload(d->out, d->opts, "payload", it->message->payload, it->message->payload.len);
    } else {
        field_bool(d, "message_missing", true);
    }
    end(d);
    return printed(d);
}

/* The client ids to walk: collected first, since a queue read cannot run
 * inside the sessions walk (one read transaction per thread). */
struct id_list {
    char **ids;
    size_t *lens;
    size_t count, cap;
};

static int collect_id(void *arg, const struct store_session_info *info)
{
    struct id_list *l = arg;
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **ids = realloc(l->ids, cap * sizeof(*ids));
        size_t *lens = ids ? realloc(l->lens, cap * sizeof(*lens)) : NULL;
        if (ids != NULL)
            l->ids = ids;
        if (lens == NULL)
            return -ENOMEM;
        l->lens = lens;
        l->cap = cap;
    }
    char *id = malloc(info->client_id.len);
    if (id == NULL)
        return -ENOMEM;
    memcpy(id, info->client_id.data, info->client_id.len);
    l->ids[l->count] = id;
    l->lens[l->count++] = info->client_id.len;
    return 0;
}

static void id_list_free(struct id_list *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->ids[i]);
    free(l->ids);
    free(l->lens);
}

/* Reads one client's queue in bounded chunks. Returns 0, 1 at --limit, or an
 * error code. */
static int dump_client_queue(struct queue_ctx *q, struct store *store, struct store_bytes id)
{
    uint64_t from = 0;
    for (;;) {
        int n = store_queue_read(store, id, from, QUEUE_CHUNK, print_queue_item, q);
        if (n < 0)
            return n;
        if (q->d->opts->limit > 0 && q->d->count >= q->d->opts->limit)
            return 1; /* --limit reached */
        if (n < QUEUE_CHUNK)
            return 0;
        from = q->last_seq + 1;
    }
}

static int dump_queues(struct store *store, struct dump_ctx *d, bool inflight_only)
{
    struct id_list ids = {0};
    int rc = store_sessions_foreach(store, collect_id, &ids);
    struct queue_ctx q = {.d = d, .inflight_only = inflight_only};
    for (size_t i = 0; rc == 0 && i < ids.count; i++) {
        struct store_bytes id = {(const uint8_t *)ids.ids[i], ids.lens[i]};
        if (client_wanted(d, id))
            rc = dump_client_queue(&q, store, id);
        if (rc == 0 && d->opts->limit > 0 && d->count >= d->opts->limit)
            rc = 1;
    }
    id_list_free(&ids);
    return rc;
}

/* ---- shared-subscription group queues ---------------------------------------- */

/* One message waiting for a group whose members are all offline; read in
 * bounded chunks per group, as the queues section reads a client's queue
 * (group names are collected first: one read transaction at a time). */
static int print_group_item(void *arg, const struct store_queue_item *it)
{
    struct queue_ctx *q = arg;
    struct dump_ctx *d = q->d;
    q->last_seq = it->seq;
    if (it->message != NULL && !topic_wanted(d, it->message->topic))
        return 0;
    begin(d, "group_queue", "group", it->client_id);
    field_u64(d, "seq", it->seq);
    field_u64(d, "msg_id", it->entry.msg_id);
    field_u64(d, "qos", it->entry.qos);
    if (it->message != NULL) {
        field_str(d, "topic", it->message->topic);
        solctl_payload(d->out, d->opts, "payload", it->message->payload, it->message->payload.len);
    } else {
        field_bool(d, "message_missing", true);
    }
    end(d);
    return printed(d);
}

static int collect_group(void *arg, struct store_bytes group, uint64_t last_seq, uint64_t count,
                         uint64_t bytes)
{
    (void)last_seq;
    (void)count;
    (void)bytes;
    struct store_session_info info = {.client_id = group};
    return collect_id(arg, &info);
}

static int dump_group_queue(struct queue_ctx *q, struct store *store, struct store_bytes group)
{
    uint64_t from = 0;
    for (;;) {
        int n = store_group_queue_read(store, group, from, QUEUE_CHUNK, print_group_item, q);
        if (n < 0)
            return n;
        if (q->d->opts->limit > 0 && q->d->count >= q->d->opts->limit)
            return 1;
        if (n < QUEUE_CHUNK)
            return 0;
        from = q->last_seq + 1;
    }
}

static int dump_groups(struct store *store, struct dump_ctx *d)
{
    struct id_list groups = {0};
    int rc = store_group_queue_stats_foreach(store, NULL, collect_group, &groups);
    struct queue_ctx q = {.d = d};
    for (size_t i = 0; rc == 0 && i < groups.count; i++) {
        struct store_bytes g = {(const uint8_t *)groups.ids[i], groups.lens[i]};
        if (client_wanted(d, g))
            rc = dump_group_queue(&q, store, g);
    }
    id_list_free(&groups);
    return rc;
}

static int print_qos2(void *arg, struct store_bytes client, uint16_t pkid, uint64_t at)
{
    struct dump_ctx *d = arg;
    begin(d, "qos2_in", "client_id", client);
    field_u64(d, "packet_id", pkid);
    field_time(d, "received_at", at);
    end(d);
    return printed(d);
}

/* ---- bridge queues ------------------------------------------------------------ */

/* --client on a bridge section names the bridge (its connection NAME). */
static int print_bridge_item(void *arg, const struct store_queue_item *it)
{
    struct queue_ctx *q = arg;
    struct dump_ctx *d = q->d;
    q->last_seq = it->seq;
    if (it->message != NULL && !topic_wanted(d, it->message->topic))
        return 0;
    begin(d, "bridge_queue", "bridge", it->client_id);
    field_u64(d, "seq", it->seq);
    field_u64(d, "msg_id", it->entry.msg_id);
    field_u64(d, "qos", it->entry.qos);
    fprintf(d->out, d->opts->json ? ",\"state\":\"%s\"" : " state=%s", state_name(it->entry.state));
    field_u64(d, "packet_id", it->entry.packet_id);
    field_bool(d, "retain", it->entry.retain);
    if (it->message != NULL) {
        field_str(d, "topic", it->message->topic);
        solctl_payload(d->out, d->opts, "payload", it->message->payload, it->message->payload.len);
    } else {
        field_bool(d, "message_missing", true);
    }
    end(d);
    return printed(d);
}

static int collect_bridge(void *arg, struct store_bytes name, uint64_t count)
{
    (void)count;
    struct store_session_info info = {.client_id = name};
    return collect_id(arg, &info);
}

static int print_bridge_qos2(void *arg, struct store_bytes bridge, uint16_t pkid, uint64_t at)
{
    struct dump_ctx *d = arg;
    begin(d, "bridge_qos2_in", "bridge", bridge);
    field_u64(d, "packet_id", pkid);
    field_time(d, "received_at", at);
    end(d);
    return printed(d);
}

/* Each bridge's queue in seq order, with message bodies, read in bounded
 * chunks; then the remotes' QoS 2 ids awaiting PUBREL. */
static int dump_bridges(struct store *store, struct dump_ctx *d, const struct store_bytes *cp)
{
    struct id_list names = {0};
    int rc = store_bridge_names_foreach(store, collect_bridge, &names);
    struct queue_ctx q = {.d = d};
    for (size_t i = 0; rc == 0 && i < names.count; i++) {
        struct store_bytes name = {(const uint8_t *)names.ids[i], names.lens[i]};
        for (uint64_t from = 0; rc == 0 && client_wanted(d, name);) {
            int n = store_bridge_queue_read(store, name, from, QUEUE_CHUNK, print_bridge_item, &q);
            rc = n < 0 ? n : 0;
            if (n < QUEUE_CHUNK || (d->opts->limit > 0 && d->count >= d->opts->limit))
                break;
            from = q.last_seq + 1;
        }
    }
    id_list_free(&names);
    if (rc == 0 && d->opts->topic == NULL)
        rc = store_bridge_qos2_foreach(store, cp, print_bridge_qos2, d);
    return rc;
}

/* ---- sections ------------------------------------------------------------------ */

static int dump_section(struct store *store, struct dump_ctx *d, const char *what)
{
    struct store_bytes client = {(const uint8_t *)d->opts->client,
                                 d->opts->client ? strlen(d->opts->client) : 0};
    const struct store_bytes *cp = d->opts->client ? &client : NULL;
    d->count = 0;
    if (strcmp(what, "sessions") == 0)
        return store_sessions_foreach(store, print_session, d);
    if (strcmp(what, "subscriptions") == 0)
        return store_subscriptions_foreach(store, cp, print_sub, d);
    if (strcmp(what, "retained") == 0)
        return store_retained_foreach(store, print_retained, d);
    if (strcmp(what, "messages") == 0)
        return store_messages_foreach(store, true, print_message, d);
    if (strcmp(what, "queues") == 0)
        return dump_queues(store, d, false);
    if (strcmp(what, "bridges") == 0)
        return dump_bridges(store, d, cp);
    if (strcmp(what, "groups") == 0)
        return dump_groups(store, d);
    if (strcmp(what, "inflight") == 0) {
        int rc = dump_queues(store, d, true);
        if (rc == 0 && d->opts->topic == NULL)
            rc = store_qos2_foreach(store, cp, print_qos2, d);
        return rc;
    }
    return STORE_ERR_INVALID;
}

int solctl_dump(struct store *store, const struct solctl_opts *opts)
{
    static const char *const all[] = {"sessions", "subscriptions", "retained",
                                      "queues",   "groups",        "bridges",
                                      "messages"};
    if (opts->what != NULL && strcmp(opts->what, "stats") == 0)
        return solctl_stats(store, opts);
    struct dump_ctx d = {.opts = opts, .out = stdout};
    size_t n = opts->what != NULL ? 1 : sizeof(all) / sizeof(all[0]);
    for (size_t i = 0; i < n; i++) {
        int rc = dump_section(store, &d, opts->what != NULL ? opts->what : all[i]);
        if (rc < 0) {
            fprintf(stderr, "solctl: %s: dump %s: %s\n", opts->data_dir,
                    opts->what != NULL ? opts->what : all[i], store_strerror(rc));
            return SOLCTL_EXIT_ERROR;
        }
    }
    return fflush(stdout) == 0 ? SOLCTL_EXIT_OK : SOLCTL_EXIT_ERROR;
}
