/*
 * mqtt_topic.h - MQTT 3.1.1 string rules: UTF-8 well-formedness, topic names,
 * topic filters, level splitting and filter matching.
 *
 * Pure functions over byte views; nothing is allocated or copied.
 * Not for: the broker's subscription index (src/session/trie.c uses these).
 */
#ifndef SOL_MQTT_TOPIC_H
#define SOL_MQTT_TOPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqtt.h"

/*
 * Checks s[0..len) is well-formed UTF-8 as MQTT requires [MQTT-1.5.3]:
 * no U+0000, no surrogates (U+D800..U+DFFF), no overlong forms, nothing
 * above U+10FFFF, no truncated sequences. Returns MQTT_OK or MQTT_ERR_UTF8.
 */
int mqtt_utf8_check(const uint8_t *s, size_t len);

/*
 * Checks a topic name used in PUBLISH or a will: non-empty [MQTT-4.7.3-1],
 * at most 65535 bytes [MQTT-4.7.3-3], no '+' or '#' [MQTT-3.3.2-2], valid UTF-8.
 * Returns MQTT_OK, MQTT_ERR_TOPIC_NAME or MQTT_ERR_UTF8.
 */
int mqtt_topic_name_check(struct mqtt_bytes name);

/*
 * Checks a topic filter: non-empty [MQTT-4.7.3-1], at most 65535 bytes
 * [MQTT-4.7.3-3], '#' only as a whole last level [MQTT-4.7.1-2], '+' only as
 * a whole level [MQTT-4.7.1-3], valid UTF-8.
 * Returns MQTT_OK, MQTT_ERR_TOPIC_FILTER or MQTT_ERR_UTF8.
 */
int mqtt_topic_filter_check(struct mqtt_bytes filter);

/*
 * Splits a topic into levels, one per call, without copying. After
 * mqtt_level_iter_init(), each mqtt_level_iter_next() returns true and sets
 * *level to the next level (possibly empty, e.g. the levels of "/a/" are "",
 * "a", ""); it returns false when no levels are left. An empty topic has one
 * empty level. After a call, it->done is true iff *level was the last level.
 */
struct mqtt_level_iter {
    struct mqtt_bytes rest;
    bool done;
};
void mqtt_level_iter_init(struct mqtt_level_iter *it, struct mqtt_bytes topic);
bool mqtt_level_iter_next(struct mqtt_level_iter *it, struct mqtt_bytes *level);

/*
 * True if the (valid) filter matches the (valid) topic name. A name beginning
 * with '$' is not matched by a filter whose first level is '+' or '#'
 * [MQTT-4.7.2-1]. "a/#" matches "a" [MQTT-4.7.1-2].
 */
bool mqtt_topic_matches(struct mqtt_bytes filter, struct mqtt_bytes name);

/* The number of levels of a topic or filter: one more than its '/' count
 * ("a/b" has 2, "/" has 2, "" has 1). */
size_t mqtt_topic_levels(struct mqtt_bytes topic);

/* Convenience: a view of a NUL-terminated C string. */
struct mqtt_bytes mqtt_bytes_from_cstr(const char *s);

#endif /* SOL_MQTT_TOPIC_H */
