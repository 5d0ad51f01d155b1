/*
 * trie.c - the subscription index: one node per filter level.
 *
 * Each node keeps its ordinary children in a small open-addressing hash table
 * (linear probing, backward-shift deletion), and its '+' and '#' children in
 * dedicated pointers, so finding a child never scans its siblings. Nodes know
 * their parent: pruning walks up, and trie_match() walks down and back up
 * without recursion or an explicit stack, so it allocates nothing and a topic
 * of 32767 levels costs no stack. trie_free() also walks iteratively.
 * Not for: filter validation, retained messages, deduplication (see trie.h).
 *
 * Known limit: the child hash (FNV-1a) is not keyed, so a client able to add
 * many crafted filters under one node could make that node's lookups slow;
 * subscription limits and ACLs bound this.
 */
#include "trie.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt_topic.h"

struct trie_sub {
    void *subscriber;
    uint8_t qos;
};

struct trie_node {
    struct trie_node *parent; /* NULL for the root */
    struct trie_node *plus;   /* the '+' child */
    struct trie_node *hash;   /* the '#' child; it never has children */
    struct trie_node **slots; /* ordinary children; NULL or slot_count entries */
    size_t slot_count;        /* 0 or a power of two */
    size_t child_count;       /* non-NULL slots */
    struct trie_sub *subs;
    size_t sub_count;
    size_t sub_cap;
    uint32_t level_hash;
    size_t level_len;
    uint8_t level[]; /* this node's level, as in the filter */
};

struct trie {
    struct trie_node *root; /* has no level and is never pruned */
    size_t count;
};

static uint32_t level_hash(const uint8_t *s, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= s[i];
        h *= 16777619u;
    }
    return h;
}

static bool level_is(struct mqtt_bytes level, char c)
{
    return level.len == 1 && level.data[0] == (uint8_t)c;
}

static bool node_is_empty(const struct trie_node *n)
{
    return n->sub_count == 0 && n->child_count == 0 && n->plus == NULL && n->hash == NULL;
}

/* Returns the ordinary child named level, or NULL. */
static struct trie_node *child_find(const struct trie_node *n, const uint8_t *level, size_t len)
{
    if (n->slot_count == 0)
        return NULL;
    size_t mask = n->slot_count - 1;
    for (size_t i = level_hash(level, len) & mask;; i = (i + 1) & mask) {
        struct trie_node *c = n->slots[i];
        if (c == NULL)
            return NULL;
        if (c->level_len == len && (len == 0 || memcmp(c->level, level, len) == 0))
            return c;
    }
}

static void slots_put(struct trie_node **slots, size_t slot_count, struct trie_node *c)
{
    size_t mask = slot_count - 1;
    size_t i = c->level_hash & mask;
    while (slots[i] != NULL)
        i = (i + 1) & mask;
    slots[i] = c;
}

/* Makes room for one more child, keeping the load at most 3/4. 0 or -ENOMEM. */
static int children_reserve(struct trie_node *n)
{
    if ((n->child_count + 1) * 4 <= n->slot_count * 3)
        return 0;
    size_t count = n->slot_count != 0 ? n->slot_count * 2 : 4;
    struct trie_node **slots = calloc(count, sizeof(*slots));
    if (slots == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n->slot_count; i++) {
        if (n->slots[i] != NULL)
            slots_put(slots, count, n->slots[i]);
    }
    free(n->slots);
    n->slots = slots;
    n->slot_count = count;
    return 0;
}

/* True if home slot k lies cyclically in (i, j]: the entry at j may stay. */
static bool slot_stays(size_t k, size_t i, size_t j)
{
    return i <= j ? (i < k && k <= j) : (i < k || k <= j);
}

/* Removes ordinary child c from n (backward-shift deletion). */
static void child_remove(struct trie_node *n, const struct trie_node *c)
{
    size_t mask = n->slot_count - 1;
    size_t i = c->level_hash & mask;
    while (n->slots[i] != c)
        i = (i + 1) & mask;
    n->slots[i] = NULL;
    for (size_t j = (i + 1) & mask; n->slots[j] != NULL; j = (j + 1) & mask) {
        if (slot_stays(n->slots[j]->level_hash & mask, i, j))
            continue;
        n->slots[i] = n->slots[j];
        n->slots[j] = NULL;
        i = j;
    }
    if (--n->child_count == 0) {
        free(n->slots);
        n->slots = NULL;
        n->slot_count = 0;
    }
}

/* Unlinks empty nodes from n upwards and frees them; the root stays. */
static void prune(struct trie_node *n)
{
    while (n->parent != NULL && node_is_empty(n)) {
        struct trie_node *p = n->parent;
        if (p->plus == n)
            p->plus = NULL;
        else if (p->hash == n)
            p->hash = NULL;
        else
            child_remove(p, n);
        free(n);
        n = p;
    }
}

static struct trie_node *node_new(struct trie_node *parent, struct mqtt_bytes level)
{
    struct trie_node *c = calloc(1, sizeof(*c) + level.len);
    if (c == NULL)
        return NULL;
    c->parent = parent;
    c->level_len = level.len;
    c->level_hash = level_hash(level.data, level.len);
    if (level.len != 0)
        memcpy(c->level, level.data, level.len);
    return c;
}

/* Returns n's child for level, creating it; NULL when out of memory. */
static struct trie_node *child_get_or_add(struct trie_node *n, struct mqtt_bytes level)
{
    struct trie_node **slot = NULL;
    if (level_is(level, '+'))
        slot = &n->plus;
    else if (level_is(level, '#'))
        slot = &n->hash;
    if (slot != NULL && *slot != NULL)
        return *slot;
    if (slot == NULL) {
        struct trie_node *c = child_find(n, level.data, level.len);
        if (c != NULL)
            return c;
        if (children_reserve(n) != 0)
            return NULL;
    }
    struct trie_node *c = node_new(n, level);
    if (c == NULL)
        return NULL;
    if (slot != NULL) {
        *slot = c;
    } else {
        slots_put(n->slots, n->slot_count, c);
        n->child_count++;
    }
    return c;
}

/* Returns n's existing child for level, or NULL. */
static struct trie_node *child_get(const struct trie_node *n, struct mqtt_bytes level)
{
    if (level_is(level, '+'))
        return n->plus;
    if (level_is(level, '#'))
        return n->hash;
    return child_find(n, level.data, level.len);
}

static struct trie_sub *sub_find(struct trie_node *n, const void *subscriber)
{
    for (size_t i = 0; i < n->sub_count; i++) {
        if (n->subs[i].subscriber == subscriber)
            return &n->subs[i];
    }
    return NULL;
}

static int sub_add(struct trie_node *n, void *subscriber, uint8_t qos)
{
    if (n->sub_count == n->sub_cap) {
        size_t cap = n->sub_cap != 0 ? n->sub_cap * 2 : 2;
        struct trie_sub *subs = realloc(n->subs, cap * sizeof(*subs));
        if (subs == NULL)
            return -ENOMEM;
        n->subs = subs;
        n->sub_cap = cap;
    }
    n->subs[n->sub_count].subscriber = subscriber;
    n->subs[n->sub_count].qos = qos;
    n->sub_count++;
    return 0;
}

/* Removes *s from n (order is not kept) and gives back memory when sparse. */
static void sub_remove(struct trie_node *n, struct trie_sub *s)
{
    *s = n->subs[--n->sub_count];
    if (n->sub_count == 0) {
        free(n->subs);
        n->subs = NULL;
        n->sub_cap = 0;
    } else if (n->sub_count * 4 <= n->sub_cap && n->sub_cap > 8) {
        struct trie_sub *subs = realloc(n->subs, n->sub_cap / 2 * sizeof(*subs));
        if (subs != NULL) { /* if shrinking fails, the bigger array is still good */
            n->subs = subs;
            n->sub_cap /= 2;
        }
    }
}

struct trie *trie_new(void)
{
    struct trie *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->root = calloc(1, sizeof(*t->root));
    if (t->root == NULL) {
        free(t);
        return NULL;
    }
    return t;
}

/* Detaches and returns one child of n, or NULL when n has none. Used only
 * while freeing: slot_count shrinks as a cursor, so the walk stays linear. */
static struct trie_node *child_take(struct trie_node *n)
{
    struct trie_node *c = NULL;
    if (n->plus != NULL) {
        c = n->plus;
        n->plus = NULL;
    } else if (n->hash != NULL) {
        c = n->hash;
        n->hash = NULL;
    }
    while (c == NULL && n->slot_count > 0) {
        c = n->slots[--n->slot_count];
    }
    return c;
}

void trie_free(struct trie *t)
{
    if (t == NULL)
        return;
    struct trie_node *n = t->root;
    while (n != NULL) {
        struct trie_node *c = child_take(n);
        if (c != NULL) {
            n = c;
            continue;
        }
        struct trie_node *p = n->parent;
        free(n->slots);
        free(n->subs);
        free(n);
        n = p;
    }
    free(t);
}

int trie_subscribe(struct trie *t, struct mqtt_bytes filter, void *subscriber, uint8_t qos)
{
    struct mqtt_level_iter it;
    struct mqtt_bytes level;
    struct trie_node *n = t->root;
    mqtt_level_iter_init(&it, filter);
    while (mqtt_level_iter_next(&it, &level)) {
        struct trie_node *c = child_get_or_add(n, level);
        if (c == NULL) {
            prune(n); /* the nodes added by this call are empty */
            return -ENOMEM;
        }
        n = c;
    }
    struct trie_sub *s = sub_find(n, subscriber);
    if (s != NULL) {
        s->qos = qos;
        return 0;
    }
    if (sub_add(n, subscriber, qos) != 0) {
        prune(n);
        return -ENOMEM;
    }
    t->count++;
    return 1;
}

int trie_unsubscribe(struct trie *t, struct mqtt_bytes filter, void *subscriber)
{
    struct mqtt_level_iter it;
    struct mqtt_bytes level;
    struct trie_node *n = t->root;
    mqtt_level_iter_init(&it, filter);
    while (n != NULL && mqtt_level_iter_next(&it, &level))
        n = child_get(n, level);
    struct trie_sub *s = n != NULL ? sub_find(n, subscriber) : NULL;
    if (s == NULL)
        return -ENOENT;
    sub_remove(n, s);
    prune(n);
    t->count--;
    return 0;
}

size_t trie_count(const struct trie *t)
{
    return t->count;
}

/*
 * trie_match() walks the trie depth first over (node, pos) states: node has
 * matched the topic's levels before byte offset pos, where pos is the start of
 * the next level, and pos == len + 1 means every level is consumed (so "a/"
 * has a last, empty level at pos 2 and is done at pos 3).
 */
struct match {
    const uint8_t *topic;
    size_t len;
    bool is_dollar; /* [MQTT-4.7.2-1]: no wildcard first level */
    trie_match_fn fn;
    void *arg;
};

static void report(const struct match *m, const struct trie_node *n)
{
    for (size_t i = 0; i < n->sub_count; i++)
        m->fn(n->subs[i].subscriber, n->subs[i].qos, m->arg);
}

static size_t level_end(const struct match *m, size_t pos)
{
    const uint8_t *sep = memchr(m->topic + pos, '/', m->len - pos);
    return sep != NULL ? (size_t)(sep - m->topic) : m->len;
}

/* The start of the level that ends just before pos (inverse of descending). */
static size_t level_start_before(const struct match *m, size_t pos)
{
    size_t i = pos - 1;
    while (i > 0 && m->topic[i - 1] != '/')
        i--;
    return i;
}

static bool wildcards_allowed(const struct match *m, const struct trie_node *n)
{
    return !(m->is_dollar && n->parent == NULL);
}

/* Reports what matches at (n, pos): n's own subscribers when the topic is
 * consumed, and n's '#' child either way ("a/#" matches "a"). */
static void visit(const struct match *m, const struct trie_node *n, size_t pos)
{
    if (pos > m->len)
        report(m, n);
    if (n->hash != NULL && wildcards_allowed(m, n))
        report(m, n->hash);
}

/* The first child of (n, pos) to descend into, exact before '+', or NULL. */
static const struct trie_node *first_child(const struct match *m, const struct trie_node *n,
                                           size_t pos)
{
    if (pos > m->len)
        return NULL;
    size_t end = level_end(m, pos);
    const struct trie_node *c = child_find(n, m->topic + pos, end - pos);
    if (c == NULL && wildcards_allowed(m, n))
        c = n->plus;
    return c;
}

void trie_match(const struct trie *t, struct mqtt_bytes topic, trie_match_fn fn, void *arg)
{
    struct match m = {topic.data, topic.len, topic.len > 0 && topic.data[0] == '$', fn, arg};
    const struct trie_node *n = t->root;
    size_t pos = 0;
    for (;;) {
        visit(&m, n, pos);
        const struct trie_node *c = first_child(&m, n, pos);
        if (c != NULL) {
            n = c;
            pos = level_end(&m, pos) + 1;
            continue;
        }
        /* Backtrack: from an exact child, try its '+' sibling; else go up. */
        for (;;) {
            const struct trie_node *p = n->parent;
            if (p == NULL)
                return;
            size_t ppos = level_start_before(&m, pos);
            if (p->plus != NULL && p->plus != n && wildcards_allowed(&m, p)) {
                n = p->plus;
                break;
            }
            n = p;
            pos = ppos;
        }
    }
}
