/*
 * session_fixture.h - what the session manager's unit tests share
 * (test_session.c, test_session_v5.c, test_shared.c): a recording sink whose fake
 * connections collect the bytes the manager sends, a fixture with a real
 * LMDB store in a fresh temp directory and a manager on it, and helpers
 * that feed packets and decode what came back. Static functions: include it
 * in one file per test binary, after the libc, cmocka and project headers.
 * Helpers not every binary uses are marked unused.
 */
#ifndef SOL_TEST_SESSION_FIXTURE_H
#define SOL_TEST_SESSION_FIXTURE_H

/* ---- Recording sink ---- */

struct fake_conn {
    uint8_t out[1 << 16];
    size_t out_len;
    size_t read_pos;
    bool closed;
    uint16_t keepalive_s;
    struct session_client *client;
    size_t pending; /* what output_pending() reports: a stalled reader's backlog */
    bool is_slow;   /* every byte sent stays pending until the test drains it */
    uint8_t level;  /* protocol level next_sent() decodes at; 0: 3.1.1 */
};

static int fake_send(void *conn, const struct iovec *iov, int iovcnt)
{
    struct fake_conn *fc = conn;
    for (int i = 0; i < iovcnt; i++) {
        assert_true(fc->out_len + iov[i].iov_len <= sizeof(fc->out));
        memcpy(fc->out + fc->out_len, iov[i].iov_base, iov[i].iov_len);
        fc->out_len += iov[i].iov_len;
        if (fc->is_slow)
            fc->pending += iov[i].iov_len;
    }
    return 0;
}

static void fake_close(void *conn, const char *reason)
{
    (void)reason;
    ((struct fake_conn *)conn)->closed = true;
}

static void fake_set_keepalive(void *conn, uint16_t keepalive_s)
{
    ((struct fake_conn *)conn)->keepalive_s = keepalive_s;
}

static size_t fake_output_pending(void *conn)
{
    return ((struct fake_conn *)conn)->pending;
}

/* Copies like fake_send() and releases at once (the connection "wrote" it). */
static int fake_send_ref(void *conn, const struct iovec *iov, int iovcnt, const void *data,
                         size_t len, void (*release)(void *ref), void *ref)
{
    int rc = fake_send(conn, iov, iovcnt);
    struct iovec tail = {.iov_base = (void *)data, .iov_len = len};
    if (rc == 0)
        rc = fake_send(conn, &tail, 1);
    release(ref);
    return rc;
}

static const struct session_sink fake_sink = {fake_send, fake_close, fake_set_keepalive,
                                              fake_output_pending, fake_send_ref};

/* ---- Fixture: a store in a fresh temp dir and a manager on it ---- */

struct fixture {
    char dir[64];
    struct store *store;
    struct session_mgr *mgr;
    struct session_config config;
};

static void open_all(struct fixture *f)
{
    struct store_options opts;
    store_options_init(&opts);
    opts.dir = f->dir;
    opts.sync = STORE_SYNC_NOSYNC; /* durability itself is tested in test_store */
    char err[256];
    assert_int_equal(store_open(&opts, &f->store, err, sizeof(err)), 0);
    assert_int_equal(session_mgr_new(&f->config, f->store, &fake_sink, &f->mgr, err, sizeof(err)),
                     0);
}

static void close_all(struct fixture *f)
{
    session_mgr_free(f->mgr);
    store_close(f->store);
    f->mgr = NULL;
    f->store = NULL;
}

/* A fixture with a fresh directory and default config, not yet opened
 * (set f->config, then open_all()); NULL on failure. */
static struct fixture *new_fixture(void)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    strcpy(f->dir, "/tmp/sol-test-session-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return NULL;
    }
    session_config_defaults(&f->config);
    return f;
}

__attribute__((unused)) static int setup(void **state)
{
    struct fixture *f = new_fixture();
    if (f == NULL)
        return -1;
    open_all(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    close_all(f);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

/* ---- Helpers ---- */

static void feed(struct fixture *f, struct fake_conn *fc, const struct mqtt_packet *pkt,
                 int expected)
{
    assert_int_equal(session_handle_packet(f->mgr, fc->client, pkt), expected);
}

static struct fake_conn *new_conn(struct fixture *f)
{
    struct fake_conn *fc = calloc(1, sizeof(*fc));
    fc->client = session_client_new(f->mgr, fc, "127.0.0.1:1");
    assert_non_null(fc->client);
    return fc;
}

static struct mqtt_packet connect_packet(const char *id, bool clean)
{
    struct mqtt_packet p = {.type = MQTT_CONNECT};
    p.u.connect.protocol_name = (struct mqtt_bytes){(const uint8_t *)"MQTT", 4};
    p.u.connect.protocol_level = 4;
    p.u.connect.clean_session = clean;
    p.u.connect.keepalive_s = 60;
    p.u.connect.client_id = (struct mqtt_bytes){(const uint8_t *)id, strlen(id)};
    return p;
}

/* Returns the next packet the manager sent on fc, or type 0 when none. */
static struct mqtt_packet next_sent(struct fake_conn *fc)
{
    struct mqtt_packet p = {0};
    size_t used = 0;
    if (fc->read_pos >= fc->out_len)
        return p;
    uint8_t level = fc->level ? fc->level : MQTT_PROTOCOL_V311;
    int rc = mqtt_decode_stream_for(fc->out + fc->read_pos, fc->out_len - fc->read_pos, 0, level,
                                    &p, &used);
    assert_int_equal(rc, MQTT_OK);
    fc->read_pos += used;
    return p;
}

static struct fake_conn *connect_client(struct fixture *f, const char *id, bool clean,
                                        bool expect_present)
{
    struct fake_conn *fc = new_conn(f);
    struct mqtt_packet p = connect_packet(id, clean);
    feed(f, fc, &p, SESSION_OK);
    session_flush(f->mgr);
    struct mqtt_packet ack = next_sent(fc);
    assert_int_equal(ack.type, MQTT_CONNACK);
    assert_int_equal(ack.u.connack.return_code, 0);
    assert_int_equal(ack.u.connack.session_present, expect_present);
    return fc;
}

/* Feeds a SUBSCRIBE or UNSUBSCRIBE (type) for one filter, without
 * committing. */
__attribute__((unused)) static void feed_subscribe(struct fixture *f, struct fake_conn *fc,
                                                   uint8_t type, uint16_t packet_id,
                                                   const char *filter, uint8_t qos)
{
    struct mqtt_topic_entry e = {{(const uint8_t *)filter, strlen(filter)}, qos};
    struct mqtt_packet p = {.type = type};
    p.u.subscribe.packet_id = packet_id;
    p.u.subscribe.count = 1;
    p.u.subscribe.entries = &e;
    /* Round-trip through the codec so the manager sees a decoded packet. */
    uint8_t buf[512];
    size_t n = 0, used = 0;
    assert_int_equal(mqtt_encode(&p, buf, sizeof(buf), &n), MQTT_OK);
    struct mqtt_packet decoded;
    assert_int_equal(mqtt_decode_stream(buf, n, 0, &decoded, &used), MQTT_OK);
    feed(f, fc, &decoded, SESSION_OK);
}

static void subscribe(struct fixture *f, struct fake_conn *fc, const char *filter, uint8_t qos,
                      uint8_t expected_code)
{
    feed_subscribe(f, fc, MQTT_SUBSCRIBE, 7, filter, qos);
    session_flush(f->mgr);
    struct mqtt_packet ack = next_sent(fc);
    assert_int_equal(ack.type, MQTT_SUBACK);
    assert_int_equal(ack.u.suback.packet_id, 7);
    assert_int_equal(ack.u.suback.return_codes.len, 1);
    assert_int_equal(ack.u.suback.return_codes.data[0], expected_code);
}

static void publish(struct fixture *f, struct fake_conn *fc, const char *topic, const char *payload,
                    uint8_t qos, bool retain, uint16_t packet_id)
{
    struct mqtt_packet p = {.type = MQTT_PUBLISH};
    p.u.publish.qos = qos;
    p.u.publish.retain = retain;
    p.u.publish.packet_id = packet_id;
    p.u.publish.topic = (struct mqtt_bytes){(const uint8_t *)topic, strlen(topic)};
    p.u.publish.payload = (struct mqtt_bytes){(const uint8_t *)payload, strlen(payload)};
    feed(f, fc, &p, SESSION_OK);
}

static void send_ack(struct fixture *f, struct fake_conn *fc, uint8_t type, uint16_t id)
{
    struct mqtt_packet p = {.type = type};
    p.u.ack.packet_id = id;
    feed(f, fc, &p, SESSION_OK);
}

static void gone(struct fixture *f, struct fake_conn *fc, enum session_close_reason reason)
{
    session_client_gone(f->mgr, fc->client, reason);
    free(fc);
}

static void assert_publish(struct mqtt_packet p, const char *topic, const char *payload,
                           uint8_t qos)
{
    assert_int_equal(p.type, MQTT_PUBLISH);
    assert_int_equal(p.u.publish.qos, qos);
    assert_int_equal(p.u.publish.topic.len, strlen(topic));
    assert_memory_equal(p.u.publish.topic.data, topic, strlen(topic));
    assert_int_equal(p.u.publish.payload.len, strlen(payload));
    assert_memory_equal(p.u.publish.payload.data, payload, strlen(payload));
}

static uint64_t db_entries(struct fixture *f, const char *name)
{
    struct store_stats st;
    assert_int_equal(store_stats(f->store, &st), 0);
    for (int i = 0; i < STORE_DB_COUNT; i++)
        if (strcmp(st.dbs[i].name, name) == 0)
            return st.dbs[i].entries;
    fail_msg("no database %s", name);
    return 0;
}

/* Reopens on a 1 MiB store that cannot grow: a large publish fills it. */
__attribute__((unused)) static void reopen_with_tiny_map(struct fixture *f)
{
    close_all(f);
    struct store_options opts;
    store_options_init(&opts);
    opts.dir = f->dir;
    opts.initial_map_size = 1 << 20;
    opts.max_map_size = 1 << 20;
    char err[256];
    assert_int_equal(store_open(&opts, &f->store, err, sizeof(err)), 0);
    assert_int_equal(session_mgr_new(&f->config, f->store, &fake_sink, &f->mgr, err, sizeof(err)),
                     0);
}

/* A clean 3.1.1 client with a will ("bye" on will/t, QoS 0). */
__attribute__((unused)) static struct fake_conn *connect_with_will(struct fixture *f,
                                                                   const char *id)
{
    struct fake_conn *fc = new_conn(f);
    struct mqtt_packet p = connect_packet(id, true);
    p.u.connect.has_will = true;
    p.u.connect.will_qos = 0;
    p.u.connect.will_topic = (struct mqtt_bytes){(const uint8_t *)"will/t", 6};
    p.u.connect.will_payload = (struct mqtt_bytes){(const uint8_t *)"bye", 3};
    feed(f, fc, &p, SESSION_OK);
    session_flush(f->mgr);
    assert_int_equal(next_sent(fc).type, MQTT_CONNACK);
    return fc;
}

#endif /* SOL_TEST_SESSION_FIXTURE_H */
