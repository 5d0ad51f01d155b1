/*
 * auth_internal.h - helpers shared by password.c and acl.c: reading a text
 * file line by line with PATH:LINE error messages, and trimming blanks.
 *
 * Not for: anything outside src/auth/ (use auth.h).
 */
#ifndef SOL_AUTH_INTERNAL_H
#define SOL_AUTH_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* Where a loader is, for error messages. */
struct auth_file {
    const char *path;
    unsigned line_no;
    char *err;
    size_t err_len;
};

/* Called once per line with the line's text (no CR/LF, NUL-terminated,
 * writable until the callback returns). Returns AUTH_OK or an error code,
 * which stops the read. */
typedef int (*auth_line_fn)(struct auth_file *f, char *line, void *ctx);

/*
 * Calls fn for each line of path, in order. A line holding a NUL byte is an
 * error. Returns AUTH_OK, fn's first error, AUTH_ERR_IO ("PATH: cannot read:
 * reason" in f->err) or AUTH_ERR_NOMEM.
 */
int auth_file_each_line(struct auth_file *f, auth_line_fn fn, void *ctx);

/* Writes "PATH:LINE: " and the formatted message into f->err; returns rc. */
int auth_file_fail(const struct auth_file *f, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Returns s without leading and trailing blanks (' ', '\t'); trims in place. */
char *auth_trim(char *s);

/* password.c: padded standard base64 of NUL-terminated text into out (at
 * most max bytes, text at most 88 chars); returns the byte count or -1. */
int auth_b64_decode(const char *text, uint8_t *out, size_t max);
/* base64 of in[0..len) (len <= 64) into out, NUL-terminated; returns the
 * text length or -1 when out_len is too small. */
int auth_b64_encode(const uint8_t *in, size_t len, char *out, size_t out_len);

struct auth_passwd;

/* What SCRAM-SHA-512 needs of a user (password.c, for scram.c). */
struct auth_scram_credentials {
    uint8_t salt[64];
    size_t salt_len;
    int iterations;
    uint8_t salted_password[64]; /* a $7$ entry's PBKDF2-HMAC-SHA512 output */
};

/*
 * Fills *out with username[0..len)'s SCRAM credentials. Returns AUTH_OK for
 * a $7$ user; AUTH_ERR_DENIED for an unknown user and AUTH_ERR_INVALID for
 * a $6$ user (SHA512(password || salt) is not SaltedPassword: such users can
 * only use CONNECT passwords): *out is then a dummy with the same shape,
 * stable per name, so the exchange goes on and costs the same. Returns
 * AUTH_ERR_CRYPTO if an HMAC failed.
 */
int auth_passwd_scram_credentials(const struct auth_passwd *pw, const char *username,
                                  size_t username_len, struct auth_scram_credentials *out);

#endif
