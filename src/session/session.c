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

void session_config_defaults(struct session_config *config)
{
    *config = (struct session_config){0};
    config->allow_anonymous = true;
    config->commit_defer_us = 10000;
    config->max_inflight_messages = 20;
    config->max_queued_messages = 1000;
    config->max_topic_levels = 200;
    config->max_qos0_output_bytes = 16u << 20;
    config->max_queued_bytes = 8u << 20;
    config->max_subscriptions_per_client = 100;
    config->max_subscriptions = 1000000;
    config->retain_available = true;
    config->receive_maximum = 100;
    config->max_topic_alias = 10;
    config->shared_subscription_available = true;
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
    case SESSION_ERR_RECEIVE_MAXIMUM:
        return "more unacknowledged QoS 1/2 PUBLISH than receive_maximum";
    case SESSION_ERR_TOPIC_ALIAS:
        return "topic alias invalid";
    case SESSION_ERR_MALFORMED:
        return "malformed packet";
    case SESSION_ERR_PAYLOAD_FORMAT:
        return "payload is not the UTF-8 its Payload Format Indicator says";
    case SESSION_ERR_RETAIN_NOT_SUPPORTED:
        return "retained PUBLISH while retain_available is false";
    case SESSION_ERR_NOT_AUTHORIZED:
        return "re-authentication failed";
    default:
        return "unknown session error";
    }
}

uint8_t session_error_reason(int code)
{
    switch (code) {
    case SESSION_ERR_PROTOCOL:
        return MQTT_RC_PROTOCOL_ERROR;
    case SESSION_ERR_MALFORMED:
        return MQTT_RC_MALFORMED_PACKET;
    case SESSION_ERR_RECEIVE_MAXIMUM:
        return MQTT_RC_RECEIVE_MAXIMUM_EXCEEDED;
    case SESSION_ERR_TOPIC_ALIAS:
        return MQTT_RC_TOPIC_ALIAS_INVALID;
    case SESSION_ERR_STORE_FULL:
        return MQTT_RC_QUOTA_EXCEEDED;
    case SESSION_ERR_PAYLOAD_FORMAT:
        return MQTT_RC_PAYLOAD_FORMAT_INVALID;
    case SESSION_ERR_RETAIN_NOT_SUPPORTED:
        return MQTT_RC_RETAIN_NOT_SUPPORTED;
    case SESSION_ERR_NOMEM:
        return MQTT_RC_SERVER_BUSY;
    case SESSION_ERR_NOT_AUTHORIZED:
        return MQTT_RC_NOT_AUTHORIZED;
    default:
        return MQTT_RC_UNSPECIFIED_ERROR;
    }
}

uint64_t monotonic_us(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u;
}

/* ---- The clock ---- */

uint64_t session_now_s(const struct session_mgr *mgr)
{
    uint64_t elapsed_us = monotonic_us() - mgr->clock_base_mono_us;
    return (mgr->clock_base_us + elapsed_us) / 1000000u + mgr->clock_skew_s;
}

void session_clock_advance(struct session_mgr *mgr, uint64_t seconds)
{
    mgr->clock_skew_s += seconds;
}

/*
 * The clock rule (README, Durability): expiry deadlines are wall-clock
 * times, stored; while the broker runs, time is measured with the monotonic
 * clock from the wall-clock time of the start, so a wall-clock jump while it
 * runs changes nothing. Across a restart only the wall clock spans the
 * downtime: it counts, except that the broker's time never goes back - a wall
 * clock behind the time last recorded in the store (the clock_s counter,
 * every CLOCK_RECORD_S) starts from that time instead, so a clock set back
 * (an edge box without a real-time clock, before NTP) can lengthen no
 * deadline by more than CLOCK_RECORD_S, and keeps no session forever.
 */
#define CLOCK_COUNTER  "clock_s"
#define CLOCK_RECORD_S 60

static void clock_init(struct session_mgr *mgr)
{
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    uint64_t wall_us = (uint64_t)wall.tv_sec * 1000000u + (uint64_t)wall.tv_nsec / 1000u;
    uint64_t last_s = 0;
    if (store_get_counter(mgr->store, CLOCK_COUNTER, &last_s) == 0 && last_s > wall_us / 1000000u) {
        log_warning("the wall clock (%llu) is behind the time the broker last recorded (%llu): "
                    "counting from that",
                    (unsigned long long)(wall_us / 1000000u), (unsigned long long)last_s);
        wall_us = last_s * 1000000u;
    }
    mgr->clock_base_us = wall_us;
    mgr->clock_base_mono_us = monotonic_us();
}

/* Records the broker's time in the store (with the turn's commit). */
static void record_clock(struct session_mgr *mgr, uint64_t now_s)
{
    struct store_batch *b = mgr_batch(mgr);
    if (b && store_batch_set_counter(b, CLOCK_COUNTER, now_s) == 0)
        mgr->clock_recorded_s = now_s;
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

static void free_qos2_ids(struct session *s);

/* ---- Offline sessions ---- */

/* s lost its client (or was read back from the store): counted, and its
 * expiry scheduled (timers.c). A failed schedule only delays its expiry to
 * the next time it is scheduled: logged, never fatal. */
void session_offline_add(struct session_mgr *mgr, struct session *s)
{
    if (!s->is_offline) {
        s->is_offline = true;
        mgr->offline_count++;
    }
    if (timers_schedule(mgr, s) != 0)
        log_error("client %s: out of memory scheduling the session's expiry", s->client_id);
}

void session_offline_remove(struct session_mgr *mgr, struct session *s)
{
    if (s->is_offline) {
        s->is_offline = false;
        mgr->offline_count--;
    }
    if (timers_schedule(mgr, s) != 0)
        log_error("client %s: out of memory scheduling the session's will", s->client_id);
}

/* The subscription index: plain filters in the trie, shared ones in their
 * groups (share.c). 0 or -ENOMEM (nothing indexed). */
static int index_subscription(struct session_mgr *mgr, struct session *s, struct mqtt_bytes filter,
                              uint32_t grant)
{
    if (share_is_shared(filter))
        return share_join(mgr, s, filter, grant) == 0 ? 0 : -ENOMEM;
    return trie_subscribe(mgr->trie, filter, s, grant) < 0 ? -ENOMEM : 0;
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
        deliver_unschedule(mgr, s);
    free_qos2_ids(s);
    retained_stream_free_all(s);
    if (s->is_offline)
        mgr->offline_count--;
    timers_remove(mgr, s);
    session_drop_waiting_will(s);
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
    /* The session ends: a will still waiting for its delay goes now
     * [MQTT-3.1.3-9]. Published while s still exists, as any offline
     * session's would be; its own copy goes with its records. */
    if (!mgr->is_closing)
        session_fire_pending_will(mgr, s);
    bool has_record = s->record != SESSION_RECORD_ABSENT; /* also a clean session's will */
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
                             struct sub_state sub)
{
    uint32_t grant = sub_grant(sub.options, sub.sub_id);
    struct sub_entry *e = find_sub(s, filter);
    if (e) {
        if (index_subscription(mgr, s, filter, grant) != 0)
            return -ENOMEM;
        e->options = sub.options;
        e->sub_id = sub.sub_id;
        return 0;
    }
    e = malloc(sizeof(*e) + filter.len);
    if (!e)
        return -ENOMEM;
    e->filter_len = (uint16_t)filter.len;
    memcpy(e->filter, filter.data, filter.len);
    e->options = sub.options;
    e->sub_id = sub.sub_id;
    if (index_subscription(mgr, s, filter, grant) != 0) {
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

bool session_subscription_get(const struct session *s, struct mqtt_bytes filter,
                              struct sub_state *out)
{
    struct sub_entry *e = find_sub(s, filter);
    if (e)
        *out = (struct sub_state){e->options, e->sub_id};
    return e != NULL;
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

/* The will a record holds: one waiting for its delay (offline), or that of
 * a client connected when the broker stopped - its connection ended
 * abnormally then, so the will waits its delay from the restart. A deadline
 * further than the delay from now (a clock set back) is brought in: a will
 * never waits longer than its delay after a start. */
static int load_will(struct session_mgr *mgr, struct session *s, const struct store_session *rec)
{
    if (!rec->has_will)
        return 0;
    uint64_t latest = timers_deadline(session_now_s(mgr), rec->will_delay_s);
    uint64_t at = rec->is_online || rec->will_at_s == 0 ? latest : rec->will_at_s;
    struct waiting_will *w = malloc(sizeof(*w));
    struct msg *m = msg_new_v5((struct mqtt_bytes){rec->will_topic.data, rec->will_topic.len},
                               (struct mqtt_bytes){rec->will_payload.data, rec->will_payload.len},
                               (struct mqtt_bytes){rec->will_props.data, rec->will_props.len}, 0,
                               rec->will_qos, rec->will_retain);
    if (!w || !m) {
        free(w);
        msg_unref(m);
        return -ENOMEM;
    }
    *w = (struct waiting_will){
        .msg = m, .at_s = at < latest ? at : latest, .delay_s = rec->will_delay_s};
    s->will = w;
    return 0;
}

static int load_session(void *arg, const struct store_session_info *info)
{
    struct session_mgr *mgr = arg;
    struct session *s = session_new(mgr, info->client_id.data, info->client_id.len, true);
    if (!s)
        return -ENOMEM;
    s->next_packet_id = info->session.next_packet_id ? info->session.next_packet_id : 1;
    s->record = SESSION_RECORD_STORED;
    s->last_seen_s = info->session.last_seen_s;
    /* An interval of 0 is stored only while its client is connected (or
     * for a clean session's will): after a crash it ends at once
     * (session_mgr_new() expires it, publishing its will). */
    s->expiry_s = info->session.expiry_s;
    s->last_seq = info->last_seq;
    s->backlog = info->has_queue;
    int rc = load_will(mgr, s, &info->session);
    if (rc != 0)
        return rc;
    if (info->session.is_online) {
        /* Its client was connected when the broker stopped: disconnected
         * now, and recorded so (a second crash keeps this deadline). */
        s->last_seen_s = session_now_s(mgr);
        if (mgr->is_recovering && connect_store_session(mgr, s) != 0)
            return -ENOMEM;
    }
    session_offline_add(mgr, s);
    return 0;
}

static int load_subscription(void *arg, struct store_bytes client_id, struct store_bytes filter,
                             uint8_t options, uint32_t sub_id)
{
    struct session_mgr *mgr = arg;
    struct session *s = table_get(&mgr->sessions, client_id.data, client_id.len);
    if (!s) /* store_check reports orphans; the broker ignores them */
        return 0;
    return session_add_subscription(mgr, s, (struct mqtt_bytes){filter.data, filter.len},
                                    (struct sub_state){options, sub_id});
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

static int recover(struct session_mgr *mgr, char *err, size_t err_len)
{
    mgr->is_recovering = true;
    int rc = store_sessions_foreach(mgr->store, load_session, mgr);
    mgr->is_recovering = false;
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
    clock_init(mgr);
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
    /* Expiry is enforced across downtime: what expired while the broker was
     * down goes before the first client is served (committed with the
     * first turn). */
    size_t expired = session_expire(mgr, session_now_s(mgr));
    if (expired > 0)
        log_notice("%zu sessions expired while the broker was down", expired);
    record_clock(mgr, session_now_s(mgr));
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
    (void)session_commit_collect(mgr, true); /* the storage thread's batch finishes first */
    if (mgr->batch)
        store_batch_discard(mgr->batch);
    struct held_send *held = mgr->held_head;
    mgr->held_head = mgr->held_tail = NULL;
    output_release_held(mgr, held, STORE_ERR_CANCELED);
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
    free(mgr->match_ids);
    free(mgr->delivery_ids);
    free(mgr->timers);
    free(mgr);
}

/* ---- Connections ---- */

struct session_client *session_client_new(struct session_mgr *mgr, void *conn, const char *peer)
{
    (void)mgr; /* not kept: every call into the manager passes it (8 bytes per connection) */
    if (!peer)
        peer = "unknown";
    size_t peer_len = strlen(peer);
    struct session_client *c = calloc(1, sizeof(*c) + peer_len + 1);
    if (!c)
        return NULL;
    memcpy(c->peer, peer, peer_len + 1);
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
        .messages_dropped = mgr->dropped_qos0 + mgr->dropped_queue_full + mgr->dropped_too_large,
        .messages_queue_dropped = mgr->dropped_queue_full,
        .messages_too_large_dropped = mgr->dropped_too_large,
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
    return client->connected ? client->protocol_level : MQTT_PROTOCOL_V5;
}

bool session_client_has_held(const struct session_client *client)
{
    return client->held_sends > 0;
}

const char *session_client_name(const struct session_client *client)
{
    if (client->sess)
        return (const char *)client->sess->client_id;
    return client->peer;
}

/*
 * A client's DISCONNECT. MQTT 5: any reason but 0x00 (0x04 "with will
 * message", or an error) leaves the will to be published [MQTT-3.1.2-10];
 * a Session Expiry Interval replaces the CONNECT's, except that one that was
 * 0 may not become non-zero [MQTT-3.14.2-2].
 */
static int handle_disconnect(struct session_mgr *mgr, struct session_client *c,
                             const struct mqtt_packet *pkt)
{
    (void)mgr;
    if (!client_is_v5(c))
        return SESSION_ERR_DISCONNECT;
    const struct mqtt_disconnect *d = &pkt->u.disconnect;
    if (mqtt_properties_has(&d->props, MQTT_PROP_SESSION_EXPIRY_INTERVAL)) {
        uint32_t expiry = d->props.session_expiry_interval_s;
        if (c->v5->connect_expiry_s == 0 && expiry != 0) {
            log_notice("client %s: DISCONNECT sets a session expiry after a CONNECT with 0",
                       session_client_name(c));
            return SESSION_ERR_PROTOCOL;
        }
        c->sess->expiry_s = expiry;
    }
    c->v5->is_will_on_disconnect = d->reason_code != MQTT_RC_NORMAL_DISCONNECTION;
    return SESSION_ERR_DISCONNECT;
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
        return handle_disconnect(mgr, c, pkt);
    case MQTT_AUTH: /* re-authentication [4.12.1], or a protocol error */
        return connect_auth_handle_connected(mgr, c, &pkt->u.auth);
    default: /* CONNACK, SUBACK, UNSUBACK, PINGRESP only go server -> client */
        return SESSION_ERR_PROTOCOL;
    }
}

int session_handle_packet(struct session_mgr *mgr, struct session_client *client,
                          const struct mqtt_packet *pkt)
{
    if (!client->connected) {
        /* A CONNECT that started an enhanced authentication waits for its
         * AUTH packets [4.12]. */
        if (connect_auth_is_pending(client))
            return connect_auth_handle(mgr, client, pkt);
        /* The first packet must be CONNECT [MQTT-3.1.0-1]. */
        if (pkt->type != MQTT_CONNECT)
            return SESSION_ERR_PROTOCOL;
        return connect_handle(mgr, client, &pkt->u.connect);
    }
    return handle_connected(mgr, client, pkt);
}

/* A will's Message Expiry Interval starts when it is published: the will is
 * kept with the property (connect.c), and published as a message with a
 * deadline and without it. Takes will's reference; returns the message to
 * publish (will itself when it has no expiry, or NULL when out of memory). */
static struct msg *will_with_deadline(struct session_mgr *mgr, struct msg *will)
{
    struct mqtt_property_iter it;
    struct mqtt_property prop = {0};
    mqtt_property_iter_init_raw(&it, (struct mqtt_bytes){will->props, will->props_len});
    while (mqtt_property_iter_next(&it, &prop) && prop.id != MQTT_PROP_MESSAGE_EXPIRY_INTERVAL)
        ;
    if (prop.id != MQTT_PROP_MESSAGE_EXPIRY_INTERVAL || will->props_len == 0)
        return will;
    uint8_t *buf = malloc(will->props_len);
    size_t len = 0;
    struct msg *m = NULL;
    if (buf && mqtt_properties_copy((struct mqtt_bytes){will->props, will->props_len},
                                    MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY_INTERVAL), buf,
                                    will->props_len, &len) == MQTT_OK)
        m = msg_new_v5((struct mqtt_bytes){will->topic, will->topic_len},
                       (struct mqtt_bytes){will->payload, will->payload_len},
                       (struct mqtt_bytes){buf, len}, session_now_s(mgr) + prop.value, will->qos,
                       will->retain);
    free(buf);
    msg_unref(will);
    return m;
}

/* Publishes s's will (taking its reference), as s's client would have
 * (No Local applies to s's own filters). */
static void publish_will(struct session_mgr *mgr, const struct session *s, struct msg *will)
{
    const char *name = (const char *)s->client_id;
    if (!(will = will_with_deadline(mgr, will))) {
        log_error("client %s: will not published: out of memory", name);
        return;
    }
    log_info("client %s: publishing will on %s", name, (char *)will->topic);
    int rc = 0;
    bool retain = will->retain; /* Retain As Published; bridges forward it as published */
    if (retain)
        rc = publish_set_retained(mgr, will, true);
    /* Live forwards carry RETAIN 0 [MQTT-3.3.1-9]. Nothing was sent of the
     * will yet, so no QoS 0 header with the old flag exists (msg_qos0_packet). */
    assert(will->qos0_header_len == 0);
    will->retain = false;
    if (rc == 0)
        rc = publish_route(mgr, will, retain, s);
    if (rc != 0)
        log_error("client %s: will not published: %s", name, store_strerror(rc));
    msg_unref(will);
}

void session_drop_waiting_will(struct session *s)
{
    if (!s->will)
        return;
    msg_unref(s->will->msg);
    free(s->will);
    s->will = NULL;
}

void session_fire_pending_will(struct session_mgr *mgr, struct session *s)
{
    if (!s->will)
        return;
    struct msg *will = msg_ref(s->will->msg);
    session_drop_waiting_will(s);
    timers_schedule(mgr, s); /* its due time was the will's; cannot grow the heap */
    publish_will(mgr, s, will);
}

/* A will whose Will Delay Interval has not passed waits on its session
 * (MQTT 5 [3.1.3.2.2]), unless the session ends with the connection. Takes
 * the reference on will. */
static void keep_will_waiting(struct session_mgr *mgr, struct session *s, struct msg *will,
                              uint32_t delay_s)
{
    session_drop_waiting_will(s); /* a takeover's earlier will: the newer replaces it */
    struct waiting_will *w = malloc(sizeof(*w));
    if (!w) {
        publish_will(mgr, s, will); /* no room to wait: now */
        return;
    }
    *w = (struct waiting_will){
        .msg = will, .at_s = timers_deadline(session_now_s(mgr), delay_s), .delay_s = delay_s};
    s->will = w;
    log_info("client %s: will delayed by %u s", (char *)s->client_id, (unsigned)delay_s);
    if (timers_schedule(mgr, s) != 0)
        session_fire_pending_will(mgr, s); /* no room to wait: publish it now */
}

/* Does the session outlive its connection? A clean (3.1.1) or 0-expiry
 * (MQTT 5) one does not; one whose record never committed did not exist. */
static bool outlives_connection(const struct session *s)
{
    return s->persistent && s->expiry_s != 0 && s->record != SESSION_RECORD_ABSENT;
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
        deliver_unschedule(mgr, s);
    uint32_t delay_s = c->v5 ? c->v5->will_delay_interval_s : 0;
    if (will && delay_s > 0 && outlives_connection(s)) {
        keep_will_waiting(mgr, s, will, delay_s);
        return;
    }
    /* The will goes out once the client is detached: its own session, if it
     * matches, gets it as any offline session would - never through the
     * connection that is going away (found by fuzz_session). */
    if (will)
        publish_will(mgr, s, will);
}

void session_client_detach(struct session_mgr *mgr, struct session_client *c, bool fire_will)
{
    struct session *s = c->sess;
    session_client_unlink(mgr, c, fire_will);
    if (!s)
        return;
    if (!outlives_connection(s)) {
        /* A clean or 0-expiry session ends with its connection; one whose
         * first commit failed never existed. */
        session_discard(mgr, s);
        return;
    }
    /* The window and queue are in the store; reconnect reads them back. The
     * record's last_seen (and expiry, which a DISCONNECT may change) is
     * what expiry counts from. */
    s->last_seen_s = session_now_s(mgr);
    if (connect_store_session(mgr, s) != 0)
        log_error("client %s: could not record the disconnect time", (char *)s->client_id);
    session_offline_add(mgr, s);
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
    /* The will is published on any close but a DISCONNECT [MQTT-3.1.2-8]
     * (MQTT 5: a DISCONNECT with reason 0x00 [MQTT-3.1.2-10]). A broker
     * shutdown is not a 3.1.1 client's failure; an MQTT 5 client was told
     * (DISCONNECT 0x8B) and its will goes as the spec says, after its delay. */
    bool fire_will =
        reason != SESSION_CLOSE_DISCONNECT || (client->v5 && client->v5->is_will_on_disconnect);
    if (reason == SESSION_CLOSE_SHUTDOWN && !client_is_v5(client))
        fire_will = false;
    session_client_detach(mgr, client, fire_will);
    if (client->v5) {
        connect_auth_end(client); /* a CONNECT kept for an exchange that never ended */
        aliases_deinit(&client->v5->aliases);
        free(client->v5);
    }
    free(client->username);
    free(client);
}

void session_client_writable(struct session_mgr *mgr, struct session_client *client)
{
    /* QoS 1/2 wait for the window and for max_output_buffer_bytes. */
    if (client->sess && client->connected)
        deliver_output_drained(mgr, client->sess);
}

/* Pops what is due from the timers heap: O(log n) per session due. */
size_t session_expire(struct session_mgr *mgr, uint64_t now_s)
{
    size_t count = 0;
    struct session *s;
    while ((s = timers_first_due(mgr, now_s))) {
        bool is_fired = s->will && s->will->at_s <= now_s;
        if (is_fired)
            session_fire_pending_will(mgr, s);
        if (timers_expires_at(mgr, s) <= now_s) {
            log_notice("client %s: session expired", (char *)s->client_id);
            session_discard(mgr, s); /* takes it out of the heap */
            count++;
            continue;
        }
        /* The session goes on without its will: its record too. */
        if (is_fired && s->record != SESSION_RECORD_ABSENT && connect_store_session(mgr, s) != 0)
            log_error("client %s: could not record that its will was published",
                      (char *)s->client_id);
        /* Due for nothing (cannot happen): placed again, never spun on. */
        if (timers_schedule(mgr, s) != 0 || (s->timer_slot != 0 && s->due_s <= now_s))
            timers_remove(mgr, s);
    }
    return count;
}

size_t session_tick(struct session_mgr *mgr)
{
    uint64_t now_s = session_now_s(mgr);
    if (now_s >= mgr->clock_recorded_s + CLOCK_RECORD_S)
        record_clock(mgr, now_s);
    return session_expire(mgr, now_s);
}

void session_client_disconnect(struct session_mgr *mgr, struct session_client *client,
                               uint8_t reason_code, const char *why)
{
    if (!client->connected || !client_is_v5(client) || client->v5->has_sent_disconnect)
        return;
    struct mqtt_packet pkt = {.type = MQTT_DISCONNECT};
    pkt.u.disconnect.reason_code = reason_code;
    if (why) {
        pkt.u.disconnect.props.present = MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
        pkt.u.disconnect.props.reason_string =
            (struct mqtt_bytes){(const uint8_t *)why, strlen(why)};
    }
    if (output_send_packet(mgr, client, &pkt) == 0)
        client->v5->has_sent_disconnect = true;
}
