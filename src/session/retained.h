/*
 * retained.h - the index of retained messages by topic level (retained.c):
 * exact lookups and wildcard matches in O(levels + matches).
 * Not for: the store's copy (storage/), or the subscription trie (trie.h).
 */
#ifndef SOL_RETAINED_H
#define SOL_RETAINED_H

#include <stddef.h>

#include "hashtable.h"
#include "mqtt.h"

struct msg;
struct retained_node;

struct retained_index {
    struct retained_node *root;
    size_t count; /* retained messages held */
};

/* An empty index. 0 or -ENOMEM. */
int retained_index_init(struct retained_index *idx);
/* Frees every node, calling release (if not NULL) on each message held. */
void retained_index_deinit(struct retained_index *idx, void (*release)(struct msg *m));

/* topic's retained message (borrowed), or NULL. */
struct msg *retained_get(const struct retained_index *idx, struct mqtt_bytes topic);
/* Makes m (the index takes the caller's reference) topic's retained message;
 * *old is the one it replaces (now the caller's reference), or NULL.
 * 0, or -ENOMEM with the index unchanged and m still the caller's. */
int retained_put(struct retained_index *idx, struct mqtt_bytes topic, struct msg *m,
                 struct msg **old);
/* Removes topic's retained message and returns it (the caller's reference),
 * or NULL when there is none. */
struct msg *retained_take(struct retained_index *idx, struct mqtt_bytes topic);

typedef void (*retained_match_fn)(struct msg *m, void *arg);
/*
 * Calls fn once for every retained message whose topic filter matches
 * ('+', '#', "a/#" matching "a" [MQTT-4.7.1-2]; topics starting with '$' are
 * not matched by a filter starting with a wildcard [MQTT-4.7.2-1]). filter
 * must be valid. fn must not change the index. Order unspecified. Returns 0,
 * or -ENOMEM (the walk stopped; some matches may have been reported).
 */
int retained_match(const struct retained_index *idx, struct mqtt_bytes filter, retained_match_fn fn,
                   void *arg);

static inline size_t retained_count(const struct retained_index *idx)
{
    return idx->count;
}

#endif /* SOL_RETAINED_H */
