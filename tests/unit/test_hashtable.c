/*
 * test_hashtable.c - the broker's one hash table (src/util/hashtable.h) and
 * SipHash (src/util/siphash.h): reference vectors, find / insert / remove
 * through incremental resizes in both directions, binary keys, teardown, and
 * that the hash is keyed (the same bytes hash differently from the unkeyed
 * reference).
 *
 * Not for: the users of the table (test_trie.c, test_session.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hashtable.h"
#include "siphash.h"

/* ---- SipHash ---- */

static void reference_key(uint8_t key[SIPHASH_KEY_LEN])
{
    for (int i = 0; i < SIPHASH_KEY_LEN; i++)
        key[i] = (uint8_t)i;
}

/* The paper's appendix A: key 00..0f, message 00..0e. */
static void test_siphash24_matches_the_reference_vector(void **state)
{
    (void)state;
    uint8_t key[SIPHASH_KEY_LEN], msg[15];
    reference_key(key);
    for (int i = 0; i < 15; i++)
        msg[i] = (uint8_t)i;
    assert_true(siphash24(key, msg, sizeof(msg)) == 0xa129ca6149be45e5ull);
}

/* vectors.h of the reference implementation: the empty message, and 8 bytes
 * (one full word, then the length-only final block). */
static void test_siphash24_empty_and_one_word_vectors(void **state)
{
    (void)state;
    uint8_t key[SIPHASH_KEY_LEN], msg[8];
    reference_key(key);
    for (int i = 0; i < 8; i++)
        msg[i] = (uint8_t)i;
    assert_true(siphash24(key, "", 0) == 0x726fdb47dd0e0e31ull);
    assert_true(siphash24(key, msg, 8) == 0x93f5f5799a932462ull);
}

static void test_siphash13_depends_on_key_and_every_byte(void **state)
{
    (void)state;
    uint8_t key[SIPHASH_KEY_LEN] = {0}, msg[33] = {0};
    uint64_t base = siphash13(key, msg, sizeof(msg));
    for (size_t i = 0; i < sizeof(msg); i++) {
        msg[i] ^= 1;
        assert_true(siphash13(key, msg, sizeof(msg)) != base);
        msg[i] ^= 1;
    }
    key[15] = 1;
    assert_true(siphash13(key, msg, sizeof(msg)) != base);
    assert_true(siphash13(key, msg, 32) != siphash13(key, msg, 33));
}

static void test_table_hash_is_keyed_per_process(void **state)
{
    (void)state;
    /* The table's key is random: it is not the all-zero or reference key. */
    uint8_t zero[SIPHASH_KEY_LEN] = {0}, ref[SIPHASH_KEY_LEN];
    reference_key(ref);
    const char *k = "sensor/42";
    uint64_t h = hashtable_hash(k, strlen(k));
    assert_true(h != siphash13(zero, k, strlen(k)));
    assert_true(h != siphash13(ref, k, strlen(k)));
    assert_true(h == hashtable_hash(k, strlen(k)));
}

/* ---- the table ---- */

struct item {
    struct hashtable_node node;
    char key[32];
    int value;
};

static struct item *items_new(size_t n)
{
    struct item *items = calloc(n, sizeof(*items));
    assert_non_null(items);
    for (size_t i = 0; i < n; i++) {
        snprintf(items[i].key, sizeof(items[i].key), "key-%zu", i);
        items[i].value = (int)i;
    }
    return items;
}

static struct item *find(const struct hashtable *t, const char *key)
{
    struct hashtable_node *n = hashtable_find(t, key, strlen(key));
    return n != NULL ? (struct item *)n : NULL;
}

static void insert(struct hashtable *t, struct item *it)
{
    assert_int_equal(hashtable_insert(t, &it->node, it->key, strlen(it->key)), 0);
}

static void test_empty_table_finds_nothing_and_holds_no_array(void **state)
{
    (void)state;
    struct hashtable t;
    hashtable_init(&t);
    assert_null(find(&t, "x"));
    assert_null(t.a);
    assert_int_equal(sizeof(t), sizeof(void *)); /* embedding a table costs one pointer */
    assert_null(hashtable_take_all(&t));
    hashtable_deinit(&t);
}

static void test_insert_find_remove_one(void **state)
{
    (void)state;
    struct hashtable t;
    hashtable_init(&t);
    struct item it = {.key = "a/b", .value = 7};
    insert(&t, &it);
    assert_ptr_equal(find(&t, "a/b"), &it);
    assert_null(find(&t, "a/c"));
    assert_null(find(&t, "a/"));
    hashtable_remove(&t, &it.node);
    assert_null(find(&t, "a/b"));
    assert_int_equal(hashtable_count(&t), 0);
    assert_null(t.a); /* emptied: the array is given back */
}

/* Growing through many incremental resizes, every key stays findable at every
 * step; then removing in a different order shrinks back to nothing. */
static void test_100000_keys_through_grow_and_shrink(void **state)
{
    (void)state;
    enum { N = 100000 };
    struct item *items = items_new(N);
    struct hashtable t;
    hashtable_init(&t);
    for (size_t i = 0; i < N; i++) {
        insert(&t, &items[i]);
        if (i % 997 == 0)
            for (size_t j = 0; j <= i; j += 101)
                assert_ptr_equal(find(&t, items[j].key), &items[j]);
    }
    assert_int_equal(hashtable_count(&t), N);
    assert_true(t.a->size >= N / 2 && t.a->size <= 4 * (size_t)N);
    for (size_t i = 0; i < N; i++)
        assert_ptr_equal(find(&t, items[i].key), &items[i]);
    for (size_t i = 0; i < N; i += 2)
        hashtable_remove(&t, &items[i].node);
    for (size_t i = 0; i < N; i++)
        assert_ptr_equal(find(&t, items[i].key), i % 2 ? &items[i] : NULL);
    for (size_t i = N - 1; i < N; i -= 2) {
        hashtable_remove(&t, &items[i].node);
        if (i % 991 == 1)
            for (size_t j = 1; j < i; j += 97 * 2)
                assert_ptr_equal(find(&t, items[j].key), &items[j]);
    }
    assert_int_equal(hashtable_count(&t), 0);
    assert_null(t.a);
    free(items);
}

static void count_node(struct hashtable_node *n, void *arg)
{
    (void)n;
    ++*(size_t *)arg;
}

static void test_foreach_visits_every_node_once_mid_resize(void **state)
{
    (void)state;
    enum { N = 1000 };
    struct item *items = items_new(N);
    struct hashtable t;
    hashtable_init(&t);
    for (size_t i = 0; i < N; i++) {
        insert(&t, &items[i]);
        size_t seen = 0;
        hashtable_foreach(&t, count_node, &seen);
        assert_int_equal(seen, i + 1);
    }
    hashtable_deinit(&t);
    free(items);
}

static void test_take_all_returns_every_node_and_empties(void **state)
{
    (void)state;
    enum { N = 777 };
    struct item *items = items_new(N);
    struct hashtable t;
    hashtable_init(&t);
    for (size_t i = 0; i < N; i++)
        insert(&t, &items[i]);
    size_t n = 0;
    for (struct hashtable_node *x = hashtable_take_all(&t); x != NULL; x = x->next)
        n++;
    assert_int_equal(n, N);
    assert_int_equal(hashtable_count(&t), 0);
    assert_null(find(&t, items[0].key));
    free(items);
}

/* Keys are bytes: embedded zeros, the empty key, and pointer-sized binary
 * keys (as the trie's per-node subscriber sets use). */
static void test_binary_and_empty_keys(void **state)
{
    (void)state;
    struct hashtable t;
    hashtable_init(&t);
    static const uint8_t k1[] = {0, 1, 2}, k2[] = {0, 1, 3}, k3[] = {0, 1};
    struct hashtable_node a, b, c, e;
    assert_int_equal(hashtable_insert(&t, &a, k1, 3), 0);
    assert_int_equal(hashtable_insert(&t, &b, k2, 3), 0);
    assert_int_equal(hashtable_insert(&t, &c, k3, 2), 0);
    assert_int_equal(hashtable_insert(&t, &e, "", 0), 0);
    assert_ptr_equal(hashtable_find(&t, k1, 3), &a);
    assert_ptr_equal(hashtable_find(&t, k2, 3), &b);
    assert_ptr_equal(hashtable_find(&t, k3, 2), &c);
    assert_ptr_equal(hashtable_find(&t, "", 0), &e);
    void *ptr_key = &t;
    struct hashtable_node p;
    assert_int_equal(hashtable_insert(&t, &p, &ptr_key, sizeof(ptr_key)), 0);
    assert_ptr_equal(hashtable_find(&t, &ptr_key, sizeof(ptr_key)), &p);
    hashtable_deinit(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_siphash24_matches_the_reference_vector),
        cmocka_unit_test(test_siphash24_empty_and_one_word_vectors),
        cmocka_unit_test(test_siphash13_depends_on_key_and_every_byte),
        cmocka_unit_test(test_table_hash_is_keyed_per_process),
        cmocka_unit_test(test_empty_table_finds_nothing_and_holds_no_array),
        cmocka_unit_test(test_insert_find_remove_one),
        cmocka_unit_test(test_100000_keys_through_grow_and_shrink),
        cmocka_unit_test(test_foreach_visits_every_node_once_mid_resize),
        cmocka_unit_test(test_take_all_returns_every_node_and_empties),
        cmocka_unit_test(test_binary_and_empty_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
