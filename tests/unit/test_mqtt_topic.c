/*
 * test_mqtt_topic.c - UTF-8, topic name, topic filter, level and matching
 * rules of src/mqtt/mqtt_topic.h, named after the spec rule they pin down.
 *
 * Not for: the wire codec (test_mqtt_codec.c and friends).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mqtt_topic.h"

#define MAX_STR 65535u

/* ---- helpers ---------------------------------------------------------- */

static int utf8(const char *bytes, size_t len)
{
    return mqtt_utf8_check((const uint8_t *)bytes, len);
}

/* Byte strings written as C literals; sizeof - 1 drops the literal's NUL. */
#define UTF8(lit) utf8((lit), sizeof(lit) - 1)

static int name_check(const char *s)
{
    return mqtt_topic_name_check(mqtt_bytes_from_cstr(s));
}

static int filter_check(const char *s)
{
    return mqtt_topic_filter_check(mqtt_bytes_from_cstr(s));
}

static bool matches(const char *filter, const char *name)
{
    return mqtt_topic_matches(mqtt_bytes_from_cstr(filter), mqtt_bytes_from_cstr(name));
}

/* A heap buffer of len bytes of 'a' (not NUL-terminated); the test frees it. */
static uint8_t *filled(size_t len)
{
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    memset(buf, 'a', len);
    return buf;
}

/*
 * Reference UTF-8 rule by arithmetic, independent of the table-driven code:
 * decode the code point, then require the shortest form, no surrogate, no
 * U+0000 and nothing above U+10FFFF. Returns the sequence length or 0.
 */
static size_t ref_utf8_seq(const uint8_t *s, size_t avail)
{
    size_t n;
    uint32_t cp;
    if (s[0] < 0x80)
        return s[0] == 0 ? 0 : 1;
    if ((s[0] & 0xE0) == 0xC0) {
        n = 2;
        cp = s[0] & 0x1Fu;
    } else if ((s[0] & 0xF0) == 0xE0) {
        n = 3;
        cp = s[0] & 0x0Fu;
    } else if ((s[0] & 0xF8) == 0xF0) {
        n = 4;
        cp = s[0] & 0x07u;
    } else {
        return 0;
    }
    if (n > avail)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3Fu);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

static bool ref_utf8_ok(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t n = ref_utf8_seq(s + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

/* ---- UTF-8 [MQTT-1.5.3] ----------------------------------------------- */

static void test_utf8_empty_string_accepted(void **state)
{
    (void)state;
    assert_int_equal(mqtt_utf8_check(NULL, 0), MQTT_OK);
}

static void test_utf8_ascii_accepted(void **state)
{
    (void)state;
    assert_int_equal(UTF8("sport/tennis/player1"), MQTT_OK);
}

static void test_utf8_nul_u0000_rejected_MQTT_1_5_3_2(void **state)
{
    (void)state;
    assert_int_equal(UTF8("\x00"), MQTT_ERR_UTF8);
    assert_int_equal(UTF8("ab\x00"
                          "cd"),
                     MQTT_ERR_UTF8);
}

static void test_utf8_overlong_nul_c0_80_rejected_MQTT_1_5_3_1(void **state)
{
    (void)state;
    assert_int_equal(UTF8("\xC0\x80"), MQTT_ERR_UTF8);
}

static void test_utf8_overlong_2byte_rejected_MQTT_1_5_3_1(void **state)
{
    (void)state;
    assert_int_equal(UTF8("\xC0\xAF"), MQTT_ERR_UTF8); /* '/' */
    assert_int_equal(UTF8("\xC1\xBF"), MQTT_ERR_UTF8); /* U+007F, largest overlong */
}

static void test_utf8_2byte_range_u0080_to_u07ff_accepted(void **state)
{
    (void)state;
    assert_int_equal(UTF8("\xC2\x80"), MQTT_OK);
    assert_int_equal(UTF8("\xDF\xBF"), MQTT_OK);
}

static void test_utf8_overlong_3byte_rejected_MQTT_1_5_3_1(void **state)
{
    (void)state;
    assert_int_equal(UTF8("\xE0\x80\x80"), MQTT_ERR_UTF8); /* U+0000 */
    assert_int_equal(UTF8("\xE0\x80\xAF"), MQTT_ERR_UTF8); /* '/' */
    assert_int_equal(UTF8("\xE0\x9F\xBF"), MQTT_ERR_UTF8); /* U+07FF, largest overlong */
}

static void test_utf8_3byte_min_u0800_and_max_uffff_accepted(void **state)
{
    (void)state;
    assert_int_equal(UTF8("\xE0\xA0\x80"), MQTT_OK);
    assert_int_equal(UTF8("\xEF\xBF\xBF"), MQTT_OK);
}

static void test_utf8_overlong_4byte_rejected_MQTT_1_5_3_1(void **state)
{
    (void)state;
    assert_int_equal(UTF8("\xF0\x80\x80\x80"), MQTT_ERR_UTF8); /* U+0000 */
    assert_int_equal(UTF8("\xF0\x80\x80\xAF"), MQTT_ERR_UTF8); /* '/' */
    assert_int_equal(UTF8("\xF0\x8F\xBF\xBF"), MQTT_ERR_UTF8); /* U+FFFF, largest overlong */
}

static void test_utf8_4byte_min_u10000_accepted(void **state)
{
    (void)state;
    assert_int_equal(UTF8("\xF0\x90\x80\x80"), MQTT_OK);
}

static void test_utf8_surrogate_d800_rejected_MQTT_1_5_3_1(void **state)
{
    (void)state;
    assert_int_equal(UTF8("\xED\xA0\x80"), MQTT_ERR_UTF8);
}

static void test_utf8_surrogate_dfff_rejected_MQTT_1_5_3_1(void **state)
{
    (void)state;
    assert_int_equal(UTF8("\xED\xBF\xBF"), MQTT_ERR_UTF8);
}

static void test_utf8_surrogate_pair_cesu8_rejected_MQTT_1_5_3_1(void **state)
{
    (void)state;
    /* U+10000 as a CESU-8 surrogate pair D800 DC00 */
    assert_int_equal(UTF8("\xED\xA0\x80\xED\xB0\x80"), MQTT_ERR_UTF8);
}

static void test_utf8_around_surrogates_ud7ff_ue000_accepted(void **state)
{
    (void)state;
    assert_int_equal(UTF8("\xED\x9F\xBF"), MQTT_OK);
    assert_int_equal(UTF8("\xEE\x80\x80"), MQTT_OK);
}

static void test_utf8_u10ffff_accepted(void **state)
{
    (void)state;
    assert_int_equal(UTF8("\xF4\x8F\xBF\xBF"), MQTT_OK);
}

static void test_utf8_u110000_rejected_MQTT_1_5_3_1(void **state)
{
    (void)state;
    assert_int_equal(UTF8("\xF4\x90\x80\x80"), MQTT_ERR_UTF8);
}

static void test_utf8_lead_bytes_f5_to_ff_rejected_MQTT_1_5_3_1(void **state)
{
    (void)state;
    for (unsigned b = 0xF5; b <= 0xFF; b++) {
        uint8_t s[4] = {(uint8_t)b, 0x80, 0x80, 0x80};
        assert_int_equal(mqtt_utf8_check(s, sizeof(s)), MQTT_ERR_UTF8);
        assert_int_equal(mqtt_utf8_check(s, 1), MQTT_ERR_UTF8);
    }
}

static void test_utf8_lead_bytes_c0_c1_rejected_MQTT_1_5_3_1(void **state)
{
    (void)state;
    for (unsigned c = 0x80; c <= 0xBF; c++) {
        uint8_t s0[2] = {0xC0, (uint8_t)c};
        uint8_t s1[2] = {0xC1, (uint8_t)c};
        assert_int_equal(mqtt_utf8_check(s0, 2), MQTT_ERR_UTF8);
        assert_int_equal(mqtt_utf8_check(s1, 2), MQTT_ERR_UTF8);
    }
}

static void test_utf8_stray_continuation_byte_rejected_MQTT_1_5_3_1(void **state)
{
    (void)state;
    assert_int_equal(UTF8("\x80"), MQTT_ERR_UTF8);
    assert_int_equal(UTF8("\xBF"), MQTT_ERR_UTF8);
    assert_int_equal(UTF8("a\x80"), MQTT_ERR_UTF8);
    assert_int_equal(UTF8("\xC3\xA9\xA9"), MQTT_ERR_UTF8); /* one continuation too many */
}

static void test_utf8_truncated_sequence_at_end_rejected_MQTT_1_5_3_1(void **state)
{
    (void)state;
    assert_int_equal(UTF8("a\xC3"), MQTT_ERR_UTF8);
    assert_int_equal(UTF8("a\xE2\x82"), MQTT_ERR_UTF8);
    assert_int_equal(UTF8("a\xF0\x9F\x98"), MQTT_ERR_UTF8);
}

static void test_utf8_continuation_replaced_by_ascii_rejected_MQTT_1_5_3_1(void **state)
{
    (void)state;
    assert_int_equal(UTF8("\xC3"
                          "a"),
                     MQTT_ERR_UTF8);
    assert_int_equal(UTF8("\xE2\x82"
                          "a"),
                     MQTT_ERR_UTF8);
    assert_int_equal(UTF8("\xF0\x9F\x98"
                          "a"),
                     MQTT_ERR_UTF8);
    assert_int_equal(UTF8("\xE2\xC3\xA9"), MQTT_ERR_UTF8); /* a new lead where a tail belongs */
}

static void test_utf8_bom_ufeff_accepted_MQTT_1_5_3_3(void **state)
{
    (void)state;
    /* A leading U+FEFF is a character, not a signature to skip [MQTT-1.5.3-3]. */
    assert_int_equal(UTF8("\xEF\xBB\xBF"
                          "a"),
                     MQTT_OK);
}

static void test_utf8_control_and_noncharacters_accepted(void **state)
{
    (void)state;
    /* The spec lets a receiver close on these (SHOULD NOT / MAY); Sol does not. */
    assert_int_equal(UTF8("\x01\x1F\x7F"), MQTT_OK);
    assert_int_equal(UTF8("\xC2\x9F"), MQTT_OK);         /* U+009F */
    assert_int_equal(UTF8("\xEF\xBF\xBE"), MQTT_OK);     /* U+FFFE */
    assert_int_equal(UTF8("\xF4\x8F\xBF\xBE"), MQTT_OK); /* U+10FFFE */
}

static void test_utf8_spec_example_1_5_3_a_u2a6d4_accepted(void **state)
{
    (void)state;
    /* Non-normative example in 1.5.3: "A" followed by U+2A6D4. */
    assert_int_equal(UTF8("\x41\xF0\xAA\x9B\x94"), MQTT_OK);
}

static void test_utf8_max_65535_byte_string_accepted(void **state)
{
    (void)state;
    uint8_t *s = filled(MAX_STR);
    assert_int_equal(mqtt_utf8_check(s, MAX_STR), MQTT_OK);
    /* ends exactly on the last byte of a 4-byte character */
    memcpy(s + MAX_STR - 4, "\xF4\x8F\xBF\xBF", 4);
    assert_int_equal(mqtt_utf8_check(s, MAX_STR), MQTT_OK);
    free(s);
}

static void test_utf8_max_65535_byte_string_truncated_tail_rejected(void **state)
{
    (void)state;
    uint8_t *s = filled(MAX_STR);
    memcpy(s + MAX_STR - 3, "\xF4\x8F\xBF", 3);
    assert_int_equal(mqtt_utf8_check(s, MAX_STR), MQTT_ERR_UTF8);
    free(s);
}

static void test_utf8_exhaustive_1_to_3_bytes_agree_with_reference(void **state)
{
    (void)state;
    /* Every 1-, 2- and 3-byte string, compared with the arithmetic reference. */
    for (uint32_t v = 0; v < (1u << 24); v++) {
        uint8_t s[3] = {(uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
        for (size_t len = 1; len <= 3; len++) {
            if ((len == 1 && (v & 0xFFFF) != 0) || (len == 2 && (v & 0xFF) != 0))
                continue; /* shorter strings: check each prefix once */
            bool want = ref_utf8_ok(s, len);
            if ((mqtt_utf8_check(s, len) == MQTT_OK) != want)
                fail_msg("bytes %02x %02x %02x len %zu: want %d", s[0], s[1], s[2], len, want);
        }
    }
}

static void test_utf8_4byte_leads_agree_with_reference(void **state)
{
    (void)state;
    /* Every lead and second byte, with both boundary values of the tails. */
    static const uint8_t tails[] = {0x00, 0x41, 0x7F, 0x80, 0xBF, 0xC0, 0xFF};
    for (unsigned a = 0xE0; a <= 0xFF; a++) {
        for (unsigned b = 0; b <= 0xFF; b++) {
            for (size_t i = 0; i < sizeof(tails); i++) {
                for (size_t j = 0; j < sizeof(tails); j++) {
                    uint8_t s[4] = {(uint8_t)a, (uint8_t)b, tails[i], tails[j]};
                    bool want = ref_utf8_ok(s, 4);
                    if ((mqtt_utf8_check(s, 4) == MQTT_OK) != want)
                        fail_msg("bytes %02x %02x %02x %02x: want %d", s[0], s[1], s[2], s[3],
                                 want);
                }
            }
        }
    }
}

/* ---- topic names [MQTT-4.7] ------------------------------------------- */

static void test_topic_name_empty_rejected_MQTT_4_7_3_1(void **state)
{
    (void)state;
    assert_int_equal(name_check(""), MQTT_ERR_TOPIC_NAME);
}

static void test_topic_name_with_plus_rejected_MQTT_4_7_1_1(void **state)
{
    (void)state;
    assert_int_equal(name_check("+"), MQTT_ERR_TOPIC_NAME);
    assert_int_equal(name_check("sport/+/player1"), MQTT_ERR_TOPIC_NAME);
    assert_int_equal(name_check("sport+"), MQTT_ERR_TOPIC_NAME);
}

static void test_topic_name_with_hash_rejected_MQTT_3_3_2_2(void **state)
{
    (void)state;
    assert_int_equal(name_check("#"), MQTT_ERR_TOPIC_NAME);
    assert_int_equal(name_check("sport/#"), MQTT_ERR_TOPIC_NAME);
    assert_int_equal(name_check("a#b"), MQTT_ERR_TOPIC_NAME);
}

static void test_topic_name_spec_examples_4_7_3_accepted(void **state)
{
    (void)state;
    assert_int_equal(name_check("/"), MQTT_OK);
    assert_int_equal(name_check("Accounts payable"), MQTT_OK);
    assert_int_equal(name_check("/finance"), MQTT_OK);
    assert_int_equal(name_check("sport/tennis/player1"), MQTT_OK);
    assert_int_equal(name_check("$SYS/broker/uptime"), MQTT_OK);
    assert_int_equal(name_check("//"), MQTT_OK);
}

static void test_topic_name_nul_rejected_MQTT_4_7_3_2(void **state)
{
    (void)state;
    struct mqtt_bytes b = {(const uint8_t *)"a\0b", 3};
    assert_int_equal(mqtt_topic_name_check(b), MQTT_ERR_UTF8);
}

static void test_topic_name_invalid_utf8_rejected_MQTT_1_5_3_1(void **state)
{
    (void)state;
    assert_int_equal(name_check("a/\xED\xA0\x80"), MQTT_ERR_UTF8);
    assert_int_equal(name_check("\xC0\xAF"), MQTT_ERR_UTF8);
}

static void test_topic_name_65535_bytes_accepted_MQTT_4_7_3_3(void **state)
{
    (void)state;
    uint8_t *s = filled(MAX_STR);
    struct mqtt_bytes b = {s, MAX_STR};
    assert_int_equal(mqtt_topic_name_check(b), MQTT_OK);
    free(s);
}

static void test_topic_name_65536_bytes_rejected_MQTT_4_7_3_3(void **state)
{
    (void)state;
    uint8_t *s = filled(MAX_STR + 1);
    struct mqtt_bytes b = {s, MAX_STR + 1};
    assert_int_equal(mqtt_topic_name_check(b), MQTT_ERR_TOPIC_NAME);
    free(s);
}

/* ---- topic filters [MQTT-4.7.1] --------------------------------------- */

static void test_filter_empty_rejected_MQTT_4_7_3_1(void **state)
{
    (void)state;
    assert_int_equal(filter_check(""), MQTT_ERR_TOPIC_FILTER);
}

static void test_filter_spec_examples_4_7_1_2_hash(void **state)
{
    (void)state;
    assert_int_equal(filter_check("#"), MQTT_OK);
    assert_int_equal(filter_check("sport/tennis/#"), MQTT_OK);
    assert_int_equal(filter_check("sport/tennis#"), MQTT_ERR_TOPIC_FILTER);
    assert_int_equal(filter_check("sport/tennis/#/ranking"), MQTT_ERR_TOPIC_FILTER);
}

static void test_filter_hash_not_last_level_rejected_MQTT_4_7_1_2(void **state)
{
    (void)state;
    assert_int_equal(filter_check("#/"), MQTT_ERR_TOPIC_FILTER);
    assert_int_equal(filter_check("#/a"), MQTT_ERR_TOPIC_FILTER);
    assert_int_equal(filter_check("a/#/"), MQTT_ERR_TOPIC_FILTER);
    assert_int_equal(filter_check("#/#"), MQTT_ERR_TOPIC_FILTER);
}

static void test_filter_hash_not_whole_level_rejected_MQTT_4_7_1_2(void **state)
{
    (void)state;
    assert_int_equal(filter_check("##"), MQTT_ERR_TOPIC_FILTER);
    assert_int_equal(filter_check("a#"), MQTT_ERR_TOPIC_FILTER);
    assert_int_equal(filter_check("#a"), MQTT_ERR_TOPIC_FILTER);
    assert_int_equal(filter_check("a/b#"), MQTT_ERR_TOPIC_FILTER);
    assert_int_equal(filter_check("+#"), MQTT_ERR_TOPIC_FILTER);
    assert_int_equal(filter_check("#+"), MQTT_ERR_TOPIC_FILTER);
}

static void test_filter_hash_after_separator_accepted_MQTT_4_7_1_2(void **state)
{
    (void)state;
    assert_int_equal(filter_check("/#"), MQTT_OK);
    assert_int_equal(filter_check("a//#"), MQTT_OK);
    assert_int_equal(filter_check("$SYS/#"), MQTT_OK);
    assert_int_equal(filter_check("+/#"), MQTT_OK);
}

static void test_filter_spec_examples_4_7_1_3_plus(void **state)
{
    (void)state;
    assert_int_equal(filter_check("+"), MQTT_OK);
    assert_int_equal(filter_check("+/tennis/#"), MQTT_OK);
    assert_int_equal(filter_check("sport+"), MQTT_ERR_TOPIC_FILTER);
    assert_int_equal(filter_check("sport/+/player1"), MQTT_OK);
}

static void test_filter_plus_not_whole_level_rejected_MQTT_4_7_1_3(void **state)
{
    (void)state;
    assert_int_equal(filter_check("+a"), MQTT_ERR_TOPIC_FILTER);
    assert_int_equal(filter_check("++"), MQTT_ERR_TOPIC_FILTER);
    assert_int_equal(filter_check("a/+b/c"), MQTT_ERR_TOPIC_FILTER);
    assert_int_equal(filter_check("a/b+"), MQTT_ERR_TOPIC_FILTER);
    assert_int_equal(filter_check("+/+a"), MQTT_ERR_TOPIC_FILTER);
}

static void test_filter_plus_whole_levels_accepted_MQTT_4_7_1_3(void **state)
{
    (void)state;
    assert_int_equal(filter_check("+/+"), MQTT_OK);
    assert_int_equal(filter_check("/+"), MQTT_OK);
    assert_int_equal(filter_check("+/"), MQTT_OK);
    assert_int_equal(filter_check("+/+/+"), MQTT_OK);
    assert_int_equal(filter_check("a/+/+/#"), MQTT_OK);
}

static void test_filter_plain_and_empty_levels_accepted(void **state)
{
    (void)state;
    assert_int_equal(filter_check("/"), MQTT_OK);
    assert_int_equal(filter_check("//"), MQTT_OK);
    assert_int_equal(filter_check("sport/tennis/player1"), MQTT_OK);
}

static void test_filter_invalid_utf8_rejected_MQTT_1_5_3_1(void **state)
{
    (void)state;
    assert_int_equal(filter_check("a/\xF4\x90\x80\x80/#"), MQTT_ERR_UTF8);
    struct mqtt_bytes nul = {(const uint8_t *)"+/\0", 3};
    assert_int_equal(mqtt_topic_filter_check(nul), MQTT_ERR_UTF8); /* [MQTT-4.7.3-2] */
}

static void test_filter_65535_bytes_accepted_MQTT_4_7_3_3(void **state)
{
    (void)state;
    uint8_t *s = filled(MAX_STR);
    memcpy(s + MAX_STR - 2, "/#", 2);
    struct mqtt_bytes b = {s, MAX_STR};
    assert_int_equal(mqtt_topic_filter_check(b), MQTT_OK);
    free(s);
}

static void test_filter_65536_bytes_rejected_MQTT_4_7_3_3(void **state)
{
    (void)state;
    uint8_t *s = filled(MAX_STR + 1);
    struct mqtt_bytes b = {s, MAX_STR + 1};
    assert_int_equal(mqtt_topic_filter_check(b), MQTT_ERR_TOPIC_FILTER);
    free(s);
}

/* ---- level iterator --------------------------------------------------- */

/* Splits topic; compares the level count and the levels joined by '|'. */
static void assert_levels(const char *topic, size_t want_count, const char *want)
{
    char got[256] = "";
    size_t used = 0, count = 0;
    struct mqtt_level_iter it;
    struct mqtt_bytes level;
    mqtt_level_iter_init(&it, mqtt_bytes_from_cstr(topic));
    while (mqtt_level_iter_next(&it, &level)) {
        assert_true(used + level.len + 2 < sizeof(got));
        if (count++ > 0)
            got[used++] = '|';
        memcpy(got + used, level.data, level.len);
        used += level.len;
        got[used] = '\0';
    }
    assert_false(mqtt_level_iter_next(&it, &level)); /* stays exhausted */
    assert_int_equal(count, want_count);
    assert_string_equal(got, want);
}

static void test_levels_split_on_every_separator(void **state)
{
    (void)state;
    assert_levels("a", 1, "a");
    assert_levels("sport/tennis/player1", 3, "sport|tennis|player1");
    assert_levels("a//b", 3, "a||b");
}

static void test_levels_leading_and_trailing_separators_give_empty_levels(void **state)
{
    (void)state;
    /* "/a/" has three levels: "", "a", "" */
    assert_levels("/a/", 3, "|a|");
    assert_levels("/", 2, "|");
    assert_levels("a/", 2, "a|");
}

static void test_levels_empty_topic_has_one_empty_level(void **state)
{
    (void)state;
    struct mqtt_level_iter it;
    struct mqtt_bytes level;
    mqtt_level_iter_init(&it, mqtt_bytes_from_cstr(""));
    assert_true(mqtt_level_iter_next(&it, &level));
    assert_int_equal(level.len, 0);
    assert_true(it.done);
    assert_false(mqtt_level_iter_next(&it, &level));
}

static void test_levels_are_views_into_the_topic(void **state)
{
    (void)state;
    const char *topic = "ab/cd";
    struct mqtt_level_iter it;
    struct mqtt_bytes level;
    mqtt_level_iter_init(&it, mqtt_bytes_from_cstr(topic));
    assert_true(mqtt_level_iter_next(&it, &level));
    assert_ptr_equal(level.data, topic);
    assert_false(it.done);
    assert_true(mqtt_level_iter_next(&it, &level));
    assert_ptr_equal(level.data, topic + 3);
    assert_int_equal(level.len, 2);
    assert_true(it.done);
}

static void test_levels_binary_safe_with_explicit_length(void **state)
{
    (void)state;
    /* Only the view's length counts; bytes after it are never read. */
    struct mqtt_bytes b = {(const uint8_t *)"a/b/c", 3};
    struct mqtt_level_iter it;
    struct mqtt_bytes level;
    mqtt_level_iter_init(&it, b);
    assert_true(mqtt_level_iter_next(&it, &level));
    assert_true(mqtt_level_iter_next(&it, &level));
    assert_int_equal(level.len, 1);
    assert_int_equal(level.data[0], 'b');
    assert_false(mqtt_level_iter_next(&it, &level));
}

/* ---- matching [MQTT-4.7] ---------------------------------------------- */

struct match_case {
    const char *filter;
    const char *name;
    bool want;
};

static void run_match_table(const struct match_case *cases, size_t n)
{
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(filter_check(cases[i].filter), MQTT_OK);
        assert_int_equal(name_check(cases[i].name), MQTT_OK);
        if (matches(cases[i].filter, cases[i].name) != cases[i].want) {
            print_error("filter \"%s\" name \"%s\": want %s\n", cases[i].filter, cases[i].name,
                        cases[i].want ? "match" : "no match");
            failed++;
        }
    }
    assert_int_equal(failed, 0);
}

#define RUN_TABLE(t) run_match_table((t), sizeof(t) / sizeof((t)[0]))

static void test_match_spec_examples_4_7_1_2_multi_level(void **state)
{
    (void)state;
    static const struct match_case t[] = {
        {"sport/tennis/player1/#", "sport/tennis/player1", true},
        {"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
        {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
        {"sport/#", "sport", true}, /* '#' includes the parent level */
        {"#", "sport/tennis/player1", true},
        {"sport/tennis/#", "sport/tennis/player1/ranking", true},
        {"sport/tennis/player1/#", "sport/tennis/player2", false},
    };
    RUN_TABLE(t);
}

static void test_match_spec_examples_4_7_1_3_single_level(void **state)
{
    (void)state;
    static const struct match_case t[] = {
        {"sport/tennis/+", "sport/tennis/player1", true},
        {"sport/tennis/+", "sport/tennis/player2", true},
        {"sport/tennis/+", "sport/tennis/player1/ranking", false},
        {"sport/+", "sport", false},
        {"sport/+", "sport/", true},
        {"+/+", "/finance", true},
        {"/+", "/finance", true},
        {"+", "/finance", false},
        {"+/tennis/#", "sport/tennis/player1/ranking", true},
        {"sport/+/player1", "sport/tennis/player1", true},
    };
    RUN_TABLE(t);
}

static void test_match_spec_examples_4_7_2_dollar_topics_MQTT_4_7_2_1(void **state)
{
    (void)state;
    static const struct match_case t[] = {
        {"#", "$SYS/x", false},
        {"#", "$SYS/broker/uptime", false},
        {"+/monitor/Clients", "$SYS/monitor/Clients", false},
        {"$SYS/#", "$SYS/x", true},
        {"$SYS/#", "$SYS/broker/uptime", true},
        {"$SYS/monitor/+", "$SYS/monitor/Clients", true},
        {"#", "sport/tennis", true}, /* both "#" and "$SYS/#" are needed for everything */
    };
    RUN_TABLE(t);
}

static void test_match_dollar_rule_edges_MQTT_4_7_2_1(void **state)
{
    (void)state;
    static const struct match_case t[] = {
        {"+", "$SYS", false},     {"+/#", "$SYS/x", false}, {"+/+", "$SYS/x", false},
        {"$SYS/#", "$SYS", true}, {"$SYS", "$SYS", true},   {"$SYS/+", "$SYS/", true},
        {"#", "a/$SYS", true}, /* only the first character of the name counts */
        {"a/+", "a/$x", true},    {"+/#", "a", true},       {"$share/+", "$share/x", true},
    };
    RUN_TABLE(t);
}

static void test_match_empty_levels(void **state)
{
    (void)state;
    static const struct match_case t[] = {
        {"+/+", "/", true}, /* '+' matches an empty level */
        {"+", "/", false},  {"/+", "/", true},  {"+/", "/", true},  {"a/+/c", "a//c", true},
        {"#", "/", true},   {"/#", "/", true},  {"/#", "a", false}, {"sport/#", "sport/", true},
        {"//", "//", true}, {"/", "//", false},
    };
    RUN_TABLE(t);
}

static void test_match_literal_levels(void **state)
{
    (void)state;
    static const struct match_case t[] = {
        {"a/b", "a/b", true},
        {"a/b", "a/b/", false},
        {"a/b/", "a/b", false},
        {"a", "ab", false},
        {"ab", "a", false},
        {"a/#", "ab", false},
        {"a/b/#", "a", false},
        {"a/#", "a/b/c", true},
        {"ACCOUNTS", "Accounts", false}, /* case-sensitive [MQTT-4.7.3-4] */
        {"/finance", "finance", false},
        {"Accounts payable", "Accounts payable", true},
        {"\xC3\xBC/+", "\xC3\xBC/x", true},
        {"\xC3\xA9", "e\xCC\x81", false}, /* no Unicode normalization [MQTT-4.7.3-4] */
    };
    RUN_TABLE(t);
}

static void test_match_uses_view_lengths_not_nul(void **state)
{
    (void)state;
    struct mqtt_bytes filter = {(const uint8_t *)"a/+xyz", 3};
    struct mqtt_bytes name = {(const uint8_t *)"a/bcd", 3};
    assert_true(mqtt_topic_matches(filter, name));
}

/*
 * Reference matcher over C strings by recursion, to cross-check every
 * filter/name pair over a small alphabet.
 */
static bool ref_match_levels(const char *f, const char *n)
{
    if (f[0] == '#')
        return true;
    size_t fl = strcspn(f, "/"), nl = strcspn(n, "/");
    bool level_ok = (fl == 1 && f[0] == '+') || (fl == nl && strncmp(f, n, fl) == 0);
    if (!level_ok)
        return false;
    if (f[fl] == '\0' || n[nl] == '\0') {
        /* "a/#" also matches "a" */
        if (n[nl] == '\0' && f[fl] == '/' && strcmp(f + fl + 1, "#") == 0)
            return true;
        return f[fl] == '\0' && n[nl] == '\0';
    }
    return ref_match_levels(f + fl + 1, n + nl + 1);
}

static bool ref_match(const char *f, const char *n)
{
    if (n[0] == '$' && (f[0] == '+' || f[0] == '#'))
        return false;
    return ref_match_levels(f, n);
}

/* Calls fn on every string of length 1..max over alphabet. */
static void each_string(const char *alphabet, size_t max, void (*fn)(const char *, void *),
                        void *arg)
{
    size_t k = strlen(alphabet);
    char s[8];
    assert_true(max < sizeof(s));
    for (size_t len = 1; len <= max; len++) {
        size_t total = 1;
        for (size_t i = 0; i < len; i++)
            total *= k;
        for (size_t v = 0; v < total; v++) {
            size_t x = v;
            for (size_t i = 0; i < len; i++, x /= k)
                s[i] = alphabet[x % k];
            s[len] = '\0';
            fn(s, arg);
        }
    }
}

struct cross {
    char filters[4096][8];
    size_t nfilters;
    size_t checked;
};

static void collect_filter(const char *s, void *arg)
{
    struct cross *c = arg;
    if (filter_check(s) != MQTT_OK)
        return;
    assert_true(c->nfilters < sizeof(c->filters) / sizeof(c->filters[0]));
    strcpy(c->filters[c->nfilters++], s);
}

static void check_name(const char *name, void *arg)
{
    struct cross *c = arg;
    if (name_check(name) != MQTT_OK)
        return;
    for (size_t i = 0; i < c->nfilters; i++) {
        if (matches(c->filters[i], name) != ref_match(c->filters[i], name))
            fail_msg("filter \"%s\" name \"%s\"", c->filters[i], name);
        c->checked++;
    }
}

static size_t levels_of(const char *s)
{
    return mqtt_topic_levels(mqtt_bytes_from_cstr(s));
}

static void test_topic_levels_count_slashes_plus_one(void **state)
{
    (void)state;
    assert_int_equal(levels_of(""), 1);
    assert_int_equal(levels_of("a"), 1);
    assert_int_equal(levels_of("a/b"), 2);
    assert_int_equal(levels_of("/"), 2);
    assert_int_equal(levels_of("//"), 3);
    assert_int_equal(levels_of("a/+/#"), 3);
    /* The view's length counts, not a NUL: "a/b" seen as "a". */
    struct mqtt_bytes prefix = {(const uint8_t *)"a/b", 1};
    assert_int_equal(mqtt_topic_levels(prefix), 1);
    char deep[401];
    for (int i = 0; i < 200; i++) {
        deep[2 * i] = 'x';
        deep[2 * i + 1] = '/';
    }
    deep[399] = '\0'; /* 200 levels: x/x/.../x */
    assert_int_equal(levels_of(deep), 200);
}

static void test_match_all_short_topics_agree_with_reference(void **state)
{
    (void)state;
    struct cross *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    each_string("a/+#$", 5, collect_filter, c);
    each_string("ab/$", 5, check_name, c);
    assert_true(c->checked > 100000);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topic_levels_count_slashes_plus_one),
        cmocka_unit_test(test_utf8_empty_string_accepted),
        cmocka_unit_test(test_utf8_ascii_accepted),
        cmocka_unit_test(test_utf8_nul_u0000_rejected_MQTT_1_5_3_2),
        cmocka_unit_test(test_utf8_overlong_nul_c0_80_rejected_MQTT_1_5_3_1),
        cmocka_unit_test(test_utf8_overlong_2byte_rejected_MQTT_1_5_3_1),
        cmocka_unit_test(test_utf8_2byte_range_u0080_to_u07ff_accepted),
        cmocka_unit_test(test_utf8_overlong_3byte_rejected_MQTT_1_5_3_1),
        cmocka_unit_test(test_utf8_3byte_min_u0800_and_max_uffff_accepted),
        cmocka_unit_test(test_utf8_overlong_4byte_rejected_MQTT_1_5_3_1),
        cmocka_unit_test(test_utf8_4byte_min_u10000_accepted),
        cmocka_unit_test(test_utf8_surrogate_d800_rejected_MQTT_1_5_3_1),
        cmocka_unit_test(test_utf8_surrogate_dfff_rejected_MQTT_1_5_3_1),
        cmocka_unit_test(test_utf8_surrogate_pair_cesu8_rejected_MQTT_1_5_3_1),
        cmocka_unit_test(test_utf8_around_surrogates_ud7ff_ue000_accepted),
        cmocka_unit_test(test_utf8_u10ffff_accepted),
        cmocka_unit_test(test_utf8_u110000_rejected_MQTT_1_5_3_1),
        cmocka_unit_test(test_utf8_lead_bytes_f5_to_ff_rejected_MQTT_1_5_3_1),
        cmocka_unit_test(test_utf8_lead_bytes_c0_c1_rejected_MQTT_1_5_3_1),
        cmocka_unit_test(test_utf8_stray_continuation_byte_rejected_MQTT_1_5_3_1),
        cmocka_unit_test(test_utf8_truncated_sequence_at_end_rejected_MQTT_1_5_3_1),
        cmocka_unit_test(test_utf8_continuation_replaced_by_ascii_rejected_MQTT_1_5_3_1),
        cmocka_unit_test(test_utf8_bom_ufeff_accepted_MQTT_1_5_3_3),
        cmocka_unit_test(test_utf8_control_and_noncharacters_accepted),
        cmocka_unit_test(test_utf8_spec_example_1_5_3_a_u2a6d4_accepted),
        cmocka_unit_test(test_utf8_max_65535_byte_string_accepted),
        cmocka_unit_test(test_utf8_max_65535_byte_string_truncated_tail_rejected),
        cmocka_unit_test(test_utf8_exhaustive_1_to_3_bytes_agree_with_reference),
        cmocka_unit_test(test_utf8_4byte_leads_agree_with_reference),
        cmocka_unit_test(test_topic_name_empty_rejected_MQTT_4_7_3_1),
        cmocka_unit_test(test_topic_name_with_plus_rejected_MQTT_4_7_1_1),
        cmocka_unit_test(test_topic_name_with_hash_rejected_MQTT_3_3_2_2),
        cmocka_unit_test(test_topic_name_spec_examples_4_7_3_accepted),
        cmocka_unit_test(test_topic_name_nul_rejected_MQTT_4_7_3_2),
        cmocka_unit_test(test_topic_name_invalid_utf8_rejected_MQTT_1_5_3_1),
        cmocka_unit_test(test_topic_name_65535_bytes_accepted_MQTT_4_7_3_3),
        cmocka_unit_test(test_topic_name_65536_bytes_rejected_MQTT_4_7_3_3),
        cmocka_unit_test(test_filter_empty_rejected_MQTT_4_7_3_1),
        cmocka_unit_test(test_filter_spec_examples_4_7_1_2_hash),
        cmocka_unit_test(test_filter_hash_not_last_level_rejected_MQTT_4_7_1_2),
        cmocka_unit_test(test_filter_hash_not_whole_level_rejected_MQTT_4_7_1_2),
        cmocka_unit_test(test_filter_hash_after_separator_accepted_MQTT_4_7_1_2),
        cmocka_unit_test(test_filter_spec_examples_4_7_1_3_plus),
        cmocka_unit_test(test_filter_plus_not_whole_level_rejected_MQTT_4_7_1_3),
        cmocka_unit_test(test_filter_plus_whole_levels_accepted_MQTT_4_7_1_3),
        cmocka_unit_test(test_filter_plain_and_empty_levels_accepted),
        cmocka_unit_test(test_filter_invalid_utf8_rejected_MQTT_1_5_3_1),
        cmocka_unit_test(test_filter_65535_bytes_accepted_MQTT_4_7_3_3),
        cmocka_unit_test(test_filter_65536_bytes_rejected_MQTT_4_7_3_3),
        cmocka_unit_test(test_levels_split_on_every_separator),
        cmocka_unit_test(test_levels_leading_and_trailing_separators_give_empty_levels),
        cmocka_unit_test(test_levels_empty_topic_has_one_empty_level),
        cmocka_unit_test(test_levels_are_views_into_the_topic),
        cmocka_unit_test(test_levels_binary_safe_with_explicit_length),
        cmocka_unit_test(test_match_spec_examples_4_7_1_2_multi_level),
        cmocka_unit_test(test_match_spec_examples_4_7_1_3_single_level),
        cmocka_unit_test(test_match_spec_examples_4_7_2_dollar_topics_MQTT_4_7_2_1),
        cmocka_unit_test(test_match_dollar_rule_edges_MQTT_4_7_2_1),
        cmocka_unit_test(test_match_empty_levels),
        cmocka_unit_test(test_match_literal_levels),
        cmocka_unit_test(test_match_uses_view_lengths_not_nul),
        cmocka_unit_test(test_match_all_short_topics_agree_with_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
