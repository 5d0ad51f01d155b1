/*
 * subscribe.c - SUBSCRIBE / UNSUBSCRIBE: filters into the trie and the
 * store, SUBACK / UNSUBACK behind the commit, and retained messages to the
 * new subscriber (streamed from the store, retained_stream.c). MQTT 5: the
 * subscription options (No Local, Retain As Published, Retain Handling) and
 * Subscription Identifier kept with the subscription, and SUBACK / UNSUBACK
 * reason codes. Not for: matching (trie.c) or delivery (deliver.c).
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
    s->sub_refusal_logged_s = (uint32_t)now_s;
    s->sub_refusals = 0;
}

/* Quotas before records: a new filter over max_subscriptions_per_client or
 * max_subscriptions is refused (SUBACK 0x80, MQTT 5 0x97; logged); a filter the session
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
    if (total && session_subscriptions_total(mgr) >= total) {
        log_limit_refusal(s, "max_subscriptions", total, filter);
        return true;
    }
    return false;
}

/* A shared subscription "$share/GROUP/FILTER" [MQTT-4.8.2]: a valid GROUP
 * and FILTER, and a name that fits the store's key for the group's queue.
 * *inner is FILTER, what the subscriber will read (for the depth limit and
 * the ACL); for a plain filter, the filter itself. */
static bool shared_filter_ok(struct session_mgr *mgr, struct session *s, struct mqtt_bytes filter,
                             struct mqtt_bytes *inner)
{
    struct mqtt_bytes group;
    *inner = filter;
    if (!share_is_shared(filter))
        return true;
    if (!share_parse(filter, &group, inner)) {
        log_notice("client %s: invalid shared subscription %.*s refused (GROUP must be non-empty "
                   "without '+', '#', '/'; FILTER non-empty and valid)",
                   (char *)s->client_id, (int)(filter.len > 200 ? 200 : filter.len),
                   (const char *)filter.data);
        return false;
    }
    if (filter.len > store_max_client_id_len(mgr->store)) {
        log_notice("client %s: shared subscription too long for a group queue key refused",
                   (char *)s->client_id);
        return false;
    }
    return true;
}

/* Why a filter is refused, in MQTT 5 reason codes [3.9.3] (a 3.1.1 client
 * gets 0x80 for any, suback_code()), or MQTT_RC_SUCCESS. */
static uint8_t refuse_filter(struct session_mgr *mgr, struct session *s, struct mqtt_bytes filter)
{
    struct mqtt_bytes inner;
    if (mqtt_topic_filter_check(filter) != MQTT_OK) {
        log_notice("client %s: invalid subscription filter refused", (char *)s->client_id);
        return MQTT_RC_TOPIC_FILTER_INVALID;
    }
    if (share_is_shared(filter) && !mgr->config.shared_subscription_available) {
        log_notice("client %s: shared subscription %.*s refused: shared_subscriptions is false",
                   (char *)s->client_id, (int)(filter.len > 200 ? 200 : filter.len),
                   (const char *)filter.data);
        return MQTT_RC_SHARED_SUBSCRIPTIONS_NOT_SUPPORTED;
    }
    if (!shared_filter_ok(mgr, s, filter, &inner))
        return MQTT_RC_TOPIC_FILTER_INVALID;
    if (topic_is_too_deep(mgr, inner)) {
        log_notice("client %s: subscription filter deeper than max_topic_levels (%u) refused",
                   (char *)s->client_id, (unsigned)mgr->config.max_topic_levels);
        return MQTT_RC_TOPIC_FILTER_INVALID;
    }
    /* A shared subscription is checked as its FILTER: the topics the member reads. */
    if (!acl_allows(mgr, s->client, inner, AUTH_SUBSCRIBE)) {
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

/* Retain Handling [3.8.3.1]: 0 sends the retained messages, 1 only for a
 * new subscription, 2 never; never on a shared subscription [4.8.2]. */
static bool wants_retained(struct mqtt_bytes filter, uint8_t options, bool existed)
{
    uint8_t handling = SUB_RETAIN_HANDLING(options);
    return !share_is_shared(filter) && (handling == 0 || (handling == 1 && !existed));
}

static uint8_t options_byte(const struct mqtt_topic_entry *e,
                            const struct mqtt_subscription_options *o)
{
    return (uint8_t)(e->qos | (o->no_local ? SUB_NO_LOCAL : 0) |
                     (o->retain_as_published ? SUB_RETAIN_AS_PUBLISHED : 0) |
                     (o->retain_handling << 4));
}

/* It is a Protocol Error to set No Local on a shared subscription
 * [MQTT-3.8.3-4]: the whole SUBSCRIBE is refused (DISCONNECT 0x82). With
 * shared_subscriptions false the filter gets 0x9E instead, as any "$share/"
 * filter: Sol does not treat it as a shared subscription then. */
static bool has_shared_no_local(const struct mqtt_packet *probe)
{
    struct mqtt_topic_iter it;
    struct mqtt_topic_entry e;
    struct mqtt_subscription_options o;
    mqtt_topic_iter_init(&it, probe);
    while (mqtt_topic_iter_next_options(&it, &e, &o))
        if (o.no_local && share_is_shared(e.filter))
            return true;
    return false;
}

struct granted {
    uint8_t code;
    uint8_t options;
    bool existed;
};

int subscribe_handle(struct session_mgr *mgr, struct session_client *c,
                     const struct mqtt_subscribe *p)
{
    struct session *s = c->sess;
    struct mqtt_packet probe = {.type = MQTT_SUBSCRIBE, .u.subscribe = *p};
    probe.protocol_level = client_is_v5(c) ? MQTT_PROTOCOL_V5 : 0;
    if (client_is_v5(c) && mgr->config.shared_subscription_available &&
        has_shared_no_local(&probe)) {
        log_notice("client %s: No Local on a shared subscription", (char *)s->client_id);
        return SESSION_ERR_PROTOCOL;
    }
    uint8_t *codes = malloc(p->count ? p->count : 1);
    struct granted *g = calloc(p->count ? p->count : 1, sizeof(*g));
    if (!codes || !g) {
        free(codes);
        free(g);
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
    mqtt_topic_iter_init(&it, &probe);
    while (n < p->count && mqtt_topic_iter_next_options(&it, &e, &o)) {
        g[n].options = options_byte(&e, &o);
        g[n].code =
            grant(mgr, s, e.filter, (struct sub_state){g[n].options, sub_id}, &g[n].existed);
        codes[n] = suback_code(c, g[n].code);
        n++;
    }

    struct mqtt_packet ack = {.type = MQTT_SUBACK};
    ack.u.suback.packet_id = p->packet_id;
    ack.u.suback.return_codes = (struct mqtt_bytes){codes, n};
    int rc = output_send_packet(mgr, c, &ack);

    /* Retained messages follow the SUBACK, read from the store after the
     * turn's commit at the subscriber's pace (retained_stream.c). */
    mqtt_topic_iter_init(&it, &probe);
    for (size_t i = 0; rc == 0 && i < n && mqtt_topic_iter_next(&it, &e); i++) {
        if (g[i].code >= 0x80 || !wants_retained(e.filter, g[i].options, g[i].existed))
            continue;
        if (retained_stream_start(mgr, s, e.filter, g[i].code, sub_id) != 0)
            rc = -ENOMEM;
    }
    free(g);
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
    retained_stream_cancel(s, filter);
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
