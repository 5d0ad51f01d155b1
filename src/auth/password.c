/*
 * password.c - Mosquitto password files: load "username:hash" lines, verify a
 * client's password against $7$ (PBKDF2-HMAC-SHA512) and $6$ (salted SHA-512)
 * hashes, and create new $7$ hashes for solctl passwd.
 *
 * The formats are Mosquitto 2.0's (src/password_mosq.c, pw__hash()):
 *   $6$ base64(salt) $ base64(SHA512(password || salt))
 *   $7$ iterations $ base64(salt) $ base64(PBKDF2-HMAC-SHA512(password, salt,
 *       iterations, 64 bytes))
 * with a 12-byte salt and 101 iterations from mosquitto_passwd. Loading is
 * stricter than Mosquitto, which logs and skips a bad line: Sol refuses the
 * file with PATH:LINE, as it does for its config file.
 *
 * Not for: the ACL file (acl.c), or prompting for passwords (solctl).
 */
#include "auth.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "auth_internal.h"

#define DIGEST_LEN   64    /* SHA-512 */
#define SALT_MAX     64    /* bytes; mosquitto_passwd writes 12 */
#define B64_TEXT_MAX 88    /* base64 of 64 bytes, the longest field we decode */
#define USERNAME_MAX 65535 /* longest MQTT string */

enum hash_type {
    HASH_SHA512 = 6,        /* $6$ */
    HASH_PBKDF2_SHA512 = 7, /* $7$ */
};

struct passwd_entry {
    char *username;   /* owned */
    unsigned line_no; /* where it was defined, for duplicate reports */
    enum hash_type type;
    int iterations; /* $7$ only */
    uint8_t salt[SALT_MAX];
    size_t salt_len;
    uint8_t digest[DIGEST_LEN];
};

struct auth_passwd {
    struct passwd_entry *entries; /* owned; sorted by username once loaded */
    size_t count;
    size_t cap;
    /* Unknown users are verified against this entry, so that they cost the
     * same hash work as known ones (see auth_passwd_verify()). */
    struct passwd_entry dummy;
};

/* ---- hashing ------------------------------------------------------------- */

/* SHA512(password || salt), Mosquitto's $6$. Returns AUTH_OK or AUTH_ERR_CRYPTO. */
static int hash_sha512(const uint8_t *password, size_t password_len, const uint8_t *salt,
                       size_t salt_len, uint8_t out[DIGEST_LEN])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        return AUTH_ERR_CRYPTO;
    unsigned int out_len = 0;
    int ok = EVP_DigestInit_ex(ctx, EVP_sha512(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, password, password_len) == 1 &&
             EVP_DigestUpdate(ctx, salt, salt_len) == 1 &&
             EVP_DigestFinal_ex(ctx, out, &out_len) == 1 && out_len == DIGEST_LEN;
    EVP_MD_CTX_free(ctx);
    return ok ? AUTH_OK : AUTH_ERR_CRYPTO;
}

/* PBKDF2-HMAC-SHA512, Mosquitto's $7$. Returns AUTH_OK or AUTH_ERR_CRYPTO. */
static int hash_pbkdf2(const uint8_t *password, size_t password_len, const uint8_t *salt,
                       size_t salt_len, int iterations, uint8_t out[DIGEST_LEN])
{
    if (password_len > INT_MAX || salt_len > INT_MAX || iterations < 1)
        return AUTH_ERR_CRYPTO;
    /* PKCS5_PBKDF2_HMAC takes a char pointer; a zero-length password may not
     * be NULL. */
    const char *pass = password_len > 0 ? (const char *)password : "";
    int ok = PKCS5_PBKDF2_HMAC(pass, (int)password_len, salt, (int)salt_len, iterations,
                               EVP_sha512(), DIGEST_LEN, out);
    return ok == 1 ? AUTH_OK : AUTH_ERR_CRYPTO;
}

static int hash_entry(const struct passwd_entry *e, const uint8_t *password, size_t password_len,
                      uint8_t out[DIGEST_LEN])
{
    if (e->type == HASH_SHA512)
        return hash_sha512(password, password_len, e->salt, e->salt_len, out);
    return hash_pbkdf2(password, password_len, e->salt, e->salt_len, e->iterations, out);
}

/* ---- base64 -------------------------------------------------------------- */

/*
 * Decodes padded standard base64 (what mosquitto_passwd writes) into out.
 * EVP_DecodeBlock() accepts '=' in the middle and blanks around the text, so
 * the alphabet and padding are checked here first. Returns the byte count, or
 * -1 if text is not base64 or decodes to more than max bytes.
 */
int auth_b64_decode(const char *text, uint8_t *out, size_t max)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                   "0123456789+/";
    size_t len = strlen(text);
    if (len == 0 || len % 4 != 0 || len > B64_TEXT_MAX)
        return -1;
    size_t pad = text[len - 1] == '=' ? (text[len - 2] == '=' ? 2 : 1) : 0;
    if (strspn(text, alphabet) != len - pad)
        return -1;
    uint8_t buf[B64_TEXT_MAX / 4 * 3];
    int n = EVP_DecodeBlock(buf, (const unsigned char *)text, (int)len);
    if (n < 0 || (size_t)n < pad || (size_t)n - pad > max)
        return -1;
    n -= (int)pad;
    memcpy(out, buf, (size_t)n);
    return n;
}

/* Writes base64 of in[0..len) to out; returns the text length, or -1 if
 * out_len is too small. */
int auth_b64_encode(const uint8_t *in, size_t len, char *out, size_t out_len)
{
    if (len > SALT_MAX || out_len < (len + 2) / 3 * 4 + 1)
        return -1;
    return EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

/* ---- parsing one line ------------------------------------------------------ */

/* Parses "ITERATIONS" of a $7$ hash into e; returns false if it is not 1..INT_MAX. */
static bool parse_iterations(const char *s, struct passwd_entry *e)
{
    if (s[0] < '0' || s[0] > '9')
        return false;
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 1 || v > INT_MAX)
        return false;
    e->iterations = (int)v;
    return true;
}

/* Splits the next '$'-terminated field off *rest (NULL if there is none). */
static char *next_field(char **rest)
{
    char *field = *rest;
    if (field == NULL)
        return NULL;
    char *dollar = strchr(field, '$');
    if (dollar != NULL)
        *dollar++ = '\0';
    *rest = dollar;
    return field;
}

/* Fills e's hash from "$6$SALT$HASH" or "$7$N$SALT$HASH". */
static int parse_hash(struct auth_file *f, const char *user, char *hash, struct passwd_entry *e)
{
    if (strncmp(hash, "$6$", 3) == 0)
        e->type = HASH_SHA512;
    else if (strncmp(hash, "$7$", 3) == 0)
        e->type = HASH_PBKDF2_SHA512;
    else
        return auth_file_fail(f, AUTH_ERR_INVALID,
                              "user '%s': unsupported password hash (expected $6$ or $7$; hash "
                              "plain-text files with mosquitto_passwd -U)",
                              user);
    char *rest = hash + 3;
    if (e->type == HASH_PBKDF2_SHA512 && !parse_iterations(next_field(&rest), e))
        return auth_file_fail(f, AUTH_ERR_INVALID, "user '%s': bad $7$ iteration count", user);
    char *salt = next_field(&rest);
    char *digest = next_field(&rest);
    if (salt == NULL || digest == NULL || rest != NULL)
        return auth_file_fail(f, AUTH_ERR_INVALID, "user '%s': malformed password hash", user);
    int n = auth_b64_decode(salt, e->salt, SALT_MAX);
    if (n <= 0)
        return auth_file_fail(f, AUTH_ERR_INVALID, "user '%s': salt is not valid base64", user);
    e->salt_len = (size_t)n;
    if (auth_b64_decode(digest, e->digest, DIGEST_LEN) != DIGEST_LEN)
        return auth_file_fail(f, AUTH_ERR_INVALID,
                              "user '%s': hash is not a base64 SHA-512 digest (64 bytes)", user);
    return AUTH_OK;
}

static int append_entry(struct auth_passwd *pw, const struct passwd_entry *e)
{
    if (pw->count == pw->cap) {
        size_t cap = pw->cap == 0 ? 16 : pw->cap * 2;
        struct passwd_entry *v = realloc(pw->entries, cap * sizeof(*v));
        if (v == NULL)
            return AUTH_ERR_NOMEM;
        pw->entries = v;
        pw->cap = cap;
    }
    pw->entries[pw->count++] = *e;
    return AUTH_OK;
}

static int parse_line(struct auth_file *f, char *line, void *ctx)
{
    struct auth_passwd *pw = ctx;
    line = auth_trim(line);
    if (line[0] == '\0' || line[0] == '#')
        return AUTH_OK;
    char *colon = strchr(line, ':');
    if (colon == NULL)
        return auth_file_fail(f, AUTH_ERR_INVALID, "expected 'username:hash'");
    *colon = '\0';
    char *user = auth_trim(line);
    char *hash = auth_trim(colon + 1);
    if (user[0] == '\0')
        return auth_file_fail(f, AUTH_ERR_INVALID, "empty username");
    if (strlen(user) > USERNAME_MAX)
        return auth_file_fail(f, AUTH_ERR_INVALID, "username longer than %d bytes", USERNAME_MAX);
    struct passwd_entry e = {.line_no = f->line_no};
    int rc = parse_hash(f, user, hash, &e);
    if (rc != AUTH_OK)
        return rc;
    e.username = strdup(user);
    if (e.username == NULL || append_entry(pw, &e) != AUTH_OK) {
        free(e.username);
        return auth_file_fail(f, AUTH_ERR_NOMEM, "out of memory");
    }
    return AUTH_OK;
}

/* ---- loading ------------------------------------------------------------- */

static int entry_cmp(const void *a, const void *b)
{
    const struct passwd_entry *x = a, *y = b;
    int c = strcmp(x->username, y->username);
    if (c != 0)
        return c;
    return (x->line_no > y->line_no) - (x->line_no < y->line_no);
}

/* Sorts the entries for bsearch and reports the first duplicate user. */
static int sort_entries(struct auth_file *f, struct auth_passwd *pw)
{
    if (pw->count > 1)
        qsort(pw->entries, pw->count, sizeof(pw->entries[0]), entry_cmp);
    for (size_t i = 1; i < pw->count; i++) {
        const struct passwd_entry *a = &pw->entries[i - 1], *b = &pw->entries[i];
        if (strcmp(a->username, b->username) == 0) {
            f->line_no = b->line_no;
            return auth_file_fail(f, AUTH_ERR_INVALID, "duplicate user '%s' (first on line %u)",
                                  b->username, a->line_no);
        }
    }
    return AUTH_OK;
}

/*
 * Prepares the entry unknown users are checked against: the same hash type
 * and iteration count as the file's first entry (mosquitto_passwd writes the
 * same for every user), so the work matches; random salt and digest, so no
 * password can match it (verify also refuses it explicitly).
 */
static int make_dummy(struct auth_passwd *pw)
{
    struct passwd_entry *d = &pw->dummy;
    d->type = HASH_PBKDF2_SHA512;
    d->iterations = AUTH_PASSWD_DEFAULT_ITERATIONS;
    d->salt_len = AUTH_PASSWD_SALT_LEN;
    if (pw->count > 0) {
        d->type = pw->entries[0].type;
        d->iterations = pw->entries[0].iterations;
        d->salt_len = pw->entries[0].salt_len;
    }
    if (RAND_bytes(d->salt, (int)d->salt_len) != 1 || RAND_bytes(d->digest, DIGEST_LEN) != 1)
        return AUTH_ERR_CRYPTO;
    return AUTH_OK;
}

void auth_passwd_free(struct auth_passwd *pw)
{
    if (pw == NULL)
        return;
    for (size_t i = 0; i < pw->count; i++)
        free(pw->entries[i].username);
    /* The digests are not secrets as such, but they are offline-attackable. */
    if (pw->entries != NULL)
        OPENSSL_cleanse(pw->entries, pw->cap * sizeof(pw->entries[0]));
    free(pw->entries);
    free(pw);
}

int auth_passwd_load(const char *path, struct auth_passwd **out, char *err, size_t err_len)
{
    struct auth_file f = {.path = path, .err = err, .err_len = err_len};
    *out = NULL;
    struct auth_passwd *pw = calloc(1, sizeof(*pw));
    if (pw == NULL) {
        snprintf(err, err_len, "%s: out of memory", path);
        return AUTH_ERR_NOMEM;
    }
    int rc = auth_file_each_line(&f, parse_line, pw);
    if (rc == AUTH_OK)
        rc = sort_entries(&f, pw);
    if (rc == AUTH_OK && (rc = make_dummy(pw)) != AUTH_OK)
        snprintf(err, err_len, "%s: RAND_bytes failed", path);
    if (rc != AUTH_OK) {
        auth_passwd_free(pw);
        return rc;
    }
    *out = pw;
    return AUTH_OK;
}

size_t auth_passwd_count(const struct auth_passwd *pw)
{
    return pw->count;
}

/* ---- verifying ----------------------------------------------------------- */

static const struct passwd_entry *find_user(const struct auth_passwd *pw, const char *username)
{
    size_t lo = 0, hi = pw->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(username, pw->entries[mid].username);
        if (c == 0)
            return &pw->entries[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

int auth_passwd_verify(const struct auth_passwd *pw, const char *username, const uint8_t *password,
                       size_t password_len)
{
    const struct passwd_entry *e = username != NULL ? find_user(pw, username) : NULL;
    bool is_known = e != NULL;
    /* An unknown user (or a missing password) still pays for a full hash and
     * compare, against the dummy entry, so that a client cannot tell from the
     * reply time whether a username exists. */
    if (!is_known)
        e = &pw->dummy;
    /* Mosquitto 2.0.11 reads a zero-length CONNECT password as no password
     * and refuses it (checked with a raw CONNECT), so an empty password
     * never matches, even the hash of "" that mosquitto_passwd can write. */
    bool has_password = password != NULL && password_len > 0;
    if (!has_password)
        password_len = 0;
    uint8_t got[DIGEST_LEN];
    int rc = hash_entry(e, has_password ? password : (const uint8_t *)"", password_len, got);
    /* CRYPTO_memcmp takes the same time wherever the digests differ. */
    bool is_same = rc == AUTH_OK && CRYPTO_memcmp(got, e->digest, DIGEST_LEN) == 0;
    OPENSSL_cleanse(got, sizeof(got));
    if (rc != AUTH_OK)
        return rc;
    return is_known && has_password && is_same ? AUTH_OK : AUTH_ERR_DENIED;
}

/* ---- creating ------------------------------------------------------------ */

int auth_passwd_hash_new(const uint8_t *password, size_t password_len, int iterations, char *out,
                         size_t out_len)
{
    if (iterations == 0)
        iterations = AUTH_PASSWD_DEFAULT_ITERATIONS;
    if (iterations < 0 || password_len > INT_MAX || (password == NULL && password_len > 0))
        return AUTH_ERR_INVALID;
    uint8_t salt[AUTH_PASSWD_SALT_LEN];
    uint8_t digest[DIGEST_LEN];
    char salt_b64[B64_TEXT_MAX + 1];
    char digest_b64[B64_TEXT_MAX + 1];
    if (RAND_bytes(salt, sizeof(salt)) != 1)
        return AUTH_ERR_CRYPTO;
    int rc = hash_pbkdf2(password != NULL ? password : (const uint8_t *)"", password_len, salt,
                         sizeof(salt), iterations, digest);
    if (rc != AUTH_OK)
        return rc;
    bool is_encoded = auth_b64_encode(salt, sizeof(salt), salt_b64, sizeof(salt_b64)) >= 0 &&
                      auth_b64_encode(digest, sizeof(digest), digest_b64, sizeof(digest_b64)) >= 0;
    OPENSSL_cleanse(digest, sizeof(digest));
    if (!is_encoded)
        return AUTH_ERR_INVALID;
    int n = snprintf(out, out_len, "$7$%d$%s$%s", iterations, salt_b64, digest_b64);
    if (n < 0 || (size_t)n >= out_len) {
        if (out_len > 0)
            out[0] = '\0';
        return AUTH_ERR_INVALID;
    }
    return AUTH_OK;
}

/* ---- SCRAM (scram.c) ------------------------------------------------------ */

/* The dummy credentials of a name that has none usable: salt and
 * SaltedPassword are HMACs of the name under the file's random dummy digest,
 * so the same name always gets the same salt (a client probing names sees
 * nothing change between tries) and no password produces them. */
static int scram_dummy(const struct auth_passwd *pw, const char *username, size_t username_len,
                       struct auth_scram_credentials *out)
{
    uint8_t mac[DIGEST_LEN];
    unsigned mac_len = 0;
    const struct passwd_entry *d = &pw->dummy;
    out->iterations =
        d->type == HASH_PBKDF2_SHA512 ? d->iterations : AUTH_PASSWD_DEFAULT_ITERATIONS;
    out->salt_len = d->salt_len > 0 ? d->salt_len : AUTH_PASSWD_SALT_LEN;
    if (!HMAC(EVP_sha512(), d->digest, DIGEST_LEN, (const uint8_t *)username, username_len, mac,
              &mac_len))
        return AUTH_ERR_CRYPTO;
    memcpy(out->salt, mac, out->salt_len);
    if (!HMAC(EVP_sha512(), mac, mac_len, (const uint8_t *)"salted", 6, out->salted_password,
              &mac_len))
        return AUTH_ERR_CRYPTO;
    OPENSSL_cleanse(mac, sizeof(mac));
    return AUTH_OK;
}

int auth_passwd_scram_credentials(const struct auth_passwd *pw, const char *username,
                                  size_t username_len, struct auth_scram_credentials *out)
{
    memset(out, 0, sizeof(*out));
    const struct passwd_entry *e =
        memchr(username, 0, username_len) == NULL ? find_user(pw, username) : NULL;
    if (e == NULL || e->type != HASH_PBKDF2_SHA512) {
        int rc = scram_dummy(pw, username, username_len, out);
        if (rc != AUTH_OK)
            return rc;
        return e == NULL ? AUTH_ERR_DENIED : AUTH_ERR_INVALID;
    }
    /* A $7$ digest is PBKDF2-HMAC-SHA512(password, salt, i, 64): SCRAM-SHA-512's
     * SaltedPassword = Hi(password, salt, i) (RFC 5802 2.2), byte for byte. */
    out->iterations = e->iterations;
    out->salt_len = e->salt_len;
    memcpy(out->salt, e->salt, e->salt_len);
    memcpy(out->salted_password, e->digest, DIGEST_LEN);
    return AUTH_OK;
}
