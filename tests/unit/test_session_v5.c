/*
 * test_session_v5.c - the session manager's MQTT 5 rules against a real
 * LMDB store (issue 12): CONNACK properties, Session Expiry Interval (and
 * 3.1.1's mapping), DISCONNECT reason codes and expiry changes, Will Delay
 * Interval, Receive Maximum both ways, Maximum Packet Size, Topic Aliases
 * both ways, takeover and server DISCONNECTs, enhanced authentication
 * (SCRAM-SHA-512: the AUTH flow, failures, protocol errors, every way an
 * exchange ends, re-authentication; unknown methods refused). Same
 * recording sink and fixture as test_session.c.
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
#include "session.h"
#include "store.h"

#include "session_fixture.h"
#include "scram_test_client.h"

/* ---- MQTT 5 helpers ---- */

static struct mqtt_packet connect5_packet(const char *id, bool clean_start, uint32_t expiry_s)
{
    struct mqtt_packet p = connect_packet(id, clean_start);
    p.protocol_level = MQTT_PROTOCOL_V5;
    p.u.connect.protocol_level = MQTT_PROTOCOL_V5;
    if (expiry_s) {
        p.u.connect.props.present |= MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY_INTERVAL);
        p.u.connect.props.session_expiry_interval_s = expiry_s;
    }
    return p;
}

/* Feeds p (an MQTT 5 CONNECT) on a new connection; returns it after its
 * CONNACK, whose reason must be `reason` (0: accepted with `present`). */
static struct fake_conn *connect5_with(struct fixture *f, const struct mqtt_packet *p,
                                       uint8_t reason, bool present, struct mqtt_packet *ack)
{
    struct fake_conn *fc = new_conn(f);
    fc->level = MQTT_PROTOCOL_V5;
    feed(f, fc, p, reason ? SESSION_ERR_CONNECT_REFUSED : SESSION_OK);
    session_flush(f->mgr);
    struct mqtt_packet got = next_sent(fc);
    assert_int_equal(got.type, MQTT_CONNACK);
    assert_int_equal(got.u.connack.return_code, reason);
    assert_int_equal(got.u.connack.session_present, present);
    if (ack)
        *ack = got;
    return fc;
}

static struct fake_conn *connect5(struct fixture *f, const char *id, bool clean_start,
                                  uint32_t expiry_s, bool present)
{
    struct mqtt_packet p = connect5_packet(id, clean_start, expiry_s);
    return connect5_with(f, &p, 0, present, NULL);
}

static void disconnect5(struct fixture *f, struct fake_conn *fc, uint8_t reason,
                        const uint32_t *expiry_s, int expected)
{
    struct mqtt_packet p = {.type = MQTT_DISCONNECT, .protocol_level = MQTT_PROTOCOL_V5};
    p.u.disconnect.reason_code = reason;
    if (expiry_s) {
        p.u.disconnect.props.present = MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY_INTERVAL);
        p.u.disconnect.props.session_expiry_interval_s = *expiry_s;
    }
    feed(f, fc, &p, expected);
    gone(f, fc,
         expected == SESSION_ERR_DISCONNECT ? SESSION_CLOSE_DISCONNECT : SESSION_CLOSE_PROTOCOL);
}

static void publish5(struct fixture *f, struct fake_conn *fc, const char *topic, uint8_t qos,
                     uint16_t packet_id, const struct mqtt_properties *props, int expected)
{
    struct mqtt_packet p = {.type = MQTT_PUBLISH, .protocol_level = MQTT_PROTOCOL_V5};
    p.u.publish.qos = qos;
    p.u.publish.packet_id = packet_id;
    p.u.publish.topic = (struct mqtt_bytes){(const uint8_t *)topic, strlen(topic)};
    p.u.publish.payload = (struct mqtt_bytes){(const uint8_t *)"x", 1};
    if (props)
        p.u.publish.props = *props;
    feed(f, fc, &p, expected);
}

static struct mqtt_properties alias_props(uint16_t alias)
{
    struct mqtt_properties pr = {.present = MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS)};
    pr.topic_alias = alias;
    return pr;
}

static void reopen(struct fixture *f)
{
    close_all(f);
    open_all(f);
}

static struct fake_conn *connect_will5(struct fixture *f, const char *id, uint32_t expiry_s,
                                       uint32_t delay_s)
{
    struct mqtt_packet p = connect5_packet(id, true, expiry_s);
    p.u.connect.has_will = true;
    p.u.connect.will_topic = (struct mqtt_bytes){(const uint8_t *)"will/t", 6};
    p.u.connect.will_payload = (struct mqtt_bytes){(const uint8_t *)"bye", 3};
    if (delay_s) {
        p.u.connect.will_props.present = MQTT_PROP_BIT(MQTT_PROP_WILL_DELAY_INTERVAL);
        p.u.connect.will_props.will_delay_interval_s = delay_s;
    }
    return connect5_with(f, &p, 0, false, NULL);
}

/* ---- CONNECT / CONNACK ---- */

static void test_connack_carries_what_sol_allows_MQTT_3_2_2_3(void **state)
{
    struct fixture *f = *state;
    close_all(f);
    f->config.receive_maximum = 9;
    f->config.max_topic_alias = 3;
    f->config.max_packet_size = 4096;
    open_all(f);
    struct mqtt_packet ack;
    struct mqtt_packet p = connect5_packet("", false, 0);
    struct fake_conn *fc = connect5_with(f, &p, 0, false, &ack);
    const struct mqtt_properties *pr = &ack.u.connack.props;
    assert_int_equal(pr->receive_maximum, 9);
    assert_int_equal(pr->topic_alias_maximum, 3);
    assert_int_equal(pr->maximum_packet_size, 4096);
    assert_true(mqtt_properties_has(pr, MQTT_PROP_RETAIN_AVAILABLE));
    assert_int_equal(pr->retain_available, 1);
    assert_int_equal(pr->wildcard_subscription_available, 1);
    assert_int_equal(pr->subscription_identifier_available, 1);
    assert_int_equal(pr->shared_subscription_available, 1);
    /* MQTT 5 assigns an id even without Clean Start [MQTT-3.2.2-16]. */
    assert_true(mqtt_properties_has(pr, MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER));
    assert_int_equal(strncmp((const char *)pr->assigned_client_identifier.data, "auto-", 5), 0);
    assert_false(mqtt_properties_has(pr, MQTT_PROP_SERVER_KEEP_ALIVE));
    gone(f, fc, SESSION_CLOSE_DISCONNECT);
}

static void test_keepalive_above_max_keepalive_becomes_server_keep_alive(void **state)
{
    struct fixture *f = *state;
    close_all(f);
    f->config.max_keepalive_s = 30;
    open_all(f);
    struct mqtt_packet ack;
    struct mqtt_packet p = connect5_packet("ka", true, 0);
    p.u.connect.keepalive_s = 0; /* "none" exceeds any limit */
    struct fake_conn *fc = connect5_with(f, &p, 0, false, &ack);
    assert_true(mqtt_properties_has(&ack.u.connack.props, MQTT_PROP_SERVER_KEEP_ALIVE));
    assert_int_equal(ack.u.connack.props.server_keep_alive_s, 30);
    assert_int_equal(fc->keepalive_s, 30);
    gone(f, fc, SESSION_CLOSE_DISCONNECT);
}

static void test_authentication_method_gets_0x8c_MQTT_4_12_0_1(void **state)
{
    struct fixture *f = *state;
    struct mqtt_packet p = connect5_packet("scram", true, 0);
    p.u.connect.props.present |= MQTT_PROP_BIT(MQTT_PROP_AUTHENTICATION_METHOD);
    p.u.connect.props.authentication_method = (struct mqtt_bytes){(const uint8_t *)"SCRAM", 5};
    struct mqtt_packet ack;
    struct fake_conn *fc = connect5_with(f, &p, MQTT_RC_BAD_AUTHENTICATION_METHOD, false, &ack);
    assert_true(mqtt_properties_has(&ack.u.connack.props, MQTT_PROP_REASON_STRING));
    gone(f, fc, SESSION_CLOSE_PROTOCOL);
    /* An AUTH packet with no method agreed is a protocol error [MQTT-4.12.0-7]. */
    fc = connect5(f, "plain", true, 0, false);
    struct mqtt_packet auth = {.type = MQTT_AUTH, .protocol_level = MQTT_PROTOCOL_V5};
    feed(f, fc, &auth, SESSION_ERR_PROTOCOL);
    gone(f, fc, SESSION_CLOSE_PROTOCOL);
}

/* ---- Session Expiry Interval ---- */

static void test_session_expiry_interval_ends_an_offline_session(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *fc = connect5(f, "exp", true, 10, false);
    subscribe(f, fc, "e", 1, 1);
    disconnect5(f, fc, 0, NULL, SESSION_ERR_DISCONNECT);
    session_flush(f->mgr);
    uint64_t now = session_now_s(f->mgr);
    assert_int_equal(session_expire(f->mgr, now + 5), 0);
    fc = connect5(f, "exp", false, 10, true); /* back in time: present */
    disconnect5(f, fc, 0, NULL, SESSION_ERR_DISCONNECT);
    session_flush(f->mgr);
    now = session_now_s(f->mgr);
    /* Whole seconds, never early: 10 s from a truncated clock ends at +11. */
    assert_int_equal(session_expire(f->mgr, now + 10), 0);
    assert_int_equal(session_expire(f->mgr, now + 11), 1);
    session_flush(f->mgr);
    assert_int_equal(db_entries(f, "sessions"), 0);
    assert_int_equal(db_entries(f, "subs"), 0);
}

/* A session past its expiry is not resumed, even before a tick ended it. */
static void test_session_past_its_expiry_is_not_resumed_before_a_tick(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *fc = connect5(f, "late", true, 10, false);
    disconnect5(f, fc, 0, NULL, SESSION_ERR_DISCONNECT);
    session_flush(f->mgr);
    session_clock_advance(f->mgr, 11);          /* no session_expire() / tick */
    fc = connect5(f, "late", false, 10, false); /* not present */
    gone(f, fc, SESSION_CLOSE_DISCONNECT);
}

static void test_session_expiry_is_stored_and_enforced_after_a_restart(void **state)
{
    struct fixture *f = *state;
    gone(f, connect5(f, "short", true, 10, false), SESSION_CLOSE_SOCKET);
    gone(f, connect5(f, "never", true, UINT32_MAX, false), SESSION_CLOSE_SOCKET);
    session_flush(f->mgr);
    reopen(f);
    uint64_t now = session_now_s(f->mgr);
    assert_int_equal(session_expire(f->mgr, now + 10), 0);
    assert_int_equal(session_expire(f->mgr, now + 11), 1);
    assert_int_equal(session_expire(f->mgr, now + 100000000), 0); /* never */
    session_flush(f->mgr);
    assert_int_equal(db_entries(f, "sessions"), 1);
}

static void test_expiry_zero_ends_with_the_connection_and_stores_nothing(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *fc = connect5(f, "zero", false, 0, false);
    subscribe(f, fc, "z", 1, 1);
    assert_int_equal(db_entries(f, "sessions"), 0);
    gone(f, fc, SESSION_CLOSE_SOCKET);
    session_flush(f->mgr);
    fc = connect5(f, "zero", false, 60, false);
    gone(f, fc, SESSION_CLOSE_SOCKET);
}

static void test_clean_start_discards_but_the_new_session_persists(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *fc = connect5(f, "cs", true, 60, false);
    subscribe(f, fc, "old", 1, 1);
    gone(f, fc, SESSION_CLOSE_SOCKET);
    fc = connect5(f, "cs", true, 60, false); /* Clean Start: not present */
    gone(f, fc, SESSION_CLOSE_SOCKET);
    session_flush(f->mgr);
    assert_int_equal(db_entries(f, "sessions"), 1);
    assert_int_equal(db_entries(f, "subs"), 0);
    fc = connect5(f, "cs", false, 60, true);
    gone(f, fc, SESSION_CLOSE_SOCKET);
}

/* A 3.1.1 persistent session has the interval "never": it expires only by
 * persistent_client_expiration; an MQTT 5 session's own interval is used. */
static void test_mqtt311_sessions_map_to_never_and_v5_resumes_them(void **state)
{
    struct fixture *f = *state;
    close_all(f);
    f->config.persistent_client_expiration_s = 1000;
    open_all(f);
    gone(f, connect_client(f, "old", false, false), SESSION_CLOSE_DISCONNECT);
    struct fake_conn *fc = connect5(f, "old", false, 5, true); /* v5 picks it up */
    gone(f, fc, SESSION_CLOSE_SOCKET);
    gone(f, connect_client(f, "old311", false, false), SESSION_CLOSE_DISCONNECT);
    session_flush(f->mgr);
    uint64_t now = session_now_s(f->mgr);
    assert_int_equal(session_expire(f->mgr, now + 6), 1);    /* "old", by its own 5 s */
    assert_int_equal(session_expire(f->mgr, now + 999), 0);  /* "old311": not yet */
    assert_int_equal(session_expire(f->mgr, now + 1001), 1); /* persistent_client_expiration */
}

static void test_disconnect_changes_the_expiry_but_not_from_zero_MQTT_3_14_2_2(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *fc = connect5(f, "dx", true, 3600, false);
    uint32_t zero = 0, sixty = 60;
    disconnect5(f, fc, 0, &zero, SESSION_ERR_DISCONNECT);
    session_flush(f->mgr);
    assert_int_equal(db_entries(f, "sessions"), 0);
    fc = connect5(f, "dx", false, 0, false);
    disconnect5(f, fc, 0, &sixty, SESSION_ERR_PROTOCOL);
}

/* ---- Wills ---- */

static struct fake_conn *will_watcher(struct fixture *f)
{
    struct fake_conn *w = connect_client(f, "watcher", true, false);
    subscribe(f, w, "will/#", 0, 0);
    return w;
}

static void test_disconnect_with_reason_0x04_publishes_the_will(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *w = will_watcher(f);
    disconnect5(f, connect_will5(f, "a", 0, 0), MQTT_RC_DISCONNECT_WITH_WILL_MESSAGE, NULL,
                SESSION_ERR_DISCONNECT);
    assert_publish(next_sent(w), "will/t", "bye", 0);
    disconnect5(f, connect_will5(f, "b", 0, 0), MQTT_RC_NORMAL_DISCONNECTION, NULL,
                SESSION_ERR_DISCONNECT);
    assert_int_equal(next_sent(w).type, 0);
    gone(f, w, SESSION_CLOSE_DISCONNECT);
}

static void test_will_delay_waits_and_a_resumed_session_cancels_it_MQTT_3_1_3_9(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *w = will_watcher(f);
    gone(f, connect_will5(f, "late", 60, 5), SESSION_CLOSE_SOCKET);
    assert_int_equal(next_sent(w).type, 0); /* not yet */
    uint64_t now = session_now_s(f->mgr);
    session_expire(f->mgr, now + 5); /* whole seconds, never early: at +6 */
    assert_int_equal(next_sent(w).type, 0);
    session_expire(f->mgr, now + 6);
    assert_publish(next_sent(w), "will/t", "bye", 0);
    /* Resumed within the delay: never published. */
    gone(f, connect_will5(f, "back", 60, 5), SESSION_CLOSE_SOCKET);
    struct fake_conn *fc = connect5(f, "back", false, 60, true);
    session_expire(f->mgr, session_now_s(f->mgr) + 6);
    assert_int_equal(next_sent(w).type, 0);
    gone(f, fc, SESSION_CLOSE_DISCONNECT);
    gone(f, w, SESSION_CLOSE_DISCONNECT);
}

static void test_will_goes_at_session_end_when_that_comes_first(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *w = will_watcher(f);
    /* Expiry 0: the session ends with the connection, the will with it. */
    gone(f, connect_will5(f, "now", 0, 30), SESSION_CLOSE_SOCKET);
    assert_publish(next_sent(w), "will/t", "bye", 0);
    /* Expiry 2 s, delay 30 s: at the session's end. */
    gone(f, connect_will5(f, "soon", 2, 30), SESSION_CLOSE_SOCKET);
    session_flush(f->mgr);
    assert_int_equal(next_sent(w).type, 0);
    assert_int_equal(session_expire(f->mgr, session_now_s(f->mgr) + 2), 0);
    assert_int_equal(session_expire(f->mgr, session_now_s(f->mgr) + 3), 1);
    assert_publish(next_sent(w), "will/t", "bye", 0);
    /* Clean Start from another connection ends the session: will now. */
    gone(f, connect_will5(f, "cs", 60, 30), SESSION_CLOSE_SOCKET);
    struct fake_conn *fc = connect5(f, "cs", true, 60, false);
    assert_publish(next_sent(w), "will/t", "bye", 0);
    gone(f, fc, SESSION_CLOSE_DISCONNECT);
    gone(f, w, SESSION_CLOSE_DISCONNECT);
}

/* ---- Receive Maximum ---- */

static void test_client_over_receive_maximum_is_disconnected_MQTT_3_3_4_8(void **state)
{
    struct fixture *f = *state;
    close_all(f);
    f->config.receive_maximum = 2;
    open_all(f);
    struct fake_conn *sub = connect_client(f, "sub", false, false);
    subscribe(f, sub, "rm", 1, 1);
    struct fake_conn *fc = connect5(f, "pub", true, 0, false);
    /* QoS 1 to a persistent subscriber: the PUBACK waits for the commit. */
    publish5(f, fc, "rm", 1, 1, NULL, SESSION_OK);
    publish5(f, fc, "rm", 1, 2, NULL, SESSION_OK);
    publish5(f, fc, "rm", 1, 3, NULL, SESSION_ERR_RECEIVE_MAXIMUM);
    assert_int_equal(session_error_reason(SESSION_ERR_RECEIVE_MAXIMUM), 0x93);
    gone(f, fc, SESSION_CLOSE_PROTOCOL);
    session_flush(f->mgr);
    /* Once the PUBACKs leave, the quota is back. */
    fc = connect5(f, "pub2", true, 0, false);
    for (uint16_t id = 1; id <= 6; id++) {
        publish5(f, fc, "rm", 1, id, NULL, SESSION_OK);
        session_flush(f->mgr);
    }
    /* QoS 2 counts until PUBREL; a resent id is not a new one. */
    publish5(f, fc, "q2", 2, 10, NULL, SESSION_OK);
    publish5(f, fc, "q2", 2, 11, NULL, SESSION_OK);
    session_flush(f->mgr);
    publish5(f, fc, "q2", 2, 11, NULL, SESSION_OK);
    publish5(f, fc, "q2", 2, 12, NULL, SESSION_ERR_RECEIVE_MAXIMUM);
    gone(f, fc, SESSION_CLOSE_PROTOCOL);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

static void test_window_is_bounded_by_the_clients_receive_maximum_MQTT_3_3_4_9(void **state)
{
    struct fixture *f = *state;
    struct mqtt_packet p = connect5_packet("slow", true, 0);
    p.u.connect.props.present |= MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM);
    p.u.connect.props.receive_maximum = 2;
    struct fake_conn *sub = connect5_with(f, &p, 0, false, NULL);
    subscribe(f, sub, "w", 1, 1);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    for (uint16_t id = 1; id <= 4; id++)
        publish(f, pub, "w", "m", 1, false, id);
    session_flush(f->mgr);
    struct mqtt_packet a = next_sent(sub), b = next_sent(sub);
    assert_int_equal(a.type, MQTT_PUBLISH);
    assert_int_equal(b.type, MQTT_PUBLISH);
    assert_int_equal(next_sent(sub).type, 0);
    send_ack(f, sub, MQTT_PUBACK, a.u.publish.packet_id);
    assert_int_equal(next_sent(sub).type, MQTT_PUBLISH);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

/* ---- Maximum Packet Size ---- */

static void test_publish_over_the_clients_maximum_packet_size_is_dropped_MQTT_3_1_2_25(void **state)
{
    struct fixture *f = *state;
    struct mqtt_packet p = connect5_packet("small", false, 60);
    p.u.connect.props.present |= MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_PACKET_SIZE);
    p.u.connect.props.maximum_packet_size = 20;
    struct fake_conn *sub = connect5_with(f, &p, 0, false, NULL);
    subscribe(f, sub, "mp", 1, 1);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish(f, pub, "mp", "this payload is far too long", 1, false, 1);
    publish(f, pub, "mp", "ok", 1, false, 2);
    session_flush(f->mgr);
    struct mqtt_packet got = next_sent(sub);
    assert_publish(got, "mp", "ok", 1);
    assert_int_equal(next_sent(sub).type, 0);
    send_ack(f, sub, MQTT_PUBACK, got.u.publish.packet_id);
    session_flush(f->mgr);
    /* The dropped one counts as delivered: nothing is left in the queue. */
    assert_int_equal(db_entries(f, "queues"), 0);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

/* ---- Topic Aliases ---- */

static void test_inbound_topic_aliases_map_and_resolve(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *sub = connect_client(f, "sub", true, false);
    subscribe(f, sub, "t/#", 0, 0);
    struct fake_conn *fc = connect5(f, "al", true, 0, false);
    struct mqtt_properties one = alias_props(1);
    publish5(f, fc, "t/a", 0, 0, &one, SESSION_OK);
    publish5(f, fc, "", 0, 0, &one, SESSION_OK);
    assert_publish(next_sent(sub), "t/a", "x", 0);
    assert_publish(next_sent(sub), "t/a", "x", 0);
    struct mqtt_properties two = alias_props(2);
    publish5(f, fc, "", 0, 0, &two, SESSION_ERR_PROTOCOL); /* never mapped */
    gone(f, fc, SESSION_CLOSE_PROTOCOL);
    fc = connect5(f, "al2", true, 0, false);
    struct mqtt_properties eleven = alias_props(11); /* max_topic_alias is 10 */
    publish5(f, fc, "t/b", 0, 0, &eleven, SESSION_ERR_TOPIC_ALIAS);
    assert_int_equal(session_error_reason(SESSION_ERR_TOPIC_ALIAS), 0x94);
    gone(f, fc, SESSION_CLOSE_PROTOCOL);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

static void test_outbound_aliases_go_to_topics_sent_again(void **state)
{
    struct fixture *f = *state;
    struct mqtt_packet p = connect5_packet("sub", true, 0);
    p.u.connect.props.present |= MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS_MAXIMUM);
    p.u.connect.props.topic_alias_maximum = 1;
    struct fake_conn *sub = connect5_with(f, &p, 0, false, NULL);
    subscribe(f, sub, "o/#", 0, 0);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    const char *topics[] = {"o/a", "o/a", "o/a", "o/b", "o/b", "o/b"};
    /* One alias only: o/b takes it over from o/a once it is frequent. */
    const char *want_topic[] = {"o/a", "o/a", "", "o/b", "o/b", ""};
    const uint16_t want_alias[] = {0, 1, 1, 0, 1, 1};
    for (size_t i = 0; i < 6; i++) {
        publish(f, pub, topics[i], "x", 0, false, 0);
        struct mqtt_packet got = next_sent(sub);
        assert_int_equal(got.type, MQTT_PUBLISH);
        assert_int_equal(got.u.publish.topic.len, strlen(want_topic[i]));
        assert_memory_equal(got.u.publish.topic.data, want_topic[i], strlen(want_topic[i]));
        assert_int_equal(got.u.publish.props.topic_alias, want_alias[i]);
    }
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

/* ---- DISCONNECT from the server ---- */

static void test_takeover_and_errors_send_one_disconnect_MQTT_3_14_2_1(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *old = connect5(f, "twin", true, 0, false);
    struct fake_conn *new = connect5(f, "twin", true, 0, false);
    assert_true(old->closed);
    struct mqtt_packet d = next_sent(old);
    assert_int_equal(d.type, MQTT_DISCONNECT);
    assert_int_equal(d.u.disconnect.reason_code, MQTT_RC_SESSION_TAKEN_OVER);
    gone(f, old, SESSION_CLOSE_PROTOCOL);
    session_client_disconnect(f->mgr, new->client, MQTT_RC_KEEP_ALIVE_TIMEOUT, "keep alive");
    session_client_disconnect(f->mgr, new->client, MQTT_RC_PROTOCOL_ERROR, NULL); /* once */
    d = next_sent(new);
    assert_int_equal(d.type, MQTT_DISCONNECT);
    assert_int_equal(d.u.disconnect.reason_code, MQTT_RC_KEEP_ALIVE_TIMEOUT);
    assert_int_equal(next_sent(new).type, 0);
    gone(f, new, SESSION_CLOSE_KEEPALIVE);
    /* A 3.1.1 client gets none. */
    struct fake_conn *v3 = connect_client(f, "v3", true, false);
    session_client_disconnect(f->mgr, v3->client, MQTT_RC_SERVER_SHUTTING_DOWN, NULL);
    assert_int_equal(next_sent(v3).type, 0);
    gone(f, v3, SESSION_CLOSE_SHUTDOWN);
}

/* ---- PUBLISH properties and Message Expiry (step 2) ---- */

/* A v5 PUBLISH packet with properties given as fields: payload format,
 * content type, response topic, correlation data, two user properties,
 * optionally a Message Expiry Interval; encoded and decoded so the manager
 * sees a block as on the wire. */
struct v5_publish {
    uint8_t wire[512];
    struct mqtt_packet pkt;
};

static void make_v5_publish(struct v5_publish *out, const char *topic, const char *payload,
                            uint8_t qos, uint16_t packet_id, uint32_t expiry_s, bool retain)
{
    static const struct mqtt_user_property ups[2] = {
        {{(const uint8_t *)"k", 1}, {(const uint8_t *)"v1", 2}},
        {{(const uint8_t *)"k", 1}, {(const uint8_t *)"v2", 2}},
    };
    struct mqtt_packet p = {.type = MQTT_PUBLISH, .protocol_level = MQTT_PROTOCOL_V5};
    p.u.publish.qos = qos;
    p.u.publish.retain = retain;
    p.u.publish.packet_id = packet_id;
    p.u.publish.topic = (struct mqtt_bytes){(const uint8_t *)topic, strlen(topic)};
    p.u.publish.payload = (struct mqtt_bytes){(const uint8_t *)payload, strlen(payload)};
    struct mqtt_properties *pr = &p.u.publish.props;
    pr->present = MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT_INDICATOR) |
                  MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE) | MQTT_PROP_BIT(MQTT_PROP_RESPONSE_TOPIC) |
                  MQTT_PROP_BIT(MQTT_PROP_CORRELATION_DATA);
    pr->payload_format_indicator = 1;
    pr->content_type = (struct mqtt_bytes){(const uint8_t *)"text/plain", 10};
    pr->response_topic = (struct mqtt_bytes){(const uint8_t *)"reply/to", 8};
    pr->correlation_data = (struct mqtt_bytes){(const uint8_t *)"\x00\x01", 2};
    pr->user_properties = ups;
    pr->user_property_count = 2;
    if (expiry_s) {
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY_INTERVAL);
        pr->message_expiry_interval_s = expiry_s;
    }
    size_t n = 0, used = 0;
    assert_int_equal(mqtt_encode(&p, out->wire, sizeof(out->wire), &n), MQTT_OK);
    assert_int_equal(mqtt_decode_stream_for(out->wire, n, 0, MQTT_PROTOCOL_V5, &out->pkt, &used),
                     MQTT_OK);
}

/* The properties a delivery carries are the published ones, unchanged and
 * with the user properties in their order. */
static void assert_forwarded_properties(const struct mqtt_publish *got)
{
    const struct mqtt_properties *pr = &got->props;
    assert_int_equal(pr->payload_format_indicator, 1);
    assert_int_equal(pr->content_type.len, 10);
    assert_memory_equal(pr->content_type.data, "text/plain", 10);
    assert_memory_equal(pr->response_topic.data, "reply/to", 8);
    assert_int_equal(pr->correlation_data.len, 2);
    assert_memory_equal(pr->correlation_data.data, "\x00\x01", 2);
    assert_int_equal(pr->user_property_count, 2);
    struct mqtt_property_iter it;
    struct mqtt_user_property up;
    mqtt_property_iter_init(&it, pr);
    assert_true(mqtt_property_iter_next_user(&it, &up));
    assert_memory_equal(up.value.data, "v1", 2);
    assert_true(mqtt_property_iter_next_user(&it, &up));
    assert_memory_equal(up.value.data, "v2", 2);
}

static void test_publish_properties_are_forwarded_unchanged_MQTT_3_3_2_3(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *sub5 = connect5(f, "sub5", true, 0, false);
    subscribe(f, sub5, "p/#", 1, 1);
    struct fake_conn *sub3 = connect_client(f, "sub3", true, false);
    subscribe(f, sub3, "p/#", 1, 1);
    struct fake_conn *pub = connect5(f, "pub", true, 0, false);
    struct v5_publish vp;
    make_v5_publish(&vp, "p/t", "hello", 1, 1, 0, false);
    feed(f, pub, &vp.pkt, SESSION_OK);
    struct mqtt_packet got = next_sent(sub5);
    assert_publish(got, "p/t", "hello", 1);
    assert_forwarded_properties(&got.u.publish);
    /* Toward 3.1.1 the properties are dropped: the packet decodes as 3.1.1. */
    assert_publish(next_sent(sub3), "p/t", "hello", 1);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    gone(f, sub5, SESSION_CLOSE_DISCONNECT);
    gone(f, sub3, SESSION_CLOSE_DISCONNECT);
}

static void test_queued_message_keeps_properties_and_expiry_across_a_restart(void **state)
{
    struct fixture *f = *state;
    gone(f, connect5(f, "off", true, 3600, false), SESSION_CLOSE_SOCKET);
    struct fake_conn *sub = connect5(f, "off", false, 3600, true);
    subscribe(f, sub, "q", 1, 1);
    disconnect5(f, sub, 0, NULL, SESSION_ERR_DISCONNECT);
    struct fake_conn *pub = connect5(f, "pub", true, 0, false);
    struct v5_publish vp;
    make_v5_publish(&vp, "q", "later", 1, 1, 100, false);
    feed(f, pub, &vp.pkt, SESSION_OK);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    session_flush(f->mgr);
    reopen(f);
    session_clock_advance(f->mgr, 30);
    sub = connect5(f, "off", false, 3600, true);
    struct mqtt_packet got = next_sent(sub);
    assert_publish(got, "q", "later", 1);
    assert_forwarded_properties(&got.u.publish);
    /* The interval left [MQTT-3.3.2-6]: 100 s minus the 30 it waited (the
     * restart itself took under a second). */
    uint32_t left = got.u.publish.props.message_expiry_interval_s;
    assert_true(left <= 70 && left >= 68);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

static void test_expired_queued_message_is_dropped_MQTT_3_3_2_5(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *sub = connect5(f, "exp", true, 3600, false);
    subscribe(f, sub, "e", 1, 1);
    disconnect5(f, sub, 0, NULL, SESSION_ERR_DISCONNECT);
    struct fake_conn *pub = connect5(f, "pub", true, 0, false);
    struct v5_publish vp;
    make_v5_publish(&vp, "e", "short", 1, 1, 5, false);
    feed(f, pub, &vp.pkt, SESSION_OK);
    make_v5_publish(&vp, "e", "long", 1, 2, 0, false);
    feed(f, pub, &vp.pkt, SESSION_OK);
    session_flush(f->mgr);
    session_clock_advance(f->mgr, 6);
    sub = connect5(f, "exp", false, 3600, true);
    struct mqtt_packet got = next_sent(sub);
    assert_publish(got, "e", "long", 1); /* "short" expired while queued */
    assert_int_equal(next_sent(sub).type, 0);
    send_ack(f, sub, MQTT_PUBACK, got.u.publish.packet_id);
    session_flush(f->mgr);
    assert_int_equal(db_entries(f, "queues"), 0);
    assert_int_equal(db_entries(f, "messages"), 0);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

static void test_expired_retained_message_is_not_sent_and_is_removed(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *pub = connect5(f, "pub", true, 0, false);
    struct v5_publish vp;
    make_v5_publish(&vp, "r/short", "gone soon", 1, 1, 5, true);
    feed(f, pub, &vp.pkt, SESSION_OK);
    make_v5_publish(&vp, "r/long", "stays", 1, 2, 0, true);
    feed(f, pub, &vp.pkt, SESSION_OK);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    session_flush(f->mgr);
    assert_int_equal(db_entries(f, "retained"), 2);
    reopen(f); /* its properties and deadline were stored with it */
    session_clock_advance(f->mgr, 6);
    struct fake_conn *sub = connect5(f, "sub", true, 0, false);
    subscribe(f, sub, "r/#", 1, 1);
    struct mqtt_packet got = next_sent(sub);
    assert_publish(got, "r/long", "stays", 1);
    assert_true(got.u.publish.retain);
    assert_forwarded_properties(&got.u.publish);
    assert_int_equal(next_sent(sub).type, 0);
    session_flush(f->mgr);
    assert_int_equal(db_entries(f, "retained"), 1);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

/* The ack of a v5 PUBLISH, after the turn's commit. */
static struct mqtt_packet ack_of(struct fixture *f, struct fake_conn *fc)
{
    session_flush(f->mgr);
    return next_sent(fc);
}

static void test_puback_reason_codes_no_subscribers_and_quota_MQTT_3_4_2_1(void **state)
{
    struct fixture *f = *state;
    close_all(f);
    f->config.max_queued_messages = 1;
    open_all(f);
    struct fake_conn *pub = connect5(f, "pub", true, 0, false);
    publish5(f, pub, "nobody", 1, 1, NULL, SESSION_OK);
    struct mqtt_packet a = ack_of(f, pub);
    assert_int_equal(a.type, MQTT_PUBACK);
    assert_int_equal(a.u.ack.reason_code, MQTT_RC_NO_MATCHING_SUBSCRIBERS);
    gone(f, connect5(f, "full", true, 3600, false), SESSION_CLOSE_SOCKET);
    struct fake_conn *sub = connect5(f, "full", false, 3600, true);
    subscribe(f, sub, "q", 1, 1);
    disconnect5(f, sub, 0, NULL, SESSION_ERR_DISCONNECT);
    publish5(f, pub, "q", 1, 2, NULL, SESSION_OK);
    a = ack_of(f, pub);
    assert_int_equal(a.u.ack.reason_code, MQTT_RC_SUCCESS);
    /* The queue is full: dropped for its only subscriber, nothing recorded. */
    publish5(f, pub, "q", 2, 3, NULL, SESSION_OK);
    a = ack_of(f, pub);
    assert_int_equal(a.type, MQTT_PUBREC);
    assert_int_equal(a.u.ack.reason_code, MQTT_RC_QUOTA_EXCEEDED);
    assert_true(mqtt_properties_has(&a.u.ack.props, MQTT_PROP_REASON_STRING));
    /* A PUBREC at or above 0x80 ends the exchange: the id is not kept. */
    publish5(f, pub, "nobody", 2, 3, NULL, SESSION_OK);
    a = ack_of(f, pub);
    assert_int_equal(a.u.ack.reason_code, MQTT_RC_NO_MATCHING_SUBSCRIBERS);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
}

static void test_store_full_gets_puback_0x97_instead_of_a_close(void **state)
{
    struct fixture *f = *state;
    reopen_with_tiny_map(f);
    struct fake_conn *sub = connect_client(f, "sub", false, false);
    subscribe(f, sub, "big", 2, 2);
    struct fake_conn *pub = connect5(f, "pub", true, 0, false);
    size_t big_len = 2u << 20;
    char *big = malloc(big_len + 1);
    assert_non_null(big);
    memset(big, 'x', big_len);
    big[big_len] = '\0';
    struct mqtt_packet p = {.type = MQTT_PUBLISH, .protocol_level = MQTT_PROTOCOL_V5};
    p.u.publish.qos = 1;
    p.u.publish.packet_id = 1;
    p.u.publish.topic = (struct mqtt_bytes){(const uint8_t *)"big", 3};
    p.u.publish.payload = (struct mqtt_bytes){(const uint8_t *)big, big_len};
    feed(f, pub, &p, SESSION_OK);
    free(big);
    struct mqtt_packet a = ack_of(f, pub);
    assert_int_equal(a.type, MQTT_PUBACK);
    assert_int_equal(a.u.ack.reason_code, MQTT_RC_QUOTA_EXCEEDED);
    assert_false(pub->closed);
    assert_int_equal(next_sent(sub).type, 0);
    assert_int_equal(db_entries(f, "messages"), 0);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

static void test_payload_format_invalid_gets_0x99_MQTT_3_3_2_4(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *sub = connect5(f, "sub", true, 0, false);
    subscribe(f, sub, "u", 1, 1);
    struct fake_conn *pub = connect5(f, "pub", true, 0, false);
    struct v5_publish vp;
    make_v5_publish(&vp, "u", "ok", 1, 1, 0, false);
    vp.pkt.u.publish.payload = (struct mqtt_bytes){(const uint8_t *)"\xc3\x28", 2};
    feed(f, pub, &vp.pkt, SESSION_OK);
    struct mqtt_packet a = ack_of(f, pub);
    assert_int_equal(a.u.ack.reason_code, MQTT_RC_PAYLOAD_FORMAT_INVALID);
    assert_int_equal(next_sent(sub).type, 0); /* not routed */
    vp.pkt.u.publish.qos = 0;
    feed(f, pub, &vp.pkt, SESSION_ERR_PAYLOAD_FORMAT);
    assert_int_equal(session_error_reason(SESSION_ERR_PAYLOAD_FORMAT), 0x99);
    gone(f, pub, SESSION_CLOSE_PROTOCOL);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

static void test_no_reason_string_when_problem_information_is_0_MQTT_3_1_2_29(void **state)
{
    struct fixture *f = *state;
    struct mqtt_packet p = connect5_packet("quiet", true, 0);
    p.u.connect.props.present |= MQTT_PROP_BIT(MQTT_PROP_REQUEST_PROBLEM_INFORMATION);
    p.u.connect.props.request_problem_information = 0;
    struct fake_conn *pub = connect5_with(f, &p, 0, false, NULL);
    struct v5_publish vp;
    make_v5_publish(&vp, "u", "ok", 1, 1, 0, false);
    vp.pkt.u.publish.payload = (struct mqtt_bytes){(const uint8_t *)"\xff", 1};
    feed(f, pub, &vp.pkt, SESSION_OK);
    struct mqtt_packet a = ack_of(f, pub);
    assert_int_equal(a.u.ack.reason_code, MQTT_RC_PAYLOAD_FORMAT_INVALID);
    assert_false(mqtt_properties_has(&a.u.ack.props, MQTT_PROP_REASON_STRING));
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
}

/* ---- SUBSCRIBE options and identifiers (step 3) ---- */

/* SUBSCRIBE (MQTT 5) of one filter with an options byte and an identifier
 * (0: none), through the codec; returns the SUBACK reason after the commit. */
static uint8_t subscribe5(struct fixture *f, struct fake_conn *fc, const char *filter,
                          uint8_t options, uint32_t sub_id)
{
    struct mqtt_topic_entry e = {{(const uint8_t *)filter, strlen(filter)}, options & 3};
    struct mqtt_subscription_options o = {.no_local = (options & 0x04) != 0,
                                          .retain_as_published = (options & 0x08) != 0,
                                          .retain_handling = (options >> 4) & 3};
    struct mqtt_packet p = {.type = MQTT_SUBSCRIBE, .protocol_level = MQTT_PROTOCOL_V5};
    p.u.subscribe.packet_id = 9;
    p.u.subscribe.count = 1;
    p.u.subscribe.entries = &e;
    p.u.subscribe.options = &o;
    if (sub_id) {
        p.u.subscribe.props.present = MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_IDENTIFIER);
        p.u.subscribe.props.subscription_identifier = sub_id;
    }
    uint8_t buf[512];
    size_t n = 0, used = 0;
    assert_int_equal(mqtt_encode(&p, buf, sizeof(buf), &n), MQTT_OK);
    struct mqtt_packet decoded;
    assert_int_equal(mqtt_decode_stream_for(buf, n, 0, MQTT_PROTOCOL_V5, &decoded, &used), MQTT_OK);
    feed(f, fc, &decoded, SESSION_OK);
    session_flush(f->mgr);
    struct mqtt_packet ack = next_sent(fc);
    assert_int_equal(ack.type, MQTT_SUBACK);
    assert_int_equal(ack.u.suback.return_codes.len, 1);
    return ack.u.suback.return_codes.data[0];
}

static uint8_t unsubscribe5(struct fixture *f, struct fake_conn *fc, const char *filter)
{
    struct mqtt_topic_entry e = {{(const uint8_t *)filter, strlen(filter)}, 0};
    struct mqtt_packet p = {.type = MQTT_UNSUBSCRIBE, .protocol_level = MQTT_PROTOCOL_V5};
    p.u.subscribe.packet_id = 10;
    p.u.subscribe.count = 1;
    p.u.subscribe.entries = &e;
    uint8_t buf[512];
    size_t n = 0, used = 0;
    assert_int_equal(mqtt_encode(&p, buf, sizeof(buf), &n), MQTT_OK);
    struct mqtt_packet decoded;
    assert_int_equal(mqtt_decode_stream_for(buf, n, 0, MQTT_PROTOCOL_V5, &decoded, &used), MQTT_OK);
    feed(f, fc, &decoded, SESSION_OK);
    session_flush(f->mgr);
    struct mqtt_packet ack = next_sent(fc);
    assert_int_equal(ack.type, MQTT_UNSUBACK);
    assert_int_equal(ack.u.ack.reason_codes.len, 1);
    return ack.u.ack.reason_codes.data[0];
}

#define OPT_NO_LOCAL 0x04
#define OPT_RAP      0x08
#define OPT_RH(n)    ((n) << 4)

static void test_no_local_skips_the_publishers_own_subscription_MQTT_3_8_3_3(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *me = connect5(f, "me", true, 0, false);
    struct fake_conn *other = connect5(f, "other", true, 0, false);
    assert_int_equal(subscribe5(f, me, "nl/a", 1 | OPT_NO_LOCAL, 0), 1);
    assert_int_equal(subscribe5(f, other, "nl/a", 1 | OPT_NO_LOCAL, 0), 1);
    publish5(f, me, "nl/a", 0, 0, NULL, SESSION_OK);
    assert_int_equal(next_sent(me).type, 0);
    assert_publish(next_sent(other), "nl/a", "x", 0);
    /* An overlapping filter without No Local still delivers it, once. */
    assert_int_equal(subscribe5(f, me, "nl/#", 1, 0), 1);
    publish5(f, me, "nl/a", 0, 0, NULL, SESSION_OK);
    assert_publish(next_sent(me), "nl/a", "x", 0);
    assert_int_equal(next_sent(me).type, 0);
    gone(f, me, SESSION_CLOSE_DISCONNECT);
    gone(f, other, SESSION_CLOSE_DISCONNECT);
}

static void test_retain_as_published_keeps_the_retain_flag_MQTT_3_3_1_12(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *rap = connect5(f, "rap", true, 0, false);
    struct fake_conn *plain = connect5(f, "plain", true, 0, false);
    assert_int_equal(subscribe5(f, rap, "ret/#", 1 | OPT_RAP, 0), 1);
    assert_int_equal(subscribe5(f, plain, "ret/#", 1, 0), 1);
    struct fake_conn *pub = connect5(f, "pub", true, 0, false);
    struct v5_publish vp;
    make_v5_publish(&vp, "ret/t", "kept", 1, 1, 0, true);
    feed(f, pub, &vp.pkt, SESSION_OK);
    session_flush(f->mgr);
    struct mqtt_packet got = next_sent(rap);
    assert_publish(got, "ret/t", "kept", 1);
    assert_true(got.u.publish.retain);
    got = next_sent(plain);
    assert_publish(got, "ret/t", "kept", 1);
    assert_false(got.u.publish.retain); /* [MQTT-3.3.1-13] */
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    gone(f, rap, SESSION_CLOSE_DISCONNECT);
    gone(f, plain, SESSION_CLOSE_DISCONNECT);
}

static void test_retain_handling_0_1_2_MQTT_3_3_1_9(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *pub = connect5(f, "pub", true, 0, false);
    struct v5_publish vp;
    make_v5_publish(&vp, "rh/t", "state", 1, 1, 0, true);
    feed(f, pub, &vp.pkt, SESSION_OK);
    session_flush(f->mgr);
    struct fake_conn *sub = connect5(f, "sub", true, 0, false);
    for (int round = 0; round < 2; round++) { /* 0: every time */
        assert_int_equal(subscribe5(f, sub, "rh/#", 1 | OPT_RH(0), 0), 1);
        assert_publish(next_sent(sub), "rh/t", "state", 1);
    }
    assert_int_equal(subscribe5(f, sub, "rh/t", 1 | OPT_RH(1), 0), 1); /* 1: new: sent */
    assert_publish(next_sent(sub), "rh/t", "state", 1);
    assert_int_equal(subscribe5(f, sub, "rh/t", 1 | OPT_RH(1), 0), 1); /* 1: exists: not */
    assert_int_equal(next_sent(sub).type, 0);
    assert_int_equal(subscribe5(f, sub, "+/t", 1 | OPT_RH(2), 0), 1); /* 2: never */
    assert_int_equal(next_sent(sub).type, 0);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

static void assert_sub_ids(const struct mqtt_publish *p, const uint32_t *want, size_t n)
{
    uint32_t got[8];
    size_t count = 0;
    struct mqtt_property_iter it;
    mqtt_property_iter_init(&it, &p->props);
    while (count < 8 && mqtt_property_iter_next_subscription_id(&it, &got[count]))
        count++;
    assert_int_equal(count, n);
    for (size_t i = 0; i < n; i++) { /* in any order */
        bool found = false;
        for (size_t j = 0; j < count; j++)
            found |= got[j] == want[i];
        assert_true(found);
    }
}

static void test_subscription_identifiers_on_delivery_MQTT_3_3_4_3(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *sub = connect5(f, "ids", true, 3600, false);
    assert_int_equal(subscribe5(f, sub, "id/#", 1, 7), 1);
    assert_int_equal(subscribe5(f, sub, "id/+", 1, 268435455), 1);
    assert_int_equal(subscribe5(f, sub, "id/x", 1, 0), 1);
    struct fake_conn *pub = connect5(f, "pub", true, 0, false);
    publish5(f, pub, "id/x", 1, 1, NULL, SESSION_OK);
    session_flush(f->mgr);
    struct mqtt_packet got = next_sent(sub);
    const uint32_t both[] = {7, 268435455};
    assert_sub_ids(&got.u.publish, both, 2);
    send_ack(f, sub, MQTT_PUBACK, got.u.publish.packet_id);
    /* Queued while offline, across a restart: the identifiers stay with the
     * entry, and the subscriptions keep theirs. */
    disconnect5(f, sub, 0, NULL, SESSION_ERR_DISCONNECT);
    publish5(f, pub, "id/y", 1, 2, NULL, SESSION_OK);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    session_flush(f->mgr);
    reopen(f);
    sub = connect5(f, "ids", false, 3600, true);
    got = next_sent(sub);
    assert_publish(got, "id/y", "x", 1);
    assert_sub_ids(&got.u.publish, both, 2);
    send_ack(f, sub, MQTT_PUBACK, got.u.publish.packet_id);
    pub = connect5(f, "pub", true, 0, false);
    publish5(f, pub, "id/z", 0, 0, NULL, SESSION_OK);
    got = next_sent(sub);
    assert_sub_ids(&got.u.publish, both, 2);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

static void test_retained_on_subscribe_carries_the_subscriptions_identifier(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *pub = connect5(f, "pub", true, 0, false);
    struct v5_publish vp;
    make_v5_publish(&vp, "rs/t", "r", 1, 1, 0, true);
    feed(f, pub, &vp.pkt, SESSION_OK);
    session_flush(f->mgr);
    struct fake_conn *sub = connect5(f, "sub", true, 0, false);
    assert_int_equal(subscribe5(f, sub, "rs/#", 1, 42), 1);
    struct mqtt_packet got = next_sent(sub);
    assert_true(got.u.publish.retain);
    const uint32_t id[] = {42};
    assert_sub_ids(&got.u.publish, id, 1);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
}

static void test_suback_and_unsuback_reason_codes_MQTT_3_9_3_MQTT_3_11_3(void **state)
{
    struct fixture *f = *state;
    close_all(f);
    f->config.max_subscriptions_per_client = 1;
    open_all(f);
    struct fake_conn *c = connect5(f, "codes", true, 0, false);
    assert_int_equal(subscribe5(f, c, "a/#/b", 1, 0), MQTT_RC_TOPIC_FILTER_INVALID);
    assert_int_equal(subscribe5(f, c, "ok", 2, 0), 2);
    assert_int_equal(subscribe5(f, c, "more", 1, 0), MQTT_RC_QUOTA_EXCEEDED);
    assert_int_equal(unsubscribe5(f, c, "ok"), MQTT_RC_SUCCESS);
    assert_int_equal(unsubscribe5(f, c, "ok"), MQTT_RC_NO_SUBSCRIPTION_EXISTED);
    assert_int_equal(unsubscribe5(f, c, "a/#/b"), MQTT_RC_TOPIC_FILTER_INVALID);
    gone(f, c, SESSION_CLOSE_DISCONNECT);
    /* 3.1.1 keeps its one failure code. */
    struct fake_conn *old = connect_client(f, "old", true, false);
    subscribe(f, old, "a/#/b", 1, MQTT_SUBACK_FAILURE);
    gone(f, old, SESSION_CLOSE_DISCONNECT);
}

/* ---- Wills (step 4) ---- */

/* What a kill -9 leaves: the store's files as of the last commit, opened by
 * a second manager (the first one's clients are still connected). */
struct crashed {
    struct fixture f;
};

static void open_crash_copy(struct fixture *f, struct crashed *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->f.dir, sizeof(c->f.dir), "%.50s-crash", f->dir);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir '%s' && cp '%s/data.mdb' '%s/'", c->f.dir,
             c->f.dir, f->dir, c->f.dir);
    assert_int_equal(system(cmd), 0);
    c->f.config = f->config;
    open_all(&c->f);
}

static void close_crash_copy(struct crashed *c)
{
    close_all(&c->f);
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", c->f.dir);
    assert_int_equal(system(cmd), 0);
}

static struct fake_conn *connect_will5_props(struct fixture *f, const char *id, bool clean,
                                             uint32_t expiry_s, uint32_t delay_s,
                                             uint32_t will_expiry_s)
{
    static const struct mqtt_user_property up = {{(const uint8_t *)"why", 3},
                                                 {(const uint8_t *)"crash", 5}};
    struct mqtt_packet p = connect5_packet(id, clean, expiry_s);
    p.u.connect.has_will = true;
    p.u.connect.will_qos = 1;
    p.u.connect.will_topic = (struct mqtt_bytes){(const uint8_t *)"will/t", 6};
    p.u.connect.will_payload = (struct mqtt_bytes){(const uint8_t *)"bye", 3};
    struct mqtt_properties *wp = &p.u.connect.will_props;
    wp->present = MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE);
    wp->content_type = (struct mqtt_bytes){(const uint8_t *)"text/plain", 10};
    wp->user_properties = &up;
    wp->user_property_count = 1;
    if (delay_s) {
        wp->present |= MQTT_PROP_BIT(MQTT_PROP_WILL_DELAY_INTERVAL);
        wp->will_delay_interval_s = delay_s;
    }
    if (will_expiry_s) {
        wp->present |= MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY_INTERVAL);
        wp->message_expiry_interval_s = will_expiry_s;
    }
    /* Through the codec, so the will properties are a block as on the wire. */
    uint8_t buf[512];
    size_t n = 0, used = 0;
    assert_int_equal(mqtt_encode(&p, buf, sizeof(buf), &n), MQTT_OK);
    struct mqtt_packet decoded;
    assert_int_equal(mqtt_decode_stream_for(buf, n, 0, MQTT_PROTOCOL_V5, &decoded, &used), MQTT_OK);
    return connect5_with(f, &decoded, 0, false, NULL);
}

static void test_will_properties_are_forwarded_and_its_expiry_starts_at_publication(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *w = connect5(f, "watch", true, 0, false);
    subscribe(f, w, "will/#", 1, 1);
    gone(f, connect_will5_props(f, "dying", true, 60, 10, 30), SESSION_CLOSE_SOCKET);
    session_clock_advance(f->mgr, 11); /* a 10 s delay, in whole seconds */
    session_expire(f->mgr, session_now_s(f->mgr));
    struct mqtt_packet got = next_sent(w);
    assert_publish(got, "will/t", "bye", 1);
    const struct mqtt_properties *pr = &got.u.publish.props;
    assert_memory_equal(pr->content_type.data, "text/plain", 10);
    assert_int_equal(pr->user_property_count, 1);
    assert_false(mqtt_properties_has(pr, MQTT_PROP_WILL_DELAY_INTERVAL));
    /* 30 s from its publication, not from the CONNECT 10 s earlier */
    assert_true(pr->message_expiry_interval_s >= 29 && pr->message_expiry_interval_s <= 30);
    gone(f, w, SESSION_CLOSE_DISCONNECT);
}

/* A client connected when the broker dies has its will published after the
 * restart, after its delay; so does a clean one (its will has a record of
 * its own), and a 3.1.1 one. */
static void test_wills_of_clients_connected_at_a_crash_are_published_after_restart(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *watch = connect_client(f, "watch", false, false);
    subscribe(f, watch, "will/#", 1, 1);
    gone(f, watch, SESSION_CLOSE_DISCONNECT);
    struct fake_conn *late = connect_will5_props(f, "late", false, 3600, 5, 0);
    struct fake_conn *clean = connect_will5_props(f, "clean", true, 0, 0, 0);
    struct fake_conn *old = connect_with_will(f, "old311");
    assert_int_equal(db_entries(f, "sessions"), 4); /* watch, late, and the two wills */
    struct crashed c;
    open_crash_copy(f, &c); /* the wills of "clean" and "old311" go at the start */
    session_flush(c.f.mgr);
    watch = connect_client(&c.f, "watch", false, true);
    session_flush(c.f.mgr);
    /* "clean"'s QoS 1 will was queued for the offline watcher; "old311"'s
     * went at the start too, at QoS 0, which offline sessions do not queue. */
    assert_publish(next_sent(watch), "will/t", "bye", 1);
    assert_int_equal(next_sent(watch).type, 0); /* "late" waits its 5 s */
    session_expire(c.f.mgr, session_now_s(c.f.mgr) + 6);
    session_flush(c.f.mgr);
    assert_publish(next_sent(watch), "will/t", "bye", 1);
    gone(&c.f, watch, SESSION_CLOSE_DISCONNECT);
    session_flush(c.f.mgr);
    assert_int_equal(db_entries(&c.f, "sessions"), 2); /* watch and late; the wills are gone */
    close_crash_copy(&c);
    gone(f, late, SESSION_CLOSE_DISCONNECT);
    gone(f, clean, SESSION_CLOSE_DISCONNECT);
    gone(f, old, SESSION_CLOSE_DISCONNECT);
    session_flush(f->mgr);
    assert_int_equal(db_entries(f, "sessions"), 2); /* a normal disconnect drops the wills */
}

/* A will waiting for its delay is in the store: a restart keeps its
 * deadline (not a new one), and the session resuming still cancels it. */
static void test_waiting_will_survives_a_restart_with_its_deadline(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *watch = connect_client(f, "watch", false, false);
    subscribe(f, watch, "will/#", 1, 1);
    gone(f, watch, SESSION_CLOSE_DISCONNECT);
    gone(f, connect_will5_props(f, "w1", false, 3600, 10, 0), SESSION_CLOSE_SOCKET);
    gone(f, connect_will5_props(f, "w2", false, 3600, 10, 0), SESSION_CLOSE_SOCKET);
    session_flush(f->mgr);
    reopen(f);
    struct fake_conn *back = connect5(f, "w2", false, 3600, true); /* cancels w2's */
    gone(f, back, SESSION_CLOSE_DISCONNECT);
    session_flush(f->mgr);
    reopen(f);
    uint64_t now = session_now_s(f->mgr);
    session_expire(f->mgr, now + 8);
    session_flush(f->mgr);
    assert_int_equal(db_entries(f, "sessions"), 3);
    session_expire(f->mgr, now + 11); /* w1's 10 s (whole seconds) since its disconnect */
    session_flush(f->mgr);
    watch = connect_client(f, "watch", false, true);
    assert_publish(next_sent(watch), "will/t", "bye", 1);
    assert_int_equal(next_sent(watch).type, 0); /* not w2's */
    gone(f, watch, SESSION_CLOSE_DISCONNECT);
}

/* ---- The clock (step 5) ---- */

/* The broker's time never goes back across a restart: a wall clock behind
 * the time last recorded (a box that lost its clock) starts from that time,
 * so a deadline cannot move further away than it was. */
static void test_clock_behind_the_recorded_time_lengthens_no_deadline(void **state)
{
    struct fixture *f = *state;
    gone(f, connect5(f, "soon", true, 100, false), SESSION_CLOSE_SOCKET);
    session_flush(f->mgr);
    uint64_t before = session_now_s(f->mgr);
    session_mgr_free(f->mgr);
    /* As if the broker had run 1000 s more by its clock, which the wall
     * clock of the next start does not show. */
    struct store_batch *b = store_batch_new(f->store);
    assert_int_equal(store_batch_set_counter(b, "clock_s", before + 1000), 0);
    assert_int_equal(store_batch_commit(b), 0);
    char err[256];
    assert_int_equal(session_mgr_new(&f->config, f->store, &fake_sink, &f->mgr, err, sizeof(err)),
                     0);
    assert_true(session_now_s(f->mgr) >= before + 1000);
    session_flush(f->mgr);
    assert_int_equal(db_entries(f, "sessions"), 0); /* its 100 s had passed */
}

static void test_the_tick_records_the_clock(void **state)
{
    struct fixture *f = *state;
    session_clock_advance(f->mgr, 61);
    uint64_t before = session_now_s(f->mgr);
    session_tick(f->mgr);
    session_flush(f->mgr);
    uint64_t recorded = 0;
    assert_int_equal(store_get_counter(f->store, "clock_s", &recorded), 0);
    assert_true(recorded >= before && recorded <= session_now_s(f->mgr));
}

/* ---- Enhanced authentication: SCRAM-SHA-512 [4.12] ---- */

#define SCRAM "SCRAM-SHA-512"
/* alice's $7$ entry, as auth_passwd_hash_new() (and mosquitto_passwd) write
 * them; dave's a $6$ one (test_auth.c's vector: "legacy pass"). */
#define DAVE_6                                                                                     \
    "dave:$6$mW2PVxWbXnRVuqmL$"                                                                    \
    "B5M0mSJudVNYSyd8fLsLdd8kzEcmuclFpzHWt29yAl6DNIsx3CCfQRbp6F6GY9quYxIrf"                        \
    "iB8FGSQ28M4E8qgog=="

/* A password file with alice ("secret", $7$) and dave ($6$), loaded. */
static struct auth_passwd *scram_users(const struct fixture *f, const char *alice_password)
{
    char hash[AUTH_PASSWD_HASH_MAX], path[128], err[256];
    assert_int_equal(auth_passwd_hash_new((const uint8_t *)alice_password, strlen(alice_password),
                                          0, hash, sizeof(hash)),
                     AUTH_OK);
    snprintf(path, sizeof(path), "%s/passwd", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fprintf(fp, "alice:%s\n%s\n", hash, DAVE_6);
    fclose(fp);
    struct auth_passwd *pw = NULL;
    assert_int_equal(auth_passwd_load(path, &pw, err, sizeof(err)), AUTH_OK);
    return pw;
}

/* An MQTT 5 CONNECT with Authentication Method method and, when data is not
 * NULL, Authentication Data data. */
static struct mqtt_packet auth_connect(const char *id, uint32_t expiry_s, const char *method,
                                       const char *data)
{
    struct mqtt_packet p = connect5_packet(id, true, expiry_s);
    p.u.connect.props.present |= MQTT_PROP_BIT(MQTT_PROP_AUTHENTICATION_METHOD);
    p.u.connect.props.authentication_method =
        (struct mqtt_bytes){(const uint8_t *)method, strlen(method)};
    if (data) {
        p.u.connect.props.present |= MQTT_PROP_BIT(MQTT_PROP_AUTHENTICATION_DATA);
        p.u.connect.props.authentication_data =
            (struct mqtt_bytes){(const uint8_t *)data, strlen(data)};
    }
    return p;
}

static struct mqtt_packet auth_packet(uint8_t reason, const char *method, const char *data)
{
    struct mqtt_packet p = {.type = MQTT_AUTH, .protocol_level = MQTT_PROTOCOL_V5};
    p.u.auth.reason_code = reason;
    if (method) {
        p.u.auth.props.present |= MQTT_PROP_BIT(MQTT_PROP_AUTHENTICATION_METHOD);
        p.u.auth.props.authentication_method =
            (struct mqtt_bytes){(const uint8_t *)method, strlen(method)};
    }
    if (data) {
        p.u.auth.props.present |= MQTT_PROP_BIT(MQTT_PROP_AUTHENTICATION_DATA);
        p.u.auth.props.authentication_data =
            (struct mqtt_bytes){(const uint8_t *)data, strlen(data)};
    }
    return p;
}

static void assert_bytes(struct mqtt_bytes b, const char *text)
{
    assert_int_equal(b.len, strlen(text));
    assert_memory_equal(b.data, text, b.len);
}

/* Feeds the CONNECT p on a new connection and expects AUTH 0x18 (Continue
 * authentication) with the method and a server-first-message, which it
 * answers in *client (started as user/password). */
static struct fake_conn *scram_begin(struct fixture *f, struct mqtt_packet *p,
                                     struct scram_test_client *client)
{
    struct fake_conn *fc = new_conn(f);
    fc->level = MQTT_PROTOCOL_V5;
    feed(f, fc, p, SESSION_OK);
    session_flush(f->mgr);
    struct mqtt_packet got = next_sent(fc);
    assert_int_equal(got.type, MQTT_AUTH);
    assert_int_equal(got.u.auth.reason_code, MQTT_RC_CONTINUE_AUTHENTICATION);
    assert_bytes(got.u.auth.props.authentication_method, SCRAM);
    assert_true(mqtt_properties_has(&got.u.auth.props, MQTT_PROP_AUTHENTICATION_DATA));
    scram_client_final(client, got.u.auth.props.authentication_data.data,
                       got.u.auth.props.authentication_data.len);
    assert_int_equal(next_sent(fc).type, 0); /* no CONNACK yet */
    assert_int_equal(fc->keepalive_s, 0);    /* nor the keepalive of an accepted client */
    return fc;
}

/* CONNECT as user/password with a session expiry; returns the connection
 * after its AUTH 0x18, with the client-final-message in *client. */
static struct fake_conn *scram_start(struct fixture *f, const char *id, uint32_t expiry_s,
                                     const char *user, const char *password,
                                     struct scram_test_client *client)
{
    struct mqtt_packet p =
        auth_connect(id, expiry_s, SCRAM, scram_client_first(client, user, password));
    return scram_begin(f, &p, client);
}

/* Sends the client's AUTH 0x18 (client-final) and returns the CONNACK. */
static struct mqtt_packet scram_finish(struct fixture *f, struct fake_conn *fc,
                                       const struct scram_test_client *client, int expected)
{
    struct mqtt_packet a = auth_packet(MQTT_RC_CONTINUE_AUTHENTICATION, SCRAM, client->final);
    feed(f, fc, &a, expected);
    session_flush(f->mgr);
    struct mqtt_packet ack = next_sent(fc);
    assert_int_equal(ack.type, MQTT_CONNACK);
    return ack;
}

static void test_scram_exchange_sends_auth_then_connack_with_server_final_MQTT_4_12(void **state)
{
    struct fixture *f = *state;
    struct auth_passwd *pw = scram_users(f, "secret");
    session_set_auth(f->mgr, pw, NULL);
    struct scram_test_client client;
    struct fake_conn *fc = scram_start(f, "scr", 60, "alice", "secret", &client);
    /* Nothing exists before the exchange succeeds: no session record. */
    assert_int_equal(db_entries(f, "sessions"), 0);
    struct mqtt_packet ack = scram_finish(f, fc, &client, SESSION_OK);
    assert_int_equal(ack.u.connack.return_code, MQTT_RC_SUCCESS);
    /* [MQTT-4.12.0-5]: the method again, and the server's proof. */
    assert_bytes(ack.u.connack.props.authentication_method, SCRAM);
    assert_true(scram_server_final_ok(&client, ack.u.connack.props.authentication_data.data,
                                      ack.u.connack.props.authentication_data.len));
    assert_int_equal(fc->keepalive_s, 60);
    assert_int_equal(db_entries(f, "sessions"), 1);
    /* An accepted client works as any other. */
    assert_int_equal(subscribe5(f, fc, "a/b", 1, 0), 1);
    publish5(f, fc, "a/b", 0, 0, NULL, SESSION_OK);
    assert_publish(next_sent(fc), "a/b", "x", 0);
    gone(f, fc, SESSION_CLOSE_DISCONNECT);
    session_set_auth(f->mgr, NULL, NULL);
    auth_passwd_free(pw);
}

/* The ACL applies to the SCRAM identity; CONNECT's password is not looked
 * at (and a wrong one does not matter), its username must be the same. */
static void test_scram_identity_is_the_username_for_acls(void **state)
{
    struct fixture *f = *state;
    struct auth_passwd *pw = scram_users(f, "secret");
    char path[128], err[256];
    snprintf(path, sizeof(path), "%s/acl", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("user alice\ntopic readwrite alice/#\n", fp);
    fclose(fp);
    struct auth_acl *acl = NULL;
    assert_int_equal(auth_acl_load(path, &acl, err, sizeof(err)), AUTH_OK);
    session_set_auth(f->mgr, pw, acl);
    struct scram_test_client client;
    struct mqtt_packet p =
        auth_connect("scr", 0, SCRAM, scram_client_first(&client, "alice", "secret"));
    p.u.connect.has_username = true;
    p.u.connect.username = (struct mqtt_bytes){(const uint8_t *)"alice", 5};
    p.u.connect.has_password = true;
    p.u.connect.password = (struct mqtt_bytes){(const uint8_t *)"not it", 6};
    struct fake_conn *fc = scram_begin(f, &p, &client);
    assert_int_equal(scram_finish(f, fc, &client, SESSION_OK).u.connack.return_code, 0);
    assert_int_equal(subscribe5(f, fc, "alice/x", 0, 0), 0);
    assert_int_equal(subscribe5(f, fc, "bob/x", 0, 0), MQTT_RC_NOT_AUTHORIZED);
    gone(f, fc, SESSION_CLOSE_DISCONNECT);
    /* A CONNECT username that is not the SCRAM identity: refused. */
    p = auth_connect("scr", 0, SCRAM, scram_client_first(&client, "alice", "secret"));
    p.u.connect.has_username = true;
    p.u.connect.username = (struct mqtt_bytes){(const uint8_t *)"bob", 3};
    fc = connect5_with(f, &p, MQTT_RC_NOT_AUTHORIZED, false, NULL);
    gone(f, fc, SESSION_CLOSE_PROTOCOL);
    session_set_auth(f->mgr, NULL, NULL);
    auth_acl_free(acl);
    auth_passwd_free(pw);
}

/* Wrong password, unknown user, $6$ user: CONNACK 0x87, no session, no will. */
static void test_scram_failure_gets_0x87_and_creates_nothing(void **state)
{
    struct fixture *f = *state;
    struct auth_passwd *pw = scram_users(f, "secret");
    session_set_auth(f->mgr, pw, NULL);
    struct fake_conn *watcher = connect5(f, "watcher", true, 0, false);
    assert_int_equal(subscribe5(f, watcher, "will/#", 0, 0), 0);
    const char *tries[][2] = {{"alice", "wrong"}, {"nobody", "secret"}, {"dave", "legacy pass"}};
    for (size_t i = 0; i < 3; i++) {
        struct scram_test_client client;
        struct mqtt_packet p = auth_connect("victim", 60, SCRAM,
                                            scram_client_first(&client, tries[i][0], tries[i][1]));
        p.u.connect.has_will = true;
        p.u.connect.will_topic = (struct mqtt_bytes){(const uint8_t *)"will/t", 6};
        p.u.connect.will_payload = (struct mqtt_bytes){(const uint8_t *)"bye", 3};
        struct fake_conn *fc = scram_begin(f, &p, &client);
        struct mqtt_packet ack = scram_finish(f, fc, &client, SESSION_ERR_CONNECT_REFUSED);
        assert_int_equal(ack.u.connack.return_code, MQTT_RC_NOT_AUTHORIZED);
        /* The same answer whatever the reason (no user enumeration). */
        assert_bytes(ack.u.connack.props.authentication_data, "e=invalid-proof");
        gone(f, fc, SESSION_CLOSE_PROTOCOL);
        assert_int_equal(db_entries(f, "sessions"), 0);
        assert_int_equal(next_sent(watcher).type, 0); /* no will */
    }
    gone(f, watcher, SESSION_CLOSE_DISCONNECT);
    session_set_auth(f->mgr, NULL, NULL);
    auth_passwd_free(pw);
}

/* During the exchange only AUTH and DISCONNECT may come [MQTT-3.1.2-30];
 * AUTH keeps the CONNECT's method [MQTT-4.12.0-5] and reason 0x18
 * [MQTT-4.12.0-3]. Otherwise: CONNACK 0x82 Protocol Error. */
static void test_scram_exchange_protocol_errors_get_connack_0x82(void **state)
{
    struct fixture *f = *state;
    struct auth_passwd *pw = scram_users(f, "secret");
    session_set_auth(f->mgr, pw, NULL);
    for (int i = 0; i < 4; i++) {
        struct scram_test_client client;
        struct fake_conn *fc = scram_start(f, "scr", 0, "alice", "secret", &client);
        struct mqtt_packet bad =
            auth_packet(MQTT_RC_CONTINUE_AUTHENTICATION, "PLAIN", client.final);
        if (i == 1)
            bad = auth_packet(MQTT_RC_RE_AUTHENTICATE, SCRAM, client.final);
        if (i == 2)
            bad = connect5_packet("scr", true, 0);
        if (i == 3) {
            bad = (struct mqtt_packet){.type = MQTT_PUBLISH, .protocol_level = MQTT_PROTOCOL_V5};
            bad.u.publish.topic = (struct mqtt_bytes){(const uint8_t *)"t", 1};
        }
        feed(f, fc, &bad, SESSION_ERR_CONNECT_REFUSED);
        struct mqtt_packet ack = next_sent(fc);
        assert_int_equal(ack.type, MQTT_CONNACK);
        assert_int_equal(ack.u.connack.return_code, MQTT_RC_PROTOCOL_ERROR);
        gone(f, fc, SESSION_CLOSE_PROTOCOL);
    }
    /* A DISCONNECT ends it quietly. */
    struct scram_test_client client;
    struct fake_conn *fc = scram_start(f, "scr", 0, "alice", "secret", &client);
    struct mqtt_packet d = {.type = MQTT_DISCONNECT, .protocol_level = MQTT_PROTOCOL_V5};
    feed(f, fc, &d, SESSION_ERR_DISCONNECT);
    gone(f, fc, SESSION_CLOSE_DISCONNECT);
    assert_int_equal(db_entries(f, "sessions"), 0);
    session_set_auth(f->mgr, NULL, NULL);
    auth_passwd_free(pw);
}

/* No client-first-message, a malformed one, no password file. */
static void test_scram_without_what_it_needs_is_refused(void **state)
{
    struct fixture *f = *state;
    struct mqtt_packet p = auth_connect("scr", 0, SCRAM, "n,,n=alice,r=abc");
    struct fake_conn *fc = connect5_with(f, &p, MQTT_RC_BAD_AUTHENTICATION_METHOD, false, NULL);
    gone(f, fc, SESSION_CLOSE_PROTOCOL); /* no password file: no SCRAM */
    struct auth_passwd *pw = scram_users(f, "secret");
    session_set_auth(f->mgr, pw, NULL);
    p = auth_connect("scr", 0, SCRAM, NULL);
    fc = connect5_with(f, &p, MQTT_RC_NOT_AUTHORIZED, false, NULL);
    gone(f, fc, SESSION_CLOSE_PROTOCOL);
    p = auth_connect("scr", 0, SCRAM, "p=tls-unique,,n=alice,r=abc");
    fc = connect5_with(f, &p, MQTT_RC_NOT_AUTHORIZED, false, NULL);
    gone(f, fc, SESSION_CLOSE_PROTOCOL);
    session_set_auth(f->mgr, NULL, NULL);
    auth_passwd_free(pw);
}

/* A client that goes away mid-exchange, and a broker shutting down with one
 * in flight, leak nothing (ASan); a SIGHUP reload mid-exchange frees the set
 * the exchange started with, which keeps its own copy of the credentials. */
static void test_scram_exchange_ends_cleanly_on_every_path(void **state)
{
    struct fixture *f = *state;
    struct auth_passwd *pw = scram_users(f, "secret");
    session_set_auth(f->mgr, pw, NULL);
    struct scram_test_client client;
    struct fake_conn *fc = scram_start(f, "scr", 60, "alice", "secret", &client);
    gone(f, fc, SESSION_CLOSE_SOCKET);
    fc = scram_start(f, "scr", 60, "alice", "secret", &client);
    struct auth_passwd *fresh = scram_users(f, "other");
    session_set_auth(f->mgr, fresh, NULL);
    auth_passwd_free(pw);
    assert_int_equal(scram_finish(f, fc, &client, SESSION_OK).u.connack.return_code, 0);
    gone(f, fc, SESSION_CLOSE_DISCONNECT);
    fc = scram_start(f, "scr", 60, "alice", "other", &client);
    gone(f, fc, SESSION_CLOSE_SHUTDOWN);
    session_set_auth(f->mgr, NULL, NULL);
    auth_passwd_free(fresh);
}

/* Connects alice ("secret") through SCRAM; returns the connection. */
static struct fake_conn *scram_connect_alice(struct fixture *f, const char *id)
{
    struct scram_test_client client;
    struct fake_conn *fc = scram_start(f, id, 0, "alice", "secret", &client);
    assert_int_equal(scram_finish(f, fc, &client, SESSION_OK).u.connack.return_code, 0);
    return fc;
}

/* AUTH 0x19 with client-first; returns the server-first of the AUTH 0x18
 * answer into *client. */
static void reauth_begin(struct fixture *f, struct fake_conn *fc, const char *user,
                         const char *password, struct scram_test_client *client)
{
    struct mqtt_packet a =
        auth_packet(MQTT_RC_RE_AUTHENTICATE, SCRAM, scram_client_first(client, user, password));
    feed(f, fc, &a, SESSION_OK);
    struct mqtt_packet got = next_sent(fc);
    assert_int_equal(got.type, MQTT_AUTH);
    assert_int_equal(got.u.auth.reason_code, MQTT_RC_CONTINUE_AUTHENTICATION);
    assert_bytes(got.u.auth.props.authentication_method, SCRAM);
    scram_client_final(client, got.u.auth.props.authentication_data.data,
                       got.u.auth.props.authentication_data.len);
}

/* [4.12.1]: re-authentication ends in AUTH 0x00 with the server's proof;
 * a failed one is DISCONNECT 0x87 [MQTT-4.12.1-2]; another user cannot
 * take over the connection; the client may go on publishing meanwhile. */
static void test_scram_reauthentication_MQTT_4_12_1(void **state)
{
    struct fixture *f = *state;
    struct auth_passwd *pw = scram_users(f, "secret");
    session_set_auth(f->mgr, pw, NULL);
    struct fake_conn *fc = scram_connect_alice(f, "re");
    struct scram_test_client client;
    reauth_begin(f, fc, "alice", "secret", &client);
    assert_int_equal(subscribe5(f, fc, "a/b", 0, 0), 0); /* other packets go on meanwhile */
    struct mqtt_packet a = auth_packet(MQTT_RC_CONTINUE_AUTHENTICATION, SCRAM, client.final);
    feed(f, fc, &a, SESSION_OK);
    struct mqtt_packet got = next_sent(fc);
    assert_int_equal(got.type, MQTT_AUTH);
    assert_int_equal(got.u.auth.reason_code, MQTT_RC_SUCCESS);
    assert_true(scram_server_final_ok(&client, got.u.auth.props.authentication_data.data,
                                      got.u.auth.props.authentication_data.len));
    /* A wrong password: 0x87 (the server sends it as DISCONNECT). */
    reauth_begin(f, fc, "alice", "wrong", &client);
    a = auth_packet(MQTT_RC_CONTINUE_AUTHENTICATION, SCRAM, client.final);
    feed(f, fc, &a, SESSION_ERR_NOT_AUTHORIZED);
    assert_int_equal(session_error_reason(SESSION_ERR_NOT_AUTHORIZED), MQTT_RC_NOT_AUTHORIZED);
    gone(f, fc, SESSION_CLOSE_PROTOCOL);
    /* Another user, even with the right password, is refused at once. */
    fc = scram_connect_alice(f, "re");
    a = auth_packet(MQTT_RC_RE_AUTHENTICATE, SCRAM, scram_client_first(&client, "dave", "x"));
    feed(f, fc, &a, SESSION_ERR_NOT_AUTHORIZED);
    gone(f, fc, SESSION_CLOSE_PROTOCOL);
    /* Another method, 0x18 with no exchange running, 0x19 twice: protocol errors. */
    fc = scram_connect_alice(f, "re");
    a = auth_packet(MQTT_RC_RE_AUTHENTICATE, "PLAIN", "x");
    feed(f, fc, &a, SESSION_ERR_PROTOCOL);
    gone(f, fc, SESSION_CLOSE_PROTOCOL);
    fc = scram_connect_alice(f, "re");
    a = auth_packet(MQTT_RC_CONTINUE_AUTHENTICATION, SCRAM, "c=biws");
    feed(f, fc, &a, SESSION_ERR_PROTOCOL);
    gone(f, fc, SESSION_CLOSE_PROTOCOL);
    fc = scram_connect_alice(f, "re");
    reauth_begin(f, fc, "alice", "secret", &client);
    a = auth_packet(MQTT_RC_RE_AUTHENTICATE, SCRAM, client.first);
    feed(f, fc, &a, SESSION_ERR_PROTOCOL);
    gone(f, fc, SESSION_CLOSE_PROTOCOL);
    /* A client gone mid re-authentication leaks nothing (ASan). */
    fc = scram_connect_alice(f, "re");
    reauth_begin(f, fc, "alice", "secret", &client);
    gone(f, fc, SESSION_CLOSE_SOCKET);
    session_set_auth(f->mgr, NULL, NULL);
    auth_passwd_free(pw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_connack_carries_what_sol_allows_MQTT_3_2_2_3),
        T(test_keepalive_above_max_keepalive_becomes_server_keep_alive),
        T(test_authentication_method_gets_0x8c_MQTT_4_12_0_1),
        T(test_session_expiry_interval_ends_an_offline_session),
        T(test_session_past_its_expiry_is_not_resumed_before_a_tick),
        T(test_session_expiry_is_stored_and_enforced_after_a_restart),
        T(test_expiry_zero_ends_with_the_connection_and_stores_nothing),
        T(test_clean_start_discards_but_the_new_session_persists),
        T(test_mqtt311_sessions_map_to_never_and_v5_resumes_them),
        T(test_disconnect_changes_the_expiry_but_not_from_zero_MQTT_3_14_2_2),
        T(test_disconnect_with_reason_0x04_publishes_the_will),
        T(test_will_delay_waits_and_a_resumed_session_cancels_it_MQTT_3_1_3_9),
        T(test_will_goes_at_session_end_when_that_comes_first),
        T(test_client_over_receive_maximum_is_disconnected_MQTT_3_3_4_8),
        T(test_window_is_bounded_by_the_clients_receive_maximum_MQTT_3_3_4_9),
        T(test_publish_over_the_clients_maximum_packet_size_is_dropped_MQTT_3_1_2_25),
        T(test_inbound_topic_aliases_map_and_resolve),
        T(test_outbound_aliases_go_to_topics_sent_again),
        T(test_takeover_and_errors_send_one_disconnect_MQTT_3_14_2_1),
        T(test_publish_properties_are_forwarded_unchanged_MQTT_3_3_2_3),
        T(test_queued_message_keeps_properties_and_expiry_across_a_restart),
        T(test_expired_queued_message_is_dropped_MQTT_3_3_2_5),
        T(test_expired_retained_message_is_not_sent_and_is_removed),
        T(test_puback_reason_codes_no_subscribers_and_quota_MQTT_3_4_2_1),
        T(test_store_full_gets_puback_0x97_instead_of_a_close),
        T(test_payload_format_invalid_gets_0x99_MQTT_3_3_2_4),
        T(test_no_reason_string_when_problem_information_is_0_MQTT_3_1_2_29),
        T(test_no_local_skips_the_publishers_own_subscription_MQTT_3_8_3_3),
        T(test_retain_as_published_keeps_the_retain_flag_MQTT_3_3_1_12),
        T(test_retain_handling_0_1_2_MQTT_3_3_1_9),
        T(test_subscription_identifiers_on_delivery_MQTT_3_3_4_3),
        T(test_retained_on_subscribe_carries_the_subscriptions_identifier),
        T(test_suback_and_unsuback_reason_codes_MQTT_3_9_3_MQTT_3_11_3),
        T(test_will_properties_are_forwarded_and_its_expiry_starts_at_publication),
        T(test_wills_of_clients_connected_at_a_crash_are_published_after_restart),
        T(test_waiting_will_survives_a_restart_with_its_deadline),
        T(test_clock_behind_the_recorded_time_lengthens_no_deadline),
        T(test_the_tick_records_the_clock),
        T(test_scram_exchange_sends_auth_then_connack_with_server_final_MQTT_4_12),
        T(test_scram_identity_is_the_username_for_acls),
        T(test_scram_failure_gets_0x87_and_creates_nothing),
        T(test_scram_exchange_protocol_errors_get_connack_0x82),
        T(test_scram_without_what_it_needs_is_refused),
        T(test_scram_exchange_ends_cleanly_on_every_path),
        T(test_scram_reauthentication_MQTT_4_12_1),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
