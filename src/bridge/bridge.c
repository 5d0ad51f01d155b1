/*
 * bridge.c - the life of a bridge: creation from its connection block, the
 * one timer that drives each connection phase (restart delay, resolver
 * polling, the connect deadline, keepalive), failing and reconnecting with
 * Mosquitto's backoff, the local state notification, and the set's status
 * for metrics.
 *
 * A bridge is referenced by the set and by every completion it has pending
 * on the session manager's batch (an ack that waits for a commit): freeing
 * the set marks each bridge dead, and the last reference frees it, so a
 * completion never runs on freed memory.
 * Not for: sockets and TLS (net.c), MQTT (proto.c).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bridge_internal.h"
#include "log.h"
#include "metrics.h"
#include "session.h"
#include "store.h"

static uint64_t rng_state;

/* xorshift64: backoff jitter needs no more. */
static double random_unit(void)
{
    if (rng_state == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        rng_state = (uint64_t)ts.tv_nsec * 2654435761u + (uint64_t)getpid() + 1;
    }
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / (double)(1ull << 53);
}

/*
 * restart_timeout: a constant delay (one value), or Mosquitto 2's
 * "decorrelated jitter" backoff (two): a random delay between base and three
 * times the previous one, at most cap; a successful connection starts over.
 */
static double next_delay_s(struct bridge *b)
{
    double base = b->cfg->restart_base_s, cap = b->cfg->restart_cap_s;
    if (cap <= 0)
        return base;
    double prev = b->last_delay_s > 0 ? b->last_delay_s : base;
    double d = base + random_unit() * (prev * 3 - base);
    b->last_delay_s = d < cap ? d : cap;
    return b->last_delay_s;
}

static void schedule_attempt(struct bridge *b, double delay_s)
{
    ev_timer_stop(b->set->loop, &b->timer);
    ev_timer_set(&b->timer, delay_s, 0.);
    ev_timer_start(b->set->loop, &b->timer);
}

void bridge_notify_local(struct bridge *b, bool online)
{
    if (!b->cfg->notifications)
        return;
    if (session_publish_internal(b->set->mgr, b->state_topic, online ? "1" : "0", 1, true) != 0)
        log_warning("bridge %s: notification on %s not published: out of memory", b->cfg->name,
                    b->state_topic);
}

void bridge_fail(struct bridge *b, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    bool was_online = b->state == BRIDGE_ONLINE;
    /* A remote that closes on the bridge flag (MQTT level | 0x80) instead of
     * answering CONNACK does not know it: try again without it. A timeout or
     * bad data is no such answer: the flag stays (without it, a Mosquitto
     * remote echoes "both" topics back). */
    bool drop_private = b->state == BRIDGE_CONNACK && b->use_private && !b->private_refused &&
                        b->is_closed_by_peer;
    b->is_closed_by_peer = false;
    log_warning("bridge %s: %s", b->cfg->name, why);
    proto_reset_window(b);
    net_close(b);
    ev_timer_stop(b->set->loop, &b->timer);
    b->state = BRIDGE_IDLE;
    b->conn_gen++;
    if (was_online)
        bridge_notify_local(b, false);
    if (b->is_dead)
        return;
    if (drop_private) {
        b->private_refused = true;
        log_notice("bridge %s: retrying at once without the bridge flag (try_private)",
                   b->cfg->name);
        schedule_attempt(b, 0.);
        return;
    }
    double delay_s = next_delay_s(b);
    log_notice("bridge %s: next attempt in %.1f s", b->cfg->name, delay_s);
    schedule_attempt(b, delay_s);
}

void bridge_transport_ready(struct bridge *b)
{
    b->state = BRIDGE_CONNACK;
    if (proto_send_connect(b) != 0)
        bridge_fail(b, "out of memory sending CONNECT");
}

static void start_keepalive(struct bridge *b)
{
    ev_timer_stop(b->set->loop, &b->timer);
    ev_timer_set(&b->timer, b->cfg->keepalive_s, 0.);
    ev_timer_start(b->set->loop, &b->timer);
}

void bridge_online(struct bridge *b)
{
    b->state = BRIDGE_ONLINE;
    b->connects++;
    b->last_delay_s = 0;
    log_notice("bridge %s: connected to %s as %s (session present %d%s)", b->cfg->name, b->peer,
               b->client_id, b->session_present ? 1 : 0, b->use_private ? ", bridge flag" : "");
    start_keepalive(b);
    bridge_notify_local(b, true);
}

/* Keepalive: one PINGREQ per interval; an interval without any packet from
 * the remote after one ends the connection. */
static void keepalive_tick(struct bridge *b)
{
    if (b->ping_outstanding) {
        bridge_fail(b, "no answer from %s within keepalive_interval (%u s)", b->peer,
                    (unsigned)b->cfg->keepalive_s);
        return;
    }
    static const uint8_t pingreq[2] = {MQTT_PINGREQ << 4, 0};
    b->ping_outstanding = true;
    uint64_t gen = b->conn_gen;
    if (net_send(b, pingreq, sizeof(pingreq)) != 0) {
        bridge_fail(b, "out of memory sending PINGREQ");
        return;
    }
    if (gen == b->conn_gen)
        start_keepalive(b);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct bridge *b = container_of(w, struct bridge, timer);
    switch (b->state) {
    case BRIDGE_IDLE:
        b->conn_gen++;
        b->use_private = b->cfg->try_private && !b->private_refused;
        net_start_attempt(b);
        break;
    case BRIDGE_RESOLVING:
        net_poll_resolve(b);
        break;
    case BRIDGE_CONNECTING:
    case BRIDGE_TLS:
    case BRIDGE_CONNACK:
        bridge_fail(b, "connecting to %s timed out", b->peer);
        break;
    case BRIDGE_ONLINE:
        keepalive_tick(b);
        break;
    }
}

/* ---- creation and the set ---- */

/* Memory only: the socket, watchers and window went in bridge_set_free(),
 * while the loop was still there. */
static void bridge_free_now(struct bridge *b)
{
    proto_free_in_ids(b);
    hashtable_deinit(&b->out_ids);
    topics_free(b);
    net_tls_ctx_free(b);
    free(b->in);
    free(b->out);
    free(b->client_id);
    free(b->state_topic);
    free(b);
}

void bridge_unref(struct bridge *b)
{
    if (--b->refs == 0)
        bridge_free_now(b);
}

/* remote_clientid, else Mosquitto's HOSTNAME.NAME; the notification topic,
 * else $SYS/broker/connection/CLIENTID/state (Mosquitto's default). */
static int make_names(struct bridge *b)
{
    const struct config_bridge *c = b->cfg;
    char host[256] = "sol";
    if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0')
        snprintf(host, sizeof(host), "sol");
    host[sizeof(host) - 1] = '\0';
    size_t id_len =
        c->remote_clientid ? strlen(c->remote_clientid) : strlen(host) + 1 + strlen(c->name);
    b->client_id = malloc(id_len + 1);
    if (!b->client_id)
        return -ENOMEM;
    if (c->remote_clientid)
        memcpy(b->client_id, c->remote_clientid, id_len + 1);
    else
        snprintf(b->client_id, id_len + 1, "%s.%s", host, c->name);
    if (c->notification_topic) {
        b->state_topic = strdup(c->notification_topic);
    } else {
        size_t len = strlen("$SYS/broker/connection//state") + id_len + 1;
        b->state_topic = malloc(len);
        if (b->state_topic)
            snprintf(b->state_topic, len, "$SYS/broker/connection/%s/state", b->client_id);
    }
    return b->state_topic ? 0 : -ENOMEM;
}

static const struct session_bridge_ops bridge_ops = {
    .queued = proto_on_queued,
    .forward_qos0 = proto_forward_qos0,
};

/* Tells routing which local topics leave through b: the local filters of
 * its out and both lines. */
static int register_routes(struct bridge *b, char *err, size_t err_len)
{
    struct session_bridge_filter *filters =
        calloc(b->topic_count ? b->topic_count : 1, sizeof(*filters));
    if (!filters) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    size_t n = 0;
    for (size_t i = 0; i < b->topic_count; i++) {
        if (b->topics[i].direction & CONFIG_BRIDGE_OUT)
            filters[n++] =
                (struct session_bridge_filter){b->topics[i].local_filter, b->topics[i].qos};
    }
    struct session_bridge_config sc = {
        .name = b->cfg->name,
        .filters = filters,
        .filter_count = n,
        .max_queued_messages = b->cfg->max_queued_messages,
        .max_queued_bytes = b->cfg->max_queued_bytes,
        .ops = &bridge_ops,
        .arg = b,
    };
    char why[200];
    int rc = session_bridge_new(b->set->mgr, &sc, &b->sb, why, sizeof(why));
    free(filters);
    if (rc != 0)
        snprintf(err, err_len, "%s: connection %s: %s", b->cfg->where, b->cfg->name, why);
    return rc;
}

static int bridge_new(struct bridge_set *set, const struct config_bridge *cfg, struct bridge **out,
                      char *err, size_t err_len)
{
    struct bridge *b = calloc(1, sizeof(*b));
    if (!b) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    *b = (struct bridge){.set = set, .cfg = cfg, .refs = 1, .fd = -1};
    hashtable_init(&b->out_ids);
    hashtable_init(&b->in_ids);
    net_init_watchers(b);
    ev_init(&b->timer, on_timer);
    *out = b;
    if (make_names(b) != 0 || topics_build(b) != 0) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    if (net_tls_ctx_new(b, err, err_len) != 0 || register_routes(b, err, err_len) != 0)
        return -1;
    int rc = proto_load_in_ids(b);
    if (rc != 0) {
        snprintf(err, err_len, "%s: connection %s: reading the store: %s", cfg->where, cfg->name,
                 store_strerror(rc));
        return -1;
    }
    return 0;
}

/* Queues in the store of bridges the configuration no longer has: named,
 * so their messages are not silently forgotten. */
static int warn_unconfigured(void *arg, struct store_bytes name, uint64_t count)
{
    const struct bridge_set *set = arg;
    for (size_t i = 0; i < set->count; i++) {
        const char *n = set->bridges[i]->cfg->name;
        if (strlen(n) == name.len && memcmp(n, name.data, name.len) == 0)
            return 0;
    }
    log_warning("store: %llu messages queued for bridge %.*s, which is not configured: they stay "
                "in the store until a connection of that name sends them",
                (unsigned long long)count, (int)name.len, (const char *)name.data);
    return 0;
}

static void start(struct bridge *b)
{
    uint64_t count = 0, bytes = 0;
    struct session_bridge_stats st;
    session_bridge_get_stats(b->sb, &st);
    count = st.queued_messages;
    bytes = st.queued_bytes;
    log_notice("bridge %s: %zu address%s, %zu topic%s, %llu messages (%llu bytes) queued",
               b->cfg->name, b->cfg->address_count, b->cfg->address_count == 1 ? "" : "es",
               b->topic_count, b->topic_count == 1 ? "" : "s", (unsigned long long)count,
               (unsigned long long)bytes);
    bridge_notify_local(b, false);
    schedule_attempt(b, 0.);
}

int bridge_check_config(const struct config_bridge *bridges, size_t count, char *err,
                        size_t err_len)
{
    for (size_t i = 0; i < count; i++) {
        struct bridge probe = {.cfg = &bridges[i]};
        if (net_tls_ctx_new(&probe, err, err_len) != 0)
            return -1;
        net_tls_ctx_free(&probe);
    }
    return 0;
}

int bridge_set_new(struct ev_loop *loop, const struct bridge_options *opts, struct session_mgr *mgr,
                   struct store *store, struct bridge_set **out, char *err, size_t err_len)
{
    *out = NULL;
    struct bridge_set *set = calloc(1, sizeof(*set));
    size_t n = opts->bridge_count ? opts->bridge_count : 1;
    struct bridge **list = calloc(n, sizeof(*list));
    struct metrics_bridge *metrics = calloc(n, sizeof(*metrics));
    if (!set || !list || !metrics) {
        free(set);
        free(list);
        free(metrics);
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    *set = (struct bridge_set){.loop = loop,
                               .mgr = mgr,
                               .store = store,
                               .window = opts->max_inflight ? opts->max_inflight : 65000,
                               .max_packet_size = opts->max_packet_size,
                               .max_output_bytes = opts->max_output_bytes ? opts->max_output_bytes
                                                                          : (size_t)16 << 20,
                               .bridges = list,
                               .metrics = metrics};
    if (set->window > 65000)
        set->window = 65000; /* ids are seq % 65533: at most that many in flight */
    for (size_t i = 0; i < opts->bridge_count; i++) {
        int rc = bridge_new(set, &opts->bridges[i], &set->bridges[i], err, err_len);
        if (set->bridges[i])
            set->count = i + 1;
        if (rc != 0) {
            bridge_set_free(set);
            return -1;
        }
    }
    (void)store_bridge_names_foreach(store, warn_unconfigured, set);
    for (size_t i = 0; i < set->count; i++)
        start(set->bridges[i]);
    *out = set;
    return 0;
}

void bridge_set_free(struct bridge_set *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->count; i++) {
        struct bridge *b = set->bridges[i];
        b->is_dead = true;
        if (b->sb)
            session_bridge_detach(b->sb);
        proto_reset_window(b);
        net_close(b);
        ev_timer_stop(set->loop, &b->timer);
        bridge_unref(b);
    }
    free(set->bridges);
    free(set->metrics);
    free(set);
}

void bridge_set_metrics(struct bridge_set *set, struct metrics_stats *out)
{
    if (!set || set->count == 0)
        return;
    for (size_t i = 0; i < set->count; i++) {
        const struct bridge *b = set->bridges[i];
        struct session_bridge_stats st = {0};
        if (b->sb)
            session_bridge_get_stats(b->sb, &st);
        set->metrics[i] = (struct metrics_bridge){
            .name = b->cfg->name,
            .connected = b->state == BRIDGE_ONLINE,
            .queued_messages = st.queued_messages,
            .queued_bytes = st.queued_bytes,
            .inflight_messages = b->out_count,
            .publishes_refused = st.refused,
            .connects = b->connects,
        };
    }
    out->bridges = set->metrics;
    out->bridge_count = set->count;
}
