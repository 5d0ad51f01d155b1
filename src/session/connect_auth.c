/*
 * connect_auth.c - MQTT 5 enhanced authentication [4.12] with one method,
 * SCRAM-SHA-512 (the computation is src/auth/scram.c):
 *
 *   CONNECT  (method, client-first)  ->  AUTH 0x18 (method, server-first)
 *   AUTH 0x18 (method, client-final) ->  CONNACK 0x00 (method, "v=" server-final)
 *                                    or  CONNACK 0x87 (method, "e=...") and close
 * and re-authentication after CONNACK [4.12.1]:
 *   AUTH 0x19 (method, client-first) ->  AUTH 0x18 (method, server-first)
 *   AUTH 0x18 (method, client-final) ->  AUTH 0x00 (method, "v=" server-final)
 *                                    or  DISCONNECT 0x87 and close
 *
 * Until CONNACK the CONNECT is kept (a copy: the decoded packet borrowed the
 * connection's input buffer) and none of it takes effect: no session is
 * created or resumed, no will registered. The identity is the SCRAM
 * username; CONNECT's password is ignored and a CONNECT username (or a TLS
 * identity) other than the SCRAM one is refused. The server keeps the
 * connection in its connect phase until CONNACK 0, so the exchange ends by
 * the connect deadline. auth_scram_start() copies the user's credentials
 * out of the password set, so a SIGHUP reload mid-exchange frees nothing the
 * exchange still uses; the second step costs a few HMACs (a $7$ entry holds
 * SaltedPassword: no PBKDF2 is computed here), so no client's exchange
 * holds up the loop.
 *
 * Not for: the SCRAM messages themselves (src/auth/scram.c), the rest of
 * CONNECT (connect.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "log.h"
#include "scram.h"
#include "session_internal.h"

struct connect_auth {
    struct auth_scram *scram;
    uint8_t *connect_bytes;     /* the CONNECT re-encoded (NULL when re-authenticating) */
    size_t connect_len;         /* bytes in connect_bytes */
    struct mqtt_packet connect; /* decoded from connect_bytes: its views point there */
};

static const struct mqtt_bytes scram_method = {(const uint8_t *)AUTH_SCRAM_METHOD,
                                               sizeof(AUTH_SCRAM_METHOD) - 1};

static bool is_scram(struct mqtt_bytes method)
{
    return method.len == scram_method.len &&
           memcmp(method.data, scram_method.data, method.len) == 0;
}

/* Is props's Authentication Method SCRAM-SHA-512? */
static bool names_scram(const struct mqtt_properties *props)
{
    return mqtt_properties_has(props, MQTT_PROP_AUTHENTICATION_METHOD) &&
           is_scram(props->authentication_method);
}

bool connect_auth_is_pending(const struct session_client *c)
{
    return c->v5 && c->v5->auth && !c->connected;
}

void connect_auth_end(struct session_client *c)
{
    struct connect_auth *a = c->v5 ? c->v5->auth : NULL;
    if (!a)
        return;
    auth_scram_free(a->scram);
    if (a->connect_bytes)
        explicit_bzero(a->connect_bytes, a->connect_len); /* it holds any CONNECT password */
    free(a->connect_bytes);
    free(a);
    c->v5->auth = NULL;
}

/* A new exchange on c (NULL: out of memory). */
static struct connect_auth *exchange_new(struct session_client *c)
{
    struct connect_auth *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->scram = auth_scram_new();
    if (!a->scram) {
        free(a);
        return NULL;
    }
    c->v5->auth = a;
    return a;
}

/* Keeps a copy of p for connect_accept() after the exchange: encoded, then
 * decoded from the copy, so every view lives in one allocation. 0, -ENOMEM,
 * or -EINVAL (cannot happen: p was decoded, and the codec round-trips). */
static int keep_connect(struct connect_auth *a, const struct mqtt_connect *p)
{
    struct mqtt_packet pkt = {.type = MQTT_CONNECT, .protocol_level = MQTT_PROTOCOL_V5};
    pkt.u.connect = *p;
    size_t size = mqtt_encoded_size(&pkt);
    if (size == 0)
        return -EINVAL;
    a->connect_bytes = malloc(size);
    if (!a->connect_bytes)
        return -ENOMEM;
    a->connect_len = size;
    size_t written = 0, used = 0;
    if (mqtt_encode(&pkt, a->connect_bytes, size, &written) != MQTT_OK ||
        mqtt_decode_stream_for(a->connect_bytes, written, 0, MQTT_PROTOCOL_V5, &a->connect,
                               &used) != MQTT_OK)
        return -EINVAL;
    return 0;
}

/* Sends AUTH with reason, the method and data. 0 or -ENOMEM. */
static int send_auth(struct session_mgr *mgr, struct session_client *c, uint8_t reason,
                     const uint8_t *data, size_t len)
{
    struct mqtt_packet pkt = {.type = MQTT_AUTH, .protocol_level = MQTT_PROTOCOL_V5};
    pkt.u.auth.reason_code = reason;
    pkt.u.auth.props.present = MQTT_PROP_BIT(MQTT_PROP_AUTHENTICATION_METHOD) |
                               MQTT_PROP_BIT(MQTT_PROP_AUTHENTICATION_DATA);
    pkt.u.auth.props.authentication_method = scram_method; /* [MQTT-4.12.0-5] */
    pkt.u.auth.props.authentication_data = (struct mqtt_bytes){data, len};
    return output_send_packet(mgr, c, &pkt) == 0 ? 0 : -ENOMEM;
}

/* The log's account of a failed exchange: the reason is scram.c's (never a
 * secret); the client only hears "not authorized". */
static void log_failure(const struct session_client *c, const char *client_id,
                        const struct connect_auth *a)
{
    log_notice("client %s from %s: SCRAM-SHA-512 authentication of user '%s' failed: %s", client_id,
               c->peer, auth_scram_username(a->scram), auth_scram_error(a->scram));
}

/* The username the SCRAM identity must match: a TLS identity, else the
 * CONNECT's; NULL when there is none. *len is its length. */
static const char *claimed_username(const struct session_client *c, const struct mqtt_connect *p,
                                    size_t *len)
{
    if (c->has_identity && c->username) {
        *len = strlen(c->username);
        return c->username;
    }
    if (!p->has_username)
        return NULL;
    *len = p->username.len;
    return (const char *)p->username.data;
}

static bool is_same_user(const struct session_client *c, const struct mqtt_connect *p,
                         const struct connect_auth *a)
{
    size_t len = 0;
    const char *claimed = claimed_username(c, p, &len);
    const char *user = auth_scram_username(a->scram);
    return !claimed || (strlen(user) == len && memcmp(user, claimed, len) == 0);
}

/* Step 1 of a CONNECT's exchange, once the method is known to be SCRAM. */
static int start_exchange(struct session_mgr *mgr, struct session_client *c,
                          const struct mqtt_connect *p, const struct auth_passwd *passwords)
{
    char id[128];
    snprintf(id, sizeof(id), "%.*s", (int)p->client_id.len, (const char *)p->client_id.data);
    struct connect_auth *a = exchange_new(c);
    if (!a)
        return SESSION_ERR_NOMEM;
    struct mqtt_bytes first = p->props.authentication_data; /* empty when absent */
    const uint8_t *server_first = NULL;
    size_t len = 0;
    int rc = auth_scram_start(a->scram, passwords, first.data, first.len, &server_first, &len);
    if (rc == AUTH_ERR_NOMEM)
        return SESSION_ERR_NOMEM;
    if (rc != AUTH_OK) {
        log_failure(c, id, a);
        return connect_refuse(mgr, c, p, MQTT_RC_NOT_AUTHORIZED,
                              "SCRAM-SHA-512: no valid client-first-message", NULL);
    }
    if (!is_same_user(c, p, a))
        return connect_refuse(mgr, c, p, MQTT_RC_NOT_AUTHORIZED,
                              "the CONNECT's username is not the SCRAM-SHA-512 identity", NULL);
    rc = keep_connect(a, p);
    if (rc == -EINVAL)
        log_error("client %s from %s: CONNECT could not be kept for authentication", id, c->peer);
    if (rc != 0)
        return rc == -ENOMEM ? SESSION_ERR_NOMEM : SESSION_ERR_PROTOCOL;
    return send_auth(mgr, c, MQTT_RC_CONTINUE_AUTHENTICATION, server_first, len) == 0
               ? SESSION_OK
               : SESSION_ERR_NOMEM;
}

int connect_auth_start(struct session_mgr *mgr, struct session_client *c,
                       const struct mqtt_connect *p)
{
    if (!is_scram(p->props.authentication_method)) /* [MQTT-4.12.0-1] */
        return connect_refuse(mgr, c, p, MQTT_RC_BAD_AUTHENTICATION_METHOD,
                              "authentication method not supported", NULL);
    const struct auth_passwd *passwords = client_auth(mgr, c).passwords;
    if (!passwords) /* no credentials to check against: the method is not offered */
        return connect_refuse(mgr, c, p, MQTT_RC_BAD_AUTHENTICATION_METHOD,
                              "SCRAM-SHA-512 needs a password_file", NULL);
    return start_exchange(mgr, c, p, passwords);
}

/* Step 2 of a CONNECT's exchange: the client's AUTH. */
static int finish_exchange(struct session_mgr *mgr, struct session_client *c,
                           struct connect_auth *a, const struct mqtt_disconnect *auth)
{
    const struct mqtt_connect *p = &a->connect.u.connect;
    if (auth->reason_code != MQTT_RC_CONTINUE_AUTHENTICATION) /* [MQTT-4.12.0-3] */
        return connect_refuse(mgr, c, p, MQTT_RC_PROTOCOL_ERROR,
                              "AUTH before CONNACK must have reason 0x18", NULL);
    if (!names_scram(&auth->props)) /* [MQTT-4.12.0-5] */
        return connect_refuse(mgr, c, p, MQTT_RC_PROTOCOL_ERROR,
                              "AUTH's Authentication Method is not the CONNECT's", NULL);
    struct mqtt_bytes data = auth->props.authentication_data;
    const uint8_t *server_final = NULL;
    size_t len = 0;
    int rc = auth_scram_finish(a->scram, data.data, data.len, &server_final, &len);
    struct connect_auth_reply reply = {scram_method, {server_final, len}};
    if (rc != AUTH_OK) {
        char id[128];
        snprintf(id, sizeof(id), "%.*s", (int)p->client_id.len, (const char *)p->client_id.data);
        log_failure(c, id, a);
        return connect_refuse(mgr, c, p, MQTT_RC_NOT_AUTHORIZED,
                              "SCRAM-SHA-512 authentication failed", &reply);
    }
    free(c->username);
    c->username = strdup(auth_scram_username(a->scram));
    if (!c->username)
        return SESSION_ERR_NOMEM;
    c->v5->has_auth_method = true;
    rc = connect_accept(mgr, c, p, &reply); /* the CONNACK is encoded before the copy goes */
    connect_auth_end(c);
    return rc;
}

int connect_auth_handle(struct session_mgr *mgr, struct session_client *c,
                        const struct mqtt_packet *pkt)
{
    struct connect_auth *a = c->v5->auth;
    switch (pkt->type) {
    case MQTT_AUTH:
        return finish_exchange(mgr, c, a, &pkt->u.auth);
    case MQTT_DISCONNECT:
        return SESSION_ERR_DISCONNECT; /* nothing took effect: nothing to undo */
    default:                           /* [MQTT-3.1.2-30]; a second CONNECT [MQTT-3.1.0-2] */
        return connect_refuse(mgr, c, &a->connect.u.connect, MQTT_RC_PROTOCOL_ERROR,
                              "only AUTH or DISCONNECT may follow a CONNECT with an "
                              "Authentication Method before CONNACK",
                              NULL);
    }
}

/* Re-authentication, step 1: the same user proves the password again
 * against the current password set. */
static int reauth_start(struct session_mgr *mgr, struct session_client *c,
                        const struct mqtt_disconnect *auth)
{
    const struct auth_passwd *passwords = client_auth(mgr, c).passwords;
    struct connect_auth *a = exchange_new(c);
    if (!a)
        return SESSION_ERR_NOMEM;
    struct mqtt_bytes first = auth->props.authentication_data;
    const uint8_t *server_first = NULL;
    size_t len = 0;
    int rc = passwords
                 ? auth_scram_start(a->scram, passwords, first.data, first.len, &server_first, &len)
                 : AUTH_ERR_INVALID;
    if (rc == AUTH_ERR_NOMEM)
        return SESSION_ERR_NOMEM;
    if (rc != AUTH_OK || !c->username || strcmp(auth_scram_username(a->scram), c->username)) {
        log_notice("client %s: re-authentication refused: %s", session_client_name(c),
                   rc != AUTH_OK ? auth_scram_error(a->scram) : "another user");
        return SESSION_ERR_NOT_AUTHORIZED;
    }
    return send_auth(mgr, c, MQTT_RC_CONTINUE_AUTHENTICATION, server_first, len) == 0
               ? SESSION_OK
               : SESSION_ERR_NOMEM;
}

/* Re-authentication, step 2: AUTH 0x00 with server-final, or 0x87. */
static int reauth_finish(struct session_mgr *mgr, struct session_client *c,
                         const struct mqtt_disconnect *auth)
{
    struct connect_auth *a = c->v5->auth;
    struct mqtt_bytes data = auth->props.authentication_data;
    const uint8_t *server_final = NULL;
    size_t len = 0;
    int rc = auth_scram_finish(a->scram, data.data, data.len, &server_final, &len);
    if (rc != AUTH_OK) {
        log_failure(c, session_client_name(c), a);
        return SESSION_ERR_NOT_AUTHORIZED;
    }
    rc = send_auth(mgr, c, MQTT_RC_SUCCESS, server_final, len);
    connect_auth_end(c);
    return rc == 0 ? SESSION_OK : SESSION_ERR_NOMEM;
}

int connect_auth_handle_connected(struct session_mgr *mgr, struct session_client *c,
                                  const struct mqtt_disconnect *auth)
{
    /* No method in CONNECT: no AUTH [MQTT-4.12.0-7]; re-authentication
     * keeps the method [MQTT-4.12.1-1]. */
    if (!client_is_v5(c) || !c->v5->has_auth_method || !names_scram(&auth->props))
        return SESSION_ERR_PROTOCOL;
    bool is_running = c->v5->auth != NULL;
    if (auth->reason_code == MQTT_RC_RE_AUTHENTICATE && !is_running)
        return reauth_start(mgr, c, auth);
    if (auth->reason_code == MQTT_RC_CONTINUE_AUTHENTICATION && is_running)
        return reauth_finish(mgr, c, auth);
    return SESSION_ERR_PROTOCOL;
}
