/*
 * connect.c - CONNECT: client id rules, clean and persistent sessions,
 * takeover, the will, and CONNACK (held behind the commit for a persistent
 * session). Not for: authentication beyond allow_anonymous (src/auth/ later).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "log.h"
#include "session_internal.h"
#include "share.h"
#include "store.h"

static int refuse(struct session_mgr *mgr, struct session_client *c, const struct mqtt_connect *p,
                  uint8_t code, const char *why)
{
    log_notice("client %.*s from %s: connection refused: %s", (int)p->client_id.len,
               (const char *)p->client_id.data, c->peer, why);
    struct mqtt_packet pkt = {.type = MQTT_CONNACK};
    pkt.u.connack.return_code = code;
    output_send_packet(mgr, c, &pkt);
    return SESSION_ERR_CONNECT_REFUSED;
}

int connect_store_session(struct session_mgr *mgr, struct session *s)
{
    struct store_batch *b = mgr_batch(mgr);
    if (!b)
        return -ENOMEM;
    struct store_session rec = {
        .clean_session = false,
        .protocol_level = s->client ? s->client->protocol_level : MQTT_PROTOCOL_V311,
        .last_seen_s = s->last_seen_s,
        .next_packet_id = s->next_packet_id,
    };
    return store_batch_put_session(b, session_store_id(s), &rec);
}

/*
 * Who is this? Returns MQTT_CONNACK_ACCEPTED or the refusing CONNACK code
 * (with *why), or -ENOMEM. Mosquitto's rules: a TLS identity needs nothing
 * more; no username needs allow_anonymous; a username is checked against the
 * password file when there is one.
 */
static int authenticate(struct session_mgr *mgr, struct session_client *c,
                        const struct mqtt_connect *p, const char **why)
{
    struct session_auth auth = client_auth(mgr, c);
    if (c->has_identity)
        return MQTT_CONNACK_ACCEPTED;
    if (!p->has_username) {
        *why = "anonymous access is disabled";
        return auth.allow_anonymous ? MQTT_CONNACK_ACCEPTED : MQTT_CONNACK_NOT_AUTHORIZED;
    }
    c->username = strndup((const char *)p->username.data, p->username.len);
    if (!c->username)
        return -ENOMEM;
    if (!auth.passwords)
        return MQTT_CONNACK_ACCEPTED;
    const uint8_t *password = p->has_password ? p->password.data : NULL;
    size_t password_len = p->has_password ? p->password.len : 0;
    if (auth_passwd_verify(auth.passwords, c->username, password, password_len) == AUTH_OK)
        return MQTT_CONNACK_ACCEPTED;
    *why = "bad username or password";
    return MQTT_CONNACK_BAD_CREDENTIALS;
}

/* Closes the connection that holds s: [MQTT-3.1.4-2]. Its will fires, as for
 * any close that is not a DISCONNECT. */
static void take_over(struct session_mgr *mgr, struct session *s)
{
    struct session_client *old = s->client;
    log_connection("Client %s already connected, closing old connection.", (char *)s->client_id);
    session_client_unlink(mgr, old, true);
    mgr->sink->close(old->conn, "session taken over");
}

/*
 * The will a CONNECT asks for passes the WRITE gate as a PUBLISH would (no
 * $SYS, not deeper than max_topic_levels, allowed by the ACL); Mosquitto
 * refuses the connection otherwise. The session is not attached yet, so the
 * gate gets the id. Returns MQTT_CONNACK_ACCEPTED with *will set (NULL: no
 * will; release with msg_unref()), a refusing CONNACK code with *why, or
 * -ENOMEM.
 */
static int check_will(struct session_mgr *mgr, struct session_client *c,
                      const struct mqtt_connect *p, const uint8_t *id, size_t id_len,
                      struct msg **will, const char **why)
{
    *will = NULL;
    if (!p->has_will)
        return MQTT_CONNACK_ACCEPTED;
    char *client_id = strndup((const char *)id, id_len);
    if (!client_id)
        return -ENOMEM;
    int verdict = publish_write_gate(mgr, c, client_id, p->will_topic);
    free(client_id);
    if (verdict == WRITE_TOO_DEEP) {
        *why = "will topic deeper than max_topic_levels";
        return MQTT_CONNACK_NOT_AUTHORIZED;
    }
    if (verdict != WRITE_ALLOWED) {
        *why = "will topic not allowed ($SYS or the ACL)";
        return MQTT_CONNACK_NOT_AUTHORIZED;
    }
    *will = msg_new(p->will_topic, p->will_payload, p->will_qos, p->will_retain);
    return *will ? MQTT_CONNACK_ACCEPTED : -ENOMEM;
}

/* Finds or creates the session for id. *present is the CONNACK flag. */
static struct session *attach_session(struct session_mgr *mgr, const uint8_t *id, size_t id_len,
                                      bool clean, bool *present)
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
        *present = true; /* [MQTT-3.2.2-2] */
        return s;
    }
    return session_new(mgr, id, id_len, !clean);
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
    unsigned protocol = p->protocol_level == MQTT_PROTOCOL_V311 ? 2 : 1;
    if (c->username)
        log_connection("New client connected from %s as %s (p%u, c%d, k%u, u'%s').", c->peer,
                       session_client_name(c), protocol, p->clean_session, p->keepalive_s,
                       c->username);
    else
        log_connection("New client connected from %s as %s (p%u, c%d, k%u).", c->peer,
                       session_client_name(c), protocol, p->clean_session, p->keepalive_s);
}

/* Checks the CONNECT's client id and keepalive; sets *id and *id_len (an
 * assigned id goes into auto_id). Returns 0, or a CONNACK code with *why. */
static int check_identity(struct session_mgr *mgr, const struct mqtt_connect *p, char *auto_id,
                          size_t auto_id_len, const uint8_t **id, size_t *id_len, const char **why)
{
    *id = p->client_id.data;
    *id_len = p->client_id.len;
    if (*id_len == 0) {
        /* [MQTT-3.1.3-7] [MQTT-3.1.3-8]: only a clean session gets an id. */
        *why = "empty client id without clean session";
        if (!p->clean_session)
            return MQTT_CONNACK_ID_REJECTED;
        *id_len = (size_t)assign_client_id(mgr, auto_id, auto_id_len);
        *id = (const uint8_t *)auto_id;
    }
    *why = "client id too long for a persistent session";
    if (!p->clean_session && *id_len > store_max_client_id_len(mgr->store))
        return MQTT_CONNACK_ID_REJECTED;
    /* 3.1.1 cannot tell the client a smaller keepalive: Mosquitto refuses with
     * "identifier rejected"; keepalive 0 (none) exceeds any limit. */
    uint16_t max_ka = mgr->config.max_keepalive_s;
    *why = "keepalive above max_keepalive";
    if (max_ka && (p->keepalive_s > max_ka || p->keepalive_s == 0))
        return MQTT_CONNACK_ID_REJECTED;
    return MQTT_CONNACK_ACCEPTED;
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

/* Attaches c to its session and sends CONNACK (held behind the commit of a
 * persistent session's record). */
static int accept_client(struct session_mgr *mgr, struct session_client *c,
                         const struct mqtt_connect *p, const uint8_t *id, size_t id_len)
{
    bool present = false;
    struct session *s = attach_session(mgr, id, id_len, p->clean_session, &present);
    if (!s)
        return SESSION_ERR_NOMEM;
    s->client = c;
    session_offline_remove(mgr, s);
    c->sess = s;
    c->connected = true;
    mgr->clients_connected++;
    s->last_seen_s = (uint64_t)time(NULL);
    if (s->persistent) {
        if (connect_store_session(mgr, s) != 0)
            return SESSION_ERR_STORE;
        if (s->record == SESSION_RECORD_ABSENT) {
            /* A new session exists once its record commits (effects.c). */
            s->record = SESSION_RECORD_PENDING;
            if (effect_session_stored(mgr, s) != 0)
                return SESSION_ERR_NOMEM;
        }
        resume_persistent(mgr, s);
    }
    share_session_online(mgr, s); /* its groups route to it again */
    log_connected(c, p);
    mgr->sink->set_keepalive(c->conn, p->keepalive_s);
    struct mqtt_packet ack = {.type = MQTT_CONNACK};
    ack.u.connack.session_present = present;
    ack.u.connack.return_code = MQTT_CONNACK_ACCEPTED;
    if (output_send_packet(mgr, c, &ack) != 0)
        return SESSION_ERR_NOMEM;
    c->is_connack_held = c->held_sends > 0;
    return SESSION_OK;
}

int connect_handle(struct session_mgr *mgr, struct session_client *c, const struct mqtt_connect *p)
{
    c->protocol_level = p->protocol_level;
    const char *why = "";
    int code = authenticate(mgr, c, p, &why);
    if (code < 0)
        return SESSION_ERR_NOMEM;
    if (code != MQTT_CONNACK_ACCEPTED)
        return refuse(mgr, c, p, (uint8_t)code, why);
    char auto_id[40];
    const uint8_t *id = NULL;
    size_t id_len = 0;
    code = check_identity(mgr, p, auto_id, sizeof(auto_id), &id, &id_len, &why);
    if (code != MQTT_CONNACK_ACCEPTED)
        return refuse(mgr, c, p, (uint8_t)code, why);
    if (!p->clean_session && !reserve_new_session(mgr, id, id_len))
        return refuse(mgr, c, p, MQTT_CONNACK_UNAVAILABLE, "store full: no room for a new session");
    struct msg *will = NULL;
    code = check_will(mgr, c, p, id, id_len, &will, &why);
    if (code < 0)
        return SESSION_ERR_NOMEM;
    if (code != MQTT_CONNACK_ACCEPTED)
        return refuse(mgr, c, p, (uint8_t)code, why);
    int rc = accept_client(mgr, c, p, id, id_len);
    /* Only an accepted client leaves a will: a refused CONNECT never does. */
    if (rc == SESSION_OK)
        c->will = will;
    else
        msg_unref(will);
    return rc;
}
