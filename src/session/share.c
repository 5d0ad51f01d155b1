/*
 * share.c - shared subscription groups: membership, the round robin among
 * connected members, and the group queue for when none is connected (see
 * share.h for the rules).
 *
 * Index: groups by name ("$share/GROUP/FILTER") in a keyed hash table, and a
 * trie of their FILTERs (the broker's trie, with the group as subscriber), so
 * matching a topic costs O(levels + matching groups) as for plain
 * subscriptions. Each group keeps its connected members in a ring with a
 * cursor: picking the next member is O(1) (the READ gate may skip members
 * that may not read the topic: at most one turn of the ring).
 *
 * Group queue: entries in the store (storage/groupq.c) with the positions in
 * memory (last seq, read seq, counts), as a persistent session's queue.
 * Memory follows the store (effects.c's rule): every batch that touches a
 * group's queue carries a completion that, if the commit fails, sends the
 * group back to re-read its queue from the store (nothing of the batch was
 * written, so the store still has every entry the batch took or deleted).
 */
#include "share.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hashtable.h"
#include "log.h"
#include "mqtt_topic.h"
#include "session_internal.h"
#include "store.h"
#include "trie.h"

#define SHARE_PREFIX     "$share/"
#define SHARE_PREFIX_LEN 7

struct share_group;

struct share_member {
    struct share_member *prev, *next;           /* the group's members */
    struct share_member *ring_prev, *ring_next; /* connected members (circular); NULL if not */
    struct share_member *session_next;          /* the session's memberships (s->shares) */
    struct share_group *group;
    struct session *session;
    uint8_t qos;                 /* granted */
    bool is_retain_as_published; /* MQTT 5 Retain As Published */
    uint32_t sub_id;             /* MQTT 5 Subscription Identifier; 0: none */
};

struct share_group {
    struct hashtable_node link; /* in idx->groups, keyed by name */
    struct share_member *members;
    struct share_member *cursor; /* the connected member that gets the next message */
    uint32_t member_count, online_count;
    uint32_t qos_count[3]; /* members by granted QoS: the queue's QoS in O(1) */
    /* The queue in the store */
    bool needs_queue_info; /* made at runtime: its queue's state is read on first use */
    bool has_store_queue;  /* the store may hold entries: delete them when the group ends */
    bool backlog;          /* entries at or after read_seq may wait */
    uint32_t queued_gen;   /* (uint32_t)batch_gen of its newest append (deliver.c) */
    uint64_t last_seq, read_seq;
    uint32_t queued_count;
    size_t queued_bytes;
    uint64_t touched_gen;   /* batch generation whose completion watches this group, +1 */
    uint64_t drops;         /* queue-limit drops since the last notice */
    uint64_t drop_logged_s; /* when that notice was logged */
    size_t inner_off;       /* FILTER starts at name + inner_off */
    size_t name_len;
    uint8_t name[]; /* "$share/GROUP/FILTER" */
};

/* A routing choice: m goes to member (NULL: the group queue) at qos. */
struct share_target {
    struct share_group *group;
    struct session *member;
    uint32_t sub_id; /* the member's subscription's identifier */
    uint8_t qos;
    bool is_retain_as_published; /* the member's subscription has it */
};

struct share_index {
    struct hashtable groups;
    struct trie *trie; /* FILTER -> group */
    size_t member_total;
    bool is_loading; /* start-up: no store reads until share_recover() */
    struct share_target *targets;
    size_t target_count, target_cap;
};

/* ---- Names ---- */

bool share_is_shared(struct mqtt_bytes filter)
{
    return filter.len >= SHARE_PREFIX_LEN &&
           memcmp(filter.data, SHARE_PREFIX, SHARE_PREFIX_LEN) == 0;
}

bool share_parse(struct mqtt_bytes filter, struct mqtt_bytes *group, struct mqtt_bytes *inner)
{
    if (!share_is_shared(filter))
        return false;
    const uint8_t *start = filter.data + SHARE_PREFIX_LEN;
    size_t rest = filter.len - SHARE_PREFIX_LEN;
    const uint8_t *slash = memchr(start, '/', rest);
    if (!slash || slash == start)
        return false; /* no FILTER, or an empty GROUP */
    *group = (struct mqtt_bytes){start, (size_t)(slash - start)};
    *inner = (struct mqtt_bytes){slash + 1, rest - group->len - 1};
    /* [MQTT-4.8.2-1] [MQTT-4.8.2-2]: no wildcard in GROUP, FILTER non-empty */
    if (memchr(group->data, '+', group->len) || memchr(group->data, '#', group->len))
        return false;
    return inner->len > 0 && mqtt_topic_filter_check(*inner) == MQTT_OK;
}

static struct store_bytes group_key(const struct share_group *g)
{
    return (struct store_bytes){g->name, g->name_len};
}

static struct mqtt_bytes group_inner(const struct share_group *g)
{
    return (struct mqtt_bytes){g->name + g->inner_off, g->name_len - g->inner_off};
}

/* ---- Index ---- */

struct share_index *share_index_new(void)
{
    struct share_index *idx = calloc(1, sizeof(*idx));
    if (!idx)
        return NULL;
    idx->trie = trie_new();
    if (!idx->trie) {
        free(idx);
        return NULL;
    }
    hashtable_init(&idx->groups);
    idx->is_loading = true;
    return idx;
}

static void free_group(struct share_group *g)
{
    while (g->members) {
        struct share_member *m = g->members;
        g->members = m->next;
        free(m);
    }
    free(g);
}

void share_index_free(struct share_index *idx)
{
    if (!idx)
        return;
    struct hashtable_node *n = hashtable_take_all(&idx->groups);
    while (n) {
        struct hashtable_node *next = n->next;
        free_group(hashtable_entry(n, struct share_group, link));
        n = next;
    }
    hashtable_deinit(&idx->groups);
    trie_free(idx->trie);
    free(idx->targets);
    free(idx);
}

size_t share_subscription_count(const struct share_index *idx)
{
    return idx->member_total;
}

size_t share_group_count(const struct share_index *idx)
{
    return hashtable_count(&idx->groups);
}

static struct share_group *find_group(const struct share_index *idx, struct mqtt_bytes name)
{
    struct hashtable_node *n = hashtable_find(&idx->groups, name.data, name.len);
    return n ? hashtable_entry(n, struct share_group, link) : NULL;
}

static uint8_t group_max_qos(const struct share_group *g)
{
    return g->qos_count[2] ? 2 : g->qos_count[1] ? 1 : 0;
}

/* shared_subscriptions false: groups loaded from the store stay in the index
 * (and their queues in the store) but get no messages and hand none out. */
static bool is_serving(const struct session_mgr *mgr)
{
    return mgr->config.shared_subscription_available;
}

/* ---- The ring of connected members ---- */

static bool member_is_online(const struct share_member *m)
{
    return m->ring_next != NULL;
}

/* Joins the ring just before the cursor: the newcomer's turn comes last in
 * the current round, so nobody's turn is skipped. */
static void ring_add(struct share_group *g, struct share_member *m)
{
    if (member_is_online(m))
        return;
    if (!g->cursor) {
        m->ring_next = m->ring_prev = m;
        g->cursor = m;
    } else {
        m->ring_next = g->cursor;
        m->ring_prev = g->cursor->ring_prev;
        m->ring_prev->ring_next = m;
        g->cursor->ring_prev = m;
    }
    g->online_count++;
}

static void ring_remove(struct share_group *g, struct share_member *m)
{
    if (!member_is_online(m))
        return;
    if (m->ring_next == m) {
        g->cursor = NULL;
    } else {
        m->ring_prev->ring_next = m->ring_next;
        m->ring_next->ring_prev = m->ring_prev;
        if (g->cursor == m)
            g->cursor = m->ring_next;
    }
    m->ring_next = m->ring_prev = NULL;
    g->online_count--;
}

/* ---- The group queue's memory follows the store ---- */

struct group_watch {
    struct session_mgr *mgr;
    size_t name_len;
    uint8_t name[];
};

static int reload_counts(void *arg, struct store_bytes group, uint64_t last_seq, uint64_t count,
                         uint64_t bytes)
{
    (void)group;
    struct share_group *g = arg;
    if (last_seq > g->last_seq)
        g->last_seq = last_seq;
    g->queued_count = count > UINT32_MAX ? UINT32_MAX : (uint32_t)count;
    g->queued_bytes = bytes > SIZE_MAX ? SIZE_MAX : (size_t)bytes;
    g->has_store_queue = true;
    g->backlog = true;
    return 0;
}

/* Reads g's queue position and size from the store (no entries: empty). */
static int load_queue_info(struct session_mgr *mgr, struct share_group *g)
{
    g->queued_count = 0;
    g->queued_bytes = 0;
    struct store_bytes key = group_key(g);
    return store_group_queue_stats_foreach(mgr->store, &key, reload_counts, g);
}

/* A group made at runtime (not at start-up, where share_recover() reads all
 * queues at once) may find a queue in the store: it came back after a failed
 * commit, or rejoins in the turn that ended it. Read on first use, never at
 * creation: a group may be created inside a store walk (a session read back
 * after a failed commit), where no other read may run. */
static void ensure_queue_info(struct session_mgr *mgr, struct share_group *g)
{
    if (!g->needs_queue_info)
        return;
    g->needs_queue_info = false;
    int rc = load_queue_info(mgr, g);
    if (rc < 0)
        log_error("group %s: could not read its queue from the store: %s", (char *)g->name,
                  store_strerror(rc));
}

static void schedule_some_member(struct session_mgr *mgr, struct share_group *g)
{
    if (g->cursor)
        deliver_schedule_refill(mgr, g->cursor->session);
}

/* The batch that touched the group's queue committed or failed. On failure
 * the store still holds every entry the batch meant to take or delete and
 * none it meant to add: read the queue again from its start. */
static void on_group_commit(void *arg, int status)
{
    struct group_watch *w = arg;
    struct session_mgr *mgr = w->mgr;
    struct share_group *g = NULL;
    if (status != 0 && !mgr->is_closing)
        g = find_group(mgr->shares, (struct mqtt_bytes){w->name, w->name_len});
    if (g) {
        g->read_seq = 0;
        int rc = load_queue_info(mgr, g);
        if (rc < 0)
            log_error("group %s: could not read its queue back: %s", (char *)g->name,
                      store_strerror(rc));
        g->backlog = true;
        schedule_some_member(mgr, g);
    }
    free(w);
}

/* Registers on_group_commit once per batch that touches g's queue.
 * Returns 0 or -ENOMEM (the batch is then failed: nothing of it is written). */
static int watch_group(struct session_mgr *mgr, struct share_group *g)
{
    if (g->touched_gen == mgr->batch_gen + 1)
        return 0;
    struct store_batch *b = mgr_batch(mgr);
    struct group_watch *w = malloc(sizeof(*w) + g->name_len);
    if (!b || !w || store_batch_on_commit(b, on_group_commit, w) != 0) {
        free(w);
        store_batch_fail(b, -ENOMEM);
        return -ENOMEM;
    }
    w->mgr = mgr;
    w->name_len = g->name_len;
    memcpy(w->name, g->name, g->name_len);
    g->touched_gen = mgr->batch_gen + 1;
    return 0;
}

/* ---- Membership ---- */

static struct share_group *group_new(struct session_mgr *mgr, struct mqtt_bytes filter,
                                     struct mqtt_bytes inner)
{
    struct share_index *idx = mgr->shares;
    struct share_group *g = calloc(1, sizeof(*g) + filter.len + 1);
    if (!g)
        return NULL;
    memcpy(g->name, filter.data, filter.len);
    g->name_len = filter.len;
    g->inner_off = (size_t)(inner.data - filter.data);
    if (trie_subscribe(idx->trie, group_inner(g), g, 0) < 0) {
        free(g);
        return NULL;
    }
    if (hashtable_insert(&idx->groups, &g->link, g->name, g->name_len) != 0) {
        trie_unsubscribe(idx->trie, group_inner(g), g);
        free(g);
        return NULL;
    }
    g->needs_queue_info = !idx->is_loading;
    return g;
}

/* The group ends with its last member: its queue goes too (share.h). */
static void group_end(struct session_mgr *mgr, struct share_group *g)
{
    struct share_index *idx = mgr->shares;
    if (!mgr->is_closing)
        ensure_queue_info(mgr, g);
    if (g->has_store_queue && !mgr->is_closing) {
        struct store_batch *b = mgr_batch(mgr);
        if (!b || store_batch_delete_group_queue(b, group_key(g)) != 0)
            log_error("group %s: could not record the deletion of its queue", (char *)g->name);
        else if (g->queued_count > 0)
            log_notice("group %s: last member left; %u queued messages deleted", (char *)g->name,
                       (unsigned)g->queued_count);
    }
    trie_unsubscribe(idx->trie, group_inner(g), g);
    hashtable_remove(&idx->groups, &g->link);
    free_group(g);
}

static struct share_member *find_member(const struct session *s, const struct share_group *g)
{
    for (struct share_member *m = s->shares; m; m = m->session_next)
        if (m->group == g)
            return m;
    return NULL;
}

static struct share_member *member_add(struct share_index *idx, struct share_group *g,
                                       struct session *s, uint8_t qos)
{
    struct share_member *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->group = g;
    m->session = s;
    m->qos = qos;
    m->next = g->members;
    if (g->members)
        g->members->prev = m;
    g->members = m;
    m->session_next = s->shares;
    s->shares = m;
    g->member_count++;
    g->qos_count[qos]++;
    idx->member_total++;
    return m;
}

int share_join(struct session_mgr *mgr, struct session *s, struct mqtt_bytes filter, uint32_t grant)
{
    struct mqtt_bytes group, inner;
    uint8_t qos = grant & SUB_QOS_MASK;
    if (!share_parse(filter, &group, &inner) || qos > 2)
        return -EINVAL; /* subscribe.c refuses these first */
    struct share_group *g = find_group(mgr->shares, filter);
    struct share_member *m = g ? find_member(s, g) : NULL;
    if (m) { /* a new QoS for the same subscription */
        g->qos_count[m->qos]--;
        g->qos_count[qos]++;
        m->qos = qos;
        m->sub_id = grant_sub_id(grant);
        m->is_retain_as_published = (grant & SUB_RETAIN_AS_PUBLISHED) != 0;
        return 0;
    }
    bool is_new_group = g == NULL;
    if (!g && !(g = group_new(mgr, filter, inner)))
        return -ENOMEM;
    m = member_add(mgr->shares, g, s, qos);
    if (m) {
        m->sub_id = grant_sub_id(grant);
        m->is_retain_as_published = (grant & SUB_RETAIN_AS_PUBLISHED) != 0;
    }
    if (!m) {
        if (is_new_group)
            group_end(mgr, g);
        return -ENOMEM;
    }
    if (session_is_online(s)) {
        ring_add(g, m);
        ensure_queue_info(mgr, g);
        if (g->backlog && is_serving(mgr))
            deliver_schedule_refill(mgr, s);
    }
    return 0;
}

static void unlink_from_session(struct session *s, struct share_member *m)
{
    for (struct share_member **p = &s->shares; *p; p = &(*p)->session_next) {
        if (*p == m) {
            *p = m->session_next;
            return;
        }
    }
}

void share_leave(struct session_mgr *mgr, struct session *s, struct mqtt_bytes filter)
{
    struct share_group *g = find_group(mgr->shares, filter);
    struct share_member *m = g ? find_member(s, g) : NULL;
    if (!m)
        return;
    ring_remove(g, m);
    unlink_from_session(s, m);
    if (m->prev)
        m->prev->next = m->next;
    else
        g->members = m->next;
    if (m->next)
        m->next->prev = m->prev;
    g->member_count--;
    g->qos_count[m->qos]--;
    mgr->shares->member_total--;
    free(m);
    if (g->member_count == 0)
        group_end(mgr, g);
}

void share_session_online(struct session_mgr *mgr, struct session *s)
{
    bool has_backlog = false;
    for (struct share_member *m = s->shares; m; m = m->session_next) {
        ring_add(m->group, m);
        ensure_queue_info(mgr, m->group);
        has_backlog |= m->group->backlog;
    }
    if (has_backlog && is_serving(mgr))
        deliver_schedule_refill(mgr, s);
}

void share_session_offline(struct session_mgr *mgr, struct session *s)
{
    (void)mgr;
    for (struct share_member *m = s->shares; m; m = m->session_next)
        ring_remove(m->group, m);
}

bool share_has_backlog(struct session_mgr *mgr, struct session *s)
{
    if (!is_serving(mgr))
        return false;
    for (struct share_member *m = s->shares; m; m = m->session_next) {
        ensure_queue_info(mgr, m->group);
        if (m->group->backlog)
            return true;
    }
    return false;
}

/* ---- Routing ---- */

/* The next connected member that may read m, advancing the round robin;
 * NULL when no connected member may. At most one turn of the ring. */
static struct share_member *next_reader(struct session_mgr *mgr, struct share_group *g,
                                        const struct msg *m)
{
    for (uint32_t tries = 0; tries < g->online_count && g->cursor; tries++) {
        struct share_member *candidate = g->cursor;
        g->cursor = candidate->ring_next;
        if (output_may_read(mgr, candidate->session->client, m))
            return candidate;
    }
    return NULL;
}

static int add_target(struct share_index *idx, struct share_target t)
{
    if (idx->target_count == idx->target_cap) {
        size_t cap = idx->target_cap ? idx->target_cap * 2 : 16;
        struct share_target *a = realloc(idx->targets, cap * sizeof(*a));
        if (!a)
            return -ENOMEM;
        idx->targets = a;
        idx->target_cap = cap;
    }
    idx->targets[idx->target_count++] = t;
    return 0;
}

struct match_ctx {
    struct session_mgr *mgr;
    const struct msg *m;
    int err;
};

/* One matching group: its member for m, the group queue, or nobody. */
static void choose_target(void *subscriber, uint32_t grant, void *arg)
{
    (void)grant;
    struct match_ctx *ctx = arg;
    struct share_group *g = subscriber;
    const struct msg *m = ctx->m;
    if (ctx->err != 0)
        return;
    struct share_target t = {.group = g};
    if (g->online_count > 0) {
        struct share_member *member = next_reader(ctx->mgr, g, m);
        if (!member)
            return; /* no connected member may read it: nobody of the group gets it */
        t.member = member->session;
        t.sub_id = member->sub_id;
        t.qos = m->qos < member->qos ? m->qos : member->qos;
        t.is_retain_as_published = member->is_retain_as_published;
    } else {
        uint8_t max = group_max_qos(g);
        t.qos = m->qos < max ? m->qos : max;
        if (t.qos == 0)
            return; /* QoS 0 is not queued for offline members (as for sessions) */
    }
    ctx->err = add_target(ctx->mgr->shares, t);
}

int share_route_match(struct session_mgr *mgr, const struct msg *m)
{
    struct share_index *idx = mgr->shares;
    idx->target_count = 0;
    if (hashtable_count(&idx->groups) == 0 || !is_serving(mgr))
        return 0;
    struct match_ctx ctx = {mgr, m, 0};
    trie_match(idx->trie, (struct mqtt_bytes){m->topic, m->topic_len}, choose_target, &ctx);
    return ctx.err;
}

size_t share_route_targets(const struct session_mgr *mgr)
{
    return mgr->shares->target_count;
}

size_t share_route_records(const struct session_mgr *mgr, const struct msg *m)
{
    (void)m;
    const struct share_index *idx = mgr->shares;
    size_t n = 0;
    for (size_t i = 0; i < idx->target_count; i++) {
        const struct share_target *t = &idx->targets[i];
        if (t->qos > 0 && (!t->member || t->member->persistent))
            n++;
    }
    return n;
}

/* Queue limits as a session's (max_queued_messages, max_queued_bytes): a
 * message that does not fit is dropped, counted and logged once a minute. */
static bool group_queue_full(struct session_mgr *mgr, struct share_group *g, const struct msg *m)
{
    uint32_t max = mgr->config.max_queued_messages;
    size_t max_bytes = mgr->config.max_queued_bytes;
    if (!(max && g->queued_count >= max) &&
        !(max_bytes && g->queued_bytes + m->payload_len > max_bytes))
        return false;
    uint64_t now_s = (uint64_t)time(NULL);
    mgr->dropped_queue_full++;
    g->drops++;
    if (g->drop_logged_s == 0 || now_s >= g->drop_logged_s + LIMIT_LOG_INTERVAL_S) {
        log_notice("group %s: queue full (%u messages, %zu bytes): dropping messages (%llu "
                   "dropped since the last notice)",
                   (char *)g->name, (unsigned)g->queued_count, g->queued_bytes,
                   (unsigned long long)g->drops);
        g->drop_logged_s = now_s;
        g->drops = 0;
    }
    return true;
}

/* No member is connected: m waits in the group's queue, in this batch,
 * with the RETAIN it was published with (published_retain): the member that
 * takes it applies its own Retain As Published. */
static int enqueue(struct session_mgr *mgr, struct share_group *g, struct msg *m, uint8_t qos,
                   bool published_retain)
{
    ensure_queue_info(mgr, g); /* last_seq: appends continue above the store's */
    if (group_queue_full(mgr, g, m))
        return 0;
    int rc = deliver_store_body(mgr, m);
    struct store_batch *b = mgr_batch(mgr);
    if (rc == 0 && !b)
        rc = -ENOMEM;
    uint64_t seq = g->last_seq + 1;
    if (rc == 0)
        rc = store_batch_group_queue_append(b, group_key(g), seq, m->store_id, qos,
                                            published_retain);
    if (rc == 0)
        rc = watch_group(mgr, g);
    if (rc != 0)
        return rc;
    g->last_seq = seq;
    g->has_store_queue = true;
    g->backlog = true;
    g->queued_gen = (uint32_t)mgr->batch_gen;
    g->queued_count++;
    g->queued_bytes += m->payload_len;
    return 0;
}

int share_route_deliver(struct session_mgr *mgr, struct msg *m, bool published_retain)
{
    struct share_index *idx = mgr->shares;
    int rc = 0;
    for (size_t i = 0; i < idx->target_count; i++) {
        const struct share_target *t = &idx->targets[i];
        struct delivery d = {.qos = t->qos,
                             .retain = published_retain && t->is_retain_as_published,
                             .sub_id_count = t->sub_id ? 1 : 0,
                             .sub_ids = &t->sub_id};
        int r = t->member ? deliver(mgr, t->member, m, &d)
                          : enqueue(mgr, t->group, m, t->qos, published_retain);
        if (r != 0 && rc == 0)
            rc = r;
    }
    idx->target_count = 0;
    return rc;
}

/* ---- Taking from the group queue ---- */

struct pull_ctx {
    struct session_mgr *mgr;
    struct share_group *g;
    struct share_member *member;
    bool is_full; /* the member has no more room: stop */
};

/* store_group_queue_read() callback value that stops the read. */
#define PULL_STOP 1

/* Hands one queued entry to the member: appended to the member's queue (or
 * sent) before it is deleted from the group's, in the same batch, so the
 * body's reference count never touches 0 in between. */
static int take_entry(struct pull_ctx *ctx, const struct store_queue_item *item)
{
    struct session_mgr *mgr = ctx->mgr;
    struct share_group *g = ctx->g;
    const struct store_message *sm = item->message;
    int rc = 0;
    if (sm) {
        struct msg *m = msg_new_v5((struct mqtt_bytes){sm->topic.data, sm->topic.len},
                                   (struct mqtt_bytes){sm->payload.data, sm->payload.len},
                                   (struct mqtt_bytes){sm->props.data, sm->props.len},
                                   sm->expiry_at_s, sm->qos, sm->retain);
        if (!m)
            return -ENOMEM;
        m->store_id = item->entry.msg_id; /* the body is stored: reference it */
        m->store_batch_gen = mgr->batch_gen;
        uint8_t member_qos = ctx->member->qos;
        struct delivery d = {
            .qos = item->entry.qos < member_qos ? item->entry.qos : member_qos,
            .retain = item->entry.retain && ctx->member->is_retain_as_published,
            .sub_id_count = ctx->member->sub_id ? 1 : 0,
            .sub_ids = &ctx->member->sub_id,
        };
        rc = deliver(mgr, ctx->member->session, m, &d);
        if (g->queued_count > 0)
            g->queued_count--;
        g->queued_bytes = g->queued_bytes > m->payload_len ? g->queued_bytes - m->payload_len : 0;
        msg_unref(m);
    } else {
        log_error("group %s: queue entry %llu has no message body; dropped", (char *)g->name,
                  (unsigned long long)item->seq);
    }
    struct store_batch *b = mgr_batch(mgr);
    if (rc == 0)
        rc = b ? store_batch_group_queue_delete(b, group_key(g), item->seq) : -ENOMEM;
    return rc == 0 ? watch_group(mgr, g) : rc;
}

static int pull_item(void *arg, const struct store_queue_item *item)
{
    struct pull_ctx *ctx = arg;
    ctx->g->read_seq = item->seq + 1;
    int rc = take_entry(ctx, item);
    if (rc == 0 && deliver_send_room(ctx->mgr, ctx->member->session) == 0) {
        ctx->is_full = true;
        return PULL_STOP;
    }
    return rc;
}

static void pull_group(struct session_mgr *mgr, struct share_member *member)
{
    struct share_group *g = member->group;
    ensure_queue_info(mgr, g);
    uint32_t room = deliver_send_room(mgr, member->session);
    if (!g->backlog || room == 0)
        return;
    struct pull_ctx ctx = {mgr, g, member, false};
    int n = store_group_queue_read(mgr->store, group_key(g), g->read_seq, room, pull_item, &ctx);
    if (ctx.is_full)
        return; /* the member's acks bring it back (deliver.c top_up) */
    if (n < 0) {
        log_error("group %s: reading its queue: %s", (char *)g->name, store_strerror(n));
        return;
    }
    enum refill_wait appends = deliver_appends_wait(mgr, g->queued_gen);
    if ((uint32_t)n < room && appends != REFILL_ANYTIME) {
        deliver_schedule(mgr, member->session, appends); /* the newest are not visible yet */
    } else if ((uint32_t)n < room) {
        g->backlog = false; /* the whole queue is taken (or deleted in the open batch) */
        g->queued_count = 0;
        g->queued_bytes = 0;
    } else {
        deliver_schedule_topup(mgr, member->session); /* entries were dropped: read on */
    }
}

void share_pull(struct session_mgr *mgr, struct session *s)
{
    if (!is_serving(mgr))
        return;
    for (struct share_member *m = s->shares; m; m = m->session_next)
        if (deliver_send_room(mgr, s) > 0)
            pull_group(mgr, m);
}

/* ---- Start-up ---- */

struct recover_ctx {
    struct session_mgr *mgr;
    uint64_t queued; /* entries of the groups that exist */
    /* Orphans: queues of groups that no longer exist, collected during the
     * walk (a store callback cannot record into the batch's reads) */
    struct store_bytes *orphans;
    size_t orphan_count, orphan_cap;
    int err;
};

static int recover_group(void *arg, struct store_bytes group, uint64_t last_seq, uint64_t count,
                         uint64_t bytes)
{
    struct recover_ctx *ctx = arg;
    struct share_group *g =
        find_group(ctx->mgr->shares, (struct mqtt_bytes){group.data, group.len});
    if (g) {
        ctx->queued += count;
        return reload_counts(g, group, last_seq, count, bytes);
    }
    if (ctx->orphan_count == ctx->orphan_cap) {
        size_t cap = ctx->orphan_cap ? ctx->orphan_cap * 2 : 8;
        struct store_bytes *a = realloc(ctx->orphans, cap * sizeof(*a));
        if (!a)
            return -ENOMEM;
        ctx->orphans = a;
        ctx->orphan_cap = cap;
    }
    uint8_t *copy = malloc(group.len);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, group.data, group.len);
    ctx->orphans[ctx->orphan_count++] = (struct store_bytes){copy, group.len};
    log_notice("group %.*s: no member left (its last one was a clean session, or the broker "
               "stopped before the group's end was committed): %llu queued messages deleted",
               (int)group.len, (const char *)group.data, (unsigned long long)count);
    return 0;
}

int share_recover(struct session_mgr *mgr, char *err, size_t err_len)
{
    struct recover_ctx ctx = {.mgr = mgr};
    mgr->shares->is_loading = false;
    int rc = store_group_queue_stats_foreach(mgr->store, NULL, recover_group, &ctx);
    struct store_batch *b = ctx.orphan_count > 0 ? mgr_batch(mgr) : NULL;
    for (size_t i = 0; i < ctx.orphan_count; i++) {
        if (rc == 0)
            rc = b ? store_batch_delete_group_queue(b, ctx.orphans[i]) : -ENOMEM;
        free((void *)ctx.orphans[i].data);
    }
    free(ctx.orphans);
    if (rc == 0 && !is_serving(mgr) && share_group_count(mgr->shares) > 0)
        log_notice("shared_subscriptions is false: %zu shared subscriptions in %zu groups and "
                   "their %llu queued messages are kept in the store but get no messages until "
                   "it is true again",
                   share_subscription_count(mgr->shares), share_group_count(mgr->shares),
                   (unsigned long long)ctx.queued);
    if (rc != 0)
        snprintf(err, err_len, "loading the group queues: %s", store_strerror(rc));
    return rc;
}
