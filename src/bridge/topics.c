/*
 * topics.c - a bridge's topic lines, as Mosquitto reads them
 * (src/bridge_topic.c, lib/send_publish.c): each line's local filter is
 * local_prefix + pattern and its remote filter remote_prefix + pattern
 * (the prefix alone for the pattern ""). Outgoing, the first out/both line
 * with a prefix whose local filter matches the topic remaps it: the local
 * prefix is stripped (when the topic starts with it) and the remote prefix
 * added. Incoming, the same with in/both lines, remote and local swapped.
 * A topic no prefixed line matches passes unchanged.
 * Not for: deciding what leaves (the session manager matches the local
 * filters of out/both lines).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bridge_internal.h"
#include "mqtt_topic.h"

#define TOPIC_MAX 65535u

static char *join(const char *prefix, const char *pattern)
{
    size_t a = prefix ? strlen(prefix) : 0, b = pattern ? strlen(pattern) : 0;
    char *s = malloc(a + b + 1);
    if (!s)
        return NULL;
    if (a)
        memcpy(s, prefix, a);
    if (b)
        memcpy(s + a, pattern, b);
    s[a + b] = '\0';
    return s;
}

static struct mqtt_bytes view(const char *s)
{
    return (struct mqtt_bytes){(const uint8_t *)s, s ? strlen(s) : 0};
}

int topics_build(struct bridge *b)
{
    const struct config_bridge *c = b->cfg;
    b->topics = calloc(c->topic_count ? c->topic_count : 1, sizeof(*b->topics));
    if (!b->topics)
        return -ENOMEM;
    for (size_t i = 0; i < c->topic_count; i++) {
        const struct config_bridge_topic *ct = &c->topics[i];
        struct bridge_topic *t = &b->topics[i];
        t->direction = ct->direction;
        t->qos = ct->qos;
        t->local_prefix = view(ct->local_prefix);
        t->remote_prefix = view(ct->remote_prefix);
        t->local_filter = join(ct->local_prefix, ct->pattern);
        t->remote_filter = join(ct->remote_prefix, ct->pattern);
        b->topic_count++;
        if (!t->local_filter || !t->remote_filter)
            return -ENOMEM;
    }
    return 0;
}

void topics_free(struct bridge *b)
{
    for (size_t i = 0; i < b->topic_count; i++) {
        free(b->topics[i].local_filter);
        free(b->topics[i].remote_filter);
    }
    free(b->topics);
    b->topics = NULL;
    b->topic_count = 0;
    free(b->topic_buf);
    b->topic_buf = NULL;
    b->topic_cap = 0;
}

static bool starts_with(struct mqtt_bytes s, struct mqtt_bytes prefix)
{
    return prefix.len <= s.len && memcmp(s.data, prefix.data, prefix.len) == 0;
}

/* strip (when topic starts with it), then add, into b->topic_buf. */
static struct mqtt_bytes rewrite(struct bridge *b, struct mqtt_bytes topic, struct mqtt_bytes strip,
                                 struct mqtt_bytes add)
{
    struct mqtt_bytes none = {NULL, 0};
    if (strip.len && starts_with(topic, strip)) {
        topic.data += strip.len;
        topic.len -= strip.len;
    }
    size_t len = add.len + topic.len;
    if (len == 0 || len > TOPIC_MAX)
        return none;
    if (len > b->topic_cap) {
        uint8_t *buf = realloc(b->topic_buf, len);
        if (!buf)
            return none;
        b->topic_buf = buf;
        b->topic_cap = len;
    }
    if (add.len)
        memcpy(b->topic_buf, add.data, add.len);
    if (topic.len)
        memcpy(b->topic_buf + add.len, topic.data, topic.len);
    return (struct mqtt_bytes){b->topic_buf, len};
}

struct mqtt_bytes topics_to_remote(struct bridge *b, struct mqtt_bytes local)
{
    for (size_t i = 0; i < b->topic_count; i++) {
        const struct bridge_topic *t = &b->topics[i];
        if (!(t->direction & CONFIG_BRIDGE_OUT) || (!t->local_prefix.len && !t->remote_prefix.len))
            continue;
        if (mqtt_topic_matches(view(t->local_filter), local))
            return rewrite(b, local, t->local_prefix, t->remote_prefix);
    }
    return local;
}

struct mqtt_bytes topics_to_local(struct bridge *b, struct mqtt_bytes remote)
{
    for (size_t i = 0; i < b->topic_count; i++) {
        const struct bridge_topic *t = &b->topics[i];
        if (!(t->direction & CONFIG_BRIDGE_IN) || (!t->local_prefix.len && !t->remote_prefix.len))
            continue;
        if (mqtt_topic_matches(view(t->remote_filter), remote))
            return rewrite(b, remote, t->remote_prefix, t->local_prefix);
    }
    return remote;
}
