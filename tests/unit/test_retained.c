/*
 * test_retained.c - the retained index (src/session/retained.c): put, get,
 * take with pruning, and wildcard matching checked against
 * mqtt_topic_matches() over every stored topic (the reference the index
 * replaces), including the '$' rule, empty levels and deep topics.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mqtt_topic.h"
#include "retained.h"
#include "session_internal.h"

static struct msg *retained_msg(const char *topic)
{
    struct msg *m = msg_new(mqtt_bytes_from_cstr(topic), mqtt_bytes_from_cstr("p"), 1, true);
    assert_non_null(m);
    return m;
}

static void put(struct retained_index *idx, const char *topic)
{
    struct msg *old = NULL;
    assert_int_equal(retained_put(idx, mqtt_bytes_from_cstr(topic), retained_msg(topic), &old), 0);
    msg_unref(old);
}

struct seen {
    char topics[64][64];
    size_t n;
};

static void collect(struct msg *m, void *arg)
{
    struct seen *s = arg;
    assert_true(s->n < 64);
    snprintf(s->topics[s->n++], sizeof(s->topics[0]), "%.*s", (int)m->topic_len,
             (const char *)m->topic);
}

static bool saw(const struct seen *s, const char *topic)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->topics[i], topic) == 0)
            return true;
    return false;
}

static const char *const topics[] = {"a",   "a/b",    "a/b/c", "a/c",     "a//b",  "/a",   "b",
                                     "b/b", "$SYS/x", "$SYS",  "a/b/c/d", "x/y/z", "a/bb", "/"};
static const char *const filters[] = {"#",     "+",     "a",       "a/#",   "a/+",    "+/b",
                                      "+/+",   "a/b/#", "/#",      "+/#",   "$SYS/#", "$SYS/+",
                                      "a/+/c", "a//+",  "+/+/+/+", "x/+/z", "c/#",    "a/b/c/d/#"};

static void test_match_agrees_with_the_topic_matcher_for_every_filter(void **state)
{
    (void)state;
    struct retained_index idx;
    assert_int_equal(retained_index_init(&idx), 0);
    size_t n_topics = sizeof(topics) / sizeof(topics[0]);
    for (size_t i = 0; i < n_topics; i++)
        put(&idx, topics[i]);
    assert_int_equal(retained_count(&idx), n_topics);
    for (size_t f = 0; f < sizeof(filters) / sizeof(filters[0]); f++) {
        struct seen s = {0};
        struct mqtt_bytes filter = mqtt_bytes_from_cstr(filters[f]);
        assert_int_equal(retained_match(&idx, filter, collect, &s), 0);
        size_t expected = 0;
        for (size_t i = 0; i < n_topics; i++) {
            bool want = mqtt_topic_matches(filter, mqtt_bytes_from_cstr(topics[i]));
            expected += want;
            if (want != saw(&s, topics[i]))
                fail_msg("filter %s, topic %s: index %d, reference %d", filters[f], topics[i],
                         saw(&s, topics[i]), want);
        }
        assert_int_equal(s.n, expected); /* and each once */
    }
    retained_index_deinit(&idx, msg_unref);
}

static void test_put_replaces_take_removes_and_prunes(void **state)
{
    (void)state;
    struct retained_index idx;
    assert_int_equal(retained_index_init(&idx), 0);
    struct msg *first = retained_msg("a/b/c");
    struct msg *old = NULL;
    assert_int_equal(retained_put(&idx, mqtt_bytes_from_cstr("a/b/c"), first, &old), 0);
    assert_null(old);
    struct msg *second = retained_msg("a/b/c");
    assert_int_equal(retained_put(&idx, mqtt_bytes_from_cstr("a/b/c"), second, &old), 0);
    assert_ptr_equal(old, first);
    msg_unref(old);
    assert_int_equal(retained_count(&idx), 1);
    assert_ptr_equal(retained_get(&idx, mqtt_bytes_from_cstr("a/b/c")), second);
    assert_null(retained_get(&idx, mqtt_bytes_from_cstr("a/b")));
    assert_null(retained_take(&idx, mqtt_bytes_from_cstr("a/b"))); /* a node, no message */
    struct msg *taken = retained_take(&idx, mqtt_bytes_from_cstr("a/b/c"));
    assert_ptr_equal(taken, second);
    msg_unref(taken);
    assert_int_equal(retained_count(&idx), 0);
    struct seen s = {0};
    assert_int_equal(retained_match(&idx, mqtt_bytes_from_cstr("#"), collect, &s), 0);
    assert_int_equal(s.n, 0);
    retained_index_deinit(&idx, msg_unref);
}

/* 20,000 levels: the walks (match, prune, teardown) use no recursion. */
static void test_deep_topics_need_no_recursion(void **state)
{
    (void)state;
    size_t levels = 20000;
    char *deep = malloc(levels * 2);
    assert_non_null(deep);
    for (size_t i = 0; i < levels; i++) {
        deep[2 * i] = 'd';
        deep[2 * i + 1] = '/';
    }
    deep[levels * 2 - 1] = '\0';
    struct retained_index idx;
    assert_int_equal(retained_index_init(&idx), 0);
    put(&idx, deep);
    put(&idx, "d");
    struct seen s = {0};
    struct mqtt_bytes all = mqtt_bytes_from_cstr("d/#");
    size_t calls = 0;
    assert_int_equal(retained_match(&idx, all, collect, &s), 0);
    calls = s.n;
    assert_int_equal(calls, 2);
    struct msg *m = retained_take(&idx, mqtt_bytes_from_cstr(deep));
    assert_non_null(m);
    msg_unref(m);
    put(&idx, deep);
    retained_index_deinit(&idx, msg_unref); /* frees 20,000 nodes iteratively */
    free(deep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_agrees_with_the_topic_matcher_for_every_filter),
        cmocka_unit_test(test_put_replaces_take_removes_and_prunes),
        cmocka_unit_test(test_deep_topics_need_no_recursion),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
