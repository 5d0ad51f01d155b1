/*
 * auth.h - Sol's authentication and authorisation, in Mosquitto's file formats:
 * the password file (password.c: "username:hash" lines with Mosquitto 2's $6$
 * and $7$ hashes) and the ACL file (acl.c: "user", "topic", "pattern" lines).
 *
 * Loading either file returns an immutable in-memory object; checks against it
 * are pure functions, so a reload (SIGHUP) loads a new object and swaps it in.
 * Errors while loading come back as "FILE:LINE: message" in the caller's
 * buffer, in the style of redis anet's char *err. Nothing here logs or exits.
 *
 * Not for: deciding what a denial means on the wire (CONNACK codes, SUBACK
 * 0x80, dropping a PUBLISH), allow_anonymous, $SYS/$share rules, or reading
 * passwords from a terminal. Those belong to the session manager and solctl.
 */
#ifndef SOL_AUTH_H
#define SOL_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Return codes: 0 or negative. */
enum auth_err {
    AUTH_OK = 0,
    AUTH_ERR_DENIED = -1,  /* wrong credentials, or access denied */
    AUTH_ERR_INVALID = -2, /* bad file content or bad argument */
    AUTH_ERR_IO = -3,      /* a file could not be read */
    AUTH_ERR_NOMEM = -4,
    AUTH_ERR_CRYPTO = -5, /* an OpenSSL call failed */
};

/* A static, human-readable name for an auth_err code. */
const char *auth_strerror(int err);

/* ---- password file (password.c) ------------------------------------------ */

/* mosquitto_passwd's defaults (Mosquitto 2.0: PW_DEFAULT_ITERATIONS, SALT_LEN). */
#define AUTH_PASSWD_DEFAULT_ITERATIONS 101
#define AUTH_PASSWD_SALT_LEN           12
/* Room for any hash string auth_passwd_hash_new() writes, NUL included. */
#define AUTH_PASSWD_HASH_MAX 160

struct auth_passwd;

/*
 * Loads a Mosquitto password file: one "username:hash" per line, where hash is
 *   $7$ITERATIONS$SALT_BASE64$HASH_BASE64  PBKDF2-HMAC-SHA512 (mosquitto_passwd)
 *   $6$SALT_BASE64$HASH_BASE64             SHA512(password || salt), older files
 * Blank lines and lines whose first non-blank character is '#' are ignored;
 * blanks around the username and the hash are trimmed, as Mosquitto does.
 * Anything else (no ':', empty username, plain-text or unknown hash, bad
 * base64, a digest that is not 64 bytes, a duplicate user) fails the load with
 * "PATH:LINE: message" in err (always NUL-terminated when err_len > 0).
 * On success *out is a new object; release it with auth_passwd_free().
 * Returns AUTH_OK, AUTH_ERR_INVALID, AUTH_ERR_IO, AUTH_ERR_NOMEM or
 * AUTH_ERR_CRYPTO (RAND_bytes failed preparing the unknown-user dummy).
 */
int auth_passwd_load(const char *path, struct auth_passwd **out, char *err, size_t err_len);

/* Frees pw. auth_passwd_free(NULL) does nothing. */
void auth_passwd_free(struct auth_passwd *pw);

/* Number of users loaded. */
size_t auth_passwd_count(const struct auth_passwd *pw);

/*
 * Checks username (NUL-terminated) and the password bytes password[0..len).
 * password == NULL (no password sent) or len == 0 never matches, as in
 * Mosquitto 2.0.11, which reads an empty CONNECT password as none. All password_len
 * bytes are hashed, NUL bytes included (Mosquitto hashes up to the first NUL;
 * mosquitto_passwd cannot create such passwords, so no real file differs).
 * An unknown user costs the same hash work as a known one, and the digest is
 * compared in constant time, so timing reveals neither the user's existence
 * nor how much of the digest matched.
 * Returns AUTH_OK, AUTH_ERR_DENIED or AUTH_ERR_CRYPTO (treat as denied).
 */
int auth_passwd_verify(const struct auth_passwd *pw, const char *username, const uint8_t *password,
                       size_t password_len);

/*
 * Creates a new $7$ hash of password[0..len) with a fresh 12-byte salt from
 * RAND_bytes and `iterations` rounds (0 means AUTH_PASSWD_DEFAULT_ITERATIONS),
 * and writes it, NUL-terminated, to out (AUTH_PASSWD_HASH_MAX bytes is
 * always enough). A password file line is then "username:" + out.
 * Returns AUTH_OK, AUTH_ERR_INVALID (iterations < 0, password too long for
 * OpenSSL, out too small) or AUTH_ERR_CRYPTO.
 */
int auth_passwd_hash_new(const uint8_t *password, size_t password_len, int iterations, char *out,
                         size_t out_len);

/* ---- ACL file (acl.c) ---------------------------------------------------- */

/* What a client wants to do with a topic; pass exactly one. */
enum auth_access {
    AUTH_READ = 1u << 0,      /* receive a message published to a topic name */
    AUTH_WRITE = 1u << 1,     /* publish to a topic name */
    AUTH_SUBSCRIBE = 1u << 2, /* subscribe to a topic filter (see auth_acl_check) */
};

struct auth_acl;

/*
 * Loads a Mosquitto ACL file:
 *   user NAME                       later topic lines apply to NAME (the rest
 *                                   of the line, so names may hold spaces)
 *   topic [ACCESS] FILTER           before any user line: anonymous clients
 *   pattern [ACCESS] FILTER         every client; %c = client id, %u = username
 * ACCESS is read, write, readwrite (the default) or deny. As in Mosquitto, a
 * line with a single word after topic/pattern takes that word as the filter
 * ("topic read" is the filter "read", readwrite), and the filter is the rest
 * of the line (it may contain spaces). Blank lines and '#' comments are
 * ignored. An unknown keyword, a missing user name or filter, an unknown
 * ACCESS or an invalid filter ('+'/'#' misplaced, over 65535 bytes) fails the
 * load with "PATH:LINE: message" in err.
 * On success *out is a new object; release it with auth_acl_free().
 * Returns AUTH_OK, AUTH_ERR_INVALID, AUTH_ERR_IO or AUTH_ERR_NOMEM.
 */
int auth_acl_load(const char *path, struct auth_acl **out, char *err, size_t err_len);

/* Frees acl. auth_acl_free(NULL) does nothing. */
void auth_acl_free(struct auth_acl *acl);

/*
 * May this client do `access` on topic[0..topic_len)? client_id is the
 * client's (NUL-terminated) id; username is NULL for an anonymous client.
 * READ and WRITE follow Mosquitto 2.0's acl_file check exactly:
 *  1. The user's rules (the anonymous rules when username is NULL) are tried:
 *     a matching deny rule denies; else a matching rule granting access allows.
 *  2. Otherwise, if there are patterns: a username or client id containing
 *     '+' or '#' is denied (it could widen a pattern); patterns using %u are
 *     skipped for anonymous clients; %c and %u are replaced wherever they
 *     appear; a matching deny pattern denies, else a granting one allows.
 *  3. Otherwise access is denied.
 * Matching is MQTT's: '+' one level, '#' the rest including the parent
 * ("a/#" matches "a"), and wildcards in the first level never match a topic
 * starting with '$'.
 * SUBSCRIBE (topic is then a filter) is Sol's: Mosquitto 2.0's acl_file allows
 * every subscription and relies on the per-message READ check. Sol denies a
 * subscription only when no message could ever be delivered through it: when
 * one deny rule covers the whole filter, or when no READ rule overlaps it, with
 * the same user-then-pattern order. READ must still be checked per delivery.
 * Returns AUTH_OK or AUTH_ERR_DENIED (also for an out-of-memory pattern
 * expansion, or an access value that is not exactly one of the above).
 */
int auth_acl_check(const struct auth_acl *acl, const char *client_id, const char *username,
                   const char *topic, size_t topic_len, unsigned access);

#endif
