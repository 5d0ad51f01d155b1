/*
 * passwd.c - solctl passwd: add or change a user in a Mosquitto password file.
 *   solctl passwd FILE USER             prompts twice for the password (no echo)
 *   solctl passwd -b FILE USER PASSWORD batch mode (the password is visible to
 *                                       other users in ps: use for scripts only)
 * Creates FILE (mode 0600) if it is missing; replaces USER's line if present,
 * else appends one; keeps every other line (comments included) as it was. The
 * new file is written next to FILE, checked with auth_passwd_load(), fsynced
 * and renamed over FILE, so a crash leaves the old or the new file, never half
 * of one. A running broker picks the change up on SIGHUP.
 * Not for: the store (this is the one solctl command that writes, and it
 * writes only FILE).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "auth.h"

#define PASSWORD_MAX 1024 /* bytes, NUL excluded */
#define ERR_LEN      512

enum { EXIT_OK = 0, EXIT_ERROR = 2 };

static void passwd_usage(FILE *out)
{
    fputs("usage: solctl passwd FILE USER\n"
          "       solctl passwd -b FILE USER PASSWORD\n"
          "Adds USER to (or changes USER's password in) the Mosquitto password file FILE,\n"
          "creating it if needed. Without -b the password is read twice from the terminal.\n",
          out);
}

/* Mosquitto's rules: not empty, no ':' (the separator), no control bytes. */
static bool is_valid_username(const char *user)
{
    if (user[0] == '\0')
        return false;
    for (const unsigned char *p = (const unsigned char *)user; *p != '\0'; p++) {
        if (*p == ':' || *p < 0x20 || *p == 0x7f)
            return false;
    }
    return true;
}

/* Reads one line from the terminal fd without echo; the newline is dropped.
 * Returns 0, or -1 with err. */
static int read_hidden(int fd, const char *prompt, char *buf, size_t len, char *err, size_t err_len)
{
    struct termios old, quiet;
    if (tcgetattr(fd, &old) != 0) {
        snprintf(err, err_len, "cannot read a password: not a terminal (use -b)");
        return -1;
    }
    quiet = old;
    quiet.c_lflag &= ~(tcflag_t)ECHO;
    quiet.c_lflag |= ECHONL;
    fputs(prompt, stderr);
    fflush(stderr);
    if (tcsetattr(fd, TCSAFLUSH, &quiet) != 0) {
        snprintf(err, err_len, "cannot turn echo off: %s", strerror(errno));
        return -1;
    }
    ssize_t n = read(fd, buf, len - 1);
    int saved = errno;
    tcsetattr(fd, TCSAFLUSH, &old);
    if (n < 0) {
        snprintf(err, err_len, "reading the password: %s", strerror(saved));
        return -1;
    }
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

/* Prompts twice; the two must match. */
static int prompt_password(char *pw, size_t len, char *err, size_t err_len)
{
    char again[PASSWORD_MAX + 2];
    int rc = -1;
    if (read_hidden(STDIN_FILENO, "Password: ", pw, len, err, err_len) == 0 &&
        read_hidden(STDIN_FILENO, "Reenter password: ", again, sizeof(again), err, err_len) == 0) {
        rc = strcmp(pw, again) == 0 ? 0 : -1;
        if (rc != 0)
            snprintf(err, err_len, "passwords do not match");
    }
    memset(again, 0, sizeof(again));
    return rc;
}

/* Is line "user:..." (blanks around the name trimmed, as auth_passwd_load)? */
static bool is_line_of(const char *line, const char *user)
{
    line += strspn(line, " \t");
    const char *colon = strchr(line, ':');
    if (colon == NULL || line[0] == '#')
        return false;
    size_t n = (size_t)(colon - line);
    while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t'))
        n--;
    return n == strlen(user) && memcmp(line, user, n) == 0;
}

/* Copies FILE (if it exists) to out without user's line(s), then appends the
 * new line. */
static int copy_with_user(const char *path, FILE *out, const char *user, const char *hash,
                          char *err, size_t err_len)
{
    FILE *in = fopen(path, "r");
    if (in == NULL && errno != ENOENT) {
        snprintf(err, err_len, "%.300s: %s", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while (in != NULL && (len = getline(&line, &cap, in)) > 0) {
        if (is_line_of(line, user))
            continue;
        fputs(line, out);
        if (line[len - 1] != '\n') /* a last line without its newline */
            fputc('\n', out);
    }
    bool has_read_error = in != NULL && ferror(in);
    free(line);
    if (in != NULL)
        fclose(in);
    if (has_read_error) {
        snprintf(err, err_len, "%.300s: read error", path);
        return -1;
    }
    fprintf(out, "%s:%s\n", user, hash);
    return 0;
}

/* Writes the new file as tmp, checks and syncs it. */
static int write_tmp(const char *path, const char *tmp, const char *user, const char *hash,
                     char *err, size_t err_len)
{
    struct stat st;
    mode_t mode = stat(path, &st) == 0 ? (st.st_mode & 0777) : 0600;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    FILE *out = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (out == NULL) {
        snprintf(err, err_len, "%.300s: %s", tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    int rc = copy_with_user(path, out, user, hash, err, err_len);
    if (fflush(out) != 0 || fsync(fileno(out)) != 0) {
        if (rc == 0)
            snprintf(err, err_len, "%.300s: %s", tmp, strerror(errno));
        rc = -1;
    }
    if (fclose(out) != 0 && rc == 0) {
        snprintf(err, err_len, "%.300s: %s", tmp, strerror(errno));
        rc = -1;
    }
    return rc;
}

/* The whole update: hash, write tmp, check it loads, rename over path. */
static int update_file(const char *path, const char *user, const char *password, char *err,
                       size_t err_len)
{
    char hash[AUTH_PASSWD_HASH_MAX];
    int rc =
        auth_passwd_hash_new((const uint8_t *)password, strlen(password), 0, hash, sizeof(hash));
    if (rc != AUTH_OK) {
        snprintf(err, err_len, "hashing the password: %s", auth_strerror(rc));
        return -1;
    }
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= sizeof(tmp)) {
        snprintf(err, err_len, "%.300s: path too long", path);
        return -1;
    }
    struct auth_passwd *check = NULL;
    if (write_tmp(path, tmp, user, hash, err, err_len) != 0 ||
        auth_passwd_load(tmp, &check, err, err_len) != AUTH_OK)
        goto fail;
    auth_passwd_free(check);
    if (rename(tmp, path) != 0) {
        snprintf(err, err_len, "%.300s: %s", path, strerror(errno));
        goto fail;
    }
    return 0;
fail:
    unlink(tmp);
    return -1;
}

/* argv[0] is "passwd". Returns the exit code. */
int solctl_passwd(int argc, char **argv)
{
    bool is_batch = argc > 1 && strcmp(argv[1], "-b") == 0;
    int first = is_batch ? 2 : 1;
    if (argc > 1 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        passwd_usage(stdout);
        return EXIT_OK;
    }
    if (argc - first != (is_batch ? 3 : 2)) {
        passwd_usage(stderr);
        return EXIT_ERROR;
    }
    const char *path = argv[first], *user = argv[first + 1];
    char err[ERR_LEN] = "";
    char password[PASSWORD_MAX + 2] = "";
    int rc = -1;
    if (!is_valid_username(user))
        snprintf(err, sizeof(err), "invalid username '%s' (empty, ':' or a control character)",
                 user);
    else if (is_batch && strlen(argv[first + 2]) > PASSWORD_MAX)
        snprintf(err, sizeof(err), "password longer than %d bytes", PASSWORD_MAX);
    else if (is_batch || prompt_password(password, sizeof(password), err, sizeof(err)) == 0)
        rc = 0;
    const char *pw = is_batch && rc == 0 ? argv[first + 2] : password;
    if (rc == 0 && pw[0] == '\0') {
        snprintf(err, sizeof(err), "empty password (Mosquitto 2 refuses empty passwords)");
        rc = -1;
    }
    if (rc == 0)
        rc = update_file(path, user, pw, err, sizeof(err));
    memset(password, 0, sizeof(password));
    if (rc != 0)
        fprintf(stderr, "solctl passwd: %s\n", err);
    return rc == 0 ? EXIT_OK : EXIT_ERROR;
}
