/*
 * hashtable.h - the broker's one hash table: chained, intrusive, keyed by byte
 * strings with SipHash-1-3 under a random key drawn once per process, so
 * clients cannot pick keys that collide (redis dict.c does the same).
 *
 * Intrusive: the caller embeds a struct hashtable_node in its own object and
 * the node borrows the key, which usually lives in that same object (a
 * session's client id, a trie node's level, a subscription's filter, the
 * bytes of a pointer or a packet id). The table allocates only its bucket
 * arrays, never per entry.
 *
 * Cost: find, insert and remove are O(1) expected, and O(1) worst case per
 * call apart from hashing the key: the bucket array is resized
 * incrementally (each insert and remove moves a few buckets of the old array
 * into the new one, as redis's rehashing does), so no single call pays for a
 * whole resize. An empty table holds no array at all, and the table itself
 * is one pointer, so objects can embed several cheaply.
 *
 * Not for: ordered walks (none is offered), or keys that change while the
 * node is in a table (remove, change, insert again). Single-threaded.
 */
#ifndef SOL_HASHTABLE_H
#define SOL_HASHTABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The object that embeds node as its `member`. */
#define hashtable_entry(node, type, member)                                                        \
    ((type *)(void *)((char *)(node)-offsetof(type, member)))

struct hashtable_node {
    struct hashtable_node *next;
    const void *key; /* borrowed; must stay valid and unchanged while in a table */
    size_t key_len;
    uint64_t hash;
};

/* One allocation: the header and its chains. */
struct hashtable_array {
    size_t size;                 /* chains: a power of two */
    size_t count;                /* nodes in the table (kept in the current array only) */
    struct hashtable_array *old; /* while resizing: the previous array, drained bucket by bucket */
    size_t old_pos;              /* old->chains[0..old_pos) are already moved */
    struct hashtable_node *chains[];
};

/* One pointer: an empty table (most of a session's tables, most of the time)
 * costs 8 bytes and no allocation. */
struct hashtable {
    struct hashtable_array *a; /* NULL when empty */
};

/* An empty table; allocates nothing. */
void hashtable_init(struct hashtable *t);

/* Frees the bucket arrays (not the nodes, which are the caller's) and leaves
 * t empty and usable. */
void hashtable_deinit(struct hashtable *t);

/* The keyed hash the table uses, for callers that want it (e.g. tests). */
uint64_t hashtable_hash(const void *key, size_t key_len);

/* The node whose key is key[0..key_len), or NULL. */
struct hashtable_node *hashtable_find(const struct hashtable *t, const void *key, size_t key_len);

/*
 * Adds n under key[0..key_len) (borrowed: see the top). The key must not be
 * in t already (find first). Returns 0, or -ENOMEM when t had no bucket
 * array and none could be allocated (t unchanged). A failed growth later is
 * not an error: the table keeps working with longer chains.
 */
int hashtable_insert(struct hashtable *t, struct hashtable_node *n, const void *key,
                     size_t key_len);

/* Removes n, which must be in t. Never allocates (shrinking is skipped when
 * an allocation fails). */
void hashtable_remove(struct hashtable *t, struct hashtable_node *n);

/* Calls fn for every node, in no particular order. fn must not insert into
 * or remove from t. */
void hashtable_foreach(const struct hashtable *t, void (*fn)(struct hashtable_node *n, void *arg),
                       void *arg);

/* Empties t and returns all its nodes as one list linked through their
 * `next` fields (NULL when t was empty), in no particular order: for
 * teardown, where the caller then frees the nodes. O(count + buckets). */
struct hashtable_node *hashtable_take_all(struct hashtable *t);

static inline size_t hashtable_count(const struct hashtable *t)
{
    return t->a != NULL ? t->a->count : 0;
}

#endif /* SOL_HASHTABLE_H */
