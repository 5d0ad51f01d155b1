/*
 * table.c - a small chained hash table keyed by byte strings (client ids,
 * retained topics). Not for: topic matching (trie.c does that).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "session_internal.h"

#define TABLE_INITIAL_BUCKETS 64

/* FNV-1a: short keys, no adversarial-collision resistance needed beyond
 * what a chained table tolerates. */
static uint64_t hash_key(const uint8_t *key, size_t len)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < len; i++) {
        h ^= key[i];
        h *= 1099511628211ull;
    }
    return h;
}

int table_init(struct table *t)
{
    t->buckets = calloc(TABLE_INITIAL_BUCKETS, sizeof(*t->buckets));
    if (!t->buckets)
        return -ENOMEM;
    t->bucket_count = TABLE_INITIAL_BUCKETS;
    t->count = 0;
    return 0;
}

void table_deinit(struct table *t)
{
    for (size_t i = 0; i < t->bucket_count; i++) {
        struct table_entry *e = t->buckets[i];
        while (e) {
            struct table_entry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(t->buckets);
    t->buckets = NULL;
    t->bucket_count = 0;
    t->count = 0;
}

static struct table_entry **find_slot(const struct table *t, const uint8_t *key, size_t key_len)
{
    struct table_entry **slot = &t->buckets[hash_key(key, key_len) & (t->bucket_count - 1)];
    while (*slot && !((*slot)->key_len == key_len && memcmp((*slot)->key, key, key_len) == 0))
        slot = &(*slot)->next;
    return slot;
}

void *table_get(const struct table *t, const uint8_t *key, size_t key_len)
{
    struct table_entry *e = *find_slot(t, key, key_len);
    return e ? e->value : NULL;
}

/* Doubles the bucket array; on allocation failure keeps the old one (the
 * table still works, only slower). */
static void grow(struct table *t)
{
    size_t n = t->bucket_count * 2;
    struct table_entry **buckets = calloc(n, sizeof(*buckets));
    if (!buckets)
        return;
    for (size_t i = 0; i < t->bucket_count; i++) {
        struct table_entry *e = t->buckets[i];
        while (e) {
            struct table_entry *next = e->next;
            size_t b = hash_key(e->key, e->key_len) & (n - 1);
            e->next = buckets[b];
            buckets[b] = e;
            e = next;
        }
    }
    free(t->buckets);
    t->buckets = buckets;
    t->bucket_count = n;
}

int table_put(struct table *t, const uint8_t *key, size_t key_len, void *value)
{
    struct table_entry **slot = find_slot(t, key, key_len);
    if (*slot) {
        (*slot)->value = value;
        return 0;
    }
    struct table_entry *e = malloc(sizeof(*e) + key_len);
    if (!e)
        return -ENOMEM;
    e->next = NULL;
    e->value = value;
    e->key_len = key_len;
    memcpy(e->key, key, key_len);
    *slot = e;
    if (++t->count > t->bucket_count)
        grow(t);
    return 0;
}

void *table_remove(struct table *t, const uint8_t *key, size_t key_len)
{
    struct table_entry **slot = find_slot(t, key, key_len);
    struct table_entry *e = *slot;
    if (!e)
        return NULL;
    void *value = e->value;
    *slot = e->next;
    free(e);
    t->count--;
    return value;
}

void table_foreach(const struct table *t, void (*fn)(void *value, void *arg), void *arg)
{
    for (size_t i = 0; i < t->bucket_count; i++)
        for (struct table_entry *e = t->buckets[i]; e; e = e->next)
            fn(e->value, arg);
}
