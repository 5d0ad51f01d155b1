/*
 * hashtable.c - see hashtable.h. Load factor: grow to twice the buckets when
 * count exceeds the bucket count, shrink to half when it falls below a
 * quarter; the array is freed when the table empties. A resize allocates the
 * new array and then moves MIGRATE_STEP buckets of the old one per insert or
 * remove; lookups check the not-yet-moved part of the old array too. Each
 * array is one allocation with its header (struct hashtable_array).
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
    t->a = NULL;
}

void hashtable_deinit(struct hashtable *t)
{
    if (t->a != NULL)
        free(t->a->old);
    free(t->a);
    t->a = NULL;
}

/* A zeroed array of size chains, or NULL. */
static struct hashtable_array *array_new(size_t size)
{
    if (size > (SIZE_MAX - sizeof(struct hashtable_array)) / sizeof(struct hashtable_node *))
        return NULL;
    return calloc(1, sizeof(struct hashtable_array) + size * sizeof(struct hashtable_node *));
}

static bool node_is(const struct hashtable_node *n, uint64_t hash, const void *key, size_t len)
{
    return n->hash == hash && n->key_len == len && (len == 0 || memcmp(n->key, key, len) == 0);
}

static struct hashtable_node **chain_of(struct hashtable_array *a, uint64_t hash)
{
    return &a->chains[hash & (a->size - 1)];
}

/* The old-array chain that may still hold hash, or NULL when already moved. */
static struct hashtable_node **old_chain(const struct hashtable_array *a, uint64_t hash)
{
    if (a->old == NULL)
        return NULL;
    size_t i = hash & (a->old->size - 1);
    return i >= a->old_pos ? &a->old->chains[i] : NULL;
}

struct hashtable_node *hashtable_find(const struct hashtable *t, const void *key, size_t key_len)
{
    struct hashtable_array *a = t->a;
    if (a == NULL || a->count == 0)
        return NULL;
    uint64_t hash = hashtable_hash(key, key_len);
    struct hashtable_node **old = old_chain(a, hash);
    for (struct hashtable_node *n = old != NULL ? *old : NULL; n != NULL; n = n->next)
        if (node_is(n, hash, key, key_len))
            return n;
    for (struct hashtable_node *n = *chain_of(a, hash); n != NULL; n = n->next)
        if (node_is(n, hash, key, key_len))
            return n;
    return NULL;
}

/* Moves up to steps buckets of the old array into the current one; frees
 * the old array once it is empty. */
static void migrate(struct hashtable_array *a, size_t steps)
{
    while (a->old != NULL && steps-- > 0) {
        struct hashtable_node *n = a->old->chains[a->old_pos];
        while (n != NULL) {
            struct hashtable_node *next = n->next;
            struct hashtable_node **b = chain_of(a, n->hash);
            n->next = *b;
            *b = n;
            n = next;
        }
        a->old->chains[a->old_pos] = NULL;
        if (++a->old_pos == a->old->size) {
            free(a->old);
            a->old = NULL;
            a->old_pos = 0;
        }
    }
}

/* Starts moving to an array of new_size buckets (a resize in progress is
 * finished first: rare, and bounded by the old array). On allocation
 * failure nothing changes. */
static void start_resize(struct hashtable *t, size_t new_size)
{
    struct hashtable_array *cur = t->a;
    if (cur->old != NULL)
        migrate(cur, cur->old->size);
    struct hashtable_array *fresh = array_new(new_size);
    if (fresh == NULL)
        return;
    fresh->size = new_size;
    fresh->count = cur->count;
    fresh->old = cur;
    cur->count = 0;
    t->a = fresh;
}

int hashtable_insert(struct hashtable *t, struct hashtable_node *n, const void *key, size_t key_len)
{
    if (t->a == NULL) {
        t->a = array_new(MIN_BUCKETS);
        if (t->a == NULL)
            return -ENOMEM;
        t->a->size = MIN_BUCKETS;
    }
    struct hashtable_array *a = t->a;
    migrate(a, MIGRATE_STEP);
    n->key = key;
    n->key_len = key_len;
    n->hash = hashtable_hash(key, key_len);
    struct hashtable_node **b = chain_of(a, n->hash);
    n->next = *b;
    *b = n;
    a->count++;
    if (a->count > a->size && a->old == NULL && a->size <= SIZE_MAX / 4 / sizeof(*b))
        start_resize(t, a->size * 2);
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
    struct hashtable_array *a = t->a;
    if (!unlink_from(old_chain(a, n->hash), n))
        unlink_from(chain_of(a, n->hash), n);
    a->count--;
    if (a->count == 0) {
        hashtable_deinit(t);
        return;
    }
    migrate(a, MIGRATE_STEP);
    if (a->old == NULL && a->size > MIN_BUCKETS && a->count < a->size / 4)
        start_resize(t, a->size / 2);
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
    const struct hashtable_array *a = t->a;
    if (a == NULL || a->count == 0)
        return;
    for (size_t i = a->old_pos; a->old != NULL && i < a->old->size; i++)
        foreach_chain(a->old->chains[i], fn, arg);
    for (size_t i = 0; i < a->size; i++)
        foreach_chain(a->chains[i], fn, arg);
}

static struct hashtable_node *take_chains(struct hashtable_array *from_array, size_t from,
                                          struct hashtable_node *list)
{
    for (size_t i = from; from_array != NULL && i < from_array->size; i++) {
        struct hashtable_node *n = from_array->chains[i];
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
    struct hashtable_node *list = NULL;
    if (t->a != NULL) {
        list = take_chains(t->a->old, t->a->old_pos, NULL);
        list = take_chains(t->a, 0, list);
    }
    hashtable_deinit(t);
    return list;
}
