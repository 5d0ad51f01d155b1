/*
 * bridges.c - the local side of bridges: which local publishes leave
 * through a bridge's `out` filters, their queue in the store, its limits,
 * and the messages a bridge brings in.
 *
 * A copy for a bridge at QoS 1/2 is a queue entry appended in the same
 * batch as the publish that produced it: the publisher's ack waits for that
 * commit like any other. The entry refers to the message body the batch
 * stores once for every queue. The bridge module reads the queue back from
 * the store after each commit that appended to it (ops->queued) and reports
 * the remote's acks (session_bridge_acked), which delete entries.
 *
 * Memory follows the store: a bridge's totals (what its limits see) count
 * an append at once and a delete when its commit succeeds; a batch that
 * fails takes its appends back out of the totals. Each batch gets one small
 * record per bridge with those numbers (struct delta), registered as a
 * completion, which finds its bridge again by serial number.
 *
 * Cost per publish: O(bridges x out filters x topic levels), all set by the
 * configuration, none by a client.
 * Not for: the network side (src/bridge/), topic remapping (the bridge
 * module's: the queue holds local topics).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "mqtt_topic.h"
#include "session_internal.h"
#include "store.h"
#include "trie.h"

#define FULL_LOG_INTERVAL_S 60

struct bridge_filter {
    struct mqtt_bytes filter; /* points into the bridge's allocation */
    uint8_t qos;
};

struct delta;

struct session_bridge {
    struct session_bridge *next;
    struct session_mgr *mgr;
    uint64_t serial;
    char *name;
    size_t name_len;
    struct bridge_filter *filters;
    size_t filter_count;
    uint64_t max_count, max_bytes;
    const struct session_bridge_ops *ops; /* NULL once detached */
    void *arg;
    uint64_t count, bytes; /* the totals the limits see */
    uint64_t last_seq;     /* highest seq handed out */
    struct delta *delta;   /* the open batch's record, or NULL */
    int route_qos;         /* set by bridges_match: -1 not matched, else the copy's QoS */
    uint64_t refused, dropped;
    uint64_t full_logged_s, full_since_log;
};

/* What one batch did to one bridge's queue. */
struct delta {
    struct session_mgr *mgr;
    struct store_batch *batch; /* the batch it belongs to (compared, never used) */
    uint64_t serial;           /* the bridge's */
    uint64_t appended, appended_bytes;
    uint64_t deleted, deleted_bytes;
};

static struct store_bytes key_of(const struct session_bridge *b)
{
    return (struct store_bytes){(const uint8_t *)b->name, b->name_len};
}

static struct session_bridge *find_serial(struct session_mgr *mgr, uint64_t serial)
{
    for (struct session_bridge *b = mgr->bridges; b; b = b->next)
        if (b->serial == serial)
            return b;
    return NULL;
}

static void on_delta_commit(void *arg, int status)
{
    struct delta *d = arg;
    struct session_bridge *b = find_serial(d->mgr, d->serial);
    if (b && b->delta == d)
        b->delta = NULL;
    if (b && status == 0) {
        b->count -= d->deleted <= b->count ? d->deleted : b->count;
        b->bytes -= d->deleted_bytes <= b->bytes ? d->deleted_bytes : b->bytes;
        if (d->appended > 0 && b->ops)
            b->ops->queued(b->arg);
    } else if (b) {
        b->count -= d->appended <= b->count ? d->appended : b->count;
        b->bytes -= d->appended_bytes <= b->bytes ? d->appended_bytes : b->bytes;
    }
    free(d);
}

/* The open batch's record for b, made on first use; NULL on allocation
 * failure (the batch is failed then: nothing of it is written). */
static struct delta *delta_of(struct session_bridge *b)
{
    struct session_mgr *mgr = b->mgr;
    struct store_batch *batch = mgr_batch(mgr);
    if (!batch)
        return NULL;
    if (b->delta && b->delta->batch == batch)
        return b->delta;
    struct delta *d = calloc(1, sizeof(*d));
    if (!d || store_batch_on_commit(batch, on_delta_commit, d) != 0) {
        free(d);
        store_batch_fail(batch, -ENOMEM);
        return NULL;
    }
    *d = (struct delta){.mgr = mgr, .batch = batch, .serial = b->serial};
    b->delta = d;
    return d;
}

/* ---- creation ---- */

static int copy_config(struct session_bridge *b, const struct session_bridge_config *cfg)
{
    b->name_len = strlen(cfg->name);
    b->name = strdup(cfg->name);
    b->filters = calloc(cfg->filter_count ? cfg->filter_count : 1, sizeof(*b->filters));
    if (!b->name || !b->filters)
        return -ENOMEM;
    for (size_t i = 0; i < cfg->filter_count; i++) {
        size_t len = strlen(cfg->filters[i].filter);
        uint8_t *copy = malloc(len ? len : 1);
        if (!copy)
            return -ENOMEM;
        memcpy(copy, cfg->filters[i].filter, len);
        b->filters[i] = (struct bridge_filter){{copy, len}, cfg->filters[i].qos};
        b->filter_count++;
    }
    return 0;
}

static void bridge_free_one(struct session_bridge *b)
{
    for (size_t i = 0; i < b->filter_count; i++)
        free((void *)b->filters[i].filter.data);
    free(b->filters);
    free(b->name);
    free(b);
}

int session_bridge_new(struct session_mgr *mgr, const struct session_bridge_config *cfg,
                       struct session_bridge **out, char *err, size_t err_len)
{
    *out = NULL;
    struct session_bridge *b = calloc(1, sizeof(*b));
    if (!b || copy_config(b, cfg) != 0) {
        snprintf(err, err_len, "out of memory");
        if (b)
            bridge_free_one(b);
        return -ENOMEM;
    }
    struct store_bridge_queue_info info;
    int rc = store_bridge_queue_info(mgr->store, key_of(b), &info);
    if (rc != 0) {
        snprintf(err, err_len, "reading its queue: %s", store_strerror(rc));
        bridge_free_one(b);
        return rc;
    }
    b->mgr = mgr;
    b->serial = ++mgr->next_bridge_serial;
    b->max_count = cfg->max_queued_messages;
    b->max_bytes = cfg->max_queued_bytes;
    b->ops = cfg->ops;
    b->arg = cfg->arg;
    b->count = info.count;
    b->bytes = info.bytes;
    b->last_seq = info.last_seq;
    b->route_qos = -1;
    struct session_bridge **tail = &mgr->bridges;
    while (*tail)
        tail = &(*tail)->next;
    *tail = b;
    *out = b;
    return 0;
}

struct session_mgr *session_bridge_mgr(const struct session_bridge *b)
{
    return b->mgr;
}

const char *session_bridge_name(const struct session_bridge *b)
{
    return b->name;
}

void session_bridge_detach(struct session_bridge *b)
{
    b->ops = NULL;
    b->arg = NULL;
}

void bridges_free(struct session_mgr *mgr)
{
    while (mgr->bridges) {
        struct session_bridge *b = mgr->bridges;
        mgr->bridges = b->next;
        bridge_free_one(b);
    }
}

void session_bridge_get_stats(const struct session_bridge *b, struct session_bridge_stats *out)
{
    *out = (struct session_bridge_stats){
        .queued_messages = b->count,
        .queued_bytes = b->bytes,
        .refused = b->refused,
        .dropped = b->dropped,
    };
}

/* ---- routing ---- */

/* The highest QoS among b's filters that match topic, or -1. */
static int match_qos(const struct session_bridge *b, struct mqtt_bytes topic)
{
    int qos = -1;
    for (size_t i = 0; i < b->filter_count; i++) {
        if (b->filters[i].qos > qos && mqtt_topic_matches(b->filters[i].filter, topic))
            qos = b->filters[i].qos;
    }
    return qos;
}

static bool is_full(const struct session_bridge *b, size_t payload_len)
{
    return (b->max_count && b->count >= b->max_count) ||
           (b->max_bytes && b->bytes + payload_len > b->max_bytes);
}

/* Logged at most once a minute per bridge, with the count since. */
static void log_full(struct session_bridge *b, bool refused)
{
    uint64_t now_s = (uint64_t)time(NULL);
    b->full_since_log++;
    if (b->full_logged_s != 0 && now_s < b->full_logged_s + FULL_LOG_INTERVAL_S)
        return;
    log_warning("bridge %s: queue full (%llu messages, %llu bytes; bridge_max_queued_messages "
                "%llu, bridge_max_queued_bytes %llu): %s (%llu since the last notice)",
                b->name, (unsigned long long)b->count, (unsigned long long)b->bytes,
                (unsigned long long)b->max_count, (unsigned long long)b->max_bytes,
                refused ? "refusing local publishes it would take" : "dropping a will for it",
                (unsigned long long)b->full_since_log);
    b->full_logged_s = now_s;
    b->full_since_log = 0;
}

int bridges_match(struct session_mgr *mgr, const struct msg *m, const struct bridge_route *r)
{
    struct mqtt_bytes topic = {m->topic, m->topic_len};
    int entries = 0;
    for (struct session_bridge *b = mgr->bridges; b; b = b->next) {
        int qos = b == r->origin ? -1 : match_qos(b, topic);
        b->route_qos = qos >= 0 && m->qos < qos ? m->qos : qos;
        if (b->route_qos <= 0)
            continue;
        if (!is_full(b, m->payload_len)) {
            entries++;
            continue;
        }
        log_full(b, r->refuse_when_full);
        b->route_qos = -1;
        if (!r->refuse_when_full) {
            b->dropped++;
            continue;
        }
        b->refused++;
        for (struct session_bridge *o = mgr->bridges; o; o = o->next)
            o->route_qos = -1;
        return STORE_ERR_FULL;
    }
    return entries;
}

static int append(struct session_mgr *mgr, struct session_bridge *b, struct msg *m, uint8_t qos,
                  const struct bridge_route *r)
{
    int rc = deliver_store_body(mgr, m);
    struct delta *d = rc == 0 ? delta_of(b) : NULL;
    if (rc != 0 || !d)
        return rc != 0 ? rc : -ENOMEM;
    struct store_queue_entry e = {
        .msg_id = m->store_id, .qos = qos, .state = STORE_QUEUED, .retain = r->retain};
    rc = store_batch_bridge_append(mgr_batch(mgr), key_of(b), b->last_seq + 1, &e);
    if (rc != 0)
        return rc;
    b->last_seq++;
    b->count++;
    b->bytes += m->payload_len;
    d->appended++;
    d->appended_bytes += m->payload_len;
    return 0;
}

size_t bridges_marked(const struct session_mgr *mgr)
{
    size_t n = 0;
    for (const struct session_bridge *b = mgr->bridges; b; b = b->next)
        n += b->route_qos >= 0;
    return n;
}

void bridges_unmark(struct session_mgr *mgr)
{
    for (struct session_bridge *b = mgr->bridges; b; b = b->next)
        b->route_qos = -1;
}

int bridges_deliver(struct session_mgr *mgr, struct msg *m, const struct bridge_route *r)
{
    int rc = 0;
    for (struct session_bridge *b = mgr->bridges; b && rc == 0; b = b->next) {
        int qos = b->route_qos;
        b->route_qos = -1;
        if (qos > 0)
            rc = append(mgr, b, m, (uint8_t)qos, r);
        else if (qos == 0 && b->ops)
            b->ops->forward_qos0(b->arg, (struct mqtt_bytes){m->topic, m->topic_len},
                                 (struct mqtt_bytes){m->payload, m->payload_len}, r->retain);
    }
    bridges_unmark(mgr); /* an error left some marked */
    return rc;
}

/* ---- the bridge module's records ---- */

int session_bridge_acked(struct session_bridge *b, uint64_t seq, size_t payload_len)
{
    struct delta *d = delta_of(b);
    if (!d)
        return -ENOMEM;
    int rc = store_batch_bridge_delete(mgr_batch(b->mgr), key_of(b), seq);
    if (rc == 0) {
        d->deleted++;
        d->deleted_bytes += payload_len;
    }
    return rc;
}

int session_bridge_pubrec(struct session_bridge *b, uint64_t seq, uint16_t packet_id)
{
    struct store_batch *batch = mgr_batch(b->mgr);
    if (!batch)
        return -ENOMEM;
    return store_batch_bridge_update(batch, key_of(b), seq, STORE_PUBREC_RECEIVED, packet_id);
}

int session_bridge_qos2_released(struct session_bridge *b, uint16_t packet_id)
{
    struct store_batch *batch = mgr_batch(b->mgr);
    if (!batch)
        return -ENOMEM;
    return store_batch_delete_bridge_qos2_in(batch, key_of(b), packet_id);
}

/* The id of an incoming QoS 2 message, recorded with it: the batch fails
 * when the record cannot be made (a delivery without it could be repeated). */
int bridge_remember_qos2(struct session_bridge *b, uint16_t packet_id)
{
    struct store_batch *batch = mgr_batch(b->mgr);
    if (!batch)
        return -ENOMEM;
    int rc = store_batch_put_bridge_qos2_in(batch, key_of(b), packet_id, (uint64_t)time(NULL));
    if (rc != 0)
        store_batch_fail(batch, rc);
    return rc;
}

int session_after_commit(struct session_mgr *mgr, session_done_fn done, void *arg)
{
    struct store_batch *batch = mgr_batch(mgr);
    if (!batch || store_batch_on_commit(batch, done, arg) != 0)
        return -ENOMEM;
    mgr->has_waiters = true;
    return 0;
}
