/*
 * test_session.c - the session manager against a real LMDB store in a temp
 * directory. The network side is a recording sink: each fake connection
 * collects the bytes the manager sends, and the tests decode them with the
 * codec. Acks that promise durability must appear only after session_flush().
 */
#define _GNU_SOURCE /* RTLD_NEXT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <dlfcn.h>
#include <sys/uio.h>

#include "auth.h"
#include "disk_full.h"
#include "mqtt.h"
#include "mqtt_topic.h"
#include "session.h"
#include "store.h"

#include "session_fixture.h"

/* ---- Tests ---- */

static void test_first_packet_must_be_connect_MQTT_3_1_0_1(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *fc = new_conn(f);
    struct mqtt_packet p = {.type = MQTT_PINGREQ};
    feed(f, fc, &p, SESSION_ERR_PROTOCOL);
    gone(f, fc, SESSION_CLOSE_PROTOCOL);
}

static void test_second_connect_is_protocol_error_MQTT_3_1_0_2(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *fc = connect_client(f, "c1", true, false);
    struct mqtt_packet p = connect_packet("c1", true);
    feed(f, fc, &p, SESSION_ERR_PROTOCOL);
    gone(f, fc, SESSION_CLOSE_PROTOCOL);
}

static void test_empty_client_id_without_clean_session_gets_connack_2_MQTT_3_1_3_8(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *fc = new_conn(f);
    struct mqtt_packet p = connect_packet("", false);
    feed(f, fc, &p, SESSION_ERR_CONNECT_REFUSED);
    session_flush(f->mgr);
    struct mqtt_packet ack = next_sent(fc);
    assert_int_equal(ack.type, MQTT_CONNACK);
    assert_int_equal(ack.u.connack.return_code, MQTT_CONNACK_ID_REJECTED);
    gone(f, fc, SESSION_CLOSE_PROTOCOL);
}

static void test_empty_client_id_with_clean_session_is_accepted(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *fc = connect_client(f, "", true, false);
    assert_int_equal(strncmp(session_client_name(fc->client), "auto-", 5), 0);
    assert_int_equal(fc->keepalive_s, 60);
    gone(f, fc, SESSION_CLOSE_DISCONNECT);
}

static void test_pingreq_gets_pingresp(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *fc = connect_client(f, "c1", true, false);
    struct mqtt_packet p = {.type = MQTT_PINGREQ};
    feed(f, fc, &p, SESSION_OK);
    session_flush(f->mgr);
    assert_int_equal(next_sent(fc).type, MQTT_PINGRESP);
    gone(f, fc, SESSION_CLOSE_DISCONNECT);
}

static void test_puback_is_held_until_the_commit(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *sub = connect_client(f, "sub", false, false);
    subscribe(f, sub, "a/b", 1, 1);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish(f, pub, "a/b", "hello", 1, false, 11);
    /* Queued durably for a persistent session: the PUBACK waits for the
     * commit. The QoS 1 delivery need not (a crash can only duplicate it). */
    assert_int_equal(next_sent(pub).type, 0);
    assert_publish(next_sent(sub), "a/b", "hello", 1);
    assert_true(session_has_pending(f->mgr));
    struct session_stats before, after;
    session_get_stats(f->mgr, &before);
    assert_int_equal(session_flush(f->mgr), 0);
    session_get_stats(f->mgr, &after);
    assert_int_equal(after.commits, before.commits + 1); /* one commit for the turn */
    struct mqtt_packet ack = next_sent(pub);
    assert_int_equal(ack.type, MQTT_PUBACK);
    assert_int_equal(ack.u.ack.packet_id, 11);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

/* A QoS 2 delivery carries the packet id the receiver deduplicates by: it
 * must not leave before the record of that id is durable [MQTT-4.3.3-2]. */
static void test_qos2_delivery_and_pubrec_are_held_until_the_commit(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *sub = connect_client(f, "sub", false, false);
    subscribe(f, sub, "q2", 2, 2);
    struct fake_conn *pub = connect_client(f, "pub", false, false);
    publish(f, pub, "q2", "once", 2, false, 12);
    assert_int_equal(next_sent(pub).type, 0);
    assert_int_equal(next_sent(sub).type, 0);
    assert_int_equal(session_flush(f->mgr), 0);
    assert_int_equal(next_sent(pub).type, MQTT_PUBREC);
    struct mqtt_packet p = next_sent(sub);
    assert_publish(p, "q2", "once", 2);
    send_ack(f, sub, MQTT_PUBREC, p.u.publish.packet_id);
    assert_int_equal(next_sent(sub).type, 0); /* PUBREL waits for PUBREC_RECEIVED to be stored */
    session_flush(f->mgr);
    assert_int_equal(next_sent(sub).type, MQTT_PUBREL);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

static void test_qos0_to_clean_session_needs_no_commit(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *sub = connect_client(f, "sub", true, false);
    subscribe(f, sub, "t", 0, 0);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish(f, pub, "t", "x", 0, false, 0);
    assert_false(session_has_pending(f->mgr));
    assert_publish(next_sent(sub), "t", "x", 0);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

static void test_delivery_qos_is_min_of_publish_and_granted(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *sub = connect_client(f, "sub", true, false);
    subscribe(f, sub, "t/+", 1, 1);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish(f, pub, "t/x", "two", 2, false, 5);
    session_flush(f->mgr);
    assert_int_equal(next_sent(pub).type, MQTT_PUBREC);
    assert_publish(next_sent(sub), "t/x", "two", 1);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

static void test_overlapping_subscriptions_deliver_once_at_max_qos(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *sub = connect_client(f, "sub", true, false);
    subscribe(f, sub, "a/#", 0, 0);
    subscribe(f, sub, "a/+", 2, 2);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish(f, pub, "a/b", "m", 2, false, 9);
    session_flush(f->mgr);
    assert_publish(next_sent(sub), "a/b", "m", 2);
    assert_int_equal(next_sent(sub).type, 0);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

static void test_invalid_filter_gets_suback_0x80(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *sub = connect_client(f, "sub", true, false);
    subscribe(f, sub, "a/b#", 1, MQTT_SUBACK_FAILURE);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

static void test_dollar_topics_not_matched_by_wildcard_first_level_MQTT_4_7_2_1(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *sub = connect_client(f, "sub", true, false);
    subscribe(f, sub, "#", 0, 0);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish(f, pub, "$SYS/x", "no", 0, false, 0);
    publish(f, pub, "plain", "yes", 0, false, 0);
    assert_publish(next_sent(sub), "plain", "yes", 0);
    assert_int_equal(next_sent(sub).type, 0);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

static void test_incoming_qos2_duplicate_is_delivered_once_MQTT_4_3_3_2(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *sub = connect_client(f, "sub", true, false);
    subscribe(f, sub, "q", 2, 2);
    struct fake_conn *pub = connect_client(f, "pub", false, false);
    publish(f, pub, "q", "once", 2, false, 42);
    session_flush(f->mgr);
    assert_int_equal(next_sent(pub).type, MQTT_PUBREC);
    publish(f, pub, "q", "once", 2, false, 42); /* resend, e.g. PUBREC lost */
    session_flush(f->mgr);
    assert_int_equal(next_sent(pub).type, MQTT_PUBREC);
    assert_publish(next_sent(sub), "q", "once", 2);
    assert_int_equal(next_sent(sub).type, 0);
    send_ack(f, pub, MQTT_PUBREL, 42);
    session_flush(f->mgr);
    struct mqtt_packet comp = next_sent(pub);
    assert_int_equal(comp.type, MQTT_PUBCOMP);
    assert_int_equal(comp.u.ack.packet_id, 42);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

static void test_outgoing_qos2_flow_pubrec_pubrel_pubcomp(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *sub = connect_client(f, "sub", false, false);
    subscribe(f, sub, "q", 2, 2);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish(f, pub, "q", "x", 2, false, 1);
    session_flush(f->mgr);
    struct mqtt_packet p = next_sent(sub);
    assert_publish(p, "q", "x", 2);
    send_ack(f, sub, MQTT_PUBREC, p.u.publish.packet_id);
    session_flush(f->mgr);
    struct mqtt_packet rel = next_sent(sub);
    assert_int_equal(rel.type, MQTT_PUBREL);
    assert_int_equal(rel.u.ack.packet_id, p.u.publish.packet_id);
    send_ack(f, sub, MQTT_PUBCOMP, p.u.publish.packet_id);
    session_flush(f->mgr);
    /* The queue entry and the body are gone from the store. */
    assert_int_equal(store_check(f->store, NULL, NULL), 0);
    struct store_stats st;
    assert_int_equal(store_stats(f->store, &st), 0);
    for (int i = 0; i < STORE_DB_COUNT; i++)
        if (strcmp(st.dbs[i].name, "queues") == 0 || strcmp(st.dbs[i].name, "messages") == 0)
            assert_int_equal(st.dbs[i].entries, 0);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

static void test_inflight_window_holds_back_the_rest_in_order(void **state)
{
    struct fixture *f = *state;
    close_all(f);
    f->config.max_inflight_messages = 2;
    open_all(f);
    struct fake_conn *sub = connect_client(f, "sub", false, false);
    subscribe(f, sub, "w", 1, 1);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    char payload[16];
    for (int i = 0; i < 5; i++) {
        snprintf(payload, sizeof(payload), "m%d", i);
        publish(f, pub, "w", payload, 1, false, (uint16_t)(i + 1));
    }
    session_flush(f->mgr);
    struct mqtt_packet a = next_sent(sub), b = next_sent(sub);
    assert_publish(a, "w", "m0", 1);
    assert_publish(b, "w", "m1", 1);
    assert_int_equal(next_sent(sub).type, 0);
    int next = 2;
    for (int round = 0; round < 5 && next < 5; round++) {
        send_ack(f, sub, MQTT_PUBACK, a.u.publish.packet_id);
        session_flush(f->mgr);
        a = b;
        b = next_sent(sub);
        snprintf(payload, sizeof(payload), "m%d", next++);
        assert_publish(b, "w", payload, 1);
    }
    assert_int_equal(next, 5);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

static void test_offline_persistent_session_gets_queue_on_reconnect(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *sub = connect_client(f, "sub", false, false);
    subscribe(f, sub, "o/#", 1, 1);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish(f, pub, "o/1", "first", 1, false, 1);
    publish(f, pub, "o/2", "second", 0, false, 0); /* QoS 0: not queued offline */
    publish(f, pub, "o/3", "third", 1, false, 2);
    session_flush(f->mgr);
    sub = connect_client(f, "sub", false, true);
    session_flush(f->mgr);
    assert_publish(next_sent(sub), "o/1", "first", 1);
    assert_publish(next_sent(sub), "o/3", "third", 1);
    assert_int_equal(next_sent(sub).type, 0);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

static void test_restart_keeps_subscriptions_queue_and_resends_with_dup(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *sub = connect_client(f, "sub", false, false);
    subscribe(f, sub, "r", 1, 1);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish(f, pub, "r", "unacked", 1, false, 1);
    session_flush(f->mgr);
    struct mqtt_packet first = next_sent(sub);
    assert_publish(first, "r", "unacked", 1);
    assert_false(first.u.publish.dup);
    gone(f, sub, SESSION_CLOSE_SOCKET);
    publish(f, pub, "r", "queued", 1, false, 2);
    session_flush(f->mgr);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);

    close_all(f); /* restart */
    open_all(f);
    sub = connect_client(f, "sub", false, true);
    session_flush(f->mgr);
    struct mqtt_packet again = next_sent(sub);
    assert_publish(again, "r", "unacked", 1);
    assert_true(again.u.publish.dup);
    assert_int_equal(again.u.publish.packet_id, first.u.publish.packet_id);
    struct mqtt_packet queued = next_sent(sub);
    assert_publish(queued, "r", "queued", 1);
    assert_false(queued.u.publish.dup);
    /* The subscription survived the restart too. */
    pub = connect_client(f, "pub", true, false);
    publish(f, pub, "r", "live", 1, false, 3);
    session_flush(f->mgr);
    assert_publish(next_sent(sub), "r", "live", 1);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

static void test_clean_session_discards_stored_state(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *sub = connect_client(f, "sub", false, false);
    subscribe(f, sub, "c", 1, 1);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
    sub = connect_client(f, "sub", true, false); /* session present 0 */
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
    session_flush(f->mgr);
    sub = connect_client(f, "sub", false, false); /* nothing left to resume */
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish(f, pub, "c", "x", 1, false, 1);
    session_flush(f->mgr);
    assert_int_equal(next_sent(sub).type, 0);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

static void test_retained_delivered_on_subscribe_with_retain_flag_and_cleared(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish(f, pub, "ret/a", "kept", 1, true, 1);
    session_flush(f->mgr);
    struct fake_conn *sub = connect_client(f, "sub", true, false);
    subscribe(f, sub, "ret/+", 1, 1);
    session_flush(f->mgr);
    struct mqtt_packet p = next_sent(sub);
    assert_publish(p, "ret/a", "kept", 1);
    assert_true(p.u.publish.retain);
    /* A live forward of a retained publish carries RETAIN 0 [MQTT-3.3.1-9]. */
    publish(f, pub, "ret/a", "newer", 0, true, 0);
    session_flush(f->mgr);
    p = next_sent(sub);
    assert_publish(p, "ret/a", "newer", 0);
    assert_false(p.u.publish.retain);
    publish(f, pub, "ret/a", "", 0, true, 0); /* clears [MQTT-3.3.1-10] */
    session_flush(f->mgr);
    struct fake_conn *late = connect_client(f, "late", true, false);
    subscribe(f, late, "ret/#", 1, 1);
    session_flush(f->mgr);
    assert_int_equal(next_sent(late).type, 0);
    gone(f, late, SESSION_CLOSE_DISCONNECT);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

static void test_retained_survives_restart(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish(f, pub, "ret/r", "durable", 1, true, 1);
    session_flush(f->mgr);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    close_all(f);
    open_all(f);
    struct fake_conn *sub = connect_client(f, "sub", true, false);
    subscribe(f, sub, "ret/r", 0, 0);
    session_flush(f->mgr);
    assert_publish(next_sent(sub), "ret/r", "durable", 0);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

static void fail_the_commit(struct fixture *f, struct fake_conn *fc);

static uint64_t retained_stat(struct fixture *f)
{
    struct session_stats st;
    session_get_stats(f->mgr, &st);
    return st.retained;
}

/* Retained messages live in the store; a change not yet committed is seen by
 * a SUBSCRIBE in the same turn (the pending change answers, not the store). */
static void test_retained_change_seen_before_its_commit(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish(f, pub, "p/t", "first", 0, true, 0);
    session_flush(f->mgr);
    publish(f, pub, "p/t", "second", 0, true, 0); /* not committed yet */
    struct fake_conn *sub = connect_client(f, "sub", true, false);
    subscribe(f, sub, "p/#", 0, 0);
    assert_publish(next_sent(sub), "p/t", "second", 0);
    assert_int_equal(next_sent(sub).type, 0); /* not the stored "first" too */
    publish(f, pub, "p/t", "", 0, true, 0);   /* a pending clear */
    struct fake_conn *late = connect_client(f, "late", true, false);
    subscribe(f, late, "p/t", 0, 0);
    assert_int_equal(next_sent(late).type, 0);
    gone(f, late, SESSION_CLOSE_DISCONNECT);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
}

/* The retained count follows committed changes only, and is read from the
 * store at start (no payload is loaded). */
static void test_retained_count_follows_commits_and_restarts(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish(f, pub, "c/1", "a", 0, true, 0);
    publish(f, pub, "c/2", "b", 0, true, 0);
    publish(f, pub, "c/3", "c", 0, true, 0);
    session_flush(f->mgr);
    assert_int_equal(retained_stat(f), 3);
    publish(f, pub, "c/1", "replaced", 0, true, 0);
    publish(f, pub, "c/2", "", 0, true, 0);
    publish(f, pub, "c/2", "", 0, true, 0); /* clearing nothing */
    session_flush(f->mgr);
    assert_int_equal(retained_stat(f), 2);
    publish(f, pub, "c/4", "lost", 1, true, 1);
    fail_the_commit(f, pub);
    assert_int_equal(retained_stat(f), 2);
    close_all(f);
    open_all(f);
    assert_int_equal(retained_stat(f), 2);
    struct fake_conn *sub = connect_client(f, "sub", true, false);
    subscribe(f, sub, "c/+", 0, 0);
    struct mqtt_packet p1 = next_sent(sub), p2 = next_sent(sub);
    assert_int_equal(next_sent(sub).type, 0);
    /* The store returns them in topic order. */
    assert_publish(p1, "c/1", "replaced", 0);
    assert_publish(p2, "c/3", "c", 0);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

/* Stored retained messages match wildcard filters exactly as the spec says,
 * whatever part of the store a filter's literal levels select. */
static void test_retained_filters_match_stored_topics_like_the_spec(void **state)
{
    struct fixture *f = *state;
    static const char *const topics[] = {"a",  "a/b",  "a/b/c", "ab",  "ab/c", "a//c",
                                         "/a", "$x/a", "a/bc",  "b/b", "a/",   "/"};
    static const char *const filters[] = {"a/#", "a/+",  "+/b",   "#",    "+",  "a/+/c", "+/+",
                                          "/#",  "a//+", "$x/#",  "+/a",  "ab", "a/b",   "a/",
                                          "+/",  "$x/+", "a/b/#", "ab/#", "/+", "+/+/+"};
    enum { T = sizeof(topics) / sizeof(topics[0]) };
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    for (size_t i = 0; i < T; i++)
        publish(f, pub, topics[i], topics[i], 0, true, 0);
    session_flush(f->mgr);
    for (size_t k = 0; k < sizeof(filters) / sizeof(filters[0]); k++) {
        struct fake_conn *sub = connect_client(f, "sub", true, false);
        subscribe(f, sub, filters[k], 0, 0);
        bool got[T] = {false};
        struct mqtt_packet p;
        while ((p = next_sent(sub)).type == MQTT_PUBLISH) {
            size_t i = 0;
            while (i < T && (strlen(topics[i]) != p.u.publish.topic.len ||
                             memcmp(topics[i], p.u.publish.topic.data, p.u.publish.topic.len)))
                i++;
            assert_true(i < T);
            assert_false(got[i]); /* once */
            got[i] = true;
        }
        for (size_t i = 0; i < T; i++) {
            struct mqtt_bytes fb = {(const uint8_t *)filters[k], strlen(filters[k])};
            struct mqtt_bytes tb = {(const uint8_t *)topics[i], strlen(topics[i])};
            if (got[i] != mqtt_topic_matches(fb, tb))
                fail_msg("filter %s, topic %s: sent %d", filters[k], topics[i], got[i]);
        }
        gone(f, sub, SESSION_CLOSE_DISCONNECT);
    }
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
}

/* Reads every PUBLISH sent on fc so far, checking they are "s/000",
 * "s/001", ... in order from *next; returns how many. */
static int read_stream(struct fake_conn *fc, int *next, uint8_t qos, uint16_t *ids)
{
    int n = 0;
    struct mqtt_packet p;
    while ((p = next_sent(fc)).type == MQTT_PUBLISH) {
        char topic[16];
        snprintf(topic, sizeof(topic), "s/%03d", *next);
        assert_publish(p, topic, "0123456789012345678901234567890123456789", qos);
        assert_true(p.u.publish.retain);
        if (ids)
            ids[n] = p.u.publish.packet_id;
        (*next)++;
        n++;
    }
    assert_int_equal(p.type, 0);
    return n;
}

static void publish_stream_topics(struct fixture *f, int count)
{
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    for (int i = 0; i < count; i++) {
        char topic[16];
        snprintf(topic, sizeof(topic), "s/%03d", i);
        publish(f, pub, topic, "0123456789012345678901234567890123456789", 1, true, 1);
        session_flush(f->mgr);
        assert_int_equal(next_sent(pub).type, MQTT_PUBACK);
    }
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
}

/* A '#' SUBSCRIBE over more retained messages than the output holds: QoS 0
 * ones wait for the reader instead of being dropped, and come in topic
 * order, each once. */
static void test_retained_stream_waits_for_a_slow_reader_at_qos0(void **state)
{
    struct fixture *f = *state;
    close_all(f);
    f->config.max_qos0_output_bytes = 1000;
    open_all(f);
    enum { N = 300 };
    publish_stream_topics(f, N);
    struct fake_conn *sub = connect_client(f, "sub", true, false);
    sub->is_slow = true;
    subscribe(f, sub, "s/#", 0, 0);
    int next = 0;
    int first = read_stream(sub, &next, 0, NULL);
    assert_true(first > 0 && first < N / 4); /* paused at the output limit */
    for (int round = 0; round < 4 * N && next < N; round++) {
        sub->pending = 0; /* the reader took it all */
        session_client_writable(f->mgr, sub->client);
        session_flush(f->mgr);
        read_stream(sub, &next, 0, NULL);
    }
    assert_int_equal(next, N);
    struct session_stats st;
    session_get_stats(f->mgr, &st);
    assert_int_equal(st.messages_dropped, 0);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

/* At QoS 1 the stream follows the window: never more in flight than
 * max_inflight_messages, nothing parked in the queue, the rest read from the
 * store as PUBACKs come back; a persistent session offline in between
 * resumes where it stopped. */
static void test_retained_stream_follows_the_window_at_qos1(void **state)
{
    struct fixture *f = *state;
    close_all(f);
    f->config.max_inflight_messages = 10;
    open_all(f);
    enum { N = 45 };
    publish_stream_topics(f, N);
    struct fake_conn *sub = connect_client(f, "sub", false, false);
    subscribe(f, sub, "s/+", 1, 1);
    int next = 0;
    uint16_t ids[16];
    int got = read_stream(sub, &next, 1, ids);
    assert_int_equal(got, 10);
    struct session_stats st;
    session_get_stats(f->mgr, &st);
    assert_int_equal(st.queued_messages, 0);
    for (int i = 0; i < got; i++)
        send_ack(f, sub, MQTT_PUBACK, ids[i]);
    session_flush(f->mgr);
    assert_int_equal(read_stream(sub, &next, 1, ids), 10);
    gone(f, sub, SESSION_CLOSE_KEEPALIVE); /* 10 unacknowledged in flight */
    session_flush(f->mgr);
    sub = connect_client(f, "sub", false, true);
    /* The window is resent first (DUP), then the stream goes on. */
    struct mqtt_packet p;
    int resent = 0;
    while ((p = next_sent(sub)).type == MQTT_PUBLISH) {
        assert_true(p.u.publish.dup);
        send_ack(f, sub, MQTT_PUBACK, p.u.publish.packet_id);
        resent++;
    }
    assert_int_equal(resent, 10);
    for (int round = 0; round < 4 * N && next < N; round++) {
        session_flush(f->mgr);
        got = read_stream(sub, &next, 1, ids);
        assert_true(got <= 10);
        for (int i = 0; i < got; i++)
            send_ack(f, sub, MQTT_PUBACK, ids[i]);
    }
    assert_int_equal(next, N);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

/* UNSUBSCRIBE ends the stream of that filter. */
static void test_unsubscribe_stops_the_retained_stream(void **state)
{
    struct fixture *f = *state;
    close_all(f);
    f->config.max_qos0_output_bytes = 1000;
    open_all(f);
    publish_stream_topics(f, 100);
    struct fake_conn *sub = connect_client(f, "sub", true, false);
    sub->is_slow = true;
    subscribe(f, sub, "s/#", 0, 0);
    int next = 0;
    assert_true(read_stream(sub, &next, 0, NULL) < 100);
    feed_subscribe(f, sub, MQTT_UNSUBSCRIBE, 9, "s/#", 0);
    session_flush(f->mgr);
    assert_int_equal(next_sent(sub).type, MQTT_UNSUBACK);
    sub->pending = 0;
    session_client_writable(f->mgr, sub->client);
    session_flush(f->mgr);
    assert_int_equal(next_sent(sub).type, 0);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

static void test_will_published_on_unclean_close_not_after_disconnect(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *sub = connect_client(f, "sub", true, false);
    subscribe(f, sub, "will/#", 0, 0);
    struct fake_conn *w = connect_with_will(f, "w1");
    gone(f, w, SESSION_CLOSE_KEEPALIVE);
    assert_publish(next_sent(sub), "will/t", "bye", 0);
    w = connect_with_will(f, "w2");
    gone(f, w, SESSION_CLOSE_DISCONNECT);
    assert_int_equal(next_sent(sub).type, 0);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

static void test_takeover_closes_old_connection_and_fires_its_will(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *sub = connect_client(f, "sub", true, false);
    subscribe(f, sub, "will/#", 0, 0);
    struct fake_conn *old = connect_with_will(f, "same");
    struct fake_conn *neu = connect_client(f, "same", true, false);
    assert_true(old->closed);
    assert_false(neu->closed);
    assert_publish(next_sent(sub), "will/t", "bye", 0);
    gone(f, old, SESSION_CLOSE_TAKEOVER);     /* the server reports the close later */
    assert_int_equal(next_sent(sub).type, 0); /* the will fired once */
    assert_string_equal(session_client_name(neu->client), "same");
    gone(f, neu, SESSION_CLOSE_DISCONNECT);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

static void test_unsubscribe_stops_delivery_and_is_acked(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *sub = connect_client(f, "sub", false, false);
    subscribe(f, sub, "u", 1, 1);
    struct mqtt_topic_entry e = {{(const uint8_t *)"u", 1}, 0};
    struct mqtt_packet p = {.type = MQTT_UNSUBSCRIBE};
    p.u.subscribe.packet_id = 3;
    p.u.subscribe.count = 1;
    p.u.subscribe.entries = &e;
    uint8_t buf[64];
    size_t n = 0, used = 0;
    assert_int_equal(mqtt_encode(&p, buf, sizeof(buf), &n), MQTT_OK);
    struct mqtt_packet decoded;
    assert_int_equal(mqtt_decode_stream(buf, n, 0, &decoded, &used), MQTT_OK);
    feed(f, sub, &decoded, SESSION_OK);
    session_flush(f->mgr);
    struct mqtt_packet ack = next_sent(sub);
    assert_int_equal(ack.type, MQTT_UNSUBACK);
    assert_int_equal(ack.u.ack.packet_id, 3);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish(f, pub, "u", "x", 1, false, 1);
    session_flush(f->mgr);
    assert_int_equal(next_sent(sub).type, 0);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

/* Reopens the fixture on a 1 MiB map: a 2 MiB message fails the commit with
 * STORE_ERR_FULL. */

/* Quotas before records: a publish the store has no room for is refused
 * before anything of it is recorded - no PUBREC, no delivery, the publisher
 * closed - and nobody else's commit fails because of it. */
static void test_store_full_refuses_the_publish_not_the_commit(void **state)
{
    struct fixture *f = *state;
    reopen_with_tiny_map(f);
    struct fake_conn *sub = connect_client(f, "sub", false, false);
    subscribe(f, sub, "big", 2, 2);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    struct fake_conn *other = connect_client(f, "other", true, false);
    publish(f, other, "small", "fits", 1, false, 1); /* same turn */
    size_t big_len = 2u << 20;
    char *big = malloc(big_len + 1);
    assert_non_null(big);
    memset(big, 'x', big_len);
    big[big_len] = '\0';
    struct mqtt_packet p = {.type = MQTT_PUBLISH};
    p.u.publish.qos = 2;
    p.u.publish.packet_id = 1;
    p.u.publish.topic = (struct mqtt_bytes){(const uint8_t *)"big", 3};
    p.u.publish.payload = (struct mqtt_bytes){(const uint8_t *)big, big_len};
    feed(f, pub, &p, SESSION_ERR_STORE_FULL);
    free(big);
    assert_int_equal(session_flush(f->mgr), 0); /* the turn's commit goes through */
    assert_int_equal(next_sent(other).type, MQTT_PUBACK);
    assert_int_equal(next_sent(pub).type, 0); /* no PUBREC */
    assert_int_equal(next_sent(sub).type, 0); /* no delivery */
    assert_int_equal(db_entries(f, "messages"), 0);
    gone(f, pub, SESSION_CLOSE_PROTOCOL);
    gone(f, other, SESSION_CLOSE_DISCONNECT);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

/* Reservations that end up unused (the messages were dropped by a queue
 * limit, so nothing was written) are released at the end of the turn: they
 * once piled up until every publish was refused as "store full". */
static void test_unused_reservations_do_not_fill_the_store(void **state)
{
    struct fixture *f = *state;
    close_all(f);
    f->config.max_queued_messages = 1;
    f->config.max_queued_bytes = 0;
    reopen_with_tiny_map(f);
    struct fake_conn *sub = connect_client(f, "sub", false, false);
    subscribe(f, sub, "t", 1, 1);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
    session_flush(f->mgr);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    char payload[4097];
    memset(payload, 'p', sizeof(payload) - 1);
    payload[sizeof(payload) - 1] = '\0';
    for (uint16_t i = 1; i <= 500; i++) { /* 500 x 4 KiB: twice the 1 MiB map */
        publish(f, pub, "t", payload, 1, false, i);
        session_flush(f->mgr); /* the end of each turn */
        assert_int_equal(next_sent(pub).type, MQTT_PUBACK);
    }
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
}

/* ---- A disk that fills up: the store's writes fail with ENOSPC (disk_full.h) ---- */

/* Commits the turn while the disk is full: fc's held ack never leaves, and
 * fc is closed and gone. */
static void fail_the_commit(struct fixture *f, struct fake_conn *fc)
{
    size_t before = fc->out_len;
    disk_is_full = true;
    int rc = session_flush(f->mgr);
    disk_is_full = false;
    assert_int_equal(rc, STORE_ERR_FULL);
    assert_false(session_has_failed(f->mgr)); /* a full disk is not an I/O error */
    assert_int_equal(fc->out_len, before);    /* no ack */
    assert_true(fc->closed);
    gone(f, fc, SESSION_CLOSE_PROTOCOL);
    session_flush(f->mgr);
}

static void test_commit_failure_sends_no_ack_and_closes_the_client(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *sub = connect_client(f, "sub", false, false);
    subscribe(f, sub, "t", 2, 2); /* QoS 2: the delivery is held too */
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish(f, pub, "t", "x", 2, false, 1);
    fail_the_commit(f, pub);                  /* no PUBREC */
    assert_int_equal(next_sent(sub).type, 0); /* no QoS 2 delivery */
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

/* A persistent client whose CONNACK waited for a commit that failed was never
 * accepted: its will must not fire when it is closed. */
static void test_connack_lost_to_a_failed_commit_leaves_no_will(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *sub = connect_client(f, "sub", true, false);
    subscribe(f, sub, "will/#", 0, 0);
    struct fake_conn *w = new_conn(f);
    struct mqtt_packet p = connect_packet("w", false);
    p.u.connect.has_will = true;
    p.u.connect.will_topic = (struct mqtt_bytes){(const uint8_t *)"will/w", 6};
    p.u.connect.will_payload = (struct mqtt_bytes){(const uint8_t *)"gone", 4};
    feed(f, w, &p, SESSION_OK);
    fail_the_commit(f, w); /* no CONNACK; an accepted client's will would fire now */
    assert_int_equal(next_sent(sub).type, 0);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

/* ---- Memory follows the store (issue 10): after a failed commit, memory
 * says what the store says. Each test fails the commit that holds the change
 * under test with a full disk. */

/* A queued QoS 2 message sent from the store gets a packet id; the PUBLISH
 * waits for the commit that records it. Sent before, a failed commit (or a
 * crash) would send it again under another id: a second delivery. */
static void test_queued_qos2_publish_waits_for_its_packet_id_record(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *s = connect_client(f, "s", false, false);
    subscribe(f, s, "t", 2, 2);
    gone(f, s, SESSION_CLOSE_DISCONNECT);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish(f, pub, "t", "once", 2, false, 1);
    session_flush(f->mgr);
    s = new_conn(f);
    struct mqtt_packet p = connect_packet("s", false);
    feed(f, s, &p, SESSION_OK);
    fail_the_commit(f, s); /* every round of this flush fails: no CONNACK, no PUBLISH */
    s = connect_client(f, "s", false, true);
    struct mqtt_packet got = next_sent(s);
    assert_publish(got, "t", "once", 2);
    assert_false(got.u.publish.dup); /* first time out: it never left before */
    gone(f, s, SESSION_CLOSE_DISCONNECT);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
}

static void test_failed_commit_forgets_a_pending_qos2_id(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *pub = connect_client(f, "pub", false, false);
    publish(f, pub, "t", "first try", 2, false, 1);
    fail_the_commit(f, pub); /* no PUBREC */
    struct fake_conn *sub = connect_client(f, "sub", true, false);
    subscribe(f, sub, "t", 2, 2);
    /* The resend is a new message to the broker: its first copy was never
     * accepted, so it is routed, not answered from a remembered id. */
    pub = connect_client(f, "pub", false, true);
    publish(f, pub, "t", "again", 2, false, 1);
    session_flush(f->mgr);
    assert_int_equal(next_sent(pub).type, MQTT_PUBREC);
    assert_publish(next_sent(sub), "t", "again", 2);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

static void test_failed_commit_keeps_a_released_qos2_id(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *pub = connect_client(f, "pub", false, false);
    publish(f, pub, "t", "x", 2, false, 7);
    session_flush(f->mgr);
    assert_int_equal(next_sent(pub).type, MQTT_PUBREC);
    assert_int_equal(db_entries(f, "qos2in"), 1);
    send_ack(f, pub, MQTT_PUBREL, 7);
    fail_the_commit(f, pub); /* no PUBCOMP: the client will send PUBREL again */
    pub = connect_client(f, "pub", false, true);
    send_ack(f, pub, MQTT_PUBREL, 7);
    session_flush(f->mgr);
    assert_int_equal(next_sent(pub).type, MQTT_PUBCOMP);
    assert_int_equal(db_entries(f, "qos2in"), 0); /* the retried PUBREL released it */
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
}

static void test_failed_commit_undoes_subscribe_and_unsubscribe(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *s = connect_client(f, "s", false, false);
    subscribe(f, s, "kept", 1, 1);
    feed_subscribe(f, s, MQTT_SUBSCRIBE, 9, "new", 1);
    fail_the_commit(f, s);
    s = connect_client(f, "s", false, true);
    feed_subscribe(f, s, MQTT_UNSUBSCRIBE, 9, "kept", 0);
    fail_the_commit(f, s);
    /* s is offline: what it is subscribed to now shows in its queue. */
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish(f, pub, "new", "not subscribed", 1, false, 1);
    publish(f, pub, "kept", "still subscribed", 1, false, 2);
    session_flush(f->mgr);
    assert_int_equal(db_entries(f, "queues"), 1);
    s = connect_client(f, "s", false, true);
    assert_publish(next_sent(s), "kept", "still subscribed", 1);
    gone(f, s, SESSION_CLOSE_DISCONNECT);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
}

static void test_failed_commit_undoes_a_retained_message(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish(f, pub, "r", "old", 1, true, 1);
    session_flush(f->mgr);
    publish(f, pub, "r", "new", 1, true, 2);
    fail_the_commit(f, pub);
    struct fake_conn *sub = connect_client(f, "sub", true, false);
    subscribe(f, sub, "r", 1, 1);
    assert_publish(next_sent(sub), "r", "old", 1);
    assert_int_equal(next_sent(sub).type, 0);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

static void test_failed_commit_of_a_new_session_leaves_none(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *n = new_conn(f);
    struct mqtt_packet p = connect_packet("n", false);
    feed(f, n, &p, SESSION_OK);
    fail_the_commit(f, n);
    n = connect_client(f, "n", false, false); /* no session present */
    gone(f, n, SESSION_CLOSE_DISCONNECT);
}

static void test_failed_commit_of_a_session_discard_reads_it_back(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *d = connect_client(f, "d", false, false);
    subscribe(f, d, "y", 1, 1);
    gone(f, d, SESSION_CLOSE_DISCONNECT);
    session_flush(f->mgr);
    d = new_conn(f);
    struct mqtt_packet p = connect_packet("d", true); /* clean session: discards "d" */
    feed(f, d, &p, SESSION_OK);
    fail_the_commit(f, d);
    d = connect_client(f, "d", false, true); /* still there, with its subscription */
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish(f, pub, "y", "for d", 1, false, 1);
    session_flush(f->mgr);
    assert_publish(next_sent(d), "y", "for d", 1);
    gone(f, d, SESSION_CLOSE_DISCONNECT);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
}

/* A discard undone while a newer persistent session took the id in the same
 * failed turn: the store's session comes back, the newer one goes with its
 * client (it was kept, out of the table, forever - found by fuzz_session). */
static void test_failed_discard_under_a_newer_session_keeps_the_stored_one(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *d = connect_client(f, "d", false, false);
    subscribe(f, d, "y", 1, 1);
    gone(f, d, SESSION_CLOSE_DISCONNECT);
    session_flush(f->mgr);
    struct fake_conn *clean = new_conn(f);
    struct mqtt_packet p = connect_packet("d", true); /* discards "d" */
    feed(f, clean, &p, SESSION_OK);
    struct fake_conn *newer = new_conn(f);
    p = connect_packet("d", false); /* takes over, a new persistent session */
    feed(f, newer, &p, SESSION_OK);
    gone(f, clean, SESSION_CLOSE_PROTOCOL); /* taken over */
    fail_the_commit(f, newer);
    d = connect_client(f, "d", false, true); /* the stored one, with its subscription */
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish(f, pub, "y", "for d", 1, false, 1);
    session_flush(f->mgr);
    assert_publish(next_sent(d), "y", "for d", 1);
    gone(f, d, SESSION_CLOSE_DISCONNECT);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
}

/* ---- Authentication and ACL ---- */

static void write_file(const char *dir, const char *name, const char *text, char *path,
                       size_t path_len)
{
    snprintf(path, path_len, "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static uint8_t connack_code(struct fixture *f, struct fake_conn *fc, struct mqtt_packet *p,
                            int expected_rc)
{
    feed(f, fc, p, expected_rc);
    session_flush(f->mgr);
    struct mqtt_packet ack = next_sent(fc);
    assert_int_equal(ack.type, MQTT_CONNACK);
    return ack.u.connack.return_code;
}

static void test_anonymous_refused_with_connack_5_when_disabled(void **state)
{
    struct fixture *f = *state;
    close_all(f);
    f->config.allow_anonymous = false;
    open_all(f);
    struct fake_conn *fc = new_conn(f);
    struct mqtt_packet p = connect_packet("anon", true);
    assert_int_equal(connack_code(f, fc, &p, SESSION_ERR_CONNECT_REFUSED),
                     MQTT_CONNACK_NOT_AUTHORIZED);
    gone(f, fc, SESSION_CLOSE_PROTOCOL);
}

/* alice / "correct horse", made by Debian's mosquitto_passwd 2.0.11
 * (the same vector test_auth.c uses). */
static const char passwd_file[] = "alice:$7$101$CKAHsyOnkiQXPO9/$AQcHg1f/YXeQuLP5miMu0GQS8A/"
                                  "e9Goc8fJf4yjKGuoudmEpFx4o0QsElmb4buB+/IWI40TrGgLWqpHU+C9HMw==\n";

static void test_password_file_checks_credentials_connack_4(void **state)
{
    struct fixture *f = *state;
    char path[256], err[256];
    write_file(f->dir, "passwd", passwd_file, path, sizeof(path));
    struct auth_passwd *pw = NULL;
    assert_int_equal(auth_passwd_load(path, &pw, err, sizeof(err)), 0);
    session_set_auth(f->mgr, pw, NULL);

    struct fake_conn *ok = new_conn(f);
    struct mqtt_packet p = connect_packet("a1", true);
    p.u.connect.has_username = p.u.connect.has_password = true;
    p.u.connect.username = (struct mqtt_bytes){(const uint8_t *)"alice", 5};
    p.u.connect.password = (struct mqtt_bytes){(const uint8_t *)"correct horse", 13};
    assert_int_equal(connack_code(f, ok, &p, SESSION_OK), MQTT_CONNACK_ACCEPTED);

    struct fake_conn *bad = new_conn(f);
    p.u.connect.client_id = (struct mqtt_bytes){(const uint8_t *)"a2", 2};
    p.u.connect.password = (struct mqtt_bytes){(const uint8_t *)"wrong horse", 11};
    assert_int_equal(connack_code(f, bad, &p, SESSION_ERR_CONNECT_REFUSED),
                     MQTT_CONNACK_BAD_CREDENTIALS);

    struct fake_conn *ident = new_conn(f); /* TLS identity: no password needed */
    assert_int_equal(session_client_set_identity(ident->client, "alice"), 0);
    assert_int_equal(connack_code(f, ident, &p, SESSION_OK), MQTT_CONNACK_ACCEPTED);

    gone(f, ok, SESSION_CLOSE_DISCONNECT);
    gone(f, bad, SESSION_CLOSE_PROTOCOL);
    gone(f, ident, SESSION_CLOSE_DISCONNECT);
    session_set_auth(f->mgr, NULL, NULL);
    auth_passwd_free(pw);
}

static void test_acl_denies_publish_subscribe_and_read(void **state)
{
    struct fixture *f = *state;
    char path[256], err[256];
    write_file(f->dir, "acl",
               "topic readwrite open/#\n"
               "topic read ro/#\n"
               "pattern readwrite own/%c/#\n",
               path, sizeof(path));
    struct auth_acl *acl = NULL;
    assert_int_equal(auth_acl_load(path, &acl, err, sizeof(err)), 0);
    session_set_auth(f->mgr, NULL, acl);

    struct fake_conn *sub = connect_client(f, "sub", true, false);
    subscribe(f, sub, "open/#", 1, 1);
    subscribe(f, sub, "secret/#", 1, MQTT_SUBACK_FAILURE);
    subscribe(f, sub, "own/pub/#", 0, MQTT_SUBACK_FAILURE); /* nothing readable there */
    subscribe(f, sub, "#", 0, 0); /* some topics readable: granted, READ checked per message */
    subscribe(f, sub, "ro/#", 0, 0);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish(f, pub, "ro/x", "denied write", 1, false, 1); /* dropped, still acked */
    session_flush(f->mgr);
    assert_int_equal(next_sent(pub).type, MQTT_PUBACK);
    publish(f, pub, "own/pub/x", "not readable by sub", 0, false, 0);
    publish(f, pub, "open/x", "fine", 0, false, 0);
    session_flush(f->mgr);
    assert_publish(next_sent(sub), "open/x", "fine", 0);
    assert_int_equal(next_sent(sub).type, 0);

    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
    session_set_auth(f->mgr, NULL, NULL);
    auth_acl_free(acl);
}

/* Issue 9: READ was checked only for QoS 0 and persistent sessions. A clean
 * session subscribed to # at QoS 1 got QoS 1 and 2 messages it may not read,
 * live and retained. */
static void test_acl_read_gate_applies_to_clean_sessions_at_qos_1_and_2(void **state)
{
    struct fixture *f = *state;
    char path[256], err[256];
    write_file(f->dir, "acl", "topic readwrite open/#\npattern write secret/#\n", path,
               sizeof(path));
    struct auth_acl *acl = NULL;
    assert_int_equal(auth_acl_load(path, &acl, err, sizeof(err)), 0);
    session_set_auth(f->mgr, NULL, acl);

    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish(f, pub, "secret/r", "retained", 1, true, 1);
    session_flush(f->mgr);
    assert_int_equal(next_sent(pub).type, MQTT_PUBACK);
    for (uint8_t qos = 1; qos <= 2; qos++) {
        struct fake_conn *sub = connect_client(f, "sub", true, false);
        subscribe(f, sub, "#", qos, qos);
        assert_int_equal(next_sent(sub).type, 0); /* the retained secret is not sent */
        publish(f, pub, "secret/x", "denied", 1, false, 2);
        publish(f, pub, "secret/y", "denied", 2, false, 3);
        publish(f, pub, "open/x", "fine", 1, false, 4);
        session_flush(f->mgr);
        assert_publish(next_sent(sub), "open/x", "fine", 1);
        assert_int_equal(next_sent(sub).type, 0);
        gone(f, sub, SESSION_CLOSE_DISCONNECT);
        send_ack(f, pub, MQTT_PUBREL, 3); /* finish the QoS 2 flow */
        session_flush(f->mgr);
        pub->read_pos = pub->out_len;
    }
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    session_set_auth(f->mgr, NULL, NULL);
    auth_acl_free(acl);
}

/* Issue 9: a CONNECT refused because of its will still left the will. */
static void test_refused_connect_leaves_no_will(void **state)
{
    struct fixture *f = *state;
    char path[256], err[256];
    write_file(f->dir, "acl", "topic readwrite open/#\n", path, sizeof(path));
    struct auth_acl *acl = NULL;
    assert_int_equal(auth_acl_load(path, &acl, err, sizeof(err)), 0);
    struct fake_conn *sub = connect_client(f, "sub", true, false);
    subscribe(f, sub, "#", 1, 1);
    subscribe(f, sub, "$SYS/#", 1, 1);
    session_set_auth(f->mgr, NULL, acl);
    const char *wills[] = {"secret/w", "$SYS/broker/uptime"};
    for (size_t i = 0; i < 2; i++) {
        struct fake_conn *bad = new_conn(f);
        struct mqtt_packet p = connect_packet("bad", true);
        p.u.connect.has_will = true;
        p.u.connect.will_qos = 1;
        p.u.connect.will_topic = (struct mqtt_bytes){(const uint8_t *)wills[i], strlen(wills[i])};
        p.u.connect.will_payload = (struct mqtt_bytes){(const uint8_t *)"w", 1};
        feed(f, bad, &p, SESSION_ERR_CONNECT_REFUSED);
        session_flush(f->mgr);
        struct mqtt_packet ack = next_sent(bad);
        assert_int_equal(ack.type, MQTT_CONNACK);
        assert_int_equal(ack.u.connack.return_code, MQTT_CONNACK_NOT_AUTHORIZED);
        gone(f, bad, SESSION_CLOSE_SOCKET); /* an unclean close: a will would fire now */
        session_flush(f->mgr);
    }
    session_set_auth(f->mgr, NULL, NULL);
    assert_int_equal(next_sent(sub).type, 0);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
    auth_acl_free(acl);
}

static void test_topics_deeper_than_max_topic_levels_are_refused(void **state)
{
    struct fixture *f = *state;
    close_all(f);
    f->config.max_topic_levels = 3;
    open_all(f);
    struct fake_conn *c = connect_client(f, "c", true, false);
    subscribe(f, c, "a/b/c", 0, 0);
    subscribe(f, c, "a/b/c/d", 0, MQTT_SUBACK_FAILURE);
    subscribe(f, c, "+/+/+/#", 0, MQTT_SUBACK_FAILURE);
    publish(f, c, "a/b/c", "ok", 0, false, 0);
    assert_publish(next_sent(c), "a/b/c", "ok", 0);
    struct mqtt_packet p = {.type = MQTT_PUBLISH};
    p.u.publish.topic = (struct mqtt_bytes){(const uint8_t *)"a/b/c/d", 7};
    feed(f, c, &p, SESSION_ERR_PROTOCOL);
    gone(f, c, SESSION_CLOSE_PROTOCOL);
}

static void test_clients_cannot_publish_to_sys(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *sub = connect_client(f, "sub", true, false);
    subscribe(f, sub, "$SYS/#", 0, 0);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish(f, pub, "$SYS/broker/fake", "x", 0, false, 0);
    assert_int_equal(next_sent(sub).type, 0);
    assert_int_equal(session_publish_internal(f->mgr, "$SYS/broker/uptime", "5 seconds", 9, true),
                     0);
    assert_publish(next_sent(sub), "$SYS/broker/uptime", "5 seconds", 0);
    struct session_stats st;
    session_get_stats(f->mgr, &st);
    assert_int_equal(st.clients_connected, 2);
    assert_int_equal(st.messages_received, 1);
    assert_int_equal(st.retained, 1);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

static void test_takeover_of_clean_session_stores_nothing(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *old = connect_client(f, "tk", true, false);
    struct fake_conn *neu = connect_client(f, "tk", true, false);
    gone(f, old, SESSION_CLOSE_TAKEOVER);
    session_flush(f->mgr);
    assert_int_equal(db_entries(f, "sessions"), 0);
    gone(f, neu, SESSION_CLOSE_DISCONNECT);
    session_flush(f->mgr);
    assert_int_equal(db_entries(f, "sessions"), 0);
    assert_int_equal(store_check(f->store, NULL, NULL), 0);
}

static void test_persistent_session_expires_after_configured_time(void **state)
{
    struct fixture *f = *state;
    close_all(f);
    f->config.persistent_client_expiration_s = 60;
    open_all(f);
    struct fake_conn *fc = connect_client(f, "exp", false, false);
    subscribe(f, fc, "e", 1, 1);
    gone(f, fc, SESSION_CLOSE_DISCONNECT);
    session_flush(f->mgr);
    uint64_t now = (uint64_t)time(NULL);
    assert_int_equal(session_expire(f->mgr, now + 30), 0); /* not yet */
    assert_int_equal(session_expire(f->mgr, now + 120), 1);
    session_flush(f->mgr);
    assert_int_equal(db_entries(f, "sessions"), 0);
    assert_int_equal(db_entries(f, "subs"), 0);
    fc = connect_client(f, "exp", false, false); /* session present 0 */
    gone(f, fc, SESSION_CLOSE_DISCONNECT);
}

static uint64_t offline_sessions(struct fixture *f)
{
    struct session_stats st;
    session_get_stats(f->mgr, &st);
    return st.clients_disconnected;
}

/* Expiry and the offline count follow the offline list (oldest first),
 * also across a restart, and never touch a session with a client. */
static void test_expiry_takes_only_offline_sessions_also_after_restart(void **state)
{
    struct fixture *f = *state;
    close_all(f);
    f->config.persistent_client_expiration_s = 60;
    open_all(f);
    struct fake_conn *online = connect_client(f, "online", false, false);
    const char *ids[] = {"o1", "o2", "o3"};
    for (int i = 0; i < 3; i++)
        gone(f, connect_client(f, ids[i], false, false), SESSION_CLOSE_DISCONNECT);
    session_flush(f->mgr);
    assert_int_equal(offline_sessions(f), 3);
    struct fake_conn *back = connect_client(f, "o2", false, true); /* leaves the list */
    assert_int_equal(offline_sessions(f), 2);
    gone(f, online, SESSION_CLOSE_DISCONNECT); /* joins it */
    session_flush(f->mgr);
    assert_int_equal(offline_sessions(f), 3);
    gone(f, back, SESSION_CLOSE_DISCONNECT);
    session_flush(f->mgr);
    close_all(f); /* the restart lists all stored sessions, sorted */
    open_all(f);
    assert_int_equal(offline_sessions(f), 4);
    back = connect_client(f, "o2", false, true);
    uint64_t now = (uint64_t)time(NULL);
    assert_int_equal(session_expire(f->mgr, now + 30), 0);
    assert_int_equal(session_expire(f->mgr, now + 120), 3); /* o1, o3, online; not o2 */
    session_flush(f->mgr);
    assert_int_equal(offline_sessions(f), 0);
    assert_int_equal(db_entries(f, "sessions"), 1);
    gone(f, back, SESSION_CLOSE_DISCONNECT);
    session_flush(f->mgr);
    assert_int_equal(offline_sessions(f), 1);
}

static void test_keepalive_above_max_keepalive_gets_connack_2(void **state)
{
    struct fixture *f = *state;
    close_all(f);
    f->config.max_keepalive_s = 30;
    open_all(f);
    struct fake_conn *fc = new_conn(f);
    struct mqtt_packet p = connect_packet("ka", true); /* keepalive 60 */
    assert_int_equal(connack_code(f, fc, &p, SESSION_ERR_CONNECT_REFUSED),
                     MQTT_CONNACK_ID_REJECTED);
    gone(f, fc, SESSION_CLOSE_PROTOCOL);
    fc = new_conn(f);
    p.u.connect.keepalive_s = 30;
    assert_int_equal(connack_code(f, fc, &p, SESSION_OK), MQTT_CONNACK_ACCEPTED);
    gone(f, fc, SESSION_CLOSE_DISCONNECT);
}

static void test_retained_publish_closes_when_retain_unavailable(void **state)
{
    struct fixture *f = *state;
    close_all(f);
    f->config.retain_available = false;
    open_all(f);
    struct fake_conn *fc = connect_client(f, "r", true, false);
    struct mqtt_packet p = {.type = MQTT_PUBLISH};
    p.u.publish.retain = true;
    p.u.publish.topic = (struct mqtt_bytes){(const uint8_t *)"t", 1};
    feed(f, fc, &p, SESSION_ERR_PROTOCOL);
    gone(f, fc, SESSION_CLOSE_PROTOCOL);
}

static void test_will_qos_and_retain_are_honoured(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *sub = connect_client(f, "sub", false, false);
    subscribe(f, sub, "will/#", 1, 1);
    struct fake_conn *w = new_conn(f);
    struct mqtt_packet p = connect_packet("w", true);
    p.u.connect.has_will = true;
    p.u.connect.will_qos = 1;
    p.u.connect.will_retain = true;
    p.u.connect.will_topic = (struct mqtt_bytes){(const uint8_t *)"will/r", 6};
    p.u.connect.will_payload = (struct mqtt_bytes){(const uint8_t *)"gone", 4};
    feed(f, w, &p, SESSION_OK);
    session_flush(f->mgr);
    gone(f, w, SESSION_CLOSE_SOCKET);
    session_flush(f->mgr);
    struct mqtt_packet live = next_sent(sub);
    assert_publish(live, "will/r", "gone", 1); /* will QoS 1, granted 1 */
    assert_false(live.u.publish.retain);       /* live forward: RETAIN 0 */
    struct fake_conn *late = connect_client(f, "late", true, false);
    subscribe(f, late, "will/r", 2, 2);
    session_flush(f->mgr);
    struct mqtt_packet kept = next_sent(late);
    assert_publish(kept, "will/r", "gone", 1);
    assert_true(kept.u.publish.retain); /* the will was retained */
    gone(f, late, SESSION_CLOSE_DISCONNECT);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

static void test_listener_auth_replaces_the_broker_wide_settings(void **state)
{
    struct fixture *f = *state;
    /* Broker-wide: anonymous allowed. This listener: anonymous refused,
     * then (a SIGHUP-style change of the same struct) allowed. */
    struct session_auth strict = {.allow_anonymous = false};
    struct fake_conn *fc = new_conn(f);
    session_client_set_auth(fc->client, &strict);
    struct mqtt_packet p = connect_packet("l1", true);
    assert_int_equal(connack_code(f, fc, &p, SESSION_ERR_CONNECT_REFUSED),
                     MQTT_CONNACK_NOT_AUTHORIZED);
    gone(f, fc, SESSION_CLOSE_PROTOCOL);
    strict.allow_anonymous = true;
    fc = new_conn(f);
    session_client_set_auth(fc->client, &strict);
    assert_int_equal(connack_code(f, fc, &p, SESSION_OK), MQTT_CONNACK_ACCEPTED);
    gone(f, fc, SESSION_CLOSE_DISCONNECT);
    struct fake_conn *other = connect_client(f, "l2", true, false); /* broker-wide rules */
    gone(f, other, SESSION_CLOSE_DISCONNECT);
}

static void test_ack_only_batch_is_deferred_but_committed_by_flush(void **state)
{
    struct fixture *f = *state;
    /* A minute, not 10 ms: a 10 ms stall of a loaded machine between two
     * lines would turn "deferred" into "due" (one unexplained unit failure
     * under load this session; this was the only clock-bound assertion). */
    close_all(f);
    f->config.commit_defer_us = 60u * 1000 * 1000;
    open_all(f);
    struct fake_conn *sub = connect_client(f, "sub", false, false);
    subscribe(f, sub, "d", 1, 1);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish(f, pub, "d", "x", 1, false, 1);
    session_flush(f->mgr);
    struct mqtt_packet p = next_sent(sub);
    assert_publish(p, "d", "x", 1);
    assert_int_equal(db_entries(f, "queues"), 1);
    send_ack(f, sub, MQTT_PUBACK, p.u.publish.packet_id);
    /* Only a queue delete, nobody waiting: no commit needed right now. */
    assert_false(session_has_pending(f->mgr));
    double delay_s = session_commit_delay_s(f->mgr);
    assert_true(delay_s > 1.0 && delay_s <= 60.0);
    assert_int_equal(session_flush(f->mgr), 0); /* an explicit flush commits it */
    assert_int_equal(db_entries(f, "queues"), 0);
    assert_true(session_commit_delay_s(f->mgr) < 0);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

/* ---- Issue 10: limits one client cannot exceed ---- */

static uint64_t dropped(struct fixture *f)
{
    struct session_stats st;
    session_get_stats(f->mgr, &st);
    return st.messages_dropped;
}

static void test_subscriptions_over_max_subscriptions_per_client_get_0x80(void **state)
{
    struct fixture *f = *state;
    close_all(f);
    f->config.max_subscriptions_per_client = 3;
    open_all(f);
    struct fake_conn *c = connect_client(f, "c", true, false);
    subscribe(f, c, "a", 1, 1);
    subscribe(f, c, "b", 1, 1);
    subscribe(f, c, "c/+", 0, 0);
    subscribe(f, c, "d", 1, MQTT_SUBACK_FAILURE); /* the fourth */
    subscribe(f, c, "a", 2, 2);                   /* an update of one it has: fits */
    struct fake_conn *other = connect_client(f, "other", true, false);
    subscribe(f, other, "d", 1, 1); /* per client: another client is not affected */
    struct mqtt_topic_entry e = {{(const uint8_t *)"b", 1}, 0};
    struct mqtt_packet un = {.type = MQTT_UNSUBSCRIBE};
    un.u.subscribe.packet_id = 9;
    un.u.subscribe.count = 1;
    un.u.subscribe.entries = &e;
    uint8_t buf[64];
    size_t n = 0, used = 0;
    assert_int_equal(mqtt_encode(&un, buf, sizeof(buf), &n), MQTT_OK);
    struct mqtt_packet decoded;
    assert_int_equal(mqtt_decode_stream(buf, n, 0, &decoded, &used), MQTT_OK);
    feed(f, c, &decoded, SESSION_OK);
    session_flush(f->mgr);
    assert_int_equal(next_sent(c).type, MQTT_UNSUBACK);
    subscribe(f, c, "d", 1, 1); /* the unsubscribe freed a place */
    gone(f, c, SESSION_CLOSE_DISCONNECT);
    gone(f, other, SESSION_CLOSE_DISCONNECT);
}

static void test_subscriptions_over_max_subscriptions_in_total_get_0x80(void **state)
{
    struct fixture *f = *state;
    close_all(f);
    f->config.max_subscriptions = 2;
    open_all(f);
    struct fake_conn *a = connect_client(f, "a", true, false);
    struct fake_conn *b = connect_client(f, "b", false, false);
    subscribe(f, a, "x", 0, 0);
    subscribe(f, b, "y", 1, 1);
    subscribe(f, b, "z", 1, MQTT_SUBACK_FAILURE);
    subscribe(f, a, "z", 1, MQTT_SUBACK_FAILURE);
    gone(f, a, SESSION_CLOSE_DISCONNECT); /* a clean session's subscriptions go with it */
    subscribe(f, b, "z", 1, 1);
    gone(f, b, SESSION_CLOSE_DISCONNECT);
}

/* Until issue 10 a clean session's queue checked only the count. */
static void test_clean_session_queue_is_bounded_by_max_queued_bytes(void **state)
{
    struct fixture *f = *state;
    close_all(f);
    f->config.max_inflight_messages = 1;
    f->config.max_queued_messages = 100;
    f->config.max_queued_bytes = 10;
    open_all(f);
    struct fake_conn *sub = connect_client(f, "sub", true, false);
    subscribe(f, sub, "q", 1, 1);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish(f, pub, "q", "inflight", 1, false, 1); /* fills the window */
    publish(f, pub, "q", "1234", 1, false, 2);     /* queued: 4 bytes */
    publish(f, pub, "q", "567890", 1, false, 3);   /* queued: 10 bytes */
    publish(f, pub, "q", "x", 1, false, 4);        /* 11 > 10: dropped */
    session_flush(f->mgr);
    assert_int_equal(dropped(f), 1);
    struct mqtt_packet m = next_sent(sub);
    assert_publish(m, "q", "inflight", 1);
    for (int i = 0; i < 2; i++) {
        send_ack(f, sub, MQTT_PUBACK, m.u.publish.packet_id);
        session_flush(f->mgr);
        m = next_sent(sub);
        assert_publish(m, "q", i == 0 ? "1234" : "567890", 1);
    }
    send_ack(f, sub, MQTT_PUBACK, m.u.publish.packet_id);
    session_flush(f->mgr);
    assert_int_equal(next_sent(sub).type, 0); /* "x" was dropped, not delayed */
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

static void queue_offline(struct fixture *f, const char *payload, uint16_t id)
{
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish(f, pub, "off", payload, 1, false, id);
    session_flush(f->mgr);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
}

/* Until issue 10 a restart granted every persistent session a fresh limit. */
static void test_queue_limits_count_what_the_store_holds_after_a_restart(void **state)
{
    struct fixture *f = *state;
    close_all(f);
    f->config.max_queued_messages = 2;
    open_all(f);
    struct fake_conn *sub = connect_client(f, "sub", false, false);
    subscribe(f, sub, "off", 1, 1);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
    queue_offline(f, "one", 1);
    queue_offline(f, "two", 2);
    assert_int_equal(dropped(f), 0);
    close_all(f); /* restart */
    open_all(f);
    queue_offline(f, "three", 3); /* the queue is still full */
    assert_int_equal(dropped(f), 1);
    sub = connect_client(f, "sub", false, true);
    session_flush(f->mgr);
    assert_publish(next_sent(sub), "off", "one", 1);
    assert_publish(next_sent(sub), "off", "two", 1);
    assert_int_equal(next_sent(sub).type, 0);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

static void test_queue_bytes_are_restored_at_start(void **state)
{
    struct fixture *f = *state;
    close_all(f);
    f->config.max_queued_bytes = 8;
    open_all(f);
    struct fake_conn *sub = connect_client(f, "sub", false, false);
    subscribe(f, sub, "off", 1, 1);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
    queue_offline(f, "123456", 1);
    close_all(f);
    open_all(f);
    queue_offline(f, "789", 2); /* 6 + 3 > 8 */
    assert_int_equal(dropped(f), 1);
    queue_offline(f, "78", 3); /* 6 + 2 fits */
    assert_int_equal(dropped(f), 1);
    sub = connect_client(f, "sub", false, true);
    session_flush(f->mgr);
    assert_publish(next_sent(sub), "off", "123456", 1);
    assert_publish(next_sent(sub), "off", "78", 1);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

/* The metrics' running totals (issue 13) follow every change of a window or
 * a queue, clean and persistent, across a restart and a discarded session. */
static void assert_totals(struct fixture *f, uint64_t inflight, uint64_t queued,
                          uint64_t queued_bytes)
{
    struct session_stats st;
    session_peek_stats(f->mgr, &st);
    assert_int_equal(st.inflight_messages, inflight);
    assert_int_equal(st.queued_messages, queued);
    assert_int_equal(st.queued_bytes, queued_bytes);
}

static void test_inflight_and_queued_totals_follow_windows_and_queues(void **state)
{
    struct fixture *f = *state;
    close_all(f);
    f->config.max_inflight_messages = 1;
    open_all(f);
    struct fake_conn *clean = connect_client(f, "clean", true, false);
    subscribe(f, clean, "t", 1, 1);
    struct fake_conn *keep = connect_client(f, "keep", false, false);
    subscribe(f, keep, "t", 1, 1);
    gone(f, keep, SESSION_CLOSE_DISCONNECT);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish(f, pub, "t", "aa", 1, false, 1);  /* clean: window; keep: queue */
    publish(f, pub, "t", "bbb", 1, false, 2); /* clean: queue; keep: queue */
    session_flush(f->mgr);
    assert_totals(f, 1, 3, 3 + 2 + 3);
    struct session_stats st;
    session_peek_stats(f->mgr, &st);
    assert_int_equal(st.messages_received_qos[1], 2);
    assert_int_equal(st.payload_bytes_received_qos[1], 5);
    assert_int_equal(st.messages_sent_qos[1], 1);
    assert_int_equal(st.payload_bytes_sent_qos[1], 2);
    struct mqtt_packet m = next_sent(clean);
    send_ack(f, clean, MQTT_PUBACK, m.u.publish.packet_id);
    session_flush(f->mgr);
    assert_totals(f, 1, 2, 2 + 3);
    gone(f, clean, SESSION_CLOSE_SOCKET); /* its window goes with it */
    assert_totals(f, 0, 2, 2 + 3);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    close_all(f); /* restart: counted from the store */
    open_all(f);
    assert_totals(f, 0, 2, 2 + 3);
    keep = connect_client(f, "keep", false, true);
    session_flush(f->mgr);
    assert_totals(f, 1, 1, 3);
    gone(f, keep, SESSION_CLOSE_DISCONNECT);
    assert_totals(f, 0, 1, 3);
    keep = connect_client(f, "keep", true, false); /* discards the session and its queue */
    session_flush(f->mgr);
    assert_totals(f, 0, 0, 0);
    gone(f, keep, SESSION_CLOSE_DISCONNECT);
    session_peek_stats(f->mgr, &st);
    assert_int_equal(st.commit_latency_buckets[SESSION_COMMIT_BUCKETS - 1] <= st.commits, 1);
}

/* A stalled reader's QoS 1 messages wait in its queue (not in its output
 * buffer) and go out when the output drains; QoS 0 is dropped and counted. */
static void test_output_over_the_limit_holds_qos1_in_the_queue(void **state)
{
    bool persistent = false;
    for (int round = 0; round < 2; round++, persistent = true) {
        struct fixture *f = *state;
        close_all(f);
        f->config.max_qos0_output_bytes = 1000;
        open_all(f);
        struct fake_conn *sub = connect_client(f, persistent ? "psub" : "sub", !persistent, false);
        subscribe(f, sub, "s", 1, 1);
        struct fake_conn *pub = connect_client(f, "pub", true, false);
        sub->pending = 5000; /* the client stopped reading */
        publish(f, pub, "s", "q1", 1, false, 1);
        publish(f, pub, "s", "q0", 0, false, 0);
        session_flush(f->mgr);
        assert_int_equal(next_sent(sub).type, 0);
        assert_int_equal(dropped(f), 1); /* the QoS 0 one */
        sub->pending = 0;                /* it read everything */
        session_client_writable(f->mgr, sub->client);
        session_flush(f->mgr);
        assert_publish(next_sent(sub), "s", "q1", 1);
        assert_int_equal(next_sent(sub).type, 0);
        gone(f, pub, SESSION_CLOSE_DISCONNECT);
        gone(f, sub, SESSION_CLOSE_DISCONNECT);
    }
}

/* ---- Bridges: routing into a bridge's queue ---- */

struct bridge_probe {
    int queued_calls;
    int qos0_calls;
    char qos0_topic[64];
    bool qos0_retain;
};

static void probe_queued(void *arg)
{
    ((struct bridge_probe *)arg)->queued_calls++;
}

static void probe_qos0(void *arg, struct mqtt_bytes topic, struct mqtt_bytes payload, bool retain)
{
    (void)payload;
    struct bridge_probe *p = arg;
    p->qos0_calls++;
    snprintf(p->qos0_topic, sizeof(p->qos0_topic), "%.*s", (int)topic.len,
             (const char *)topic.data);
    p->qos0_retain = retain;
}

static const struct session_bridge_ops probe_ops = {probe_queued, probe_qos0};

static struct session_bridge *add_bridge(struct fixture *f, const char *name, const char *filter,
                                         uint8_t qos, uint64_t max_msgs, struct bridge_probe *p)
{
    struct session_bridge_filter flt = {filter, qos};
    struct session_bridge_config cfg = {.name = name,
                                        .filters = &flt,
                                        .filter_count = 1,
                                        .max_queued_messages = max_msgs,
                                        .ops = &probe_ops,
                                        .arg = p};
    struct session_bridge *b = NULL;
    char err[128];
    assert_int_equal(session_bridge_new(f->mgr, &cfg, &b, err, sizeof(err)), 0);
    return b;
}

struct bridge_entries {
    int count;
    uint64_t seq[8];
    uint8_t qos[8];
    bool retain[8];
    char topic[8][32];
};

static int collect_bridge_entry(void *arg, const struct store_queue_item *it)
{
    struct bridge_entries *e = arg;
    if (e->count < 8) {
        e->seq[e->count] = it->seq;
        e->qos[e->count] = it->entry.qos;
        e->retain[e->count] = it->entry.retain;
        snprintf(e->topic[e->count], 32, "%.*s", (int)it->message->topic.len,
                 (const char *)it->message->topic.data);
    }
    e->count++;
    return 0;
}

static struct bridge_entries bridge_queue(struct fixture *f, const char *name)
{
    struct bridge_entries e = {0};
    struct store_bytes key = {(const uint8_t *)name, strlen(name)};
    assert_true(store_bridge_queue_read(f->store, key, 0, 100, collect_bridge_entry, &e) >= 0);
    return e;
}

static uint64_t bridge_queued(const struct session_bridge *b)
{
    struct session_bridge_stats st;
    session_bridge_get_stats(b, &st);
    return st.queued_messages;
}

/* The copy for the bridge is in the publish's own commit: the PUBACK
 * promises it too. QoS 0 copies are handed over at once, never stored. */
static void test_bridge_copy_is_committed_with_the_publish_before_its_ack(void **state)
{
    struct fixture *f = *state;
    struct bridge_probe probe = {0};
    struct session_bridge *b = add_bridge(f, "cloud", "out/#", 1, 0, &probe);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish(f, pub, "out/a", "x", 2, true, 5); /* QoS 2 published, the topic's QoS is 1 */
    assert_int_equal(next_sent(pub).type, 0);
    assert_int_equal(bridge_queue(f, "cloud").count, 0); /* not before the commit */
    assert_int_equal(session_flush(f->mgr), 0);
    assert_int_equal(next_sent(pub).type, MQTT_PUBREC);
    struct bridge_entries e = bridge_queue(f, "cloud");
    assert_int_equal(e.count, 1);
    assert_int_equal(e.qos[0], 1);
    assert_true(e.retain[0]); /* the flag as published */
    assert_string_equal(e.topic[0], "out/a");
    assert_int_equal(probe.queued_calls, 1);
    assert_int_equal(bridge_queued(b), 1);
    publish(f, pub, "out/live", "y", 0, false, 0);
    assert_int_equal(probe.qos0_calls, 1);
    assert_string_equal(probe.qos0_topic, "out/live");
    publish(f, pub, "elsewhere", "z", 1, false, 6);
    session_flush(f->mgr);
    assert_int_equal(bridge_queue(f, "cloud").count, 1);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
}

/* Over its limit, a bridge's queue refuses a client's publish as a full
 * store does (no ack, the client retries later), and drops a will. */
static void test_full_bridge_queue_refuses_a_publish_and_drops_a_will(void **state)
{
    struct fixture *f = *state;
    struct bridge_probe probe = {0};
    struct session_bridge *b = add_bridge(f, "cloud", "out/#", 1, 2, &probe);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish(f, pub, "out/a", "1", 1, false, 1);
    publish(f, pub, "out/a", "2", 1, false, 2);
    struct mqtt_packet p = {.type = MQTT_PUBLISH};
    p.u.publish = (struct mqtt_publish){.qos = 1,
                                        .packet_id = 3,
                                        .topic = {(const uint8_t *)"out/a", 5},
                                        .payload = {(const uint8_t *)"3", 1}};
    feed(f, pub, &p, SESSION_ERR_STORE_FULL);
    session_flush(f->mgr);
    assert_int_equal(next_sent(pub).type, MQTT_PUBACK);
    assert_int_equal(next_sent(pub).type, MQTT_PUBACK);
    assert_int_equal(next_sent(pub).type, 0); /* none for the third */
    struct session_bridge_stats st;
    session_bridge_get_stats(b, &st);
    assert_int_equal(st.queued_messages, 2);
    assert_int_equal(st.refused, 1);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    struct fake_conn *w = new_conn(f);
    struct mqtt_packet c = connect_packet("w", true);
    c.u.connect.has_will = true;
    c.u.connect.will_qos = 1;
    c.u.connect.will_topic = (struct mqtt_bytes){(const uint8_t *)"out/will", 8};
    c.u.connect.will_payload = (struct mqtt_bytes){(const uint8_t *)"bye", 3};
    feed(f, w, &c, SESSION_OK);
    session_flush(f->mgr);
    gone(f, w, SESSION_CLOSE_SOCKET);
    session_flush(f->mgr);
    session_bridge_get_stats(b, &st);
    assert_int_equal(st.dropped, 1);
    assert_int_equal(bridge_queue(f, "cloud").count, 2);
}

/* Memory follows the store: appends in a batch that fails leave the totals. */
static void test_failed_commit_takes_bridge_appends_out_of_the_totals(void **state)
{
    struct fixture *f = *state;
    struct bridge_probe probe = {0};
    struct session_bridge *b = add_bridge(f, "cloud", "out/#", 1, 0, &probe);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish(f, pub, "out/a", "x", 1, false, 1);
    assert_int_equal(bridge_queued(b), 1); /* the limit sees it at once */
    fail_the_commit(f, pub);
    assert_int_equal(bridge_queued(b), 0);
    assert_int_equal(probe.queued_calls, 0);
    assert_int_equal(bridge_queue(f, "cloud").count, 0);
}

struct done_probe {
    int calls;
    int status;
};

static void done_record(void *arg, int status)
{
    struct done_probe *d = arg;
    d->calls++;
    d->status = status;
}

/* What a bridge brings in is published locally, acked (done) after the
 * commit, never queued back to that bridge, but queued to another one. An
 * acked entry leaves the store and the totals with its commit. */
static void test_bridge_messages_in_are_not_routed_back_and_acks_follow_commits(void **state)
{
    struct fixture *f = *state;
    struct bridge_probe pa = {0}, pb = {0};
    struct session_bridge *a = add_bridge(f, "a", "shared/#", 1, 0, &pa);
    struct session_bridge *other = add_bridge(f, "b", "shared/#", 1, 0, &pb);
    struct fake_conn *sub = connect_client(f, "sub", true, false);
    subscribe(f, sub, "shared/#", 1, 1);
    struct mqtt_publish in = {.qos = 2,
                              .packet_id = 9,
                              .topic = {(const uint8_t *)"shared/x", 8},
                              .payload = {(const uint8_t *)"v", 1}};
    struct done_probe done = {0};
    assert_int_equal(session_bridge_publish(a, &in, done_record, &done), 0);
    assert_int_equal(done.calls, 0);
    assert_true(session_has_pending(f->mgr)); /* the ack makes the commit come now */
    assert_int_equal(session_flush(f->mgr), 0);
    assert_int_equal(done.calls, 1);
    assert_int_equal(done.status, 0);
    assert_publish(next_sent(sub), "shared/x", "v", 1);
    assert_int_equal(bridge_queue(f, "a").count, 0);
    struct bridge_entries e = bridge_queue(f, "b");
    assert_int_equal(e.count, 1);
    assert_int_equal(session_bridge_acked(other, e.seq[0], 1), 0);
    assert_int_equal(bridge_queued(other), 1); /* until the delete commits */
    session_flush(f->mgr);
    assert_int_equal(bridge_queued(other), 0);
    assert_int_equal(bridge_queue(f, "b").count, 0);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

/* A restart finds the queue's totals (for the limits) and continues its seqs. */
static void test_bridge_queue_totals_and_seqs_survive_a_restart(void **state)
{
    struct fixture *f = *state;
    struct bridge_probe probe = {0};
    add_bridge(f, "cloud", "out/#", 1, 0, &probe);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish(f, pub, "out/a", "12345", 1, false, 1);
    session_flush(f->mgr);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    session_flush(f->mgr);
    close_all(f);
    open_all(f);
    struct session_bridge *b = add_bridge(f, "cloud", "out/#", 1, 0, &probe);
    struct session_bridge_stats st;
    session_bridge_get_stats(b, &st);
    assert_int_equal(st.queued_messages, 1);
    assert_int_equal(st.queued_bytes, 5);
    pub = connect_client(f, "pub", true, false);
    publish(f, pub, "out/b", "z", 1, false, 2);
    session_flush(f->mgr);
    struct bridge_entries e = bridge_queue(f, "cloud");
    assert_int_equal(e.count, 2);
    assert_true(e.seq[1] > e.seq[0]);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_bridge_copy_is_committed_with_the_publish_before_its_ack),
        T(test_full_bridge_queue_refuses_a_publish_and_drops_a_will),
        T(test_failed_commit_takes_bridge_appends_out_of_the_totals),
        T(test_bridge_messages_in_are_not_routed_back_and_acks_follow_commits),
        T(test_bridge_queue_totals_and_seqs_survive_a_restart),
        T(test_first_packet_must_be_connect_MQTT_3_1_0_1),
        T(test_second_connect_is_protocol_error_MQTT_3_1_0_2),
        T(test_empty_client_id_without_clean_session_gets_connack_2_MQTT_3_1_3_8),
        T(test_empty_client_id_with_clean_session_is_accepted),
        T(test_pingreq_gets_pingresp),
        T(test_puback_is_held_until_the_commit),
        T(test_qos2_delivery_and_pubrec_are_held_until_the_commit),
        T(test_qos0_to_clean_session_needs_no_commit),
        T(test_delivery_qos_is_min_of_publish_and_granted),
        T(test_overlapping_subscriptions_deliver_once_at_max_qos),
        T(test_invalid_filter_gets_suback_0x80),
        T(test_dollar_topics_not_matched_by_wildcard_first_level_MQTT_4_7_2_1),
        T(test_incoming_qos2_duplicate_is_delivered_once_MQTT_4_3_3_2),
        T(test_outgoing_qos2_flow_pubrec_pubrel_pubcomp),
        T(test_inflight_window_holds_back_the_rest_in_order),
        T(test_offline_persistent_session_gets_queue_on_reconnect),
        T(test_restart_keeps_subscriptions_queue_and_resends_with_dup),
        T(test_clean_session_discards_stored_state),
        T(test_retained_delivered_on_subscribe_with_retain_flag_and_cleared),
        T(test_retained_survives_restart),
        T(test_retained_change_seen_before_its_commit),
        T(test_retained_count_follows_commits_and_restarts),
        T(test_retained_filters_match_stored_topics_like_the_spec),
        T(test_retained_stream_waits_for_a_slow_reader_at_qos0),
        T(test_retained_stream_follows_the_window_at_qos1),
        T(test_unsubscribe_stops_the_retained_stream),
        T(test_will_published_on_unclean_close_not_after_disconnect),
        T(test_will_qos_and_retain_are_honoured),
        T(test_takeover_closes_old_connection_and_fires_its_will),
        T(test_unsubscribe_stops_delivery_and_is_acked),
        T(test_store_full_refuses_the_publish_not_the_commit),
        T(test_unused_reservations_do_not_fill_the_store),
        T(test_commit_failure_sends_no_ack_and_closes_the_client),
        T(test_connack_lost_to_a_failed_commit_leaves_no_will),
        T(test_queued_qos2_publish_waits_for_its_packet_id_record),
        T(test_failed_commit_forgets_a_pending_qos2_id),
        T(test_failed_commit_keeps_a_released_qos2_id),
        T(test_failed_commit_undoes_subscribe_and_unsubscribe),
        T(test_failed_commit_undoes_a_retained_message),
        T(test_failed_commit_of_a_new_session_leaves_none),
        T(test_failed_commit_of_a_session_discard_reads_it_back),
        T(test_failed_discard_under_a_newer_session_keeps_the_stored_one),
        T(test_anonymous_refused_with_connack_5_when_disabled),
        T(test_password_file_checks_credentials_connack_4),
        T(test_acl_denies_publish_subscribe_and_read),
        T(test_clients_cannot_publish_to_sys),
        T(test_acl_read_gate_applies_to_clean_sessions_at_qos_1_and_2),
        T(test_refused_connect_leaves_no_will),
        T(test_topics_deeper_than_max_topic_levels_are_refused),
        T(test_listener_auth_replaces_the_broker_wide_settings),
        T(test_takeover_of_clean_session_stores_nothing),
        T(test_ack_only_batch_is_deferred_but_committed_by_flush),
        T(test_persistent_session_expires_after_configured_time),
        T(test_expiry_takes_only_offline_sessions_also_after_restart),
        T(test_keepalive_above_max_keepalive_gets_connack_2),
        T(test_retained_publish_closes_when_retain_unavailable),
        T(test_subscriptions_over_max_subscriptions_per_client_get_0x80),
        T(test_subscriptions_over_max_subscriptions_in_total_get_0x80),
        T(test_clean_session_queue_is_bounded_by_max_queued_bytes),
        T(test_queue_limits_count_what_the_store_holds_after_a_restart),
        T(test_queue_bytes_are_restored_at_start),
        T(test_inflight_and_queued_totals_follow_windows_and_queues),
        T(test_output_over_the_limit_holds_qos1_in_the_queue),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
