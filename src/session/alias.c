/*
 * alias.c - MQTT 5 Topic Aliases of one connection [3.3.2.3.4], both ways.
 *
 * Inbound: the client maps an alias (1..in_max, Sol's Topic Alias Maximum
 * in CONNACK) to a topic by sending both, then sends the alias with an empty
 * topic. Outbound: Sol gives an alias (1..out_max, at most what the client's
 * CONNECT allows and what max_topic_alias allows) to a topic it sends to the
 * client again: the first delivery of a topic only notes its hash in a small
 * ring; a second delivery while the hash is still there assigns an alias and
 * sends topic and alias; later ones send the alias alone. Once every alias is
 * in use the next one is reassigned round robin (re-sending topic and alias
 * re-maps it on the client, as the spec allows). Aliases belong to the
 * connection and die with it [MQTT-3.3.2-7].
 *
 * Cost: O(1) per PUBLISH (one hash lookup, a scan of ALIAS_RECENT hashes);
 * memory is bounded by max_topic_alias topics each way, allocated on first
 * use. Not for: deciding whether a packet fits (output.c does it first).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "session_internal.h"

void aliases_init(struct topic_aliases *a, uint16_t in_max, uint16_t out_max)
{
    memset(a, 0, sizeof(*a));
    a->in_max = in_max;
    a->out_max = out_max;
    hashtable_init(&a->by_topic);
}

void aliases_deinit(struct topic_aliases *a)
{
    if (a->in) {
        for (size_t i = 0; i < a->in_max; i++)
            free((void *)a->in[i].data);
        free(a->in);
    }
    if (a->out) {
        for (size_t i = 0; i < a->out_max; i++)
            free(a->out[i].topic);
        free(a->out);
    }
    free(a->recent);
    hashtable_deinit(&a->by_topic);
    memset(a, 0, sizeof(*a));
}

/* ---- inbound ---- */

static int set_inbound(struct topic_aliases *a, uint16_t alias, struct mqtt_bytes topic)
{
    if (!a->in && !(a->in = calloc(a->in_max, sizeof(*a->in))))
        return -ENOMEM;
    struct mqtt_bytes *slot = &a->in[alias - 1];
    if (slot->len == topic.len && memcmp(slot->data, topic.data, topic.len) == 0)
        return 0;
    uint8_t *copy = malloc(topic.len);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, topic.data, topic.len);
    free((void *)slot->data);
    *slot = (struct mqtt_bytes){copy, topic.len};
    return 0;
}

int aliases_resolve(struct topic_aliases *a, uint16_t alias, struct mqtt_bytes *topic)
{
    /* 0 or above the maximum we sent: 0x94 Topic Alias invalid [MQTT-3.2.2-17]. */
    if (alias == 0 || alias > a->in_max)
        return ALIAS_INVALID;
    if (topic->len > 0)
        return set_inbound(a, alias, *topic);
    if (!a->in || a->in[alias - 1].len == 0)
        return ALIAS_UNKNOWN; /* an empty topic needs an alias the client set (3.3.2.3.4) */
    *topic = a->in[alias - 1];
    return ALIAS_OK;
}

/* ---- outbound ---- */

static struct alias_slot *slot_of_topic(const struct topic_aliases *a, struct mqtt_bytes topic)
{
    struct hashtable_node *n = hashtable_find(&a->by_topic, topic.data, topic.len);
    return n ? hashtable_entry(n, struct alias_slot, link) : NULL;
}

uint16_t aliases_find(const struct topic_aliases *a, struct mqtt_bytes topic)
{
    if (a->out_max == 0 || !a->out || topic.len == 0)
        return 0;
    struct alias_slot *s = slot_of_topic(a, topic);
    return s ? (uint16_t)(s - a->out + 1) : 0;
}

/* True when topic was sent once recently (its hash is in the ring); notes it
 * otherwise. */
static bool is_frequent(struct topic_aliases *a, struct mqtt_bytes topic)
{
    uint64_t h = hashtable_hash(topic.data, topic.len) | 1; /* 0 marks an empty place */
    for (size_t i = 0; i < ALIAS_RECENT; i++) {
        if (a->recent[i] == h) {
            a->recent[i] = 0;
            return true;
        }
    }
    a->recent[a->recent_pos] = h;
    a->recent_pos = (uint8_t)((a->recent_pos + 1) % ALIAS_RECENT);
    return false;
}

static int alloc_outbound(struct topic_aliases *a)
{
    if (a->out)
        return 0;
    a->out = calloc(a->out_max, sizeof(*a->out));
    a->recent = calloc(ALIAS_RECENT, sizeof(*a->recent));
    if (!a->out || !a->recent) {
        free(a->out);
        free(a->recent);
        a->out = NULL;
        a->recent = NULL;
        return -ENOMEM;
    }
    return 0;
}

uint16_t aliases_assign(struct topic_aliases *a, struct mqtt_bytes topic)
{
    if (a->out_max == 0 || topic.len == 0 || topic.len > UINT16_MAX || alloc_outbound(a) != 0)
        return 0;
    if (!is_frequent(a, topic))
        return 0;
    uint8_t *copy = malloc(topic.len);
    if (!copy)
        return 0;
    memcpy(copy, topic.data, topic.len);
    struct alias_slot *s = &a->out[a->next_victim];
    a->next_victim = (uint16_t)((a->next_victim + 1) % a->out_max);
    if (s->topic) {
        hashtable_remove(&a->by_topic, &s->link);
        free(s->topic);
    }
    s->topic = copy;
    s->topic_len = (uint16_t)topic.len;
    if (hashtable_insert(&a->by_topic, &s->link, s->topic, s->topic_len) != 0) {
        free(s->topic);
        s->topic = NULL;
        return 0;
    }
    return (uint16_t)(s - a->out + 1);
}
