/*
 * trie.c - the subscription index: one node per filter level.
 *
 * Each node keeps its ordinary children in the broker's keyed hash table
 * (util/hashtable.h: SipHash under a per-process random key, so clients
 * cannot craft levels that collide), and its '+' and '#' children in
 * dedicated pointers, so finding a child never scans its siblings. A node's
 * subscribers are a hash table too, keyed by the subscriber pointer: adding,
 * updating and removing one (filter, subscriber) pair is O(levels), whatever
 * the number of subscribers of that filter. Nodes know their parent: pruning
 * walks up, and trie_match() walks down and back up without recursion or an
 * explicit stack, so it allocates nothing and a topic of 32767 levels costs
 * no stack. trie_free() also walks iteratively.
 * Not for: filter validation, retained messages, deduplication (see trie.h).
 */
#include "trie.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "hashtable.h"
#include "mqtt_topic.h"

struct trie_sub {
    struct hashtable_node link; /* in the node's subs, keyed by &subscriber */
    void *subscriber;
    uint32_t grant;
};

struct trie_node {
    struct hashtable_node link; /* in the parent's children (ordinary children) */
    struct trie_node *parent;   /* NULL for the root */
    struct trie_node *plus;     /* the '+' child */
    struct trie_node *hash;     /* the '#' child; it never has children */
    struct hashtable children;  /* ordinary children, keyed by their level */
    struct hashtable subs;      /* struct trie_sub */
    size_t level_len;
    uint8_t level[]; /* this node's level, as in the filter (the children key) */
};

struct trie {
    struct trie_node *root; /* has no level and is never pruned */
    size_t count;
};

static bool level_is(struct mqtt_bytes level, char c)
{
    return level.len == 1 && level.data[0] == (uint8_t)c;
}

static bool node_is_empty(const struct trie_node *n)
{
    return hashtable_count(&n->subs) == 0 && hashtable_count(&n->children) == 0 &&
           n->plus == NULL && n->hash == NULL;
}

/* Returns the ordinary child named level, or NULL. */
static struct trie_node *child_find(const struct trie_node *n, const uint8_t *level, size_t len)
{
    struct hashtable_node *c = hashtable_find(&n->children, level, len);
    return c != NULL ? hashtable_entry(c, struct trie_node, link) : NULL;
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
            hashtable_remove(&p->children, &n->link);
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
    }
    struct trie_node *c = node_new(n, level);
    if (c == NULL)
        return NULL;
    if (slot != NULL) {
        *slot = c;
    } else if (hashtable_insert(&n->children, &c->link, c->level, c->level_len) != 0) {
        free(c);
        return NULL;
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

static struct trie_sub *sub_find(const struct trie_node *n, void *const *subscriber)
{
    struct hashtable_node *s = hashtable_find(&n->subs, subscriber, sizeof(*subscriber));
    return s != NULL ? hashtable_entry(s, struct trie_sub, link) : NULL;
}

static int sub_add(struct trie_node *n, void *subscriber, uint32_t grant)
{
    struct trie_sub *s = malloc(sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->subscriber = subscriber;
    s->grant = grant;
    if (hashtable_insert(&n->subs, &s->link, &s->subscriber, sizeof(s->subscriber)) != 0) {
        free(s);
        return -ENOMEM;
    }
    return 0;
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

static void push(struct trie_node **stack, struct trie_node *n)
{
    if (n == NULL)
        return;
    n->link.next = *stack != NULL ? &(*stack)->link : NULL;
    *stack = n;
}

static void free_subs(struct trie_node *n)
{
    struct hashtable_node *s = hashtable_take_all(&n->subs);
    while (s != NULL) {
        struct hashtable_node *next = s->next;
        free(hashtable_entry(s, struct trie_sub, link));
        s = next;
    }
}

/* Frees every node with a work list threaded through the nodes' own links
 * (a node leaves its parent's table before it is pushed): no recursion, no
 * allocation, linear in the nodes. */
void trie_free(struct trie *t)
{
    if (t == NULL)
        return;
    struct trie_node *stack = NULL;
    push(&stack, t->root);
    while (stack != NULL) {
        struct trie_node *n = stack;
        struct hashtable_node *below = n->link.next;
        stack = below != NULL ? hashtable_entry(below, struct trie_node, link) : NULL;
        push(&stack, n->plus);
        push(&stack, n->hash);
        struct hashtable_node *c = hashtable_take_all(&n->children);
        while (c != NULL) {
            struct hashtable_node *next = c->next;
            push(&stack, hashtable_entry(c, struct trie_node, link));
            c = next;
        }
        free_subs(n);
        free(n);
    }
    free(t);
}

int trie_subscribe(struct trie *t, struct mqtt_bytes filter, void *subscriber, uint32_t grant)
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
    struct trie_sub *s = sub_find(n, &subscriber);
    if (s != NULL) {
        s->grant = grant;
        return 0;
    }
    if (sub_add(n, subscriber, grant) != 0) {
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
    struct trie_sub *s = n != NULL ? sub_find(n, &subscriber) : NULL;
    if (s == NULL)
        return -ENOENT;
    hashtable_remove(&n->subs, &s->link);
    free(s);
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

static void report_one(struct hashtable_node *link, void *arg)
{
    const struct match *m = arg;
    const struct trie_sub *s = hashtable_entry(link, struct trie_sub, link);
    m->fn(s->subscriber, s->grant, m->arg);
}

static void report(const struct match *m, const struct trie_node *n)
{
    hashtable_foreach(&n->subs, report_one, (void *)m);
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
