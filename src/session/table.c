/*
 * table.c - the session manager's byte-string-keyed maps (client ids,
 * retained topics) on top of the broker's one hash table (util/hashtable.h,
 * keyed SipHash): each entry holds its own copy of the key.
 * Not for: topic matching (trie.c does that).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "session_internal.h"

int table_init(struct table *t)
{
    hashtable_init(&t->h);
    return 0;
}

void table_deinit(struct table *t)
{
    struct hashtable_node *n = hashtable_take_all(&t->h);
    while (n) {
        struct hashtable_node *next = n->next;
        free(hashtable_entry(n, struct table_entry, node));
        n = next;
    }
}

static struct table_entry *find(const struct table *t, const uint8_t *key, size_t key_len)
{
    struct hashtable_node *n = hashtable_find(&t->h, key, key_len);
    return n ? hashtable_entry(n, struct table_entry, node) : NULL;
}

void *table_get(const struct table *t, const uint8_t *key, size_t key_len)
{
    struct table_entry *e = find(t, key, key_len);
    return e ? e->value : NULL;
}

int table_put(struct table *t, const uint8_t *key, size_t key_len, void *value)
{
    struct table_entry *e = find(t, key, key_len);
    if (e) {
        e->value = value;
        return 0;
    }
    e = malloc(sizeof(*e) + key_len);
    if (!e)
        return -ENOMEM;
    e->value = value;
    if (key_len)
        memcpy(e->key, key, key_len);
    if (hashtable_insert(&t->h, &e->node, e->key, key_len) != 0) {
        free(e);
        return -ENOMEM;
    }
    return 0;
}

void *table_remove(struct table *t, const uint8_t *key, size_t key_len)
{
    struct table_entry *e = find(t, key, key_len);
    if (!e)
        return NULL;
    void *value = e->value;
    hashtable_remove(&t->h, &e->node);
    free(e);
    return value;
}

size_t table_count(const struct table *t)
{
    return hashtable_count(&t->h);
}

struct foreach_ctx {
    void (*fn)(void *value, void *arg);
    void *arg;
};

static void visit(struct hashtable_node *n, void *arg)
{
    struct foreach_ctx *ctx = arg;
    ctx->fn(hashtable_entry(n, struct table_entry, node)->value, ctx->arg);
}

void table_foreach(const struct table *t, void (*fn)(void *value, void *arg), void *arg)
{
    struct foreach_ctx ctx = {fn, arg};
    hashtable_foreach(&t->h, visit, &ctx);
}
