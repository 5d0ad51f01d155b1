/*
 * test_commit_thread.c - the session manager with the storage thread
 * (commit.c, storage/committer.c) on a real LMDB store: acks leave only after
 * the thread committed what they acknowledge, also for packets that arrive
 * while a batch is in flight; a top-up that reads the store before the open
 * batch commits does not declare a queue drained; a SUBSCRIBE's retained
 * messages are read after the batch that set them commits; a batch in flight
 * that fails takes down what was built on it meanwhile.
 * The batch in flight stays in flight until the test collects it, so every
 * interleaving here is deterministic whatever the thread's speed.
 */
#define _GNU_SOURCE /* RTLD_NEXT, for disk_full.h */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sys/uio.h>

#include "mqtt.h"
#include "session.h"
#include "store.h"

#include "disk_full.h"
#include "session_fixture.h"

static int setup_thread_window(void **state, uint32_t window)
{
    struct fixture *f = new_fixture();
    if (f == NULL)
        return -1;
    f->config.max_inflight_messages = window;
    open_all(f);
    if (store_committer_start(f->store, NULL, NULL) != 0)
        return -1;
    *state = f;
    return 0;
}

/* The store's manual committer: in flight until a waiting collect commits it
 * here, so a test can make that commit fail (disk_full.h). */
static int setup_manual(void **state)
{
    struct fixture *f = new_fixture();
    if (f == NULL)
        return -1;
    open_all(f);
    if (store_committer_start_manual(f->store) != 0)
        return -1;
    *state = f;
    return 0;
}

static int setup_thread(void **state)
{
    return setup_thread_window(state, 100);
}

static int setup_thread_window2(void **state)
{
    return setup_thread_window(state, 2);
}

static void assert_ack(struct mqtt_packet p, uint8_t type, uint16_t id)
{
    assert_int_equal(p.type, type);
    assert_int_equal(p.u.ack.packet_id, id);
}

static void test_puback_leaves_only_after_the_thread_commits(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *sub = connect_client(f, "sub", false, false);
    subscribe(f, sub, "t", 1, 1);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish(f, pub, "t", "m1", 1, false, 1);
    assert_int_equal(session_commit(f->mgr), SESSION_COMMIT_STARTED);
    assert_int_equal(next_sent(pub).type, 0);     /* held: in flight */
    assert_publish(next_sent(sub), "t", "m1", 1); /* a QoS 1 delivery does not wait */
    /* The next turn, while the first batch is with the thread. */
    publish(f, pub, "t", "m2", 1, false, 2);
    assert_int_equal(session_commit(f->mgr), SESSION_COMMIT_STARTED); /* still the first */
    assert_int_equal(next_sent(pub).type, 0);
    assert_int_equal(session_commit_collect(f->mgr, true), 0);
    assert_ack(next_sent(pub), MQTT_PUBACK, 1);
    assert_int_equal(next_sent(pub).type, 0); /* m2 is in the open batch: not yet */
    assert_int_equal(db_entries(f, "queues"), 1);
    assert_int_equal(session_flush(f->mgr), 0);
    assert_ack(next_sent(pub), MQTT_PUBACK, 2);
    assert_int_equal(db_entries(f, "queues"), 2);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
}

/* A QoS 2 resend while the first copy's record is in flight: answered only
 * after that commit, and routed once. */
static void test_qos2_resend_during_flight_waits_and_routes_once(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *sub = connect_client(f, "sub", false, false);
    subscribe(f, sub, "t", 2, 2);
    struct fake_conn *pub = connect_client(f, "pub", false, false);
    publish(f, pub, "t", "once", 2, false, 9);
    assert_int_equal(session_commit(f->mgr), SESSION_COMMIT_STARTED);
    struct mqtt_packet again = {.type = MQTT_PUBLISH};
    again.u.publish.qos = 2;
    again.u.publish.dup = true;
    again.u.publish.packet_id = 9;
    again.u.publish.topic = (struct mqtt_bytes){(const uint8_t *)"t", 1};
    again.u.publish.payload = (struct mqtt_bytes){(const uint8_t *)"once", 4};
    feed(f, pub, &again, SESSION_OK);
    assert_int_equal(session_commit(f->mgr), SESSION_COMMIT_STARTED);
    assert_int_equal(next_sent(pub).type, 0);
    assert_int_equal(session_commit_collect(f->mgr, true), 0);
    assert_int_equal(session_flush(f->mgr), 0);
    assert_ack(next_sent(pub), MQTT_PUBREC, 9);
    assert_ack(next_sent(pub), MQTT_PUBREC, 9);
    assert_publish(next_sent(sub), "t", "once", 2);
    assert_int_equal(next_sent(sub).type, 0);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
}

/* Window 2. m3 is committed in the queue, m4 and m5 are in the open batch
 * when the subscriber's acks make room: the top-up reads m3 alone and must
 * not conclude the queue is empty, or m4 and m5 would wait for a message
 * that may never come. */
static void test_topup_before_commit_does_not_strand_new_entries(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *sub = connect_client(f, "sub", false, false);
    subscribe(f, sub, "t", 1, 1);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish(f, pub, "t", "m1", 1, false, 1);
    publish(f, pub, "t", "m2", 1, false, 2);
    publish(f, pub, "t", "m3", 1, false, 3);
    assert_int_equal(session_commit(f->mgr), SESSION_COMMIT_STARTED);
    assert_int_equal(session_commit_collect(f->mgr, true), 0);
    publish(f, pub, "t", "m4", 1, false, 4);
    publish(f, pub, "t", "m5", 1, false, 5);
    const char *want[] = {"m1", "m2", "m3", "m4", "m5"};
    size_t got = 0;
    for (int round = 0; round < 20 && got < 5; round++) {
        struct mqtt_packet p;
        while ((p = next_sent(sub)).type == MQTT_PUBLISH) {
            assert_true(got < 5);
            assert_publish(p, "t", want[got], 1);
            got++;
            send_ack(f, sub, MQTT_PUBACK, p.u.publish.packet_id);
        }
        assert_int_equal(p.type, 0);
        if (session_commit(f->mgr) == SESSION_COMMIT_STARTED)
            assert_int_equal(session_commit_collect(f->mgr, true), 0);
    }
    assert_int_equal(got, 5);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
}

/* A retained message set in the same batch as a SUBSCRIBE, while another
 * batch is in flight: the SUBSCRIBE's stream reads after *its* batch. */
static void test_subscribe_sees_retained_set_in_its_own_batch(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    struct fake_conn *sub = connect_client(f, "sub", true, false);
    publish(f, pub, "other", "x", 1, true, 1); /* QoS 1: its PUBACK makes the commit due */
    assert_int_equal(session_commit(f->mgr), SESSION_COMMIT_STARTED);
    publish(f, pub, "r", "kept", 1, true, 2);
    feed_subscribe(f, sub, MQTT_SUBSCRIBE, 7, "r", 0);
    assert_int_equal(session_commit(f->mgr), SESSION_COMMIT_STARTED);
    assert_int_equal(session_commit_collect(f->mgr, true), 0);
    assert_int_equal(session_flush(f->mgr), 0);
    struct mqtt_packet ack = next_sent(sub);
    assert_int_equal(ack.type, MQTT_SUBACK);
    struct mqtt_packet p = next_sent(sub);
    assert_publish(p, "r", "kept", 0);
    assert_true(p.u.publish.retain);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
}

/* c0's first session record is in flight when a second connection takes
 * the session over (nothing new to write: the record is "pending"), and that
 * batch then fails. The takeover's CONNACK, held meanwhile, must not leave:
 * the session it promised was never stored, and a SUBSCRIBE on that
 * connection would store a subscription without a session (fuzz_session
 * found it: store_check "subscription of 'c0' has no session"). */
static void test_failed_batch_in_flight_fails_what_was_built_on_it(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *first = new_conn(f);
    struct mqtt_packet p = connect_packet("c0", false);
    feed(f, first, &p, SESSION_OK);
    assert_int_equal(session_commit(f->mgr), SESSION_COMMIT_STARTED);
    struct fake_conn *second = new_conn(f);
    feed(f, second, &p, SESSION_OK); /* takes the session over */
    assert_int_equal(next_sent(second).type, 0);
    disk_is_full = true;
    assert_int_not_equal(session_commit_collect(f->mgr, true), 0);
    disk_is_full = false;
    assert_int_equal(next_sent(second).type, 0); /* no CONNACK: the session was never stored */
    assert_true(second->closed);
    /* The takeover's own records were built on it: they fail as well. */
    assert_int_equal(session_flush(f->mgr), STORE_ERR_FULL);
    assert_int_equal(next_sent(second).type, 0);
    assert_int_equal(store_check(f->store, NULL, NULL), 0);
    gone(f, first, SESSION_CLOSE_TAKEOVER);
    gone(f, second, SESSION_CLOSE_SOCKET);
    assert_int_equal(session_flush(f->mgr), 0);
    assert_int_equal(db_entries(f, "sessions"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_puback_leaves_only_after_the_thread_commits,
                                        setup_thread, teardown),
        cmocka_unit_test_setup_teardown(test_qos2_resend_during_flight_waits_and_routes_once,
                                        setup_thread, teardown),
        cmocka_unit_test_setup_teardown(test_topup_before_commit_does_not_strand_new_entries,
                                        setup_thread_window2, teardown),
        cmocka_unit_test_setup_teardown(test_subscribe_sees_retained_set_in_its_own_batch,
                                        setup_thread, teardown),
        cmocka_unit_test_setup_teardown(test_failed_batch_in_flight_fails_what_was_built_on_it,
                                        setup_manual, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
