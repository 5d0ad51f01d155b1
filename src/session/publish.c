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

/* Records src (an empty payload: the removal) as its topic's retained message. */
static int record_retained(struct session_mgr *mgr, const struct msg *src)
{
    struct store_batch *b = mgr_batch(mgr);
    if (!b)
        return -ENOMEM;
    struct store_bytes key = {src->topic, src->topic_len};
    if (src->payload_len == 0)
        return store_batch_delete_retained(b, key);
    struct store_retained r = {
        .topic = key,
        .payload = {src->payload, src->payload_len},
        .props = {src->props, src->props_len},
        .qos = src->qos,
        .stored_at_s = session_now_s(mgr),
        .expiry_at_s = src->expiry_at_s,
    };
    return store_batch_put_retained(b, &r);
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

int publish_set_retained(struct session_mgr *mgr, const struct msg *src, bool durable)
{
    /* Stored ones are not held in memory: a SUBSCRIBE reads them after
     * the commit (retained_stream.c), so a failed commit has nothing to undo. */
    if (durable) {
        int rc = record_retained(mgr, src);
        if (rc == 0)
            mgr->is_retained_changed = true;
        return rc; /* e.g. a topic longer than the store's key limit: not retained */
    }
    /* An empty retained payload clears the topic [MQTT-3.3.1-10]; a
     * retained message keeps its properties and its expiry deadline. */
    struct mqtt_bytes topic = {src->topic, src->topic_len};
    struct msg *m = NULL;
    if (src->payload_len > 0 &&
        !(m = msg_new_v5(topic, (struct mqtt_bytes){src->payload, src->payload_len},
                         (struct mqtt_bytes){src->props, src->props_len}, src->expiry_at_s,
                         src->qos, true)))
        return -ENOMEM;
    return replace_retained(&mgr->retained_volatile, topic, m);
}

/* ---- Routing ---- */

struct route_ctx {
    struct session_mgr *mgr;
    const struct session *publisher; /* No Local: its own filters with the option skip */
    size_t count;
    int err;
};

static struct route_match *new_match(struct route_ctx *ctx, struct session *s)
{
    struct session_mgr *mgr = ctx->mgr;
    if (ctx->count == mgr->matched_cap) {
        size_t cap = mgr->matched_cap ? mgr->matched_cap * 2 : 64;
        struct route_match *m = realloc(mgr->matched, cap * sizeof(*m));
        if (!m)
            return NULL;
        mgr->matched = m;
        mgr->matched_cap = cap;
    }
    s->match_gen = mgr->route_gen;
    s->match_slot = (uint32_t)ctx->count;
    struct route_match *rm = &mgr->matched[ctx->count++];
    *rm = (struct route_match){.s = s};
    return rm;
}

/* Adds a Subscription Identifier to rm's list (no memory: left out). */
static int add_match_id(struct session_mgr *mgr, struct route_match *rm, uint32_t id)
{
    if (rm->id_count == UINT16_MAX)
        return 0;
    if (mgr->match_id_count == mgr->match_id_cap) {
        size_t cap = mgr->match_id_cap ? mgr->match_id_cap * 2 : 64;
        struct match_id *ids = realloc(mgr->match_ids, cap * sizeof(*ids));
        if (!ids)
            return -ENOMEM;
        mgr->match_ids = ids;
        mgr->match_id_cap = cap;
    }
    mgr->match_ids[mgr->match_id_count] = (struct match_id){id, rm->ids_head};
    rm->ids_head = (uint32_t)++mgr->match_id_count;
    rm->id_count++;
    return 0;
}

/* Collects each matching session once (one delivery per session
 * [MQTT-3.3.4-2]; 3.1.1 allows either, see [MQTT-3.3.5-1]): with the
 * highest granted QoS among its matching filters, Retain As Published if
 * any of them has it, and the Subscription Identifiers of all of them
 * [MQTT-3.3.4-3]. A No Local filter of the publisher's own session does not
 * match [MQTT-3.8.3-3]. */
static void collect_match(void *subscriber, uint32_t grant, void *arg)
{
    struct route_ctx *ctx = arg;
    struct session_mgr *mgr = ctx->mgr;
    struct session *s = subscriber;
    if ((grant & SUB_NO_LOCAL) && s == ctx->publisher)
        return;
    struct route_match *rm =
        s->match_gen == mgr->route_gen ? &mgr->matched[s->match_slot] : new_match(ctx, s);
    if (!rm) {
        ctx->err = -ENOMEM;
        return;
    }
    uint8_t qos = grant & SUB_QOS_MASK;
    if (qos > rm->qos)
        rm->qos = qos;
    if (grant & SUB_RETAIN_AS_PUBLISHED)
        rm->is_retain_as_published = true;
    if (grant_sub_id(grant) != 0 && add_match_id(mgr, rm, grant_sub_id(grant)) != 0)
        ctx->err = -ENOMEM;
}

/* Collects the sessions m goes to into mgr->matched, and each matching
 * shared subscription group's choice (share.c); returns how many sessions,
 * or -ENOMEM. */
static int route_match(struct session_mgr *mgr, const struct msg *m,
                       const struct session *publisher)
{
    struct route_ctx ctx = {.mgr = mgr, .publisher = publisher};
    mgr->route_gen++;
    mgr->match_id_count = 0;
    trie_match(mgr->trie, (struct mqtt_bytes){m->topic, m->topic_len}, collect_match, &ctx);
    if (ctx.err == 0)
        ctx.err = share_route_match(mgr, m);
    return ctx.err != 0 ? ctx.err : (int)ctx.count;
}

static uint8_t matched_qos(const struct session_mgr *mgr, size_t i, const struct msg *m)
{
    uint8_t granted = mgr->matched[i].qos;
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
        if (mgr->matched[i].s->persistent && matched_qos(mgr, (size_t)i, m) > 0)
            entries++;
    size_t body = (size_t)m->topic_len + m->props_len + m->payload_len;
    size_t bytes = (entries > 0 ? body : 0) + (retained ? body : 0);
    if (bytes == 0 && extra_records == 0)
        return 0;
    struct store_batch *b = mgr_batch(mgr);
    return b ? store_batch_reserve(b, bytes, entries + extra_records) : -ENOMEM;
}

/* The delivery to the i-th matched session: its Subscription Identifiers
 * gathered from their list into mgr->delivery_ids. 0 or -ENOMEM. */
static int delivery_of(struct session_mgr *mgr, size_t i, const struct msg *m,
                       bool published_retain, struct delivery *d)
{
    const struct route_match *rm = &mgr->matched[i];
    *d = (struct delivery){.qos = matched_qos(mgr, i, m),
                           .retain = published_retain && rm->is_retain_as_published};
    if (rm->id_count == 0)
        return 0;
    if (rm->id_count > mgr->delivery_ids_cap) {
        uint32_t *ids = realloc(mgr->delivery_ids, rm->id_count * sizeof(*ids));
        if (!ids)
            return -ENOMEM;
        mgr->delivery_ids = ids;
        mgr->delivery_ids_cap = rm->id_count;
    }
    uint16_t n = 0;
    for (uint32_t at = rm->ids_head; at != 0 && n < rm->id_count; at = mgr->match_ids[at - 1].next)
        mgr->delivery_ids[n++] = mgr->match_ids[at - 1].id;
    d->sub_id_count = n;
    d->sub_ids = mgr->delivery_ids;
    return 0;
}

static int route_deliver(struct session_mgr *mgr, struct msg *m, int matched, bool published_retain)
{
    int rc = 0;
    for (int i = 0; i < matched; i++) {
        struct delivery d;
        int r = delivery_of(mgr, (size_t)i, m, published_retain, &d);
        if (r == 0)
            r = deliver(mgr, mgr->matched[i].s, m, &d);
        if (r != 0 && rc == 0)
            rc = r;
    }
    int r = share_route_deliver(mgr, m, published_retain);
    return rc != 0 ? rc : r;
}

/* What routing a PUBLISH came to: a client's MQTT 5 PUBACK / PUBREC reason
 * code says it. */
struct route_result {
    int matched;          /* sessions, groups and bridges whose subscriptions matched */
    uint64_t queue_drops; /* deliveries dropped by max_queued_messages / _bytes */
    bool is_retained;     /* its retained copy (or the removal) was recorded */
};

/*
 * The one route of a message: match the subscribers (publisher: whose it
 * is, for No Local; NULL: the broker's or a bridge's) and the bridges,
 * reserve room for everything it writes (extra_records more for the
 * caller's own records, a retained copy if retained), then deliver; r->retain
 * is the RETAIN flag it was published with (Retain As Published, bridge
 * copies). A full store or bridge queue refuses it before anything is
 * recorded. out, if not NULL, says what it came to. Returns 0,
 * STORE_ERR_FULL, -ENOMEM or another negative code.
 */
static int route(struct session_mgr *mgr, struct msg *m, const struct bridge_route *r,
                 const struct session *publisher, size_t extra_records, bool retained,
                 struct route_result *out)
{
    int matched = route_match(mgr, m, publisher);
    if (matched < 0)
        return matched;
    int bridge_entries = bridges_match(mgr, m, r);
    if (bridge_entries < 0)
        return bridge_entries;
    uint64_t drops_before = mgr->dropped_queue_full;
    if (out) /* groups and bridges count as one each */
        out->matched = matched + (int)share_route_targets(mgr) + (int)bridges_marked(mgr);
    int rc = reserve_route(mgr, m, matched, (size_t)bridge_entries, extra_records, retained);
    if (rc == 0)
        rc = route_deliver(mgr, m, matched, r->retain);
    if (out)
        out->queue_drops = mgr->dropped_queue_full - drops_before;
    if (rc != 0) {
        bridges_unmark(mgr);
        return rc;
    }
    return bridges_deliver(mgr, m, r);
}

int publish_route(struct session_mgr *mgr, struct msg *m, bool published_retain,
                  const struct session *publisher)
{
    struct bridge_route r = {.retain = published_retain};
    return route(mgr, m, &r, publisher, 0, false, NULL);
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

/* A new incoming QoS 2 id counts against the client's Receive Maximum
 * until its PUBREL (inbound_unacked); ids from an earlier connection of the
 * session do not [4.9]. */
static void count_qos2_in(struct session_client *c, uint16_t packet_id)
{
    struct qos2_in *q = session_qos2_find(c->sess, packet_id);
    if (!q || !client_is_v5(c))
        return;
    q->conn_gen = c->sess->conn_gen;
    c->v5->inbound_unacked++;
}

static void uncount_qos2_in(struct session_client *c, const struct qos2_in *q)
{
    if (client_is_v5(c) && q->conn_gen == c->sess->conn_gen && c->v5->inbound_unacked > 0)
        c->v5->inbound_unacked--;
}

/*
 * MQTT 5 rules for an incoming PUBLISH, before anything is done with it:
 * no Subscription Identifier from a client [MQTT-3.3.4-6]; a Topic Alias
 * within Sol's maximum, mapped to a topic, or naming one mapped earlier on
 * this connection (p->topic is replaced); and no more unacknowledged QoS 1/2
 * PUBLISH than Sol's Receive Maximum [MQTT-3.3.4-8] (a resent QoS 2 id
 * already counted is not a new one). Returns SESSION_OK or the error that
 * closes the connection with its DISCONNECT reason.
 */
static int check_publish_v5(struct session_mgr *mgr, struct session_client *c,
                            struct mqtt_publish *p)
{
    const struct mqtt_properties *pr = &p->props;
    if (mqtt_properties_has(pr, MQTT_PROP_SUBSCRIPTION_IDENTIFIER)) {
        log_notice("client %s: PUBLISH with a Subscription Identifier", session_client_name(c));
        return SESSION_ERR_PROTOCOL;
    }
    if (mqtt_properties_has(pr, MQTT_PROP_TOPIC_ALIAS)) {
        int rc = aliases_resolve(&c->v5->aliases, pr->topic_alias, &p->topic);
        if (rc == -ENOMEM)
            return SESSION_ERR_NOMEM;
        if (rc != ALIAS_OK) {
            log_notice("client %s: PUBLISH with %s topic alias %u (max_topic_alias %u)",
                       session_client_name(c), rc == ALIAS_INVALID ? "an invalid" : "an unknown",
                       (unsigned)pr->topic_alias, (unsigned)mgr->config.max_topic_alias);
            return rc == ALIAS_INVALID ? SESSION_ERR_TOPIC_ALIAS : SESSION_ERR_PROTOCOL;
        }
    }
    if (p->topic.len == 0)
        return SESSION_ERR_PROTOCOL; /* no topic and no alias (3.3.2.1) */
    bool is_resend = p->qos == 2 && session_qos2_find(c->sess, p->packet_id);
    if (p->qos > 0 && !is_resend && c->v5->inbound_unacked >= mgr->config.receive_maximum) {
        log_notice("client %s: more than receive_maximum (%u) unacknowledged QoS 1/2 PUBLISH",
                   session_client_name(c), (unsigned)mgr->config.receive_maximum);
        return SESSION_ERR_RECEIVE_MAXIMUM;
    }
    return SESSION_OK;
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

/* The message a client's PUBLISH becomes: with MQTT 5, the properties
 * forwarded unchanged (all but the Topic Alias, which is per connection, and
 * the Subscription Identifiers and Message Expiry Interval, which are per
 * delivery, 3.3.2.3) and the expiry as a deadline. NULL: no memory. */
static struct msg *message_of(struct session_mgr *mgr, const struct session_client *c,
                              const struct mqtt_publish *p, bool retain)
{
    if (!client_is_v5(c))
        return msg_new(p->topic, p->payload, p->qos, retain);
    const uint64_t per_delivery = MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS) |
                                  MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_IDENTIFIER) |
                                  MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY_INTERVAL);
    uint8_t small[256];
    size_t cap = p->props.raw.len;
    uint8_t *buf = cap <= sizeof(small) ? small : malloc(cap);
    if (!buf)
        return NULL;
    size_t len = 0;
    if (mqtt_properties_copy(p->props.raw, per_delivery, buf, cap, &len) != MQTT_OK)
        len = 0; /* cannot happen: the block was decoded */
    uint64_t expiry_at_s = 0;
    if (mqtt_properties_has(&p->props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL))
        expiry_at_s = session_now_s(mgr) + p->props.message_expiry_interval_s;
    struct msg *m = msg_new_v5(p->topic, p->payload, (struct mqtt_bytes){buf, len}, expiry_at_s,
                               p->qos, retain);
    if (buf != small)
        free(buf);
    return m;
}

/* Sets the retained copy of a routed publish p (m: its message), logging a
 * topic the store cannot key. 0 or -ENOMEM; *is_retained: it was recorded. */
static int set_retained_copy(struct session_mgr *mgr, const struct msg *m,
                             const struct mqtt_publish *p, bool *is_retained)
{
    int rc = publish_set_retained(mgr, m, true);
    *is_retained = rc == 0;
    if (rc != 0 && rc != -ENOMEM)
        log_warning("retained message on %.*s not stored: %s", (int)p->topic.len,
                    (const char *)p->topic.data, store_strerror(rc));
    return rc == -ENOMEM ? rc : 0;
}

/* Routes a client's PUBLISH and sets its retained copy, after reserving
 * room for everything it writes (the QoS 2 id included): a full store or
 * bridge queue refuses the whole publish before any of it is recorded. */
static int route_publish(struct session_mgr *mgr, const struct session_client *c,
                         const struct mqtt_publish *p, struct route_result *out)
{
    /* Live forwards carry RETAIN 0 [MQTT-3.3.1-9]; bridges get the flag as
     * published (Mosquitto's bridges do the same). */
    struct msg *m = message_of(mgr, c, p, false);
    if (!m)
        return -ENOMEM;
    size_t qos2_records = p->qos == 2 && c->sess->persistent ? 1 : 0;
    bool retained = p->retain && p->payload.len > 0;
    struct bridge_route r = {.retain = p->retain, .refuse_when_full = true};
    int rc = route(mgr, m, &r, c->sess, qos2_records, retained, out);
    if (rc == 0 && p->retain)
        rc = set_retained_copy(mgr, m, p, &out->is_retained);
    msg_unref(m);
    return rc;
}

/* Routes a publish a bridge brought in (origin: not routed back to it) and
 * sets its retained copy, as route_publish() does (extra_records: its QoS 2
 * id). The bridge speaks MQTT 3.1.1: no properties. */
static int route_bridged(struct session_mgr *mgr, const struct mqtt_publish *p,
                         const struct session_bridge *origin, size_t extra_records)
{
    struct msg *m = msg_new(p->topic, p->payload, p->qos, false);
    if (!m)
        return -ENOMEM;
    bool retained = p->retain && p->payload.len > 0;
    struct bridge_route r = {.origin = origin, .retain = p->retain, .refuse_when_full = true};
    int rc = route(mgr, m, &r, NULL, extra_records, retained, NULL);
    bool is_retained;
    if (rc == 0 && p->retain)
        rc = set_retained_copy(mgr, m, p, &is_retained);
    msg_unref(m);
    return rc;
}

/* The MQTT 5 reason a routed PUBLISH is acknowledged with: 0x10 when no
 * subscription matched; 0x97 when every matching delivery was dropped by a
 * queue limit and nothing else was recorded (so the client may retry). */
static uint8_t route_reason(const struct route_result *r)
{
    if (r->matched == 0)
        return MQTT_RC_NO_MATCHING_SUBSCRIBERS;
    if (r->queue_drops >= (uint64_t)r->matched && !r->is_retained)
        return MQTT_RC_QUOTA_EXCEEDED;
    return MQTT_RC_SUCCESS;
}

/* A full store refuses a publish before anything of it was recorded:
 * 3.1.1 has no negative ack, so the connection closes without one and the
 * client retries later; MQTT 5 gets PUBACK / PUBREC 0x97 (publish_handle).
 * Logged at most once a minute, with the count. */
static int refuse_store_full(struct session_mgr *mgr, const struct session_client *c)
{
    mgr->refused_store_full++;
    uint64_t now_s = (uint64_t)time(NULL);
    if (now_s >= mgr->store_full_logged_s + 60) {
        mgr->store_full_logged_s = now_s;
        log_warning("client %s: store full (storage_max_size or disk): PUBLISH not acknowledged, "
                    "%s (%llu refused so far)",
                    session_client_name(c), client_is_v5(c) ? "quota exceeded" : "closing",
                    (unsigned long long)mgr->refused_store_full);
    }
    return SESSION_ERR_STORE_FULL;
}

/* The PUBACK (QoS 1) or PUBREC (QoS 2) of p, with reason (MQTT 5) and why. */
static int ack_publish(struct session_mgr *mgr, struct session_client *c,
                       const struct mqtt_publish *p, uint8_t reason, const char *why)
{
    if (p->qos == 0)
        return SESSION_OK;
    uint8_t type = p->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC;
    int rc = output_send_ack_reason(mgr, c, type, p->packet_id, reason, why);
    return rc == 0 ? SESSION_OK : SESSION_ERR_NOMEM;
}

/* Remembers an accepted QoS 2 id (a PUBREC below 0x80 means the client
 * sends PUBREL, 4.3.3; one at or above ends the exchange). */
static int remember_accepted_qos2(struct session_mgr *mgr, struct session_client *c,
                                  const struct mqtt_publish *p, uint8_t reason)
{
    if (p->qos != 2 || reason >= 0x80)
        return 0;
    int rc = remember_qos2(mgr, c->sess, p->packet_id);
    if (rc == 0)
        count_qos2_in(c, p->packet_id);
    return rc;
}

/* A PUBLISH the WRITE gate denied: 3.1.1 has no negative ack, so it is
 * acknowledged (and dropped) or the client would resend it forever; MQTT 5
 * says 0x87 Not authorized. */
static int publish_denied(struct session_mgr *mgr, struct session_client *c,
                          const struct mqtt_publish *p)
{
    log_debug("client %s: publish to %.*s denied", session_client_name(c), (int)p->topic.len,
              (const char *)p->topic.data);
    if (client_is_v5(c))
        return ack_publish(mgr, c, p, MQTT_RC_NOT_AUTHORIZED, "not authorized");
    int rc = 0;
    if (p->qos == 2 && c->sess->persistent) /* its id is still remembered */
        rc = mgr_batch(mgr) ? store_batch_reserve(mgr_batch(mgr), 0, 1) : -ENOMEM;
    if (rc == 0)
        rc = remember_accepted_qos2(mgr, c, p, MQTT_RC_SUCCESS);
    if (rc == STORE_ERR_FULL)
        return refuse_store_full(mgr, c);
    if (rc != 0)
        return rc == -ENOMEM ? SESSION_ERR_NOMEM : SESSION_ERR_STORE;
    return ack_publish(mgr, c, p, MQTT_RC_SUCCESS, NULL);
}

/* MQTT 5: a payload that says it is UTF-8 (Payload Format Indicator 1) and
 * is not: PUBACK / PUBREC 0x99, or for QoS 0 (no ack) DISCONNECT 0x99. Sol
 * checks, as 3.3.2.3.2 allows. */
static bool is_payload_format_invalid(const struct session_client *c, const struct mqtt_publish *p)
{
    return client_is_v5(c) && p->props.payload_format_indicator == 1 &&
           mqtt_utf8_check(p->payload.data, p->payload.len) != MQTT_OK;
}

/* Routes an allowed PUBLISH and acknowledges it. */
static int publish_allowed(struct session_mgr *mgr, struct session_client *c,
                           const struct mqtt_publish *p)
{
    struct route_result routed = {0};
    int rc = route_publish(mgr, c, p, &routed);
    uint8_t reason = client_is_v5(c) ? route_reason(&routed) : MQTT_RC_SUCCESS;
    if (rc == STORE_ERR_FULL && client_is_v5(c) && p->qos > 0) {
        refuse_store_full(mgr, c); /* nothing of it was recorded */
        return ack_publish(mgr, c, p, MQTT_RC_QUOTA_EXCEEDED, "store full");
    }
    if (rc == 0)
        rc = remember_accepted_qos2(mgr, c, p, reason);
    if (rc == STORE_ERR_FULL)
        return refuse_store_full(mgr, c);
    if (rc != 0)
        return rc == -ENOMEM ? SESSION_ERR_NOMEM : SESSION_ERR_STORE;
    const char *why = reason == MQTT_RC_QUOTA_EXCEEDED ? "queue full" : NULL;
    return ack_publish(mgr, c, p, reason, why);
}

int publish_handle(struct session_mgr *mgr, struct session_client *c, const struct mqtt_publish *in)
{
    struct session *s = c->sess;
    struct mqtt_publish local = *in;
    const struct mqtt_publish *p = &local;
    if (client_is_v5(c)) {
        int v5 = check_publish_v5(mgr, c, &local);
        if (v5 != SESSION_OK)
            return v5;
    }
    if (p->qos == 2 && session_qos2_find(s, p->packet_id))
        return output_send_ack(mgr, c, MQTT_PUBREC, p->packet_id) == 0 ? SESSION_OK
                                                                       : SESSION_ERR_NOMEM;
    mgr->messages_received++;
    mgr->received_qos[p->qos > 2 ? 2 : p->qos]++;
    mgr->received_bytes_qos[p->qos > 2 ? 2 : p->qos] += p->payload.len;
    if (p->retain && !mgr->config.retain_available) {
        /* As Mosquitto: a retained publish when retain is off ends the
         * connection (MQTT 5: DISCONNECT 0x9A, 3.3.1.3). */
        log_notice("client %s: retained publish while retain_available is false",
                   session_client_name(c));
        return client_is_v5(c) ? SESSION_ERR_RETAIN_NOT_SUPPORTED : SESSION_ERR_PROTOCOL;
    }
    switch (publish_write_gate(mgr, c, (const char *)s->client_id, p->topic)) {
    case WRITE_TOO_DEEP:
        log_notice("client %s: closing: PUBLISH topic deeper than max_topic_levels (%u)",
                   session_client_name(c), (unsigned)mgr->config.max_topic_levels);
        return SESSION_ERR_PROTOCOL;
    case WRITE_DENIED:
        return publish_denied(mgr, c, p);
    default:
        break;
    }
    if (is_payload_format_invalid(c, p)) {
        log_debug("client %s: PUBLISH payload is not the UTF-8 it says", session_client_name(c));
        if (p->qos == 0)
            return SESSION_ERR_PAYLOAD_FORMAT;
        return ack_publish(mgr, c, p, MQTT_RC_PAYLOAD_FORMAT_INVALID, "payload is not UTF-8");
    }
    return publish_allowed(mgr, c, p);
}

int publish_handle_pubrel(struct session_mgr *mgr, struct session_client *c, uint16_t packet_id)
{
    struct session *s = c->sess;
    struct qos2_in *q = session_qos2_find(s, packet_id);
    if (q && q->state != QOS2_RELEASING)
        uncount_qos2_in(c, q);
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
    struct msg *m = msg_new(t, body, 0, false);
    if (!m)
        return -ENOMEM;
    int rc = retain ? publish_set_retained(mgr, m, false) : 0;
    if (rc == 0)
        rc = publish_route(mgr, m, retain, NULL);
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
        rc = route_bridged(mgr, &copy, b, p->qos == 2 ? 1 : 0);
    if (rc == 0 && p->qos == 2)
        rc = bridge_remember_qos2(b, p->packet_id);
    if (rc == 0 && done)
        rc = session_after_commit(mgr, done, arg);
    return rc;
}
