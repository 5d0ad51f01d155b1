/*
 * auth_internal.h - helpers shared by password.c and acl.c: reading a text
 * file line by line with PATH:LINE error messages, and trimming blanks.
 *
 * Not for: anything outside src/auth/ (use auth.h).
 */
#ifndef SOL_AUTH_INTERNAL_H
#define SOL_AUTH_INTERNAL_H

#include <stddef.h>

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

#endif
