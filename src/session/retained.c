/*
 * retained.c - the retained messages, indexed by topic level, so that a
 * SUBSCRIBE costs O(levels + matches) instead of a walk over every retained
 * message: an exact filter is one lookup per level, '+' visits the children
 * of one node, and only '#' visits a whole subtree (all of which match).
 *
 * Each node is one topic level; a node holds the retained message of the
 * topic ending there (or none) and its children in a keyed hash table.
 * Nodes without a message or children are pruned. Walks use an explicit
 * stack, never recursion: topics may have as many levels as
 * max_topic_levels allows.
 *
 * The broker keeps here only retained messages that are never stored ($SYS
 * topics); stored ones live in the store and are read per SUBSCRIBE
 * (retained_stream.c).
 * Not for: the subscription index (trie.c).
 */
#include "retained.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt_topic.h"

struct retained_node {
    struct hashtable_node link; /* in the parent's children; key: level */
    struct retained_node *parent;
    struct hashtable children;
    struct msg *msg; /* one reference, or NULL */
    size_t level_len;
    uint8_t level[];
};

static struct retained_node *node_new(struct retained_node *parent, struct mqtt_bytes level)
{
    struct retained_node *n = calloc(1, sizeof(*n) + level.len);
    if (!n)
        return NULL;
    n->parent = parent;
    n->level_len = level.len;
    if (level.len)
        memcpy(n->level, level.data, level.len);
    return n;
}

int retained_index_init(struct retained_index *idx)
{
    idx->root = node_new(NULL, (struct mqtt_bytes){NULL, 0});
    idx->count = 0;
    return idx->root ? 0 : -ENOMEM;
}

static struct retained_node *child(const struct retained_node *n, struct mqtt_bytes level)
{
    struct hashtable_node *h = hashtable_find(&n->children, level.data, level.len);
    return h ? hashtable_entry(h, struct retained_node, link) : NULL;
}

/* Frees n and its ancestors while they hold nothing (never the root). */
static void prune(struct retained_index *idx, struct retained_node *n)
{
    while (n != idx->root && !n->msg && hashtable_count(&n->children) == 0) {
        struct retained_node *parent = n->parent;
        hashtable_remove(&parent->children, &n->link);
        hashtable_deinit(&n->children);
        free(n);
        n = parent;
    }
}

/* The node of topic, or NULL; with create, made (and linked) as needed.
 * *last is the deepest node reached (for pruning after a failed create). */
static struct retained_node *walk_to(struct retained_index *idx, struct mqtt_bytes topic,
                                     bool create, struct retained_node **last)
{
    struct retained_node *n = idx->root;
    struct mqtt_level_iter it;
    struct mqtt_bytes level;
    mqtt_level_iter_init(&it, topic);
    *last = n;
    while (n && mqtt_level_iter_next(&it, &level)) {
        struct retained_node *c = child(n, level);
        if (!c && create) {
            c = node_new(n, level);
            if (c && hashtable_insert(&n->children, &c->link, c->level, c->level_len) != 0) {
                free(c);
                c = NULL;
            }
        }
        n = c;
        if (n)
            *last = n;
    }
    return n;
}

struct msg *retained_get(const struct retained_index *idx, struct mqtt_bytes topic)
{
    struct retained_node *last;
    struct retained_node *n = walk_to((struct retained_index *)idx, topic, false, &last);
    return n ? n->msg : NULL;
}

int retained_put(struct retained_index *idx, struct mqtt_bytes topic, struct msg *m,
                 struct msg **old)
{
    *old = NULL;
    struct retained_node *last;
    struct retained_node *n = walk_to(idx, topic, true, &last);
    if (!n) {
        prune(idx, last); /* the nodes made on the way hold nothing */
        return -ENOMEM;
    }
    *old = n->msg;
    n->msg = m;
    if (!*old)
        idx->count++;
    return 0;
}

struct msg *retained_take(struct retained_index *idx, struct mqtt_bytes topic)
{
    struct retained_node *last;
    struct retained_node *n = walk_to(idx, topic, false, &last);
    if (!n || !n->msg)
        return NULL;
    struct msg *m = n->msg;
    n->msg = NULL;
    idx->count--;
    prune(idx, n);
    return m;
}

/* ---- matching: an explicit stack of (node, filter level) ---- */

struct frame {
    struct retained_node *node;
    size_t level; /* index into the filter's levels; SIZE_MAX: the whole subtree */
};

struct walk {
    struct frame *v;
    size_t n, cap;
    bool is_root_dollar_hidden; /* the filter starts with a wildcard [MQTT-4.7.2-1] */
    int err;
};

static void push(struct walk *w, struct retained_node *node, size_t level)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 32;
        struct frame *v = realloc(w->v, cap * sizeof(*v));
        if (!v) {
            w->err = -ENOMEM;
            return;
        }
        w->v = v;
        w->cap = cap;
    }
    w->v[w->n++] = (struct frame){node, level};
}

struct push_ctx {
    struct walk *w;
    size_t level;
    bool skip_dollar;
};

static void push_child(struct hashtable_node *h, void *arg)
{
    struct push_ctx *ctx = arg;
    struct retained_node *c = hashtable_entry(h, struct retained_node, link);
    if (ctx->skip_dollar && c->level_len > 0 && c->level[0] == '$')
        return;
    push(ctx->w, c, ctx->level);
}

static void push_children(struct walk *w, struct retained_node *n, size_t level)
{
    struct push_ctx ctx = {w, level, n->parent == NULL && w->is_root_dollar_hidden};
    hashtable_foreach(&n->children, push_child, &ctx);
}

/* The filter split into levels (views into filter); NULL when out of memory. */
static struct mqtt_bytes *split(struct mqtt_bytes filter, size_t *count)
{
    *count = mqtt_topic_levels(filter);
    struct mqtt_bytes *levels = calloc(*count, sizeof(*levels));
    if (!levels)
        return NULL;
    struct mqtt_level_iter it;
    mqtt_level_iter_init(&it, filter);
    for (size_t i = 0; i < *count && mqtt_level_iter_next(&it, &levels[i]); i++)
        ;
    return levels;
}

static bool is(struct mqtt_bytes level, char c)
{
    return level.len == 1 && level.data[0] == c;
}

/* One step of the walk for frame f: emits, or pushes what to look at next. */
static void step(struct walk *w, struct frame f, const struct mqtt_bytes *levels, size_t count,
                 retained_match_fn fn, void *arg)
{
    struct retained_node *n = f.node;
    if (f.level == SIZE_MAX || f.level == count) { /* under '#', or the filter's end */
        if (n->msg)
            fn(n->msg, arg);
        if (f.level == SIZE_MAX)
            push_children(w, n, SIZE_MAX);
        return;
    }
    struct mqtt_bytes level = levels[f.level];
    if (is(level, '#')) {
        /* "a/#" matches "a" itself [MQTT-4.7.1-2], then everything below. */
        if (n->msg && n->parent != NULL)
            fn(n->msg, arg);
        push_children(w, n, SIZE_MAX);
    } else if (is(level, '+')) {
        push_children(w, n, f.level + 1);
    } else {
        struct retained_node *c = child(n, level);
        if (c)
            push(w, c, f.level + 1);
    }
}

int retained_match(const struct retained_index *idx, struct mqtt_bytes filter, retained_match_fn fn,
                   void *arg)
{
    size_t count = 0;
    struct mqtt_bytes *levels = split(filter, &count);
    if (!levels)
        return -ENOMEM;
    struct walk w = {.is_root_dollar_hidden = is(levels[0], '#') || is(levels[0], '+')};
    push(&w, idx->root, 0);
    while (w.n > 0 && w.err == 0) {
        struct frame f = w.v[--w.n];
        step(&w, f, levels, count, fn, arg);
    }
    free(w.v);
    free(levels);
    return w.err;
}

/* ---- teardown ---- */

void retained_index_deinit(struct retained_index *idx, void (*release)(struct msg *m))
{
    if (!idx->root)
        return;
    /* Without recursion or allocation: nodes still to free are linked
     * through their parent pointers, which teardown no longer needs. */
    struct retained_node *todo = idx->root;
    todo->parent = NULL;
    while (todo) {
        struct retained_node *n = todo;
        todo = n->parent;
        struct hashtable_node *h = hashtable_take_all(&n->children);
        while (h) {
            struct hashtable_node *next = h->next;
            struct retained_node *c = hashtable_entry(h, struct retained_node, link);
            c->parent = todo;
            todo = c;
            h = next;
        }
        if (n->msg && release)
            release(n->msg);
        hashtable_deinit(&n->children);
        free(n);
    }
    idx->root = NULL;
    idx->count = 0;
}
