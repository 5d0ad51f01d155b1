/*
 * hashtable.c - see hashtable.h. Load factor: grow to twice the buckets when
 * count exceeds the bucket count, shrink to half when it falls below a
 * quarter; the array is freed when the table empties. A resize allocates the
 * new array and then moves MIGRATE_STEP buckets of the old one per insert or
 * remove; lookups check the not-yet-moved part of the old array too.
 * Not for: anything but the table (siphash.c hashes).
 */
#include "hashtable.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "siphash.h"

#define MIN_BUCKETS  4
#define MIGRATE_STEP 4

static uint8_t hash_key[SIPHASH_KEY_LEN];
static bool is_keyed;

/* A weak fallback when the kernel has no getrandom(2) and no /dev/urandom:
 * still differs per process, which is all a chained table strictly needs. */
static void fallback_key(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    uint64_t mix[2] = {(uint64_t)now.tv_nsec ^ ((uint64_t)getpid() << 32),
                       (uint64_t)now.tv_sec ^ (uint64_t)(uintptr_t)&now};
    memcpy(hash_key, mix, sizeof(hash_key));
}

/* Draws the per-process key on first use. */
static void ensure_key(void)
{
    if (is_keyed)
        return;
    is_keyed = true;
    if (getrandom(hash_key, sizeof(hash_key), 0) == (ssize_t)sizeof(hash_key))
        return;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    bool ok = fd >= 0 && read(fd, hash_key, sizeof(hash_key)) == (ssize_t)sizeof(hash_key);
    if (fd >= 0)
        close(fd);
    if (!ok)
        fallback_key();
}

uint64_t hashtable_hash(const void *key, size_t key_len)
{
    ensure_key();
    return siphash13(hash_key, key, key_len);
}

void hashtable_init(struct hashtable *t)
{
    *t = (struct hashtable){0};
}

void hashtable_deinit(struct hashtable *t)
{
    free(t->buckets);
    free(t->old);
    hashtable_init(t);
}

static bool node_is(const struct hashtable_node *n, uint64_t hash, const void *key, size_t len)
{
    return n->hash == hash && n->key_len == len && (len == 0 || memcmp(n->key, key, len) == 0);
}

/* The old-array chain that may still hold hash, or NULL when already moved. */
static struct hashtable_node **old_chain(const struct hashtable *t, uint64_t hash)
{
    if (t->old == NULL)
        return NULL;
    size_t i = hash & (t->old_size - 1);
    return i >= t->old_pos ? &t->old[i] : NULL;
}

struct hashtable_node *hashtable_find(const struct hashtable *t, const void *key, size_t key_len)
{
    if (t->count == 0)
        return NULL;
    uint64_t hash = hashtable_hash(key, key_len);
    struct hashtable_node **old = old_chain(t, hash);
    for (struct hashtable_node *n = old != NULL ? *old : NULL; n != NULL; n = n->next)
        if (node_is(n, hash, key, key_len))
            return n;
    if (t->buckets == NULL)
        return NULL;
    for (struct hashtable_node *n = t->buckets[hash & (t->size - 1)]; n != NULL; n = n->next)
        if (node_is(n, hash, key, key_len))
            return n;
    return NULL;
}

/* Moves up to steps buckets of the old array into the new one; frees the old
 * array once it is empty. */
static void migrate(struct hashtable *t, size_t steps)
{
    while (t->old != NULL && steps-- > 0) {
        struct hashtable_node *n = t->old[t->old_pos];
        while (n != NULL) {
            struct hashtable_node *next = n->next;
            struct hashtable_node **b = &t->buckets[n->hash & (t->size - 1)];
            n->next = *b;
            *b = n;
            n = next;
        }
        t->old[t->old_pos] = NULL;
        if (++t->old_pos == t->old_size) {
            free(t->old);
            t->old = NULL;
            t->old_size = 0;
            t->old_pos = 0;
        }
    }
}

/* Starts moving to an array of new_size buckets (a resize in progress is
 * finished first: rare, and bounded by the old array). On allocation
 * failure nothing changes. */
static void start_resize(struct hashtable *t, size_t new_size)
{
    if (t->old != NULL)
        migrate(t, t->old_size);
    struct hashtable_node **fresh = calloc(new_size, sizeof(*fresh));
    if (fresh == NULL)
        return;
    t->old = t->buckets;
    t->old_size = t->size;
    t->old_pos = 0;
    t->buckets = fresh;
    t->size = new_size;
    if (t->old == NULL)
        t->old_size = 0;
}

int hashtable_insert(struct hashtable *t, struct hashtable_node *n, const void *key, size_t key_len)
{
    if (t->buckets == NULL) {
        t->buckets = calloc(MIN_BUCKETS, sizeof(*t->buckets));
        if (t->buckets == NULL)
            return -ENOMEM;
        t->size = MIN_BUCKETS;
    }
    migrate(t, MIGRATE_STEP);
    n->key = key;
    n->key_len = key_len;
    n->hash = hashtable_hash(key, key_len);
    struct hashtable_node **b = &t->buckets[n->hash & (t->size - 1)];
    n->next = *b;
    *b = n;
    t->count++;
    if (t->count > t->size && t->old == NULL && t->size <= SIZE_MAX / 2 / sizeof(*b))
        start_resize(t, t->size * 2);
    return 0;
}

static bool unlink_from(struct hashtable_node **chain, struct hashtable_node *n)
{
    for (struct hashtable_node **p = chain; p != NULL && *p != NULL; p = &(*p)->next) {
        if (*p == n) {
            *p = n->next;
            n->next = NULL;
            return true;
        }
    }
    return false;
}

void hashtable_remove(struct hashtable *t, struct hashtable_node *n)
{
    if (!unlink_from(old_chain(t, n->hash), n))
        unlink_from(&t->buckets[n->hash & (t->size - 1)], n);
    t->count--;
    if (t->count == 0) {
        hashtable_deinit(t);
        return;
    }
    migrate(t, MIGRATE_STEP);
    if (t->old == NULL && t->size > MIN_BUCKETS && t->count < t->size / 4)
        start_resize(t, t->size / 2);
}

static void foreach_chain(struct hashtable_node *n, void (*fn)(struct hashtable_node *, void *),
                          void *arg)
{
    while (n != NULL) {
        struct hashtable_node *next = n->next;
        fn(n, arg);
        n = next;
    }
}

void hashtable_foreach(const struct hashtable *t, void (*fn)(struct hashtable_node *n, void *arg),
                       void *arg)
{
    if (t->count == 0)
        return;
    for (size_t i = t->old_pos; t->old != NULL && i < t->old_size; i++)
        foreach_chain(t->old[i], fn, arg);
    for (size_t i = 0; i < t->size; i++)
        foreach_chain(t->buckets[i], fn, arg);
}

static struct hashtable_node *take_chains(struct hashtable_node **chains, size_t from, size_t to,
                                          struct hashtable_node *list)
{
    for (size_t i = from; chains != NULL && i < to; i++) {
        struct hashtable_node *n = chains[i];
        while (n != NULL) {
            struct hashtable_node *next = n->next;
            n->next = list;
            list = n;
            n = next;
        }
    }
    return list;
}

struct hashtable_node *hashtable_take_all(struct hashtable *t)
{
    struct hashtable_node *list = take_chains(t->old, t->old_pos, t->old_size, NULL);
    list = take_chains(t->buckets, 0, t->size, list);
    hashtable_deinit(t);
    return list;
}
