/*
 * test_config.c - the config file parser and defaults (src/util/config.h):
 * every directive, every error message with its PATH:LINE, comments, CRLF,
 * blanks, Mosquitto 2's listener and allow_anonymous defaults.
 *
 * Not for: what the broker does with the values (integration tests).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"

/* ---- fixture: a config and a fresh temporary file --------------------- */

struct fixture {
    struct sol_config cfg;
    char path[64];
    char err[512];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    snprintf(f->path, sizeof(f->path), "/tmp/sol-test-config-XXXXXX");
    int fd = mkstemp(f->path);
    if (fd < 0) {
        free(f);
        return -1;
    }
    close(fd);
    config_init(&f->cfg);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    config_deinit(&f->cfg);
    unlink(f->path);
    free(f);
    return 0;
}

static void write_file(const struct fixture *f, const char *text, size_t len)
{
    FILE *fp = fopen(f->path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

/* Writes text to the fixture's file and loads it. */
static int load(struct fixture *f, const char *text)
{
    write_file(f, text, strlen(text));
    f->err[0] = '\0';
    return config_load_file(&f->cfg, f->path, f->err, sizeof(f->err));
}

static void load_ok(struct fixture *f, const char *text)
{
    if (load(f, text) != 0)
        fail_msg("unexpected error: %s", f->err);
}

/* Loads text, expects failure with "PATH:line: message". */
static void load_fails(struct fixture *f, const char *text, unsigned line, const char *message)
{
    char want[512];
    snprintf(want, sizeof(want), "%s:%u: %s", f->path, line, message);
    assert_int_equal(load(f, text), -1);
    assert_string_equal(f->err, want);
}

/* ---- defaults ---------------------------------------------------------- */

static void test_init_sets_defaults(void **state)
{
    struct sol_config *cfg = &((struct fixture *)*state)->cfg;
    assert_int_equal(cfg->listener_count, 0);
    assert_null(cfg->listeners);
    assert_int_equal(cfg->default_port, 1883);
    assert_string_equal(cfg->persistence_location, "./sol-data");
    assert_int_equal(cfg->allow_anonymous, -1);
    assert_int_equal(cfg->max_inflight_messages, 20);
    assert_int_equal(cfg->max_queued_messages, 1000);
    assert_int_equal(cfg->max_topic_levels, 200);
    assert_int_equal(cfg->receive_maximum, 100);
    assert_int_equal(cfg->max_topic_alias, 10);
    assert_int_equal(cfg->storage_sync, CONFIG_SYNC_FSYNC);
    assert_int_equal(cfg->storage_max_size, 1024ull * 1024 * 1024);
    assert_int_equal(cfg->log_types, CONFIG_LOG_ERROR | CONFIG_LOG_WARNING | CONFIG_LOG_NOTICE |
                                         CONFIG_LOG_INFORMATION);
}

static void test_no_listener_defaults_to_localhost_1883_and_anonymous(void **state)
{
    struct sol_config *cfg = &((struct fixture *)*state)->cfg;
    assert_int_equal(config_apply_defaults(cfg), 0);
    assert_int_equal(cfg->listener_count, 1);
    assert_int_equal(cfg->listeners[0].port, 1883);
    assert_string_equal(cfg->listeners[0].bind_address, "127.0.0.1");
    assert_null(cfg->listeners[0].unix_path);
    assert_int_equal(cfg->allow_anonymous, 1);
}

static void test_no_listener_default_port_and_explicit_anonymous_are_kept(void **state)
{
    struct fixture *f = *state;
    load_ok(f, "allow_anonymous false\n");
    f->cfg.default_port = 1999; /* main's -p */
    assert_int_equal(config_apply_defaults(&f->cfg), 0);
    assert_int_equal(f->cfg.listener_count, 1);
    assert_int_equal(f->cfg.listeners[0].port, 1999);
    assert_int_equal(f->cfg.allow_anonymous, 0);
}

static void test_listener_configured_makes_anonymous_opt_in(void **state)
{
    struct fixture *f = *state;
    load_ok(f, "listener 1884\n");
    assert_int_equal(config_apply_defaults(&f->cfg), 0);
    assert_int_equal(f->cfg.listener_count, 1);
    assert_int_equal(f->cfg.allow_anonymous, 0);

    config_deinit(&f->cfg);
    load_ok(f, "listener 1884\nallow_anonymous true\n");
    assert_int_equal(config_apply_defaults(&f->cfg), 0);
    assert_int_equal(f->cfg.listener_count, 1);
    assert_int_equal(f->cfg.allow_anonymous, 1);
}

/* ---- directives -------------------------------------------------------- */

static void test_listener_port_address_and_unix_socket(void **state)
{
    struct fixture *f = *state;
    load_ok(f, "listener 1883\n"
               "listener 8883 0.0.0.0\n"
               "listener 65535 ::1\n"
               "listener 0 /run/sol/sol.sock\n");
    struct config_listener *l = f->cfg.listeners;
    assert_int_equal(f->cfg.listener_count, 4);
    assert_int_equal(l[0].port, 1883);
    assert_null(l[0].bind_address);
    assert_null(l[0].unix_path);
    assert_int_equal(l[1].port, 8883);
    assert_string_equal(l[1].bind_address, "0.0.0.0");
    assert_int_equal(l[2].port, 65535);
    assert_string_equal(l[2].bind_address, "::1");
    assert_int_equal(l[3].port, 0);
    assert_null(l[3].bind_address);
    assert_string_equal(l[3].unix_path, "/run/sol/sol.sock");
    char where[128];
    snprintf(where, sizeof(where), "%s:4", f->path);
    assert_string_equal(l[3].where, where);
}

static void test_persistence_location_takes_rest_of_line(void **state)
{
    struct fixture *f = *state;
    load_ok(f, "persistence_location /var/lib/sol\n");
    assert_string_equal(f->cfg.persistence_location, "/var/lib/sol");
    load_ok(f, "persistence_location   /data/my store/sol  \n");
    assert_string_equal(f->cfg.persistence_location, "/data/my store/sol");
}

static void test_allow_anonymous_true_and_false(void **state)
{
    struct fixture *f = *state;
    load_ok(f, "allow_anonymous true\n");
    assert_int_equal(f->cfg.allow_anonymous, 1);
    load_ok(f, "allow_anonymous false\n");
    assert_int_equal(f->cfg.allow_anonymous, 0);
}

static void test_max_inflight_and_queued_messages_bounds(void **state)
{
    struct fixture *f = *state;
    load_ok(f, "max_inflight_messages 0\nmax_queued_messages 0\n");
    assert_int_equal(f->cfg.max_inflight_messages, 0);
    assert_int_equal(f->cfg.max_queued_messages, 0);
    load_ok(f, "max_inflight_messages 65535\nmax_queued_messages 2147483647\n");
    assert_int_equal(f->cfg.max_inflight_messages, 65535);
    assert_int_equal(f->cfg.max_queued_messages, 2147483647u);
    load_ok(f, "max_inflight_messages +7\nmax_queued_messages 007\n");
    assert_int_equal(f->cfg.max_inflight_messages, 7);
    assert_int_equal(f->cfg.max_queued_messages, 7);
}

static void test_storage_sync_fsync_and_nosync(void **state)
{
    struct fixture *f = *state;
    load_ok(f, "storage_sync nosync\n");
    assert_int_equal(f->cfg.storage_sync, CONFIG_SYNC_NOSYNC);
    load_ok(f, "storage_sync fsync\n");
    assert_int_equal(f->cfg.storage_sync, CONFIG_SYNC_FSYNC);
}

static void test_storage_thread_defaults_on_and_switches(void **state)
{
    struct fixture *f = *state;
    load_ok(f, "\n");
    assert_true(f->cfg.storage_thread);
    load_ok(f, "storage_thread false\n");
    assert_false(f->cfg.storage_thread);
    load_ok(f, "storage_thread true\n");
    assert_true(f->cfg.storage_thread);
}

static void test_io_uring_defaults_on_and_switches(void **state)
{
    struct fixture *f = *state;
    load_ok(f, "\n");
    assert_true(f->cfg.io_uring);
    load_ok(f, "io_uring false\n");
    assert_false(f->cfg.io_uring);
    load_ok(f, "io_uring true\n");
    assert_true(f->cfg.io_uring);
}

static void test_storage_max_size_with_suffixes(void **state)
{
    static const struct {
        const char *text;
        uint64_t bytes;
    } cases[] = {
        {"storage_max_size 1\n", 1},
        {"storage_max_size 4096\n", 4096},
        {"storage_max_size 512k\n", 512ull << 10},
        {"storage_max_size 2K\n", 2ull << 10},
        {"storage_max_size 64M\n", 64ull << 20},
        {"storage_max_size 3G\n", 3ull << 30},
        {"storage_max_size 17179869183G\n", 17179869183ull << 30}, /* the largest in G */
        {"storage_max_size 18446744073709551615\n", UINT64_MAX},
    };
    struct fixture *f = *state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        load_ok(f, cases[i].text);
        assert_int_equal(f->cfg.storage_max_size, cases[i].bytes);
    }
}

static void test_log_type_first_line_replaces_then_adds(void **state)
{
    struct fixture *f = *state;
    load_ok(f, "log_type error\nlog_type debug\nlog_type subscribe\n");
    assert_int_equal(f->cfg.log_types, CONFIG_LOG_ERROR | CONFIG_LOG_DEBUG | CONFIG_LOG_SUBSCRIBE);
    load_ok(f, "log_type none\n");
    assert_int_equal(f->cfg.log_types, 0);
    load_ok(f, "log_type all\n");
    assert_int_equal(f->cfg.log_types, CONFIG_LOG_ALL);
    load_ok(f, "log_type warning\nlog_type notice\nlog_type information\nlog_type unsubscribe\n");
    assert_int_equal(f->cfg.log_types, CONFIG_LOG_WARNING | CONFIG_LOG_NOTICE |
                                           CONFIG_LOG_INFORMATION | CONFIG_LOG_UNSUBSCRIBE);
}

static void test_later_lines_and_files_override_listeners_accumulate(void **state)
{
    struct fixture *f = *state;
    load_ok(f, "max_inflight_messages 5\nmax_inflight_messages 6\nlistener 1\n");
    load_ok(f, "listener 2\nstorage_sync nosync\n");
    assert_int_equal(f->cfg.max_inflight_messages, 6);
    assert_int_equal(f->cfg.storage_sync, CONFIG_SYNC_NOSYNC);
    assert_int_equal(f->cfg.listener_count, 2);
    assert_int_equal(f->cfg.listeners[0].port, 1);
    assert_int_equal(f->cfg.listeners[1].port, 2);
}

/* ---- layout: comments, blanks, CRLF ------------------------------------ */

static void test_comments_blank_lines_crlf_tabs_and_trailing_blanks(void **state)
{
    struct fixture *f = *state;
    load_ok(f, "# Sol test config\r\n"
               "\r\n"
               "   \t \n"
               "  # indented comment\n"
               "listener 1883 127.0.0.1\r\n"
               "max_queued_messages\t\t77 \t\r\n"
               "\tallow_anonymous true   \n"
               "persistence_location /tmp/x\r\n"
               "log_type debug"); /* no final newline */
    assert_int_equal(f->cfg.listener_count, 1);
    assert_string_equal(f->cfg.listeners[0].bind_address, "127.0.0.1");
    assert_int_equal(f->cfg.max_queued_messages, 77);
    assert_int_equal(f->cfg.allow_anonymous, 1);
    assert_string_equal(f->cfg.persistence_location, "/tmp/x");
    assert_int_equal(f->cfg.log_types, CONFIG_LOG_DEBUG);
}

static void test_empty_file_changes_nothing(void **state)
{
    struct fixture *f = *state;
    load_ok(f, "");
    assert_int_equal(f->cfg.listener_count, 0);
    assert_int_equal(f->cfg.max_inflight_messages, 20);
}

/* ---- errors: exact message and line ------------------------------------ */

static void test_error_unknown_directive_names_line(void **state)
{
    struct fixture *f = *state;
    load_fails(f, "# comment\n\nbind_address 0.0.0.0\n", 3, "unknown directive 'bind_address'");
    load_fails(f, "Listener 1883\n", 1, "unknown directive 'Listener'");
    /* Like Mosquitto, no comments after a directive. */
    load_fails(f, "max_inflight_messages 5 # five\n", 1,
               "max_inflight_messages: unexpected extra value '#'");
}

static void test_error_line_numbers_count_crlf_and_comment_lines(void **state)
{
    struct fixture *f = *state;
    load_fails(f, "#a\r\n\r\nlistener 1\r\n#b\r\nmax_inflight_messages x\r\n", 5,
               "max_inflight_messages: 'x' is not an integer");
}

static void test_error_missing_value(void **state)
{
    struct fixture *f = *state;
    load_fails(f, "listener\n", 1, "listener: missing value");
    load_fails(f, "allow_anonymous   \n", 1, "allow_anonymous: missing value");
    load_fails(f, "persistence_location\r\n", 1, "persistence_location: missing value");
    load_fails(f, "max_inflight_messages\n", 1, "max_inflight_messages: missing value");
    load_fails(f, "max_queued_messages\n", 1, "max_queued_messages: missing value");
    load_fails(f, "storage_sync\n", 1, "storage_sync: missing value");
    load_fails(f, "storage_max_size\n", 1, "storage_max_size: missing value");
    load_fails(f, "log_type\n", 1, "log_type: missing value");
}

static void test_error_extra_value(void **state)
{
    struct fixture *f = *state;
    load_fails(f, "listener 1883 127.0.0.1 extra\n", 1, "listener: unexpected extra value 'extra'");
    load_fails(f, "allow_anonymous true false\n", 1,
               "allow_anonymous: unexpected extra value 'false'");
    load_fails(f, "max_inflight_messages 1 2\n", 1,
               "max_inflight_messages: unexpected extra value '2'");
    load_fails(f, "storage_sync fsync now\n", 1, "storage_sync: unexpected extra value 'now'");
    load_fails(f, "log_type debug error\n", 1, "log_type: unexpected extra value 'error'");
}

static void test_error_listener_port(void **state)
{
    struct fixture *f = *state;
    load_fails(f, "listener 65536\n", 1, "listener: '65536' is out of range 0..65535");
    load_fails(f, "listener -1\n", 1, "listener: '-1' is out of range 0..65535");
    load_fails(f, "listener mqtt\n", 1, "listener: 'mqtt' is not an integer");
    load_fails(f, "listener 18x3\n", 1, "listener: '18x3' is not an integer");
    load_fails(f, "listener 0x10\n", 1, "listener: '0x10' is not an integer");
    load_fails(f, "listener 99999999999999999999\n", 1,
               "listener: '99999999999999999999' is out of range 0..65535");
    load_fails(f, "listener 0\n", 1,
               "listener: port 0 needs a unix socket path (listener 0 /path/to/socket)");
}

/* ---- metrics_listener -------------------------------------------------- */

static void test_metrics_listener_is_off_by_default(void **state)
{
    struct fixture *f = *state;
    load_ok(f, "listener 1883\n");
    assert_int_equal(f->cfg.metrics_port, 0);
    assert_null(f->cfg.metrics_address);
    assert_null(f->cfg.metrics_where);
}

static void test_metrics_listener_port_address_and_later_line_wins(void **state)
{
    struct fixture *f = *state;
    load_ok(f, "metrics_listener 9100\n");
    assert_int_equal(f->cfg.metrics_port, 9100);
    assert_null(f->cfg.metrics_address);
    load_ok(f, "metrics_listener 1 ::1\nmetrics_listener 65535 127.0.0.1\n");
    assert_int_equal(f->cfg.metrics_port, 65535);
    assert_string_equal(f->cfg.metrics_address, "127.0.0.1");
    char where[128];
    snprintf(where, sizeof(where), "%s:2", f->path);
    assert_string_equal(f->cfg.metrics_where, where);
    assert_int_equal(f->cfg.listener_count, 0); /* not an MQTT listener */
}

static void test_protocol_websockets_applies_to_the_listener_above(void **state)
{
    struct fixture *f = *state;
    load_ok(f, "listener 1883\n"
               "listener 8080 127.0.0.1\n"
               "protocol websockets\n"
               "listener 8081\n"
               "protocol websockets\n"
               "protocol mqtt\n");
    assert_int_equal(f->cfg.listener_count, 3);
    assert_false(f->cfg.listeners[0].is_websockets);
    assert_true(f->cfg.listeners[1].is_websockets);
    assert_false(f->cfg.listeners[2].is_websockets); /* the later line wins */
}

static void test_error_protocol_value_and_place(void **state)
{
    struct fixture *f = *state;
    load_fails(f, "protocol websockets\n", 1, "protocol: must follow a listener line");
    load_fails(f, "listener 8080\nprotocol http\n", 2,
               "protocol: 'http' is not mqtt or websockets");
    load_fails(f, "listener 8080\nprotocol\n", 2, "protocol: missing value");
    load_fails(f, "listener 8080\nprotocol websockets mqtt\n", 2,
               "protocol: unexpected extra value 'mqtt'");
}

static void test_error_metrics_listener_port_out_of_range(void **state)
{
    struct fixture *f = *state;
    load_fails(f, "metrics_listener 0\n", 1, "metrics_listener: '0' is out of range 1..65535");
    load_fails(f, "#\nmetrics_listener 65536\n", 2,
               "metrics_listener: '65536' is out of range 1..65535");
    load_fails(f, "metrics_listener -1 127.0.0.1\n", 1,
               "metrics_listener: '-1' is out of range 1..65535");
    load_fails(f, "metrics_listener http\n", 1, "metrics_listener: 'http' is not an integer");
    load_fails(f, "metrics_listener\n", 1, "metrics_listener: missing value");
    load_fails(f, "metrics_listener 9100 127.0.0.1 x\n", 1,
               "metrics_listener: unexpected extra value 'x'");
}

static void test_error_metrics_listener_address_not_numeric(void **state)
{
    struct fixture *f = *state;
    load_fails(f, "metrics_listener 9100 localhost\n", 1,
               "metrics_listener: 'localhost' is not a numeric IPv4 or IPv6 address");
    load_fails(f, "\n\nmetrics_listener 9100 127.0.0.256\n", 3,
               "metrics_listener: '127.0.0.256' is not a numeric IPv4 or IPv6 address");
    load_fails(f, "metrics_listener 9100 /run/sol/metrics.sock\n", 1,
               "metrics_listener: '/run/sol/metrics.sock' is not a numeric IPv4 or IPv6 address");
}

static void test_error_unix_socket_path_longer_than_sun_path(void **state)
{
    struct fixture *f = *state;
    char text[256];
    char path[200];
    memset(path, 'p', 108);
    path[0] = '/';
    path[108] = '\0'; /* 108 bytes: no room for sun_path's NUL */
    snprintf(text, sizeof(text), "listener 0 %s\n", path);
    load_fails(f, text, 1, "listener: unix socket path is longer than 107 bytes");
    path[107] = '\0';
    snprintf(text, sizeof(text), "listener 0 %s\n", path);
    load_ok(f, text);
    assert_string_equal(f->cfg.listeners[0].unix_path, path);
}

static void test_error_integers_negative_non_numeric_out_of_range(void **state)
{
    struct fixture *f = *state;
    load_fails(f, "max_inflight_messages -1\n", 1,
               "max_inflight_messages: '-1' is out of range 0..65535");
    load_fails(f, "max_inflight_messages 65536\n", 1,
               "max_inflight_messages: '65536' is out of range 0..65535");
    load_fails(f, "max_inflight_messages twenty\n", 1,
               "max_inflight_messages: 'twenty' is not an integer");
    load_fails(f, "max_inflight_messages 2.5\n", 1,
               "max_inflight_messages: '2.5' is not an integer");
    load_fails(f, "max_queued_messages -5\n", 1,
               "max_queued_messages: '-5' is out of range 0..2147483647");
    load_fails(f, "max_queued_messages 2147483648\n", 1,
               "max_queued_messages: '2147483648' is out of range 0..2147483647");
    load_fails(f, "max_queued_messages 1e3\n", 1, "max_queued_messages: '1e3' is not an integer");
    load_fails(f, "max_queued_messages -\n", 1, "max_queued_messages: '-' is not an integer");
}

static void test_error_bool_not_true_or_false(void **state)
{
    struct fixture *f = *state;
    load_fails(f, "allow_anonymous yes\n", 1, "allow_anonymous: 'yes' is not true or false");
    load_fails(f, "allow_anonymous True\n", 1, "allow_anonymous: 'True' is not true or false");
    load_fails(f, "allow_anonymous 1\n", 1, "allow_anonymous: '1' is not true or false");
}

static void test_error_storage_sync_and_log_type_values(void **state)
{
    struct fixture *f = *state;
    load_fails(f, "storage_sync always\n", 1, "storage_sync: 'always' is not fsync or nosync");
    load_fails(f, "log_type verbose\n", 1,
               "log_type: 'verbose' is not one of error, warning, notice, information, debug, "
               "subscribe, unsubscribe, all, none");
}

static void test_error_storage_max_size(void **state)
{
    static const char *const bad[] = {
        "0", "-1", "k", "1T", "1kb", "+5", "17179869184G", "18446744073709551616", "0x10",
    };
    struct fixture *f = *state;
    char text[128];
    char want[256];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text), "storage_max_size %s\n", bad[i]);
        snprintf(want, sizeof(want),
                 "storage_max_size: '%s' is not a positive size (bytes, or with suffix k, M or G)",
                 bad[i]);
        load_fails(f, text, 1, want);
    }
    load_fails(f, "storage_max_size 1 G\n", 1, "storage_max_size: unexpected extra value 'G'");
}

static void test_error_persistence_location_too_long(void **state)
{
    struct fixture *f = *state;
    size_t len = strlen("persistence_location ") + CONFIG_PATH_MAX + 2;
    char *text = malloc(len);
    assert_non_null(text);
    int n = snprintf(text, len, "persistence_location ");
    memset(text + n, 'd', CONFIG_PATH_MAX);
    strcpy(text + n + CONFIG_PATH_MAX, "\n");
    load_fails(f, text, 1, "persistence_location: path is longer than 4095 bytes");
    text[n + CONFIG_PATH_MAX - 1] = '\n'; /* 4095 bytes: fits */
    text[n + CONFIG_PATH_MAX] = '\0';
    load_ok(f, text);
    assert_int_equal(strlen(f->cfg.persistence_location), CONFIG_PATH_MAX - 1);
    free(text);
}

static void test_error_nul_byte_in_line(void **state)
{
    struct fixture *f = *state;
    char want[512];
    write_file(f, "listener 1\nlistener 2\0x\n", 24);
    assert_int_equal(config_load_file(&f->cfg, f->path, f->err, sizeof(f->err)), -1);
    snprintf(want, sizeof(want), "%s:2: line contains a NUL byte", f->path);
    assert_string_equal(f->err, want);
}

static void test_error_unreadable_file(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(config_load_file(&f->cfg, "/nonexistent/sol.conf", f->err, sizeof(f->err)),
                     -1);
    assert_string_equal(f->err, "/nonexistent/sol.conf: cannot read: No such file or directory");
    assert_int_equal(config_load_file(&f->cfg, "/tmp", f->err, sizeof(f->err)), -1);
    assert_string_equal(f->err, "/tmp: cannot read: Is a directory");
}

static void test_error_keeps_earlier_lines_and_truncates_message(void **state)
{
    struct fixture *f = *state;
    char small[12];
    write_file(f, "listener 1883 ::\nnope\n", 22);
    assert_int_equal(config_load_file(&f->cfg, f->path, small, sizeof(small)), -1);
    assert_int_equal(strlen(small), sizeof(small) - 1);
    assert_memory_equal(small, f->path, sizeof(small) - 1);
    assert_int_equal(f->cfg.listener_count, 1); /* freed by teardown's config_deinit */
    assert_int_equal(config_load_file(&f->cfg, f->path, NULL, 0), -1);
}

static void test_deinit_twice_is_safe_and_reinitialises(void **state)
{
    struct fixture *f = *state;
    load_ok(f, "listener 0 /tmp/s\nlistener 1 ::1\nmax_inflight_messages 3\n");
    config_deinit(&f->cfg);
    assert_int_equal(f->cfg.listener_count, 0);
    assert_null(f->cfg.listeners);
    assert_int_equal(f->cfg.max_inflight_messages, 20);
    config_deinit(&f->cfg);
}

/* ---- operations directives (issue 5) ----------------------------------- */

static void test_defaults_for_operations_directives(void **state)
{
    struct sol_config *cfg = &((struct fixture *)*state)->cfg;
    assert_int_equal(cfg->log_dests, CONFIG_LOG_DEST_STDERR);
    assert_null(cfg->log_file);
    assert_true(cfg->connection_messages);
    assert_null(cfg->password_file);
    assert_null(cfg->acl_file);
    assert_null(cfg->pid_file);
    assert_int_equal(cfg->max_queued_bytes, 8u << 20);
    assert_int_equal(cfg->message_size_limit, 0);
    assert_int_equal(cfg->max_connections, 0);
    assert_int_equal(cfg->max_keepalive, 0);
    assert_int_equal(cfg->sys_interval, 10);
    assert_true(cfg->retain_available);
    assert_int_equal(cfg->persistent_client_expiration_s, 0);
}

static void test_tls_settings_apply_to_the_listener_above(void **state)
{
    struct fixture *f = *state;
    load_ok(f, "listener 1883\n"
               "listener 8883 0.0.0.0\n"
               "cafile /etc/sol/ca dir/ca.crt\n"
               "certfile /etc/sol/server.crt\n"
               "keyfile /etc/sol/server.key\n"
               "tls_version tlsv1.2\n"
               "require_certificate true\n"
               "use_identity_as_username true\n"
               "listener 8884\n"
               "certfile /a.crt\n"
               "keyfile /a.key\n"
               "tls_version tlsv1.3\n"
               "require_certificate false\n");
    struct config_listener *l = f->cfg.listeners;
    assert_int_equal(f->cfg.listener_count, 3);
    assert_null(l[0].cafile);
    assert_null(l[0].certfile);
    assert_null(l[0].keyfile);
    assert_null(l[0].tls_version);
    assert_false(l[0].require_certificate);
    assert_false(l[0].use_identity_as_username);
    assert_string_equal(l[1].cafile, "/etc/sol/ca dir/ca.crt");
    assert_string_equal(l[1].certfile, "/etc/sol/server.crt");
    assert_string_equal(l[1].keyfile, "/etc/sol/server.key");
    assert_string_equal(l[1].tls_version, "tlsv1.2");
    assert_true(l[1].require_certificate);
    assert_true(l[1].use_identity_as_username);
    assert_null(l[2].cafile);
    assert_string_equal(l[2].certfile, "/a.crt");
    assert_string_equal(l[2].keyfile, "/a.key");
    assert_string_equal(l[2].tls_version, "tlsv1.3");
    assert_false(l[2].require_certificate);
}

static void test_tls_setting_repeated_replaces(void **state)
{
    struct fixture *f = *state;
    load_ok(f, "listener 0 /tmp/x.sock\ncertfile /a\ncertfile /b\ntls_version tlsv1.3\n"
               "tls_version tlsv1.2\n");
    assert_string_equal(f->cfg.listeners[0].certfile, "/b");
    assert_string_equal(f->cfg.listeners[0].tls_version, "tlsv1.2");
}

static void test_error_tls_setting_before_any_listener(void **state)
{
    static const char *const names[] = {"cafile /ca",
                                        "certfile /c",
                                        "keyfile /k",
                                        "tls_version tlsv1.2",
                                        "require_certificate true",
                                        "use_identity_as_username true"};
    struct fixture *f = *state;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char text[128], msg[128];
        snprintf(text, sizeof(text), "# tls\n%s\nlistener 8883\n", names[i]);
        snprintf(msg, sizeof(msg), "%.*s: must follow a listener line", (int)strcspn(names[i], " "),
                 names[i]);
        load_fails(f, text, 2, msg);
    }
}

static void test_error_tls_values(void **state)
{
    struct fixture *f = *state;
    load_fails(f, "listener 1\ntls_version tlsv1\n", 2,
               "tls_version: 'tlsv1' is not tlsv1.2 or tlsv1.3");
    config_deinit(&f->cfg);
    load_fails(f, "listener 1\ntls_version tlsv1.1\n", 2,
               "tls_version: 'tlsv1.1' is not tlsv1.2 or tlsv1.3");
    config_deinit(&f->cfg);
    load_fails(f, "listener 1\nrequire_certificate yes\n", 2,
               "require_certificate: 'yes' is not true or false");
    config_deinit(&f->cfg);
    load_fails(f, "listener 1\ncertfile\n", 2, "certfile: missing value");
    config_deinit(&f->cfg);
    load_fails(f, "listener 1\nuse_identity_as_username\n", 2,
               "use_identity_as_username: missing value");
}

static void test_password_acl_and_pid_file_take_rest_of_line(void **state)
{
    struct fixture *f = *state;
    load_ok(f, "password_file /etc/sol/pass words\nacl_file  /etc/sol/acl \npid_file /run/sol.pid\n"
               "password_file /etc/sol/passwd\n");
    assert_string_equal(f->cfg.password_file, "/etc/sol/passwd");
    assert_string_equal(f->cfg.acl_file, "/etc/sol/acl");
    assert_string_equal(f->cfg.pid_file, "/run/sol.pid");
    load_fails(f, "acl_file\n", 1, "acl_file: missing value");
    load_fails(f, "password_file   \n", 1, "password_file: missing value");
    load_fails(f, "pid_file\n", 1, "pid_file: missing value");
}

static void test_limits_bounds(void **state)
{
    struct fixture *f = *state;
    load_ok(f, "message_size_limit 268435455\nmax_connections -1\nmax_keepalive 65535\n"
               "max_queued_bytes 0\n");
    assert_int_equal(f->cfg.message_size_limit, 268435455u);
    assert_int_equal(f->cfg.max_connections, 0);
    assert_int_equal(f->cfg.max_keepalive, 65535);
    assert_int_equal(f->cfg.max_queued_bytes, 0);
    load_ok(f, "max_topic_levels 1\n");
    assert_int_equal(f->cfg.max_topic_levels, 1);
    load_ok(f, "message_size_limit 0\nmax_connections 100\nmax_keepalive 0\n"
               "max_queued_bytes 1000\n");
    assert_int_equal(f->cfg.message_size_limit, 0);
    assert_int_equal(f->cfg.max_connections, 100);
    assert_int_equal(f->cfg.max_keepalive, 0);
    assert_int_equal(f->cfg.max_queued_bytes, 1000);
    load_ok(f, "max_connections 0\nmax_queued_bytes 2M\n");
    assert_int_equal(f->cfg.max_connections, 0);
    assert_int_equal(f->cfg.max_queued_bytes, 2u << 20);
    load_ok(f, "receive_maximum 1\nmax_topic_alias 0\n");
    assert_int_equal(f->cfg.receive_maximum, 1);
    assert_int_equal(f->cfg.max_topic_alias, 0);
    load_ok(f, "receive_maximum 65535\nmax_topic_alias 65535\n");
    assert_int_equal(f->cfg.receive_maximum, 65535);
    assert_int_equal(f->cfg.max_topic_alias, 65535);
}

static void test_error_limits_out_of_range(void **state)
{
    struct fixture *f = *state;
    load_fails(f, "message_size_limit 268435456\n", 1,
               "message_size_limit: '268435456' is out of range 0..268435455");
    load_fails(f, "message_size_limit -1\n", 1,
               "message_size_limit: '-1' is out of range 0..268435455");
    load_fails(f, "max_connections -2\n", 1,
               "max_connections: '-2' is out of range -1..2147483647");
    load_fails(f, "max_keepalive 65536\n", 1, "max_keepalive: '65536' is out of range 0..65535");
    load_fails(f, "max_queued_bytes -5\n", 1,
               "max_queued_bytes: '-5' is not a positive size (bytes, or with suffix k, M or G)");
    load_fails(f, "sys_interval 1.5\n", 1, "sys_interval: '1.5' is not an integer");
    load_fails(f, "max_topic_levels 0\n", 1, "max_topic_levels: '0' is out of range 1..65535");
    load_fails(f, "max_topic_levels 65536\n", 1,
               "max_topic_levels: '65536' is out of range 1..65535");
    load_fails(f, "sys_interval 65536\n", 1, "sys_interval: '65536' is out of range 0..65535");
    load_fails(f, "receive_maximum 0\n", 1, "receive_maximum: '0' is out of range 1..65535");
    load_fails(f, "max_topic_alias 65536\n", 1,
               "max_topic_alias: '65536' is out of range 0..65535");
}

static void test_sys_interval_connection_messages_retain_available(void **state)
{
    struct fixture *f = *state;
    load_ok(f, "sys_interval 0\nconnection_messages false\nretain_available false\n");
    assert_int_equal(f->cfg.sys_interval, 0);
    assert_false(f->cfg.connection_messages);
    assert_false(f->cfg.retain_available);
    load_ok(f, "sys_interval 1\nconnection_messages true\nretain_available true\n");
    assert_int_equal(f->cfg.sys_interval, 1);
    assert_true(f->cfg.connection_messages);
    assert_true(f->cfg.retain_available);
    load_fails(f, "retain_available 1\n", 1, "retain_available: '1' is not true or false");
    load_fails(f, "connection_messages on\n", 1, "connection_messages: 'on' is not true or false");
}

static void test_shared_subscriptions_true_false_default_true(void **state)
{
    struct fixture *f = *state;
    load_ok(f, "");
    assert_true(f->cfg.shared_subscriptions);
    load_ok(f, "shared_subscriptions false\n");
    assert_false(f->cfg.shared_subscriptions);
    load_ok(f, "shared_subscriptions true\n");
    assert_true(f->cfg.shared_subscriptions);
    load_fails(f, "shared_subscriptions off\n", 1,
               "shared_subscriptions: 'off' is not true or false");
}

static void test_persistent_client_expiration_units(void **state)
{
    static const struct {
        const char *value;
        uint64_t seconds;
    } cases[] = {
        {"30s", 30},       {"1h", 3600},           {"2d", 2 * 86400},
        {"1w", 7 * 86400}, {"3m", 3 * 30 * 86400}, {"1y", 365 * 86400},
    };
    struct fixture *f = *state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[64];
        snprintf(text, sizeof(text), "persistent_client_expiration %s\n", cases[i].value);
        load_ok(f, text);
        assert_int_equal(f->cfg.persistent_client_expiration_s, cases[i].seconds);
    }
}

static void test_error_persistent_client_expiration(void **state)
{
    static const char *const bad[] = {"1", "0d", "d", "-1d", "1x", "1dd", "99999999999999999999y"};
    struct fixture *f = *state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[64], msg[160];
        snprintf(text, sizeof(text), "persistent_client_expiration %s\n", bad[i]);
        snprintf(msg, sizeof(msg),
                 "persistent_client_expiration: '%s' is not a duration (a positive number "
                 "followed by h, d, w, m or y)",
                 bad[i]);
        load_fails(f, text, 1, msg);
    }
}

static void test_log_dest_first_line_replaces_then_adds(void **state)
{
    struct fixture *f = *state;
    load_ok(f, "log_dest syslog\nlog_dest file /var/log/sol/sol log.txt\nlog_dest stdout\n");
    assert_int_equal(f->cfg.log_dests,
                     CONFIG_LOG_DEST_SYSLOG | CONFIG_LOG_DEST_FILE | CONFIG_LOG_DEST_STDOUT);
    assert_string_equal(f->cfg.log_file, "/var/log/sol/sol log.txt");
    load_ok(f, "log_dest none\n");
    assert_int_equal(f->cfg.log_dests, 0);
    load_ok(f, "log_dest stderr\n");
    assert_int_equal(f->cfg.log_dests, CONFIG_LOG_DEST_STDERR);
}

static void test_error_log_dest(void **state)
{
    struct fixture *f = *state;
    load_fails(f, "log_dest topic\n", 1,
               "log_dest: 'topic' is not one of stderr, stdout, syslog, none, file PATH");
    load_fails(f, "log_dest\n", 1, "log_dest: missing value");
    load_fails(f, "log_dest file\n", 1, "log_dest: missing value");
    load_fails(f, "log_dest syslog extra\n", 1, "log_dest: unexpected extra value 'extra'");
}

/* ---- include_dir --------------------------------------------------------- */

static void write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

/* A fresh directory with b.conf, a.conf, B.conf, notes.txt and .hidden.conf. */
static void make_include_dir(char *dir, size_t len)
{
    snprintf(dir, len, "/tmp/sol-test-include-XXXXXX");
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/b.conf", dir);
    write_text(path, "max_inflight_messages 2\nlistener 2\n");
    snprintf(path, sizeof(path), "%s/a.conf", dir);
    write_text(path, "max_inflight_messages 1\nlistener 1\n");
    snprintf(path, sizeof(path), "%s/B.conf", dir);
    write_text(path, "listener 3\nlog_type debug\n");
    snprintf(path, sizeof(path), "%s/notes.txt", dir);
    write_text(path, "not a config\n");
    snprintf(path, sizeof(path), "%s/.hidden.conf", dir);
    write_text(path, "garbage\n");
}

static void remove_include_dir(const char *dir)
{
    static const char *const names[] = {"b.conf",    "a.conf",       "B.conf",
                                        "notes.txt", ".hidden.conf", "c.conf"};
    char path[256];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

static void test_include_dir_reads_conf_files_in_strcmp_order(void **state)
{
    struct fixture *f = *state;
    char dir[64], text[128];
    make_include_dir(dir, sizeof(dir));
    snprintf(text, sizeof(text), "log_type error\ninclude_dir %s\nmax_queued_messages 9\n", dir);
    load_ok(f, text);
    remove_include_dir(dir);
    assert_int_equal(f->cfg.listener_count, 3);
    assert_int_equal(f->cfg.listeners[0].port, 3); /* "B.conf" < "a.conf" < "b.conf" */
    assert_int_equal(f->cfg.listeners[1].port, 1);
    assert_int_equal(f->cfg.listeners[2].port, 2);
    assert_int_equal(f->cfg.max_inflight_messages, 2);
    assert_int_equal(f->cfg.max_queued_messages, 9);
    /* The included log_type adds to the including file's. */
    assert_int_equal(f->cfg.log_types, CONFIG_LOG_ERROR | CONFIG_LOG_DEBUG);
}

static void test_error_in_included_file_names_that_file(void **state)
{
    struct fixture *f = *state;
    char dir[64], text[128], path[128], want[256];
    make_include_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/c.conf", dir);
    write_text(path, "# c\nmax_keepalive x\n");
    snprintf(text, sizeof(text), "include_dir %s\n", dir);
    assert_int_equal(load(f, text), -1);
    remove_include_dir(dir);
    snprintf(want, sizeof(want), "%s:2: max_keepalive: 'x' is not an integer", path);
    assert_string_equal(f->err, want);
}

static void test_error_include_dir_missing(void **state)
{
    struct fixture *f = *state;
    load_fails(f, "\ninclude_dir /nonexistent/sol.d\n", 2,
               "include_dir: cannot read /nonexistent/sol.d: No such file or directory");
    load_fails(f, "include_dir\n", 1, "include_dir: missing value");
}

static void test_error_include_dir_including_itself_stops(void **state)
{
    struct fixture *f = *state;
    char dir[64], text[128], path[128];
    make_include_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/c.conf", dir);
    snprintf(text, sizeof(text), "include_dir %s\n", dir);
    write_text(path, text);
    assert_int_equal(load(f, text), -1);
    remove_include_dir(dir);
    assert_non_null(strstr(f->err, "c.conf:1: include_dir: nested more than 8 deep"));
}

/* ---- the documented example file ----------------------------------------- */

/* conf/sol.conf as shipped (everything commented out) changes nothing. */
static void test_shipped_sol_conf_parses(void **state)
{
    struct fixture *f = *state;
    const char *src = getenv("SOL_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof(path), "%s/conf/sol.conf", src != NULL ? src : "..");
    if (config_load_file(&f->cfg, path, f->err, sizeof(f->err)) != 0)
        fail_msg("%s", f->err);
}

/* Every "#directive value" line of conf/sol.conf uncommented (the examples)
 * parses too, after a listener so the TLS lines have one to apply to. */
static void test_shipped_sol_conf_examples_uncommented_parse(void **state)
{
    struct fixture *f = *state;
    const char *src = getenv("SOL_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof(path), "%s/conf/sol.conf", src != NULL ? src : "..");
    FILE *in = fopen(path, "r");
    FILE *out = fopen(f->path, "w");
    assert_non_null(in);
    assert_non_null(out);
    char line[1024];
    unsigned examples = 0;
    /* per_listener_settings must precede every listener: it goes first. */
    fputs("per_listener_settings false\nlistener 1883\n", out);
    while (fgets(line, sizeof(line), in) != NULL) {
        /* "#name value": an example; "# text": prose. */
        if (strncmp(line, "#per_listener_settings", 22) == 0)
            continue;
        if (line[0] == '#' && line[1] >= 'a' && line[1] <= 'z') {
            fputs(line + 1, out);
            examples++;
        }
    }
    fclose(in);
    assert_int_equal(fclose(out), 0);
    assert_true(examples >= 25);
    if (config_load_file(&f->cfg, f->path, f->err, sizeof(f->err)) != 0)
        fail_msg("%s", f->err);
}

static void test_per_listener_settings_put_auth_on_each_listener(void **state)
{
    struct fixture *f = *state;
    load_ok(f, "per_listener_settings true\n"
               "listener 1883\nallow_anonymous true\n"
               "listener 8883\npassword_file /etc/sol/pw\nacl_file /etc/sol/acl\n");
    assert_true(f->cfg.per_listener_settings);
    assert_int_equal(config_apply_defaults(&f->cfg), 0);
    assert_int_equal(f->cfg.listeners[0].allow_anonymous, 1);
    assert_null(f->cfg.listeners[0].password_file);
    assert_int_equal(f->cfg.listeners[1].allow_anonymous, 0); /* explicit opt-in */
    assert_string_equal(f->cfg.listeners[1].password_file, "/etc/sol/pw");
    assert_string_equal(f->cfg.listeners[1].acl_file, "/etc/sol/acl");
    assert_null(f->cfg.password_file); /* nothing global */
}

static void test_max_output_buffer_bytes_default_and_suffix(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(f->cfg.max_output_buffer_bytes, 16u << 20);
    load_ok(f, "max_output_buffer_bytes 64k\n");
    assert_int_equal(f->cfg.max_output_buffer_bytes, 65536);
}

/* Issue 10: the limits one client cannot exceed, their defaults (about
 * 64 MB per client in all, see conf/sol.conf), suffixes and 0 = no limit. */
static void test_client_limit_defaults_suffixes_and_zero(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(f->cfg.max_packet_size, 8u << 20);
    assert_int_equal(f->cfg.max_queued_bytes, 8u << 20);
    assert_int_equal(f->cfg.max_subscriptions_per_client, 100);
    assert_int_equal(f->cfg.max_subscriptions, 1000000);
    assert_int_equal(f->cfg.max_input_buffer_bytes, 64u << 20);
    load_ok(f, "max_packet_size 256k\nmax_input_buffer_bytes 1G\n"
               "max_subscriptions_per_client 5000\nmax_subscriptions 7\n");
    assert_int_equal(f->cfg.max_packet_size, 256u << 10);
    assert_int_equal(f->cfg.max_input_buffer_bytes, 1u << 30);
    assert_int_equal(f->cfg.max_subscriptions_per_client, 5000);
    assert_int_equal(f->cfg.max_subscriptions, 7);
    load_ok(f, "max_packet_size 0\nmax_input_buffer_bytes 0\n"
               "max_subscriptions_per_client 0\nmax_subscriptions 0\n");
    assert_int_equal(f->cfg.max_packet_size, 0);
    assert_int_equal(f->cfg.max_input_buffer_bytes, 0);
    assert_int_equal(f->cfg.max_subscriptions_per_client, 0);
    assert_int_equal(f->cfg.max_subscriptions, 0);
}

static void test_error_client_limits(void **state)
{
    struct fixture *f = *state;
    load_fails(f, "max_packet_size -1\n", 1,
               "max_packet_size: '-1' is not a positive size (bytes, or with suffix k, M or G)");
    load_fails(f, "max_input_buffer_bytes 12X\n", 1,
               "max_input_buffer_bytes: '12X' is not a positive size (bytes, or with suffix k, M "
               "or G)");
    load_fails(f, "max_subscriptions_per_client -1\n", 1,
               "max_subscriptions_per_client: '-1' is out of range 0..2147483647");
    load_fails(f, "max_subscriptions many\n", 1, "max_subscriptions: 'many' is not an integer");
}

/* ---- bridges (connection blocks) --------------------------------------- */

/* Empties the fixture's config, so a test can load several files that each
 * start a bridge of the same name. */
static void fresh(struct fixture *f)
{
    config_deinit(&f->cfg);
}

static void test_bridge_defaults_are_mosquittos(void **state)
{
    struct fixture *f = *state;
    load_ok(f, "connection cloud\naddress broker.example\ntopic a/#\n");
    assert_int_equal(f->cfg.bridge_count, 1);
    const struct config_bridge *b = &f->cfg.bridges[0];
    assert_string_equal(b->name, "cloud");
    char where[128];
    snprintf(where, sizeof(where), "%s:1", f->path);
    assert_string_equal(b->where, where);
    assert_int_equal(b->address_count, 1);
    assert_string_equal(b->addresses[0].host, "broker.example");
    assert_int_equal(b->addresses[0].port, 1883);
    assert_int_equal(b->topic_count, 1);
    assert_string_equal(b->topics[0].pattern, "a/#");
    assert_int_equal(b->topics[0].direction, CONFIG_BRIDGE_OUT);
    assert_int_equal(b->topics[0].qos, 0);
    assert_null(b->topics[0].local_prefix);
    assert_null(b->topics[0].remote_prefix);
    assert_null(b->remote_clientid); /* HOSTNAME.cloud, made at start */
    assert_false(b->cleansession);
    assert_true(b->try_private);
    assert_true(b->notifications);
    assert_false(b->notifications_local_only);
    assert_null(b->notification_topic);
    assert_int_equal(b->keepalive_s, 60);
    assert_int_equal(b->restart_base_s, 5);
    assert_int_equal(b->restart_cap_s, 30);
    assert_int_equal(b->protocol_level, 4);
    assert_null(b->cafile);
    assert_false(b->insecure);
    assert_int_equal(b->max_queued_messages, 1000000);
    assert_int_equal(b->max_queued_bytes, 1ull << 30);
}

static void test_bridge_every_directive(void **state)
{
    struct fixture *f = *state;
    load_ok(f, "connection edge-1.x\n"
               "address 10.0.0.1:8883 [::1]:1884 [fe80::1] host2\n"
               "addresses host3:1\n"
               "listener 1883\n" /* global directives may come between */
               "topic sensors/# out 1 site/ hq/site/\n"
               "topic cmd/+ in 2\n"
               "topic \"\" both 1 local/state remote/state\n"
               "topic x both\n"
               "remote_clientid edge one\n"
               "remote_username user name\n"
               "remote_password p@ss word\n"
               "cleansession true\n"
               "keepalive_interval 5\n"
               "restart_timeout 10\n"
               "try_private false\n"
               "notifications false\n"
               "notifications_local_only true\n"
               "notification_topic bridges/edge/state\n"
               "bridge_protocol_version mqttv31\n"
               "start_type automatic\n"
               "bridge_cafile /etc/ca dir/ca.pem\n"
               "bridge_capath /etc/ssl/certs\n"
               "bridge_certfile /c.pem\n"
               "bridge_keyfile /k.pem\n"
               "bridge_insecure true\n"
               "bridge_max_queued_messages 0\n"
               "bridge_max_queued_bytes 64M\n"
               "local_clientid ignored\n"
               "bridge_attempt_unsubscribe false\n");
    const struct config_bridge *b = &f->cfg.bridges[0];
    assert_string_equal(b->name, "edge-1.x");
    assert_int_equal(b->address_count, 5);
    assert_string_equal(b->addresses[0].host, "10.0.0.1");
    assert_int_equal(b->addresses[0].port, 8883);
    assert_string_equal(b->addresses[1].host, "::1");
    assert_int_equal(b->addresses[1].port, 1884);
    assert_string_equal(b->addresses[2].host, "fe80::1");
    assert_int_equal(b->addresses[2].port, 1883);
    assert_string_equal(b->addresses[4].host, "host3");
    assert_int_equal(b->addresses[4].port, 1);
    assert_int_equal(b->topic_count, 4);
    assert_string_equal(b->topics[0].local_prefix, "site/");
    assert_string_equal(b->topics[0].remote_prefix, "hq/site/");
    assert_int_equal(b->topics[0].qos, 1);
    assert_int_equal(b->topics[1].direction, CONFIG_BRIDGE_IN);
    assert_int_equal(b->topics[1].qos, 2);
    assert_null(b->topics[2].pattern);
    assert_string_equal(b->topics[2].local_prefix, "local/state");
    assert_int_equal(b->topics[2].direction, CONFIG_BRIDGE_BOTH);
    assert_int_equal(b->topics[3].qos, 0);
    assert_string_equal(b->remote_clientid, "edge one");
    assert_string_equal(b->remote_username, "user name");
    assert_string_equal(b->remote_password, "p@ss word");
    assert_true(b->cleansession);
    assert_int_equal(b->keepalive_s, 5);
    assert_int_equal(b->restart_base_s, 10);
    assert_int_equal(b->restart_cap_s, 0); /* one value: constant */
    assert_false(b->try_private);
    assert_false(b->notifications);
    assert_true(b->notifications_local_only);
    assert_string_equal(b->notification_topic, "bridges/edge/state");
    assert_int_equal(b->protocol_level, 3);
    assert_string_equal(b->cafile, "/etc/ca dir/ca.pem");
    assert_string_equal(b->capath, "/etc/ssl/certs");
    assert_string_equal(b->certfile, "/c.pem");
    assert_string_equal(b->keyfile, "/k.pem");
    assert_true(b->insecure);
    assert_int_equal(b->max_queued_messages, 0);
    assert_int_equal(b->max_queued_bytes, 64ull << 20);
    assert_int_equal(f->cfg.listener_count, 1);
}

static void test_bridge_directives_go_to_the_last_connection(void **state)
{
    struct fixture *f = *state;
    load_ok(f, "connection a\naddress h1\ntopic t\nrestart_timeout 2 60\n"
               "connection b\naddress h2\ntopic u in\n");
    assert_int_equal(f->cfg.bridge_count, 2);
    assert_int_equal(f->cfg.bridges[0].restart_base_s, 2);
    assert_int_equal(f->cfg.bridges[0].restart_cap_s, 60);
    assert_string_equal(f->cfg.bridges[1].addresses[0].host, "h2");
    assert_int_equal(f->cfg.bridges[1].restart_base_s, 5);
    assert_int_equal(f->cfg.bridges[1].topics[0].direction, CONFIG_BRIDGE_IN);
}

static void test_error_bridge_directive_before_connection(void **state)
{
    struct fixture *f = *state;
    load_fails(f, "address h\n", 1, "address: must follow a connection line");
    load_fails(f, "#\ntopic a out\n", 2, "topic: must follow a connection line");
    load_fails(f, "bridge_cafile /ca\n", 1, "bridge_cafile: must follow a connection line");
    load_fails(f, "try_private true\n", 1, "try_private: must follow a connection line");
}

static void test_error_bridge_values(void **state)
{
    struct fixture *f = *state;
    load_fails(f, "connection a/b\n", 1,
               "connection: 'a/b' is not a bridge name (1 to 64 of A-Z a-z 0-9 _ . -)");
    load_fails(f, "connection\n", 1, "connection: missing value");
}

/* load_fails compares the whole message: for messages that end with a
 * path, compare the start only. */
static void load_fails_prefix(struct fixture *f, const char *text, unsigned line,
                              const char *message)
{
    char want[512];
    snprintf(want, sizeof(want), "%s:%u: %s", f->path, line, message);
    assert_int_equal(load(f, text), -1);
    assert_memory_equal(f->err, want, strlen(want));
}

static void test_error_bridge_duplicate_name_names_the_first(void **state)
{
    struct fixture *f = *state;
    load_fails_prefix(f, "connection a\naddress h\ntopic t\nconnection a\n", 4,
                      "connection: duplicate bridge name 'a' (first at ");
}

static void test_error_bridge_topic_lines(void **state)
{
    struct fixture *f = *state;
    const char *c = "connection c\naddress h\n";
    char text[256];
    struct {
        const char *line;
        const char *message;
    } cases[] = {
        {"topic a sideways", "topic: 'sideways' is not in, out or both"},
        {"topic a out 3", "topic: '3' is out of range 0..2"},
        {"topic a out 1 loc/",
         "topic: a local prefix needs a remote prefix after it (\"\" for none)"},
        {"topic \"\" out 1 loc \"\"",
         "topic: an empty pattern (\"\") needs both a local and a remote prefix"},
        {"topic a/#/b", "topic: 'a/#/b' is not a topic filter"},
        {"topic a out 1 l+/ r/", "topic: local prefix 'l+/' is not a topic name (no + or #)"},
        {"topic # out 1 l r/", "topic: local prefix and pattern 'l#' do not make a topic filter"},
        {"topic a out 1 l/ r/ x", "topic: unexpected extra value 'x'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fresh(f);
        snprintf(text, sizeof(text), "%s%s\n", c, cases[i].line);
        load_fails(f, text, 3, cases[i].message);
    }
}

static void test_error_bridge_settings(void **state)
{
    struct fixture *f = *state;
    const char *c = "connection c\naddress h\ntopic t\n";
    char text[256];
    struct {
        const char *line;
        const char *message;
    } cases[] = {
        {"bridge_protocol_version mqttv50",
         "bridge_protocol_version: mqttv50 is not supported yet (MQTT 5 bridges come with MQTT 5 "
         "support); use mqttv311"},
        {"bridge_protocol_version mqttv4", "bridge_protocol_version: 'mqttv4' is not mqttv311 or "
                                           "mqttv31"},
        {"start_type lazy",
         "start_type: 'lazy' is not supported: Sol's bridges are always automatic"},
        {"start_type once",
         "start_type: 'once' is not supported: Sol's bridges are always automatic"},
        {"start_type manual",
         "start_type: 'manual' is not supported: Sol's bridges are always automatic"},
        {"restart_timeout 0", "restart_timeout: '0' is out of range 1..3600"},
        {"restart_timeout 10 5", "restart_timeout: '5' is out of range 10..86400"},
        {"keepalive_interval 4", "keepalive_interval: '4' is out of range 5..65535"},
        {"address h:0", "address: '0' is out of range 1..65535"},
        {"address [::1", "address: '[::1' is not an address (host[:port] or [IPv6][:port])"},
        {"address :1883", "address: ':1883' is not an address (host[:port])"},
        {"notification_topic a/#", "notification_topic: 'a/#' is not a topic name (no + or #)"},
        {"cleansession maybe", "cleansession: 'maybe' is not true or false"},
        {"bridge_max_queued_messages -1",
         "bridge_max_queued_messages: '-1' is out of range 0..2147483647"},
        {"remote_password", "remote_password: missing value"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fresh(f);
        snprintf(text, sizeof(text), "%s%s\n", c, cases[i].line);
        load_fails(f, text, 4, cases[i].message);
    }
}

/* Checked once the file is read, naming the connection line. */
static void test_error_bridge_incomplete_names_its_connection_line(void **state)
{
    struct fixture *f = *state;
    struct {
        const char *text;
        const char *message;
    } cases[] = {
        {"connection c\ntopic t\n", "connection c: no address"},
        {"connection c\naddress h\n", "connection c: no topic"},
        {"connection c\naddress h\ntopic t\nbridge_cafile /ca\nbridge_certfile /c\n",
         "connection c: bridge_certfile and bridge_keyfile must be given together"},
        {"connection c\naddress h\ntopic t\nbridge_insecure true\n",
         "connection c: TLS settings without bridge_cafile or bridge_capath"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fresh(f);
        load_fails(f, cases[i].text, 1, cases[i].message);
    }
}

#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_init_sets_defaults),
        TEST(test_max_output_buffer_bytes_default_and_suffix),
        TEST(test_client_limit_defaults_suffixes_and_zero),
        TEST(test_error_client_limits),
        TEST(test_per_listener_settings_put_auth_on_each_listener),
        TEST(test_no_listener_defaults_to_localhost_1883_and_anonymous),
        TEST(test_no_listener_default_port_and_explicit_anonymous_are_kept),
        TEST(test_listener_configured_makes_anonymous_opt_in),
        TEST(test_listener_port_address_and_unix_socket),
        TEST(test_persistence_location_takes_rest_of_line),
        TEST(test_allow_anonymous_true_and_false),
        TEST(test_max_inflight_and_queued_messages_bounds),
        TEST(test_storage_sync_fsync_and_nosync),
        TEST(test_storage_thread_defaults_on_and_switches),
        TEST(test_io_uring_defaults_on_and_switches),
        TEST(test_storage_max_size_with_suffixes),
        TEST(test_log_type_first_line_replaces_then_adds),
        TEST(test_later_lines_and_files_override_listeners_accumulate),
        TEST(test_comments_blank_lines_crlf_tabs_and_trailing_blanks),
        TEST(test_empty_file_changes_nothing),
        TEST(test_error_unknown_directive_names_line),
        TEST(test_error_line_numbers_count_crlf_and_comment_lines),
        TEST(test_error_missing_value),
        TEST(test_error_extra_value),
        TEST(test_error_listener_port),
        TEST(test_metrics_listener_is_off_by_default),
        TEST(test_protocol_websockets_applies_to_the_listener_above),
        TEST(test_error_protocol_value_and_place),
        TEST(test_metrics_listener_port_address_and_later_line_wins),
        TEST(test_error_metrics_listener_port_out_of_range),
        TEST(test_error_metrics_listener_address_not_numeric),
        TEST(test_error_unix_socket_path_longer_than_sun_path),
        TEST(test_error_integers_negative_non_numeric_out_of_range),
        TEST(test_error_bool_not_true_or_false),
        TEST(test_error_storage_sync_and_log_type_values),
        TEST(test_error_storage_max_size),
        TEST(test_error_persistence_location_too_long),
        TEST(test_error_nul_byte_in_line),
        TEST(test_error_unreadable_file),
        TEST(test_error_keeps_earlier_lines_and_truncates_message),
        TEST(test_deinit_twice_is_safe_and_reinitialises),
        TEST(test_defaults_for_operations_directives),
        TEST(test_tls_settings_apply_to_the_listener_above),
        TEST(test_tls_setting_repeated_replaces),
        TEST(test_error_tls_setting_before_any_listener),
        TEST(test_error_tls_values),
        TEST(test_password_acl_and_pid_file_take_rest_of_line),
        TEST(test_limits_bounds),
        TEST(test_error_limits_out_of_range),
        TEST(test_sys_interval_connection_messages_retain_available),
        TEST(test_shared_subscriptions_true_false_default_true),
        TEST(test_persistent_client_expiration_units),
        TEST(test_error_persistent_client_expiration),
        TEST(test_log_dest_first_line_replaces_then_adds),
        TEST(test_error_log_dest),
        TEST(test_include_dir_reads_conf_files_in_strcmp_order),
        TEST(test_error_in_included_file_names_that_file),
        TEST(test_error_include_dir_missing),
        TEST(test_error_include_dir_including_itself_stops),
        TEST(test_bridge_defaults_are_mosquittos),
        TEST(test_bridge_every_directive),
        TEST(test_bridge_directives_go_to_the_last_connection),
        TEST(test_error_bridge_directive_before_connection),
        TEST(test_error_bridge_values),
        TEST(test_error_bridge_duplicate_name_names_the_first),
        TEST(test_error_bridge_topic_lines),
        TEST(test_error_bridge_settings),
        TEST(test_error_bridge_incomplete_names_its_connection_line),
        TEST(test_shipped_sol_conf_parses),
        TEST(test_shipped_sol_conf_examples_uncommented_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
