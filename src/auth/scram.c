/*
 * scram.c - SCRAM-SHA-512, server side (RFC 5802 with SHA-512; see scram.h).
 *
 *   client-first  = gs2-header client-first-bare
 *   gs2-header    = ("n" | "y") "," "," (no authzid, no channel binding)
 *   client-first-bare = "n=" saslname "," "r=" c-nonce ["," extensions]
 *   server-first  = "r=" c-nonce s-nonce "," "s=" base64(salt) "," "i=" iterations
 *   client-final  = "c=" base64(gs2-header) "," "r=" nonce ["," extensions] ","
 *                   "p=" base64(ClientProof)
 *   server-final  = "v=" base64(ServerSignature) | "e=" error
 *
 *   AuthMessage     = client-first-bare "," server-first "," client-final-without-proof
 *   ClientKey       = HMAC(SaltedPassword, "Client Key"); StoredKey = H(ClientKey)
 *   ClientSignature = HMAC(StoredKey, AuthMessage); ClientProof = ClientKey ^ ClientSignature
 *   ServerSignature = HMAC(HMAC(SaltedPassword, "Server Key"), AuthMessage)
 * The server checks H(ClientProof ^ ClientSignature) == StoredKey.
 *
 * Every message is parsed from a length-bounded view (never past len) and
 * anything unexpected is AUTH_ERR_INVALID with a reason. Not for: I/O,
 * logging, the MQTT packets (scram.h).
 */
#include "scram.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "auth.h"
#include "auth_internal.h"

#define KEY_LEN      64   /* SHA-512 */
#define NONCE_BYTES  18   /* 24 base64 characters of server nonce */
#define MESSAGE_MAX  4096 /* longest SCRAM message accepted */
#define USERNAME_MAX 1024
#define B64_KEY_LEN  88 /* base64 of 64 bytes */

enum scram_state { SCRAM_NEW, SCRAM_STARTED, SCRAM_DONE };

struct auth_scram {
    enum scram_state state;
    char gs2_flag;   /* 'n' or 'y': client-final's c= must repeat the header */
    int user_status; /* AUTH_OK, or why the user cannot succeed (auth_passwd_scram_credentials) */
    struct auth_scram_credentials cred;
    char username[USERNAME_MAX + 1];
    const char *error;
    /* The AuthMessage's first two parts: "client-first-bare,server-first," */
    char auth_prefix[3 * MESSAGE_MAX]; /* then client-final-without-proof, in step 2 */
    size_t auth_prefix_len;
    size_t server_first_off; /* server-first starts here in auth_prefix */
    size_t server_first_len;
    char nonce[2 * MESSAGE_MAX]; /* c-nonce s-nonce */
    size_t nonce_len;
    char final_message[B64_KEY_LEN + 3];
    size_t final_len;
};

struct auth_scram *auth_scram_new(void)
{
    struct auth_scram *s = calloc(1, sizeof(*s));
    if (s)
        s->error = "";
    return s;
}

void auth_scram_free(struct auth_scram *s)
{
    if (!s)
        return;
    OPENSSL_cleanse(s, sizeof(*s));
    free(s);
}

const char *auth_scram_username(const struct auth_scram *s)
{
    return s->username;
}

const char *auth_scram_error(const struct auth_scram *s)
{
    return s->error;
}

static int fail(struct auth_scram *s, int rc, const char *why)
{
    s->error = why;
    return rc;
}

/* ---- parsing: a cursor over one message ---- */

struct cursor {
    const char *p;
    size_t len;
};

/* Takes the next comma-separated field (without the comma); false at the end. */
static bool next_field(struct cursor *c, struct cursor *field)
{
    if (c->p == NULL)
        return false;
    const char *comma = memchr(c->p, ',', c->len);
    size_t n = comma ? (size_t)(comma - c->p) : c->len;
    *field = (struct cursor){c->p, n};
    if (comma) {
        c->len -= n + 1;
        c->p = comma + 1;
    } else {
        c->p = NULL;
        c->len = 0;
    }
    return true;
}

/* Is field "k=value"? Then *value is the value. */
static bool attribute(struct cursor field, char k, struct cursor *value)
{
    if (field.len < 2 || field.p[0] != k || field.p[1] != '=')
        return false;
    *value = (struct cursor){field.p + 2, field.len - 2};
    return true;
}

/* RFC 5802 saslname: "=2C" is ',', "=3D" is '='; any other '=' or a NUL is
 * malformed. Writes the NUL-terminated name to out. */
static bool unescape_name(struct cursor v, char *out, size_t out_len)
{
    size_t o = 0;
    for (size_t i = 0; i < v.len; i++) {
        char ch = v.p[i];
        if (ch == '\0' || o + 1 >= out_len)
            return false;
        if (ch == '=') {
            if (v.len - i < 3)
                return false;
            if (v.p[i + 1] == '2' && v.p[i + 2] == 'C')
                ch = ',';
            else if (v.p[i + 1] == '3' && v.p[i + 2] == 'D')
                ch = '=';
            else
                return false;
            i += 2;
        }
        out[o++] = ch;
    }
    out[o] = '\0';
    return o > 0;
}

/* A nonce is printable ASCII without ',' (RFC 5802 "printable"). */
static bool is_printable(struct cursor v)
{
    if (v.len == 0)
        return false;
    for (size_t i = 0; i < v.len; i++)
        if (v.p[i] < 0x21 || v.p[i] > 0x7e || v.p[i] == ',')
            return false;
    return true;
}

static bool decode_b64(struct cursor v, uint8_t *out, size_t max, int *n)
{
    char text[B64_KEY_LEN + 1];
    if (v.len == 0 || v.len > B64_KEY_LEN)
        return false;
    memcpy(text, v.p, v.len);
    text[v.len] = '\0';
    *n = auth_b64_decode(text, out, max);
    return *n >= 0;
}

/* ---- crypto ---- */

static bool hmac(const uint8_t *key, size_t key_len, const void *data, size_t len,
                 uint8_t out[KEY_LEN])
{
    unsigned out_len = 0;
    return HMAC(EVP_sha512(), key, (int)key_len, data, len, out, &out_len) != NULL &&
           out_len == KEY_LEN;
}

static bool sha512(const uint8_t *data, size_t len, uint8_t out[KEY_LEN])
{
    unsigned out_len = 0;
    return EVP_Digest(data, len, out, &out_len, EVP_sha512(), NULL) == 1 && out_len == KEY_LEN;
}

/* ---- step 1 ---- */

/* The GS2 header: "n,," or "y,," only (scram.h). Advances c past it. */
static int parse_gs2(struct auth_scram *s, struct cursor *c)
{
    struct cursor flag, authzid;
    if (!next_field(c, &flag) || !next_field(c, &authzid) || c->p == NULL)
        return fail(s, AUTH_ERR_INVALID, "malformed client-first-message (GS2 header)");
    if (flag.len == 1 && (flag.p[0] == 'n' || flag.p[0] == 'y') && authzid.len == 0) {
        s->gs2_flag = flag.p[0];
        return AUTH_OK;
    }
    if (flag.len > 0 && flag.p[0] == 'p')
        return fail(s, AUTH_ERR_INVALID, "channel binding asked (p=): not supported");
    if (authzid.len > 0)
        return fail(s, AUTH_ERR_INVALID, "an authorization identity (a=) is not supported");
    return fail(s, AUTH_ERR_INVALID, "malformed GS2 header (expected \"n,,\")");
}

/* client-first-bare: "n=user,r=nonce[,ext...]". Sets username and nonce. */
static int parse_client_first_bare(struct auth_scram *s, struct cursor bare)
{
    struct cursor f, v;
    if (!next_field(&bare, &f) || (f.len > 0 && f.p[0] == 'm'))
        return fail(s, AUTH_ERR_INVALID, "mandatory extension (m=) not supported");
    if (!attribute(f, 'n', &v) || !unescape_name(v, s->username, sizeof(s->username)))
        return fail(s, AUTH_ERR_INVALID, "malformed or missing username (n=)");
    if (!next_field(&bare, &f) || !attribute(f, 'r', &v) || !is_printable(v) ||
        v.len > MESSAGE_MAX / 2)
        return fail(s, AUTH_ERR_INVALID, "malformed or missing client nonce (r=)");
    memcpy(s->nonce, v.p, v.len);
    s->nonce_len = v.len;
    return AUTH_OK; /* extensions after the nonce are ignored, as RFC 5802 allows */
}

/* Appends the server nonce (base64 of RAND_bytes: printable, no ','). */
static int add_server_nonce(struct auth_scram *s)
{
    uint8_t random[NONCE_BYTES];
    char text[B64_KEY_LEN + 1];
    if (RAND_bytes(random, sizeof(random)) != 1)
        return fail(s, AUTH_ERR_CRYPTO, "RAND_bytes failed");
    int n = auth_b64_encode(random, sizeof(random), text, sizeof(text));
    if (n < 0)
        return fail(s, AUTH_ERR_CRYPTO, "nonce encoding failed");
    memcpy(s->nonce + s->nonce_len, text, (size_t)n);
    s->nonce_len += (size_t)n;
    return AUTH_OK;
}

/* auth_prefix = client-first-bare "," server-first "," */
static int build_server_first(struct auth_scram *s, struct cursor bare)
{
    char salt[B64_KEY_LEN + 1];
    if (auth_b64_encode(s->cred.salt, s->cred.salt_len, salt, sizeof(salt)) < 0)
        return fail(s, AUTH_ERR_CRYPTO, "salt encoding failed");
    memcpy(s->auth_prefix, bare.p, bare.len);
    s->auth_prefix[bare.len] = ',';
    s->server_first_off = bare.len + 1;
    size_t room = sizeof(s->auth_prefix) - s->server_first_off;
    int n = snprintf(s->auth_prefix + s->server_first_off, room, "r=%.*s,s=%s,i=%d,",
                     (int)s->nonce_len, s->nonce, salt, s->cred.iterations);
    if (n < 0 || (size_t)n >= room)
        return fail(s, AUTH_ERR_INVALID, "client-first-message too long");
    s->server_first_len = (size_t)n - 1; /* without the trailing ',' */
    s->auth_prefix_len = s->server_first_off + (size_t)n;
    return AUTH_OK;
}

int auth_scram_start(struct auth_scram *s, const struct auth_passwd *pw,
                     const uint8_t *client_first, size_t len, const uint8_t **server_first,
                     size_t *server_first_len)
{
    if (s->state != SCRAM_NEW)
        return fail(s, AUTH_ERR_INVALID, "client-first-message twice");
    if (client_first == NULL || len == 0 || len > MESSAGE_MAX)
        return fail(s, AUTH_ERR_INVALID, "client-first-message empty or too long");
    struct cursor c = {(const char *)client_first, len};
    int rc = parse_gs2(s, &c);
    if (rc == AUTH_OK)
        rc = parse_client_first_bare(s, c);
    if (rc != AUTH_OK)
        return rc;
    /* Unknown and $6$ users go on with dummy credentials (scram.h). */
    s->user_status = auth_passwd_scram_credentials(pw, s->username, strlen(s->username), &s->cred);
    if (s->user_status == AUTH_ERR_CRYPTO)
        return fail(s, AUTH_ERR_CRYPTO, "HMAC failed");
    rc = add_server_nonce(s);
    if (rc == AUTH_OK)
        rc = build_server_first(s, c);
    if (rc != AUTH_OK)
        return rc;
    s->state = SCRAM_STARTED;
    *server_first = (const uint8_t *)s->auth_prefix + s->server_first_off;
    *server_first_len = s->server_first_len;
    return AUTH_OK;
}

/* ---- step 2 ---- */

static int final_error(struct auth_scram *s, int rc, const char *e, const char *why,
                       const uint8_t **out, size_t *out_len)
{
    s->state = SCRAM_DONE;
    int n = snprintf(s->final_message, sizeof(s->final_message), "e=%s", e);
    s->final_len = n > 0 ? (size_t)n : 0;
    *out = (const uint8_t *)s->final_message;
    *out_len = s->final_len;
    return fail(s, rc, why);
}

/* client-final: "c=biws,r=nonce[,ext...],p=proof". Splits off the proof and
 * checks the channel binding and nonce. */
static int parse_client_final(struct auth_scram *s, struct cursor msg, struct cursor *without_proof,
                              uint8_t proof[KEY_LEN], const char **e)
{
    const char *last = NULL;
    for (size_t i = msg.len; i > 0; i--) {
        if (msg.p[i - 1] == ',') {
            last = msg.p + i - 1;
            break;
        }
    }
    struct cursor f, v;
    int n = 0;
    *e = "other-error";
    if (!last ||
        !attribute((struct cursor){last + 1, msg.len - (size_t)(last + 1 - msg.p)}, 'p', &v) ||
        !decode_b64(v, proof, KEY_LEN, &n) || n != KEY_LEN)
        return fail(s, AUTH_ERR_INVALID, "malformed or missing proof (p=)");
    *without_proof = (struct cursor){msg.p, (size_t)(last - msg.p)};
    struct cursor c = *without_proof;
    *e = "channel-bindings-dont-match";
    /* base64 of step 1's GS2 header ("n,," = "biws", "y,," = "eSws"), no binding data */
    const char *header = s->gs2_flag == 'y' ? "eSws" : "biws";
    if (!next_field(&c, &f) || !attribute(f, 'c', &v) || v.len != 4 || memcmp(v.p, header, 4) != 0)
        return fail(s, AUTH_ERR_DENIED, "channel binding (c=) is not the GS2 header \"n,,\"");
    *e = "other-error";
    if (!next_field(&c, &f) || !attribute(f, 'r', &v))
        return fail(s, AUTH_ERR_INVALID, "malformed or missing nonce (r=)");
    /* The whole nonce, compared in constant time (it is not secret, but cheap). */
    if (v.len != s->nonce_len || CRYPTO_memcmp(v.p, s->nonce, v.len) != 0)
        return fail(s, AUTH_ERR_DENIED, "nonce (r=) does not match the exchange's");
    return AUTH_OK;
}

/* Checks proof against the credentials over AuthMessage; writes the server
 * signature. Does the same work whatever the outcome. */
static int verify_proof(struct auth_scram *s, struct cursor without_proof,
                        const uint8_t proof[KEY_LEN], uint8_t server_sig[KEY_LEN], bool *is_valid)
{
    uint8_t client_key[KEY_LEN], stored_key[KEY_LEN], client_sig[KEY_LEN], server_key[KEY_LEN];
    uint8_t candidate[KEY_LEN];
    const uint8_t *sp = s->cred.salted_password;
    bool ok = without_proof.len <= sizeof(s->auth_prefix) - s->auth_prefix_len;
    if (ok) {
        memcpy(s->auth_prefix + s->auth_prefix_len, without_proof.p, without_proof.len);
        size_t auth_len = s->auth_prefix_len + without_proof.len;
        ok = hmac(sp, KEY_LEN, "Client Key", 10, client_key) &&
             sha512(client_key, KEY_LEN, stored_key) &&
             hmac(stored_key, KEY_LEN, s->auth_prefix, auth_len, client_sig) &&
             hmac(sp, KEY_LEN, "Server Key", 10, server_key) &&
             hmac(server_key, KEY_LEN, s->auth_prefix, auth_len, server_sig);
    }
    if (ok) {
        for (size_t i = 0; i < KEY_LEN; i++)
            client_key[i] = proof[i] ^ client_sig[i]; /* the ClientKey the client used */
        ok = sha512(client_key, KEY_LEN, candidate);
    }
    *is_valid = ok && CRYPTO_memcmp(candidate, stored_key, KEY_LEN) == 0;
    OPENSSL_cleanse(client_key, sizeof(client_key));
    OPENSSL_cleanse(stored_key, sizeof(stored_key));
    OPENSSL_cleanse(server_key, sizeof(server_key));
    OPENSSL_cleanse(candidate, sizeof(candidate));
    return ok ? AUTH_OK : fail(s, AUTH_ERR_CRYPTO, "HMAC failed");
}

int auth_scram_finish(struct auth_scram *s, const uint8_t *client_final, size_t len,
                      const uint8_t **server_final, size_t *server_final_len)
{
    if (s->state != SCRAM_STARTED)
        return final_error(s, AUTH_ERR_INVALID, "other-error",
                           "client-final-message without a client-first-message", server_final,
                           server_final_len);
    if (client_final == NULL || len == 0 || len > MESSAGE_MAX)
        return final_error(s, AUTH_ERR_INVALID, "other-error",
                           "client-final-message empty or too long", server_final,
                           server_final_len);
    struct cursor without_proof;
    uint8_t proof[KEY_LEN], server_sig[KEY_LEN];
    const char *e = "other-error";
    int rc = parse_client_final(s, (struct cursor){(const char *)client_final, len}, &without_proof,
                                proof, &e);
    if (rc != AUTH_OK)
        return final_error(s, rc, e, s->error, server_final, server_final_len);
    bool is_valid = false;
    rc = verify_proof(s, without_proof, proof, server_sig, &is_valid);
    if (rc != AUTH_OK)
        return final_error(s, rc, "other-error", s->error, server_final, server_final_len);
    if (s->user_status == AUTH_ERR_DENIED)
        return final_error(s, AUTH_ERR_DENIED, "invalid-proof", "unknown user", server_final,
                           server_final_len);
    if (s->user_status != AUTH_OK)
        return final_error(s, AUTH_ERR_DENIED, "invalid-proof",
                           "the user has a $6$ password hash: SCRAM-SHA-512 needs a $7$ entry "
                           "(such users can only send a CONNECT password)",
                           server_final, server_final_len);
    if (!is_valid)
        return final_error(s, AUTH_ERR_DENIED, "invalid-proof", "wrong password (invalid proof)",
                           server_final, server_final_len);
    memcpy(s->final_message, "v=", 2);
    int n =
        auth_b64_encode(server_sig, KEY_LEN, s->final_message + 2, sizeof(s->final_message) - 2);
    OPENSSL_cleanse(server_sig, sizeof(server_sig));
    if (n < 0)
        return final_error(s, AUTH_ERR_CRYPTO, "other-error", "signature encoding failed",
                           server_final, server_final_len);
    s->state = SCRAM_DONE;
    s->final_len = 2 + (size_t)n;
    s->error = "";
    *server_final = (const uint8_t *)s->final_message;
    *server_final_len = s->final_len;
    return AUTH_OK;
}
