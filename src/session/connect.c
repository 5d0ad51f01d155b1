/*
 * connect.c - CONNECT: client id rules, clean and persistent sessions,
 * takeover, the will, and CONNACK (held behind the commit for a persistent
 * session), for MQTT 3.1, 3.1.1 and 5. MQTT 5 adds the CONNECT's
 * properties (Session Expiry Interval, Receive Maximum, Maximum Packet Size,
 * Topic Alias Maximum, Request Problem Information), CONNACK's (what Sol
 * allows, an Assigned Client Identifier, a Server Keep Alive) and reason
 * codes. Decisions are made in MQTT 5 reason codes; a 3.1.1 client gets the
 * 3.1.1 return code that says the same (v3_return_code()).
 * Not for: checking passwords (src/auth/), enhanced authentication (AUTH
 * packets, SCRAM-SHA-512: connect_auth.c, which calls connect_accept() once
 * the client proved who it is).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "log.h"
#include "mqtt_topic.h"
#include "session_internal.h"
#include "share.h"
#include "store.h"

/* The 3.1.1 CONNACK return code [MQTT-3.2.2.3] that says what an MQTT 5
 * refusal reason says. */
static uint8_t v3_return_code(uint8_t reason)
{
    switch (reason) {
    case MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION:
        return MQTT_CONNACK_BAD_PROTOCOL;
    case MQTT_RC_CLIENT_IDENTIFIER_NOT_VALID:
        return MQTT_CONNACK_ID_REJECTED;
    case MQTT_RC_BAD_USER_NAME_OR_PASSWORD:
        return MQTT_CONNACK_BAD_CREDENTIALS;
    case MQTT_RC_SERVER_UNAVAILABLE:
    case MQTT_RC_SERVER_BUSY:
    case MQTT_RC_QUOTA_EXCEEDED:
        return MQTT_CONNACK_UNAVAILABLE;
    default: /* not authorized, topic name invalid, bad authentication method... */
        return MQTT_CONNACK_NOT_AUTHORIZED;
    }
}

/* An enhanced authentication's method and data in CONNACK's properties. */
static void add_auth_reply(struct mqtt_properties *pr, const struct connect_auth_reply *reply)
{
    if (!reply)
        return;
    pr->present |= MQTT_PROP_BIT(MQTT_PROP_AUTHENTICATION_METHOD);
    pr->authentication_method = reply->method;
    if (reply->data.len) {
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_AUTHENTICATION_DATA);
        pr->authentication_data = reply->data;
    }
}

int connect_refuse(struct session_mgr *mgr, struct session_client *c, const struct mqtt_connect *p,
                   uint8_t reason, const char *why, const struct connect_auth_reply *reply)
{
    log_notice("client %.*s from %s: connection refused: %s", (int)p->client_id.len,
               (const char *)p->client_id.data, c->peer, why);
    struct mqtt_packet pkt = {.type = MQTT_CONNACK};
    if (client_is_v5(c)) {
        pkt.u.connack.return_code = reason;
        pkt.u.connack.props.present = MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
        pkt.u.connack.props.reason_string = (struct mqtt_bytes){(const uint8_t *)why, strlen(why)};
        add_auth_reply(&pkt.u.connack.props, reply);
    } else {
        pkt.u.connack.return_code = v3_return_code(reason);
    }
    output_send_packet(mgr, c, &pkt);
    return SESSION_ERR_CONNECT_REFUSED;
}

/* Refuses the CONNECT with reason and why (connect_refuse() without an
 * enhanced authentication's reply). */
static int refuse(struct session_mgr *mgr, struct session_client *c, const struct mqtt_connect *p,
                  uint8_t reason, const char *why)
{
    return connect_refuse(mgr, c, p, reason, why, NULL);
}

/* The will a session's record holds: its client's (published if the
 * connection ends abnormally, also by a crash), or one waiting for its
 * delay (offline). */
static void record_will(const struct session *s, struct store_session *rec)
{
    const struct msg *will = NULL;
    if (s->client && s->client->will) {
        will = s->client->will;
        rec->will_delay_s = s->client->v5 ? s->client->v5->will_delay_interval_s : 0;
    } else if (s->will) {
        will = s->will->msg;
        rec->will_delay_s = s->will->delay_s;
        rec->will_at_s = s->will->at_s;
    }
    if (!will)
        return;
    rec->has_will = true;
    rec->will_topic = (struct store_bytes){will->topic, will->topic_len};
    rec->will_payload = (struct store_bytes){will->payload, will->payload_len};
    rec->will_props = (struct store_bytes){will->props, will->props_len};
    rec->will_qos = will->qos;
    rec->will_retain = will->retain;
}

int connect_store_session(struct session_mgr *mgr, struct session *s)
{
    struct store_batch *b = mgr_batch(mgr);
    if (!b)
        return -ENOMEM;
    struct store_session rec = {
        .clean_session = false,
        .protocol_level = s->client ? s->client->protocol_level : MQTT_PROTOCOL_V311,
        .is_online = s->client != NULL,
        .last_seen_s = s->last_seen_s,
        .expiry_s = s->expiry_s,
        .next_packet_id = s->next_packet_id,
    };
    record_will(s, &rec);
    return store_batch_put_session(b, session_store_id(s), &rec);
}

/*
 * Who is this? Returns MQTT_RC_SUCCESS or the refusing reason code (with
 * *why), or -ENOMEM. Mosquitto's rules: a TLS identity needs nothing more;
 * no username needs allow_anonymous; a username is checked against the
 * password file when there is one.
 */
static int authenticate(struct session_mgr *mgr, struct session_client *c,
                        const struct mqtt_connect *p, const char **why)
{
    struct session_auth auth = client_auth(mgr, c);
    if (c->has_identity)
        return MQTT_RC_SUCCESS;
    if (!p->has_username) {
        *why = "anonymous access is disabled";
        return auth.allow_anonymous ? MQTT_RC_SUCCESS : MQTT_RC_NOT_AUTHORIZED;
    }
    c->username = strndup((const char *)p->username.data, p->username.len);
    if (!c->username)
        return -ENOMEM;
    if (!auth.passwords)
        return MQTT_RC_SUCCESS;
    const uint8_t *password = p->has_password ? p->password.data : NULL;
    size_t password_len = p->has_password ? p->password.len : 0;
    if (auth_passwd_verify(auth.passwords, c->username, password, password_len) == AUTH_OK)
        return MQTT_RC_SUCCESS;
    *why = "bad username or password";
    return MQTT_RC_BAD_USER_NAME_OR_PASSWORD;
}

/* Closes the connection that holds s: [MQTT-3.1.4-2] (MQTT 5: after a
 * DISCONNECT 0x8E Session taken over). Its will fires, as for any close
 * that is not a DISCONNECT (after its delay, unless the session resumes). */
static void take_over(struct session_mgr *mgr, struct session *s)
{
    struct session_client *old = s->client;
    log_connection("Client %s already connected, closing old connection.", (char *)s->client_id);
    session_client_disconnect(mgr, old, MQTT_RC_SESSION_TAKEN_OVER, NULL);
    session_client_unlink(mgr, old, true);
    mgr->sink->close(old->conn, "session taken over");
}

/* The will message of a CONNECT, with its MQTT 5 properties but the Will
 * Delay Interval (the Message Expiry Interval stays: it starts when the will
 * is published, see session.c). NULL: no memory. */
static struct msg *will_message(const struct mqtt_connect *p)
{
    struct mqtt_bytes raw =
        p->protocol_level == MQTT_PROTOCOL_V5 ? p->will_props.raw : (struct mqtt_bytes){NULL, 0};
    uint8_t small[256];
    uint8_t *buf = raw.len <= sizeof(small) ? small : malloc(raw.len);
    if (!buf)
        return NULL;
    size_t len = 0;
    if (raw.len && mqtt_properties_copy(raw, MQTT_PROP_BIT(MQTT_PROP_WILL_DELAY_INTERVAL), buf,
                                        raw.len, &len) != MQTT_OK)
        len = 0; /* cannot happen: the block was decoded */
    struct msg *m = msg_new_v5(p->will_topic, p->will_payload, (struct mqtt_bytes){buf, len}, 0,
                               p->will_qos, p->will_retain);
    if (buf != small)
        free(buf);
    return m;
}

/*
 * The will a CONNECT asks for passes the WRITE gate as a PUBLISH would (no
 * $SYS, not deeper than max_topic_levels, allowed by the ACL); Mosquitto
 * refuses the connection otherwise. The session is not attached yet, so the
 * gate gets the id. MQTT 5 also refuses a retained will when retain is not
 * available (0x9A) and a will that says its payload is UTF-8 when it is not
 * (0x99, 3.1.3.2.3). Returns MQTT_RC_SUCCESS with *will set (NULL: no
 * will; release with msg_unref()), a refusing reason code with *why, or
 * -ENOMEM.
 */
static int check_will(struct session_mgr *mgr, struct session_client *c,
                      const struct mqtt_connect *p, const uint8_t *id, size_t id_len,
                      struct msg **will, const char **why)
{
    *will = NULL;
    if (!p->has_will)
        return MQTT_RC_SUCCESS;
    if (client_is_v5(c) && p->will_retain && !mgr->config.retain_available) {
        *why = "retained will while retain_available is false";
        return MQTT_RC_RETAIN_NOT_SUPPORTED;
    }
    const struct mqtt_properties *wp = &p->will_props;
    if (client_is_v5(c) && wp->payload_format_indicator == 1 &&
        mqtt_utf8_check(p->will_payload.data, p->will_payload.len) != MQTT_OK) {
        *why = "will payload is not UTF-8 though its Payload Format Indicator says so";
        return MQTT_RC_PAYLOAD_FORMAT_INVALID;
    }
    char *client_id = strndup((const char *)id, id_len);
    if (!client_id)
        return -ENOMEM;
    int verdict = publish_write_gate(mgr, c, client_id, p->will_topic);
    free(client_id);
    if (verdict == WRITE_TOO_DEEP) {
        *why = "will topic deeper than max_topic_levels";
        return client_is_v5(c) ? MQTT_RC_TOPIC_NAME_INVALID : MQTT_RC_NOT_AUTHORIZED;
    }
    if (verdict != WRITE_ALLOWED) {
        *why = "will topic not allowed ($SYS or the ACL)";
        return MQTT_RC_NOT_AUTHORIZED;
    }
    *will = will_message(p);
    return *will ? MQTT_RC_SUCCESS : -ENOMEM;
}

/* Finds or creates the session for id. clean: Clean Session (3.1.1) or
 * Clean Start (MQTT 5); persistent: a new session's state is stored.
 * *present is the CONNACK flag. */
static struct session *attach_session(struct session_mgr *mgr, const uint8_t *id, size_t id_len,
                                      bool clean, bool persistent, bool *present)
{
    struct session *s = table_get(&mgr->sessions, id, id_len);
    if (s && s->client)
        take_over(mgr, s);
    *present = false;
    if (s && (clean || !s->persistent)) {
        /* Clean session 1 discards any previous state [MQTT-3.1.2-6]. */
        session_discard(mgr, s);
        s = NULL;
    }
    if (s) {
        /* Resumed before its will's delay ended: the will is not sent
         * [MQTT-3.1.3-9]. */
        session_drop_waiting_will(s);
        *present = true; /* [MQTT-3.2.2-2] */
        return s;
    }
    return session_new(mgr, id, id_len, persistent);
}

static int assign_client_id(struct session_mgr *mgr, char *buf, size_t len)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t salt = (uint64_t)now.tv_nsec ^ ((uint64_t)now.tv_sec << 20);
    return snprintf(buf, len, "auto-%016llx%04llx", (unsigned long long)salt,
                    (unsigned long long)(++mgr->auto_id_counter & 0xffff));
}

/* Resumes delivery of a persistent session: everything unacknowledged is
 * read back from the store after the commit, SENT entries resent with DUP. */
static void resume_persistent(struct session_mgr *mgr, struct session *s)
{
    deliver_forget(mgr, s);
    s->read_seq = 0;
    s->backlog = true;
    deliver_schedule_refill(mgr, s);
}

/* Mosquitto's line, so existing log tooling keeps working: p1 = MQTT 3.1,
 * p2 = MQTT 3.1.1, c = clean session, k = keepalive, u = username. */
static void log_connected(const struct session_client *c, const struct mqtt_connect *p)
{
    unsigned protocol = p->protocol_level == MQTT_PROTOCOL_V5     ? 5
                        : p->protocol_level == MQTT_PROTOCOL_V311 ? 2
                                                                  : 1;
    if (c->username)
        log_connection("New client connected from %s as %s (p%u, c%d, k%u, u'%s').", c->peer,
                       session_client_name(c), protocol, p->clean_session, p->keepalive_s,
                       c->username);
    else
        log_connection("New client connected from %s as %s (p%u, c%d, k%u).", c->peer,
                       session_client_name(c), protocol, p->clean_session, p->keepalive_s);
}

/* What the CONNECT asks for, in MQTT 5 terms (3.1.1 clients get the
 * spec's mapping: clean session 1 is an interval of 0, 0 is "never"). */
struct connect_terms {
    uint32_t expiry_s;      /* Session Expiry Interval */
    bool persistent;        /* the session's state is stored: an interval above 0 */
    bool is_id_assigned;    /* the client id is ours (Assigned Client Identifier) */
    uint16_t keepalive_s;   /* what the timer uses */
    bool is_keepalive_ours; /* MQTT 5: Server Keep Alive in CONNACK */
    const struct connect_auth_reply *auth_reply; /* enhanced authentication's, or NULL */
};

/* Checks the CONNECT's client id and keepalive; sets *id and *id_len (an
 * assigned id goes into auto_id). Returns 0, or a reason code with *why. */
static int check_identity(struct session_mgr *mgr, const struct session_client *c,
                          const struct mqtt_connect *p, struct connect_terms *t, char *auto_id,
                          size_t auto_id_len, const uint8_t **id, size_t *id_len, const char **why)
{
    *id = p->client_id.data;
    *id_len = p->client_id.len;
    if (*id_len == 0) {
        /* [MQTT-3.1.3-7] [MQTT-3.1.3-8]: in 3.1.1 only a clean session gets
         * an id; MQTT 5 assigns one and says so [MQTT-3.2.2-16]. */
        *why = "empty client id without clean session";
        if (!client_is_v5(c) && !p->clean_session)
            return MQTT_RC_CLIENT_IDENTIFIER_NOT_VALID;
        *id_len = (size_t)assign_client_id(mgr, auto_id, auto_id_len);
        *id = (const uint8_t *)auto_id;
        t->is_id_assigned = true;
    }
    *why = "client id too long for a persistent session";
    if (t->persistent && *id_len > store_max_client_id_len(mgr->store))
        return MQTT_RC_CLIENT_IDENTIFIER_NOT_VALID;
    uint16_t max_ka = mgr->config.max_keepalive_s;
    t->keepalive_s = p->keepalive_s;
    if (!max_ka || (p->keepalive_s <= max_ka && p->keepalive_s != 0))
        return MQTT_RC_SUCCESS;
    /* MQTT 5 tells the client the keepalive to use (Server Keep Alive,
     * [MQTT-3.2.2-21]); 3.1.1 cannot: Mosquitto refuses with "identifier
     * rejected". Keepalive 0 (none) exceeds any limit. */
    *why = "keepalive above max_keepalive";
    if (!client_is_v5(c))
        return MQTT_RC_CLIENT_IDENTIFIER_NOT_VALID;
    t->keepalive_s = max_ka;
    t->is_keepalive_ours = true;
    return MQTT_RC_SUCCESS;
}

/* The session's expiry the CONNECT asks for: MQTT 5's Session Expiry
 * Interval (absent: 0), or what 3.1.1's clean session flag means. */
static uint32_t connect_expiry(const struct mqtt_connect *p)
{
    if (p->protocol_level != MQTT_PROTOCOL_V5)
        return p->clean_session ? 0 : SESSION_EXPIRY_NEVER;
    if (mqtt_properties_has(&p->props, MQTT_PROP_SESSION_EXPIRY_INTERVAL))
        return p->props.session_expiry_interval_s;
    return 0;
}

/* Makes an MQTT 5 client's connection state from what its CONNECT's
 * properties say. 0 or -ENOMEM. */
static int read_connect_properties(struct session_mgr *mgr, struct session_client *c,
                                   const struct mqtt_connect *p)
{
    struct client_v5 *v5 = calloc(1, sizeof(*v5));
    if (!v5)
        return -ENOMEM;
    const struct mqtt_properties *pr = &p->props;
    v5->connect_expiry_s = connect_expiry(p);
    v5->receive_maximum = UINT16_MAX;
    if (mqtt_properties_has(pr, MQTT_PROP_RECEIVE_MAXIMUM))
        v5->receive_maximum = pr->receive_maximum;
    if (mqtt_properties_has(pr, MQTT_PROP_MAXIMUM_PACKET_SIZE))
        v5->max_packet_size = pr->maximum_packet_size;
    v5->request_problem_info = true;
    if (mqtt_properties_has(pr, MQTT_PROP_REQUEST_PROBLEM_INFORMATION))
        v5->request_problem_info = pr->request_problem_information != 0;
    /* Aliases towards the client: what it allows, bounded by ours so one
     * client cannot make the broker keep 65535 topics [3.1.2.11.5]. */
    uint16_t out_max = 0;
    if (mqtt_properties_has(pr, MQTT_PROP_TOPIC_ALIAS_MAXIMUM))
        out_max = pr->topic_alias_maximum < mgr->config.max_topic_alias
                      ? pr->topic_alias_maximum
                      : mgr->config.max_topic_alias;
    aliases_init(&v5->aliases, mgr->config.max_topic_alias, out_max);
    if (p->has_will && mqtt_properties_has(&p->will_props, MQTT_PROP_WILL_DELAY_INTERVAL))
        v5->will_delay_interval_s = p->will_props.will_delay_interval_s;
    c->v5 = v5;
    return 0;
}

/* Quotas before records: a persistent session the store does not hold yet
 * needs room for its record. False when the store is full. */
static bool reserve_new_session(struct session_mgr *mgr, const uint8_t *id, size_t id_len)
{
    struct session *s = table_get(&mgr->sessions, id, id_len);
    if (s && s->persistent && s->record != SESSION_RECORD_ABSENT)
        return true; /* only its record's update: deletes and updates use the headroom */
    struct store_batch *b = mgr_batch(mgr);
    return !b || store_batch_reserve(b, id_len, 1) != STORE_ERR_FULL;
}

/* MQTT 5 CONNACK properties: what Sol allows the client [3.2.2.3]. Views
 * into id and the manager's config, valid while the CONNACK is encoded. */
static void connack_properties(const struct session_mgr *mgr, const struct connect_terms *t,
                               const uint8_t *id, size_t id_len, struct mqtt_properties *pr)
{
    const struct session_config *cfg = &mgr->config;
    pr->present = MQTT_PROP_BIT(MQTT_PROP_RETAIN_AVAILABLE) |
                  MQTT_PROP_BIT(MQTT_PROP_WILDCARD_SUBSCRIPTION_AVAILABLE) |
                  MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_IDENTIFIER_AVAILABLE) |
                  MQTT_PROP_BIT(MQTT_PROP_SHARED_SUBSCRIPTION_AVAILABLE);
    pr->retain_available = cfg->retain_available;
    pr->wildcard_subscription_available = 1;
    pr->subscription_identifier_available = 1;
    pr->shared_subscription_available = cfg->shared_subscription_available;
    if (cfg->receive_maximum < UINT16_MAX) {
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM);
        pr->receive_maximum = cfg->receive_maximum;
    }
    if (cfg->max_packet_size) {
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_PACKET_SIZE);
        pr->maximum_packet_size = cfg->max_packet_size;
    }
    if (cfg->max_topic_alias) {
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS_MAXIMUM);
        pr->topic_alias_maximum = cfg->max_topic_alias;
    }
    if (t->is_id_assigned) {
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER);
        pr->assigned_client_identifier = (struct mqtt_bytes){id, id_len};
    }
    if (t->is_keepalive_ours) {
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_SERVER_KEEP_ALIVE);
        pr->server_keep_alive_s = t->keepalive_s;
    }
    add_auth_reply(pr, t->auth_reply); /* [MQTT-4.12.0-5] */
}

/* Attaches c to its session and sends CONNACK (held behind the commit of a
 * persistent session's record). */
static int accept_client(struct session_mgr *mgr, struct session_client *c,
                         const struct mqtt_connect *p, const struct connect_terms *t,
                         const uint8_t *id, size_t id_len)
{
    /* A will is stored with the session record, so that a crash publishes
     * it at the restart (README, MQTT 5): a clean session gets a record for
     * it alone (when its id fits a store key). */
    bool needs_record = t->persistent || (c->will && id_len <= store_max_client_id_len(mgr->store));
    bool present = false;
    /* What is due ends first, so a session past its expiry is never resumed
     * (or a will past its delay kept) for want of a timer tick. */
    session_expire(mgr, session_now_s(mgr));
    struct session *s = attach_session(mgr, id, id_len, p->clean_session, t->persistent, &present);
    if (!s)
        return SESSION_ERR_NOMEM;
    s->client = c;
    s->expiry_s = t->expiry_s;
    s->conn_gen++;
    session_offline_remove(mgr, s);
    c->sess = s;
    c->connected = true;
    mgr->clients_connected++;
    s->last_seen_s = session_now_s(mgr);
    if (needs_record) {
        if (connect_store_session(mgr, s) != 0)
            return SESSION_ERR_STORE;
        if (s->record == SESSION_RECORD_ABSENT) {
            /* A new session exists once its record commits (effects.c). */
            s->record = SESSION_RECORD_PENDING;
            if (effect_session_stored(mgr, s) != 0)
                return SESSION_ERR_NOMEM;
        }
    }
    if (s->persistent)
        resume_persistent(mgr, s);
    share_session_online(mgr, s); /* its groups route to it again */
    log_connected(c, p);
    mgr->sink->set_keepalive(c->conn, t->keepalive_s);
    struct mqtt_packet ack = {.type = MQTT_CONNACK};
    ack.u.connack.session_present = present;
    ack.u.connack.return_code = MQTT_CONNACK_ACCEPTED;
    if (client_is_v5(c))
        connack_properties(mgr, t, id, id_len, &ack.u.connack.props);
    if (output_send_packet(mgr, c, &ack) != 0)
        return SESSION_ERR_NOMEM;
    c->is_connack_held = c->held_sends > 0;
    return SESSION_OK;
}

int connect_handle(struct session_mgr *mgr, struct session_client *c, const struct mqtt_connect *p)
{
    c->protocol_level = p->protocol_level;
    if (p->protocol_level == MQTT_PROTOCOL_V5 && read_connect_properties(mgr, c, p) != 0)
        return SESSION_ERR_NOMEM;
    /* Enhanced authentication [4.12]: CONNECT's username and password play
     * no part; the exchange calls connect_accept() when it succeeds. */
    if (mqtt_properties_has(&p->props, MQTT_PROP_AUTHENTICATION_METHOD))
        return connect_auth_start(mgr, c, p);
    const char *why = "";
    int code = authenticate(mgr, c, p, &why);
    if (code < 0)
        return SESSION_ERR_NOMEM;
    if (code != MQTT_RC_SUCCESS)
        return refuse(mgr, c, p, (uint8_t)code, why);
    return connect_accept(mgr, c, p, NULL);
}

int connect_accept(struct session_mgr *mgr, struct session_client *c, const struct mqtt_connect *p,
                   const struct connect_auth_reply *reply)
{
    const char *why = "";
    char auto_id[40];
    const uint8_t *id = NULL;
    size_t id_len = 0;
    struct connect_terms terms = {.expiry_s = connect_expiry(p), .auth_reply = reply};
    terms.persistent = terms.expiry_s > 0;
    int code = check_identity(mgr, c, p, &terms, auto_id, sizeof(auto_id), &id, &id_len, &why);
    if (code != MQTT_RC_SUCCESS)
        return refuse(mgr, c, p, (uint8_t)code, why);
    if ((terms.persistent || p->has_will) && !reserve_new_session(mgr, id, id_len))
        return refuse(mgr, c, p, MQTT_RC_QUOTA_EXCEEDED, "store full: no room for a new session");
    struct msg *will = NULL;
    code = check_will(mgr, c, p, id, id_len, &will, &why);
    if (code < 0)
        return SESSION_ERR_NOMEM;
    if (code != MQTT_RC_SUCCESS)
        return refuse(mgr, c, p, (uint8_t)code, why);
    /* Only an accepted client leaves a will: a refused CONNECT never does. */
    c->will = will;
    int rc = accept_client(mgr, c, p, &terms, id, id_len);
    if (rc != SESSION_OK) {
        msg_unref(c->will);
        c->will = NULL;
    }
    return rc;
}
