/*
 * test_store.c - cmocka tests of storage/: every API operation on a real LMDB
 * environment in a fresh temporary directory per test (never a fake store),
 * the batch/completion contract, a full map, map growth, reference counting,
 * refused directories, persistence across reopen, and crash consistency under
 * SIGKILL. Not for: the session manager's use of the store.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#define _GNU_SOURCE       /* RTLD_NEXT */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>

#include "store.h"

#define MIB (1024u * 1024u)

struct fixture {
    char dir[256];
    struct store *store;
    struct store_options opts;
};

static struct store_bytes B(const char *s) {
    return (struct store_bytes){(const uint8_t *)s, strlen(s)};
}

static bool
bytes_eq(struct store_bytes b, const char *s)
{
    return b.len == strlen(s) && memcmp(b.data, s, b.len) == 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_rf(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int reopen(struct fixture *f)
{
    char err[256];
    store_close(f->store);
    f->store = NULL;
    int rc = store_open(&f->opts, &f->store, err, sizeof(err));
    if (rc != 0)
        print_message("store_open: %s\n", err);
    return rc;
}

static int setup_opts(void **state, uint64_t initial, uint64_t max)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(f->dir, sizeof(f->dir), "%s/sol-store-test-XXXXXX", tmp);
    if (mkdtemp(f->dir) == NULL)
        return -1;
    store_options_init(&f->opts);
    f->opts.dir = f->dir;
    f->opts.sync = STORE_SYNC_NOSYNC; /* the crash test covers both modes */
    f->opts.initial_map_size = initial;
    f->opts.max_map_size = max;
    *state = f;
    return reopen(f);
}

static int setup(void **state)
{
    return setup_opts(state, 1 * MIB, 256 * MIB);
}

/* A map that can never grow past 1 MiB: for STORE_ERR_FULL. */
static int setup_tiny(void **state)
{
    return setup_opts(state, 1 * MIB, 1 * MIB);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    store_close(f->store);
    rm_rf(f->dir);
    free(f);
    return 0;
}

/* ---- helpers that record and commit ----------------------------------------- */

struct done_log {
    int calls;
    int status[16];
    int order[16];
    bool saw_data; /* set by a completion that reads the store */
    struct store *store;
};

static void done_record(void *arg, int status)
{
    struct done_log *d = arg;
    if (d->calls < 16) {
        d->status[d->calls] = status;
        d->order[d->calls] = d->calls;
    }
    d->calls++;
}

static struct store_session session_with_will(const char *topic, const char *payload)
{
    struct store_session s = {.protocol_level = 4,
                              .last_seen_s = 1700000000,
                              .expiry_s = 3600,
                              .next_packet_id = 42,
                              .has_will = topic != NULL,
                              .will_qos = 1,
                              .will_retain = true};
    if (topic != NULL) {
        s.will_topic = B(topic);
        s.will_payload = B(payload);
    }
    return s;
}

static uint64_t put_message(struct store_batch *b, struct store *s, const char *topic,
                            const char *payload)
{
    uint64_t id = store_next_message_id(s);
    struct store_message m = {.topic = B(topic), .payload = B(payload), .qos = 1};
    assert_int_equal(store_batch_put_message(b, id, &m), 0);
    return id;
}

static void append(struct store_batch *b, const char *client, uint64_t seq, uint64_t msg_id)
{
    struct store_queue_entry e = {.msg_id = msg_id, .qos = 1, .state = STORE_QUEUED};
    assert_int_equal(store_batch_queue_append(b, B(client), seq, &e), 0);
}

static void put_session(struct store_batch *b, const char *client)
{
    struct store_session s = session_with_will(NULL, NULL);
    assert_int_equal(store_batch_put_session(b, B(client), &s), 0);
}

static int count_problems(struct store *s)
{
    return store_check(s, NULL, NULL);
}

static void print_problem(void *arg, const char *problem)
{
    (void)arg;
    print_message("check: %s\n", problem);
}

static void assert_consistent(struct store *s)
{
    int n = store_check(s, print_problem, NULL);
    assert_int_equal(n, 0);
}

/* ---- collectors for reads ------------------------------------------------------ */

struct sessions_seen {
    int count;
    char ids[8][64];
    struct store_session first;
    char will_topic[64], will_payload[64];
    bool has_queue[8];
    uint64_t last_seq[8];
};

static int collect_session(void *arg, const struct store_session_info *info)
{
    struct sessions_seen *s = arg;
    if (s->count >= 8)
        return 0;
    snprintf(s->ids[s->count], 64, "%.*s", (int)info->client_id.len,
             (const char *)info->client_id.data);
    s->has_queue[s->count] = info->has_queue;
    s->last_seq[s->count] = info->last_seq;
    if (s->count == 0) {
        s->first = info->session;
        snprintf(s->will_topic, 64, "%.*s", (int)info->session.will_topic.len,
                 (const char *)info->session.will_topic.data);
        snprintf(s->will_payload, 64, "%.*s", (int)info->session.will_payload.len,
                 (const char *)info->session.will_payload.data);
    }
    s->count++;
    return 0;
}

struct subs_seen {
    int count;
    char lines[16][128];
};

static int collect_sub(void *arg, struct store_bytes client, struct store_bytes filter,
                       uint8_t options, uint32_t sub_id)
{
    struct subs_seen *s = arg;
    if (s->count < 16 && sub_id == 0)
        snprintf(s->lines[s->count], 128, "%.*s|%.*s|%u", (int)client.len,
                 (const char *)client.data, (int)filter.len, (const char *)filter.data, options);
    else if (s->count < 16)
        snprintf(s->lines[s->count], 128, "%.*s|%.*s|%u|%u", (int)client.len,
                 (const char *)client.data, (int)filter.len, (const char *)filter.data, options,
                 sub_id);
    s->count++;
    return 0;
}

/* A retained message without MQTT 5 properties or expiry. */
static int put_retained(struct store_batch *b, struct store_bytes topic, uint8_t qos,
                        struct store_bytes payload, uint64_t stored_at_s)
{
    struct store_retained r = {
        .topic = topic, .payload = payload, .qos = qos, .stored_at_s = stored_at_s};
    return store_batch_put_retained(b, &r);
}

struct queue_seen {
    int count;
    uint64_t seq[64];
    uint64_t msg_id[64];
    int state[64];
    uint16_t packet_id[64];
    uint32_t refcount[64];
    char payload[64][32];
    bool has_message[64];
};

static int collect_queue(void *arg, const struct store_queue_item *it)
{
    struct queue_seen *q = arg;
    if (q->count < 64) {
        int i = q->count;
        q->seq[i] = it->seq;
        q->msg_id[i] = it->entry.msg_id;
        q->state[i] = it->entry.state;
        q->packet_id[i] = it->entry.packet_id;
        q->refcount[i] = it->refcount;
        q->has_message[i] = it->message != NULL;
        if (it->message != NULL)
            snprintf(q->payload[i], 32, "%.*s", (int)it->message->payload.len,
                     (const char *)it->message->payload.data);
    }
    q->count++;
    return 0;
}

static struct queue_seen read_queue(struct store *s, const char *client)
{
    struct queue_seen q = {0};
    int n = store_queue_read(s, B(client), 0, 1000, collect_queue, &q);
    assert_true(n >= 0);
    assert_int_equal(n, q.count);
    return q;
}

static int count_messages_cb(void *arg, uint64_t id, const struct store_message *m, uint32_t rc)
{
    (void)id;
    (void)m;
    (void)rc;
    (*(int *)arg)++;
    return 0;
}

static int count_messages(struct store *s)
{
    int n = 0;
    assert_int_equal(store_messages_foreach(s, false, count_messages_cb, &n), 0);
    return n;
}

static int count_sessions(struct store *s)
{
    struct sessions_seen seen = {0};
    assert_int_equal(store_sessions_foreach(s, collect_session, &seen), 0);
    return seen.count;
}

/* ---- open and the directory rule ------------------------------------------------ */

static void test_open_creates_store_in_missing_dir(void **state)
{
    struct fixture *f = *state;
    char sub[300], err[256];
    snprintf(sub, sizeof(sub), "%s/new", f->dir);
    struct store_options o = f->opts;
    o.dir = sub;
    struct store *s = NULL;
    assert_int_equal(store_open(&o, &s, err, sizeof(err)), 0);
    struct store_stats st;
    assert_int_equal(store_stats(s, &st), 0);
    assert_int_equal(st.schema_version, 2);
    assert_int_equal(st.upgraded_from, 0);
    assert_true(st.created_at_s > 0);
    uint8_t zero[16] = {0};
    assert_memory_not_equal(st.store_id, zero, 16);
    assert_int_equal(count_problems(s), 0);
    store_close(s);
}

static void test_open_read_only_missing_dir_is_not_a_store(void **state)
{
    struct fixture *f = *state;
    char sub[300], err[256];
    snprintf(sub, sizeof(sub), "%s/missing", f->dir);
    struct store_options o = f->opts;
    o.dir = sub;
    o.read_only = true;
    struct store *s = (struct store *)1;
    assert_int_equal(store_open(&o, &s, err, sizeof(err)), STORE_ERR_NOT_A_STORE);
    assert_null(s);
    assert_non_null(strstr(err, "missing"));
    assert_int_equal(access(sub, F_OK), -1); /* nothing created */
}

/* A cheap fingerprint of a directory: which files exist, and the contents of
 * the data files. lock.mdb's contents are LMDB's runtime state (reader table,
 * mutexes), reinitialised by every first opener, so only its presence counts. */
static uint64_t dir_fingerprint(const char *dir)
{
    static const char *names[] = {"data.mdb", "lock.mdb", "notes.txt"};
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < 3; i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        FILE *fp = fopen(path, "rb");
        h = (h ^ (fp != NULL)) * 1099511628211ull;
        int c;
        while (fp != NULL && i != 1 && (c = fgetc(fp)) != EOF)
            h = (h ^ (uint64_t)c) * 1099511628211ull;
        if (fp != NULL)
            fclose(fp);
    }
    return h;
}

static void write_file(const char *dir, const char *name, const void *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    fclose(fp);
}

static void make_subdir(char *out, size_t out_len, const char *dir, const char *name)
{
    snprintf(out, out_len, "%s/%s", dir, name);
    assert_int_equal(mkdir(out, 0700), 0);
}

static void test_open_dir_with_other_files_is_not_a_store_and_unchanged(void **state)
{
    struct fixture *f = *state;
    char sub[300], err[256];
    make_subdir(sub, sizeof(sub), f->dir, "home");
    write_file(sub, "notes.txt", "hello", 5);
    uint64_t before = dir_fingerprint(sub);
    struct store_options o = f->opts;
    o.dir = sub;
    struct store *s = NULL;
    assert_int_equal(store_open(&o, &s, err, sizeof(err)), STORE_ERR_NOT_A_STORE);
    assert_non_null(strstr(err, "not a Sol store"));
    assert_int_equal(dir_fingerprint(sub), before);
}

static void test_open_corrupt_data_file_is_corrupt_and_unchanged(void **state)
{
    struct fixture *f = *state;
    char sub[300], err[256];
    make_subdir(sub, sizeof(sub), f->dir, "corrupt");
    uint8_t junk[16384];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)(i * 7 + 3);
    write_file(sub, "data.mdb", junk, sizeof(junk));
    uint64_t before = dir_fingerprint(sub);
    struct store_options o = f->opts;
    o.dir = sub;
    struct store *s = NULL;
    assert_int_equal(store_open(&o, &s, err, sizeof(err)), STORE_ERR_CORRUPT);
    assert_non_null(strstr(err, "data.mdb"));
    assert_int_equal(dir_fingerprint(sub), before);
    o.read_only = true;
    assert_int_equal(store_open(&o, &s, err, sizeof(err)), STORE_ERR_CORRUPT);
    assert_int_equal(dir_fingerprint(sub), before);
}

/* Rewrites every copy of the schema record's value in data.mdb (LMDB has no
 * checksums, and stale copies may sit in freed pages). */
static int patch_schema(const char *dir, uint8_t version)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    uint8_t *buf = malloc((size_t)len);
    assert_non_null(buf);
    fseek(fp, 0, SEEK_SET);
    assert_int_equal(fread(buf, 1, (size_t)len, fp), (size_t)len);
    static const uint8_t pat[] = {'s', 'c', 'h', 'e', 'm', 'a', 0, 0, 0, 2};
    int hits = 0;
    for (long i = 0; i + (long)sizeof(pat) <= len; i++) {
        if (memcmp(buf + i, pat, sizeof(pat)) == 0) {
            buf[i + sizeof(pat) - 1] = version;
            hits++;
        }
    }
    fseek(fp, 0, SEEK_SET);
    assert_int_equal(fwrite(buf, 1, (size_t)len, fp), (size_t)len);
    fclose(fp);
    free(buf);
    return hits;
}

static void test_open_unknown_schema_version_is_refused_and_unchanged(void **state)
{
    struct fixture *f = *state;
    store_close(f->store);
    f->store = NULL;
    assert_true(patch_schema(f->dir, 99) >= 1);
    uint64_t before = dir_fingerprint(f->dir);
    char err[256];
    assert_int_equal(store_open(&f->opts, &f->store, err, sizeof(err)), STORE_ERR_SCHEMA);
    assert_null(f->store);
    assert_non_null(strstr(err, "schema version 99"));
    assert_int_equal(dir_fingerprint(f->dir), before);
    patch_schema(f->dir, 2); /* so teardown's store is sane again */
}

/* An LMDB environment that some other program wrote: made with mdb_load. */
static void test_open_foreign_lmdb_env_is_not_a_store(void **state)
{
    struct fixture *f = *state;
    if (access("/usr/bin/mdb_load", X_OK) != 0)
        skip();
    char sub[300], cmd[700], err[256];
    make_subdir(sub, sizeof(sub), f->dir, "foreign");
    snprintf(cmd, sizeof(cmd),
             "printf 'VERSION=3\\nformat=bytevalue\\ntype=btree\\nHEADER=END\\n 6b6579\\n "
             "76616c\\nDATA=END\\n' | /usr/bin/mdb_load %s",
             sub);
    assert_int_equal(system(cmd), 0);
    uint64_t before = dir_fingerprint(sub);
    struct store_options o = f->opts;
    o.dir = sub;
    struct store *s = NULL;
    assert_int_equal(store_open(&o, &s, err, sizeof(err)), STORE_ERR_NOT_A_STORE);
    assert_int_equal(dir_fingerprint(sub), before);
}

/* ---- damaged stores: refused at open with what is wrong ------------------------- */

static uint8_t *read_whole(const char *dir, size_t *len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    *len = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *buf = malloc(*len ? *len : 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, *len, fp), *len);
    fclose(fp);
    return buf;
}

static void write_whole(const char *dir, const uint8_t *buf, size_t len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(buf, 1, len, fp), len);
    fclose(fp);
}

/* n batches, each one session's message queued for it (1 KiB payloads). */
static void fill(struct store *s, int n, const char *client)
{
    static char payload[1024];
    memset(payload, 'p', sizeof(payload) - 1);
    for (int i = 0; i < n; i++) {
        struct store_batch *b = store_batch_new(s);
        assert_non_null(b);
        put_session(b, client);
        uint64_t id = put_message(b, s, "t/x", payload);
        append(b, client, id, id);
        assert_int_equal(store_batch_commit(b), 0);
    }
}

static void assert_refused_as_damaged(struct fixture *f, const char *what)
{
    char err[1024];
    store_close(f->store);
    f->store = NULL;
    int rc = store_open(&f->opts, &f->store, err, sizeof(err));
    print_message("store_open: %s\n", err);
    assert_int_equal(rc, STORE_ERR_CORRUPT);
    assert_null(f->store);
    assert_non_null(strstr(err, "data.mdb: damaged store"));
    assert_non_null(strstr(err, "solctl check --data-dir"));
    if (what != NULL)
        assert_non_null(strstr(err, what));
}

/* What a power cut leaves with MDB_NOSYNC: the file kept its length (or not),
 * the meta pages are new, the data pages they point at never reached the
 * disk. Sol must refuse the file with a message about damage, never crash
 * (SIGBUS on pages past the end) and never call it "not a Sol store". */
static void test_open_truncated_store_is_damaged_not_a_crash(void **state)
{
    struct fixture *f = *state;
    fill(f->store, 50, "c0");
    store_close(f->store);
    f->store = NULL;
    size_t len;
    uint8_t *buf = read_whole(f->dir, &len);
    write_whole(f->dir, buf, len / 2);
    free(buf);
    assert_refused_as_damaged(f, "meta page uses pages up to");
    f->opts.read_only = true; /* solctl gets the same answer */
    assert_refused_as_damaged(f, "meta page uses pages up to");
}

static void test_open_store_with_lost_data_pages_is_damaged(void **state)
{
    struct fixture *f = *state;
    fill(f->store, 5, "c0");
    store_close(f->store);
    f->store = NULL;
    size_t old_len, new_len;
    uint8_t *old = read_whole(f->dir, &old_len);
    assert_int_equal(reopen(f), 0);
    fill(f->store, 200, "c1");
    store_close(f->store);
    f->store = NULL;
    uint8_t *cur = read_whole(f->dir, &new_len);
    assert_true(new_len > old_len);
    /* keep the two new meta pages, lose every other write since old */
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    memcpy(cur + 2 * page, old + 2 * page, old_len - 2 * page);
    memset(cur + old_len, 0, new_len - old_len);
    write_whole(f->dir, cur, new_len);
    free(old);
    free(cur);
    assert_refused_as_damaged(f, NULL);
}

/* Records written behind the store's back with mdb_load (no lmdb.h here). */
static void mdb_load_into(const char *dir, const char *db, const char *key_hex, const char *val_hex)
{
    char cmd[1200];
    snprintf(cmd, sizeof(cmd),
             "printf 'VERSION=3\\nformat=bytevalue\\ntype=btree\\nHEADER=END\\n %s\\n %s\\n"
             "DATA=END\\n' | /usr/bin/mdb_load -s %s %s",
             key_hex, val_hex, db, dir);
    assert_int_equal(system(cmd), 0);
}

static void test_open_queue_entry_without_its_message_is_damaged(void **state)
{
    struct fixture *f = *state;
    if (access("/usr/bin/mdb_load", X_OK) != 0)
        skip();
    fill(f->store, 3, "c0");
    store_close(f->store);
    f->store = NULL;
    /* queues: "c0" 00 seq 99 -> message 999, QoS 1, queued, packet id 0 */
    mdb_load_into(f->dir, "queues",
                  "633000"
                  "0000000000000063",
                  "00000000000003e7"
                  "01"
                  "00"
                  "0000");
    assert_refused_as_damaged(f, "queues: an entry points at message 999, which is missing");
}

static void test_check_store_option_runs_the_full_check(void **state)
{
    struct fixture *f = *state;
    if (access("/usr/bin/mdb_load", X_OK) != 0)
        skip();
    fill(f->store, 3, "c0");
    store_close(f->store);
    f->store = NULL;
    /* message 2 is referenced once; say 5: only a full walk can tell */
    mdb_load_into(f->dir, "refs", "0000000000000002", "00000005");
    assert_int_equal(reopen(f), 0); /* the bounded sample cannot see it */
    assert_int_equal(count_problems(f->store), 1);
    f->opts.check_full = true;
    assert_refused_as_damaged(f, "reference count 5 but 1 queue entries");
    f->opts.check_full = false;
    assert_int_equal(reopen(f), 0);
}

static void test_open_foreign_or_damaged_main_database_says_both(void **state)
{
    struct fixture *f = *state;
    if (access("/usr/bin/mdb_load", X_OK) != 0)
        skip();
    char sub[300], cmd[700], err[1024];
    make_subdir(sub, sizeof(sub), f->dir, "foreign");
    snprintf(cmd, sizeof(cmd),
             "printf 'VERSION=3\\nformat=bytevalue\\ntype=btree\\nHEADER=END\\n 6b6579\\n "
             "76616c\\nDATA=END\\n' | /usr/bin/mdb_load %s",
             sub);
    assert_int_equal(system(cmd), 0);
    struct store_options o = f->opts;
    o.dir = sub;
    struct store *s = NULL;
    assert_int_equal(store_open(&o, &s, err, sizeof(err)), STORE_ERR_NOT_A_STORE);
    assert_non_null(strstr(err, "not a Sol store, or a damaged one"));
    assert_non_null(strstr(err, "solctl check"));
}

static void test_open_second_writer_is_locked(void **state)
{
    struct fixture *f = *state;
    struct store *s = NULL;
    char err[256];
    assert_int_equal(store_open(&f->opts, &s, err, sizeof(err)), STORE_ERR_LOCKED);
    assert_null(s);
    assert_non_null(strstr(err, "in use"));
}

static void test_open_without_dir_is_invalid(void **state)
{
    (void)state;
    struct store_options o;
    store_options_init(&o);
    o.dir = "";
    struct store *s = NULL;
    char err[128];
    assert_int_equal(store_open(&o, &s, err, sizeof(err)), STORE_ERR_INVALID);
    assert_true(strlen(err) > 0);
}

static void test_strerror_names_every_code(void **state)
{
    (void)state;
    for (int c = STORE_ERR_FATAL; c <= STORE_ERR_FULL; c++)
        assert_string_not_equal(store_strerror(c), "unknown store error");
    assert_string_equal(store_strerror(0), "success");
    assert_non_null(store_strerror(-ENOMEM));
}

/* ---- batch and completion contract --------------------------------------------- */

static void done_reads_store(void *arg, int status)
{
    struct done_log *d = arg;
    done_record(d, status);
    d->saw_data = count_sessions(d->store) == 1; /* runs after the commit */
}

static void test_completions_run_once_in_order_after_commit(void **state)
{
    struct fixture *f = *state;
    struct done_log a = {.store = f->store}, b = {0};
    struct store_batch *batch = store_batch_new(f->store);
    assert_non_null(batch);
    put_session(batch, "c1");
    assert_int_equal(store_batch_on_commit(batch, done_reads_store, &a), 0);
    assert_int_equal(store_batch_on_commit(batch, done_record, &b), 0);
    assert_int_equal(store_batch_on_commit(batch, done_record, &b), 0);
    assert_int_equal(a.calls, 0); /* nothing runs before the commit */
    assert_int_equal(store_batch_commit(batch), 0);
    assert_int_equal(a.calls, 1);
    assert_true(a.saw_data);
    assert_int_equal(a.status[0], 0);
    assert_int_equal(b.calls, 2);
    assert_int_equal(b.status[0], 0);
    assert_int_equal(b.status[1], 0);
}

static void test_empty_batch_runs_completions_with_zero(void **state)
{
    struct fixture *f = *state;
    struct done_log d = {0};
    struct store_batch *batch = store_batch_new(f->store);
    assert_true(store_batch_is_empty(batch));
    assert_int_equal(store_batch_on_commit(batch, done_record, &d), 0);
    assert_true(store_batch_is_empty(batch)); /* completions don't count */
    assert_int_equal(store_batch_commit(batch), 0);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status[0], 0);
}

static void test_discard_runs_completions_canceled_and_writes_nothing(void **state)
{
    struct fixture *f = *state;
    struct done_log d = {0};
    struct store_batch *batch = store_batch_new(f->store);
    put_session(batch, "c1");
    assert_false(store_batch_is_empty(batch));
    assert_int_equal(store_batch_on_commit(batch, done_record, &d), 0);
    store_batch_discard(batch);
    store_batch_discard(NULL);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status[0], STORE_ERR_CANCELED);
    assert_int_equal(count_sessions(f->store), 0);
}

static void test_on_commit_without_fn_is_invalid(void **state)
{
    struct fixture *f = *state;
    struct store_batch *batch = store_batch_new(f->store);
    assert_int_equal(store_batch_on_commit(batch, NULL, NULL), STORE_ERR_INVALID);
    assert_int_equal(store_batch_commit(batch), 0);
}

/* ---- sessions -------------------------------------------------------------------- */

static void test_session_put_and_load_round_trip(void **state)
{
    struct fixture *f = *state;
    struct store_batch *b = store_batch_new(f->store);
    struct store_session s = session_with_will("last/will", "gone");
    assert_int_equal(store_batch_put_session(b, B("alpha"), &s), 0);
    put_session(b, "beta");
    assert_int_equal(store_batch_commit(b), 0);
    struct sessions_seen seen = {0};
    assert_int_equal(store_sessions_foreach(f->store, collect_session, &seen), 0);
    assert_int_equal(seen.count, 2);
    assert_string_equal(seen.ids[0], "alpha");
    assert_string_equal(seen.ids[1], "beta");
    assert_int_equal(seen.first.protocol_level, 4);
    assert_int_equal(seen.first.last_seen_s, 1700000000);
    assert_int_equal(seen.first.expiry_s, 3600);
    assert_int_equal(seen.first.next_packet_id, 42);
    assert_true(seen.first.has_will);
    assert_true(seen.first.will_retain);
    assert_int_equal(seen.first.will_qos, 1);
    assert_false(seen.first.clean_session);
    assert_string_equal(seen.will_topic, "last/will");
    assert_string_equal(seen.will_payload, "gone");
    assert_false(seen.has_queue[0]);
}

static void test_session_put_replaces_record(void **state)
{
    struct fixture *f = *state;
    struct store_batch *b = store_batch_new(f->store);
    struct store_session s = session_with_will("w", "1");
    assert_int_equal(store_batch_put_session(b, B("c"), &s), 0);
    s.has_will = false;
    s.next_packet_id = 7;
    assert_int_equal(store_batch_put_session(b, B("c"), &s), 0);
    assert_int_equal(store_batch_commit(b), 0);
    struct sessions_seen seen = {0};
    assert_int_equal(store_sessions_foreach(f->store, collect_session, &seen), 0);
    assert_int_equal(seen.count, 1);
    assert_false(seen.first.has_will);
    assert_int_equal(seen.first.next_packet_id, 7);
}

/* Client "a" must not see "ab"'s queue: 0x00 sorts before every other byte. */
static void test_sessions_report_last_queue_seq_per_client(void **state)
{
    struct fixture *f = *state;
    struct store_batch *b = store_batch_new(f->store);
    put_session(b, "a");
    put_session(b, "ab");
    put_session(b, "b");
    uint64_t m = put_message(b, f->store, "t", "p");
    append(b, "a", 5, m);
    append(b, "a", 9, m);
    append(b, "ab", 3, m);
    assert_int_equal(store_batch_commit(b), 0);
    struct sessions_seen seen = {0};
    assert_int_equal(store_sessions_foreach(f->store, collect_session, &seen), 0);
    assert_int_equal(seen.count, 3);
    assert_true(seen.has_queue[0]);
    assert_int_equal(seen.last_seq[0], 9);
    assert_true(seen.has_queue[1]);
    assert_int_equal(seen.last_seq[1], 3);
    assert_false(seen.has_queue[2]);
    assert_int_equal(seen.last_seq[2], 0);
    assert_consistent(f->store);
}

static void test_session_delete_drops_subs_queue_qos2_and_message_refs(void **state)
{
    struct fixture *f = *state;
    struct store_batch *b = store_batch_new(f->store);
    put_session(b, "gone");
    put_session(b, "stays");
    assert_int_equal(store_batch_put_subscription(b, B("gone"), B("a/#"), 1, 0), 0);
    assert_int_equal(store_batch_put_subscription(b, B("stays"), B("a/#"), 2, 0), 0);
    uint64_t shared = put_message(b, f->store, "a/1", "shared");
    uint64_t own = put_message(b, f->store, "a/2", "own");
    append(b, "gone", 1, shared);
    append(b, "gone", 2, own);
    append(b, "stays", 1, shared);
    assert_int_equal(store_batch_put_qos2_in(b, B("gone"), 17, 100), 0);
    assert_int_equal(store_batch_commit(b), 0);
    assert_int_equal(count_messages(f->store), 2);

    b = store_batch_new(f->store);
    assert_int_equal(store_batch_delete_session(b, B("gone")), 0);
    assert_int_equal(store_batch_delete_session(b, B("never-existed")), 0);
    assert_int_equal(store_batch_commit(b), 0);

    assert_int_equal(count_sessions(f->store), 1);
    struct subs_seen subs = {0};
    assert_int_equal(store_subscriptions_foreach(f->store, NULL, collect_sub, &subs), 0);
    assert_int_equal(subs.count, 1);
    assert_string_equal(subs.lines[0], "stays|a/#|2");
    assert_int_equal(read_queue(f->store, "gone").count, 0);
    struct store_message *m = NULL;
    uint32_t refs = 0;
    assert_int_equal(store_get_message(f->store, own, &m, &refs), STORE_ERR_NOT_FOUND);
    assert_null(m);
    assert_int_equal(store_get_message(f->store, shared, &m, &refs), 0);
    assert_int_equal(refs, 1);
    free(m);
    assert_int_equal(count_messages(f->store), 1);
    assert_consistent(f->store);
}

/* ---- subscriptions ------------------------------------------------------------- */

static void test_subscriptions_put_delete_and_per_client_walk(void **state)
{
    struct fixture *f = *state;
    struct store_batch *b = store_batch_new(f->store);
    put_session(b, "a");
    put_session(b, "ab");
    assert_int_equal(store_batch_put_subscription(b, B("a"), B("x/+"), 0, 0), 0);
    assert_int_equal(store_batch_put_subscription(b, B("a"), B("y/#"), 1, 0), 0);
    assert_int_equal(store_batch_put_subscription(b, B("ab"), B("z"), 2, 0), 0);
    assert_int_equal(store_batch_put_subscription(b, B("a"), B("x/+"), 2, 0), 0); /* replaces */
    assert_int_equal(store_batch_commit(b), 0);

    struct subs_seen all = {0}, of_a = {0};
    assert_int_equal(store_subscriptions_foreach(f->store, NULL, collect_sub, &all), 0);
    assert_int_equal(all.count, 3);
    assert_string_equal(all.lines[0], "a|x/+|2");
    assert_string_equal(all.lines[1], "a|y/#|1");
    assert_string_equal(all.lines[2], "ab|z|2");
    struct store_bytes a = B("a");
    assert_int_equal(store_subscriptions_foreach(f->store, &a, collect_sub, &of_a), 0);
    assert_int_equal(of_a.count, 2);

    b = store_batch_new(f->store);
    assert_int_equal(store_batch_delete_subscription(b, B("a"), B("y/#")), 0);
    assert_int_equal(store_batch_delete_subscription(b, B("a"), B("not/there")), 0);
    assert_int_equal(store_batch_commit(b), 0);
    struct subs_seen after = {0};
    assert_int_equal(store_subscriptions_foreach(f->store, &a, collect_sub, &after), 0);
    assert_int_equal(after.count, 1);
    assert_consistent(f->store);
}

static int stop_at_first(void *arg, struct store_bytes c, struct store_bytes fl, uint8_t q,
                         uint32_t sub_id)
{
    (void)arg;
    (void)c;
    (void)fl;
    (void)q;
    (void)sub_id;
    return 7;
}

static void test_callback_nonzero_stops_walk_and_is_returned(void **state)
{
    struct fixture *f = *state;
    struct store_batch *b = store_batch_new(f->store);
    put_session(b, "a");
    assert_int_equal(store_batch_put_subscription(b, B("a"), B("1"), 0, 0), 0);
    assert_int_equal(store_batch_put_subscription(b, B("a"), B("2"), 0, 0), 0);
    assert_int_equal(store_batch_commit(b), 0);
    assert_int_equal(store_subscriptions_foreach(f->store, NULL, stop_at_first, NULL), 7);
}

/* ---- retained ------------------------------------------------------------------ */

struct retained_seen {
    int count;
    char topic[4][32];
    char payload[4][32];
    uint32_t payload_len[4];
    uint8_t qos[4];
};

static int collect_retained(void *arg, const struct store_retained *r)
{
    struct retained_seen *s = arg;
    if (s->count < 4) {
        snprintf(s->topic[s->count], 32, "%.*s", (int)r->topic.len, (const char *)r->topic.data);
        snprintf(s->payload[s->count], 32, "%.*s", (int)r->payload.len,
                 (const char *)r->payload.data);
        s->payload_len[s->count] = r->payload_len;
        s->qos[s->count] = r->qos;
    }
    s->count++;
    return 0;
}

static void test_retained_put_get_index_and_delete(void **state)
{
    struct fixture *f = *state;
    struct store_batch *b = store_batch_new(f->store);
    assert_int_equal(put_retained(b, B("home/temp"), 1, B("21.5"), 111), 0);
    assert_int_equal(put_retained(b, B("home/door"), 0, B("open"), 112), 0);
    assert_int_equal(store_batch_commit(b), 0);

    struct retained_seen full = {0}, index = {0};
    assert_int_equal(store_retained_foreach(f->store, collect_retained, &full), 0);
    assert_int_equal(full.count, 2);
    assert_string_equal(full.topic[0], "home/door");
    assert_string_equal(full.payload[0], "open");
    assert_int_equal(store_retained_index_foreach(f->store, collect_retained, &index), 0);
    assert_int_equal(index.count, 2);
    assert_string_equal(index.payload[1], "");
    assert_int_equal(index.payload_len[1], 4);
    assert_int_equal(index.qos[1], 1);

    struct store_retained *r = NULL;
    assert_int_equal(store_get_retained(f->store, B("home/temp"), &r), 0);
    assert_true(bytes_eq(r->payload, "21.5"));
    assert_true(bytes_eq(r->topic, "home/temp"));
    assert_int_equal(r->stored_at_s, 111);
    free(r);

    b = store_batch_new(f->store);
    assert_int_equal(store_batch_delete_retained(b, B("home/temp")), 0);
    assert_int_equal(store_batch_delete_retained(b, B("never")), 0);
    assert_int_equal(store_batch_commit(b), 0);
    assert_int_equal(store_get_retained(f->store, B("home/temp"), &r), STORE_ERR_NOT_FOUND);
    assert_null(r);
}

static void test_retained_empty_payload_round_trips(void **state)
{
    struct fixture *f = *state;
    struct store_batch *b = store_batch_new(f->store);
    assert_int_equal(put_retained(b, B("t"), 2, B(""), 5), 0);
    assert_int_equal(store_batch_commit(b), 0);
    struct store_retained *r = NULL;
    assert_int_equal(store_get_retained(f->store, B("t"), &r), 0);
    assert_int_equal(r->payload.len, 0);
    assert_int_equal(r->qos, 2);
    free(r);
}

/* ---- messages and queues ------------------------------------------------------ */

static void test_message_ids_are_monotonic_and_survive_reopen(void **state)
{
    struct fixture *f = *state;
    uint64_t a = store_next_message_id(f->store);
    uint64_t b = store_next_message_id(f->store);
    assert_true(a >= 1);
    assert_true(b > a);
    struct store_batch *batch = store_batch_new(f->store);
    put_session(batch, "c"); /* any committed batch persists the high-water mark */
    assert_int_equal(store_batch_commit(batch), 0);
    assert_int_equal(reopen(f), 0);
    assert_true(store_next_message_id(f->store) > b);
}

static void test_message_nobody_references_is_not_kept(void **state)
{
    struct fixture *f = *state;
    struct store_batch *b = store_batch_new(f->store);
    uint64_t id = put_message(b, f->store, "t", "qos0 only");
    assert_int_equal(store_batch_commit(b), 0);
    struct store_message *m = NULL;
    assert_int_equal(store_get_message(f->store, id, &m, NULL), STORE_ERR_NOT_FOUND);
    assert_int_equal(count_messages(f->store), 0);
    assert_consistent(f->store);
}

static void test_one_body_per_message_with_refcount_and_garbage(void **state)
{
    struct fixture *f = *state;
    struct store_batch *b = store_batch_new(f->store);
    put_session(b, "c1");
    put_session(b, "c2");
    put_session(b, "c3");
    uint64_t id = put_message(b, f->store, "news", "body");
    append(b, "c1", 1, id);
    append(b, "c2", 1, id);
    append(b, "c3", 1, id);
    assert_int_equal(store_batch_commit(b), 0);
    assert_int_equal(count_messages(f->store), 1); /* one body, three queues */
    struct store_message *m = NULL;
    uint32_t refs = 0;
    assert_int_equal(store_get_message(f->store, id, &m, &refs), 0);
    assert_int_equal(refs, 3);
    assert_true(bytes_eq(m->topic, "news"));
    assert_true(bytes_eq(m->payload, "body"));
    assert_int_equal(m->qos, 1);
    free(m);

    b = store_batch_new(f->store);
    assert_int_equal(store_batch_queue_delete(b, B("c1"), 1), 0);
    assert_int_equal(store_batch_queue_delete(b, B("c1"), 99), 0); /* missing: ignored */
    assert_int_equal(store_batch_commit(b), 0);
    assert_int_equal(store_get_message(f->store, id, &m, &refs), 0);
    assert_int_equal(refs, 2);
    free(m);
    assert_consistent(f->store);

    b = store_batch_new(f->store);
    assert_int_equal(store_batch_queue_delete(b, B("c2"), 1), 0);
    assert_int_equal(store_batch_queue_delete(b, B("c3"), 1), 0);
    assert_int_equal(store_batch_commit(b), 0);
    assert_int_equal(store_get_message(f->store, id, &m, &refs), STORE_ERR_NOT_FOUND);
    assert_int_equal(count_messages(f->store), 0);
    assert_consistent(f->store);
}

static void test_queue_update_changes_state_keeps_message(void **state)
{
    struct fixture *f = *state;
    struct store_batch *b = store_batch_new(f->store);
    put_session(b, "c");
    uint64_t id = put_message(b, f->store, "t", "p");
    struct store_queue_entry e = {.msg_id = id, .qos = 2, .state = STORE_QUEUED};
    assert_int_equal(store_batch_queue_append(b, B("c"), 1, &e), 0);
    assert_int_equal(store_batch_commit(b), 0);

    b = store_batch_new(f->store);
    assert_int_equal(store_batch_queue_update(b, B("c"), 1, STORE_SENT, 10), 0);
    assert_int_equal(store_batch_queue_update(b, B("c"), 2, STORE_SENT, 11), 0); /* ignored */
    assert_int_equal(store_batch_commit(b), 0);
    struct queue_seen q = read_queue(f->store, "c");
    assert_int_equal(q.count, 1);
    assert_int_equal(q.state[0], STORE_SENT);
    assert_int_equal(q.packet_id[0], 10);
    assert_int_equal(q.msg_id[0], id);

    b = store_batch_new(f->store);
    assert_int_equal(store_batch_queue_update(b, B("c"), 1, STORE_PUBREC_RECEIVED, 10), 0);
    assert_int_equal(store_batch_commit(b), 0);
    q = read_queue(f->store, "c");
    assert_int_equal(q.state[0], STORE_PUBREC_RECEIVED);
    assert_int_equal(q.refcount[0], 1);
    assert_consistent(f->store);
}

static void test_queue_append_of_unknown_message_fails_batch_writes_nothing(void **state)
{
    struct fixture *f = *state;
    struct done_log d = {0};
    struct store_batch *b = store_batch_new(f->store);
    put_session(b, "c");
    append(b, "c", 1, 424242);
    assert_int_equal(store_batch_on_commit(b, done_record, &d), 0);
    assert_int_equal(store_batch_commit(b), STORE_ERR_NOT_FOUND);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status[0], STORE_ERR_NOT_FOUND);
    assert_int_equal(count_sessions(f->store), 0);
}

static void test_queue_append_over_existing_seq_fails(void **state)
{
    struct fixture *f = *state;
    struct store_batch *b = store_batch_new(f->store);
    put_session(b, "c");
    uint64_t id = put_message(b, f->store, "t", "p");
    append(b, "c", 1, id);
    assert_int_equal(store_batch_commit(b), 0);
    b = store_batch_new(f->store);
    append(b, "c", 1, id);
    assert_int_equal(store_batch_commit(b), STORE_ERR_EXISTS);
    assert_int_equal(read_queue(f->store, "c").refcount[0], 1);
    assert_consistent(f->store);
}

static void test_queue_read_is_bounded_and_in_seq_order(void **state)
{
    struct fixture *f = *state;
    struct store_batch *b = store_batch_new(f->store);
    put_session(b, "c");
    put_session(b, "c2");
    uint64_t ids[10];
    /* appended out of order, with seqs above 255 to exercise big-endian order */
    for (int i = 9; i >= 0; i--) {
        char payload[16];
        snprintf(payload, sizeof(payload), "m%d", i);
        ids[i] = put_message(b, f->store, "t", payload);
        append(b, "c", 250 + (uint64_t)i * 3, ids[i]);
    }
    append(b, "c2", 1, ids[0]);
    assert_int_equal(store_batch_commit(b), 0);

    struct queue_seen q = {0};
    assert_int_equal(store_queue_read(f->store, B("c"), 0, 4, collect_queue, &q), 4);
    assert_int_equal(q.seq[0], 250);
    assert_int_equal(q.seq[3], 259);
    assert_string_equal(q.payload[0], "m0");
    assert_true(q.has_message[0]);
    struct queue_seen rest = {0};
    int n = store_queue_read(f->store, B("c"), q.seq[3] + 1, 4, collect_queue, &rest);
    assert_int_equal(n, 4);
    assert_int_equal(rest.seq[0], 262);
    struct queue_seen tail = {0};
    n = store_queue_read(f->store, B("c"), rest.seq[3] + 1, 4, collect_queue, &tail);
    assert_int_equal(n, 2); /* fewer than asked: the end */
    assert_int_equal(tail.seq[1], 277);
    assert_string_equal(tail.payload[1], "m9");
    assert_int_equal(store_queue_read(f->store, B("c"), 278, 4, collect_queue, &tail), 2 * 0);
    assert_int_equal(store_queue_read(f->store, B("c"), 0, 0, collect_queue, &tail), 0);

    struct queue_seen all = {0};
    assert_int_equal(store_queues_foreach(f->store, NULL, collect_queue, &all), 0);
    assert_int_equal(all.count, 11);
    assert_false(all.has_message[0]); /* index-only */
    assert_consistent(f->store);
}

/* ---- incoming QoS 2 and counters ---------------------------------------------- */

struct qos2_seen {
    int count;
    uint16_t pkid[8];
    uint64_t at[8];
};

static int collect_qos2(void *arg, struct store_bytes c, uint16_t pkid, uint64_t at)
{
    (void)c;
    struct qos2_seen *s = arg;
    if (s->count < 8) {
        s->pkid[s->count] = pkid;
        s->at[s->count] = at;
    }
    s->count++;
    return 0;
}

static void test_qos2_in_put_and_delete(void **state)
{
    struct fixture *f = *state;
    struct store_batch *b = store_batch_new(f->store);
    put_session(b, "c");
    assert_int_equal(store_batch_put_qos2_in(b, B("c"), 300, 9), 0);
    assert_int_equal(store_batch_put_qos2_in(b, B("c"), 2, 8), 0);
    assert_int_equal(store_batch_put_qos2_in(b, B("c"), 0, 8), STORE_ERR_INVALID);
    assert_int_equal(store_batch_commit(b), 0);
    struct qos2_seen s = {0};
    struct store_bytes c = B("c");
    assert_int_equal(store_qos2_foreach(f->store, &c, collect_qos2, &s), 0);
    assert_int_equal(s.count, 2);
    assert_int_equal(s.pkid[0], 2);
    assert_int_equal(s.pkid[1], 300);
    assert_int_equal(s.at[1], 9);
    b = store_batch_new(f->store);
    assert_int_equal(store_batch_delete_qos2_in(b, B("c"), 2), 0);
    assert_int_equal(store_batch_delete_qos2_in(b, B("c"), 3), 0);
    assert_int_equal(store_batch_commit(b), 0);
    struct qos2_seen after = {0};
    assert_int_equal(store_qos2_foreach(f->store, NULL, collect_qos2, &after), 0);
    assert_int_equal(after.count, 1);
    assert_consistent(f->store);
}

/* ---- bridge queues -------------------------------------------------------------- */

struct bridge_seen {
    struct queue_seen q;
    bool retain[64];
    char name[64][32];
};

static int collect_bridge(void *arg, const struct store_queue_item *it)
{
    struct bridge_seen *b = arg;
    int i = b->q.count;
    if (i < 64) {
        b->retain[i] = it->entry.retain;
        snprintf(b->name[i], 32, "%.*s", (int)it->client_id.len, (const char *)it->client_id.data);
    }
    return collect_queue(&b->q, it);
}

static struct bridge_seen read_bridge(struct store *s, const char *bridge, uint64_t from)
{
    struct bridge_seen b = {0};
    int n = store_bridge_queue_read(s, B(bridge), from, 1000, collect_bridge, &b);
    assert_true(n >= 0);
    assert_int_equal(n, b.q.count);
    return b;
}

static void bridge_append(struct store_batch *b, const char *bridge, uint64_t seq, uint64_t msg_id,
                          bool retain)
{
    struct store_queue_entry e = {
        .msg_id = msg_id, .qos = 1, .state = STORE_QUEUED, .retain = retain};
    assert_int_equal(store_batch_bridge_append(b, B(bridge), seq, &e), 0);
}

/* A message bound for a subscriber and a bridge is stored once and counted
 * twice; the bridge's entries keep their retain flag and seq order, need no
 * session, and take the body with their last reference. */
static void test_bridge_queue_shares_bodies_and_keeps_order_and_retain(void **state)
{
    struct fixture *f = *state;
    struct store_batch *b = store_batch_new(f->store);
    put_session(b, "c");
    uint64_t m1 = put_message(b, f->store, "a/1", "one");
    uint64_t m2 = put_message(b, f->store, "a/2", "two");
    append(b, "c", 1, m1);
    bridge_append(b, "edge", 7, m1, false);
    bridge_append(b, "edge", 8, m2, true);
    bridge_append(b, "other", 1, m2, false);
    assert_int_equal(store_batch_commit(b), 0);
    assert_consistent(f->store);

    struct bridge_seen seen = read_bridge(f->store, "edge", 0);
    assert_int_equal(seen.q.count, 2);
    assert_int_equal(seen.q.seq[0], 7);
    assert_int_equal(seen.q.seq[1], 8);
    assert_string_equal(seen.q.payload[0], "one");
    assert_string_equal(seen.q.payload[1], "two");
    assert_false(seen.retain[0]);
    assert_true(seen.retain[1]);
    assert_int_equal(seen.q.refcount[0], 2); /* the client's queue and this one */
    assert_string_equal(seen.name[0], "edge");
    assert_int_equal(read_bridge(f->store, "edge", 8).q.count, 1);

    b = store_batch_new(f->store);
    assert_int_equal(store_batch_bridge_update(b, B("edge"), 8, STORE_PUBREC_RECEIVED, 11), 0);
    assert_int_equal(store_batch_bridge_delete(b, B("edge"), 7), 0);
    assert_int_equal(store_batch_bridge_delete(b, B("edge"), 99), 0); /* missing: ignored */
    assert_int_equal(store_batch_commit(b), 0);
    assert_int_equal(reopen(f), 0);
    seen = read_bridge(f->store, "edge", 0);
    assert_int_equal(seen.q.count, 1);
    assert_int_equal(seen.q.state[0], STORE_PUBREC_RECEIVED);
    assert_int_equal(seen.q.packet_id[0], 11);
    assert_true(seen.retain[0]); /* an update keeps the flags */
    assert_int_equal(count_messages(f->store), 2);
    assert_consistent(f->store);

    b = store_batch_new(f->store);
    assert_int_equal(store_batch_queue_delete(b, B("c"), 1), 0);
    assert_int_equal(store_batch_bridge_delete(b, B("edge"), 8), 0);
    assert_int_equal(store_batch_commit(b), 0);
    assert_int_equal(count_messages(f->store), 1); /* m2, still in "other" */
    b = store_batch_new(f->store);
    assert_int_equal(store_batch_bridge_delete(b, B("other"), 1), 0);
    assert_int_equal(store_batch_commit(b), 0);
    assert_int_equal(count_messages(f->store), 0);
    assert_consistent(f->store);
}

static void test_bridge_append_of_unknown_message_or_existing_seq_fails(void **state)
{
    struct fixture *f = *state;
    struct store_batch *b = store_batch_new(f->store);
    bridge_append(b, "edge", 1, 12345, false);
    assert_int_equal(store_batch_commit(b), STORE_ERR_NOT_FOUND);
    b = store_batch_new(f->store);
    uint64_t m = put_message(b, f->store, "t", "p");
    bridge_append(b, "edge", 1, m, false);
    assert_int_equal(store_batch_commit(b), 0);
    b = store_batch_new(f->store);
    bridge_append(b, "edge", 1, m, false);
    assert_int_equal(store_batch_commit(b), STORE_ERR_EXISTS);
    struct store_queue_entry bad = {.msg_id = m, .qos = 1, .state = STORE_SENT}; /* no pkid */
    b = store_batch_new(f->store);
    assert_int_equal(store_batch_bridge_append(b, B("edge"), 2, &bad), STORE_ERR_INVALID);
    assert_int_equal(store_batch_bridge_append(b, B(""), 2, &bad), STORE_ERR_INVALID);
    store_batch_discard(b);
    assert_int_equal(read_bridge(f->store, "edge", 0).q.count, 1);
    assert_consistent(f->store);
}

struct bridge_names {
    int count;
    char name[8][32];
    uint64_t entries[8];
};

static int collect_bridge_name(void *arg, struct store_bytes name, uint64_t count)
{
    struct bridge_names *n = arg;
    if (n->count < 8) {
        snprintf(n->name[n->count], 32, "%.*s", (int)name.len, (const char *)name.data);
        n->entries[n->count] = count;
    }
    n->count++;
    return 0;
}

/* What start-up reads: per bridge, the entries, their payload bytes and
 * the seq range; and which bridges have queues at all. */
static void test_bridge_queue_info_and_names(void **state)
{
    struct fixture *f = *state;
    struct store_batch *b = store_batch_new(f->store);
    uint64_t m1 = put_message(b, f->store, "t", "12345");
    uint64_t m2 = put_message(b, f->store, "t", "123");
    bridge_append(b, "a", 3, m1, false);
    bridge_append(b, "a", 9, m2, false);
    bridge_append(b, "ab", 1, m2, false);
    assert_int_equal(store_batch_commit(b), 0);
    struct store_bridge_queue_info info;
    assert_int_equal(store_bridge_queue_info(f->store, B("a"), &info), 0);
    assert_int_equal(info.count, 2);
    assert_int_equal(info.bytes, 8);
    assert_int_equal(info.first_seq, 3);
    assert_int_equal(info.last_seq, 9);
    assert_int_equal(store_bridge_queue_info(f->store, B("none"), &info), 0);
    assert_int_equal(info.count, 0);
    assert_int_equal(info.last_seq, 0);
    struct bridge_names names = {0};
    assert_int_equal(store_bridge_names_foreach(f->store, collect_bridge_name, &names), 0);
    assert_int_equal(names.count, 2);
    assert_string_equal(names.name[0], "a");
    assert_int_equal(names.entries[0], 2);
    assert_string_equal(names.name[1], "ab");
    assert_int_equal(names.entries[1], 1);
}

static void test_bridge_qos2_in_put_and_delete(void **state)
{
    struct fixture *f = *state;
    struct store_batch *b = store_batch_new(f->store);
    assert_int_equal(store_batch_put_bridge_qos2_in(b, B("edge"), 7, 100), 0);
    assert_int_equal(store_batch_put_bridge_qos2_in(b, B("edge"), 0, 100), STORE_ERR_INVALID);
    assert_int_equal(store_batch_commit(b), 0);
    struct qos2_seen s = {0};
    struct store_bytes edge = B("edge");
    assert_int_equal(store_bridge_qos2_foreach(f->store, &edge, collect_qos2, &s), 0);
    assert_int_equal(s.count, 1);
    assert_int_equal(s.pkid[0], 7);
    struct qos2_seen clients = {0};
    assert_int_equal(store_qos2_foreach(f->store, NULL, collect_qos2, &clients), 0);
    assert_int_equal(clients.count, 0); /* apart from the clients' */
    b = store_batch_new(f->store);
    assert_int_equal(store_batch_delete_bridge_qos2_in(b, B("edge"), 7), 0);
    assert_int_equal(store_batch_commit(b), 0);
    struct qos2_seen after = {0};
    assert_int_equal(store_bridge_qos2_foreach(f->store, NULL, collect_qos2, &after), 0);
    assert_int_equal(after.count, 0);
    assert_consistent(f->store);
}

struct problem_match {
    const char *what;
    int hits;
};

static void match_problem(void *arg, const char *problem)
{
    struct problem_match *m = arg;
    print_message("check: %s\n", problem);
    if (strstr(problem, m->what) != NULL)
        m->hits++;
}

/* solctl check (store_check) reads the bridge queues: an entry whose
 * message is gone, and the reference count that no longer adds up. */
static void test_check_reports_a_bridge_entry_without_its_message(void **state)
{
    struct fixture *f = *state;
    if (access("/usr/bin/mdb_load", X_OK) != 0)
        skip();
    struct store_batch *b = store_batch_new(f->store);
    uint64_t m = put_message(b, f->store, "t", "p");
    bridge_append(b, "e", 1, m, false);
    assert_int_equal(store_batch_commit(b), 0);
    store_close(f->store);
    f->store = NULL;
    /* bridge_queues: "e" 00 seq 2 -> message 999, QoS 1, queued, packet id 0, no flags */
    mdb_load_into(f->dir, "bridge_queues",
                  "6500"
                  "0000000000000002",
                  "00000000000003e7"
                  "01"
                  "00"
                  "0000"
                  "00");
    f->opts.read_only = true;
    assert_int_equal(reopen(f), 0);
    struct problem_match pm = {"bridge_queues: entry 'e' #2 points at missing message 999", 0};
    assert_true(store_check(f->store, match_problem, &pm) >= 1);
    assert_int_equal(pm.hits, 1);
}

/* Copies every database of src but the two bridge ones into dst with
 * mdb_dump | mdb_load: a store as the build before bridges wrote it. */
static void copy_without_bridge_dbs(const char *src, const char *dst)
{
    static const char *const dbs[] = {"meta",     "sessions", "subs",   "retained",
                                      "messages", "refs",     "queues", "qos2in"};
    char cmd[1400];
    assert_int_equal(mkdir(dst, 0700), 0);
    for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
        snprintf(cmd, sizeof(cmd), "/usr/bin/mdb_dump -s %s %s | /usr/bin/mdb_load -s %s %s",
                 dbs[i], src, dbs[i], dst);
        assert_int_equal(system(cmd), 0);
    }
}

/* A store written before bridges (no bridge databases) opens: read-only it
 * reads them as empty and changes nothing; read-write adds them and keeps
 * every record and the schema version. */
static void test_open_store_from_before_bridges_adds_their_databases(void **state)
{
    struct fixture *f = *state;
    if (access("/usr/bin/mdb_dump", X_OK) != 0 || access("/usr/bin/mdb_load", X_OK) != 0)
        skip();
    fill(f->store, 3, "c0");
    store_close(f->store);
    f->store = NULL;
    char old[300];
    snprintf(old, sizeof(old), "%s/old", f->dir);
    copy_without_bridge_dbs(f->dir, old);
    struct store_options o = f->opts;
    o.dir = old;
    o.read_only = true;
    char err[256];
    struct store *s = NULL;
    uint64_t before = dir_fingerprint(old);
    assert_int_equal(store_open(&o, &s, err, sizeof(err)), 0);
    assert_int_equal(read_bridge(s, "edge", 0).q.count, 0);
    struct bridge_names names = {0};
    assert_int_equal(store_bridge_names_foreach(s, collect_bridge_name, &names), 0);
    assert_int_equal(names.count, 0);
    struct store_stats st;
    assert_int_equal(store_stats(s, &st), 0);
    assert_int_equal(st.dbs[STORE_DB_COUNT - 1].entries, 0);
    assert_consistent(s);
    store_close(s);
    assert_int_equal(dir_fingerprint(old), before);

    o.read_only = false;
    assert_int_equal(store_open(&o, &s, err, sizeof(err)), 0);
    assert_int_equal(count_sessions(s), 1);
    assert_int_equal(read_queue(s, "c0").count, 3);
    struct store_batch *b = store_batch_new(s);
    uint64_t m = put_message(b, s, "t", "p");
    bridge_append(b, "edge", 1, m, false);
    assert_int_equal(store_batch_commit(b), 0);
    assert_int_equal(read_bridge(s, "edge", 0).q.count, 1);
    assert_int_equal(store_stats(s, &st), 0);
    assert_int_equal(st.schema_version, 2); /* unchanged: this build writes schema 2 */
    assert_consistent(s);
    store_close(s);
}

static void test_counter_set_and_get(void **state)
{
    struct fixture *f = *state;
    uint64_t v = 0;
    assert_int_equal(store_get_counter(f->store, "restarts", &v), STORE_ERR_NOT_FOUND);
    struct store_batch *b = store_batch_new(f->store);
    assert_int_equal(store_batch_set_counter(b, "restarts", 5), 0);
    assert_int_equal(store_batch_set_counter(b, "Bad Name", 5), STORE_ERR_INVALID);
    assert_int_equal(store_batch_commit(b), 0);
    assert_int_equal(store_get_counter(f->store, "restarts", &v), 0);
    assert_int_equal(v, 5);
    assert_consistent(f->store);
}

/* ---- argument checks and key limits -------------------------------------------- */

static void test_key_too_long_is_refused_and_batch_stays_usable(void **state)
{
    struct fixture *f = *state;
    size_t max_id = store_max_client_id_len(f->store);
    assert_int_equal(max_id, store_max_key_len(f->store) - 9);
    char *id = malloc(max_id + 2);
    memset(id, 'x', max_id + 1);
    id[max_id + 1] = 0;
    struct store_session s = session_with_will(NULL, NULL);
    struct store_batch *b = store_batch_new(f->store);
    assert_int_equal(store_batch_put_session(b, B(id), &s), STORE_ERR_KEY_TOO_LONG);
    id[max_id] = 0; /* exactly the maximum */
    assert_int_equal(store_batch_put_session(b, B(id), &s), 0);
    /* filter: client + 00 + filter <= max key */
    char *filter = malloc(store_max_key_len(f->store) + 1);
    size_t room = store_max_key_len(f->store) - 2;
    memset(filter, 'f', room + 1);
    filter[room + 1] = 0;
    assert_int_equal(store_batch_put_subscription(b, B("a"), B(filter), 0, 0),
                     STORE_ERR_KEY_TOO_LONG);
    filter[room] = 0;
    assert_int_equal(store_batch_put_subscription(b, B("a"), B(filter), 0, 0), 0);
    char *topic = malloc(store_max_key_len(f->store) + 2);
    memset(topic, 't', store_max_key_len(f->store) + 1);
    topic[store_max_key_len(f->store) + 1] = 0;
    assert_int_equal(put_retained(b, B(topic), 0, B("p"), 1), STORE_ERR_KEY_TOO_LONG);
    put_session(b, "a");
    assert_int_equal(store_batch_commit(b), 0); /* not sticky */
    assert_int_equal(count_sessions(f->store), 2);
    /* a long message topic is a value, not a key: fine */
    b = store_batch_new(f->store);
    put_session(b, "long");
    uint64_t mid = put_message(b, f->store, topic, "p");
    append(b, "long", 1, mid);
    assert_int_equal(store_batch_commit(b), 0);
    free(id);
    free(filter);
    free(topic);
    assert_consistent(f->store);
}

static void test_invalid_arguments_are_refused(void **state)
{
    struct fixture *f = *state;
    struct store_batch *b = store_batch_new(f->store);
    struct store_session s = session_with_will(NULL, NULL);
    const uint8_t nul_id[] = {'a', 0, 'b'};
    assert_int_equal(store_batch_put_session(b, B(""), &s), STORE_ERR_INVALID);
    assert_int_equal(store_batch_put_session(b, (struct store_bytes){nul_id, 3}, &s),
                     STORE_ERR_INVALID);
    s.has_will = true;
    s.will_topic = B("");
    assert_int_equal(store_batch_put_session(b, B("c"), &s), STORE_ERR_INVALID);
    assert_int_equal(store_batch_put_subscription(b, B("c"), B("t"), 3, 0), STORE_ERR_INVALID);
    assert_int_equal(store_batch_put_subscription(b, B("c"), B(""), 1, 0), STORE_ERR_INVALID);
    struct store_message m = {.topic = B("t"), .payload = B("p"), .qos = 3};
    assert_int_equal(store_batch_put_message(b, 1, &m), STORE_ERR_INVALID);
    m.qos = 0;
    assert_int_equal(store_batch_put_message(b, 0, &m), STORE_ERR_INVALID);
    struct store_queue_entry e = {.msg_id = 1, .qos = 1, .state = STORE_SENT, .packet_id = 0};
    assert_int_equal(store_batch_queue_append(b, B("c"), 1, &e), STORE_ERR_INVALID);
    assert_int_equal(store_batch_queue_update(b, B("c"), 1, STORE_SENT, 0), STORE_ERR_INVALID);
    assert_true(store_batch_is_empty(b));
    assert_int_equal(store_batch_commit(b), 0);
}

/* ---- full map, growth, persistence ------------------------------------------------ */

static void test_commit_over_max_map_fails_full_writes_nothing_store_usable(void **state)
{
    struct fixture *f = *state;
    size_t big_len = 2 * MIB;
    char *big = malloc(big_len + 1);
    memset(big, 'z', big_len);
    big[big_len] = 0;
    struct done_log d = {0};
    struct store_batch *b = store_batch_new(f->store);
    put_session(b, "c");
    uint64_t id = put_message(b, f->store, "t", big);
    append(b, "c", 1, id);
    assert_int_equal(store_batch_on_commit(b, done_record, &d), 0);
    assert_int_equal(store_batch_commit(b), STORE_ERR_FULL);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status[0], STORE_ERR_FULL);
    assert_int_equal(count_sessions(f->store), 0); /* nothing partially written */
    assert_int_equal(count_messages(f->store), 0);
    free(big);

    b = store_batch_new(f->store); /* still usable */
    put_session(b, "c");
    assert_int_equal(store_batch_commit(b), 0);
    assert_int_equal(count_sessions(f->store), 1);
    assert_consistent(f->store);
    assert_int_equal(reopen(f), 0);
    assert_int_equal(count_sessions(f->store), 1);
}

/* ---- quotas before records, fail-stop (issue 10) ----------------------------- */

/* Reservations stop short of the headroom, so every commit of reserved
 * records succeeds; then deletes, which reserve nothing, still commit and
 * give the room back. */
static void test_reserve_stops_at_the_headroom_and_deletes_still_commit(void **state)
{
    struct fixture *f = *state;
    char body[4097];
    memset(body, 'b', sizeof(body) - 1);
    body[sizeof(body) - 1] = 0;
    uint64_t seq = 0;
    bool refused = false;
    for (int round = 0; round < 1000 && !refused; round++) {
        struct store_batch *b = store_batch_new(f->store);
        if (round == 0)
            put_session(b, "c");
        for (int i = 0; i < 8; i++) {
            if (store_batch_reserve(b, sizeof(body), 1) == STORE_ERR_FULL) {
                refused = true;
                break;
            }
            append(b, "c", ++seq, put_message(b, f->store, "t", body));
        }
        assert_int_equal(store_batch_commit(b), 0); /* never a full map at commit */
    }
    assert_true(refused);
    assert_true(seq > 16); /* a 1 MiB map takes more than a few */
    struct store_batch *b = store_batch_new(f->store);
    int reserved = 0;
    while (reserved < 8 && store_batch_reserve(b, sizeof(body), 1) == 0)
        reserved++;
    assert_true(reserved < 8); /* still full */
    for (uint64_t s = 1; s <= seq; s++)
        assert_int_equal(store_batch_queue_delete(b, B("c"), s), 0);
    assert_int_equal(store_batch_commit(b), 0); /* deletes drain a full store */
    assert_int_equal(count_messages(f->store), 0);
    b = store_batch_new(f->store);
    assert_int_equal(store_batch_reserve(b, sizeof(body), 1), 0); /* room again */
    store_batch_discard(b);
    assert_consistent(f->store);
}

/* The test binary interposes fdatasync (liblmdb calls it through the PLT):
 * while sync_fails is set, every sync of the store fails with EIO. */
static bool sync_fails;

int fdatasync(int fd)
{
    static int (*real)(int);
    if (sync_fails) {
        errno = EIO;
        return -1;
    }
    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    return real(fd);
}

/* After a failed fdatasync the kernel may have dropped the pages: no later
 * commit or flush is attempted (a retry could "succeed" without them), and
 * a reopened store has the last good commit. */
static void test_eio_on_sync_is_fatal_and_sticky(void **state)
{
    struct fixture *f = *state;
    f->opts.sync = STORE_SYNC_FSYNC;
    assert_int_equal(reopen(f), 0);
    struct store_batch *b = store_batch_new(f->store);
    put_session(b, "before");
    assert_int_equal(store_batch_commit(b), 0);
    b = store_batch_new(f->store);
    put_session(b, "lost");
    struct done_log d = {0};
    assert_int_equal(store_batch_on_commit(b, done_record, &d), 0);
    sync_fails = true;
    assert_int_equal(store_batch_commit(b), STORE_ERR_FATAL);
    sync_fails = false;
    assert_int_equal(d.status[0], STORE_ERR_FATAL);
    assert_true(store_has_failed(f->store));
    b = store_batch_new(f->store);
    put_session(b, "after");
    assert_int_equal(store_batch_commit(b), STORE_ERR_FATAL); /* not retried */
    assert_int_equal(store_flush(f->store), STORE_ERR_FATAL);
    assert_int_equal(reopen(f), 0);
    assert_false(store_has_failed(f->store));
    assert_int_equal(count_sessions(f->store), 1); /* "before" only */
    assert_consistent(f->store);
}

static void test_map_grows_by_itself_up_to_max(void **state)
{
    struct fixture *f = *state;
    struct store_stats st;
    assert_int_equal(store_stats(f->store, &st), 0);
    uint64_t before = st.map_size;
    size_t len = 512 * 1024;
    char *payload = malloc(len + 1);
    memset(payload, 'p', len);
    payload[len] = 0;
    struct store_batch *b = store_batch_new(f->store);
    put_session(b, "c");
    for (int i = 0; i < 12; i++) /* 6 MiB in one batch, into a 1 MiB map */
        append(b, "c", (uint64_t)i + 1, put_message(b, f->store, "t", payload));
    assert_int_equal(store_batch_commit(b), 0);
    for (int round = 0; round < 3; round++) { /* and again in many small batches */
        b = store_batch_new(f->store);
        append(b, "c", 100 + (uint64_t)round, put_message(b, f->store, "t", payload));
        assert_int_equal(store_batch_commit(b), 0);
    }
    free(payload);
    assert_int_equal(store_stats(f->store, &st), 0);
    assert_true(st.map_size > before);
    assert_true(st.map_size <= st.max_map_size);
    assert_true(st.map_used > 6 * MIB);
    assert_int_equal(read_queue(f->store, "c").count, 15);
    assert_consistent(f->store);
    assert_int_equal(reopen(f), 0); /* reopening keeps the larger map */
    assert_int_equal(store_stats(f->store, &st), 0);
    assert_true(st.map_size >= 6 * MIB);
}

/* ---- the storage thread (committer.c) ---------------------------------------------- */

static void count_notify(void *arg)
{
    __atomic_fetch_add((int *)arg, 1, __ATOMIC_SEQ_CST);
}

/* Completions run on the owner, in store_commit_collect(), never earlier;
 * one batch at a time; what the thread committed is in the store. */
static void test_committer_commits_off_thread_and_completes_on_collect(void **state)
{
    struct fixture *f = *state;
    int notified = 0;
    assert_int_equal(store_committer_start(f->store, count_notify, &notified), 0);
    struct done_log d = {0};
    struct store_batch *b = store_batch_new(f->store);
    put_session(b, "a");
    assert_int_equal(store_batch_on_commit(b, done_record, &d), 0);
    assert_int_equal(store_batch_commit_async(b), STORE_COMMIT_STARTED);
    assert_true(store_commit_in_flight(f->store));
    struct store_batch *second = store_batch_new(f->store);
    put_session(second, "b");
    assert_int_equal(store_batch_commit_async(second), STORE_ERR_INVALID); /* one at a time */
    assert_int_equal(d.calls, 0); /* not before the owner collects */
    assert_int_equal(store_commit_collect(f->store, true), 0);
    assert_false(store_commit_in_flight(f->store));
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status[0], 0);
    assert_int_equal(__atomic_load_n(&notified, __ATOMIC_SEQ_CST), 1);
    assert_int_equal(store_commit_collect(f->store, false), STORE_ERR_INVALID); /* nothing left */
    assert_int_equal(store_batch_commit_async(second), STORE_COMMIT_STARTED);
    store_committer_stop(f->store); /* collects what is in flight, then joins */
    assert_false(store_commit_in_flight(f->store));
    assert_int_equal(count_sessions(f->store), 2);
    assert_int_equal(reopen(f), 0);
    assert_int_equal(count_sessions(f->store), 2);
}

/* The manual committer: in flight until a waiting collect commits it on the
 * caller; a collect without wait leaves it there. */
static void test_manual_committer_commits_only_when_collected(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(store_committer_start_manual(f->store), 0);
    struct done_log d = {0};
    struct store_batch *b = store_batch_new(f->store);
    put_session(b, "m");
    assert_int_equal(store_batch_on_commit(b, done_record, &d), 0);
    assert_int_equal(store_batch_commit_async(b), STORE_COMMIT_STARTED);
    assert_int_equal(store_commit_collect(f->store, false), STORE_COMMIT_STARTED);
    assert_int_equal(count_sessions(f->store), 0); /* not written yet */
    assert_int_equal(d.calls, 0);
    assert_int_equal(store_commit_collect(f->store, true), 0);
    assert_int_equal(d.calls, 1);
    assert_int_equal(count_sessions(f->store), 1);
    assert_false(store_commit_in_flight(f->store));
}

/* A batch with nothing to write never reaches the thread. */
static void test_committer_empty_batch_completes_at_once(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(store_committer_start(f->store, NULL, NULL), 0);
    struct done_log d = {0};
    struct store_batch *b = store_batch_new(f->store);
    assert_int_equal(store_batch_on_commit(b, done_record, &d), 0);
    assert_int_equal(store_batch_commit_async(b), 0);
    assert_int_equal(d.calls, 1);
    assert_false(store_commit_in_flight(f->store));
}

/* MDB_MAP_FULL on the thread: the owner grows the map (no transaction open
 * anywhere then) and hands the batch over again; nothing is lost. */
static void test_committer_grows_the_map_on_the_owner(void **state)
{
    struct fixture *f = *state;
    struct store_stats st;
    assert_int_equal(store_stats(f->store, &st), 0);
    uint64_t before = st.map_size;
    assert_int_equal(store_committer_start(f->store, NULL, NULL), 0);
    size_t len = 512 * 1024;
    char *payload = malloc(len + 1);
    assert_non_null(payload);
    memset(payload, 'p', len);
    payload[len] = 0;
    struct store_batch *b = store_batch_new(f->store);
    put_session(b, "c");
    for (int i = 0; i < 6; i++) /* 3 MiB in one batch, into a 1 MiB map */
        append(b, "c", (uint64_t)i + 1, put_message(b, f->store, "t", payload));
    free(payload);
    assert_int_equal(store_batch_commit_async(b), STORE_COMMIT_STARTED);
    int rc;
    while ((rc = store_commit_collect(f->store, true)) == STORE_COMMIT_STARTED)
        ;
    assert_int_equal(rc, 0);
    assert_int_equal(store_stats(f->store, &st), 0);
    assert_true(st.map_size > before);
    assert_int_equal(read_queue(f->store, "c").count, 6);
    assert_consistent(f->store);
}

/* A map that cannot grow: the batch fails with FULL, on the owner. */
static void test_committer_full_map_fails_the_batch(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(store_committer_start(f->store, NULL, NULL), 0);
    size_t len = 512 * 1024;
    char *payload = malloc(len + 1);
    assert_non_null(payload);
    memset(payload, 'p', len);
    payload[len] = 0;
    struct done_log d = {0};
    struct store_batch *b = store_batch_new(f->store);
    put_session(b, "c");
    for (int i = 0; i < 4; i++) /* 2 MiB into a map that stays at 1 MiB */
        append(b, "c", (uint64_t)i + 1, put_message(b, f->store, "t", payload));
    free(payload);
    assert_int_equal(store_batch_on_commit(b, done_record, &d), 0);
    assert_int_equal(store_batch_commit_async(b), STORE_COMMIT_STARTED);
    int rc;
    while ((rc = store_commit_collect(f->store, true)) == STORE_COMMIT_STARTED)
        ;
    assert_int_equal(rc, STORE_ERR_FULL);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status[0], STORE_ERR_FULL);
    assert_false(store_has_failed(f->store)); /* full is not fatal: deletes still work */
    assert_int_equal(count_sessions(f->store), 0);
}

static void test_everything_persists_across_reopen(void **state)
{
    struct fixture *f = *state;
    struct store_batch *b = store_batch_new(f->store);
    struct store_session s = session_with_will("w/t", "bye");
    assert_int_equal(store_batch_put_session(b, B("c"), &s), 0);
    assert_int_equal(store_batch_put_subscription(b, B("c"), B("a/+"), 1, 0), 0);
    assert_int_equal(put_retained(b, B("a/b"), 1, B("r"), 3), 0);
    uint64_t id = put_message(b, f->store, "a/b", "q");
    append(b, "c", 7, id);
    assert_int_equal(store_batch_put_qos2_in(b, B("c"), 5, 1), 0);
    assert_int_equal(store_batch_set_counter(b, "n", 11), 0);
    assert_int_equal(store_batch_commit(b), 0);
    assert_int_equal(store_flush(f->store), 0);
    assert_int_equal(reopen(f), 0);

    struct sessions_seen seen = {0};
    assert_int_equal(store_sessions_foreach(f->store, collect_session, &seen), 0);
    assert_int_equal(seen.count, 1);
    assert_string_equal(seen.will_payload, "bye");
    assert_int_equal(seen.last_seq[0], 7);
    struct subs_seen subs = {0};
    assert_int_equal(store_subscriptions_foreach(f->store, NULL, collect_sub, &subs), 0);
    assert_string_equal(subs.lines[0], "c|a/+|1");
    struct store_retained *r = NULL;
    assert_int_equal(store_get_retained(f->store, B("a/b"), &r), 0);
    free(r);
    struct queue_seen q = read_queue(f->store, "c");
    assert_int_equal(q.count, 1);
    assert_string_equal(q.payload[0], "q");
    struct qos2_seen q2 = {0};
    assert_int_equal(store_qos2_foreach(f->store, NULL, collect_qos2, &q2), 0);
    assert_int_equal(q2.count, 1);
    uint64_t v = 0;
    assert_int_equal(store_get_counter(f->store, "n", &v), 0);
    assert_int_equal(v, 11);
    assert_true(store_next_message_id(f->store) > id);
    assert_consistent(f->store);
}

static void test_read_only_store_reads_and_refuses_writes(void **state)
{
    struct fixture *f = *state;
    struct store_batch *b = store_batch_new(f->store);
    put_session(b, "c");
    assert_int_equal(store_batch_commit(b), 0);
    store_close(f->store);
    f->store = NULL;
    f->opts.read_only = true;
    assert_int_equal(reopen(f), 0);
    assert_int_equal(count_sessions(f->store), 1);
    struct done_log d = {0};
    b = store_batch_new(f->store);
    put_session(b, "d");
    assert_int_equal(store_batch_on_commit(b, done_record, &d), 0);
    assert_int_equal(store_batch_commit(b), STORE_ERR_READ_ONLY);
    assert_int_equal(d.status[0], STORE_ERR_READ_ONLY);
    assert_int_equal(store_flush(f->store), STORE_ERR_READ_ONLY);
    assert_consistent(f->store);
}

static void test_fsync_mode_commits_and_flush(void **state)
{
    struct fixture *f = *state;
    f->opts.sync = STORE_SYNC_FSYNC;
    assert_int_equal(reopen(f), 0);
    struct store_batch *b = store_batch_new(f->store);
    put_session(b, "c");
    assert_int_equal(store_batch_commit(b), 0);
    assert_int_equal(store_flush(f->store), 0);
    assert_int_equal(count_sessions(f->store), 1);
}

/* ---- crash consistency ----------------------------------------------------------- */

/*
 * Batch n (n = 1, 2, ...) writes: message m_n; queue entries (c0,n) (c1,n)
 * (c2,n) -> m_n; (c1,n-1) -> SENT; deletes (c0,n-2); counter crash.n = n.
 * So after N batches: c0 holds seqs {N-1, N}; c1 holds 1..N, all but N SENT;
 * c2 holds 1..N QUEUED; each m_k's payload is "k" and its count is 3 for
 * k >= N-1, else 2.
 */
static const char *const crash_clients[] = {"c0", "c1", "c2"};

static int crash_batch(struct store *s, uint64_t n)
{
    struct store_batch *b = store_batch_new(s);
    if (b == NULL)
        return -ENOMEM;
    char payload[32];
    snprintf(payload, sizeof(payload), "%llu", (unsigned long long)n);
    uint64_t id = store_next_message_id(s);
    struct store_message m = {.topic = B("crash/t"), .payload = B(payload), .qos = 1};
    int rc = store_batch_put_message(b, id, &m);
    struct store_queue_entry e = {.msg_id = id, .qos = 1, .state = STORE_QUEUED};
    for (int c = 0; c < 3 && rc == 0; c++)
        rc = store_batch_queue_append(b, B(crash_clients[c]), n, &e);
    if (rc == 0 && n > 1)
        rc = store_batch_queue_update(b, B("c1"), n - 1, STORE_SENT,
                                      (uint16_t)((n - 1) % 65535 + 1));
    if (rc == 0 && n > 2)
        rc = store_batch_queue_delete(b, B("c0"), n - 2);
    if (rc == 0)
        rc = store_batch_set_counter(b, "crash.n", n);
    if (rc != 0) {
        store_batch_discard(b);
        return rc;
    }
    return store_batch_commit(b);
}

static void crash_child(const char *dir, enum store_sync sync, int fd)
{
    struct store_options o;
    store_options_init(&o);
    o.dir = dir;
    o.sync = sync;
    o.initial_map_size = 1 * MIB; /* small: growth happens under the kill too */
    struct store *s = NULL;
    if (store_open(&o, &s, NULL, 0) != 0)
        _exit(2);
    uint64_t n = 0;
    (void)store_get_counter(s, "crash.n", &n);
    if (n == 0) {
        struct store_batch *b = store_batch_new(s);
        struct store_session ss = session_with_will(NULL, NULL);
        for (int c = 0; c < 3; c++)
            store_batch_put_session(b, B(crash_clients[c]), &ss);
        if (store_batch_commit(b) != 0)
            _exit(3);
    }
    for (;;) {
        n++;
        if (crash_batch(s, n) != 0)
            _exit(4);
        if (write(fd, &n, sizeof(n)) != (ssize_t)sizeof(n)) /* reported after commit */
            _exit(5);
    }
}

/* Reads what the child reported; returns the last batch number (or prev). */
static uint64_t drain_reports(int fd, uint64_t prev)
{
    uint64_t n, last = prev;
    ssize_t r;
    while ((r = read(fd, &n, sizeof(n))) == (ssize_t)sizeof(n))
        last = n;
    return last;
}

static void crash_verify_client(struct store *s, int c, uint64_t total)
{
    uint64_t first = c == 0 ? (total > 1 ? total - 1 : 1) : 1;
    uint64_t expect = first;
    uint64_t from = 0;
    for (;;) {
        struct queue_seen q = {0};
        int n = store_queue_read(s, B(crash_clients[c]), from, 64, collect_queue, &q);
        assert_true(n >= 0);
        for (int i = 0; i < n; i++, expect++) {
            char want[32];
            snprintf(want, sizeof(want), "%llu", (unsigned long long)expect);
            assert_int_equal(q.seq[i], expect);
            assert_true(q.has_message[i]);
            assert_string_equal(q.payload[i], want);
            assert_int_equal(q.refcount[i], expect + 1 >= total ? 3 : 2);
            bool sent = c == 1 && expect < total;
            assert_int_equal(q.state[i], sent ? STORE_SENT : STORE_QUEUED);
        }
        if (n < 64)
            break;
        from = q.seq[63] + 1;
    }
    assert_int_equal(expect, total + 1); /* nothing beyond the last batch */
}

static void test_crash_consistency_under_sigkill(void **state)
{
    struct fixture *f = *state;
    store_close(f->store);
    f->store = NULL;
    srand(20240601);
    uint64_t reported = 0;
    time_t deadline = time(NULL) + 120;
    for (int round = 0; round < 30 && time(NULL) < deadline; round++) {
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        enum store_sync sync = round % 2 ? STORE_SYNC_NOSYNC : STORE_SYNC_FSYNC;
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            crash_child(f->dir, sync, fds[1]);
        }
        close(fds[1]);
        usleep((useconds_t)(5000 + rand() % 60000)); /* 5..65 ms */
        kill(pid, SIGKILL);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status)); /* not an early exit of its own */
        reported = drain_reports(fds[0], reported);
        close(fds[0]);

        char err[256];
        f->opts.read_only = false;
        assert_int_equal(store_open(&f->opts, &f->store, err, sizeof(err)), 0);
        uint64_t total = 0;
        int rc = store_get_counter(f->store, "crash.n", &total);
        assert_true(rc == 0 || (rc == STORE_ERR_NOT_FOUND && reported == 0));
        /* every reported batch is there; at most one more committed unreported */
        assert_true(total >= reported);
        assert_true(total <= reported + 1);
        for (int c = 0; c < 3; c++)
            crash_verify_client(f->store, c, total);
        assert_int_equal(count_messages(f->store), (int)total);
        assert_consistent(f->store);
        store_close(f->store);
        f->store = NULL;
        reported = total;
    }
    assert_true(reported > 0);
    print_message("crash test: %llu batches over the rounds\n", (unsigned long long)reported);
}

/* ---- schema 2: MQTT 5 content ---------------------------------------------------- */

struct mqtt5_seen {
    int count;
    struct store_queue_entry entry;
    uint32_t sub_ids[4];
    char props[64];
    size_t props_len;
    uint64_t expiry_at_s;
};

static int collect_mqtt5_item(void *arg, const struct store_queue_item *it)
{
    struct mqtt5_seen *q = arg;
    q->count++;
    q->entry = it->entry;
    for (size_t i = 0; i < it->entry.sub_id_count && i < 4; i++)
        q->sub_ids[i] = store_queue_sub_id(&it->entry, i);
    assert_non_null(it->message);
    q->props_len = it->message->props.len;
    memcpy(q->props, it->message->props.data, it->message->props.len);
    q->expiry_at_s = it->message->expiry_at_s;
    return 0;
}

static void test_mqtt5_message_and_queue_entry_round_trip(void **state)
{
    struct fixture *f = *state;
    const char props[] = "\x03\x00\x04text\x26\x00\x01k\x00\x01v"; /* content type, user prop */
    struct store_batch *b = store_batch_new(f->store);
    uint64_t id = store_next_message_id(f->store);
    struct store_message m = {.topic = B("t"),
                              .payload = B("p"),
                              .qos = 1,
                              .props = {(const uint8_t *)props, sizeof(props) - 1},
                              .expiry_at_s = 1800000000};
    assert_int_equal(store_batch_put_message(b, id, &m), 0);
    const uint32_t ids[2] = {7, 268435455};
    struct store_queue_entry e = {.msg_id = id,
                                  .qos = 1,
                                  .state = STORE_QUEUED,
                                  .retain = true,
                                  .sub_id_count = 2,
                                  .sub_ids = ids};
    assert_int_equal(store_batch_put_session(b, B("c"), &(struct store_session){0}), 0);
    assert_int_equal(store_batch_queue_append(b, B("c"), 1, &e), 0);
    assert_int_equal(store_batch_commit(b), 0);
    /* A state change keeps what the entry carries. */
    b = store_batch_new(f->store);
    assert_int_equal(store_batch_queue_update(b, B("c"), 1, STORE_SENT, 9), 0);
    assert_int_equal(store_batch_commit(b), 0);
    assert_int_equal(reopen(f), 0);
    struct mqtt5_seen q = {0};
    assert_int_equal(store_queue_read(f->store, B("c"), 0, 10, collect_mqtt5_item, &q), 1);
    assert_int_equal(q.entry.state, STORE_SENT);
    assert_int_equal(q.entry.packet_id, 9);
    assert_true(q.entry.retain);
    assert_int_equal(q.entry.sub_id_count, 2);
    assert_int_equal(q.sub_ids[0], 7);
    assert_int_equal(q.sub_ids[1], 268435455);
    assert_int_equal(q.props_len, sizeof(props) - 1);
    assert_memory_equal(q.props, props, sizeof(props) - 1);
    assert_int_equal(q.expiry_at_s, 1800000000);
    assert_int_equal(count_problems(f->store), 0);
}

/* The value bytes of the first record of db, as mdb_dump prints them (hex). */
static void dump_first_value(const char *dir, const char *db, char *hex, size_t len)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "/usr/bin/mdb_dump -s %s %s | sed -n '/HEADER=END/{n;n;p;q}'", db,
             dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(hex, (int)len, p));
    pclose(p);
    size_t start = strspn(hex, " "); /* mdb_dump indents values by one space */
    memmove(hex, hex + start, strlen(hex + start) + 1);
    hex[strcspn(hex, " \n")] = 0;
}

/* Records without MQTT 5 content are written exactly as schema 1 wrote
 * them: a 3.1.1 workload's store does not grow. */
static void test_mqtt311_records_keep_their_schema_1_bytes(void **state)
{
    struct fixture *f = *state;
    if (access("/usr/bin/mdb_dump", X_OK) != 0)
        skip();
    struct store_batch *b = store_batch_new(f->store);
    assert_int_equal(store_batch_put_session(b, B("c"), &(struct store_session){0}), 0);
    uint64_t id = store_next_message_id(f->store);
    struct store_message m = {.topic = B("abc"), .payload = B("hello"), .qos = 2};
    assert_int_equal(store_batch_put_message(b, id, &m), 0);
    struct store_queue_entry e = {.msg_id = id, .qos = 1};
    assert_int_equal(store_batch_queue_append(b, B("c"), 1, &e), 0);
    struct store_retained r = {
        .topic = B("abc"), .payload = B("hello"), .qos = 1, .stored_at_s = 2};
    assert_int_equal(store_batch_put_retained(b, &r), 0);
    assert_int_equal(store_batch_put_subscription(b, B("c"), B("abc"), 1, 0), 0);
    assert_int_equal(store_batch_commit(b), 0);
    char hex[256];
    dump_first_value(f->dir, "messages", hex, sizeof(hex));
    assert_string_equal(hex, "020000000003"
                             "616263"
                             "68656c6c6f");
    dump_first_value(f->dir, "queues", hex, sizeof(hex));
    assert_string_equal(hex, "0000000000000001"
                             "01"
                             "00"
                             "0000");
    dump_first_value(f->dir, "retained", hex, sizeof(hex));
    assert_string_equal(hex, "01"
                             "0000000000000002"
                             "68656c6c6f");
    dump_first_value(f->dir, "subs", hex, sizeof(hex));
    assert_string_equal(hex, "01");
}

struct retained_props_seen {
    int count;
    size_t props_len, payload_len;
    uint64_t expiry_at_s;
};

static int collect_retained_props(void *arg, const struct store_retained *r)
{
    struct retained_props_seen *s = arg;
    s->count++;
    s->props_len = r->props.len;
    s->payload_len = r->payload_len;
    s->expiry_at_s = r->expiry_at_s;
    return 0;
}

static void test_mqtt5_retained_round_trip(void **state)
{
    struct fixture *f = *state;
    const char props[] = "\x01\x01\x08\x00\x05reply";
    struct store_retained r = {.topic = B("home/t"),
                               .payload = B("21.5"),
                               .qos = 1,
                               .stored_at_s = 5,
                               .expiry_at_s = 1800000000,
                               .props = {(const uint8_t *)props, sizeof(props) - 1}};
    struct store_batch *b = store_batch_new(f->store);
    assert_int_equal(store_batch_put_retained(b, &r), 0);
    assert_int_equal(store_batch_commit(b), 0);
    struct retained_props_seen all = {0}, index = {0};
    assert_int_equal(store_retained_foreach(f->store, collect_retained_props, &all), 0);
    assert_int_equal(store_retained_index_foreach(f->store, collect_retained_props, &index), 0);
    assert_int_equal(all.props_len, sizeof(props) - 1);
    assert_int_equal(index.props_len, sizeof(props) - 1); /* the index keeps them */
    assert_int_equal(index.payload_len, 4);
    assert_int_equal(all.expiry_at_s, 1800000000);
    struct store_retained *got = NULL;
    assert_int_equal(store_get_retained(f->store, B("home/t"), &got), 0);
    assert_memory_equal(got->props.data, props, sizeof(props) - 1);
    assert_memory_equal(got->payload.data, "21.5", 4);
    free(got);
    assert_int_equal(count_problems(f->store), 0);
}

static void test_subscription_options_and_identifier_round_trip(void **state)
{
    struct fixture *f = *state;
    struct store_batch *b = store_batch_new(f->store);
    assert_int_equal(store_batch_put_session(b, B("c"), &(struct store_session){0}), 0);
    /* QoS 1, No Local, Retain As Published, Retain Handling 2 */
    assert_int_equal(store_batch_put_subscription(b, B("c"), B("a/#"), 0x2D, 268435455), 0);
    assert_int_equal(store_batch_put_subscription(b, B("c"), B("b"), 0x30, 0), STORE_ERR_INVALID);
    assert_int_equal(store_batch_put_subscription(b, B("c"), B("b"), 0x41, 0), STORE_ERR_INVALID);
    assert_int_equal(store_batch_commit(b), 0);
    struct subs_seen subs = {0};
    assert_int_equal(store_subscriptions_foreach(f->store, NULL, collect_sub, &subs), 0);
    assert_int_equal(subs.count, 1);
    assert_string_equal(subs.lines[0], "c|a/#|45|268435455");
    assert_int_equal(count_problems(f->store), 0);
}

struct session_seen {
    struct store_session s;
    char will_props[32];
};

static int copy_session(void *arg, const struct store_session_info *info)
{
    struct session_seen *seen = arg;
    seen->s = info->session;
    if (info->session.will_props.len > 0)
        memcpy(seen->will_props, info->session.will_props.data, info->session.will_props.len);
    seen->s.will_props.data = NULL;
    seen->s.will_topic.data = NULL;
    seen->s.will_payload.data = NULL;
    return 0;
}

static void test_mqtt5_session_record_round_trip(void **state)
{
    struct fixture *f = *state;
    const char wp[] = "\x02\x00\x00\x00\x3c"; /* Message Expiry Interval 60 */
    struct store_session s = {.protocol_level = 5,
                              .is_online = true,
                              .last_seen_s = 77,
                              .expiry_s = STORE_EXPIRY_NEVER,
                              .next_packet_id = 3,
                              .has_will = true,
                              .will_topic = B("w"),
                              .will_payload = B("bye"),
                              .will_props = {(const uint8_t *)wp, sizeof(wp) - 1},
                              .will_qos = 1,
                              .will_delay_s = 30,
                              .will_at_s = 107};
    struct store_batch *b = store_batch_new(f->store);
    assert_int_equal(store_batch_put_session(b, B("c5"), &s), 0);
    assert_int_equal(store_batch_commit(b), 0);
    struct session_seen seen = {0};
    assert_int_equal(store_get_session(f->store, B("c5"), copy_session, &seen), 1);
    assert_true(seen.s.is_online);
    assert_int_equal(seen.s.protocol_level, 5);
    assert_int_equal(seen.s.expiry_s, STORE_EXPIRY_NEVER);
    assert_int_equal(seen.s.will_delay_s, 30);
    assert_int_equal(seen.s.will_at_s, 107);
    assert_int_equal(seen.s.will_props.len, sizeof(wp) - 1);
    assert_memory_equal(seen.will_props, wp, sizeof(wp) - 1);
    assert_int_equal(count_problems(f->store), 0);
}

/* A store as schema 1 (today's main before MQTT 5) wrote it: a session
 * record of version 1 (expiry 0 = never) and schema 1 in meta. The first
 * read-write open upgrades it in place; a read-only open reads it as it is. */
static void test_schema_1_store_is_upgraded_in_place(void **state)
{
    struct fixture *f = *state;
    if (access("/usr/bin/mdb_load", X_OK) != 0)
        skip();
    store_close(f->store);
    f->store = NULL;
    mdb_load_into(f->dir, "sessions", "6f6c64", /* "old" */
                  "01000400"
                  "0000000065000000"
                  "00000000"
                  "0001"
                  "00000000"
                  "00000000");
    mdb_load_into(f->dir, "meta", "736368656d61", "00000001"); /* schema 1 */
    struct store_options ro = f->opts;
    ro.read_only = true;
    char err[256];
    assert_int_equal(store_open(&ro, &f->store, err, sizeof(err)), 0);
    struct store_stats st;
    assert_int_equal(store_stats(f->store, &st), 0);
    assert_int_equal(st.schema_version, 1);
    struct session_seen seen = {0};
    assert_int_equal(store_get_session(f->store, B("old"), copy_session, &seen), 1);
    assert_int_equal(seen.s.expiry_s, STORE_EXPIRY_NEVER);
    assert_int_equal(count_problems(f->store), 0);
    assert_int_equal(reopen(f), 0); /* read-write: upgraded */
    assert_int_equal(store_stats(f->store, &st), 0);
    assert_int_equal(st.schema_version, 2);
    assert_int_equal(st.upgraded_from, 1);
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(store_get_session(f->store, B("old"), copy_session, &seen), 1);
    assert_int_equal(seen.s.expiry_s, STORE_EXPIRY_NEVER);
    assert_int_equal(seen.s.last_seen_s, 0x65000000);
    assert_int_equal(seen.s.next_packet_id, 1);
    assert_int_equal(count_problems(f->store), 0);
    assert_int_equal(reopen(f), 0); /* nothing left to upgrade */
    assert_int_equal(store_stats(f->store, &st), 0);
    assert_int_equal(st.upgraded_from, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn)    cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define TINY(fn) cmocka_unit_test_setup_teardown(fn, setup_tiny, teardown)
        T(test_open_creates_store_in_missing_dir),
        T(test_mqtt5_message_and_queue_entry_round_trip),
        T(test_mqtt311_records_keep_their_schema_1_bytes),
        T(test_mqtt5_retained_round_trip),
        T(test_subscription_options_and_identifier_round_trip),
        T(test_mqtt5_session_record_round_trip),
        T(test_schema_1_store_is_upgraded_in_place),
        T(test_open_read_only_missing_dir_is_not_a_store),
        T(test_open_dir_with_other_files_is_not_a_store_and_unchanged),
        T(test_open_corrupt_data_file_is_corrupt_and_unchanged),
        T(test_open_unknown_schema_version_is_refused_and_unchanged),
        T(test_open_foreign_lmdb_env_is_not_a_store),
        T(test_open_truncated_store_is_damaged_not_a_crash),
        T(test_open_store_with_lost_data_pages_is_damaged),
        T(test_open_queue_entry_without_its_message_is_damaged),
        T(test_check_store_option_runs_the_full_check),
        T(test_open_foreign_or_damaged_main_database_says_both),
        T(test_open_second_writer_is_locked),
        T(test_open_without_dir_is_invalid),
        T(test_strerror_names_every_code),
        T(test_completions_run_once_in_order_after_commit),
        T(test_empty_batch_runs_completions_with_zero),
        T(test_discard_runs_completions_canceled_and_writes_nothing),
        T(test_on_commit_without_fn_is_invalid),
        T(test_session_put_and_load_round_trip),
        T(test_session_put_replaces_record),
        T(test_sessions_report_last_queue_seq_per_client),
        T(test_session_delete_drops_subs_queue_qos2_and_message_refs),
        T(test_subscriptions_put_delete_and_per_client_walk),
        T(test_callback_nonzero_stops_walk_and_is_returned),
        T(test_retained_put_get_index_and_delete),
        T(test_retained_empty_payload_round_trips),
        T(test_message_ids_are_monotonic_and_survive_reopen),
        T(test_message_nobody_references_is_not_kept),
        T(test_one_body_per_message_with_refcount_and_garbage),
        T(test_queue_update_changes_state_keeps_message),
        T(test_queue_append_of_unknown_message_fails_batch_writes_nothing),
        T(test_queue_append_over_existing_seq_fails),
        T(test_queue_read_is_bounded_and_in_seq_order),
        T(test_qos2_in_put_and_delete),
        T(test_bridge_queue_shares_bodies_and_keeps_order_and_retain),
        T(test_bridge_append_of_unknown_message_or_existing_seq_fails),
        T(test_bridge_queue_info_and_names),
        T(test_bridge_qos2_in_put_and_delete),
        T(test_check_reports_a_bridge_entry_without_its_message),
        T(test_open_store_from_before_bridges_adds_their_databases),
        T(test_counter_set_and_get),
        T(test_key_too_long_is_refused_and_batch_stays_usable),
        T(test_invalid_arguments_are_refused),
        TINY(test_commit_over_max_map_fails_full_writes_nothing_store_usable),
        TINY(test_reserve_stops_at_the_headroom_and_deletes_still_commit),
        T(test_eio_on_sync_is_fatal_and_sticky),
        T(test_map_grows_by_itself_up_to_max),
        T(test_committer_commits_off_thread_and_completes_on_collect),
        T(test_committer_empty_batch_completes_at_once),
        T(test_manual_committer_commits_only_when_collected),
        T(test_committer_grows_the_map_on_the_owner),
        cmocka_unit_test_setup_teardown(test_committer_full_map_fails_the_batch, setup_tiny,
                                        teardown),
        T(test_everything_persists_across_reopen),
        T(test_read_only_store_reads_and_refuses_writes),
        T(test_fsync_mode_commits_and_flush),
        T(test_crash_consistency_under_sigkill),
#undef T
#undef TINY
    };
    return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
