/*
 * scram.h - the server side of SCRAM-SHA-512 (RFC 5802 with SHA-512, as
 * RFC 7677 does for SHA-256), for MQTT 5 enhanced authentication
 * (Authentication Method "SCRAM-SHA-512", the SASL messages carried as
 * Authentication Data in CONNECT, AUTH and CONNACK).
 *
 * Credentials come from the password file: a $7$ entry's PBKDF2-HMAC-SHA512
 * output, salt and iteration count are SCRAM's SaltedPassword, salt and i,
 * so no new file format is needed. A $6$ entry (SHA512(password || salt))
 * cannot be used: such users authenticate with a CONNECT password only; the
 * exchange fails for them exactly as for an unknown user (same messages,
 * same work), with the reason in auth_scram_error() for the log.
 *
 * No channel binding: the client's GS2 header must be "n,," (or "y,,": the
 * client could bind but believes the server cannot, which is true here); an
 * authzid or "p=" is refused. Usernames are compared as bytes after the
 * "=2C" / "=3D" unescaping (no SASLprep: password file names are plain).
 *
 * Pure computation: no I/O, no clock, no logging; the nonce comes from
 * RAND_bytes. Not for: the MQTT packet flow (which packet carries which
 * message, reason codes, the Authentication Method check): the session
 * manager's CONNECT/AUTH handling.
 */
#ifndef SOL_SCRAM_H
#define SOL_SCRAM_H

#include <stddef.h>
#include <stdint.h>

struct auth_passwd;
struct auth_scram;

/* The MQTT 5 Authentication Method name this module implements. */
#define AUTH_SCRAM_METHOD "SCRAM-SHA-512"

/* Returns a new exchange (NULL: out of memory); one per connection attempt.
 * Release with auth_scram_free(), which wipes its keys. */
struct auth_scram *auth_scram_new(void);
void auth_scram_free(struct auth_scram *s);

/*
 * Step 1: client-first-message (CONNECT's Authentication Data) in,
 * server-first-message out (to send in AUTH with reason 0x18, Continue
 * authentication). pw is borrowed for the call.
 * On AUTH_OK, *server_first points to bytes owned by s, valid until
 * auth_scram_free(). Unknown and $6$ users also get AUTH_OK and a plausible
 * server-first-message (salt stable per name): they fail in step 2.
 * Returns AUTH_OK, AUTH_ERR_INVALID (malformed message, channel binding or
 * authzid asked, called twice: reason in auth_scram_error()), AUTH_ERR_NOMEM
 * or AUTH_ERR_CRYPTO.
 */
int auth_scram_start(struct auth_scram *s, const struct auth_passwd *pw,
                     const uint8_t *client_first, size_t len, const uint8_t **server_first,
                     size_t *server_first_len);

/*
 * Step 2: client-final-message (the client's AUTH Authentication Data) in.
 * On AUTH_OK the client proved the password: *server_final is
 * "v=ServerSignature" (send it in CONNACK 0x00's Authentication Data, so the
 * client can verify the server too) and auth_scram_username() is the
 * authenticated user. On AUTH_ERR_DENIED (wrong password, unknown or $6$
 * user, nonce or channel binding changed) *server_final is "e=..." (RFC 5802
 * server-error, may be sent with CONNACK 0x87 / 0x86) and the reason is in
 * auth_scram_error(). AUTH_ERR_INVALID: malformed, or not after a
 * successful step 1 (*server_final "e=other-error"). The proof is compared
 * in constant time, and the dummy path of an unknown user does the same
 * HMACs as a known one.
 */
int auth_scram_finish(struct auth_scram *s, const uint8_t *client_final, size_t len,
                      const uint8_t **server_final, size_t *server_final_len);

/* The username of step 1 (NUL-terminated; "" before it). Authenticated only
 * once auth_scram_finish() returned AUTH_OK. */
const char *auth_scram_username(const struct auth_scram *s);

/* Why the last step failed, for the log (static text or s's own); "" if none. */
const char *auth_scram_error(const struct auth_scram *s);

#endif /* SOL_SCRAM_H */
