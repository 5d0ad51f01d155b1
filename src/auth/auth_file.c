/*
 * auth_file.c - line reader and error formatting shared by the password and
 * ACL loaders, plus auth_strerror().
 *
 * Not for: parsing either format (password.c, acl.c).
 */
#include "auth_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "auth.h"

const char *auth_strerror(int err)
{
    switch (err) {
    case AUTH_OK:
        return "success";
    case AUTH_ERR_DENIED:
        return "access denied";
    case AUTH_ERR_INVALID:
        return "invalid input";
    case AUTH_ERR_IO:
        return "input/output error";
    case AUTH_ERR_NOMEM:
        return "out of memory";
    case AUTH_ERR_CRYPTO:
        return "cryptographic library failure";
    default:
        return "unknown auth error";
    }
}

int auth_file_fail(const struct auth_file *f, int rc, const char *fmt, ...)
{
    if (f->err == NULL || f->err_len == 0)
        return rc;
    int n = snprintf(f->err, f->err_len, "%s:%u: ", f->path, f->line_no);
    if (n < 0 || (size_t)n >= f->err_len)
        return rc;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->err + n, f->err_len - (size_t)n, fmt, ap);
    va_end(ap);
    return rc;
}

char *auth_trim(char *s)
{
    s += strspn(s, " \t");
    size_t len = strlen(s);
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        s[--len] = '\0';
    return s;
}

/* Drops a trailing LF and CR (CRLF files come from Windows editors). */
static void chomp(char *line, size_t *len)
{
    while (*len > 0 && (line[*len - 1] == '\n' || line[*len - 1] == '\r'))
        line[--*len] = '\0';
}

static int read_lines(struct auth_file *f, FILE *fp, auth_line_fn fn, void *ctx)
{
    char *line = NULL;
    size_t cap = 0;
    int rc = AUTH_OK;
    for (;;) {
        errno = 0; /* getline() leaves errno alone at end of file */
        ssize_t got = getline(&line, &cap, fp);
        if (got < 0)
            break;
        size_t len = (size_t)got;
        f->line_no++;
        if (strlen(line) != len)
            rc = auth_file_fail(f, AUTH_ERR_INVALID, "line contains a NUL byte");
        else {
            chomp(line, &len);
            rc = fn(f, line, ctx);
        }
        if (rc != AUTH_OK)
            break;
    }
    if (rc == AUTH_OK && errno == ENOMEM) {
        rc = auth_file_fail(f, AUTH_ERR_NOMEM, "out of memory");
    } else if (rc == AUTH_OK && ferror(fp)) {
        snprintf(f->err, f->err_len, "%s: cannot read: %s", f->path, strerror(errno));
        rc = AUTH_ERR_IO;
    }
    free(line);
    return rc;
}

int auth_file_each_line(struct auth_file *f, auth_line_fn fn, void *ctx)
{
    f->line_no = 0;
    if (f->err != NULL && f->err_len > 0)
        f->err[0] = '\0';
    FILE *fp = fopen(f->path, "r");
    if (fp == NULL) {
        snprintf(f->err, f->err_len, "%s: cannot read: %s", f->path, strerror(errno));
        return AUTH_ERR_IO;
    }
    int rc = read_lines(f, fp, fn, ctx);
    fclose(fp);
    return rc;
}
