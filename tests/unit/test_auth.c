/*
 * test_auth.c - the password file and ACL file (src/auth/auth.h): vectors made
 * by Mosquitto's own tools, wrong and unknown credentials, every load error
 * with its PATH:LINE, the $7$ creator round trip, and ACL semantics (user
 * sections, anonymous rules, patterns with %c/%u, deny priority, read vs
 * write, wildcards, Sol's subscribe check).
 *
 * Not for: what the broker does with a denial (integration tests).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>

#include "auth.h"

/*
 * $7$ vectors: made on Debian 12 with mosquitto_passwd 2.0.11 (package
 * mosquitto 2.0.11-1.2+deb12u2):
 *   mosquitto_passwd -b -c pw alice 'correct horse'
 *   mosquitto_passwd -b pw bob ''
 *   mosquitto_passwd -b pw carol 'pässwörd:with$colon'     (UTF-8)
 * and cross-checked with python3 hashlib.pbkdf2_hmac('sha512', ...).
 */
#define ALICE_7                                                                                    \
    "alice:$7$101$CKAHsyOnkiQXPO9/$AQcHg1f/YXeQuLP5miMu0GQS8A/"                                    \
    "e9Goc8fJf4yjKGuoudmEpFx4o0QsElmb4buB+/IWI40TrGgLWqpHU+C9HMw=="
#define BOB_7                                                                                      \
    "bob:$7$101$rHHxpAa6r+rcjYFm$I4Amx5f2hhl54R+Sx2/"                                              \
    "3Yi7A1tsMkCaLqzDdKH06eAiqVHf3rD5J4WyVbTRfQpbI60G"                                             \
    "XPsBcev3Dy/IrmRN7lw=="
#define CAROL_7                                                                                    \
    "carol:$7$101$MEU0owmZVA5DIIaa$XyHVYZS/"                                                       \
    "qncQYbJ3tsNSxwzF0nfD0Q7lipwj5dXBtzktAKCgLHNow4T+n+d6lOPAou+wg/wJ9tcdUbjajwH19w=="
#define CAROL_PASSWORD "p\xc3\xa4ssw\xc3\xb6rd:with$colon"
/*
 * $6$ vector: mosquitto_passwd 2.0 only writes $7$, so this one was computed
 * in python3 as Mosquitto's pw__hash() does for pw_sha512:
 *   salt = hashlib.sha256(b"sol $6$ vector").digest()[:12]
 *   d = hashlib.sha512(b"legacy pass" + salt).digest()
 *   "dave:$6$" + b64encode(salt) + "$" + b64encode(d)
 * and accepted by mosquitto 2.0.11 itself (mosquitto_pub -u dave -P 'legacy
 * pass' against a broker with this password_file).
 */
#define DAVE_6                                                                                     \
    "dave:$6$mW2PVxWbXnRVuqmL$"                                                                    \
    "B5M0mSJudVNYSyd8fLsLdd8kzEcmuclFpzHWt29yAl6DNIsx3CCfQRbp6F6GY9quYxIrf"                        \
    "iB8FGSQ28M4E8qgog=="
#define SALT_B64 "mW2PVxWbXnRVuqmL"
#define HASH_B64                                                                                   \
    "B5M0mSJudVNYSyd8fLsLdd8kzEcmuclFpzHWt29yAl6DNIsx3CCfQRbp6F6GY9quYxIrfiB8FGSQ28M4E8qgog=="

/* ---- fixture: a fresh temporary file ------------------------------------- */

struct fixture {
    char path[64];
    char err[512];
    struct auth_passwd *pw;
    struct auth_acl *acl;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    snprintf(f->path, sizeof(f->path), "/tmp/sol-test-auth-XXXXXX");
    int fd = mkstemp(f->path);
    if (fd < 0) {
        free(f);
        return -1;
    }
    close(fd);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    auth_passwd_free(f->pw);
    auth_acl_free(f->acl);
    unlink(f->path);
    free(f);
    return 0;
}

static void write_bytes(const struct fixture *f, const char *text, size_t len)
{
    FILE *fp = fopen(f->path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

static void write_file(const struct fixture *f, const char *text)
{
    write_bytes(f, text, strlen(text));
}

static void load_pw(struct fixture *f, const char *text)
{
    write_file(f, text);
    int rc = auth_passwd_load(f->path, &f->pw, f->err, sizeof(f->err));
    if (rc != AUTH_OK)
        fail_msg("auth_passwd_load: %s", f->err);
}

static int verify(const struct fixture *f, const char *user, const char *password)
{
    return auth_passwd_verify(f->pw, user, (const uint8_t *)password,
                              password != NULL ? strlen(password) : 0);
}

/* Loads text, expects rc and an error "PATH:<where>". */
static void expect_pw_error(struct fixture *f, const char *text, int rc, const char *where)
{
    write_file(f, text);
    char want[600];
    snprintf(want, sizeof(want), "%s:%s", f->path, where);
    assert_int_equal(auth_passwd_load(f->path, &f->pw, f->err, sizeof(f->err)), rc);
    assert_null(f->pw);
    if (strcmp(f->err, want) != 0)
        fail_msg("error\n  got:  %s\n  want: %s", f->err, want);
}

/* ---- password file: vectors ------------------------------------------------ */

static void test_passwd_mosquitto_passwd_7_vectors_verify(void **state)
{
    struct fixture *f = *state;
    load_pw(f, ALICE_7 "\n" BOB_7 "\n" CAROL_7 "\n" DAVE_6 "\n");
    assert_int_equal(auth_passwd_count(f->pw), 4);
    assert_int_equal(verify(f, "alice", "correct horse"), AUTH_OK);
    assert_int_equal(verify(f, "carol", CAROL_PASSWORD), AUTH_OK);
}

static void test_passwd_6_vector_verifies(void **state)
{
    struct fixture *f = *state;
    load_pw(f, DAVE_6 "\n");
    assert_int_equal(verify(f, "dave", "legacy pass"), AUTH_OK);
    assert_int_equal(verify(f, "dave", "legacy pasS"), AUTH_ERR_DENIED);
}

static void test_passwd_wrong_password_is_denied(void **state)
{
    struct fixture *f = *state;
    load_pw(f, ALICE_7 "\n" CAROL_7 "\n");
    assert_int_equal(verify(f, "alice", "correct hors"), AUTH_ERR_DENIED);
    assert_int_equal(verify(f, "alice", "correct horse "), AUTH_ERR_DENIED);
    assert_int_equal(verify(f, "alice", "Correct horse"), AUTH_ERR_DENIED);
    assert_int_equal(verify(f, "carol", "correct horse"), AUTH_ERR_DENIED);
    assert_int_equal(verify(f, "Alice", "correct horse"), AUTH_ERR_DENIED); /* case matters */
}

static void test_passwd_unknown_user_is_denied(void **state)
{
    struct fixture *f = *state;
    load_pw(f, ALICE_7 "\n");
    assert_int_equal(verify(f, "mallory", "correct horse"), AUTH_ERR_DENIED);
    assert_int_equal(verify(f, "", "correct horse"), AUTH_ERR_DENIED);
    assert_int_equal(verify(f, NULL, "correct horse"), AUTH_ERR_DENIED);
}

/* The whole digest is compared: alice's vector with only its last byte
 * changed ("...C9HMw==" -> "...C9HNw==") must not accept her password. */
static void test_passwd_digest_differing_in_last_byte_is_denied(void **state)
{
    struct fixture *f = *state;
    char line[] = ALICE_7;
    char *last = strstr(line, "C9HMw==");
    assert_non_null(last);
    last[3] = 'N';
    load_pw(f, line);
    assert_int_equal(verify(f, "alice", "correct horse"), AUTH_ERR_DENIED);
}

/* Mosquitto 2.0.11 refuses a CONNECT with a zero-length password, even for a
 * user whose hash is of "" (bob's vector): checked with a raw CONNECT. */
static void test_passwd_empty_or_missing_password_is_denied(void **state)
{
    struct fixture *f = *state;
    load_pw(f, ALICE_7 "\n" BOB_7 "\n");
    assert_int_equal(verify(f, "bob", ""), AUTH_ERR_DENIED);
    assert_int_equal(verify(f, "bob", NULL), AUTH_ERR_DENIED);
    assert_int_equal(verify(f, "alice", NULL), AUTH_ERR_DENIED);
}

/* Every byte counts: a NUL does not end the password. */
static void test_passwd_bytes_after_nul_are_hashed(void **state)
{
    struct fixture *f = *state;
    load_pw(f, ALICE_7 "\n");
    static const char pw[] = "correct horse\0extra";
    assert_int_equal(auth_passwd_verify(f->pw, "alice", (const uint8_t *)pw, sizeof(pw) - 1),
                     AUTH_ERR_DENIED);
    assert_int_equal(auth_passwd_verify(f->pw, "alice", (const uint8_t *)pw, 13), AUTH_OK);
}

static void test_passwd_comments_blanks_crlf_and_spaces_are_ignored(void **state)
{
    struct fixture *f = *state;
    load_pw(f, "# users\r\n"
               "\r\n"
               "   \t\n"
               "  # indented comment\n"
               "  " ALICE_7 "  \r\n"
               "dave : $6$" SALT_B64 "$" HASH_B64 "\t\n"
               "\n");
    assert_int_equal(auth_passwd_count(f->pw), 2);
    assert_int_equal(verify(f, "alice", "correct horse"), AUTH_OK);
    assert_int_equal(verify(f, "dave", "legacy pass"), AUTH_OK);
}

static void test_passwd_empty_file_has_no_users(void **state)
{
    struct fixture *f = *state;
    load_pw(f, "");
    assert_int_equal(auth_passwd_count(f->pw), 0);
    assert_int_equal(verify(f, "alice", "correct horse"), AUTH_ERR_DENIED);
}

/* The test binary links with -Wl,--wrap=PKCS5_PBKDF2_HMAC (tests/CMakeLists.txt):
 * every PBKDF2 computation in sol_auth passes through here and is counted,
 * so "costs a full hash" is checked by count, not by a clock. */
static unsigned pbkdf2_calls;
int __real_PKCS5_PBKDF2_HMAC(const char *pass, int passlen, const unsigned char *salt, int saltlen,
                             int iter, const EVP_MD *digest, int keylen, unsigned char *out);
int __wrap_PKCS5_PBKDF2_HMAC(const char *pass, int passlen, const unsigned char *salt, int saltlen,
                             int iter, const EVP_MD *digest, int keylen, unsigned char *out);
int __wrap_PKCS5_PBKDF2_HMAC(const char *pass, int passlen, const unsigned char *salt, int saltlen,
                             int iter, const EVP_MD *digest, int keylen, unsigned char *out)
{
    pbkdf2_calls++;
    return __real_PKCS5_PBKDF2_HMAC(pass, passlen, salt, saltlen, iter, digest, keylen, out);
}

/* An unknown user must cost a full hash too (no timing oracle for which
 * usernames exist): one PBKDF2 per verify, known user or not. */
static void test_passwd_unknown_user_computes_a_full_hash(void **state)
{
    struct fixture *f = *state;
    load_pw(f, ALICE_7 "\n" CAROL_7 "\n");
    pbkdf2_calls = 0;
    assert_int_equal(verify(f, "alice", "not the password"), AUTH_ERR_DENIED);
    assert_int_equal(pbkdf2_calls, 1);
    assert_int_equal(verify(f, "mallory", "not the password"), AUTH_ERR_DENIED);
    assert_int_equal(pbkdf2_calls, 2);
}

/* ---- password file: load errors ---------------------------------------- */

static void test_passwd_load_errors_name_file_and_line(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *text;
        const char *where;
    } cases[] = {
        {"alice\n", "1: expected 'username:hash'"},
        {"# ok\n\n:$6$" SALT_B64 "$" HASH_B64 "\n", "3: empty username"},
        {ALICE_7 "\nbob:secret\n",
         "2: user 'bob': unsupported password hash (expected $6$ or $7$; hash plain-text files "
         "with mosquitto_passwd -U)"},
        {"bob:$5$" SALT_B64 "$" HASH_B64 "\n", "1: user 'bob': unsupported password hash "
                                               "(expected $6$ or $7$; hash plain-text files with "
                                               "mosquitto_passwd -U)"},
        {"bob:\n", "1: user 'bob': unsupported password hash (expected $6$ or $7$; hash "
                   "plain-text files with mosquitto_passwd -U)"},
        {"bob:$7$0$" SALT_B64 "$" HASH_B64 "\n", "1: user 'bob': bad $7$ iteration count"},
        {"bob:$7$-5$" SALT_B64 "$" HASH_B64 "\n", "1: user 'bob': bad $7$ iteration count"},
        {"bob:$7$10x$" SALT_B64 "$" HASH_B64 "\n", "1: user 'bob': bad $7$ iteration count"},
        {"bob:$7$99999999999$" SALT_B64 "$" HASH_B64 "\n",
         "1: user 'bob': bad $7$ iteration count"},
        {"bob:$7$101$" SALT_B64 "\n", "1: user 'bob': malformed password hash"},
        {"bob:$6$" SALT_B64 "$" HASH_B64 "$\n", "1: user 'bob': malformed password hash"},
        {"bob:$6$" SALT_B64 "$" HASH_B64 ":x\n",
         "1: user 'bob': hash is not a base64 SHA-512 digest (64 bytes)"},
        {"bob:$6$$" HASH_B64 "\n", "1: user 'bob': salt is not valid base64"},
        {"bob:$6$mW2P*xWbXnRVuqmL$" HASH_B64 "\n", "1: user 'bob': salt is not valid base64"},
        {"bob:$6$mW2PVxWbXnRVuqm$" HASH_B64 "\n", "1: user 'bob': salt is not valid base64"},
        {"bob:$6$mW=PVxWbXnRVuqmL$" HASH_B64 "\n", "1: user 'bob': salt is not valid base64"},
        {"bob:$6$" SALT_B64 "$" SALT_B64 "\n",
         "1: user 'bob': hash is not a base64 SHA-512 digest (64 bytes)"},
        {"bob:$6$" SALT_B64 "$" HASH_B64 "AAAA\n",
         "1: user 'bob': hash is not a base64 SHA-512 digest (64 bytes)"},
        {ALICE_7 "\n" DAVE_6 "\n" ALICE_7 "\n", "3: duplicate user 'alice' (first on line 1)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_pw_error(f, cases[i].text, AUTH_ERR_INVALID, cases[i].where);
}

static void test_passwd_load_error_nul_byte(void **state)
{
    struct fixture *f = *state;
    static const char text[] = ALICE_7 "\nbo\0b:x\n";
    write_bytes(f, text, sizeof(text) - 1);
    assert_int_equal(auth_passwd_load(f->path, &f->pw, f->err, sizeof(f->err)), AUTH_ERR_INVALID);
    char want[128];
    snprintf(want, sizeof(want), "%s:2: line contains a NUL byte", f->path);
    assert_string_equal(f->err, want);
}

static void test_passwd_load_error_username_too_long(void **state)
{
    struct fixture *f = *state;
    size_t len = 65536;
    char *text = malloc(len + 64);
    assert_non_null(text);
    memset(text, 'u', len);
    snprintf(text + len, 64, ":$6$%s$x\n", SALT_B64);
    write_file(f, text);
    free(text);
    assert_int_equal(auth_passwd_load(f->path, &f->pw, f->err, sizeof(f->err)), AUTH_ERR_INVALID);
    char want[128];
    snprintf(want, sizeof(want), "%s:1: username longer than 65535 bytes", f->path);
    assert_string_equal(f->err, want);
}

static void test_passwd_load_missing_file_is_io_error(void **state)
{
    struct fixture *f = *state;
    unlink(f->path);
    assert_int_equal(auth_passwd_load(f->path, &f->pw, f->err, sizeof(f->err)), AUTH_ERR_IO);
    char want[128];
    snprintf(want, sizeof(want), "%s: cannot read: No such file or directory", f->path);
    assert_string_equal(f->err, want);
}

/* A tiny error buffer is truncated, never overrun. */
static void test_passwd_load_error_fits_small_buffer(void **state)
{
    struct fixture *f = *state;
    write_file(f, "alice\n");
    char err[8];
    memset(err, 'x', sizeof(err));
    assert_int_equal(auth_passwd_load(f->path, &f->pw, err, sizeof(err)), AUTH_ERR_INVALID);
    assert_int_equal(strlen(err), sizeof(err) - 1);
    assert_int_equal(auth_passwd_load(f->path, &f->pw, NULL, 0), AUTH_ERR_INVALID);
}

/* ---- password file: the $7$ creator ------------------------------------- */

/* Same layout as mosquitto_passwd: $7$101$ + base64 of 12 bytes (16 chars) +
 * $ + base64 of 64 bytes (88 chars). */
static void test_passwd_hash_new_has_mosquitto_layout(void **state)
{
    (void)state;
    char a[AUTH_PASSWD_HASH_MAX], b[AUTH_PASSWD_HASH_MAX];
    assert_int_equal(auth_passwd_hash_new((const uint8_t *)"s3cret", 6, 0, a, sizeof(a)), AUTH_OK);
    assert_int_equal(auth_passwd_hash_new((const uint8_t *)"s3cret", 6, 0, b, sizeof(b)), AUTH_OK);
    assert_int_equal(strncmp(a, "$7$101$", 7), 0);
    assert_int_equal(strlen(a), 7 + 16 + 1 + 88);
    assert_int_equal(a[7 + 16], '$');
    assert_string_not_equal(a, b); /* fresh salt each time */
}

static void test_passwd_hash_new_round_trips_through_the_file_format(void **state)
{
    struct fixture *f = *state;
    char h1[AUTH_PASSWD_HASH_MAX], h2[AUTH_PASSWD_HASH_MAX];
    assert_int_equal(auth_passwd_hash_new((const uint8_t *)"s3cret", 6, 0, h1, sizeof(h1)),
                     AUTH_OK);
    assert_int_equal(auth_passwd_hash_new((const uint8_t *)CAROL_PASSWORD, strlen(CAROL_PASSWORD),
                                          1000, h2, sizeof(h2)),
                     AUTH_OK);
    assert_int_equal(strncmp(h2, "$7$1000$", 8), 0);
    char text[512];
    snprintf(text, sizeof(text), "eve:%s\nfrank:%s\n" ALICE_7 "\n", h1, h2);
    load_pw(f, text);
    assert_int_equal(verify(f, "eve", "s3cret"), AUTH_OK);
    assert_int_equal(verify(f, "eve", "s3creT"), AUTH_ERR_DENIED);
    assert_int_equal(verify(f, "frank", CAROL_PASSWORD), AUTH_OK);
    assert_int_equal(verify(f, "frank", "s3cret"), AUTH_ERR_DENIED);
    assert_int_equal(verify(f, "alice", "correct horse"), AUTH_OK);
}

static void test_passwd_hash_new_rejects_bad_arguments(void **state)
{
    (void)state;
    char out[AUTH_PASSWD_HASH_MAX];
    char small[40];
    const uint8_t *pw = (const uint8_t *)"x";
    assert_int_equal(auth_passwd_hash_new(pw, 1, -1, out, sizeof(out)), AUTH_ERR_INVALID);
    assert_int_equal(auth_passwd_hash_new(NULL, 1, 0, out, sizeof(out)), AUTH_ERR_INVALID);
    assert_int_equal(auth_passwd_hash_new(pw, 1, 0, small, sizeof(small)), AUTH_ERR_INVALID);
    assert_string_equal(small, "");
}

/* ---- ACL file ------------------------------------------------------------ */

static void load_acl(struct fixture *f, const char *text)
{
    write_file(f, text);
    int rc = auth_acl_load(f->path, &f->acl, f->err, sizeof(f->err));
    if (rc != AUTH_OK)
        fail_msg("auth_acl_load: %s", f->err);
}

static int check(const struct fixture *f, const char *client_id, const char *user,
                 const char *topic, unsigned access)
{
    return auth_acl_check(f->acl, client_id, user, topic, strlen(topic), access);
}

#define ALLOWED(f, id, user, topic, access)                                                        \
    assert_int_equal(check(f, id, user, topic, access), AUTH_OK)
#define DENIED(f, id, user, topic, access)                                                         \
    assert_int_equal(check(f, id, user, topic, access), AUTH_ERR_DENIED)

static void test_acl_user_rules_apply_only_to_that_user(void **state)
{
    struct fixture *f = *state;
    load_acl(f, "user alice\n"
                "topic readwrite alice/#\n"
                "user bob\n"
                "topic read shared/news\n");
    ALLOWED(f, "c1", "alice", "alice/x", AUTH_WRITE);
    ALLOWED(f, "c1", "alice", "alice", AUTH_READ); /* "a/#" matches "a" */
    DENIED(f, "c1", "alice", "shared/news", AUTH_READ);
    ALLOWED(f, "c2", "bob", "shared/news", AUTH_READ);
    DENIED(f, "c2", "bob", "alice/x", AUTH_READ);
    DENIED(f, "c3", "carol", "alice/x", AUTH_READ); /* no section, no patterns */
    DENIED(f, "c4", NULL, "alice/x", AUTH_READ);
}

static void test_acl_topics_before_any_user_are_for_anonymous_clients(void **state)
{
    struct fixture *f = *state;
    load_acl(f, "# anonymous\n"
                "topic read public/#\n"
                "\n"
                "user alice\n"
                "topic alice/#\n");
    ALLOWED(f, "anon1", NULL, "public/weather", AUTH_READ);
    DENIED(f, "anon1", NULL, "public/weather", AUTH_WRITE);
    DENIED(f, "anon1", NULL, "alice/x", AUTH_READ);
    DENIED(f, "c1", "alice", "public/weather", AUTH_READ); /* not anonymous */
    DENIED(f, "c2", "bob", "public/weather", AUTH_READ);
}

static void test_acl_access_words_and_readwrite_default(void **state)
{
    struct fixture *f = *state;
    load_acl(f, "topic r/#\n"
                "topic read ro/#\n"
                "topic write wo/#\n"
                "topic readwrite rw/#\n");
    ALLOWED(f, "c", NULL, "r/1", AUTH_READ);
    ALLOWED(f, "c", NULL, "r/1", AUTH_WRITE);
    ALLOWED(f, "c", NULL, "ro/1", AUTH_READ);
    DENIED(f, "c", NULL, "ro/1", AUTH_WRITE);
    DENIED(f, "c", NULL, "wo/1", AUTH_READ);
    ALLOWED(f, "c", NULL, "wo/1", AUTH_WRITE);
    ALLOWED(f, "c", NULL, "rw/1", AUTH_READ);
    ALLOWED(f, "c", NULL, "rw/1", AUTH_WRITE);
    DENIED(f, "c", NULL, "rw/1", AUTH_READ | AUTH_WRITE); /* exactly one access */
    DENIED(f, "c", NULL, "rw/1", 0);
}

/* Mosquitto tries deny rules first, wherever they are in the file. */
static void test_acl_deny_takes_priority_over_allow(void **state)
{
    struct fixture *f = *state;
    load_acl(f, "user alice\n"
                "topic readwrite home/#\n"
                "topic deny home/safe/#\n"
                "topic read home/+/code\n");
    ALLOWED(f, "c", "alice", "home/lamp", AUTH_WRITE);
    DENIED(f, "c", "alice", "home/safe", AUTH_READ);
    DENIED(f, "c", "alice", "home/safe/code", AUTH_READ);
    DENIED(f, "c", "alice", "home/safe/x/y", AUTH_WRITE);
    ALLOWED(f, "c", "alice", "home/door/code", AUTH_READ);
}

static void test_acl_patterns_substitute_client_id_and_username(void **state)
{
    struct fixture *f = *state;
    load_acl(f, "pattern readwrite devices/%c/#\n"
                "pattern read users/%u/inbox\n"
                "pattern write log/%u/%c\n");
    ALLOWED(f, "sensor-7", NULL, "devices/sensor-7/temp", AUTH_WRITE);
    DENIED(f, "sensor-7", NULL, "devices/sensor-8/temp", AUTH_WRITE);
    ALLOWED(f, "c9", "alice", "users/alice/inbox", AUTH_READ);
    DENIED(f, "c9", "alice", "users/bob/inbox", AUTH_READ);
    DENIED(f, "c9", "alice", "users/alice/inbox", AUTH_WRITE);
    ALLOWED(f, "c9", "alice", "log/alice/c9", AUTH_WRITE);
    DENIED(f, "c9", "alice", "log/c9/alice", AUTH_WRITE);
    /* Patterns apply to users with their own section, after its rules. */
    ALLOWED(f, "sensor-7", "alice", "devices/sensor-7/x", AUTH_READ);
}

static void test_acl_pattern_with_u_is_skipped_for_anonymous_clients(void **state)
{
    struct fixture *f = *state;
    load_acl(f, "pattern read users/%u/#\n");
    DENIED(f, "c", NULL, "users/%u/x", AUTH_READ);
    DENIED(f, "c", NULL, "users//x", AUTH_READ);
    ALLOWED(f, "c", "bob", "users/bob/x", AUTH_READ);
}

/* Debian's mosquitto 2.0.11 replaces %c inside a level too: with this ACL it
 * delivered a PUBLISH from client "abc" to "q/xabc" (observed). */
static void test_acl_pattern_substitutes_inside_a_level(void **state)
{
    struct fixture *f = *state;
    load_acl(f, "pattern write q/x%c\n"
                "pattern write p/%c/x\n"
                "pattern write r/%%c/100%\n");
    ALLOWED(f, "abc", NULL, "q/xabc", AUTH_WRITE);
    DENIED(f, "abc", NULL, "q/xab", AUTH_WRITE);
    DENIED(f, "abc", NULL, "p/ab/x", AUTH_WRITE);
    DENIED(f, "abc", NULL, "p/abcd/x", AUTH_WRITE);
    ALLOWED(f, "abc", NULL, "r/%abc/100%", AUTH_WRITE);
    /* An id holding '/' spans levels, as in 2.0.11 (observed). */
    ALLOWED(f, "a/b", NULL, "p/a/b/x", AUTH_WRITE);
}

/* A '+' or '#' in an id or username would act as a wildcard in a pattern. */
static void test_acl_patterns_deny_wildcards_in_id_or_username(void **state)
{
    struct fixture *f = *state;
    load_acl(f, "topic read open/#\n"
                "user eve+\n"
                "topic read eve/#\n"
                "pattern readwrite devices/%c/#\n");
    DENIED(f, "+", NULL, "devices/x/y", AUTH_READ);
    DENIED(f, "#", NULL, "devices/x", AUTH_READ);
    DENIED(f, "ok", "a#", "devices/ok/x", AUTH_READ);
    ALLOWED(f, "ok", NULL, "devices/ok/x", AUTH_READ);
    /* The user's own rules come first and are not affected. */
    ALLOWED(f, "+", NULL, "open/x", AUTH_READ);
    ALLOWED(f, "#", "eve+", "eve/x", AUTH_READ);
    DENIED(f, "#", "eve+", "devices/#/x", AUTH_READ);
}

/* Mosquitto checks the user's rules, then the patterns: a user rule that
 * allows wins over a deny pattern, and a deny user rule wins over patterns. */
static void test_acl_user_rules_are_checked_before_patterns(void **state)
{
    struct fixture *f = *state;
    load_acl(f, "user alice\n"
                "topic read a/#\n"
                "topic deny b/#\n"
                "pattern deny a/%u\n"
                "pattern readwrite b/%u\n"
                "pattern read c/%u\n"
                "pattern deny c/#\n");
    ALLOWED(f, "c", "alice", "a/alice", AUTH_READ);
    DENIED(f, "c", "alice", "b/alice", AUTH_READ);
    DENIED(f, "c", "alice", "c/alice", AUTH_READ); /* deny patterns first */
    DENIED(f, "c", "bob", "a/bob", AUTH_READ);
    ALLOWED(f, "c", "bob", "b/bob", AUTH_WRITE);
}

static void test_acl_wildcards_and_dollar_topics(void **state)
{
    struct fixture *f = *state;
    load_acl(f, "topic read #\n"
                "topic read +/+/status\n"
                "topic read $SYS/broker/#\n"
                "user alice\n"
                "topic write a/+/c\n"
                "topic write +\n");
    ALLOWED(f, "c", NULL, "x", AUTH_READ);
    ALLOWED(f, "c", NULL, "/", AUTH_READ);
    DENIED(f, "c", NULL, "$SYS/other", AUTH_READ); /* '#' never matches '$' topics */
    ALLOWED(f, "c", NULL, "$SYS/broker/uptime", AUTH_READ);
    ALLOWED(f, "c", NULL, "$SYS/broker", AUTH_READ);
    ALLOWED(f, "c", "alice", "a/b/c", AUTH_WRITE);
    ALLOWED(f, "c", "alice", "a//c", AUTH_WRITE);
    DENIED(f, "c", "alice", "a/b/c/d", AUTH_WRITE);
    DENIED(f, "c", "alice", "a/b", AUTH_WRITE);
    ALLOWED(f, "c", "alice", "top", AUTH_WRITE);
    ALLOWED(f, "c", "alice", "", AUTH_WRITE); /* "+" matches one empty level */
    DENIED(f, "c", "alice", "$top", AUTH_WRITE);
    DENIED(f, "c", "alice", "top/", AUTH_WRITE);
}

/* Topics are byte views: only topic_len bytes are read. */
static void test_acl_topic_is_a_length_delimited_view(void **state)
{
    struct fixture *f = *state;
    load_acl(f, "topic read a/b\n");
    assert_int_equal(auth_acl_check(f->acl, "c", NULL, "a/bXYZ", 3, AUTH_READ), AUTH_OK);
    assert_int_equal(auth_acl_check(f->acl, "c", NULL, "a/bXYZ", 4, AUTH_READ), AUTH_ERR_DENIED);
}

/* Sol's SUBSCRIBE check: denied only when nothing could ever be read. */
static void test_acl_subscribe_denied_only_when_nothing_is_readable(void **state)
{
    struct fixture *f = *state;
    load_acl(f, "user alice\n"
                "topic read sensors/#\n"
                "topic deny sensors/secret/#\n"
                "topic write cmd/#\n"
                "topic read $SYS/broker/#\n"
                "pattern read inbox/%u\n");
    ALLOWED(f, "c", "alice", "sensors/#", AUTH_SUBSCRIBE);
    ALLOWED(f, "c", "alice", "sensors/+/temp", AUTH_SUBSCRIBE);
    ALLOWED(f, "c", "alice", "#", AUTH_SUBSCRIBE); /* overlaps sensors/# */
    ALLOWED(f, "c", "alice", "+/kitchen", AUTH_SUBSCRIBE);
    ALLOWED(f, "c", "alice", "sensors", AUTH_SUBSCRIBE);
    DENIED(f, "c", "alice", "sensors/secret/#", AUTH_SUBSCRIBE); /* all denied */
    DENIED(f, "c", "alice", "sensors/secret", AUTH_SUBSCRIBE);
    DENIED(f, "c", "alice", "sensors/secret/+/x", AUTH_SUBSCRIBE);
    DENIED(f, "c", "alice", "cmd/#", AUTH_SUBSCRIBE); /* write only */
    DENIED(f, "c", "alice", "other/#", AUTH_SUBSCRIBE);
    ALLOWED(f, "c", "alice", "$SYS/#", AUTH_SUBSCRIBE); /* overlaps $SYS/broker/# */
    DENIED(f, "c", "alice", "$SYS/other/#", AUTH_SUBSCRIBE);
    ALLOWED(f, "c", "alice", "$SYS/broker/+", AUTH_SUBSCRIBE);
    ALLOWED(f, "c", "alice", "$SYS/+/uptime", AUTH_SUBSCRIBE);
    ALLOWED(f, "c", "alice", "inbox/alice", AUTH_SUBSCRIBE); /* via the pattern */
    ALLOWED(f, "c", "alice", "inbox/+", AUTH_SUBSCRIBE);
    DENIED(f, "c", "alice", "inbox/bob", AUTH_SUBSCRIBE);
    DENIED(f, "c", NULL, "sensors/#", AUTH_SUBSCRIBE);
}

/* A deny rule that covers only part of the filter leaves the rest readable. */
static void test_acl_subscribe_partial_deny_is_allowed(void **state)
{
    struct fixture *f = *state;
    load_acl(f, "topic read a/#\n"
                "topic deny a/+/x\n"
                "pattern deny b/%c/#\n"
                "pattern read b/#\n");
    ALLOWED(f, "c", NULL, "a/+/+", AUTH_SUBSCRIBE);
    DENIED(f, "c", NULL, "a/+/x", AUTH_SUBSCRIBE);
    DENIED(f, "c", NULL, "a/q/x", AUTH_SUBSCRIBE);
    ALLOWED(f, "c", NULL, "a/#", AUTH_SUBSCRIBE); /* "a/#" includes "a" */
    DENIED(f, "me", NULL, "b/me/#", AUTH_SUBSCRIBE);
    ALLOWED(f, "me", NULL, "b/+/#", AUTH_SUBSCRIBE);
}

/* "topic read" has one word after the keyword: Mosquitto takes it as the
 * filter, with the default readwrite access. Filters run to the end of the
 * line and may hold spaces. */
static void test_acl_single_word_is_the_filter_and_filters_keep_spaces(void **state)
{
    struct fixture *f = *state;
    load_acl(f, "topic read\n"
                "topic write  living room/lamp  \n"
                "topic\tdeny\tx\n");
    ALLOWED(f, "c", NULL, "read", AUTH_WRITE);
    ALLOWED(f, "c", NULL, "living room/lamp", AUTH_WRITE);
    DENIED(f, "c", NULL, "living room/lamp", AUTH_READ);
    DENIED(f, "c", NULL, "x", AUTH_READ);
}

/* A user named twice gets both sets of rules, as in Mosquitto. */
static void test_acl_user_section_can_be_resumed(void **state)
{
    struct fixture *f = *state;
    load_acl(f, "user alice\n"
                "topic a/1\n"
                "user bob\n"
                "topic b/1\n"
                "user alice\n"
                "topic a/2\n"
                "user  spaced name \n"
                "topic s/1\n");
    ALLOWED(f, "c", "alice", "a/1", AUTH_READ);
    ALLOWED(f, "c", "alice", "a/2", AUTH_READ);
    DENIED(f, "c", "bob", "a/2", AUTH_READ);
    ALLOWED(f, "c", "spaced name", "s/1", AUTH_READ);
}

static void test_acl_empty_file_denies_everything(void **state)
{
    struct fixture *f = *state;
    load_acl(f, "# nothing\n\n");
    DENIED(f, "c", NULL, "a", AUTH_READ);
    DENIED(f, "c", "alice", "a", AUTH_WRITE);
    DENIED(f, "c", "alice", "#", AUTH_SUBSCRIBE);
}

/* Long ids and usernames expand patterns past the stack scratch buffer. */
static void test_acl_long_client_id_expands_on_the_heap(void **state)
{
    struct fixture *f = *state;
    load_acl(f, "pattern readwrite d/%c/%c/#\n");
    char id[600];
    memset(id, 'i', sizeof(id) - 1);
    id[sizeof(id) - 1] = '\0';
    char topic[1300];
    snprintf(topic, sizeof(topic), "d/%s/%s/t", id, id);
    ALLOWED(f, id, NULL, topic, AUTH_WRITE);
    topic[2] = 'j';
    DENIED(f, id, NULL, topic, AUTH_WRITE);
}

/* ---- ACL file: load errors ---------------------------------------------- */

static void expect_acl_error(struct fixture *f, const char *text, const char *where)
{
    write_file(f, text);
    char want[600];
    snprintf(want, sizeof(want), "%s:%s", f->path, where);
    assert_int_equal(auth_acl_load(f->path, &f->acl, f->err, sizeof(f->err)), AUTH_ERR_INVALID);
    assert_null(f->acl);
    if (strcmp(f->err, want) != 0)
        fail_msg("error\n  got:  %s\n  want: %s", f->err, want);
}

static void test_acl_load_errors_name_file_and_line(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *text;
        const char *where;
    } cases[] = {
        {"topic a\ntopics b\n", "2: unknown keyword 'topics' (expected user, topic or pattern)"},
        {"\n\nuser\n", "3: user: missing username"},
        {"user   \t\n", "1: user: missing username"},
        {"topic\n", "1: topic: missing topic filter"},
        {"pattern   \n", "1: pattern: missing topic filter"},
        {"topic rw a/b\n",
         "1: topic: unknown access 'rw' (expected read, write, readwrite or deny)"},
        {"pattern Read a/%c\n",
         "1: pattern: unknown access 'Read' (expected read, write, readwrite or deny)"},
        {"topic read a/#/b\n", "1: topic: invalid topic filter 'a/#/b'"},
        {"topic read a+\n", "1: topic: invalid topic filter 'a+'"},
        {"topic read a/+b\n", "1: topic: invalid topic filter 'a/+b'"},
        {"pattern foo#\n", "1: pattern: invalid topic filter 'foo#'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_acl_error(f, cases[i].text, cases[i].where);
}

static void test_acl_load_error_nul_byte_and_missing_file(void **state)
{
    struct fixture *f = *state;
    static const char text[] = "topic a\ntopic \0b\n";
    write_bytes(f, text, sizeof(text) - 1);
    assert_int_equal(auth_acl_load(f->path, &f->acl, f->err, sizeof(f->err)), AUTH_ERR_INVALID);
    char want[128];
    snprintf(want, sizeof(want), "%s:2: line contains a NUL byte", f->path);
    assert_string_equal(f->err, want);
    unlink(f->path);
    assert_int_equal(auth_acl_load(f->path, &f->acl, f->err, sizeof(f->err)), AUTH_ERR_IO);
    snprintf(want, sizeof(want), "%s: cannot read: No such file or directory", f->path);
    assert_string_equal(f->err, want);
}

static void test_strerror_names_every_code(void **state)
{
    (void)state;
    assert_string_equal(auth_strerror(AUTH_OK), "success");
    assert_string_equal(auth_strerror(AUTH_ERR_DENIED), "access denied");
    assert_string_equal(auth_strerror(AUTH_ERR_CRYPTO), "cryptographic library failure");
    assert_string_equal(auth_strerror(12345), "unknown auth error");
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_passwd_mosquitto_passwd_7_vectors_verify),
        T(test_passwd_6_vector_verifies),
        T(test_passwd_wrong_password_is_denied),
        T(test_passwd_unknown_user_is_denied),
        T(test_passwd_digest_differing_in_last_byte_is_denied),
        T(test_passwd_empty_or_missing_password_is_denied),
        T(test_passwd_bytes_after_nul_are_hashed),
        T(test_passwd_comments_blanks_crlf_and_spaces_are_ignored),
        T(test_passwd_empty_file_has_no_users),
        T(test_passwd_unknown_user_computes_a_full_hash),
        T(test_passwd_load_errors_name_file_and_line),
        T(test_passwd_load_error_nul_byte),
        T(test_passwd_load_error_username_too_long),
        T(test_passwd_load_missing_file_is_io_error),
        T(test_passwd_load_error_fits_small_buffer),
        T(test_passwd_hash_new_has_mosquitto_layout),
        T(test_passwd_hash_new_round_trips_through_the_file_format),
        T(test_passwd_hash_new_rejects_bad_arguments),
        T(test_acl_user_rules_apply_only_to_that_user),
        T(test_acl_topics_before_any_user_are_for_anonymous_clients),
        T(test_acl_access_words_and_readwrite_default),
        T(test_acl_deny_takes_priority_over_allow),
        T(test_acl_patterns_substitute_client_id_and_username),
        T(test_acl_pattern_with_u_is_skipped_for_anonymous_clients),
        T(test_acl_pattern_substitutes_inside_a_level),
        T(test_acl_patterns_deny_wildcards_in_id_or_username),
        T(test_acl_user_rules_are_checked_before_patterns),
        T(test_acl_wildcards_and_dollar_topics),
        T(test_acl_topic_is_a_length_delimited_view),
        T(test_acl_subscribe_denied_only_when_nothing_is_readable),
        T(test_acl_subscribe_partial_deny_is_allowed),
        T(test_acl_single_word_is_the_filter_and_filters_keep_spaces),
        T(test_acl_user_section_can_be_resumed),
        T(test_acl_empty_file_denies_everything),
        T(test_acl_long_client_id_expands_on_the_heap),
        T(test_acl_load_errors_name_file_and_line),
        T(test_acl_load_error_nul_byte_and_missing_file),
        T(test_strerror_names_every_code),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
