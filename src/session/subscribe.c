/*
 * subscribe.c - SUBSCRIBE / UNSUBSCRIBE: filters into the trie and the
 * store, SUBACK / UNSUBACK behind the commit, and retained messages to the
 * new subscriber. Not for: matching (trie.c) or delivery (deliver.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "log.h"
#include "mqtt_topic.h"
#include "session_internal.h"
#include "store.h"
#include "trie.h"

/* Logs a subscription refused by a limit: the first one, then at most once
 * a minute per session with the count since, so a 40,000-filter SUBSCRIBE
 * makes one line, not 40,000. */
static void log_limit_refusal(struct session *s, const char *limit, uint32_t max,
                              struct mqtt_bytes filter)
{
    uint64_t now_s = (uint64_t)time(NULL);
    s->sub_refusals++;
    if (s->sub_refusal_logged_s != 0 && now_s < s->sub_refusal_logged_s + LIMIT_LOG_INTERVAL_S)
        return;
    log_notice("client %s: subscription to %.*s refused: %s (%u) reached (%llu refused since the "
               "last notice)",
               (char *)s->client_id, (int)(filter.len > 200 ? 200 : filter.len),
               (const char *)filter.data, limit, (unsigned)max,
               (unsigned long long)s->sub_refusals);
    s->sub_refusal_logged_s = now_s;
    s->sub_refusals = 0;
}

/* Quotas before records: a new filter over max_subscriptions_per_client or
 * max_subscriptions is refused (SUBACK 0x80, logged); a filter the session
 * already has is an update and always fits. O(1). */
static bool is_over_subscription_limit(struct session_mgr *mgr, struct session *s,
                                       struct mqtt_bytes filter)
{
    uint32_t per_client = mgr->config.max_subscriptions_per_client;
    uint32_t total = mgr->config.max_subscriptions;
    if (session_has_subscription(s, filter))
        return false;
    if (per_client && session_subscription_count(s) >= per_client) {
        log_limit_refusal(s, "max_subscriptions_per_client", per_client, filter);
        return true;
    }
    if (total && trie_count(mgr->trie) >= total) {
        log_limit_refusal(s, "max_subscriptions", total, filter);
        return true;
    }
    return false;
}

/* Why a filter was refused, in MQTT 5 reason codes [3.9.3]; a 3.1.1 client
 * gets 0x80 for any (suback_code()). */
static uint8_t refuse_filter(struct session_mgr *mgr, struct session *s, struct mqtt_bytes filter)
{
    if (mqtt_topic_filter_check(filter) != MQTT_OK) {
        log_notice("client %s: invalid subscription filter refused", (char *)s->client_id);
        return MQTT_RC_TOPIC_FILTER_INVALID;
    }
    if (topic_is_too_deep(mgr, filter)) {
        log_notice("client %s: subscription filter deeper than max_topic_levels (%u) refused",
                   (char *)s->client_id, (unsigned)mgr->config.max_topic_levels);
        return MQTT_RC_TOPIC_FILTER_INVALID;
    }
    if (!acl_allows(mgr, s->client, filter, AUTH_SUBSCRIBE)) {
        log_notice("client %s: subscription to %.*s denied by the ACL", (char *)s->client_id,
                   (int)filter.len, (const char *)filter.data);
        return MQTT_RC_NOT_AUTHORIZED;
    }
    if (is_over_subscription_limit(mgr, s, filter))
        return MQTT_RC_QUOTA_EXCEEDED;
    return MQTT_RC_SUCCESS;
}

/* Records a persistent session's subscription. 0, or a reason code. */
static uint8_t record_subscription(struct session_mgr *mgr, struct session *s,
                                   struct mqtt_bytes filter, struct sub_state sub)
{
    struct store_batch *b = mgr_batch(mgr);
    if (b && store_batch_reserve(b, s->id_len + filter.len, 1) == STORE_ERR_FULL) {
        log_warning("client %s: store full: subscription refused", (char *)s->client_id);
        return MQTT_RC_QUOTA_EXCEEDED;
    }
    if (!b || store_batch_put_subscription(b, session_store_id(s),
                                           (struct store_bytes){filter.data, filter.len},
                                           sub.options, sub.sub_id) != 0)
        return MQTT_RC_UNSPECIFIED_ERROR;
    return MQTT_RC_SUCCESS;
}

/* Grants one filter with its options and Subscription Identifier; returns
 * the granted QoS or a reason code at or above 0x80. *existed: s had that
 * filter before (Retain Handling 1). */
static uint8_t grant(struct session_mgr *mgr, struct session *s, struct mqtt_bytes filter,
                     struct sub_state sub, bool *existed)
{
    uint8_t refused = refuse_filter(mgr, s, filter);
    if (refused != MQTT_RC_SUCCESS)
        return refused;
    struct sub_state old;
    *existed = session_subscription_get(s, filter, &old);
    if (s->persistent && (refused = record_subscription(mgr, s, filter, sub)) != 0)
        return refused;
    if (session_add_subscription(mgr, s, filter, sub) != 0) {
        if (s->persistent) /* the put must not commit without memory knowing */
            store_batch_fail(mgr_batch(mgr), -ENOMEM);
        return MQTT_RC_UNSPECIFIED_ERROR;
    }
    /* Undone if the commit fails (effects.c); its SUBACK waits for it. */
    if (s->persistent && effect_subscription_changed(mgr, s, filter, *existed ? &old : NULL) != 0)
        return MQTT_RC_UNSPECIFIED_ERROR;
    uint8_t qos = sub.options & SUB_QOS_MASK;
    log_subscribe("%s %u %.*s", (char *)s->client_id, (unsigned)qos, (int)filter.len,
                  (const char *)filter.data);
    return qos;
}

/* The SUBACK code a client gets for reason: 3.1.1 has one failure code. */
static uint8_t suback_code(const struct session_client *c, uint8_t reason)
{
    return reason >= 0x80 && !client_is_v5(c) ? MQTT_SUBACK_FAILURE : reason;
}

struct retained_ctx {
    struct session_mgr *mgr;
    struct session *s;
    struct mqtt_bytes filter;
    struct delivery d;    /* QoS granted (min with each message's), the subscription's id */
    struct msg **expired; /* retained messages found past their Message Expiry */
    size_t expired_count, expired_cap;
};

/* Notes an expired retained message (a reference) to remove after the walk,
 * which must not change the index. No memory: it stays until the next time. */
static void note_expired(struct retained_ctx *ctx, struct msg *m)
{
    if (ctx->expired_count == ctx->expired_cap) {
        size_t cap = ctx->expired_cap ? ctx->expired_cap * 2 : 8;
        struct msg **grown = realloc(ctx->expired, cap * sizeof(*grown));
        if (!grown)
            return;
        ctx->expired = grown;
        ctx->expired_cap = cap;
    }
    ctx->expired[ctx->expired_count++] = msg_ref(m);
}

static void send_retained(struct msg *m, void *arg)
{
    struct retained_ctx *ctx = arg;
    if (m->expiry_at_s && session_now_s(ctx->mgr) > m->expiry_at_s) {
        note_expired(ctx, m); /* its Message Expiry passed [3.3.2.3.3] */
        return;
    }
    struct delivery d = ctx->d;
    if (m->qos < d.qos)
        d.qos = m->qos;
    /* Retained messages go out with RETAIN 1 [MQTT-3.3.1-8]. */
    if (deliver(ctx->mgr, ctx->s, m, &d) != 0 && ctx->s->client)
        ctx->mgr->sink->close(ctx->s->client->conn, "out of memory delivering retained");
}

/* Removes the expired retained messages a walk found (unless the topic got
 * a new one since), from memory and the store. */
static void remove_expired(struct session_mgr *mgr, struct retained_ctx *ctx)
{
    for (size_t i = 0; i < ctx->expired_count; i++) {
        struct msg *m = ctx->expired[i];
        struct mqtt_bytes topic = {m->topic, m->topic_len};
        struct msg *clear = msg_new(topic, (struct mqtt_bytes){NULL, 0}, 0, true);
        if (clear && retained_get(&mgr->retained, topic) == m) {
            log_debug("retained message on %s expired: removed", (char *)m->topic);
            if (publish_set_retained(mgr, clear, true) != 0)
                log_warning("retained message on %s expired but could not be removed",
                            (char *)m->topic);
        }
        msg_unref(clear);
        msg_unref(m);
    }
    free(ctx->expired);
}

/* Sends the retained messages filter matches to s: O(levels + matches)
 * through the retained index, never a walk over every retained message (a
 * fleet resubscribing to its own state topics stays cheap). */
static void send_retained_for(struct session_mgr *mgr, struct session *s, struct mqtt_bytes filter,
                              uint8_t qos, uint32_t sub_id)
{
    struct retained_ctx ctx = {mgr, s, filter, {.qos = qos}, NULL, 0, 0};
    if (sub_id) {
        ctx.d.sub_ids = &sub_id;
        ctx.d.sub_id_count = 1;
    }
    if (retained_match(&mgr->retained, filter, send_retained, &ctx) != 0 && s->client)
        mgr->sink->close(s->client->conn, "out of memory delivering retained");
    remove_expired(mgr, &ctx);
}

/* Retain Handling [3.8.3.1]: 0 sends the retained messages, 1 only for a
 * new subscription, 2 never. */
static bool wants_retained(uint8_t options, bool existed)
{
    uint8_t handling = SUB_RETAIN_HANDLING(options);
    return handling == 0 || (handling == 1 && !existed);
}

int subscribe_handle(struct session_mgr *mgr, struct session_client *c,
                     const struct mqtt_subscribe *p)
{
    struct session *s = c->sess;
    uint8_t *codes = malloc(p->count ? p->count : 1);
    bool *existed = calloc(p->count ? p->count : 1, sizeof(*existed));
    if (!codes || !existed) {
        free(codes);
        free(existed);
        return SESSION_ERR_NOMEM;
    }
    /* One Subscription Identifier for every filter of the SUBSCRIBE [3.8.2.1.2]. */
    uint32_t sub_id = 0;
    if (mqtt_properties_has(&p->props, MQTT_PROP_SUBSCRIPTION_IDENTIFIER))
        sub_id = p->props.subscription_identifier;
    struct mqtt_topic_iter it;
    struct mqtt_topic_entry e;
    struct mqtt_subscription_options o;
    size_t n = 0;
    struct mqtt_packet probe = {.type = MQTT_SUBSCRIBE, .u.subscribe = *p};
    probe.protocol_level = client_is_v5(c) ? MQTT_PROTOCOL_V5 : 0;
    mqtt_topic_iter_init(&it, &probe);
    uint8_t *options = malloc(p->count ? p->count : 1);
    if (!options) {
        free(codes);
        free(existed);
        return SESSION_ERR_NOMEM;
    }
    while (n < p->count && mqtt_topic_iter_next_options(&it, &e, &o)) {
        options[n] = (uint8_t)(e.qos | (o.no_local ? SUB_NO_LOCAL : 0) |
                               (o.retain_as_published ? SUB_RETAIN_AS_PUBLISHED : 0) |
                               (o.retain_handling << 4));
        codes[n] = suback_code(
            c, grant(mgr, s, e.filter, (struct sub_state){options[n], sub_id}, &existed[n]));
        n++;
    }

    struct mqtt_packet ack = {.type = MQTT_SUBACK};
    ack.u.suback.packet_id = p->packet_id;
    ack.u.suback.return_codes = (struct mqtt_bytes){codes, n};
    int rc = output_send_packet(mgr, c, &ack);

    /* Retained messages after the SUBACK [MQTT-3.8.4-4 ordering]. */
    mqtt_topic_iter_init(&it, &probe);
    for (size_t i = 0; rc == 0 && i < n && mqtt_topic_iter_next(&it, &e); i++) {
        if (codes[i] >= 0x80 || !wants_retained(options[i], existed[i]))
            continue;
        send_retained_for(mgr, s, e.filter, codes[i], sub_id);
    }
    free(options);
    free(existed);
    free(codes);
    return rc == 0 ? SESSION_OK : SESSION_ERR_NOMEM;
}

/* Removes one filter; returns its MQTT 5 UNSUBACK reason (0x00, 0x11 no
 * subscription existed, 0x8F invalid filter), or -ENOMEM. */
static int remove_filter(struct session_mgr *mgr, struct session *s, struct mqtt_bytes filter)
{
    if (mqtt_topic_filter_check(filter) != MQTT_OK)
        return MQTT_RC_TOPIC_FILTER_INVALID;
    struct sub_state old;
    if (!session_subscription_get(s, filter, &old))
        return MQTT_RC_NO_SUBSCRIPTION_EXISTED; /* still acknowledged [MQTT-3.10.4-5] */
    if (s->persistent) {
        struct store_batch *b = mgr_batch(mgr);
        if (!b || store_batch_delete_subscription(
                      b, session_store_id(s), (struct store_bytes){filter.data, filter.len}) != 0)
            return -ENOMEM;
    }
    session_remove_subscription(mgr, s, filter);
    log_unsubscribe("%s %.*s", (char *)s->client_id, (int)filter.len, (const char *)filter.data);
    /* Put back if the commit fails (effects.c); the UNSUBACK waits for it. */
    if (s->persistent && effect_subscription_changed(mgr, s, filter, &old) != 0)
        return -ENOMEM;
    return MQTT_RC_SUCCESS;
}

int unsubscribe_handle(struct session_mgr *mgr, struct session_client *c,
                       const struct mqtt_subscribe *p)
{
    uint8_t *codes = malloc(p->count ? p->count : 1);
    if (!codes)
        return SESSION_ERR_NOMEM;
    struct mqtt_packet probe = {.type = MQTT_UNSUBSCRIBE, .u.subscribe = *p};
    probe.protocol_level = client_is_v5(c) ? MQTT_PROTOCOL_V5 : 0;
    struct mqtt_topic_iter it;
    struct mqtt_topic_entry e;
    size_t n = 0;
    mqtt_topic_iter_init(&it, &probe);
    while (n < p->count && mqtt_topic_iter_next(&it, &e)) {
        int reason = remove_filter(mgr, c->sess, e.filter);
        if (reason < 0) {
            free(codes);
            return SESSION_ERR_NOMEM;
        }
        codes[n++] = (uint8_t)reason;
    }
    struct mqtt_packet ack = {.type = MQTT_UNSUBACK};
    ack.u.ack.packet_id = p->packet_id;
    ack.u.ack.reason_codes = (struct mqtt_bytes){codes, n}; /* MQTT 5 only */
    int rc = output_send_packet(mgr, c, &ack);
    free(codes);
    return rc == 0 ? SESSION_OK : SESSION_ERR_NOMEM;
}
