/*
 * trie.h - the broker's subscription index: topic filters split into levels,
 * one node per level, each node holding the (subscriber, grant) pairs whose
 * filter ends there (a grant is a 32-bit value the caller chooses: the
 * session manager packs the granted QoS and the MQTT 5 options into it). Subscribe, unsubscribe and
 * match cost is proportional to the topic's depth (times the level length), not to the number of
 * subscriptions; the one exception is stated at trie_subscribe().
 *
 * Not for: validating filters (callers run mqtt_topic_filter_check() first),
 * retained messages (matched elsewhere), deduplicating overlapping
 * subscriptions (the caller does it), persistence (the trie is rebuilt from
 * the store at start). Not thread-safe; the broker has one thread.
 */
#ifndef SOL_TRIE_H
#define SOL_TRIE_H

#include <stddef.h>
#include <stdint.h>

#include "mqtt.h"

struct trie;

/* Returns a new empty trie, or NULL when out of memory. Release with trie_free(). */
struct trie *trie_new(void);

/* Frees the trie and all its nodes; subscribers are the caller's and are not
 * touched. trie_free(NULL) does nothing. Iterative: any depth is fine. */
void trie_free(struct trie *t);

/*
 * Adds (filter, subscriber) with grant, or updates the grant when that pair
 * is already there. filter must be valid (mqtt_topic_filter_check); subscriber
 * is an opaque pointer the trie borrows and hands back to trie_match().
 * Returns 1 added, 0 updated, -ENOMEM (trie unchanged).
 * Cost: O(levels of filter); the subscribers of one filter are a hash set.
 */
int trie_subscribe(struct trie *t, struct mqtt_bytes filter, void *subscriber, uint32_t grant);

/*
 * Removes (filter, subscriber) and frees the nodes it leaves empty.
 * Returns 0, or -ENOENT when the pair is not there. Never fails for lack of
 * memory (a table shrink that cannot allocate is skipped).
 */
int trie_unsubscribe(struct trie *t, struct mqtt_bytes filter, void *subscriber);

typedef void (*trie_match_fn)(void *subscriber, uint32_t grant, void *arg);

/*
 * Calls fn(subscriber, grant, arg) once per (filter, subscriber) pair whose
 * filter matches the topic name: a subscriber with two overlapping filters is
 * called twice and the caller dedups. Implements '+', '#' ("a/#" matches "a")
 * [MQTT-4.7.1-2], [MQTT-4.7.1-3], and names starting with '$' are not matched
 * by filters whose first level is '+' or '#' [MQTT-4.7.2-1].
 * topic must be a valid name (no wildcards). Order of calls is unspecified.
 * fn must not modify the trie. Allocates nothing and does not recurse: the
 * walk backtracks through parent pointers, so topics of 32767 levels are fine.
 */
void trie_match(const struct trie *t, struct mqtt_bytes topic, trie_match_fn fn, void *arg);

/* Number of (filter, subscriber) pairs in the trie. */
size_t trie_count(const struct trie *t);

#endif /* SOL_TRIE_H */
