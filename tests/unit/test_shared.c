/*
 * test_shared.c - shared subscriptions ($share/GROUP/FILTER, share.c) in the
 * session manager against a real LMDB store: round robin among connected
 * members, the group queue while every member is offline (durable across a
 * restart), members leaving, QoS 2 exactly once across a reconnect, the ACL's
 * READ gate per member, the name rules, no retained messages on subscribe
 * and Retain As Published on deliveries (live and from the group queue). The
 * recording sink and helpers are test_session.c's.
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "auth.h"
#include "disk_full.h"
#include "mqtt.h"
#include "session.h"
#include "store.h"

#include "session_fixture.h"

static void write_file(const char *dir, const char *name, const char *text, char *path,
                       size_t path_len)
{
    snprintf(path, path_len, "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void assert_store_consistent(struct fixture *f)
{
    assert_int_equal(store_check(f->store, NULL, NULL), 0);
}

static struct fake_conn *connect_as(struct fixture *f, const char *id, bool clean, const char *user)
{
    struct fake_conn *fc = new_conn(f);
    struct mqtt_packet p = connect_packet(id, clean);
    p.u.connect.has_username = true;
    p.u.connect.username = (struct mqtt_bytes){(const uint8_t *)user, strlen(user)};
    feed(f, fc, &p, SESSION_OK);
    session_flush(f->mgr);
    assert_int_equal(next_sent(fc).type, MQTT_CONNACK);
    return fc;
}

/* Reads every PUBLISH waiting on fc, acknowledging each (PUBACK, or PUBREC
 * then PUBCOMP after the PUBREL); returns how many. Payloads are "N": seen[N]
 * counts them. */
static int drain(struct fixture *f, struct fake_conn *fc, int *seen, int seen_len)
{
    int n = 0;
    for (int rounds = 0; rounds < 100; rounds++) {
        struct mqtt_packet p = next_sent(fc);
        if (p.type == 0) {
            session_flush(f->mgr);
            p = next_sent(fc);
            if (p.type == 0)
                return n;
        }
        if (p.type == MQTT_PUBREL) {
            send_ack(f, fc, MQTT_PUBCOMP, p.u.ack.packet_id);
            continue;
        }
        assert_int_equal(p.type, MQTT_PUBLISH);
        char num[16] = {0};
        memcpy(num, p.u.publish.payload.data,
               p.u.publish.payload.len < 15 ? p.u.publish.payload.len : 15);
        int i = atoi(num);
        if (seen && i >= 0 && i < seen_len)
            seen[i]++;
        n++;
        if (p.u.publish.qos == 1)
            send_ack(f, fc, MQTT_PUBACK, p.u.publish.packet_id);
        else if (p.u.publish.qos == 2)
            send_ack(f, fc, MQTT_PUBREC, p.u.publish.packet_id);
    }
    fail_msg("drain did not settle");
    return n;
}

static void publish_numbered(struct fixture *f, struct fake_conn *pub, const char *topic, int from,
                             int count, uint8_t qos)
{
    for (int i = from; i < from + count; i++) {
        char payload[16];
        snprintf(payload, sizeof(payload), "%d", i);
        publish(f, pub, topic, payload, qos, false, (uint16_t)(100 + i));
        session_flush(f->mgr);
        struct mqtt_packet ack = next_sent(pub);
        if (qos == 1)
            assert_int_equal(ack.type, MQTT_PUBACK);
        if (qos == 2) {
            assert_int_equal(ack.type, MQTT_PUBREC);
            send_ack(f, pub, MQTT_PUBREL, ack.u.ack.packet_id);
            session_flush(f->mgr);
            assert_int_equal(next_sent(pub).type, MQTT_PUBCOMP);
        }
    }
}

/* ---- MQTT 5 members ---- */

#define OPT_RAP 0x08 /* Retain As Published in a SUBSCRIBE's options byte */

/* An MQTT 5 connection of id (session expiry: never, for clean 0) after
 * its CONNACK; present: the expected Session Present flag. */
static struct fake_conn *connect_v5(struct fixture *f, const char *id, bool clean, bool present)
{
    struct mqtt_packet p = connect_packet(id, clean);
    p.protocol_level = MQTT_PROTOCOL_V5;
    p.u.connect.protocol_level = MQTT_PROTOCOL_V5;
    if (!clean) {
        p.u.connect.props.present |= MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY_INTERVAL);
        p.u.connect.props.session_expiry_interval_s = UINT32_MAX;
    }
    struct fake_conn *fc = new_conn(f);
    fc->level = MQTT_PROTOCOL_V5;
    feed(f, fc, &p, SESSION_OK);
    session_flush(f->mgr);
    struct mqtt_packet ack = next_sent(fc);
    assert_int_equal(ack.type, MQTT_CONNACK);
    assert_int_equal(ack.u.connack.return_code, 0);
    assert_int_equal(ack.u.connack.session_present, present);
    return fc;
}

/* MQTT 5 SUBSCRIBE of one filter with an options byte (QoS | OPT_RAP),
 * through the codec; returns the SUBACK's reason code after the commit. */
static uint8_t subscribe_v5(struct fixture *f, struct fake_conn *fc, const char *filter,
                            uint8_t options)
{
    struct mqtt_topic_entry e = {{(const uint8_t *)filter, strlen(filter)}, options & 3};
    struct mqtt_subscription_options o = {.retain_as_published = (options & OPT_RAP) != 0};
    struct mqtt_packet p = {.type = MQTT_SUBSCRIBE, .protocol_level = MQTT_PROTOCOL_V5};
    p.u.subscribe.packet_id = 9;
    p.u.subscribe.count = 1;
    p.u.subscribe.entries = &e;
    p.u.subscribe.options = &o;
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

/* The next PUBLISH on fc (after a flush if none is waiting), acknowledged
 * when QoS 1. */
static struct mqtt_packet next_publish_acked(struct fixture *f, struct fake_conn *fc)
{
    struct mqtt_packet p = next_sent(fc);
    if (p.type == 0) {
        session_flush(f->mgr);
        p = next_sent(fc);
    }
    assert_int_equal(p.type, MQTT_PUBLISH);
    if (p.u.publish.qos == 1)
        send_ack(f, fc, MQTT_PUBACK, p.u.publish.packet_id);
    return p;
}

/* ---- Tests ---- */

static void test_shared_group_names_follow_MQTT_4_8_2(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *c = connect_client(f, "names", true, false);
    subscribe(f, c, "$share/g/a/+/c", 1, 1);
    subscribe(f, c, "$share/g/#", 2, 2);
    subscribe(f, c, "$share/+/a", 1, MQTT_SUBACK_FAILURE);  /* wildcard GROUP */
    subscribe(f, c, "$share/g#/a", 1, MQTT_SUBACK_FAILURE); /* wildcard in GROUP */
    subscribe(f, c, "$share//a", 1, MQTT_SUBACK_FAILURE);   /* empty GROUP */
    subscribe(f, c, "$share/g", 1, MQTT_SUBACK_FAILURE);    /* no FILTER */
    subscribe(f, c, "$share/g/", 1, MQTT_SUBACK_FAILURE);   /* empty FILTER */
    subscribe(f, c, "$share/g/a#", 1, MQTT_SUBACK_FAILURE); /* bad FILTER */
    gone(f, c, SESSION_CLOSE_DISCONNECT);
}

static void test_shared_round_robin_gives_each_message_to_one_member(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *m[3];
    const char *ids[3] = {"m0", "m1", "m2"};
    for (int i = 0; i < 3; i++) {
        m[i] = connect_client(f, ids[i], true, false);
        subscribe(f, m[i], "$share/work/jobs/+", 1, 1);
    }
    struct fake_conn *plain = connect_client(f, "plain", true, false);
    subscribe(f, plain, "jobs/#", 1, 1);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish_numbered(f, pub, "jobs/a", 0, 30, 1);
    int seen[30] = {0}, all[30] = {0};
    for (int i = 0; i < 3; i++)
        assert_int_equal(drain(f, m[i], seen, 30), 10); /* exact thirds: round robin */
    assert_int_equal(drain(f, plain, all, 30), 30);     /* a plain subscriber gets all */
    for (int i = 0; i < 30; i++) {
        assert_int_equal(seen[i], 1); /* to exactly one member */
        assert_int_equal(all[i], 1);
    }
    for (int i = 0; i < 3; i++)
        gone(f, m[i], SESSION_CLOSE_DISCONNECT);
    gone(f, plain, SESSION_CLOSE_DISCONNECT);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
}

static void test_shared_two_groups_each_get_a_copy(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *a = connect_client(f, "ga", true, false);
    struct fake_conn *b = connect_client(f, "gb", true, false);
    subscribe(f, a, "$share/one/t", 1, 1);
    subscribe(f, b, "$share/two/t", 1, 1);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish_numbered(f, pub, "t", 0, 4, 1);
    assert_int_equal(drain(f, a, NULL, 0), 4);
    assert_int_equal(drain(f, b, NULL, 0), 4);
    gone(f, a, SESSION_CLOSE_DISCONNECT);
    gone(f, b, SESSION_CLOSE_DISCONNECT);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
}

static void test_shared_subscription_gets_no_retained_messages(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish(f, pub, "r/t", "kept", 1, true, 5);
    session_flush(f->mgr);
    assert_int_equal(next_sent(pub).type, MQTT_PUBACK);
    struct fake_conn *c = connect_client(f, "sharer", true, false);
    subscribe(f, c, "$share/g/r/#", 1, 1);
    session_flush(f->mgr);
    assert_int_equal(next_sent(c).type, 0); /* spec 4.8.2: not on a shared subscription */
    subscribe(f, c, "r/#", 1, 1);
    assert_publish(next_sent(c), "r/t", "kept", 1); /* a plain one still gets it */
    gone(f, c, SESSION_CLOSE_DISCONNECT);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
}

/* Every member offline: the group's messages wait in its store queue (the
 * PUBACK after the commit that holds them), and the first member to connect
 * takes all of them; the other gets none. */
static void test_shared_offline_group_queue_goes_to_first_member_to_connect(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *a = connect_client(f, "pa", false, false);
    struct fake_conn *b = connect_client(f, "pb", false, false);
    subscribe(f, a, "$share/g/q", 1, 1);
    subscribe(f, b, "$share/g/q", 1, 1);
    gone(f, a, SESSION_CLOSE_DISCONNECT);
    gone(f, b, SESSION_CLOSE_DISCONNECT);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish(f, pub, "q", "0", 1, false, 1);
    assert_int_equal(next_sent(pub).type, 0); /* held behind the group queue's commit */
    session_flush(f->mgr);
    assert_int_equal(next_sent(pub).type, MQTT_PUBACK);
    publish_numbered(f, pub, "q", 1, 49, 1);
    assert_int_equal(db_entries(f, "groupq"), 50);
    assert_int_equal(db_entries(f, "queues"), 0);
    assert_store_consistent(f);

    b = connect_client(f, "pb", false, true);
    int seen[50] = {0};
    assert_int_equal(drain(f, b, seen, 50), 50); /* window 20: taken as b acknowledges */
    for (int i = 0; i < 50; i++)
        assert_int_equal(seen[i], 1);
    a = connect_client(f, "pa", false, true);
    assert_int_equal(drain(f, a, NULL, 0), 0);
    session_flush(f->mgr);
    assert_int_equal(db_entries(f, "groupq"), 0);
    assert_int_equal(db_entries(f, "messages"), 0);
    assert_store_consistent(f);
    gone(f, a, SESSION_CLOSE_DISCONNECT);
    gone(f, b, SESSION_CLOSE_DISCONNECT);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
}

static void test_shared_group_queue_survives_a_restart(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *a = connect_client(f, "ra", false, false);
    subscribe(f, a, "$share/g/q", 2, 2);
    gone(f, a, SESSION_CLOSE_DISCONNECT);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish_numbered(f, pub, "q", 0, 5, 2);
    publish_numbered(f, pub, "q", 5, 5, 0); /* QoS 0 is not queued for offline members */
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    close_all(f);
    open_all(f);
    assert_int_equal(db_entries(f, "groupq"), 5);
    a = connect_client(f, "ra", false, true);
    int seen[10] = {0};
    assert_int_equal(drain(f, a, seen, 10), 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(seen[i], 1);
    session_flush(f->mgr);
    assert_int_equal(db_entries(f, "groupq"), 0);
    assert_store_consistent(f);
    gone(f, a, SESSION_CLOSE_DISCONNECT);
}

static void test_shared_member_that_unsubscribes_leaves_the_group(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *a = connect_client(f, "la", true, false);
    struct fake_conn *b = connect_client(f, "lb", true, false);
    subscribe(f, a, "$share/g/t", 1, 1);
    subscribe(f, b, "$share/g/t", 1, 1);
    struct mqtt_topic_entry e = {{(const uint8_t *)"$share/g/t", 10}, 0};
    struct mqtt_packet un = {.type = MQTT_UNSUBSCRIBE};
    un.u.subscribe.packet_id = 9;
    un.u.subscribe.count = 1;
    un.u.subscribe.entries = &e;
    uint8_t buf[64];
    size_t n = 0, used = 0;
    assert_int_equal(mqtt_encode(&un, buf, sizeof(buf), &n), MQTT_OK);
    struct mqtt_packet decoded;
    assert_int_equal(mqtt_decode_stream(buf, n, 0, &decoded, &used), MQTT_OK);
    feed(f, a, &decoded, SESSION_OK);
    session_flush(f->mgr);
    assert_int_equal(next_sent(a).type, MQTT_UNSUBACK);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish_numbered(f, pub, "t", 0, 6, 1);
    assert_int_equal(drain(f, a, NULL, 0), 0);
    assert_int_equal(drain(f, b, NULL, 0), 6);
    gone(f, a, SESSION_CLOSE_DISCONNECT);
    gone(f, b, SESSION_CLOSE_DISCONNECT);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
}

/* The last member's end (here: expiry) ends the group and deletes its
 * queued messages with it, in the store too. */
static void test_shared_group_ends_with_its_last_member_and_its_queue_goes(void **state)
{
    struct fixture *f = *state;
    close_all(f);
    f->config.persistent_client_expiration_s = 60;
    open_all(f);
    struct fake_conn *a = connect_client(f, "xa", false, false);
    subscribe(f, a, "$share/g/t", 1, 1);
    gone(f, a, SESSION_CLOSE_DISCONNECT);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish_numbered(f, pub, "t", 0, 3, 1);
    assert_int_equal(db_entries(f, "groupq"), 3);
    assert_int_equal(session_expire(f->mgr, (uint64_t)time(NULL) + 120), 1);
    session_flush(f->mgr);
    assert_int_equal(db_entries(f, "groupq"), 0);
    assert_int_equal(db_entries(f, "messages"), 0);
    assert_store_consistent(f);
    /* A new member of the same name starts an empty group. */
    a = connect_client(f, "xa", false, false);
    subscribe(f, a, "$share/g/t", 1, 1);
    assert_int_equal(drain(f, a, NULL, 0), 0);
    gone(f, a, SESSION_CLOSE_DISCONNECT);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
}

/* A QoS 2 message sent to a member stays that member's: after the member
 * reconnects it is resent to it (DUP), never to another member. */
static void test_shared_qos2_stays_with_its_member_across_a_reconnect(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *a = connect_client(f, "qa", false, false);
    struct fake_conn *b = connect_client(f, "qb", false, false);
    subscribe(f, a, "$share/g/t", 2, 2);
    subscribe(f, b, "$share/g/t", 2, 2);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish_numbered(f, pub, "t", 0, 2, 2);
    /* One each; find who got message 0. */
    struct mqtt_packet pa = next_sent(a), pb = next_sent(b);
    assert_int_equal(pa.type, MQTT_PUBLISH);
    assert_int_equal(pb.type, MQTT_PUBLISH);
    struct fake_conn *holder = pa.u.publish.payload.data[0] == '0' ? a : b;
    struct fake_conn *other = holder == a ? b : a;
    const char *holder_id = holder == a ? "qa" : "qb";
    uint16_t other_id = (holder == a ? pb : pa).u.publish.packet_id;
    send_ack(f, other, MQTT_PUBREC, other_id);
    session_flush(f->mgr);
    assert_int_equal(next_sent(other).type, MQTT_PUBREL);
    send_ack(f, other, MQTT_PUBCOMP, other_id);
    gone(f, holder, SESSION_CLOSE_SOCKET); /* no PUBREC for message 0 */
    session_flush(f->mgr);
    publish_numbered(f, pub, "t", 2, 3, 2); /* all to the connected member */
    int seen_other[8] = {0};
    assert_int_equal(drain(f, other, seen_other, 8), 3);
    assert_int_equal(seen_other[0], 0);
    holder = connect_client(f, holder_id, false, true);
    struct mqtt_packet again = next_sent(holder);
    if (again.type == 0) {
        session_flush(f->mgr);
        again = next_sent(holder);
    }
    assert_publish(again, "t", "0", 2);
    assert_true(again.u.publish.dup);
    send_ack(f, holder, MQTT_PUBREC, again.u.publish.packet_id);
    session_flush(f->mgr);
    assert_int_equal(drain(f, holder, NULL, 0), 0); /* the PUBREL, nothing else */
    assert_int_equal(drain(f, other, seen_other, 8), 0);
    assert_store_consistent(f);
    gone(f, holder, SESSION_CLOSE_DISCONNECT);
    gone(f, other, SESSION_CLOSE_DISCONNECT);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
}

/* The READ gate per member: a member whose user may not read the topic (the
 * ACL changed after it subscribed, as on SIGHUP) is skipped; its turn goes
 * to the next member. */
static void test_shared_read_gate_skips_members_that_may_not_read(void **state)
{
    struct fixture *f = *state;
    char path[256], err[256];
    write_file(f->dir, "acl",
               "user alice\ntopic readwrite t/#\n"
               "user bob\ntopic readwrite other/#\n"
               "user pub\ntopic write t/#\n",
               path, sizeof(path));
    struct auth_acl *acl = NULL;
    assert_int_equal(auth_acl_load(path, &acl, err, sizeof(err)), 0);
    struct fake_conn *a = connect_as(f, "alice-1", true, "alice");
    struct fake_conn *b = connect_as(f, "bob-1", true, "bob");
    subscribe(f, a, "$share/g/t/x", 1, 1);
    subscribe(f, b, "$share/g/t/x", 1, 1);
    session_set_auth(f->mgr, NULL, acl); /* now bob may not read t/x */
    struct fake_conn *pub = connect_as(f, "pub-1", true, "pub");
    publish_numbered(f, pub, "t/x", 0, 6, 1);
    assert_int_equal(drain(f, a, NULL, 0), 6);
    assert_int_equal(drain(f, b, NULL, 0), 0);
    gone(f, a, SESSION_CLOSE_DISCONNECT);
    gone(f, b, SESSION_CLOSE_DISCONNECT);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    session_set_auth(f->mgr, NULL, NULL);
    auth_acl_free(acl);
}

/* A member that connects takes queued messages, and new messages keep going
 * round robin to everyone connected meanwhile: none is lost or doubled. */
static void test_shared_backlog_and_live_messages_mix_without_loss(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *a = connect_client(f, "ma", false, false);
    struct fake_conn *b = connect_client(f, "mb", true, false);
    subscribe(f, a, "$share/g/t", 1, 1);
    gone(f, a, SESSION_CLOSE_DISCONNECT);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish_numbered(f, pub, "t", 0, 30, 1); /* queued: the only member is offline */
    subscribe(f, b, "$share/g/t", 1, 1);     /* b joins: takes the backlog */
    a = connect_client(f, "ma", false, true);
    publish_numbered(f, pub, "t", 30, 10, 1);
    int seen[40] = {0};
    int got = 0;
    for (int round = 0; round < 10; round++)
        got += drain(f, a, seen, 40) + drain(f, b, seen, 40);
    assert_int_equal(got, 40);
    for (int i = 0; i < 40; i++)
        assert_int_equal(seen[i], 1);
    session_flush(f->mgr);
    assert_int_equal(db_entries(f, "groupq"), 0);
    assert_store_consistent(f);
    gone(f, a, SESSION_CLOSE_DISCONNECT);
    gone(f, b, SESSION_CLOSE_DISCONNECT);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
}

/* Memory follows the store: a commit that fails while a member takes from
 * the group queue writes nothing, so the group reads its queue again; the
 * member (closed: its QoS 2 PUBLISH was held behind that commit) gets every
 * queued message exactly once after it reconnects. */
static void test_shared_failed_commit_while_taking_from_the_queue_loses_nothing(void **state)
{
    struct fixture *f = *state;
    close_all(f);
    f->config.max_inflight_messages = 1; /* one message taken per commit */
    open_all(f);
    struct fake_conn *a = connect_client(f, "fa", false, false);
    subscribe(f, a, "$share/g/t", 2, 2);
    gone(f, a, SESSION_CLOSE_DISCONNECT);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish_numbered(f, pub, "t", 0, 5, 2);
    a = connect_client(f, "fa", false, true);
    session_flush(f->mgr);
    struct mqtt_packet p = next_sent(a);
    assert_publish(p, "t", "0", 2);
    send_ack(f, a, MQTT_PUBREC, p.u.publish.packet_id);
    session_flush(f->mgr);
    assert_int_equal(next_sent(a).type, MQTT_PUBREL);
    send_ack(f, a, MQTT_PUBCOMP, p.u.publish.packet_id); /* room: message 1 is taken next */
    disk_is_full = true;
    session_flush(f->mgr);
    disk_is_full = false;
    assert_true(a->closed);
    assert_int_equal(next_sent(a).type, 0); /* message 1's PUBLISH never left */
    gone(f, a, SESSION_CLOSE_PROTOCOL);
    session_flush(f->mgr);
    assert_int_equal(db_entries(f, "groupq"), 4);
    a = connect_client(f, "fa", false, true);
    int seen[5] = {0};
    assert_int_equal(drain(f, a, seen, 5), 4);
    assert_int_equal(seen[0], 0);
    for (int i = 1; i < 5; i++)
        assert_int_equal(seen[i], 1);
    session_flush(f->mgr);
    assert_int_equal(db_entries(f, "groupq"), 0);
    assert_store_consistent(f);
    gone(f, a, SESSION_CLOSE_DISCONNECT);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
}

/* A store written before group queues (no groupq database: the 8 databases
 * of schema 1 as today's main writes them, copied record by record with
 * mdb_dump / mdb_load) opens read-only with no group queues, and read-write
 * with groupq added, its sessions and queues intact, without a schema
 * change. */
static void test_shared_store_without_groupq_opens_and_gains_it(void **state)
{
    struct fixture *f = *state;
    if (access("/usr/bin/mdb_load", X_OK) != 0 || access("/usr/bin/mdb_dump", X_OK) != 0)
        skip();
    struct fake_conn *sub = connect_client(f, "old-sub", false, false);
    subscribe(f, sub, "old/t", 1, 1);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish_numbered(f, pub, "old/t", 0, 3, 1);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    close_all(f);

    char old[128], cmd[512];
    snprintf(old, sizeof(old), "%s/old", f->dir);
    assert_int_equal(mkdir(old, 0700), 0);
    const char *dbs[] = {"meta",     "sessions", "subs",   "retained",
                         "messages", "refs",     "queues", "qos2in"};
    for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
        snprintf(cmd, sizeof(cmd), "/usr/bin/mdb_dump -s %s '%s' | /usr/bin/mdb_load -s %s '%s'",
                 dbs[i], f->dir, dbs[i], old);
        assert_int_equal(system(cmd), 0);
    }
    snprintf(cmd, sizeof(cmd), "/usr/bin/mdb_dump -s groupq '%s' >/dev/null 2>&1", old);
    assert_int_not_equal(system(cmd), 0); /* really an older store */

    struct store_options opts;
    store_options_init(&opts);
    opts.dir = old;
    opts.read_only = true; /* solctl on an older store, before any broker opened it */
    char err[256];
    assert_int_equal(store_open(&opts, &f->store, err, sizeof(err)), 0);
    assert_int_equal(db_entries(f, "groupq"), 0);
    assert_int_equal(db_entries(f, "queues"), 3);
    assert_store_consistent(f);
    struct store_bytes any = {(const uint8_t *)"$share/g/t", 10};
    assert_int_equal(store_group_queue_read(f->store, any, 0, 10, NULL, NULL), 0);
    store_close(f->store);

    strcpy(f->dir + strlen(f->dir), "/old"); /* the broker on the older store */
    open_all(f);
    assert_int_equal(db_entries(f, "groupq"), 0);
    sub = connect_client(f, "old-sub", false, true);
    assert_int_equal(drain(f, sub, NULL, 0), 3);
    subscribe(f, sub, "$share/g/old/t", 1, 1);
    gone(f, sub, SESSION_CLOSE_DISCONNECT);
    pub = connect_client(f, "pub", true, false);
    publish_numbered(f, pub, "old/t", 3, 2, 1);
    assert_int_equal(db_entries(f, "groupq"), 2);
    assert_store_consistent(f);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    close_all(f);
    f->dir[strlen(f->dir) - 4] = '\0'; /* teardown removes the whole temp dir */
    open_all(f);
}

/* Retain As Published applies to a shared subscription as to any other
 * (MQTT 5 3.8.3.1: "Application Messages forwarded using this subscription
 * keep the RETAIN flag they were published with"; 4.8.2 only keeps retained
 * messages from being sent when a shared subscription is made; Mosquitto 2
 * does the same): a live delivery through a member whose subscription has
 * it carries RETAIN 1 for a message published retained, one without it
 * RETAIN 0. */
static void test_shared_retain_as_published_keeps_the_retain_flag(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *rap = connect_v5(f, "rap", true, false);
    struct fake_conn *plain = connect_v5(f, "plain", true, false);
    assert_int_equal(subscribe_v5(f, rap, "$share/one/ret/#", 1 | OPT_RAP), 1);
    assert_int_equal(subscribe_v5(f, plain, "$share/two/ret/#", 1), 1);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish(f, pub, "ret/t", "kept", 1, true, 1);
    publish(f, pub, "ret/t", "live", 1, false, 2);
    session_flush(f->mgr);
    struct mqtt_packet p = next_publish_acked(f, rap);
    assert_publish(p, "ret/t", "kept", 1);
    assert_true(p.u.publish.retain);
    p = next_publish_acked(f, rap);
    assert_publish(p, "ret/t", "live", 1);
    assert_false(p.u.publish.retain);
    p = next_publish_acked(f, plain);
    assert_publish(p, "ret/t", "kept", 1);
    assert_false(p.u.publish.retain); /* [MQTT-3.3.1-13] */
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    gone(f, rap, SESSION_CLOSE_DISCONNECT);
    gone(f, plain, SESSION_CLOSE_DISCONNECT);
}

/* A message that waited in the group queue keeps the RETAIN it was
 * published with, across a restart, for the member that takes it: RETAIN 1
 * to a member with Retain As Published, 0 to one without. */
static void test_shared_group_queue_keeps_the_published_retain_flag(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *a = connect_v5(f, "qa", false, false);
    struct fake_conn *b = connect_v5(f, "qb", false, false);
    assert_int_equal(subscribe_v5(f, a, "$share/one/q", 1 | OPT_RAP), 1);
    assert_int_equal(subscribe_v5(f, b, "$share/two/q", 1), 1);
    gone(f, a, SESSION_CLOSE_DISCONNECT);
    gone(f, b, SESSION_CLOSE_DISCONNECT);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish(f, pub, "q", "kept", 1, true, 1);
    publish(f, pub, "q", "live", 1, false, 2);
    session_flush(f->mgr);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    assert_int_equal(db_entries(f, "groupq"), 4);
    close_all(f);
    open_all(f);
    a = connect_v5(f, "qa", false, true);
    struct mqtt_packet p = next_publish_acked(f, a);
    assert_publish(p, "q", "kept", 1);
    assert_true(p.u.publish.retain);
    p = next_publish_acked(f, a);
    assert_publish(p, "q", "live", 1);
    assert_false(p.u.publish.retain);
    b = connect_v5(f, "qb", false, true);
    p = next_publish_acked(f, b);
    assert_publish(p, "q", "kept", 1);
    assert_false(p.u.publish.retain);
    session_flush(f->mgr);
    assert_store_consistent(f);
    gone(f, a, SESSION_CLOSE_DISCONNECT);
    gone(f, b, SESSION_CLOSE_DISCONNECT);
}

/* Reopens the manager on the same store with shared subscriptions on or off
 * (the directive shared_subscriptions). */
static void reopen_sharing(struct fixture *f, bool is_on)
{
    close_all(f);
    f->config.shared_subscription_available = is_on;
    open_all(f);
}

/* shared_subscriptions false: CONNACK says Shared Subscription Available 0;
 * a "$share/" filter gets 0x9E from an MQTT 5 SUBSCRIBE (even with No Local,
 * which is then no protocol error) and 0x80 from 3.1.1, the other filters of
 * the packet are granted. */
static void test_shared_off_refuses_share_filters_0x9E_and_0x80(void **state)
{
    struct fixture *f = *state;
    reopen_sharing(f, false);
    struct mqtt_packet p = connect_packet("v5", true);
    p.protocol_level = MQTT_PROTOCOL_V5;
    p.u.connect.protocol_level = MQTT_PROTOCOL_V5;
    struct fake_conn *v5 = new_conn(f);
    v5->level = MQTT_PROTOCOL_V5;
    feed(f, v5, &p, SESSION_OK);
    session_flush(f->mgr);
    struct mqtt_packet ack = next_sent(v5);
    assert_int_equal(ack.type, MQTT_CONNACK);
    assert_true(mqtt_properties_has(&ack.u.connack.props, MQTT_PROP_SHARED_SUBSCRIPTION_AVAILABLE));
    assert_int_equal(ack.u.connack.props.shared_subscription_available, 0);
    assert_int_equal(subscribe_v5(f, v5, "$share/g/t", 1),
                     MQTT_RC_SHARED_SUBSCRIPTIONS_NOT_SUPPORTED);
    assert_int_equal(subscribe_v5(f, v5, "$share/g/t", 1 | 0x04),
                     MQTT_RC_SHARED_SUBSCRIPTIONS_NOT_SUPPORTED); /* No Local */
    assert_int_equal(subscribe_v5(f, v5, "t", 1), 1);
    struct fake_conn *v3 = connect_client(f, "v3", true, false);
    subscribe(f, v3, "$share/g/t", 1, MQTT_SUBACK_FAILURE);
    subscribe(f, v3, "t", 1, 1);
    gone(f, v5, SESSION_CLOSE_DISCONNECT);
    gone(f, v3, SESSION_CLOSE_DISCONNECT);
}

/* Stored shared subscriptions and their group queue survive a start with
 * shared_subscriptions false untouched: nothing is routed to the group
 * (a publish only it would match has no subscriber) and its member gets
 * nothing from the queue; back on, the member gets every queued message. */
static void test_shared_off_keeps_stored_groups_and_queues_for_later(void **state)
{
    struct fixture *f = *state;
    struct fake_conn *a = connect_client(f, "ka", false, false);
    subscribe(f, a, "$share/g/k", 1, 1);
    gone(f, a, SESSION_CLOSE_DISCONNECT);
    struct fake_conn *pub = connect_client(f, "pub", true, false);
    publish_numbered(f, pub, "k", 0, 5, 1);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);
    assert_int_equal(db_entries(f, "groupq"), 5);

    reopen_sharing(f, false);
    a = connect_client(f, "ka", false, true);
    pub = connect_client(f, "pub", true, false);
    publish_numbered(f, pub, "k", 5, 3, 1); /* nobody subscribed: not queued */
    assert_int_equal(drain(f, a, NULL, 0), 0);
    session_flush(f->mgr);
    assert_int_equal(db_entries(f, "groupq"), 5);
    assert_int_equal(db_entries(f, "subs"), 1);
    assert_store_consistent(f);
    gone(f, a, SESSION_CLOSE_DISCONNECT);
    gone(f, pub, SESSION_CLOSE_DISCONNECT);

    reopen_sharing(f, true);
    a = connect_client(f, "ka", false, true);
    int seen[8] = {0};
    assert_int_equal(drain(f, a, seen, 8), 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(seen[i], 1);
    session_flush(f->mgr);
    assert_int_equal(db_entries(f, "groupq"), 0);
    assert_store_consistent(f);
    gone(f, a, SESSION_CLOSE_DISCONNECT);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_shared_group_names_follow_MQTT_4_8_2),
        T(test_shared_round_robin_gives_each_message_to_one_member),
        T(test_shared_two_groups_each_get_a_copy),
        T(test_shared_subscription_gets_no_retained_messages),
        T(test_shared_offline_group_queue_goes_to_first_member_to_connect),
        T(test_shared_group_queue_survives_a_restart),
        T(test_shared_member_that_unsubscribes_leaves_the_group),
        T(test_shared_group_ends_with_its_last_member_and_its_queue_goes),
        T(test_shared_qos2_stays_with_its_member_across_a_reconnect),
        T(test_shared_read_gate_skips_members_that_may_not_read),
        T(test_shared_backlog_and_live_messages_mix_without_loss),
        T(test_shared_failed_commit_while_taking_from_the_queue_loses_nothing),
        T(test_shared_store_without_groupq_opens_and_gains_it),
        T(test_shared_retain_as_published_keeps_the_retain_flag),
        T(test_shared_group_queue_keeps_the_published_retain_flag),
        T(test_shared_off_refuses_share_filters_0x9E_and_0x80),
        T(test_shared_off_keeps_stored_groups_and_queues_for_later),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
