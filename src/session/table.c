/*
 * table.c - the session manager's sessions by client id, on the broker's one
 * keyed hash table (util/hashtable.h, SipHash). Intrusive: a session carries
 * its own node (by_id) keyed by its own client_id copy, so the index costs
 * no allocation and no second copy of the id per session.
 * Not for: topic matching (trie.c) or retained topics (retained.c).
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
    hashtable_deinit(&t->h); /* the nodes are the sessions' own */
}

static struct session *session_of(struct hashtable_node *n)
{
    return n ? hashtable_entry(n, struct session, by_id) : NULL;
}

void *table_get(const struct table *t, const uint8_t *key, size_t key_len)
{
    return session_of(hashtable_find(&t->h, key, key_len));
}

int table_put(struct table *t, struct session *s)
{
    struct session *old = table_get(t, s->client_id, s->id_len);
    if (old == s)
        return 0;
    if (hashtable_insert(&t->h, &s->by_id, s->client_id, s->id_len) != 0)
        return -ENOMEM;
    if (old) /* inserted first: a failed insert leaves the table unchanged */
        hashtable_remove(&t->h, &old->by_id);
    return 0;
}

void *table_remove(struct table *t, const uint8_t *key, size_t key_len)
{
    struct session *s = table_get(t, key, key_len);
    if (s)
        hashtable_remove(&t->h, &s->by_id);
    return s;
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
    ctx->fn(session_of(n), ctx->arg);
}

void table_foreach(const struct table *t, void (*fn)(void *value, void *arg), void *arg)
{
    struct foreach_ctx ctx = {fn, arg};
    hashtable_foreach(&t->h, visit, &ctx);
}
