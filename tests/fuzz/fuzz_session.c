/*
 * fuzz_session.c - libFuzzer target that drives the session manager with a
 * real LMDB store in a temp directory (issue 10).
 *
 * The input is read as a program of operations for up to four clients:
 * CONNECT (MQTT 3.1.1 or 5, clean or persistent, with or without a will, one
 * of four client ids so takeovers happen; MQTT 5: a Session Expiry Interval,
 * Receive Maximum, Topic Alias Maximum, Maximum Packet Size and Will Delay
 * Interval), SUBSCRIBE / UNSUBSCRIBE (a small set of filters; MQTT 5: No
 * Local, Retain As Published, Retain Handling, a Subscription Identifier),
 * PUBLISH (QoS 0-2, retained or not; MQTT 5: Message Expiry, Topic Aliases,
 * properties), the acks a client owes for what it received, DISCONNECT
 * (MQTT 5: with a reason and a new Session Expiry Interval), a dropped
 * socket, raw bytes through the stream decoder, MQTT 5 enhanced
 * authentication (a CONNECT with Authentication Method SCRAM-SHA-512 for a
 * $7$ user of a password file, right or wrong password; AUTH packets that
 * finish it, re-authenticate, or break the rules: another method, another
 * reason), and the end of a loop turn:
 * a commit that succeeds (and 3 s of the manager's clock pass: expiry and
 * will delays happen), one handed to the storage thread and left in flight
 * while the next operations run (the store's manual committer: the batch
 * commits when a later turn collects it, so every interleaving replays
 * exactly), one that fails (the disk is full: the store's writes fail with
 * ENOSPC; a batch still in flight then fails too), or a restart of the
 * manager on the same store.
 *
 * Checked after every step:
 * - no ack before its commit: whenever a durable ack (CONNACK, PUBACK,
 *   PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK) or a QoS 2 PUBLISH reaches a
 *   connection, the turn's batch holds no uncommitted change and no batch
 *   is in flight - except while a batch in flight is being collected with
 *   a later batch already open (its acks leave then); and, always, an ack
 *   of a packet this harness fed (matched oldest first per packet id: acks
 *   of one id come in order) never leaves while the batch that packet was
 *   handled in is open with changes or in flight (check_ack_cause);
 * - QoS 2 never delivered twice: each QoS 2 message carries a tag (publisher,
 *   packet id, generation) and reaches a given client id under one packet id
 *   at most (a resend reuses it with DUP);
 * - MQTT 5: no packet larger than the client's Maximum Packet Size, never
 *   more unacknowledged QoS 1/2 PUBLISH than its Receive Maximum, and a
 *   PUBLISH without a topic only under a Topic Alias given on that
 *   connection;
 * - the manager's counts of scheduled top-ups match its list;
 * and at the end of every input: store_check() clean, and (under ASan) no
 * leak once everything is freed.
 *
 * Not for: the codec alone (fuzz_stream.c) or sockets (the server).
 */
#define _GNU_SOURCE /* RTLD_NEXT */
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "auth.h"
#include "disk_full.h"
#include "log.h"
#include "mqtt.h"
#include "session.h"
#include "session_internal.h"
#include "store.h"

/* scram_test_client.h's checks, without cmocka. */
#define assert_true(x)                                                                             \
    do {                                                                                           \
        if (!(x))                                                                                  \
            abort();                                                                               \
    } while (0)
#define assert_non_null(x)     assert_true((x) != NULL)
#define assert_int_equal(a, b) assert_true((a) == (b))
#include "scram_test_client.h"

#define CLIENTS      4
#define RECEIVED_MAX 16
#define TAGS_MAX     512
#define RAW_MAX      256

/* ---- the world: store, manager, clients ---- */

struct received {
    uint8_t type; /* what the client got: PUBLISH qos 1/2, PUBREC, PUBREL */
    uint8_t qos;
    uint16_t packet_id;
};

/* A packet a client sent that the broker acknowledges, and the batch
 * generation (mgr->batch_gen) it was handled in: its state, if it has any,
 * is in that batch (check_ack_cause). */
struct cause {
    uint8_t type; /* 0: free */
    uint16_t packet_id;
    uint64_t gen;
};
#define CAUSES 16

struct client {
    struct session_client *sc; /* NULL: not connected */
    int id;                    /* client id index 0..3 */
    int is_closing;
    uint8_t level;            /* 4 or 5 */
    uint16_t receive_maximum; /* MQTT 5: what its CONNECT said */
    uint32_t max_packet_size; /* MQTT 5: 0 = none */
    uint16_t unacked[8];      /* QoS 1/2 packet ids it got and has not acknowledged */
    size_t unacked_count;
    int has_alias[3];        /* outbound aliases the broker gave on this connection */
    uint8_t in[RAW_MAX * 2]; /* raw bytes not yet a whole packet */
    size_t in_len;
    struct received got[RECEIVED_MAX];
    size_t got_count;
    struct scram_test_client scram; /* its SCRAM-SHA-512 side, when it uses it */
    int has_scram_final;            /* an AUTH 0x18 came: scram.final is ready */
    struct cause causes[CAUSES];    /* packets that get an ack, as fed (ring) */
    size_t cause_next;
};

/* The fuzzer's password file: user "u", password "p", a $7$ entry with 1
 * iteration (the client side computes PBKDF2 for every exchange). */
static struct auth_passwd *fuzz_passwords;

/* One QoS 2 message as a client id received it. */
struct tag_seen {
    char tag[32];
    int client_id;
    uint16_t packet_id;
};

/* FUZZ_TRACE=1 in the environment prints every operation and every packet
 * sent, for reading a crash input. */
static int is_tracing;

static struct {
    char dir[64];
    struct store *store;
    struct session_mgr *mgr;
    struct client clients[CLIENTS];
    struct tag_seen seen[TAGS_MAX];
    size_t seen_count;
    uint32_t generation[CLIENTS][4]; /* per client id and packet id */
} w;

/* A collect is releasing a batch's acks while a later batch is open. */
static int is_releasing_over_open;

static int batch_has_changes(void)
{
    return w.mgr && mgr_batch_has_changes(w.mgr);
}

static int has_uncommitted(void)
{
    return batch_has_changes() || (w.store && store_commit_in_flight(w.store));
}

static int is_durable(uint8_t type, uint8_t flags)
{
    switch (type) {
    case MQTT_CONNACK:
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        return 1;
    case MQTT_PUBLISH:
        return ((flags >> 1) & 3) == 2;
    default:
        return 0;
    }
}

/* MQTT 5's limits on what the broker sends a client. */
static void check_v5_limits(struct client *c, const struct mqtt_packet *p, size_t size)
{
    if (c->level != MQTT_PROTOCOL_V5)
        return;
    if (c->max_packet_size && size > c->max_packet_size) {
        fprintf(stderr, "%zu-byte packet to c%d over its Maximum Packet Size %u\n", size, c->id,
                c->max_packet_size);
        abort();
    }
    if (p->type != MQTT_PUBLISH)
        return;
    const struct mqtt_publish *pub = &p->u.publish;
    uint16_t alias = pub->props.topic_alias;
    if (alias >= 1 && alias <= 2 && pub->topic.len > 0)
        c->has_alias[alias] = 1;
    if (pub->topic.len == 0 && (alias < 1 || alias > 2 || !c->has_alias[alias])) {
        fprintf(stderr, "PUBLISH to c%d without a topic under alias %u it was never given\n", c->id,
                alias);
        abort();
    }
    if (pub->qos == 0 || pub->dup)
        return;
    for (size_t i = 0; i < c->unacked_count; i++)
        if (c->unacked[i] == pub->packet_id)
            return;
    if (c->unacked_count >= c->receive_maximum || c->unacked_count == 8) {
        fprintf(stderr, "more than Receive Maximum %u unacknowledged PUBLISH to c%d\n",
                c->receive_maximum, c->id);
        abort();
    }
    c->unacked[c->unacked_count++] = pub->packet_id;
}

/* The client acknowledged packet id (PUBACK, or PUBCOMP... PUBREC keeps it
 * unacknowledged for the quota until PUBCOMP; the harness drops it at PUBREL
 * time, which only makes the check weaker, never wrong). */
static void acked(struct client *c, uint16_t packet_id)
{
    for (size_t i = 0; i < c->unacked_count; i++) {
        if (c->unacked[i] == packet_id) {
            c->unacked[i] = c->unacked[--c->unacked_count];
            return;
        }
    }
}

static void remember(struct client *c, uint8_t type, uint8_t qos, uint16_t packet_id)
{
    if (c->got_count == RECEIVED_MAX)
        memmove(c->got, c->got + 1, sizeof(c->got[0]) * (RECEIVED_MAX - 1));
    else
        c->got_count++;
    c->got[c->got_count - 1] = (struct received){type, qos, packet_id};
}

/* QoS 2: one packet id per (client id, message) at most. */
static void check_qos2_once(const struct client *c, const struct mqtt_publish *p)
{
    if (p->payload.len == 0 || p->payload.len >= sizeof(w.seen[0].tag) || p->payload.data[0] != 'T')
        return; /* retained copies and raw-byte payloads carry no tag */
    for (size_t i = 0; i < w.seen_count; i++) {
        struct tag_seen *s = &w.seen[i];
        if (s->client_id != c->id || strlen(s->tag) != p->payload.len ||
            memcmp(s->tag, p->payload.data, p->payload.len) != 0)
            continue;
        if (s->packet_id != p->packet_id) {
            fprintf(stderr, "QoS 2 message %s delivered twice to c%d (ids %u, %u)\n", s->tag, c->id,
                    s->packet_id, p->packet_id);
            abort();
        }
        return;
    }
    if (w.seen_count == TAGS_MAX)
        return;
    struct tag_seen *s = &w.seen[w.seen_count++];
    memcpy(s->tag, p->payload.data, p->payload.len);
    s->tag[p->payload.len] = 0;
    s->client_id = c->id;
    s->packet_id = p->packet_id;
}

/* The packet an ack answers: PUBACK/PUBREC a PUBLISH, PUBCOMP a PUBREL,
 * PUBREL a PUBREC, SUBACK/UNSUBACK theirs, CONNACK the CONNECT. */
static uint8_t cause_type(uint8_t ack)
{
    switch (ack) {
    case MQTT_PUBACK:
    case MQTT_PUBREC:
        return MQTT_PUBLISH;
    case MQTT_PUBCOMP:
        return MQTT_PUBREL;
    case MQTT_PUBREL:
        return MQTT_PUBREC;
    case MQTT_SUBACK:
        return MQTT_SUBSCRIBE;
    case MQTT_UNSUBACK:
        return MQTT_UNSUBSCRIBE;
    case MQTT_CONNACK:
        return MQTT_CONNECT;
    default:
        return 0;
    }
}

/* Records a fed packet the broker will acknowledge (check_ack_cause). */
static void remember_cause(struct client *c, const struct mqtt_packet *p)
{
    uint16_t packet_id;
    switch (p->type) {
    case MQTT_CONNECT:
        memset(c->causes, 0, sizeof(c->causes)); /* a new connection: its own acks only */
        packet_id = 0;
        break;
    case MQTT_PUBLISH:
        if (p->u.publish.qos == 0)
            return;
        packet_id = p->u.publish.packet_id;
        break;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        packet_id = p->u.subscribe.packet_id;
        break;
    case MQTT_PUBREL:
    case MQTT_PUBREC:
        packet_id = p->u.ack.packet_id;
        break;
    default:
        return;
    }
    c->causes[c->cause_next] = (struct cause){p->type, packet_id, w.mgr->batch_gen};
    c->cause_next = (c->cause_next + 1) % CAUSES;
}

/* An ack must not leave before the batch its packet was handled in commits:
 * not while that batch is still open with changes, nor while it is in
 * flight. Exact also while a batch in flight is collected with a later one
 * open, which the general check below cannot judge. Acks of packets this
 * harness did not feed (raw bytes) are not checked here. */
static void check_ack_cause(struct client *c, uint8_t type, uint16_t packet_id)
{
    uint8_t want = cause_type(type);
    struct cause *found = NULL;
    for (size_t i = 0; want && i < CAUSES; i++) {
        struct cause *k = &c->causes[(c->cause_next + i) % CAUSES];
        if (k->type == want && (want == MQTT_CONNECT || k->packet_id == packet_id)) {
            found = k; /* the oldest one not answered yet: acks of one id come in order */
            break;
        }
    }
    if (!found)
        return;
    uint64_t gen = w.mgr->batch_gen;
    int is_open = found->gen == gen && batch_has_changes();
    int is_in_flight = found->gen + 1 == gen && store_commit_in_flight(w.store);
    found->type = 0; /* answered */
    if (is_open || is_in_flight) {
        fprintf(stderr, "ack type %u id %u left while its batch was %s\n", type, packet_id,
                is_open ? "open" : "in flight");
        abort();
    }
}

/* Everything the manager sends to a client goes through here. */
static void observe(struct client *c, const uint8_t *buf, size_t len)
{
    size_t off = 0;
    while (off < len) {
        struct mqtt_packet p;
        size_t used = 0;
        if (mqtt_decode_stream_for(buf + off, len - off, 0, c->level, &p, &used) != MQTT_OK) {
            fprintf(stderr, "the manager sent a packet the codec cannot decode\n");
            abort();
        }
        check_v5_limits(c, &p, used);
        if (p.type != MQTT_PUBLISH)
            check_ack_cause(c, p.type, p.type == MQTT_CONNACK ? 0 : p.u.ack.packet_id);
        if (is_durable(buf[off] >> 4, buf[off] & 15) && !is_releasing_over_open &&
            has_uncommitted()) {
            fprintf(stderr, "durable packet type %u sent before its commit\n", buf[off] >> 4);
            abort();
        }
        if (is_tracing)
            fprintf(stderr, "  -> c%d slot%d: type %u id %u%s%.*s\n", c->id, (int)(c - w.clients),
                    p.type, p.type == MQTT_PUBLISH ? p.u.publish.packet_id : p.u.ack.packet_id,
                    p.type == MQTT_PUBLISH ? " payload " : "",
                    p.type == MQTT_PUBLISH ? (int)p.u.publish.payload.len : 0,
                    p.type == MQTT_PUBLISH ? (const char *)p.u.publish.payload.data : "");
        if (p.type == MQTT_PUBLISH && p.u.publish.qos > 0)
            remember(c, MQTT_PUBLISH, p.u.publish.qos, p.u.publish.packet_id);
        if (p.type == MQTT_PUBLISH && p.u.publish.qos == 2 && !p.u.publish.retain)
            check_qos2_once(c, &p.u.publish);
        if (p.type == MQTT_PUBREC || p.type == MQTT_PUBREL)
            remember(c, p.type, 0, p.u.ack.packet_id);
        if (p.type == MQTT_AUTH && p.u.auth.reason_code == MQTT_RC_CONTINUE_AUTHENTICATION) {
            scram_client_final(&c->scram, p.u.auth.props.authentication_data.data,
                               p.u.auth.props.authentication_data.len);
            c->has_scram_final = 1;
        }
        off += used;
    }
}

static int sink_send(void *conn, const struct iovec *iov, int iovcnt)
{
    struct client *c = conn;
    size_t len = 0;
    for (int i = 0; i < iovcnt; i++)
        len += iov[i].iov_len;
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return -ENOMEM;
    size_t off = 0;
    for (int i = 0; i < iovcnt; i++) {
        memcpy(buf + off, iov[i].iov_base, iov[i].iov_len);
        off += iov[i].iov_len;
    }
    observe(c, buf, len);
    free(buf);
    return 0;
}

static void sink_close(void *conn, const char *reason)
{
    (void)reason;
    ((struct client *)conn)->is_closing = 1;
}

static void sink_set_keepalive(void *conn, uint16_t keepalive_s)
{
    (void)conn;
    (void)keepalive_s;
}

static size_t sink_output_pending(void *conn)
{
    (void)conn;
    return 0;
}

/* Observes the packet as sink_send() does, then releases the reference. */
static int sink_send_ref(void *conn, const struct iovec *iov, int iovcnt, const void *data,
                         size_t len, void (*release)(void *ref), void *ref)
{
    struct iovec all[4];
    int n = 0;
    for (int i = 0; i < iovcnt && n < 3; i++)
        all[n++] = iov[i];
    all[n++] = (struct iovec){.iov_base = (void *)data, .iov_len = len};
    int rc = sink_send(conn, all, n);
    release(ref);
    return rc;
}

static const struct session_sink sink = {sink_send, sink_close, sink_set_keepalive,
                                         sink_output_pending, sink_send_ref};

/* ---- life cycle ---- */

static void client_gone(struct client *c, enum session_close_reason reason)
{
    if (!c->sc)
        return;
    session_client_gone(w.mgr, c->sc, reason);
    c->sc = NULL;
    c->is_closing = 0;
    c->in_len = 0;
    c->got_count = 0;
    c->unacked_count = 0;
    memset(c->has_alias, 0, sizeof(c->has_alias));
}

static void free_closing(void)
{
    for (int i = 0; i < CLIENTS; i++)
        if (w.clients[i].is_closing)
            client_gone(&w.clients[i], SESSION_CLOSE_PROTOCOL);
}

/* session_flush(), which first collects a batch in flight. */
static void flush(void)
{
    is_releasing_over_open = batch_has_changes() && store_commit_in_flight(w.store);
    session_flush(w.mgr);
    is_releasing_over_open = 0;
}

/* What the server does at the end of a turn: free the connections closed
 * during it (which may record more), then commit. A turn that commits lets
 * 3 s pass on the manager's clock and runs its tick (expiry, will delays).
 * in_flight: the turn only hands its batch to the storage thread (if none is
 * in flight), as the server does; a later turn collects it. */
static void end_turn(int commit_fails, int in_flight)
{
    if (!commit_fails) {
        session_clock_advance(w.mgr, 3);
        session_tick(w.mgr);
    }
    if (in_flight && !commit_fails) {
        free_closing();
        session_commit(w.mgr);
        return;
    }
    for (int round = 0; round < 3; round++) {
        free_closing();
        disk_is_full = commit_fails;
        flush();
        disk_is_full = 0;
    }
}

static int open_world(void)
{
    struct store_options opts;
    store_options_init(&opts);
    opts.dir = w.dir;
    opts.sync = STORE_SYNC_NOSYNC;
    opts.initial_map_size = 1 << 20;
    opts.max_map_size = 4 << 20;
    char err[256];
    if (store_open(&opts, &w.store, err, sizeof(err)) != 0)
        return -1;
    if (store_committer_start_manual(w.store) != 0)
        abort();
    struct session_config config;
    session_config_defaults(&config);
    config.max_inflight_messages = 2; /* small windows: queues and refills happen */
    config.max_queued_messages = 8;
    config.passwords = fuzz_passwords; /* CONNECTs without a username stay anonymous */
    if (session_mgr_new(&config, w.store, &sink, &w.mgr, err, sizeof(err)) != 0) {
        store_close(w.store);
        w.store = NULL;
        return -1;
    }
    return 0;
}

static void check_store(void)
{
    int problems = store_check(w.store, NULL, NULL);
    if (problems != 0) {
        fprintf(stderr, "store_check: %d problems\n", problems);
        abort();
    }
}

static void close_world(void)
{
    for (int i = 0; i < CLIENTS; i++)
        client_gone(&w.clients[i], SESSION_CLOSE_SHUTDOWN);
    if (w.mgr) {
        flush();
        session_mgr_free(w.mgr);
    }
    w.mgr = NULL;
    if (w.store) {
        check_store();
        store_close(w.store);
    }
    w.store = NULL;
}

/* ---- operations ---- */

struct input {
    const uint8_t *p;
    size_t left;
};

static uint8_t next(struct input *in)
{
    if (in->left == 0)
        return 0;
    in->left--;
    return *in->p++;
}

static const char *const filters[] = {"a/b", "a/#", "+/b", "#", "c", "a/+"};
static const char *const topics[] = {"a/b", "a/c", "c", "x/b"};

static int feed(struct client *c, const struct mqtt_packet *in)
{
    if (!c->sc || c->is_closing)
        return -1;
    struct mqtt_packet p = *in;
    p.protocol_level = c->level; /* encoded and decoded as the client speaks */
    uint8_t buf[512];
    size_t n = 0, used = 0;
    if (mqtt_encode(&p, buf, sizeof(buf), &n) != MQTT_OK)
        return -1;
    struct mqtt_packet decoded;
    if (mqtt_decode_stream_for(buf, n, 0, c->level, &decoded, &used) != MQTT_OK)
        return -1;
    remember_cause(c, &decoded);
    int rc = session_handle_packet(w.mgr, c->sc, &decoded);
    if (rc == SESSION_ERR_DISCONNECT)
        client_gone(c, SESSION_CLOSE_DISCONNECT);
    else if (rc != SESSION_OK)
        c->is_closing = 1;
    return rc;
}

/* An MQTT 5 CONNECT's properties from one byte: bits 0-1 the Session
 * Expiry Interval (0, 5 s, 60 s, never), 2-3 Receive Maximum (none, 1, 2,
 * 3), 4 Topic Alias Maximum 2, 5 Maximum Packet Size 64, 6 a Will Delay
 * Interval of 5 s, 7 Request Problem Information 0. */
static void connect_v5(struct client *c, struct mqtt_connect *p, uint8_t b)
{
    static const uint32_t expiry[4] = {0, 5, 60, UINT32_MAX};
    struct mqtt_properties *pr = &p->props;
    pr->present = MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY_INTERVAL);
    pr->session_expiry_interval_s = expiry[b & 3];
    if ((b >> 2) & 3) {
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM);
        pr->receive_maximum = c->receive_maximum = (b >> 2) & 3;
    }
    if (b & 16) {
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS_MAXIMUM);
        pr->topic_alias_maximum = 2;
    }
    if (b & 32) {
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_PACKET_SIZE);
        pr->maximum_packet_size = c->max_packet_size = 64;
    }
    if ((b & 64) && p->has_will) {
        p->will_props.present = MQTT_PROP_BIT(MQTT_PROP_WILL_DELAY_INTERVAL);
        p->will_props.will_delay_interval_s = 5;
    }
    if (b & 128) {
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_REQUEST_PROBLEM_INFORMATION);
        pr->request_problem_information = 0;
    }
}

static void op_connect(struct client *c, struct input *in)
{
    uint8_t b = next(in);
    if (c->sc)
        return;
    c->sc = session_client_new(w.mgr, c, "fuzz");
    if (!c->sc)
        return;
    c->id = b & 3;
    /* A new connection may get a new session (clean, or the old one was
     * clean or discarded: CONNACK session present 0, which the harness sees
     * only after the commit), and a client then forgets its in-flight ids,
     * so a publish under a used id is a new message. So QoS 2 resends are
     * checked within one connection here; across reconnects of a persistent
     * session, test_session.c and test_crash.py check them. */
    for (int i = 0; i < 4; i++)
        w.generation[c->id][i]++;
    char id[4] = {'c', (char)('0' + c->id), 0};
    struct mqtt_packet p = {.type = MQTT_CONNECT};
    c->level = (b & 128) ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311;
    c->receive_maximum = UINT16_MAX;
    c->max_packet_size = 0;
    p.u.connect.protocol_name = (struct mqtt_bytes){(const uint8_t *)"MQTT", 4};
    p.u.connect.protocol_level = c->level;
    p.u.connect.clean_session = (b & 4) != 0;
    p.u.connect.keepalive_s = 60;
    p.u.connect.client_id = (struct mqtt_bytes){(const uint8_t *)id, 2};
    if (b & 8) {
        p.u.connect.has_will = 1;
        p.u.connect.will_qos = (b >> 4) % 3;
        p.u.connect.will_retain = (b & 64) != 0;
        p.u.connect.will_topic = (struct mqtt_bytes){(const uint8_t *)"a/w", 3};
        p.u.connect.will_payload = (struct mqtt_bytes){(const uint8_t *)"will", 4};
    }
    if (c->level == MQTT_PROTOCOL_V5)
        connect_v5(c, &p.u.connect, next(in));
    c->has_scram_final = 0;
    if (c->level == MQTT_PROTOCOL_V5 && ((b >> 4) & 3) == 3) {
        /* Will QoS "3" (unused, read as 0): SCRAM-SHA-512; bit 6 a wrong password. */
        const char *first = scram_client_first(&c->scram, "u", (b & 64) ? "wrong" : "p");
        struct mqtt_properties *pr = &p.u.connect.props;
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_AUTHENTICATION_METHOD) |
                       MQTT_PROP_BIT(MQTT_PROP_AUTHENTICATION_DATA);
        pr->authentication_method = (struct mqtt_bytes){(const uint8_t *)"SCRAM-SHA-512", 13};
        pr->authentication_data = (struct mqtt_bytes){(const uint8_t *)first, strlen(first)};
    }
    feed(c, &p);
}

/* An AUTH packet (op_ack with bit 7): the client-final of the exchange in
 * progress, else a re-authentication's client-first (bit 2: wrong
 * password); bit 0 swaps the reason (0x18 / 0x19), bit 1 another method. */
static void op_auth(struct client *c, uint8_t b)
{
    if (!c->sc || c->level != MQTT_PROTOCOL_V5)
        return;
    const char *data = c->scram.final;
    uint8_t reason = MQTT_RC_CONTINUE_AUTHENTICATION;
    if (!c->has_scram_final) {
        data = scram_client_first(&c->scram, "u", (b & 4) ? "wrong" : "p");
        reason = MQTT_RC_RE_AUTHENTICATE;
    }
    c->has_scram_final = 0;
    if (b & 1)
        reason = reason == MQTT_RC_RE_AUTHENTICATE ? MQTT_RC_CONTINUE_AUTHENTICATION
                                                   : MQTT_RC_RE_AUTHENTICATE;
    const char *method = (b & 2) ? "PLAIN" : "SCRAM-SHA-512";
    struct mqtt_packet p = {.type = MQTT_AUTH};
    p.u.auth.reason_code = reason;
    p.u.auth.props.present = MQTT_PROP_BIT(MQTT_PROP_AUTHENTICATION_METHOD) |
                             MQTT_PROP_BIT(MQTT_PROP_AUTHENTICATION_DATA);
    p.u.auth.props.authentication_method =
        (struct mqtt_bytes){(const uint8_t *)method, strlen(method)};
    p.u.auth.props.authentication_data = (struct mqtt_bytes){(const uint8_t *)data, strlen(data)};
    feed(c, &p);
}

static void op_subscribe(struct client *c, struct input *in, int is_unsubscribe)
{
    uint8_t b = next(in);
    const char *f = filters[b % (sizeof(filters) / sizeof(filters[0]))];
    struct mqtt_topic_entry e = {{(const uint8_t *)f, strlen(f)}, (uint8_t)((b >> 4) % 3)};
    struct mqtt_packet p = {.type = is_unsubscribe ? MQTT_UNSUBSCRIBE : MQTT_SUBSCRIBE};
    p.u.subscribe.packet_id = 1;
    p.u.subscribe.count = 1;
    p.u.subscribe.entries = &e;
    /* MQTT 5, one more byte: No Local (bit 0), Retain As Published (1),
     * Retain Handling (2-3), a Subscription Identifier 1..7 (4-6). */
    struct mqtt_subscription_options o = {0};
    if (c->sc && c->level == MQTT_PROTOCOL_V5 && !is_unsubscribe) {
        uint8_t v = next(in);
        o = (struct mqtt_subscription_options){v & 1, (v & 2) != 0, (uint8_t)((v >> 2) % 3)};
        p.u.subscribe.options = &o;
        if ((v >> 4) & 7) {
            p.u.subscribe.props.present = MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_IDENTIFIER);
            p.u.subscribe.props.subscription_identifier = (v >> 4) & 7;
        }
    }
    feed(c, &p);
}

/* An MQTT 5 PUBLISH's properties from one byte: bit 0 a Message Expiry
 * Interval of 4 s, 1 Topic Alias 1 with the topic, 2 Topic Alias 1 without
 * it (the broker then uses the topic set before, or closes), 3 a User
 * Property, 4 Payload Format Indicator 1 (the tag is UTF-8). */
static void publish_v5(struct mqtt_publish *p, uint8_t b)
{
    static const struct mqtt_user_property up = {{(const uint8_t *)"k", 1},
                                                 {(const uint8_t *)"v", 1}};
    struct mqtt_properties *pr = &p->props;
    if (b & 1) {
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY_INTERVAL);
        pr->message_expiry_interval_s = 4;
    }
    if (b & 6) {
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
        pr->topic_alias = 1;
        if (b & 4)
            p->topic.len = 0;
    }
    if (b & 8) {
        pr->user_properties = &up;
        pr->user_property_count = 1;
    }
    if (b & 16) {
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT_INDICATOR);
        pr->payload_format_indicator = 1;
    }
}

static void op_publish(struct client *c, struct input *in)
{
    uint8_t b = next(in);
    uint8_t qos = (b >> 2) % 3;
    uint16_t packet_id = (uint16_t)(1 + ((b >> 4) & 3));
    const char *topic = topics[b & 3];
    char tag[32];
    int len = snprintf(tag, sizeof(tag), "Tc%dp%ug%u", c->id, packet_id,
                       (unsigned)w.generation[c->id][packet_id - 1]);
    struct mqtt_packet p = {.type = MQTT_PUBLISH};
    p.u.publish.qos = qos;
    p.u.publish.retain = (b & 64) != 0;
    p.u.publish.packet_id = qos ? packet_id : 0;
    p.u.publish.topic = (struct mqtt_bytes){(const uint8_t *)topic, strlen(topic)};
    p.u.publish.payload = (struct mqtt_bytes){(const uint8_t *)tag, (size_t)len};
    if (c->sc && c->level == MQTT_PROTOCOL_V5)
        publish_v5(&p.u.publish, next(in));
    feed(c, &p);
}

/* Answers one thing the client received, as a client would. */
static void op_ack(struct client *c, struct input *in)
{
    uint8_t b = next(in);
    if (b & 0x80) {
        op_auth(c, b);
        return;
    }
    if (c->got_count == 0)
        return;
    struct received r = c->got[b % c->got_count];
    struct mqtt_packet p = {0};
    p.u.ack.packet_id = r.packet_id;
    if (r.type == MQTT_PUBLISH)
        p.type = r.qos == 1 ? MQTT_PUBACK : MQTT_PUBREC;
    else if (r.type == MQTT_PUBREC)
        p.type = MQTT_PUBREL;
    else
        p.type = MQTT_PUBCOMP;
    if (p.type == MQTT_PUBREL && r.packet_id >= 1 && r.packet_id <= 4)
        w.generation[c->id][r.packet_id - 1]++; /* the id may carry a new message now */
    if (p.type == MQTT_PUBACK || p.type == MQTT_PUBCOMP)
        acked(c, r.packet_id);
    feed(c, &p);
}

/* DISCONNECT; MQTT 5, one more byte: reason 0x04 (bit 0: the will goes),
 * a new Session Expiry Interval of 0 or 60 s (bits 1-2). */
static void op_disconnect(struct client *c, struct input *in)
{
    struct mqtt_packet p = {.type = MQTT_DISCONNECT};
    if (c->sc && c->level == MQTT_PROTOCOL_V5) {
        uint8_t b = next(in);
        p.u.disconnect.reason_code = (b & 1) ? MQTT_RC_DISCONNECT_WITH_WILL_MESSAGE : 0;
        if (b & 2) {
            p.u.disconnect.props.present = MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY_INTERVAL);
            p.u.disconnect.props.session_expiry_interval_s = (b & 4) ? 60 : 0;
        }
    }
    feed(c, &p);
}

/* Raw bytes through the stream decoder, as the server reads them. */
static void op_raw(struct client *c, struct input *in)
{
    size_t n = next(in) % RAW_MAX;
    if (!c->sc || c->is_closing)
        return;
    for (size_t i = 0; i < n && c->in_len < sizeof(c->in); i++)
        c->in[c->in_len++] = next(in);
    size_t off = 0;
    while (off < c->in_len && c->sc && !c->is_closing) {
        struct mqtt_packet p;
        size_t used = 0;
        int rc = mqtt_decode_stream_for(c->in + off, c->in_len - off, sizeof(c->in), c->level, &p,
                                        &used);
        if (rc == MQTT_NEED_MORE)
            break;
        if (rc != MQTT_OK) {
            c->is_closing = 1;
            break;
        }
        rc = session_handle_packet(w.mgr, c->sc, &p);
        off += used;
        if (rc == SESSION_ERR_DISCONNECT)
            client_gone(c, SESSION_CLOSE_DISCONNECT);
        else if (rc != SESSION_OK)
            c->is_closing = 1;
    }
    if (c->sc && off > 0) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
}

static void op_restart(void)
{
    close_world();
    if (open_world() != 0)
        abort();
}

/* The manager's counts of scheduled top-ups match its list (commit.c asks
 * the counts every turn instead of walking the list). */
static void check_refill_counts(void)
{
    uint32_t due = 0, waiting = 0;
    for (const struct session *s = w.mgr ? w.mgr->refill : NULL; s; s = s->refill_next)
        if (s->refill_wait == REFILL_ANYTIME)
            due++;
        else
            waiting++;
    if (w.mgr && (due != w.mgr->refills_due || waiting != w.mgr->refills_waiting)) {
        fprintf(stderr, "refill counts %u/%u, list %u/%u\n", w.mgr->refills_due,
                w.mgr->refills_waiting, due, waiting);
        abort();
    }
}

static void run_op(struct input *in)
{
    uint8_t op = next(in);
    struct client *c = &w.clients[(op >> 4) % CLIENTS];
    if (is_tracing)
        fprintf(stderr, "op %u slot %d (next byte %u)\n", op % 11, (op >> 4) % CLIENTS,
                in->left ? in->p[0] : 0);
    switch (op % 11) {
    case 0:
        op_connect(c, in);
        break;
    case 1:
        op_subscribe(c, in, 0);
        break;
    case 2:
        op_subscribe(c, in, 1);
        break;
    case 3:
        op_publish(c, in);
        break;
    case 4:
        op_ack(c, in);
        break;
    case 5:
        op_disconnect(c, in);
        break;
    case 6:
        c->is_closing = c->sc != NULL;
        break;
    case 7:
        end_turn(0, (op >> 4) & 1); /* the slot bits pick: commit now, or leave it in flight */
        break;
    case 8:
        end_turn(1, 0);
        break;
    case 9:
        op_restart();
        break;
    default:
        op_raw(c, in);
        break;
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    is_tracing = getenv("FUZZ_TRACE") != NULL;
    if (!is_tracing)
        log_set_levels(0); /* quiet */
    char hash[AUTH_PASSWD_HASH_MAX], path[128], err[256];
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(path, sizeof(path), "%s/sol-fuzz-passwd-%d", tmp, (int)getpid());
    FILE *f = fopen(path, "w");
    if (!f || auth_passwd_hash_new((const uint8_t *)"p", 1, 1, hash, sizeof(hash)) != AUTH_OK)
        abort();
    fprintf(f, "u:%s\n", hash);
    fclose(f);
    if (auth_passwd_load(path, &fuzz_passwords, err, sizeof(err)) != AUTH_OK)
        abort();
    unlink(path);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    memset(&w, 0, sizeof(w));
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(w.dir, sizeof(w.dir), "%s/sol-fuzz-XXXXXX", tmp);
    if (!mkdtemp(w.dir) || open_world() != 0)
        abort();
    struct input in = {data, size};
    for (int steps = 0; in.left > 0 && steps < 4096; steps++) {
        run_op(&in);
        check_refill_counts();
    }
    end_turn(0, 0);
    close_world();
    char path[128];
    snprintf(path, sizeof(path), "%s/data.mdb", w.dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/lock.mdb", w.dir);
    unlink(path);
    rmdir(w.dir);
    return 0;
}
