/*
 * test_metrics.c - the text exposition format of src/metrics/format.c:
 * families announced by HELP and TYPE before their samples, labels by QoS,
 * histogram buckets in seconds, cumulative, with +Inf, _sum and _count.
 * The HTTP side is tested end to end by tests/integration/test_metrics.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "metrics.h"

static char *format(const struct metrics_stats *st)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(metrics_format(st, &text, &len), 0);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    return text;
}

static void assert_has_line(const char *text, const char *line)
{
    char want[256];
    snprintf(want, sizeof(want), "\n%s\n", line);
    if (strstr(text, want) == NULL && strncmp(text, line, strlen(line)) != 0)
        fail_msg("missing line '%s' in:\n%s", line, text);
}

static void test_every_sample_follows_its_help_and_type_lines(void **state)
{
    (void)state;
    struct metrics_stats st = {.version = "1.2.3", .connections_open = 4};
    char *text = format(&st);
    assert_has_line(text, "# HELP sol_connections Open network connections (TLS handshakes "
                          "included).");
    const char *type = strstr(text, "# TYPE sol_connections gauge\nsol_connections 4\n");
    assert_non_null(type);
    assert_has_line(text, "sol_build_info{version=\"1.2.3\"} 1");
    /* Every line is a comment or starts with sol_. */
    for (const char *line = text; *line != '\0'; line = strchr(line, '\n') + 1) {
        if (line[0] != '#' && strncmp(line, "sol_", 4) != 0)
            fail_msg("line without sol_: %.60s", line);
    }
    assert_int_equal(text[strlen(text) - 1], '\n');
    free(text);
}

static void test_messages_by_qos_have_one_sample_per_qos(void **state)
{
    (void)state;
    struct metrics_stats st = {.messages_received = {1, 2, 3}, .payload_bytes_sent = {0, 7, 0}};
    char *text = format(&st);
    assert_has_line(text, "# TYPE sol_messages_received_total counter");
    assert_has_line(text, "sol_messages_received_total{qos=\"0\"} 1");
    assert_has_line(text, "sol_messages_received_total{qos=\"1\"} 2");
    assert_has_line(text, "sol_messages_received_total{qos=\"2\"} 3");
    assert_has_line(text, "sol_payload_sent_bytes_total{qos=\"1\"} 7");
    free(text);
}

static void test_histogram_buckets_in_seconds_cumulative_with_inf_sum_and_count(void **state)
{
    (void)state;
    struct metrics_stats st = {.commit_latency = {.bucket_count = 4,
                                                  .bound_us = {50, 1500, 250000, 1000000},
                                                  .cumulative = {1, 3, 3, 4},
                                                  .count = 5,
                                                  .sum_us = 2000050}};
    char *text = format(&st);
    assert_has_line(text, "# TYPE sol_store_commit_duration_seconds histogram");
    assert_has_line(text, "sol_store_commit_duration_seconds_bucket{le=\"0.00005\"} 1");
    assert_has_line(text, "sol_store_commit_duration_seconds_bucket{le=\"0.0015\"} 3");
    assert_has_line(text, "sol_store_commit_duration_seconds_bucket{le=\"0.25\"} 3");
    assert_has_line(text, "sol_store_commit_duration_seconds_bucket{le=\"1\"} 4");
    assert_has_line(text, "sol_store_commit_duration_seconds_bucket{le=\"+Inf\"} 5");
    assert_has_line(text, "sol_store_commit_duration_seconds_sum 2.00005");
    assert_has_line(text, "sol_store_commit_duration_seconds_count 5");
    free(text);
}

static void test_store_gauges_absent_when_the_store_could_not_be_read(void **state)
{
    (void)state;
    struct metrics_stats st = {.has_store = false, .store_commits = 9};
    char *text = format(&st);
    assert_null(strstr(text, "sol_store_used_bytes"));
    assert_has_line(text, "sol_store_commits_total 9");
    free(text);
    st.has_store = true;
    st.store_map_used = 4096;
    text = format(&st);
    assert_has_line(text, "sol_store_used_bytes 4096");
    free(text);
}

static void test_no_bridge_metrics_without_bridges(void **state)
{
    (void)state;
    struct metrics_stats st = {0};
    char *text = format(&st);
    assert_null(strstr(text, "bridge"));
    free(text);
}

static void test_bridge_families_have_one_sample_per_bridge_labelled_by_name(void **state)
{
    (void)state;
    struct metrics_bridge bridges[2] = {
        {.name = "cloud", .connected = true, .queued_messages = 3, .queued_bytes = 30,
         .inflight_messages = 2, .publishes_refused = 1, .connects = 4},
        {.name = "backup.1", .connected = false, .queued_messages = 7},
    };
    struct metrics_stats st = {.bridges = bridges, .bridge_count = 2};
    char *text = format(&st);
    assert_has_line(text, "# TYPE sol_bridge_connected gauge");
    assert_has_line(text, "sol_bridge_connected{name=\"cloud\"} 1");
    assert_has_line(text, "sol_bridge_connected{name=\"backup.1\"} 0");
    assert_has_line(text, "sol_bridge_queued_messages{name=\"cloud\"} 3");
    assert_has_line(text, "sol_bridge_queued_messages{name=\"backup.1\"} 7");
    assert_has_line(text, "sol_bridge_queued_bytes{name=\"cloud\"} 30");
    assert_has_line(text, "sol_bridge_inflight_messages{name=\"cloud\"} 2");
    assert_has_line(text, "# TYPE sol_bridge_publishes_refused_total counter");
    assert_has_line(text, "sol_bridge_publishes_refused_total{name=\"cloud\"} 1");
    assert_has_line(text, "sol_bridge_connects_total{name=\"cloud\"} 4");
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_sample_follows_its_help_and_type_lines),
        cmocka_unit_test(test_messages_by_qos_have_one_sample_per_qos),
        cmocka_unit_test(test_histogram_buckets_in_seconds_cumulative_with_inf_sum_and_count),
        cmocka_unit_test(test_store_gauges_absent_when_the_store_could_not_be_read),
        cmocka_unit_test(test_no_bridge_metrics_without_bridges),
        cmocka_unit_test(test_bridge_families_have_one_sample_per_bridge_labelled_by_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
