/*
 * session.c - the session manager's frame: creation and recovery from the
 * store, the packet dispatch, connection end, the per-turn flush, and the
 * session objects themselves. Protocol flows live in connect.c, publish.c,
 * deliver.c and subscribe.c.
 *
 * The rules every file of the session manager keeps:
 * - Acks wait for their commit. A PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK,
 *   UNSUBACK or CONNACK (and a QoS 2 PUBLISH) queued while the turn's batch
 *   holds changes is held and leaves only if that batch commits (output.c).
 * - Memory follows the store. State that mirrors a durable record (a
 *   persistent session's existence, subscriptions, incoming QoS 2 ids, a
 *   pending retained message) changes in memory together with the op that
 *   records it, and registers an effect on the batch: confirmed when the commit
 *   succeeds, undone when it fails, with an explicit pending state in between
 *   (a QoS 2 id is ADDING until its put commits: a resend is answered after
 *   the commit, never routed twice). See effects.c.
 * - Every PUBLISH to a client passes the READ gate (output.c), every
 *   PUBLISH and will from a client the WRITE gate (publish.c).
 */
#include "session.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "session_internal.h"
#include "share.h"
#include "store.h"
#include "trie.h"

/* Commit rounds per flush: a commit's completions may queue more durable
 * work (top-ups from the store), which needs its own commit. */
#define FLUSH_MAX_ROUNDS 4

void session_config_defaults(struct session_config *config)
{
    *config = (struct session_config){0};
    config->allow_anonymous = true;
    config->max_inflight_messages = 20;
    config->max_queued_messages = 1000;
    config->max_topic_levels = 200;
    config->max_qos0_output_bytes = 16u << 20;
    config->max_queued_bytes = 8u << 20;
    config->max_subscriptions_per_client = 100;
    config->max_subscriptions = 1000000;
    config->retain_available = true;
}

const char *session_strerror(int code)
{
    switch (code) {
    case SESSION_OK:
        return "ok";
    case SESSION_ERR_PROTOCOL:
        return "protocol violation";
    case SESSION_ERR_NOMEM:
        return "out of memory";
    case SESSION_ERR_CONNECT_REFUSED:
        return "connection refused";
    case SESSION_ERR_DISCONNECT:
        return "client disconnected";
    case SESSION_ERR_STORE:
        return "store refused the record";
    case SESSION_ERR_STORE_FULL:
        return "store full (storage_max_size or disk): PUBLISH not acknowledged";
    default:
        return "unknown session error";
    }
}

static uint64_t monotonic_us(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u;
}

/* ---- The turn's batch ---- */

struct store_batch *mgr_batch(struct session_mgr *mgr)
{
    if (!mgr->batch) {
        mgr->batch = store_batch_new(mgr->store);
        mgr->batch_opened_us = monotonic_us();
    }
    return mgr->batch;
}

bool mgr_batch_has_changes(const struct session_mgr *mgr)
{
    return mgr->batch && !store_batch_is_empty(mgr->batch);
}

/* Anything at all for session_flush() to commit or release. */
static bool has_work(const struct session_mgr *mgr)
{
    return mgr->batch || mgr->held_head || mgr->refill || mgr->has_waiters;
}

/* Someone waits for the turn's commit: held acks, top-ups, or a
 * session_after_commit() caller (a bridge's ack to its remote). */
static bool has_waiting(const struct session_mgr *mgr)
{
    return mgr->held_head || mgr->refill || mgr->has_waiters;
}

/* A batch with nothing to write (its reservations were not used: the
 * messages were dropped by a queue limit, say): dropped at the end of the
 * turn, so its reservations do not pile up. */
static bool has_empty_batch(const struct session_mgr *mgr)
{
    return mgr->batch && store_batch_is_empty(mgr->batch);
}

/* A batch nobody waits on (no held ack, no top-up) may wait this long for
 * company: a subscriber's PUBACK only deletes a queue entry, and committing
 * it on its own would cost an fsync that delays the next publisher's ack.
 * Losing such a batch in a crash only re-sends an acknowledged QoS 1 message
 * (a duplicate, which QoS 1 allows) or a PUBREL. */
#define COMMIT_DEFER_US 10000u

bool session_has_failed(const struct session_mgr *mgr)
{
    return mgr->has_failed;
}

bool session_has_pending(const struct session_mgr *mgr)
{
    if (has_waiting(mgr) || has_empty_batch(mgr))
        return true;
    return mgr_batch_has_changes(mgr) && monotonic_us() >= mgr->batch_opened_us + COMMIT_DEFER_US;
}

double session_commit_delay_s(const struct session_mgr *mgr)
{
    if (has_waiting(mgr) || !mgr_batch_has_changes(mgr))
        return -1.0;
    uint64_t now = monotonic_us(), due = mgr->batch_opened_us + COMMIT_DEFER_US;
    return now >= due ? 0.0 : (double)(due - now) / 1e6;
}

/* ---- Session objects ---- */

bool session_is_online(const struct session *s)
{
    return s->client && s->client->connected;
}

struct store_bytes session_store_id(const struct session *s)
{
    return (struct store_bytes){s->client_id, s->id_len};
}

struct session *session_new(struct session_mgr *mgr, const uint8_t *id, size_t id_len,
                            bool persistent)
{
    struct session *s = calloc(1, sizeof(*s) + id_len + 1);
    if (!s)
        return NULL;
    if (id_len)
        memcpy(s->client_id, id, id_len);
    s->client_id[id_len] = '\0';
    s->id_len = id_len;
    if (table_put(&mgr->sessions, s) != 0) {
        free(s);
        return NULL;
    }
    s->persistent = persistent;
    s->next_packet_id = 1;
    s->serial = ++mgr->next_serial;
    return s;
}

static void unschedule_refill(struct session_mgr *mgr, struct session *s)
{
    for (struct session **p = &mgr->refill; *p; p = &(*p)->refill_next) {
        if (*p == s) {
            *p = s->refill_next;
            break;
        }
    }
    s->refill_queued = false;
}

static void free_qos2_ids(struct session *s);

/* ---- The offline list ---- */

/* Inserts s in last_seen_s order. It is nearly always the newest (it has
 * just disconnected), so the walk from the tail stops at once. */
static void offline_add(struct session_mgr *mgr, struct session *s)
{
    if (s->is_offline_listed)
        return;
    struct session *after = mgr->offline_tail;
    while (after && after->last_seen_s > s->last_seen_s)
        after = after->offline_prev;
    s->offline_prev = after;
    s->offline_next = after ? after->offline_next : mgr->offline_head;
    if (s->offline_next)
        s->offline_next->offline_prev = s;
    else
        mgr->offline_tail = s;
    if (after)
        after->offline_next = s;
    else
        mgr->offline_head = s;
    s->is_offline_listed = true;
    mgr->offline_count++;
}

void session_offline_remove(struct session_mgr *mgr, struct session *s)
{
    if (!s->is_offline_listed)
        return;
    if (s->offline_prev)
        s->offline_prev->offline_next = s->offline_next;
    else
        mgr->offline_head = s->offline_next;
    if (s->offline_next)
        s->offline_next->offline_prev = s->offline_prev;
    else
        mgr->offline_tail = s->offline_prev;
    s->offline_prev = s->offline_next = NULL;
    s->is_offline_listed = false;
    mgr->offline_count--;
}

/* The subscription index: plain filters in the trie, shared ones in their
 * groups (share.c). 0 or -ENOMEM (nothing indexed). */
static int index_subscription(struct session_mgr *mgr, struct session *s, struct mqtt_bytes filter,
                              uint8_t qos)
{
    if (share_is_shared(filter))
        return share_join(mgr, s, filter, qos) == 0 ? 0 : -ENOMEM;
    return trie_subscribe(mgr->trie, filter, s, qos) < 0 ? -ENOMEM : 0;
}

static void unindex_subscription(struct session_mgr *mgr, struct session *s,
                                 struct mqtt_bytes filter)
{
    if (share_is_shared(filter))
        share_leave(mgr, s, filter);
    else
        trie_unsubscribe(mgr->trie, filter, s);
}

size_t session_subscriptions_total(const struct session_mgr *mgr)
{
    return trie_count(mgr->trie) + share_subscription_count(mgr->shares);
}

static void free_session(struct session_mgr *mgr, struct session *s)
{
    struct hashtable_node *n = hashtable_take_all(&s->subs);
    while (n) {
        struct sub_entry *e = hashtable_entry(n, struct sub_entry, link);
        n = n->next;
        unindex_subscription(mgr, s, (struct mqtt_bytes){e->filter, e->filter_len});
        free(e);
    }
    deliver_forget(mgr, s);
    session_set_queued(mgr, s, 0, 0); /* a persistent session's queue leaves the totals */
    if (s->refill_queued)
        unschedule_refill(mgr, s);
    free_qos2_ids(s);
    retained_stream_free_all(s);
    session_offline_remove(mgr, s);
    free(s);
}

/* Records the removal of s's store record; effects.c reads the session back
 * if the commit fails. False when the removal could not be recorded. */
static bool record_discard(struct session_mgr *mgr, const struct session *s)
{
    struct store_batch *b = mgr_batch(mgr);
    if (!b || store_batch_delete_session(b, session_store_id(s)) != 0) {
        log_error("client %s: could not record the session's removal", s->client_id);
        return false;
    }
    return true;
}

void session_discard(struct session_mgr *mgr, struct session *s)
{
    bool has_record = s->persistent && s->record != SESSION_RECORD_ABSENT;
    bool is_recorded = has_record && record_discard(mgr, s);
    /* A session that lost its id to one read back from the store (effects.c)
     * is no longer the table's. */
    if (table_get(&mgr->sessions, s->client_id, s->id_len) == s)
        table_remove(&mgr->sessions, s->client_id, s->id_len);
    if (is_recorded) /* out of the table first: an undo may read it back at once */
        effect_session_discarded(mgr, (struct mqtt_bytes){s->client_id, s->id_len});
    free_session(mgr, s);
}

static struct sub_entry *find_sub(const struct session *s, struct mqtt_bytes filter)
{
    struct hashtable_node *n = hashtable_find(&s->subs, filter.data, filter.len);
    return n ? hashtable_entry(n, struct sub_entry, link) : NULL;
}

bool session_has_subscription(const struct session *s, struct mqtt_bytes filter)
{
    return find_sub(s, filter) != NULL;
}

size_t session_subscription_count(const struct session *s)
{
    return hashtable_count(&s->subs);
}

int session_add_subscription(struct session_mgr *mgr, struct session *s, struct mqtt_bytes filter,
                             uint8_t qos)
{
    struct sub_entry *e = find_sub(s, filter);
    if (e) {
        if (index_subscription(mgr, s, filter, qos) != 0)
            return -ENOMEM;
        e->qos = qos;
        return 0;
    }
    e = malloc(sizeof(*e) + filter.len);
    if (!e)
        return -ENOMEM;
    e->filter_len = (uint16_t)filter.len;
    memcpy(e->filter, filter.data, filter.len);
    e->qos = qos;
    if (index_subscription(mgr, s, filter, qos) != 0) {
        free(e);
        return -ENOMEM;
    }
    if (hashtable_insert(&s->subs, &e->link, e->filter, e->filter_len) != 0) {
        unindex_subscription(mgr, s, filter);
        free(e);
        return -ENOMEM;
    }
    return 0;
}

int session_subscription_qos(struct session *s, struct mqtt_bytes filter)
{
    struct sub_entry *e = find_sub(s, filter);
    return e ? e->qos : -1;
}

int session_remove_subscription(struct session_mgr *mgr, struct session *s,
                                struct mqtt_bytes filter)
{
    struct sub_entry *e = find_sub(s, filter);
    if (!e)
        return -ENOENT;
    hashtable_remove(&s->subs, &e->link);
    unindex_subscription(mgr, s, filter);
    free(e);
    return 0;
}

/* ---- Recovery from the store ---- */

static int load_session(void *arg, const struct store_session_info *info)
{
    struct session_mgr *mgr = arg;
    struct session *s = session_new(mgr, info->client_id.data, info->client_id.len, true);
    if (!s)
        return -ENOMEM;
    s->next_packet_id = info->session.next_packet_id ? info->session.next_packet_id : 1;
    s->record = SESSION_RECORD_STORED;
    s->last_seen_s = info->session.last_seen_s;
    s->last_seq = info->last_seq;
    s->backlog = info->has_queue;
    if (!mgr->is_recovering) /* start-up lists them all at once, sorted */
        offline_add(mgr, s);
    return 0;
}

static int load_subscription(void *arg, struct store_bytes client_id, struct store_bytes filter,
                             uint8_t qos)
{
    struct session_mgr *mgr = arg;
    struct session *s = table_get(&mgr->sessions, client_id.data, client_id.len);
    if (!s) /* store_check reports orphans; the broker ignores them */
        return 0;
    return session_add_subscription(mgr, s, (struct mqtt_bytes){filter.data, filter.len}, qos);
}

int session_qos2_add(struct session *s, uint16_t packet_id, enum qos2_state state)
{
    struct qos2_in *q = malloc(sizeof(*q));
    if (!q)
        return -ENOMEM;
    *q = (struct qos2_in){.packet_id = packet_id, .state = (uint8_t)state};
    if (hashtable_insert(&s->qos2_ids, &q->by_id, &q->packet_id, sizeof(q->packet_id)) != 0) {
        free(q);
        return -ENOMEM;
    }
    return 0;
}

struct qos2_in *session_qos2_find(struct session *s, uint16_t packet_id)
{
    struct hashtable_node *n = hashtable_find(&s->qos2_ids, &packet_id, sizeof(packet_id));
    return n ? hashtable_entry(n, struct qos2_in, by_id) : NULL;
}

void session_qos2_remove(struct session *s, uint16_t packet_id)
{
    struct qos2_in *q = session_qos2_find(s, packet_id);
    if (q) {
        hashtable_remove(&s->qos2_ids, &q->by_id);
        free(q);
    }
}

static void free_qos2_ids(struct session *s)
{
    struct hashtable_node *n = hashtable_take_all(&s->qos2_ids);
    while (n) {
        struct hashtable_node *next = n->next;
        free(hashtable_entry(n, struct qos2_in, by_id));
        n = next;
    }
    hashtable_deinit(&s->qos2_ids);
}

static int load_qos2(void *arg, struct store_bytes client_id, uint16_t packet_id,
                     uint64_t received_at_s)
{
    (void)received_at_s;
    struct session_mgr *mgr = arg;
    struct session *s = table_get(&mgr->sessions, client_id.data, client_id.len);
    return s ? session_qos2_add(s, packet_id, QOS2_STORED) : 0;
}

/* The queue limits' state: what waits in the store counts against them
 * after a restart as it did before. */
static int load_queue_stats(void *arg, struct store_bytes client_id, uint64_t queued_count,
                            uint64_t queued_bytes)
{
    struct session_mgr *mgr = arg;
    struct session *s = table_get(&mgr->sessions, client_id.data, client_id.len);
    if (!s)
        return 0;
    session_set_queued(mgr, s, queued_count > UINT32_MAX ? UINT32_MAX : (uint32_t)queued_count,
                       queued_bytes > SIZE_MAX ? SIZE_MAX : (size_t)queued_bytes);
    return 0;
}

int session_reload(struct session_mgr *mgr, const uint8_t *id, size_t id_len)
{
    struct store_bytes client = {id, id_len};
    int found = store_get_session(mgr->store, client, load_session, mgr);
    if (found <= 0)
        return found;
    int rc = store_subscriptions_foreach(mgr->store, &client, load_subscription, mgr);
    if (rc == 0)
        rc = store_qos2_foreach(mgr->store, &client, load_qos2, mgr);
    if (rc != 0)
        return rc;
    log_notice("client %.*s: session read back from the store after a failed commit", (int)id_len,
               (const char *)id);
    return 1;
}

static void collect_session(void *value, void *arg)
{
    struct session ***cursor = arg;
    *(*cursor)++ = value;
}

static int by_last_seen(const void *a, const void *b)
{
    uint64_t x = (*(struct session *const *)a)->last_seen_s;
    uint64_t y = (*(struct session *const *)b)->last_seen_s;
    return x < y ? -1 : x > y;
}

/* Every recovered session is offline: one sort, then appends. */
static int list_recovered_offline(struct session_mgr *mgr)
{
    size_t n = table_count(&mgr->sessions);
    struct session **all = calloc(n ? n : 1, sizeof(*all));
    if (!all)
        return -ENOMEM;
    struct session **cursor = all;
    table_foreach(&mgr->sessions, collect_session, &cursor);
    qsort(all, n, sizeof(*all), by_last_seen);
    for (size_t i = 0; i < n; i++)
        offline_add(mgr, all[i]);
    free(all);
    return 0;
}

static int recover(struct session_mgr *mgr, char *err, size_t err_len)
{
    mgr->is_recovering = true;
    int rc = store_sessions_foreach(mgr->store, load_session, mgr);
    mgr->is_recovering = false;
    if (rc == 0)
        rc = list_recovered_offline(mgr);
    if (rc == 0)
        rc = store_queue_stats_foreach(mgr->store, load_queue_stats, mgr);
    if (rc == 0)
        rc = store_subscriptions_foreach(mgr->store, NULL, load_subscription, mgr);
    if (rc == 0)
        rc = store_qos2_foreach(mgr->store, NULL, load_qos2, mgr);
    if (rc == 0)
        rc = store_retained_count(mgr->store, &mgr->retained_stored); /* bodies stay on disk */
    if (rc != 0) {
        snprintf(err, err_len, "loading the store: %s", store_strerror(rc));
        return rc;
    }
    return share_recover(mgr, err, err_len);
}

/* ---- Manager ---- */

int session_mgr_new(const struct session_config *config, struct store *store,
                    const struct session_sink *sink, struct session_mgr **out, char *err,
                    size_t err_len)
{
    *out = NULL;
    struct session_mgr *mgr = calloc(1, sizeof(*mgr));
    if (!mgr) {
        snprintf(err, err_len, "out of memory");
        return -ENOMEM;
    }
    mgr->config = *config;
    mgr->store = store;
    mgr->sink = sink;
    mgr->trie = trie_new();
    mgr->shares = share_index_new();
    if (!mgr->trie || !mgr->shares || table_init(&mgr->sessions) != 0 ||
        retained_index_init(&mgr->retained_volatile) != 0) {
        snprintf(err, err_len, "out of memory");
        session_mgr_free(mgr);
        return -ENOMEM;
    }
    uint64_t started_us = monotonic_us();
    int rc = recover(mgr, err, err_len);
    if (rc != 0) {
        session_mgr_free(mgr);
        return rc;
    }
    log_notice("recovered %zu persistent sessions, %zu subscriptions, %zu retained messages and "
               "%llu queued messages in %llu ms",
               table_count(&mgr->sessions), session_subscriptions_total(mgr),
               (size_t)mgr->retained_stored, (unsigned long long)mgr->queued_total,
               (unsigned long long)((monotonic_us() - started_us) / 1000));
    *out = mgr;
    return 0;
}

static void collect_value(void *value, void *arg)
{
    void ***cursor = arg;
    *(*cursor)++ = value;
}

void session_mgr_free(struct session_mgr *mgr)
{
    if (!mgr)
        return;
    mgr->is_closing = true;
    if (mgr->batch)
        store_batch_discard(mgr->batch);
    output_release_held(mgr, STORE_ERR_CANCELED);
    void **all = calloc(table_count(&mgr->sessions) + 1, sizeof(*all));
    if (all) {
        void **cursor = all;
        table_foreach(&mgr->sessions, collect_value, &cursor);
        for (void **p = all; p < cursor; p++)
            free_session(mgr, *p);
        free(all);
    }
    table_deinit(&mgr->sessions);
    bridges_free(mgr);
    retained_index_deinit(&mgr->retained_volatile, msg_unref);
    trie_free(mgr->trie);
    share_index_free(mgr->shares);
    free(mgr->matched);
    free(mgr);
}

/* ---- Connections ---- */

struct session_client *session_client_new(struct session_mgr *mgr, void *conn, const char *peer)
{
    if (!peer)
        peer = "unknown";
    size_t peer_len = strlen(peer);
    struct session_client *c = calloc(1, sizeof(*c) + peer_len + 1);
    if (!c)
        return NULL;
    memcpy(c->peer, peer, peer_len + 1);
    c->mgr = mgr;
    c->conn = conn;
    return c;
}

int session_client_set_identity(struct session_client *client, const char *identity)
{
    char *copy = strdup(identity);
    if (!copy)
        return -ENOMEM;
    free(client->username);
    client->username = copy;
    client->has_identity = true;
    return 0;
}

void session_client_set_auth(struct session_client *client, const struct session_auth *auth)
{
    client->auth = auth;
}

struct session_auth client_auth(const struct session_mgr *mgr, const struct session_client *c)
{
    if (c && c->auth)
        return *c->auth;
    return (struct session_auth){mgr->config.passwords, mgr->config.acl,
                                 mgr->config.allow_anonymous};
}

void session_set_auth(struct session_mgr *mgr, const struct auth_passwd *passwords,
                      const struct auth_acl *acl)
{
    mgr->config.passwords = passwords;
    mgr->config.acl = acl;
}

const uint64_t session_commit_bucket_us[SESSION_COMMIT_BUCKETS] = {
    50,    100,   250,    500,    1000,   2500,   5000,   10000,
    25000, 50000, 100000, 250000, 500000, 750000, 1000000};

void session_peek_stats(const struct session_mgr *mgr, struct session_stats *out)
{
    *out = (struct session_stats){
        .clients_connected = mgr->clients_connected,
        .messages_received = mgr->messages_received,
        .messages_sent = mgr->messages_sent,
        .messages_dropped = mgr->dropped_qos0 + mgr->dropped_queue_full,
        .messages_queue_dropped = mgr->dropped_queue_full,
        .publishes_refused = mgr->refused_store_full,
        .subscriptions = session_subscriptions_total(mgr),
        .retained = mgr->retained_stored + retained_count(&mgr->retained_volatile),
        .commits = mgr->commits,
        .commit_latency_us_last = mgr->commit_us_last,
        .commit_latency_us_max = mgr->commit_us_max,
        .commit_latency_us_avg = mgr->commits ? mgr->commit_us_total / mgr->commits : 0,
        .commit_latency_us_total = mgr->commit_us_total,
        .clients_disconnected = mgr->offline_count,
        .sessions = table_count(&mgr->sessions),
        .inflight_messages = mgr->inflight_total,
        .queued_messages = mgr->queued_total,
        .queued_bytes = mgr->queued_bytes_total,
    };
    uint64_t below = 0;
    for (size_t i = 0; i < SESSION_COMMIT_BUCKETS; i++) {
        below += mgr->commit_buckets[i];
        out->commit_latency_buckets[i] = below;
    }
    for (size_t q = 0; q < 3; q++) {
        out->messages_received_qos[q] = mgr->received_qos[q];
        out->payload_bytes_received_qos[q] = mgr->received_bytes_qos[q];
        out->messages_sent_qos[q] = mgr->sent_qos[q];
        out->payload_bytes_sent_qos[q] = mgr->sent_bytes_qos[q];
    }
}

void session_get_stats(struct session_mgr *mgr, struct session_stats *out)
{
    session_peek_stats(mgr, out);
    mgr->commit_us_max = 0;
}

uint8_t session_client_protocol_level(const struct session_client *client)
{
    return client->connected ? client->protocol_level : MQTT_PROTOCOL_V311;
}

const char *session_client_name(const struct session_client *client)
{
    if (client->sess)
        return (const char *)client->sess->client_id;
    return client->peer;
}

static int handle_connected(struct session_mgr *mgr, struct session_client *c,
                            const struct mqtt_packet *pkt)
{
    switch (pkt->type) {
    case MQTT_CONNECT: /* a second CONNECT is a protocol violation [MQTT-3.1.0-2] */
        return SESSION_ERR_PROTOCOL;
    case MQTT_PUBLISH:
        return publish_handle(mgr, c, &pkt->u.publish);
    case MQTT_PUBREL:
        return publish_handle_pubrel(mgr, c, pkt->u.ack.packet_id);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBCOMP:
        return deliver_handle_ack(mgr, c, pkt->type, pkt->u.ack.packet_id);
    case MQTT_SUBSCRIBE:
        return subscribe_handle(mgr, c, &pkt->u.subscribe);
    case MQTT_UNSUBSCRIBE:
        return unsubscribe_handle(mgr, c, &pkt->u.subscribe);
    case MQTT_PINGREQ:
        return output_send_ack(mgr, c, MQTT_PINGRESP, 0) == 0 ? SESSION_OK : SESSION_ERR_NOMEM;
    case MQTT_DISCONNECT:
        return SESSION_ERR_DISCONNECT;
    default: /* CONNACK, SUBACK, UNSUBACK, PINGRESP only go server -> client */
        return SESSION_ERR_PROTOCOL;
    }
}

int session_handle_packet(struct session_mgr *mgr, struct session_client *client,
                          const struct mqtt_packet *pkt)
{
    if (!client->connected) {
        /* The first packet must be CONNECT [MQTT-3.1.0-1]. */
        if (pkt->type != MQTT_CONNECT)
            return SESSION_ERR_PROTOCOL;
        return connect_handle(mgr, client, &pkt->u.connect);
    }
    return handle_connected(mgr, client, pkt);
}

/* Publishes a will (taking its reference). name: whose will, for the log. */
static void publish_will(struct session_mgr *mgr, const char *name, struct msg *will)
{
    log_info("client %s: publishing will on %s", name, (char *)will->topic);
    int rc = 0;
    bool retain = will->retain; /* bridges forward the flag as published */
    if (will->retain)
        rc = publish_set_retained(mgr, (struct mqtt_bytes){will->topic, will->topic_len},
                                  (struct mqtt_bytes){will->payload, will->payload_len}, will->qos,
                                  true);
    /* Live forwards carry RETAIN 0 [MQTT-3.3.1-9]. Nothing was sent of the
     * will yet, so no QoS 0 header with the old flag exists (msg_qos0_packet). */
    assert(will->qos0_header_len == 0);
    will->retain = false;
    if (rc == 0)
        rc = publish_route(mgr, will, retain);
    if (rc != 0)
        log_error("client %s: will not published: %s", name, store_strerror(rc));
    msg_unref(will);
}

void session_client_unlink(struct session_mgr *mgr, struct session_client *c, bool fire_will)
{
    struct msg *will = c->will;
    c->will = NULL;
    if (!fire_will) {
        msg_unref(will);
        will = NULL;
    }
    struct session *s = c->sess;
    if (!s) {
        msg_unref(will); /* only an accepted client has one */
        return;
    }
    c->sess = NULL;
    if (c->connected)
        mgr->clients_connected--;
    share_session_offline(mgr, s);
    c->connected = false;
    s->client = NULL;
    deliver_forget(mgr, s);
    if (s->refill_queued)
        unschedule_refill(mgr, s);
    /* The will goes out once the client is detached: its own session, if it
     * matches, gets it as any offline session would - never through the
     * connection that is going away (found by fuzz_session). */
    if (will)
        publish_will(mgr, (const char *)s->client_id, will);
}

void session_client_detach(struct session_mgr *mgr, struct session_client *c, bool fire_will)
{
    struct session *s = c->sess;
    session_client_unlink(mgr, c, fire_will);
    if (!s)
        return;
    if (!s->persistent) {
        session_discard(mgr, s); /* clean session: state ends with the connection */
        return;
    }
    if (s->record == SESSION_RECORD_ABSENT) {
        session_discard(mgr, s); /* its first commit failed: it never existed */
        return;
    }
    /* The window and queue are in the store; reconnect reads them back. The
     * record's last_seen is updated for persistent_client_expiration. */
    s->last_seen_s = (uint64_t)time(NULL);
    if (connect_store_session(mgr, s) != 0)
        log_error("client %s: could not record the disconnect time", (char *)s->client_id);
    offline_add(mgr, s);
}

/* Mosquitto's wording per reason. */
static void log_disconnected(const struct session_client *c, enum session_close_reason reason)
{
    const char *id = session_client_name(c);
    switch (reason) {
    case SESSION_CLOSE_DISCONNECT:
        log_connection("Client %s disconnected.", id);
        break;
    case SESSION_CLOSE_SOCKET:
        log_connection("Client %s closed its connection.", id);
        break;
    case SESSION_CLOSE_KEEPALIVE:
        log_connection("Client %s has exceeded timeout, disconnecting.", id);
        break;
    case SESSION_CLOSE_PROTOCOL:
        log_connection("Client %s disconnected due to protocol error.", id);
        break;
    case SESSION_CLOSE_TAKEOVER:
    case SESSION_CLOSE_SHUTDOWN:
    default:
        log_connection("Client %s disconnected.", id);
        break;
    }
}

void session_client_gone(struct session_mgr *mgr, struct session_client *client,
                         enum session_close_reason reason)
{
    output_forget_client(mgr, client);
    if (client->connected)
        log_disconnected(client, reason);
    /* The will is published on any close but a DISCONNECT [MQTT-3.1.2-8];
     * a broker shutdown is not the client's failure either. */
    bool fire_will = reason != SESSION_CLOSE_DISCONNECT && reason != SESSION_CLOSE_SHUTDOWN;
    session_client_detach(mgr, client, fire_will);
    free(client->username);
    free(client);
}

void session_client_writable(struct session_mgr *mgr, struct session_client *client)
{
    /* QoS 1/2 wait for the window and for max_output_buffer_bytes. */
    if (client->sess && client->connected)
        deliver_output_drained(mgr, client->sess);
}

/* ---- The turn's commit ---- */

/* For $SYS and metrics: what a durable ack waits for. The bucket search is
 * at most SESSION_COMMIT_BUCKETS compares, once per commit. */
static void record_commit_time(struct session_mgr *mgr, uint64_t us)
{
    size_t bucket = 0;
    while (bucket < SESSION_COMMIT_BUCKETS && us > session_commit_bucket_us[bucket])
        bucket++;
    mgr->commit_buckets[bucket]++;
    mgr->commits++;
    mgr->commit_us_total += us;
    mgr->commit_us_last = us;
    if (us > mgr->commit_us_max)
        mgr->commit_us_max = us;
}

/* After a commit that changed retained messages (or failed to): the count
 * comes from the store, which knows whether a topic was new or replaced. */
static void count_stored_retained(struct session_mgr *mgr)
{
    int rc = store_retained_count(mgr->store, &mgr->retained_stored);
    if (rc != 0)
        log_error("counting retained messages: %s", store_strerror(rc));
}

static int commit_round(struct session_mgr *mgr)
{
    int status = 0;
    mgr->has_waiters = false; /* their completions are on this batch */
    if (has_empty_batch(mgr)) {
        /* Writes nothing; releases its reservations (a failed one reports). */
        status = store_batch_commit(mgr->batch);
        mgr->batch = NULL;
    } else if (mgr->batch) {
        struct store_batch *b = mgr->batch;
        mgr->batch = NULL;
        uint64_t started_us = monotonic_us();
        status = store_batch_commit(b);
        record_commit_time(mgr, monotonic_us() - started_us);
        mgr->batch_gen++;
        if (status == STORE_ERR_FATAL)
            mgr->has_failed = true;
        else if (status != 0)
            log_error("store commit failed: %s; closing the clients whose acks it held",
                      store_strerror(status));
    }
    output_release_held(mgr, status);
    if (mgr->is_retained_changed) {
        mgr->is_retained_changed = false;
        count_stored_retained(mgr);
    }
    if (status == 0)
        deliver_run_refills(mgr);
    return status;
}

int session_flush(struct session_mgr *mgr)
{
    int status = 0;
    for (int round = 0; round < FLUSH_MAX_ROUNDS && has_work(mgr); round++) {
        int rc = commit_round(mgr);
        if (rc != 0)
            status = rc;
    }
    return status;
}

/* Walks the offline list from its oldest end: O(sessions expired). */
size_t session_expire(struct session_mgr *mgr, uint64_t now_s)
{
    uint32_t ttl = mgr->config.persistent_client_expiration_s;
    if (ttl == 0 || now_s < ttl)
        return 0;
    uint64_t cutoff_s = now_s - ttl;
    size_t count = 0;
    while (mgr->offline_head && mgr->offline_head->last_seen_s < cutoff_s) {
        struct session *s = mgr->offline_head;
        log_notice("client %s: persistent session expired", (char *)s->client_id);
        session_discard(mgr, s); /* takes it off the list */
        count++;
    }
    return count;
}
