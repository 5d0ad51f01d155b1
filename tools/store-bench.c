/*
 * store-bench.c - measures the store and writes known stores for tests.
 *   store-bench commit DIR fsync|nosync BATCHES PER_BATCH PAYLOAD_BYTES
 *       commits BATCHES batches of PER_BATCH messages (each: body + one queue
 *       entry); prints commits/s and messages/s.
 *   store-bench fill DIR SESSIONS MESSAGES PAYLOAD_BYTES
 *       SESSIONS sessions with 2 subscriptions each and MESSAGES queued
 *       messages spread round-robin over them (nosync, flushed at the end).
 *   store-bench load DIR
 *       time to ready: open (printed alone too: it includes the bounded
 *       verification) + load sessions (with last seqs) + subscriptions +
 *       retained index; then reads one session's whole queue in batches of
 *       100; prints times and RSS (anonymous vs file-backed map pages).
 *   store-bench sample DIR
 *       writes a small known store (tests/integration/test_solctl.py).
 * Not for: production use; errors just print and exit 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct store_bytes B(const char *s) {
    return (struct store_bytes){(const uint8_t *)s, strlen(s)};
}

static struct store *
open_store(const char *dir, enum store_sync sync)
{
    struct store_options o;
    store_options_init(&o);
    o.dir = dir;
    o.sync = sync;
    o.max_map_size = 64ull << 30;
    struct store *s = NULL;
    char err[512];
    if (store_open(&o, &s, err, sizeof(err)) != 0) {
        fprintf(stderr, "store-bench: %s\n", err);
        exit(1);
    }
    return s;
}

static void must(int rc, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "store-bench: %s: %s\n", what, store_strerror(rc));
        exit(1);
    }
}

/* Prints VmRSS, RssAnon and RssFile from /proc/self/status. */
static void print_rss(const char *when)
{
    FILE *fp = fopen("/proc/self/status", "r");
    char line[256];
    printf("rss %s:", when);
    while (fp != NULL && fgets(line, sizeof(line), fp) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0 || strncmp(line, "RssAnon:", 8) == 0 ||
            strncmp(line, "RssFile:", 8) == 0 || strncmp(line, "VmHWM:", 6) == 0) {
            line[strcspn(line, "\n")] = 0;
            printf("  %s", line);
        }
    }
    printf("\n");
    if (fp != NULL)
        fclose(fp);
}

static void session_put(struct store_batch *b, const char *id)
{
    struct store_session s = {.protocol_level = 4,
                              .last_seen_s = 1700000000,
                              .expiry_s = STORE_EXPIRY_NEVER,
                              .next_packet_id = 1};
    must(store_batch_put_session(b, B(id), &s), "put session");
}

static void queue_msg(struct store *s, struct store_batch *b, const char *client, uint64_t seq,
                      const char *topic, struct store_bytes payload)
{
    uint64_t id = store_next_message_id(s);
    struct store_message m = {.topic = B(topic), .payload = payload, .qos = 1};
    must(store_batch_put_message(b, id, &m), "put message");
    struct store_queue_entry e = {.msg_id = id, .qos = 1, .state = STORE_QUEUED};
    must(store_batch_queue_append(b, B(client), seq, &e), "queue append");
}

static int cmd_commit(const char *dir, const char *mode, long batches, long per, long bytes)
{
    struct store *s =
        open_store(dir, strcmp(mode, "fsync") == 0 ? STORE_SYNC_FSYNC : STORE_SYNC_NOSYNC);
    uint8_t *payload = calloc(1, (size_t)bytes + 1);
    if (payload == NULL)
        return 1;
    struct store_batch *b = store_batch_new(s);
    session_put(b, "bench");
    must(store_batch_commit(b), "commit");
    uint64_t seq = 0;
    double t0 = now_s();
    for (long i = 0; i < batches; i++) {
        b = store_batch_new(s);
        for (long j = 0; j < per; j++)
            queue_msg(s, b, "bench", ++seq, "bench/topic",
                      (struct store_bytes){payload, (size_t)bytes});
        must(store_batch_commit(b), "commit");
    }
    double dt = now_s() - t0;
    printf("commit %s: %ld batches x %ld messages x %ld B in %.3f s: %.0f commits/s, %.0f "
           "messages/s\n",
           mode, batches, per, bytes, dt, (double)batches / dt, (double)(batches * per) / dt);
    free(payload);
    store_close(s);
    return 0;
}

static int cmd_fill(const char *dir, long sessions, long messages, long bytes)
{
    struct store *s = open_store(dir, STORE_SYNC_NOSYNC);
    uint8_t *payload = calloc(1, (size_t)bytes + 1);
    uint64_t *seq = calloc((size_t)sessions, sizeof(uint64_t));
    if (payload == NULL || seq == NULL)
        return 1;
    char id[32], filter[64];
    struct store_batch *b = store_batch_new(s);
    for (long i = 0; i < sessions; i++) {
        snprintf(id, sizeof(id), "client-%06ld", i);
        session_put(b, id);
        snprintf(filter, sizeof(filter), "devices/%ld/#", i);
        must(store_batch_put_subscription(b, B(id), B(filter), 1, 0), "sub");
        must(store_batch_put_subscription(b, B(id), B("broadcast/+"), 1, 0), "sub");
    }
    must(store_batch_commit(b), "commit");
    double t0 = now_s();
    for (long done = 0; done < messages;) {
        b = store_batch_new(s);
        for (long j = 0; j < 10000 && done < messages; j++, done++) {
            long c = done % sessions;
            snprintf(id, sizeof(id), "client-%06ld", c);
            queue_msg(s, b, id, ++seq[c], "devices/x/data",
                      (struct store_bytes){payload, (size_t)bytes});
        }
        must(store_batch_commit(b), "commit");
    }
    must(store_flush(s), "flush");
    printf("fill: %ld sessions, %ld queued messages of %ld B in %.1f s\n", sessions, messages,
           bytes, now_s() - t0);
    free(payload);
    free(seq);
    store_close(s);
    return 0;
}

struct load_counts {
    long sessions, subs, retained, queued_clients, entries;
    char first[64];
};

static int count_session(void *arg, const struct store_session_info *info)
{
    struct load_counts *c = arg;
    if (c->sessions++ == 0)
        snprintf(c->first, sizeof(c->first), "%.*s", (int)info->client_id.len,
                 (const char *)info->client_id.data);
    c->queued_clients += info->has_queue;
    return 0;
}

static int count_sub(void *arg, struct store_bytes c, struct store_bytes f, uint8_t options,
                     uint32_t sub_id)
{
    (void)c;
    (void)f;
    (void)options;
    (void)sub_id;
    ((struct load_counts *)arg)->subs++;
    return 0;
}

static int count_retained(void *arg, const struct store_retained *r)
{
    (void)r;
    ((struct load_counts *)arg)->retained++;
    return 0;
}

static uint64_t last_seq_seen;

static int count_entry(void *arg, const struct store_queue_item *it)
{
    ((struct load_counts *)arg)->entries++;
    last_seq_seen = it->seq;
    return 0;
}

static int cmd_load(const char *dir)
{
    struct load_counts c = {0};
    print_rss("at start");
    double t0 = now_s();
    struct store *s = open_store(dir, STORE_SYNC_FSYNC);
    printf("open (with the bounded verification of verify.c): %.3f s\n", now_s() - t0);
    must(store_sessions_foreach(s, count_session, &c), "sessions");
    must(store_subscriptions_foreach(s, NULL, count_sub, &c), "subscriptions");
    must(store_retained_index_foreach(s, count_retained, &c), "retained");
    double t1 = now_s();
    printf("load: %ld sessions (%ld with queues), %ld subscriptions, %ld retained in %.3f s\n",
           c.sessions, c.queued_clients, c.subs, c.retained, t1 - t0);
    print_rss("after load");
    uint64_t from = 0;
    for (;;) {
        long before = c.entries;
        int n = store_queue_read(s, B(c.first), from, 100, count_entry, &c);
        if (n < 0)
            must(n, "queue read");
        if (n < 100 || c.entries == before)
            break;
        from = last_seq_seen + 1;
    }
    printf("queue read of %s: %ld entries in batches of 100 in %.3f s\n", c.first, c.entries,
           now_s() - t1);
    print_rss("after queue read");
    store_close(s);
    return 0;
}

/* The known store of tests/integration/test_solctl.py: keep them in step. */
static int cmd_sample(const char *dir)
{
    struct store *s = open_store(dir, STORE_SYNC_FSYNC);
    struct store_batch *b = store_batch_new(s);
    struct store_session w = {.protocol_level = 4,
                              .last_seen_s = 1700000000,
                              .expiry_s = 3600,
                              .next_packet_id = 9,
                              .has_will = true,
                              .will_topic = B("status/sensor-1"),
                              .will_payload = B("offline"),
                              .will_qos = 1,
                              .will_retain = true};
    must(store_batch_put_session(b, B("sensor-1"), &w), "session");
    session_put(b, "app");
    must(store_batch_put_subscription(b, B("sensor-1"), B("cmd/sensor-1"), 1, 0), "sub");
    must(store_batch_put_subscription(b, B("app"), B("status/#"), 2, 0), "sub");
    must(store_batch_put_subscription(b, B("app"), B("data/+/temp"), 0, 0), "sub");
    struct store_retained online = {
        .topic = B("status/sensor-1"), .payload = B("online"), .qos = 1, .stored_at_s = 1700000100};
    must(store_batch_put_retained(b, &online), "ret");
    const uint8_t blob[] = {0x00, 0x01, 0x02, 0xff};
    struct store_retained binary = {.topic = B("bin/blob"),
                                    .payload = (struct store_bytes){blob, 4},
                                    .stored_at_s = 1700000200};
    must(store_batch_put_retained(b, &binary), "ret");
    char big[201];
    memset(big, 'x', 200);
    big[200] = 0;
    uint64_t a = store_next_message_id(s), m2 = store_next_message_id(s),
             m3 = store_next_message_id(s);
    struct store_message ma = {.topic = B("data/kitchen/temp"), .payload = B("21.5"), .qos = 1};
    struct store_message mb = {.topic = B("data/hall/temp"), .payload = B(big), .qos = 1};
    struct store_message mc = {.topic = B("status/app"), .payload = B("q2"), .qos = 2};
    must(store_batch_put_message(b, a, &ma), "msg");
    must(store_batch_put_message(b, m2, &mb), "msg");
    must(store_batch_put_message(b, m3, &mc), "msg");
    struct store_queue_entry e1 = {.msg_id = a, .qos = 1, .state = STORE_QUEUED};
    struct store_queue_entry e2 = {.msg_id = m2, .qos = 1, .state = STORE_SENT, .packet_id = 7};
    struct store_queue_entry e3 = {
        .msg_id = m3, .qos = 2, .state = STORE_PUBREC_RECEIVED, .packet_id = 8};
    must(store_batch_queue_append(b, B("app"), 1, &e1), "q");
    must(store_batch_queue_append(b, B("app"), 2, &e2), "q");
    must(store_batch_queue_append(b, B("app"), 3, &e3), "q");
    must(store_batch_queue_append(b, B("sensor-1"), 1, &e1), "q");
    must(store_batch_put_qos2_in(b, B("app"), 5, 1700000300), "qos2");
    must(store_batch_commit(b), "commit");
    store_close(s);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 7 && strcmp(argv[1], "commit") == 0)
        return cmd_commit(argv[2], argv[3], atol(argv[4]), atol(argv[5]), atol(argv[6]));
    if (argc == 6 && strcmp(argv[1], "fill") == 0)
        return cmd_fill(argv[2], atol(argv[3]), atol(argv[4]), atol(argv[5]));
    if (argc == 3 && strcmp(argv[1], "load") == 0)
        return cmd_load(argv[2]);
    if (argc == 3 && strcmp(argv[1], "sample") == 0)
        return cmd_sample(argv[2]);
    fprintf(stderr, "usage: store-bench commit DIR fsync|nosync BATCHES PER_BATCH BYTES\n"
                    "       store-bench fill DIR SESSIONS MESSAGES BYTES\n"
                    "       store-bench load DIR\n"
                    "       store-bench sample DIR\n");
    return 1;
}
