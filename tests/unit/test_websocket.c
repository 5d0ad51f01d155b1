/*
 * test_websocket.c - the WebSocket upgrade (src/server/ws_upgrade.c): the
 * accept key of RFC 6455's example, valid requests in one piece and byte by
 * byte, the bytes after the request, subprotocol choice, every refusal
 * (RFC 6455 4.2.1, [MQTT-6.0.0-3]) and the 101/400 answers.
 *
 * Not for: frames and the transport (tests/integration/test_websockets.py
 * drives them through the real broker; tests/fuzz/fuzz_websocket.c fuzzes them).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "websocket.h"

#define RFC_KEY "dGhlIHNhbXBsZSBub25jZQ=="
/* RFC 6455 section 1.3 (SHA-1 b37a4f2c...c4ea in base64) */
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

/* A request with the given extra header lines (each ending in CRLF). */
static char *request_with(char *buf, size_t len, const char *method, const char *version,
                          const char *headers)
{
    snprintf(buf, len,
             "%s /mqtt %s\r\n"
             "Host: broker.example\r\n"
             "%s"
             "\r\n",
             method, version, headers);
    return buf;
}

#define GOOD_HEADERS                                                                               \
    "Upgrade: websocket\r\n"                                                                       \
    "Connection: Upgrade\r\n"                                                                      \
    "Sec-WebSocket-Key: " RFC_KEY "\r\n"                                                           \
    "Sec-WebSocket-Version: 13\r\n"                                                                \
    "Sec-WebSocket-Protocol: mqtt\r\n"

/* Feeds text in one piece; returns the status, *used the bytes taken. */
static int feed_all(struct ws_upgrade *u, const char *text, size_t *used)
{
    return ws_upgrade_feed(u, (const uint8_t *)text, strlen(text), used);
}

static int feed_headers(const char *headers, const char **why)
{
    char buf[4096];
    struct ws_upgrade *u = ws_upgrade_new();
    assert_non_null(u);
    size_t used = 0;
    int rc = feed_all(u, request_with(buf, sizeof(buf), "GET", "HTTP/1.1", headers), &used);
    static char last_why[128];
    snprintf(last_why, sizeof(last_why), "%s", ws_upgrade_error(u));
    if (why != NULL)
        *why = last_why;
    ws_upgrade_free(u);
    return rc;
}

static void assert_refused(const char *headers, const char *want_why)
{
    const char *why = NULL;
    assert_int_equal(feed_headers(headers, &why), WS_UPGRADE_BAD);
    assert_string_equal(why, want_why);
}

/* ---- the accept key ---- */

static void test_accept_key_of_rfc6455_example(void **state)
{
    (void)state;
    char out[WS_ACCEPT_KEY_LEN + 1];
    assert_int_equal(ws_accept_key(RFC_KEY, strlen(RFC_KEY), out), 0);
    assert_string_equal(out, RFC_ACCEPT);
}

static void test_accept_key_longer_than_64_is_refused(void **state)
{
    (void)state;
    char key[80];
    char out[WS_ACCEPT_KEY_LEN + 1];
    memset(key, 'A', sizeof(key));
    assert_int_equal(ws_accept_key(key, 65, out), -1);
    assert_int_equal(ws_accept_key(key, 64, out), 0);
}

/* ---- valid requests ---- */

static void test_valid_request_in_one_piece_answers_101_with_accept_and_mqtt(void **state)
{
    (void)state;
    char buf[1024], resp[WS_RESPONSE_MAX_BYTES];
    struct ws_upgrade *u = ws_upgrade_new();
    size_t used = 0;
    const char *req = request_with(buf, sizeof(buf), "GET", "HTTP/1.1", GOOD_HEADERS);
    assert_int_equal(feed_all(u, req, &used), WS_UPGRADE_DONE);
    assert_int_equal(used, strlen(req));
    assert_string_equal(ws_upgrade_subprotocol(u), "mqtt");
    size_t len = ws_upgrade_response(u, resp, sizeof(resp));
    assert_true(len > 0);
    assert_int_equal(strlen(resp), len);
    assert_string_equal(resp, "HTTP/1.1 101 Switching Protocols\r\n"
                              "Upgrade: websocket\r\n"
                              "Connection: Upgrade\r\n"
                              "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n"
                              "Sec-WebSocket-Protocol: mqtt\r\n"
                              "\r\n");
    ws_upgrade_free(u);
}

static void test_valid_request_byte_by_byte_completes_on_the_last_byte(void **state)
{
    (void)state;
    char buf[1024];
    struct ws_upgrade *u = ws_upgrade_new();
    const char *req = request_with(buf, sizeof(buf), "GET", "HTTP/1.1", GOOD_HEADERS);
    size_t n = strlen(req), used = 0;
    for (size_t i = 0; i + 1 < n; i++)
        assert_int_equal(ws_upgrade_feed(u, (const uint8_t *)req + i, 1, &used), WS_UPGRADE_MORE);
    assert_int_equal(ws_upgrade_feed(u, (const uint8_t *)req + n - 1, 1, &used), WS_UPGRADE_DONE);
    assert_int_equal(used, 1);
    assert_string_equal(ws_upgrade_subprotocol(u), "mqtt");
    ws_upgrade_free(u);
}

static void test_bytes_after_the_request_are_not_taken(void **state)
{
    (void)state;
    char buf[1024];
    struct ws_upgrade *u = ws_upgrade_new();
    request_with(buf, sizeof(buf), "GET", "HTTP/1.1", GOOD_HEADERS);
    size_t req_len = strlen(buf), used = 0;
    memcpy(buf + req_len, "\x82\x85xyz", 5); /* the start of a frame */
    assert_int_equal(ws_upgrade_feed(u, (const uint8_t *)buf, req_len + 5, &used), WS_UPGRADE_DONE);
    assert_int_equal(used, req_len);
    /* Done is final: more bytes are not taken. */
    assert_int_equal(ws_upgrade_feed(u, (const uint8_t *)"x", 1, &used), WS_UPGRADE_DONE);
    assert_int_equal(used, 0);
    ws_upgrade_free(u);
}

static void test_header_names_and_tokens_are_case_insensitive_and_listed(void **state)
{
    (void)state;
    assert_int_equal(feed_headers("upgrade: WebSocket\r\n"
                                  "connection: keep-alive, Upgrade\r\n"
                                  "sec-websocket-key:   " RFC_KEY "  \r\n"
                                  "SEC-WEBSOCKET-VERSION: 13\r\n",
                                  NULL),
                     WS_UPGRADE_DONE);
}

static void test_no_subprotocol_offered_answers_without_one(void **state)
{
    (void)state;
    char buf[1024], resp[WS_RESPONSE_MAX_BYTES];
    struct ws_upgrade *u = ws_upgrade_new();
    size_t used = 0;
    const char *req = request_with(buf, sizeof(buf), "GET", "HTTP/1.1",
                                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                                   "Sec-WebSocket-Key: " RFC_KEY "\r\n"
                                   "Sec-WebSocket-Version: 13\r\n");
    assert_int_equal(feed_all(u, req, &used), WS_UPGRADE_DONE);
    assert_null(ws_upgrade_subprotocol(u));
    assert_true(ws_upgrade_response(u, resp, sizeof(resp)) > 0);
    assert_null(strstr(resp, "Sec-WebSocket-Protocol"));
    ws_upgrade_free(u);
}

static void test_subprotocol_mqtt_preferred_then_mqttv31(void **state)
{
    (void)state;
    const char *base = "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Key: " RFC_KEY "\r\nSec-WebSocket-Version: 13\r\n";
    struct {
        const char *protocols;
        const char *want;
    } cases[] = {
        {"Sec-WebSocket-Protocol: mqttv3.1\r\n", "mqttv3.1"},
        {"Sec-WebSocket-Protocol: mqttv3.1, mqtt\r\n", "mqtt"},
        {"Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: mqtt\r\n", "mqtt"},
        {"Sec-WebSocket-Protocol: mqtt\r\nSec-WebSocket-Protocol: mqttv3.1\r\n", "mqtt"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char headers[512], buf[1024];
        snprintf(headers, sizeof(headers), "%s%s", base, cases[i].protocols);
        struct ws_upgrade *u = ws_upgrade_new();
        size_t used = 0;
        assert_int_equal(
            feed_all(u, request_with(buf, sizeof(buf), "GET", "HTTP/1.1", headers), &used),
            WS_UPGRADE_DONE);
        assert_string_equal(ws_upgrade_subprotocol(u), cases[i].want);
        ws_upgrade_free(u);
    }
}

static void test_content_length_zero_is_no_body(void **state)
{
    (void)state;
    assert_int_equal(feed_headers(GOOD_HEADERS "Content-Length: 0\r\n", NULL), WS_UPGRADE_DONE);
}

/* ---- refusals ---- */

static void test_missing_or_duplicate_key_is_refused(void **state)
{
    (void)state;
    const char *why = "missing or invalid Sec-WebSocket-Key";
    assert_refused("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n",
                   why);
    assert_refused(GOOD_HEADERS "Sec-WebSocket-Key: " RFC_KEY "\r\n", why);
}

static void test_key_not_16_bytes_of_base64_is_refused(void **state)
{
    (void)state;
    const char *why = "missing or invalid Sec-WebSocket-Key";
    const char *keys[] = {
        "c2hvcnQ=",                   /* "short" */
        "dGhlIHNhbXBsZSBub25jZQ",     /* no padding */
        "dGhlIHNhbXBsZSBub25jZQ==AA", /* too long */
        "dGhlIHNhbXBsZSBub25j!Q==",   /* not base64 */
        "dGhlIHNhbXBsZSBub25jZT0=",   /* 17 bytes' padding */
        "",
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char headers[512];
        snprintf(headers, sizeof(headers),
                 "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                 "Sec-WebSocket-Key: %s\r\n",
                 keys[i]);
        assert_refused(headers, why);
    }
}

static void test_version_other_than_13_is_refused(void **state)
{
    (void)state;
    const char *why = "Sec-WebSocket-Version is not 13";
    const char *rest = "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Key: " RFC_KEY "\r\n";
    char headers[512];
    snprintf(headers, sizeof(headers), "%sSec-WebSocket-Version: 8\r\n", rest);
    assert_refused(headers, why);
    snprintf(headers, sizeof(headers), "%sSec-WebSocket-Version: 130\r\n", rest);
    assert_refused(headers, why);
    assert_refused(rest, why);
}

static void test_missing_upgrade_or_connection_is_refused(void **state)
{
    (void)state;
    const char *key = "Sec-WebSocket-Key: " RFC_KEY "\r\nSec-WebSocket-Version: 13\r\n";
    char headers[512];
    snprintf(headers, sizeof(headers), "Connection: Upgrade\r\n%s", key);
    assert_refused(headers, "no \"Upgrade: websocket\" header");
    snprintf(headers, sizeof(headers), "Upgrade: h2c\r\nConnection: Upgrade\r\n%s", key);
    assert_refused(headers, "no \"Upgrade: websocket\" header");
    snprintf(headers, sizeof(headers), "Upgrade: websocket\r\nConnection: keep-alive\r\n%s", key);
    assert_refused(headers, "no \"Connection: Upgrade\" header");
}

static void test_method_and_http_version_are_checked(void **state)
{
    (void)state;
    char buf[1024];
    struct {
        const char *method, *version, *why;
    } cases[] = {
        {"POST", "HTTP/1.1", "method is not GET"},
        {"HEAD", "HTTP/1.1", "method is not GET"},
        {"GET", "HTTP/1.0", "HTTP version is older than 1.1"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ws_upgrade *u = ws_upgrade_new();
        size_t used = 0;
        request_with(buf, sizeof(buf), cases[i].method, cases[i].version, GOOD_HEADERS);
        assert_int_equal(feed_all(u, buf, &used), WS_UPGRADE_BAD);
        assert_string_equal(ws_upgrade_error(u), cases[i].why);
        ws_upgrade_free(u);
    }
}

static void test_a_body_is_refused(void **state)
{
    (void)state;
    assert_refused(GOOD_HEADERS "Content-Length: 5\r\n", "the upgrade request has a body");
    assert_refused(GOOD_HEADERS "Transfer-Encoding: chunked\r\n", "the upgrade request has a body");
}

static void test_offered_subprotocols_without_mqtt_are_refused(void **state)
{
    (void)state;
    assert_refused("Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: " RFC_KEY "\r\nSec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Protocol: chat, MQTT, mqttv5\r\n",
                   "no \"mqtt\" in Sec-WebSocket-Protocol");
}

static void test_garbage_is_refused_by_the_http_parser(void **state)
{
    (void)state;
    struct ws_upgrade *u = ws_upgrade_new();
    size_t used = 0;
    const uint8_t connect[] = {0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T'};
    assert_int_equal(ws_upgrade_feed(u, connect, sizeof(connect), &used), WS_UPGRADE_BAD);
    assert_true(strlen(ws_upgrade_error(u)) > 0);
    /* Bad is final. */
    assert_int_equal(ws_upgrade_feed(u, connect, sizeof(connect), &used), WS_UPGRADE_BAD);
    assert_int_equal(used, 0);
    ws_upgrade_free(u);
}

static void test_request_over_the_cap_is_refused_and_at_the_cap_accepted(void **state)
{
    (void)state;
    /* A header padded so the whole request is exactly WS_UPGRADE_MAX_BYTES. */
    char *buf = malloc(WS_UPGRADE_MAX_BYTES + 2);
    assert_non_null(buf);
    char head[1024];
    request_with(head, sizeof(head), "GET", "HTTP/1.1", GOOD_HEADERS);
    size_t head_len = strlen(head) - 2; /* without the final CRLF */
    const char *pad_name = "X-Pad: ";
    size_t pad = WS_UPGRADE_MAX_BYTES - head_len - strlen(pad_name) - 4;
    memcpy(buf, head, head_len);
    memcpy(buf + head_len, pad_name, strlen(pad_name));
    memset(buf + head_len + strlen(pad_name), 'a', pad);
    memcpy(buf + WS_UPGRADE_MAX_BYTES - 4, "\r\n\r\n", 4);
    struct ws_upgrade *u = ws_upgrade_new();
    size_t used = 0;
    assert_int_equal(ws_upgrade_feed(u, (uint8_t *)buf, WS_UPGRADE_MAX_BYTES, &used),
                     WS_UPGRADE_DONE);
    assert_int_equal(used, WS_UPGRADE_MAX_BYTES);
    ws_upgrade_free(u);
    /* One byte more of padding: refused, whatever the reads. */
    memmove(buf + head_len + strlen(pad_name) + 1, buf + head_len + strlen(pad_name), pad + 4);
    u = ws_upgrade_new();
    assert_int_equal(ws_upgrade_feed(u, (uint8_t *)buf, 4000, &used), WS_UPGRADE_MORE);
    assert_int_equal(
        ws_upgrade_feed(u, (uint8_t *)buf + 4000, WS_UPGRADE_MAX_BYTES + 1 - 4000, &used),
        WS_UPGRADE_BAD);
    assert_string_equal(ws_upgrade_error(u), "request headers too large");
    ws_upgrade_free(u);
    free(buf);
}

static void test_400_names_version_13_and_the_reason(void **state)
{
    (void)state;
    char buf[1024], resp[WS_RESPONSE_MAX_BYTES];
    struct ws_upgrade *u = ws_upgrade_new();
    size_t used = 0;
    feed_all(u, request_with(buf, sizeof(buf), "POST", "HTTP/1.1", GOOD_HEADERS), &used);
    size_t len = ws_upgrade_response(u, resp, sizeof(resp));
    assert_true(len > 0);
    assert_non_null(strstr(resp, "HTTP/1.1 400 Bad Request\r\n"));
    assert_non_null(strstr(resp, "Sec-WebSocket-Version: 13\r\n"));
    assert_non_null(strstr(resp, "Content-Length: 18\r\n\r\nmethod is not GET\n"));
    assert_int_equal(ws_upgrade_response(u, resp, 10), 0); /* too small: nothing */
    ws_upgrade_free(u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_key_of_rfc6455_example),
        cmocka_unit_test(test_accept_key_longer_than_64_is_refused),
        cmocka_unit_test(test_valid_request_in_one_piece_answers_101_with_accept_and_mqtt),
        cmocka_unit_test(test_valid_request_byte_by_byte_completes_on_the_last_byte),
        cmocka_unit_test(test_bytes_after_the_request_are_not_taken),
        cmocka_unit_test(test_header_names_and_tokens_are_case_insensitive_and_listed),
        cmocka_unit_test(test_no_subprotocol_offered_answers_without_one),
        cmocka_unit_test(test_subprotocol_mqtt_preferred_then_mqttv31),
        cmocka_unit_test(test_content_length_zero_is_no_body),
        cmocka_unit_test(test_missing_or_duplicate_key_is_refused),
        cmocka_unit_test(test_key_not_16_bytes_of_base64_is_refused),
        cmocka_unit_test(test_version_other_than_13_is_refused),
        cmocka_unit_test(test_missing_upgrade_or_connection_is_refused),
        cmocka_unit_test(test_method_and_http_version_are_checked),
        cmocka_unit_test(test_a_body_is_refused),
        cmocka_unit_test(test_offered_subprotocols_without_mqtt_are_refused),
        cmocka_unit_test(test_garbage_is_refused_by_the_http_parser),
        cmocka_unit_test(test_request_over_the_cap_is_refused_and_at_the_cap_accepted),
        cmocka_unit_test(test_400_names_version_13_and_the_reason),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
