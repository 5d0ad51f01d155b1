/*
 * test_trie.c - the subscription index (src/session/trie.h): wildcards, the
 * '$' rule, empty levels, updates, unsubscribe and pruning, scale, depth, and
 * a randomized cross-check against mqtt_topic_matches().
 *
 * Not for: filter validation (test_mqtt_topic.c) or the session manager.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <malloc.h>
#include <cmocka.h>

#include "mqtt_topic.h"
#include "trie.h"

/* ---- helpers ---------------------------------------------------------- */

#define MAX_CALLS 64

struct calls {
    size_t n;
    void *subscriber[MAX_CALLS];
    uint8_t qos[MAX_CALLS];
};

static void record(void *subscriber, uint32_t qos, void *arg)
{
    struct calls *c = arg;
    assert_true(c->n < MAX_CALLS);
    c->subscriber[c->n] = subscriber;
    c->qos[c->n] = (uint8_t)qos;
    c->n++;
}

struct counter {
    size_t total, with_qos;
    uint8_t qos;
};

static void count_calls(void *subscriber, uint32_t qos, void *arg)
{
    (void)subscriber;
    struct counter *c = arg;
    c->total++;
    c->with_qos += qos == c->qos;
}

static void *sub_id(size_t i)
{
    return (void *)(uintptr_t)(i + 1);
}

static int sub(struct trie *t, const char *filter, size_t id, uint8_t qos)
{
    return trie_subscribe(t, mqtt_bytes_from_cstr(filter), sub_id(id), qos);
}

static int unsub(struct trie *t, const char *filter, size_t id)
{
    return trie_unsubscribe(t, mqtt_bytes_from_cstr(filter), sub_id(id));
}

static struct calls match(const struct trie *t, const char *topic)
{
    struct calls c = {0};
    trie_match(t, mqtt_bytes_from_cstr(topic), record, &c);
    return c;
}

/* How many calls went to subscriber id. */
static size_t calls_for(const struct calls *c, size_t id)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n; i++)
        n += c->subscriber[i] == sub_id(id);
    return n;
}

/* True if exactly the one filter subscribed (as id 0) matches topic. */
static bool single_filter_matches(const char *filter, const char *topic)
{
    struct trie *t = trie_new();
    assert_non_null(t);
    assert_int_equal(sub(t, filter, 0, 1), 1);
    struct calls c = match(t, topic);
    trie_free(t);
    assert_true(c.n <= 1);
    return c.n == 1;
}

/*
 * Heap in use. Under ASan the count is exact. glibc's mallinfo2() counts
 * chunks parked in its per-thread cache as in use, so without ASan the
 * comparison allows HEAP_SLACK bytes of such noise: far below what the
 * unpruned nodes of PRUNE_FILTERS filters would hold.
 */
#if defined(__SANITIZE_ADDRESS__)
#define HEAP_EXACT 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HEAP_EXACT 1
#endif
#endif
#if defined(HEAP_EXACT)
/* From <sanitizer/allocator_interface.h>, which gcc 12 does not install. */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif
#define HEAP_SLACK    (64 * 1024)
#define PRUNE_FILTERS 10000

static size_t heap_in_use(void)
{
#if defined(HEAP_EXACT)
    return __sanitizer_get_current_allocated_bytes();
#else
    return mallinfo2().uordblks;
#endif
}

static void assert_heap_back_to(size_t before)
{
    size_t now = heap_in_use();
#if defined(HEAP_EXACT)
    assert_int_equal(now, before);
#else
    assert_true(now <= before + HEAP_SLACK);
#endif
}

static int setup_trie(void **state)
{
    *state = trie_new();
    return *state == NULL ? -1 : 0;
}

static int teardown_trie(void **state)
{
    trie_free(*state);
    return 0;
}

/* ---- matching --------------------------------------------------------- */

static void test_exact_filter_matches_only_the_same_name(void **state)
{
    (void)state;
    assert_true(single_filter_matches("a/b/c", "a/b/c"));
    assert_false(single_filter_matches("a/b/c", "a/b"));
    assert_false(single_filter_matches("a/b/c", "a/b/c/d"));
    assert_false(single_filter_matches("a/b/c", "a/b/cc"));
    assert_false(single_filter_matches("a/b/c", "A/b/c"));
    assert_true(single_filter_matches("sport", "sport"));
    assert_false(single_filter_matches("sport", "sport/"));
}

static void test_plus_matches_exactly_one_level_MQTT_4_7_1_3(void **state)
{
    (void)state;
    assert_true(single_filter_matches("a/+/c", "a/b/c"));
    assert_true(single_filter_matches("a/+/c", "a//c"));
    assert_false(single_filter_matches("a/+/c", "a/b/d/c"));
    assert_false(single_filter_matches("a/+", "a"));
    assert_true(single_filter_matches("a/+", "a/"));
    assert_true(single_filter_matches("+", "a"));
    assert_false(single_filter_matches("+", "a/b"));
    assert_true(single_filter_matches("+/+", "a/b"));
    assert_true(single_filter_matches("sport/tennis/+", "sport/tennis/player1"));
    assert_false(single_filter_matches("sport/tennis/+", "sport/tennis/player1/ranking"));
}

static void test_hash_matches_parent_and_every_level_below_MQTT_4_7_1_2(void **state)
{
    (void)state;
    assert_true(single_filter_matches("a/#", "a"));
    assert_true(single_filter_matches("a/#", "a/"));
    assert_true(single_filter_matches("a/#", "a/b"));
    assert_true(single_filter_matches("a/#", "a/b/c/d"));
    assert_false(single_filter_matches("a/#", "b/a"));
    assert_false(single_filter_matches("a/#", "ab"));
    assert_true(single_filter_matches("#", "a"));
    assert_true(single_filter_matches("#", "a/b/c"));
    assert_true(single_filter_matches("#", "/"));
    assert_true(single_filter_matches("+/#", "a"));
    assert_true(single_filter_matches("a/+/#", "a/b"));
    assert_false(single_filter_matches("a/+/#", "a"));
}

static void test_dollar_names_not_matched_by_leading_wildcard_MQTT_4_7_2_1(void **state)
{
    (void)state;
    assert_false(single_filter_matches("#", "$SYS/broker"));
    assert_false(single_filter_matches("+/broker", "$SYS/broker"));
    assert_false(single_filter_matches("+", "$SYS"));
    assert_false(single_filter_matches("+/#", "$SYS/broker"));
    assert_true(single_filter_matches("$SYS/#", "$SYS/broker"));
    assert_true(single_filter_matches("$SYS/#", "$SYS"));
    assert_true(single_filter_matches("$SYS/+", "$SYS/broker"));
    assert_true(single_filter_matches("$SYS/broker", "$SYS/broker"));
    /* Only the first level counts. */
    assert_true(single_filter_matches("a/+", "a/$x"));
    assert_true(single_filter_matches("a/#", "a/$x"));
    assert_true(single_filter_matches("#", "a$"));
}

static void test_empty_levels_are_levels(void **state)
{
    (void)state;
    assert_true(single_filter_matches("/a", "/a"));
    assert_true(single_filter_matches("+/a", "/a"));
    assert_true(single_filter_matches("/+", "/a"));
    assert_false(single_filter_matches("a", "/a"));
    assert_true(single_filter_matches("a/", "a/"));
    assert_false(single_filter_matches("a/", "a"));
    assert_false(single_filter_matches("a", "a/"));
    assert_true(single_filter_matches("+/+", "/"));
    assert_false(single_filter_matches("+", "/"));
    assert_true(single_filter_matches("/#", "/"));
    assert_true(single_filter_matches("//", "//"));
    assert_false(single_filter_matches("//", "/"));
    assert_true(single_filter_matches("+//+", "//"));
    assert_false(single_filter_matches("+//+", "///"));
}

static void test_overlapping_filters_call_once_per_pair(void **state)
{
    struct trie *t = *state;
    assert_int_equal(sub(t, "a/b", 0, 0), 1);
    assert_int_equal(sub(t, "a/+", 0, 1), 1);
    assert_int_equal(sub(t, "a/#", 0, 2), 1);
    assert_int_equal(sub(t, "#", 0, 1), 1);
    assert_int_equal(sub(t, "a/b", 1, 2), 1);
    assert_int_equal(sub(t, "x", 2, 2), 1);
    struct calls c = match(t, "a/b");
    assert_int_equal(c.n, 5);
    assert_int_equal(calls_for(&c, 0), 4);
    assert_int_equal(calls_for(&c, 1), 1);
    assert_int_equal(calls_for(&c, 2), 0);
    unsigned qos_seen = 0;
    for (size_t i = 0; i < c.n; i++)
        qos_seen |= 1u << c.qos[i];
    assert_int_equal(qos_seen, 7);
}

/* ---- subscribe, unsubscribe ------------------------------------------- */

static void test_subscribe_same_pair_again_updates_qos(void **state)
{
    struct trie *t = *state;
    assert_int_equal(sub(t, "a/+", 0, 0), 1);
    assert_int_equal(sub(t, "a/+", 0, 2), 0);
    assert_int_equal(trie_count(t), 1);
    struct calls c = match(t, "a/b");
    assert_int_equal(c.n, 1);
    assert_int_equal(c.qos[0], 2);
    assert_int_equal(sub(t, "a/+", 1, 1), 1);
    assert_int_equal(trie_count(t), 2);
}

static void test_unsubscribe_unknown_pair_is_enoent(void **state)
{
    struct trie *t = *state;
    assert_int_equal(unsub(t, "a", 0), -ENOENT);
    assert_int_equal(sub(t, "a/b", 0, 1), 1);
    assert_int_equal(unsub(t, "a", 0), -ENOENT);     /* inner node, no pair */
    assert_int_equal(unsub(t, "a/b/c", 0), -ENOENT); /* deeper than any node */
    assert_int_equal(unsub(t, "a/+", 0), -ENOENT);
    assert_int_equal(unsub(t, "a/b", 1), -ENOENT); /* other subscriber */
    assert_int_equal(trie_count(t), 1);
    assert_int_equal(match(t, "a/b").n, 1);
    assert_int_equal(unsub(t, "a/b", 0), 0);
    assert_int_equal(unsub(t, "a/b", 0), -ENOENT);
    assert_int_equal(trie_count(t), 0);
}

static void test_unsubscribe_keeps_other_pairs(void **state)
{
    struct trie *t = *state;
    for (size_t i = 0; i < 20; i++)
        assert_int_equal(sub(t, "a/b", i, (uint8_t)(i % 3)), 1);
    assert_int_equal(sub(t, "a/b/c", 0, 0), 1);
    assert_int_equal(sub(t, "a", 0, 0), 1);
    for (size_t i = 0; i < 20; i += 2)
        assert_int_equal(unsub(t, "a/b", i), 0);
    assert_int_equal(trie_count(t), 12);
    struct calls c = match(t, "a/b");
    assert_int_equal(c.n, 10);
    for (size_t i = 0; i < 20; i++)
        assert_int_equal(calls_for(&c, i), i % 2);
    for (size_t i = 0; i < c.n; i++)
        assert_int_equal(c.qos[i], ((uintptr_t)c.subscriber[i] - 1) % 3);
    assert_int_equal(match(t, "a/b/c").n, 1);
    assert_int_equal(match(t, "a").n, 1);
}

static const char *const churn_filters[] = {
    "a/b/c", "a/+/c", "a/#", "#", "+", "/", "+/+", "a/b", "$SYS/x/#", "a//c", "x/y/z/w/v",
};
#define CHURN_FILTERS (sizeof(churn_filters) / sizeof(churn_filters[0]))

static void churn_once(struct trie *t)
{
    for (size_t id = 0; id < 50; id++) {
        for (size_t f = 0; f < CHURN_FILTERS; f++)
            assert_int_equal(sub(t, churn_filters[f], id, 1), 1);
    }
    char filter[64];
    for (size_t i = 0; i < PRUNE_FILTERS; i++) {
        snprintf(filter, sizeof(filter), "u/%zu/+/x/%zu", i, i % 7);
        assert_int_equal(sub(t, filter, i, 0), 1);
    }
    assert_int_equal(trie_count(t), 50 * CHURN_FILTERS + PRUNE_FILTERS);
    for (size_t f = 0; f < CHURN_FILTERS; f++) {
        for (size_t id = 0; id < 50; id++)
            assert_int_equal(unsub(t, churn_filters[f], id), 0);
    }
    for (size_t i = 0; i < PRUNE_FILTERS; i++) {
        snprintf(filter, sizeof(filter), "u/%zu/+/x/%zu", i, i % 7);
        assert_int_equal(unsub(t, filter, i), 0);
    }
}

/* Pruning: after every pair is gone, the trie holds no more heap than new. */
static void test_unsubscribe_all_prunes_every_node(void **state)
{
    struct trie *t = *state;
    size_t before = heap_in_use();
    churn_once(t);
    assert_int_equal(trie_count(t), 0);
    assert_int_equal(match(t, "a/b/c").n, 0);
    assert_heap_back_to(before);
    churn_once(t);
    assert_heap_back_to(before);
}

static void test_free_null_does_nothing(void **state)
{
    (void)state;
    trie_free(NULL);
}

/* ---- scale and depth -------------------------------------------------- */

#define MANY 10000

static void test_10000_subscribers_on_distinct_topics(void **state)
{
    struct trie *t = *state;
    char topic[64];
    for (size_t i = 0; i < MANY; i++) {
        snprintf(topic, sizeof(topic), "dev/%zu/temp", i);
        assert_int_equal(sub(t, topic, i, 1), 1);
    }
    assert_int_equal(sub(t, "dev/+/temp", MANY, 0), 1);
    assert_int_equal(trie_count(t), MANY + 1);
    for (size_t i = 0; i < MANY; i++) {
        snprintf(topic, sizeof(topic), "dev/%zu/temp", i);
        struct calls c = match(t, topic);
        assert_int_equal(c.n, 2);
        assert_int_equal(calls_for(&c, i), 1);
        assert_int_equal(calls_for(&c, MANY), 1);
    }
    assert_int_equal(match(t, "dev/10000/temp").n, 1);
    for (size_t i = 0; i < MANY; i += 2) {
        snprintf(topic, sizeof(topic), "dev/%zu/temp", i);
        assert_int_equal(unsub(t, topic, i), 0);
    }
    for (size_t i = 0; i < MANY; i++) {
        snprintf(topic, sizeof(topic), "dev/%zu/temp", i);
        assert_int_equal(calls_for(&(struct calls){0}, i), 0);
        struct calls c = match(t, topic);
        assert_int_equal(calls_for(&c, i), i % 2);
    }
    assert_int_equal(trie_count(t), MANY / 2 + 1);
}

/* The subscribers of one filter are a set: 40000 of them on one node, each
 * found again to update its QoS, removed in a scattered order, and every
 * match call reports exactly the pairs still there. */
static size_t count_qos(const struct trie *t, const char *topic, uint8_t qos, size_t *total)
{
    struct counter c = {0, 0, qos};
    trie_match(t, mqtt_bytes_from_cstr(topic), count_calls, &c);
    *total = c.total;
    return c.with_qos;
}

#define SHARED 40000

static void test_40000_subscribers_of_one_filter(void **state)
{
    struct trie *t = *state;
    for (size_t i = 0; i < SHARED; i++)
        assert_int_equal(sub(t, "fleet/+/status", i, 0), 1);
    for (size_t i = 0; i < SHARED; i += 4)
        assert_int_equal(sub(t, "fleet/+/status", i, 2), 0); /* an update, not a new pair */
    assert_int_equal(trie_count(t), SHARED);
    size_t total = 0;
    assert_int_equal(count_qos(t, "fleet/7/status", 2, &total), SHARED / 4);
    assert_int_equal(total, SHARED);
    for (size_t i = 0; i < SHARED; i += 3)
        assert_int_equal(unsub(t, "fleet/+/status", (i * 7919) % SHARED), 0);
    size_t left = SHARED - (SHARED + 2) / 3;
    assert_int_equal(trie_count(t), left);
    count_qos(t, "fleet/7/status", 2, &total);
    assert_int_equal(total, left);
    for (size_t i = 0; i < SHARED; i++)
        unsub(t, "fleet/+/status", i);
    assert_int_equal(trie_count(t), 0);
    assert_int_equal(match(t, "fleet/7/status").n, 0);
}

/* 40000 distinct children under one node (what one large SUBSCRIBE makes). */
static void test_40000_children_of_one_node(void **state)
{
    struct trie *t = *state;
    char filter[64];
    for (size_t i = 0; i < SHARED; i++) {
        snprintf(filter, sizeof(filter), "bulk/%zu", i);
        assert_int_equal(sub(t, filter, i, 1), 1);
    }
    for (size_t i = 0; i < SHARED; i += 1000) {
        snprintf(filter, sizeof(filter), "bulk/%zu", i);
        struct calls c = match(t, filter);
        assert_int_equal(c.n, 1);
        assert_int_equal(calls_for(&c, i), 1);
    }
    assert_int_equal(match(t, "bulk/40000").n, 0);
    /* trie_free (teardown) frees the populated nodes and their subscriber sets. */
}

#define DEEP_LEVELS 32768 /* 32767 '/' separators: the most a 65535-byte filter holds */

/* "+/+/.../+" with levels levels, or the topic of levels empty levels. */
static char *deep_string(size_t levels, const char *level)
{
    size_t level_len = strlen(level);
    char *s = malloc(levels * (level_len + 1));
    assert_non_null(s);
    char *p = s;
    for (size_t i = 0; i < levels; i++) {
        memcpy(p, level, level_len);
        p += level_len;
        *p++ = i + 1 < levels ? '/' : '\0';
    }
    return s;
}

static void test_deep_topics_of_32768_levels(void **state)
{
    struct trie *t = *state;
    char *empties = deep_string(DEEP_LEVELS, "");
    char *pluses = deep_string(DEEP_LEVELS, "+");
    char *shorter = deep_string(DEEP_LEVELS - 1, "+");
    char *as = deep_string(DEEP_LEVELS / 2, "a");
    assert_int_equal(strlen(empties), DEEP_LEVELS - 1);
    assert_int_equal(strlen(pluses), 65535);
    assert_int_equal(sub(t, empties, 0, 0), 1);
    assert_int_equal(sub(t, pluses, 1, 1), 1);
    assert_int_equal(sub(t, shorter, 2, 1), 1);
    assert_int_equal(sub(t, "+/#", 3, 1), 1);
    assert_int_equal(sub(t, as, 4, 2), 1);
    struct calls c = match(t, empties);
    assert_int_equal(c.n, 3);
    assert_int_equal(calls_for(&c, 0) + calls_for(&c, 1) + calls_for(&c, 3), 3);
    c = match(t, as);
    assert_int_equal(c.n, 2);
    assert_int_equal(calls_for(&c, 4) + calls_for(&c, 3), 2);
    assert_int_equal(unsub(t, empties, 0), 0);
    assert_int_equal(match(t, empties).n, 2);
    free(empties);
    free(pluses);
    free(shorter);
    free(as);
    /* teardown frees the remaining deep paths without recursion */
}

/* ---- randomized cross-check against mqtt_topic_matches() -------------- */

#define RAND_FILTERS 400
#define RAND_TOPICS  3000
#define RAND_MAX_LEN 64

static uint32_t rng_state = 12345u; /* fixed seed: failures reproduce */

static uint32_t rng(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return rng_state >> 8;
}

/* Writes a random filter (wildcards) or name (no wildcards) into out. */
static void random_topic(char *out, bool is_filter)
{
    static const char *const levels[] = {"a", "b", "", "$s", "ab"};
    size_t depth = 1 + rng() % 5;
    out[0] = '\0';
    if (depth == 1)
        depth = 2; /* a one-level topic could be "", which is invalid [MQTT-4.7.3-1] */
    for (size_t i = 0; i < depth; i++) {
        const char *level = levels[rng() % 5];
        uint32_t r = rng() % 10;
        if (is_filter && r < 3)
            level = "+";
        else if (is_filter && r == 3 && i + 1 == depth)
            level = "#";
        if (i > 0)
            strcat(out, "/");
        strcat(out, level);
    }
}

static void count_call(void *subscriber, uint32_t qos, void *arg)
{
    size_t *counts = arg;
    size_t id = (uintptr_t)subscriber - 1;
    assert_true(id < RAND_FILTERS);
    assert_int_equal(qos, id % 3);
    counts[id]++;
}

static void cross_check(const struct trie *t, char (*filters)[RAND_MAX_LEN], const bool *present)
{
    char topic[RAND_MAX_LEN];
    size_t counts[RAND_FILTERS];
    for (size_t k = 0; k < RAND_TOPICS; k++) {
        random_topic(topic, false);
        memset(counts, 0, sizeof(counts));
        trie_match(t, mqtt_bytes_from_cstr(topic), count_call, counts);
        for (size_t i = 0; i < RAND_FILTERS; i++) {
            bool want = present[i] && mqtt_topic_matches(mqtt_bytes_from_cstr(filters[i]),
                                                         mqtt_bytes_from_cstr(topic));
            if (counts[i] != (size_t)want)
                fail_msg("filter '%s' topic '%s': %zu calls", filters[i], topic, counts[i]);
        }
    }
}

static void test_match_agrees_with_mqtt_topic_matches_on_random_input(void **state)
{
    struct trie *t = *state;
    static char filters[RAND_FILTERS][RAND_MAX_LEN];
    bool present[RAND_FILTERS];
    for (size_t i = 0; i < RAND_FILTERS; i++) {
        random_topic(filters[i], true);
        assert_int_equal(mqtt_topic_filter_check(mqtt_bytes_from_cstr(filters[i])), MQTT_OK);
        assert_int_equal(sub(t, filters[i], i, (uint8_t)(i % 3)), 1);
        present[i] = true;
    }
    cross_check(t, filters, present);
    for (size_t i = 0; i < RAND_FILTERS; i++) {
        if (rng() % 2 == 0) {
            assert_int_equal(unsub(t, filters[i], i), 0);
            present[i] = false;
        }
    }
    cross_check(t, filters, present);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_filter_matches_only_the_same_name),
        cmocka_unit_test(test_plus_matches_exactly_one_level_MQTT_4_7_1_3),
        cmocka_unit_test(test_hash_matches_parent_and_every_level_below_MQTT_4_7_1_2),
        cmocka_unit_test(test_dollar_names_not_matched_by_leading_wildcard_MQTT_4_7_2_1),
        cmocka_unit_test(test_empty_levels_are_levels),
        cmocka_unit_test_setup_teardown(test_overlapping_filters_call_once_per_pair, setup_trie,
                                        teardown_trie),
        cmocka_unit_test_setup_teardown(test_subscribe_same_pair_again_updates_qos, setup_trie,
                                        teardown_trie),
        cmocka_unit_test_setup_teardown(test_unsubscribe_unknown_pair_is_enoent, setup_trie,
                                        teardown_trie),
        cmocka_unit_test_setup_teardown(test_unsubscribe_keeps_other_pairs, setup_trie,
                                        teardown_trie),
        cmocka_unit_test_setup_teardown(test_unsubscribe_all_prunes_every_node, setup_trie,
                                        teardown_trie),
        cmocka_unit_test(test_free_null_does_nothing),
        cmocka_unit_test_setup_teardown(test_10000_subscribers_on_distinct_topics, setup_trie,
                                        teardown_trie),
        cmocka_unit_test_setup_teardown(test_deep_topics_of_32768_levels, setup_trie,
                                        teardown_trie),
        cmocka_unit_test_setup_teardown(test_40000_subscribers_of_one_filter, setup_trie,
                                        teardown_trie),
        cmocka_unit_test_setup_teardown(test_40000_children_of_one_node, setup_trie, teardown_trie),
        cmocka_unit_test_setup_teardown(test_match_agrees_with_mqtt_topic_matches_on_random_input,
                                        setup_trie, teardown_trie),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
