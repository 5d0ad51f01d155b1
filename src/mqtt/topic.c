/*
 * topic.c - topic names, topic filters, levels and matching [MQTT-4.7].
 *
 * Works on byte views; nothing is allocated and nothing is NUL-terminated.
 * Not for: the subscription index (src/session/trie.c) or UTF-8 (utf8.c).
 */
#include "mqtt_topic.h"

#include <string.h>

/* Topic names and filters are length-prefixed with 16 bits [MQTT-4.7.3-3]. */
#define TOPIC_MAX_LEN 65535u

static bool level_is(struct mqtt_bytes level, char c)
{
    return level.len == 1 && level.data[0] == (uint8_t)c;
}

static bool level_has(struct mqtt_bytes level, char c)
{
    return level.len > 0 && memchr(level.data, c, level.len) != NULL;
}

static bool levels_equal(struct mqtt_bytes a, struct mqtt_bytes b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

void mqtt_level_iter_init(struct mqtt_level_iter *it, struct mqtt_bytes topic)
{
    it->rest = topic;
    it->done = false;
}

bool mqtt_level_iter_next(struct mqtt_level_iter *it, struct mqtt_bytes *level)
{
    if (it->done)
        return false;
    const uint8_t *slash = NULL;
    if (it->rest.len > 0)
        slash = memchr(it->rest.data, '/', it->rest.len);
    if (slash == NULL) {
        /* The last level runs to the end; it may be empty ("a/" ends in ""). */
        *level = it->rest;
        it->done = true;
        return true;
    }
    size_t n = (size_t)(slash - it->rest.data);
    level->data = it->rest.data;
    level->len = n;
    it->rest.data = slash + 1;
    it->rest.len -= n + 1;
    return true;
}

int mqtt_topic_name_check(struct mqtt_bytes name)
{
    if (name.len == 0 || name.len > TOPIC_MAX_LEN)
        return MQTT_ERR_TOPIC_NAME; /* [MQTT-4.7.3-1] [MQTT-4.7.3-3] */
    if (memchr(name.data, '+', name.len) != NULL || memchr(name.data, '#', name.len) != NULL)
        return MQTT_ERR_TOPIC_NAME; /* [MQTT-3.3.2-2] [MQTT-4.7.3-2] */
    return mqtt_utf8_check(name.data, name.len);
}

/* Wildcard placement of one level; is_last says whether more levels follow. */
static bool filter_level_ok(struct mqtt_bytes level, bool is_last)
{
    if (level_has(level, '#') && !(level_is(level, '#') && is_last))
        return false; /* [MQTT-4.7.1-2] */
    if (level_has(level, '+') && !level_is(level, '+'))
        return false; /* [MQTT-4.7.1-3] */
    return true;
}

int mqtt_topic_filter_check(struct mqtt_bytes filter)
{
    if (filter.len == 0 || filter.len > TOPIC_MAX_LEN)
        return MQTT_ERR_TOPIC_FILTER; /* [MQTT-4.7.3-1] [MQTT-4.7.3-3] */

    struct mqtt_level_iter it;
    struct mqtt_bytes level;
    mqtt_level_iter_init(&it, filter);
    while (mqtt_level_iter_next(&it, &level)) {
        if (!filter_level_ok(level, it.done))
            return MQTT_ERR_TOPIC_FILTER;
    }
    return mqtt_utf8_check(filter.data, filter.len);
}

/*
 * A filter starting with a wildcard does not match a name starting with '$'
 * [MQTT-4.7.2-1], so "#" never delivers "$SYS/..." but "$SYS/#" does.
 */
static bool dollar_excluded(struct mqtt_bytes filter, struct mqtt_bytes name)
{
    if (name.len == 0 || name.data[0] != '$' || filter.len == 0)
        return false;
    return filter.data[0] == '+' || filter.data[0] == '#';
}

bool mqtt_topic_matches(struct mqtt_bytes filter, struct mqtt_bytes name)
{
    if (dollar_excluded(filter, name))
        return false;

    struct mqtt_level_iter fit, nit;
    struct mqtt_bytes flevel, nlevel;
    mqtt_level_iter_init(&fit, filter);
    mqtt_level_iter_init(&nit, name);
    while (mqtt_level_iter_next(&fit, &flevel)) {
        /* '#' matches its parent and any number of levels below [MQTT-4.7.1-2]. */
        if (level_is(flevel, '#'))
            return true;
        if (!mqtt_level_iter_next(&nit, &nlevel))
            return false;
        /* '+' matches exactly one level, which may be empty [MQTT-4.7.1-3]. */
        if (!level_is(flevel, '+') && !levels_equal(flevel, nlevel))
            return false;
    }
    return !mqtt_level_iter_next(&nit, &nlevel);
}

size_t mqtt_topic_levels(struct mqtt_bytes topic)
{
    size_t levels = 1;
    const uint8_t *p = topic.data;
    const uint8_t *end = topic.data + topic.len;
    while (p < end) {
        const uint8_t *slash = memchr(p, '/', (size_t)(end - p));
        if (slash == NULL)
            break;
        levels++;
        p = slash + 1;
    }
    return levels;
}

struct mqtt_bytes mqtt_bytes_from_cstr(const char *s)
{
    struct mqtt_bytes b = {(const uint8_t *)s, s != NULL ? strlen(s) : 0};
    return b;
}
