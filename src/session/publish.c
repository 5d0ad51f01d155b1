/*
 * publish.c - incoming PUBLISH and PUBREL: the publisher's side of QoS 0/1/2,
 * routing to matching sessions, and retained messages. The publisher's
 * PUBACK / PUBREC / PUBCOMP are emitted after the routing, so they are held
 * behind the commit that makes the queued copies durable.
 * Not for: the subscriber's side (deliver.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "log.h"
#include "mqtt_topic.h"
#include "session_internal.h"
#include "share.h"
#include "store.h"
#include "trie.h"

/* ---- Retained ---- */

static int record_retained(struct session_mgr *mgr, struct mqtt_bytes topic,
                           struct mqtt_bytes payload, uint8_t qos)
{
    struct store_batch *b = mgr_batch(mgr);
    if (!b)
        return -ENOMEM;
    struct store_bytes key = {topic.data, topic.len};
    if (payload.len == 0)
        return store_batch_delete_retained(b, key);
    return store_batch_put_retained(b, key, qos, (struct store_bytes){payload.data, payload.len},
                                    (uint64_t)time(NULL));
}

/* Makes m (NULL: none) topic's message in idx, taking m's reference.
 * 0 or -ENOMEM (m released). */
static int replace_retained(struct retained_index *idx, struct mqtt_bytes topic, struct msg *m)
{
    struct msg *old = NULL;
    if (!m) {
        old = retained_take(idx, topic);
    } else if (retained_put(idx, topic, m, &old) != 0) {
        msg_unref(m);
        return -ENOMEM;
    }
    msg_unref(old);
    return 0;
}

int publish_set_retained(struct session_mgr *mgr, struct mqtt_bytes topic,
                         struct mqtt_bytes payload, uint8_t qos, bool durable)
{
    /* Stored ones are not held in memory: a SUBSCRIBE reads them after
     * the commit (retained_stream.c), so a failed commit has nothing to undo. */
    if (durable) {
        int rc = record_retained(mgr, topic, payload, qos);
        if (rc == 0)
            mgr->is_retained_changed = true;
        return rc; /* e.g. a topic longer than the store's key limit: not retained */
    }
    /* An empty retained payload clears the topic [MQTT-3.3.1-10]. */
    struct msg *m = NULL;
    if (payload.len > 0 && !(m = msg_new(topic, payload, qos, true)))
        return -ENOMEM;
    return replace_retained(&mgr->retained_volatile, topic, m);
}

/* ---- Routing ---- */

struct route_ctx {
    struct session_mgr *mgr;
    size_t count;
    int err;
};

/* Collects each matching session once, with the highest granted QoS among
 * its matching filters (one delivery per session; overlapping filters do not
 * duplicate: 3.1.1 allows either, see [MQTT-3.3.5-1]). */
static void collect_match(void *subscriber, uint8_t qos, void *arg)
{
    struct route_ctx *ctx = arg;
    struct session_mgr *mgr = ctx->mgr;
    struct session *s = subscriber;
    if (s->match_gen == mgr->route_gen) {
        if (qos > s->match_qos)
            s->match_qos = qos;
        return;
    }
    if (ctx->count == mgr->matched_cap) {
        size_t cap = mgr->matched_cap ? mgr->matched_cap * 2 : 64;
        struct session **m = realloc(mgr->matched, cap * sizeof(*m));
        if (!m) {
            ctx->err = -ENOMEM;
            return;
        }
        mgr->matched = m;
        mgr->matched_cap = cap;
    }
    s->match_gen = mgr->route_gen;
    s->match_qos = qos;
    mgr->matched[ctx->count++] = s;
}

/* Collects the sessions m goes to into mgr->matched, and each matching
 * shared subscription group's choice (share.c); returns how many sessions,
 * or -ENOMEM. */
static int route_match(struct session_mgr *mgr, const struct msg *m)
{
    struct route_ctx ctx = {.mgr = mgr};
    mgr->route_gen++;
    trie_match(mgr->trie, (struct mqtt_bytes){m->topic, m->topic_len}, collect_match, &ctx);
    if (ctx.err == 0)
        ctx.err = share_route_match(mgr, m);
    return ctx.err != 0 ? ctx.err : (int)ctx.count;
}

static uint8_t matched_qos(const struct session_mgr *mgr, size_t i, const struct msg *m)
{
    uint8_t granted = mgr->matched[i]->match_qos;
    return m->qos < granted ? m->qos : granted;
}

/* Quotas before records: reserves room for what delivering m to the matched
 * sessions and bridges may write (its body once, a queue entry per
 * persistent session at QoS > 0 and per bridge entry), plus extra_records
 * small records and, with retained, a retained copy. 0, or STORE_ERR_FULL /
 * -ENOMEM with nothing recorded. */
static int reserve_route(struct session_mgr *mgr, const struct msg *m, int matched,
                         size_t bridge_entries, size_t extra_records, bool retained)
{
    size_t entries = bridge_entries + share_route_records(mgr, m);
    for (int i = 0; i < matched; i++)
        if (mgr->matched[i]->persistent && matched_qos(mgr, (size_t)i, m) > 0)
            entries++;
    size_t body = (size_t)m->topic_len + m->payload_len;
    size_t bytes = (entries > 0 ? body : 0) + (retained ? body : 0);
    if (bytes == 0 && extra_records == 0)
        return 0;
    struct store_batch *b = mgr_batch(mgr);
    return b ? store_batch_reserve(b, bytes, entries + extra_records) : -ENOMEM;
}

static int route_deliver(struct session_mgr *mgr, struct msg *m, int matched)
{
    int rc = 0;
    for (int i = 0; i < matched; i++) {
        int r = deliver(mgr, mgr->matched[i], m, matched_qos(mgr, (size_t)i, m));
        if (r != 0 && rc == 0)
            rc = r;
    }
    int r = share_route_deliver(mgr, m);
    return rc != 0 ? rc : r;
}

/*
 * The one route of a message: match the subscribers and the bridges,
 * reserve room for everything it writes (extra_records more for the
 * caller's own records, a retained copy if retained), then deliver. A full
 * store or bridge queue refuses it before anything is recorded. Returns 0,
 * STORE_ERR_FULL, -ENOMEM or another negative code.
 */
static int route(struct session_mgr *mgr, struct msg *m, const struct bridge_route *r,
                 size_t extra_records, bool retained)
{
    int matched = route_match(mgr, m);
    if (matched < 0)
        return matched;
    int bridge_entries = bridges_match(mgr, m, r);
    if (bridge_entries < 0)
        return bridge_entries;
    int rc = reserve_route(mgr, m, matched, (size_t)bridge_entries, extra_records, retained);
    if (rc == 0)
        rc = route_deliver(mgr, m, matched);
    if (rc != 0) {
        bridges_unmark(mgr);
        return rc;
    }
    return bridges_deliver(mgr, m, r);
}

int publish_route(struct session_mgr *mgr, struct msg *m, bool retain)
{
    struct bridge_route r = {.retain = retain};
    return route(mgr, m, &r, 0, false);
}

/* ---- Incoming PUBLISH ---- */

/* Records packet id as received-awaiting-PUBREL, durably for a persistent
 * session, so a resent PUBLISH is not delivered twice [MQTT-4.3.3-2]. Until
 * the commit the id is ADDING: a resend in the meantime is answered with a
 * PUBREC held behind that commit, and never routed twice (effects.c). */
static int remember_qos2(struct session_mgr *mgr, struct session *s, uint16_t packet_id)
{
    if (!s->persistent)
        return session_qos2_add(s, packet_id, QOS2_STORED);
    struct store_batch *b = mgr_batch(mgr);
    if (!b)
        return -ENOMEM;
    int rc = store_batch_put_qos2_in(b, session_store_id(s), packet_id, (uint64_t)time(NULL));
    if (rc != 0)
        return rc;
    if (session_qos2_add(s, packet_id, QOS2_ADDING) != 0) {
        store_batch_fail(b, -ENOMEM); /* the put must not commit without memory knowing */
        return -ENOMEM;
    }
    return effect_qos2_added(mgr, s, packet_id);
}

bool acl_allows(const struct session_mgr *mgr, const struct session_client *c,
                struct mqtt_bytes topic, unsigned access)
{
    if (!c)
        return true;
    const struct auth_acl *acl = client_auth(mgr, c).acl;
    if (!acl)
        return true;
    const char *id = c->sess ? (const char *)c->sess->client_id : "";
    return auth_acl_check(acl, id, c->username, (const char *)topic.data, topic.len, access) ==
           AUTH_OK;
}

/* Clients may not publish into the broker's own $SYS tree (as Mosquitto). */
static bool is_sys_topic(struct mqtt_bytes topic)
{
    return topic.len >= 4 && memcmp(topic.data, "$SYS", 4) == 0 &&
           (topic.len == 4 || topic.data[4] == '/');
}

bool topic_is_too_deep(const struct session_mgr *mgr, struct mqtt_bytes topic)
{
    uint32_t max = mgr->config.max_topic_levels;
    return max != 0 && mqtt_topic_levels(topic) > max;
}

int publish_write_gate(const struct session_mgr *mgr, const struct session_client *c,
                       const char *client_id, struct mqtt_bytes topic)
{
    if (topic_is_too_deep(mgr, topic))
        return WRITE_TOO_DEEP;
    if (is_sys_topic(topic))
        return WRITE_DENIED;
    const struct auth_acl *acl = client_auth(mgr, c).acl;
    if (!acl)
        return WRITE_ALLOWED;
    int rc = auth_acl_check(acl, client_id, c->username, (const char *)topic.data, topic.len,
                            AUTH_WRITE);
    return rc == AUTH_OK ? WRITE_ALLOWED : WRITE_DENIED;
}

/* Routes a publish (a client's, or one a bridge brought in: origin) and
 * sets its retained copy, after reserving room for everything it writes
 * (extra_records: the caller's, e.g. its QoS 2 id): a full store refuses the
 * whole publish before any of it is recorded. */
static int route_publish(struct session_mgr *mgr, const struct mqtt_publish *p,
                         const struct session_bridge *origin, size_t extra_records)
{
    /* Live forwards carry RETAIN 0 [MQTT-3.3.1-9]; bridges get the flag as
     * published (Mosquitto's bridges do the same). */
    struct msg *m = msg_new(p->topic, p->payload, p->qos, false);
    if (!m)
        return -ENOMEM;
    bool retained = p->retain && p->payload.len > 0;
    struct bridge_route r = {.origin = origin, .retain = p->retain, .refuse_when_full = true};
    int rc = route(mgr, m, &r, extra_records, retained);
    msg_unref(m);
    if (rc != 0 || !p->retain)
        return rc;
    rc = publish_set_retained(mgr, p->topic, p->payload, p->qos, true);
    if (rc == -ENOMEM)
        return rc;
    if (rc != 0)
        log_warning("retained message on %.*s not stored: %s", (int)p->topic.len,
                    (const char *)p->topic.data, store_strerror(rc));
    return 0;
}

/* A full store refuses a publish: no ack, the connection closes, the client
 * retries later. Logged at most once a minute, with the count. */
static int refuse_store_full(struct session_mgr *mgr, const struct session_client *c)
{
    mgr->refused_store_full++;
    uint64_t now_s = (uint64_t)time(NULL);
    if (now_s >= mgr->store_full_logged_s + 60) {
        mgr->store_full_logged_s = now_s;
        log_warning("client %s: store full (storage_max_size or disk): PUBLISH not acknowledged, "
                    "closing (%llu refused so far)",
                    session_client_name(c), (unsigned long long)mgr->refused_store_full);
    }
    return SESSION_ERR_STORE_FULL;
}

int publish_handle(struct session_mgr *mgr, struct session_client *c, const struct mqtt_publish *p)
{
    struct session *s = c->sess;
    if (p->qos == 2 && session_qos2_find(s, p->packet_id))
        return output_send_ack(mgr, c, MQTT_PUBREC, p->packet_id) == 0 ? SESSION_OK
                                                                       : SESSION_ERR_NOMEM;
    mgr->messages_received++;
    mgr->received_qos[p->qos > 2 ? 2 : p->qos]++;
    mgr->received_bytes_qos[p->qos > 2 ? 2 : p->qos] += p->payload.len;
    if (p->retain && !mgr->config.retain_available) {
        /* As Mosquitto: a retained publish when retain is off ends the connection. */
        log_notice("client %s: retained publish while retain_available is false",
                   session_client_name(c));
        return SESSION_ERR_PROTOCOL;
    }
    int rc = 0;
    switch (publish_write_gate(mgr, c, (const char *)s->client_id, p->topic)) {
    case WRITE_TOO_DEEP:
        log_notice("client %s: closing: PUBLISH topic deeper than max_topic_levels (%u)",
                   session_client_name(c), (unsigned)mgr->config.max_topic_levels);
        return SESSION_ERR_PROTOCOL;
    case WRITE_DENIED:
        /* Dropped, but acknowledged as 3.1.1 requires (it has no negative
         * PUBACK), so the client does not resend it forever. */
        log_debug("client %s: publish to %.*s denied", session_client_name(c), (int)p->topic.len,
                  (const char *)p->topic.data);
        if (p->qos == 2 && s->persistent) /* its id is still remembered */
            rc = mgr_batch(mgr) ? store_batch_reserve(mgr_batch(mgr), 0, 1) : -ENOMEM;
        break;
    default:
        rc = route_publish(mgr, p, NULL, p->qos == 2 && s->persistent ? 1 : 0);
        break;
    }
    if (rc == 0 && p->qos == 2)
        rc = remember_qos2(mgr, s, p->packet_id);
    if (rc == STORE_ERR_FULL)
        return refuse_store_full(mgr, c);
    if (rc == -ENOMEM)
        return SESSION_ERR_NOMEM;
    if (rc != 0)
        return SESSION_ERR_STORE;
    switch (p->qos) {
    case 1:
        rc = output_send_ack(mgr, c, MQTT_PUBACK, p->packet_id);
        break;
    case 2:
        rc = output_send_ack(mgr, c, MQTT_PUBREC, p->packet_id);
        break;
    default:
        break;
    }
    return rc == 0 ? SESSION_OK : SESSION_ERR_NOMEM;
}

int publish_handle_pubrel(struct session_mgr *mgr, struct session_client *c, uint16_t packet_id)
{
    struct session *s = c->sess;
    struct qos2_in *q = session_qos2_find(s, packet_id);
    if (q && !s->persistent) {
        session_qos2_remove(s, packet_id);
    } else if (q && q->state != QOS2_RELEASING) {
        /* Forgotten when the delete commits; kept if it fails (effects.c). */
        struct store_batch *b = mgr_batch(mgr);
        if (!b || store_batch_delete_qos2_in(b, session_store_id(s), packet_id) != 0)
            return SESSION_ERR_NOMEM;
        q->state = QOS2_RELEASING;
        if (effect_qos2_released(mgr, s, packet_id) != 0)
            return SESSION_ERR_NOMEM;
    }
    /* PUBCOMP even for an unknown id: the PUBREL may be a resend after our
     * PUBCOMP was lost [MQTT-4.3.3-2]. */
    return output_send_ack(mgr, c, MQTT_PUBCOMP, packet_id) == 0 ? SESSION_OK : SESSION_ERR_NOMEM;
}

int session_publish_internal(struct session_mgr *mgr, const char *topic, const void *payload,
                             size_t payload_len, bool retain)
{
    struct mqtt_bytes t = {(const uint8_t *)topic, strlen(topic)};
    struct mqtt_bytes body = {payload, payload_len};
    if (retain && publish_set_retained(mgr, t, body, 0, false) != 0)
        return -ENOMEM;
    struct msg *m = msg_new(t, body, 0, false);
    if (!m)
        return -ENOMEM;
    int rc = publish_route(mgr, m, retain);
    msg_unref(m);
    return rc;
}

/* ---- Messages a bridge brings in ---- */

/* A bridge's remote is configured, not a client: no ACL and no $SYS rule.
 * A topic too deep for this broker is dropped and acknowledged, so the
 * remote does not send it again forever. */
int session_bridge_publish(struct session_bridge *b, const struct mqtt_publish *p,
                           session_done_fn done, void *arg)
{
    struct session_mgr *mgr = session_bridge_mgr(b);
    int rc = 0;
    mgr->messages_received++;
    mgr->received_qos[p->qos > 2 ? 2 : p->qos]++;
    mgr->received_bytes_qos[p->qos > 2 ? 2 : p->qos] += p->payload.len;
    struct mqtt_publish copy = *p;
    copy.retain = p->retain && mgr->config.retain_available;
    if (topic_is_too_deep(mgr, p->topic))
        log_notice("bridge %s: dropping a message on a topic deeper than max_topic_levels (%u)",
                   session_bridge_name(b), (unsigned)mgr->config.max_topic_levels);
    else
        rc = route_publish(mgr, &copy, b, p->qos == 2 ? 1 : 0);
    if (rc == 0 && p->qos == 2)
        rc = bridge_remember_qos2(b, p->packet_id);
    if (rc == 0 && done)
        rc = session_after_commit(mgr, done, arg);
    return rc;
}
