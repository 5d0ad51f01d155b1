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

/* Grants one filter; returns the SUBACK code for it. */
static uint8_t grant(struct session_mgr *mgr, struct session *s, const struct mqtt_topic_entry *e)
{
    struct mqtt_bytes inner;
    if (mqtt_topic_filter_check(e->filter) != MQTT_OK) {
        log_notice("client %s: invalid subscription filter refused", (char *)s->client_id);
        return MQTT_SUBACK_FAILURE;
    }
    if (!shared_filter_ok(mgr, s, e->filter, &inner))
        return MQTT_SUBACK_FAILURE;
    if (topic_is_too_deep(mgr, inner)) {
        log_notice("client %s: subscription filter deeper than max_topic_levels (%u) refused",
                   (char *)s->client_id, (unsigned)mgr->config.max_topic_levels);
        return MQTT_SUBACK_FAILURE;
    }
    /* A shared subscription is checked as its FILTER: the topics the member reads. */
    if (!acl_allows(mgr, s->client, inner, AUTH_SUBSCRIBE)) {
        log_notice("client %s: subscription to %.*s denied by the ACL", (char *)s->client_id,
                   (int)e->filter.len, (const char *)e->filter.data);
        return MQTT_SUBACK_FAILURE;
    }
    if (is_over_subscription_limit(mgr, s, e->filter))
        return MQTT_SUBACK_FAILURE;
    int old_qos = session_subscription_qos(s, e->filter);
    if (s->persistent) {
        struct store_batch *b = mgr_batch(mgr);
        if (b && store_batch_reserve(b, s->id_len + e->filter.len, 1) == STORE_ERR_FULL) {
            log_warning("client %s: store full: subscription refused", (char *)s->client_id);
            return MQTT_SUBACK_FAILURE;
        }
        if (!b || store_batch_put_subscription(b, session_store_id(s),
                                               (struct store_bytes){e->filter.data, e->filter.len},
                                               e->qos) != 0)
            return MQTT_SUBACK_FAILURE;
    }
    if (session_add_subscription(mgr, s, e->filter, e->qos) != 0) {
        if (s->persistent) /* the put must not commit without memory knowing */
            store_batch_fail(mgr_batch(mgr), -ENOMEM);
        return MQTT_SUBACK_FAILURE;
    }
    /* Undone if the commit fails (effects.c); its SUBACK waits for it. */
    if (s->persistent && effect_subscription_changed(mgr, s, e->filter, old_qos) != 0)
        return MQTT_SUBACK_FAILURE;
    log_subscribe("%s %u %.*s", (char *)s->client_id, (unsigned)e->qos, (int)e->filter.len,
                  (const char *)e->filter.data);
    return e->qos;
}

int subscribe_handle(struct session_mgr *mgr, struct session_client *c,
                     const struct mqtt_subscribe *p)
{
    struct session *s = c->sess;
    uint8_t *codes = malloc(p->count ? p->count : 1);
    if (!codes)
        return SESSION_ERR_NOMEM;
    struct mqtt_topic_iter it;
    struct mqtt_topic_entry e;
    size_t n = 0;
    struct mqtt_packet probe = {.type = MQTT_SUBSCRIBE, .u.subscribe = *p};
    mqtt_topic_iter_init(&it, &probe);
    while (n < p->count && mqtt_topic_iter_next(&it, &e))
        codes[n++] = grant(mgr, s, &e);

    struct mqtt_packet ack = {.type = MQTT_SUBACK};
    ack.u.suback.packet_id = p->packet_id;
    ack.u.suback.return_codes = (struct mqtt_bytes){codes, n};
    int rc = output_send_packet(mgr, c, &ack);

    /* Retained messages follow the SUBACK, read from the store after the
     * turn's commit at the subscriber's pace (retained_stream.c). */
    mqtt_topic_iter_init(&it, &probe);
    for (size_t i = 0; rc == 0 && i < n && mqtt_topic_iter_next(&it, &e); i++) {
        /* Not on a shared subscription [MQTT-4.8.2-6 / v5 4.8.2]. */
        if (codes[i] == MQTT_SUBACK_FAILURE || share_is_shared(e.filter))
            continue;
        if (retained_stream_start(mgr, s, e.filter, codes[i]) != 0)
            rc = -ENOMEM;
    }
    free(codes);
    return rc == 0 ? SESSION_OK : SESSION_ERR_NOMEM;
}

int unsubscribe_handle(struct session_mgr *mgr, struct session_client *c,
                       const struct mqtt_subscribe *p)
{
    struct session *s = c->sess;
    struct mqtt_packet probe = {.type = MQTT_UNSUBSCRIBE, .u.subscribe = *p};
    struct mqtt_topic_iter it;
    struct mqtt_topic_entry e;
    mqtt_topic_iter_init(&it, &probe);
    while (mqtt_topic_iter_next(&it, &e)) {
        int old_qos = session_subscription_qos(s, e.filter);
        if (old_qos < 0)
            continue; /* not subscribed: still acknowledged [MQTT-3.10.4-5] */
        if (s->persistent) {
            struct store_batch *b = mgr_batch(mgr);
            if (!b ||
                store_batch_delete_subscription(
                    b, session_store_id(s), (struct store_bytes){e.filter.data, e.filter.len}) != 0)
                return SESSION_ERR_NOMEM;
        }
        session_remove_subscription(mgr, s, e.filter);
        retained_stream_cancel(s, e.filter);
        log_unsubscribe("%s %.*s", (char *)s->client_id, (int)e.filter.len,
                        (const char *)e.filter.data);
        /* Put back if the commit fails (effects.c); the UNSUBACK waits for it. */
        if (s->persistent && effect_subscription_changed(mgr, s, e.filter, old_qos) != 0)
            return SESSION_ERR_NOMEM;
    }
    return output_send_ack(mgr, c, MQTT_UNSUBACK, p->packet_id) == 0 ? SESSION_OK
                                                                     : SESSION_ERR_NOMEM;
}
