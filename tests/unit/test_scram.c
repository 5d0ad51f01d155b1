/*
 * test_scram.c - the SCRAM-SHA-512 server (src/auth/scram.c) against a client
 * computed here, independently, with OpenSSL (PBKDF2 from the password, the
 * RFC 5802 keys and proofs), over a password file whose $7$ entries are made
 * by auth_passwd_hash_new(), as `solctl passwd` makes them.
 *
 * HMAC is wrapped (-Wl,--wrap=HMAC) to count the server's HMACs: an unknown
 * user's exchange does the same work as a known one's.
 *
 * `test_scram --serve PASSWORD_FILE` runs one exchange over stdin/stdout (one
 * message per line: client-first in, server-first out, client-final in,
 * "OK server-final" or "DENIED server-final" out), so
 * tests/integration/test_scram_client.py can check the Python client
 * (tests/integration/scram_client.py) against this module.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth.h"
#include "scram.h"

/* ---- HMAC counting ---- */

static int hmac_calls;

unsigned char *__real_HMAC(const EVP_MD *md, const void *key, int key_len, const unsigned char *d,
                           size_t n, unsigned char *md_out, unsigned int *md_len);
unsigned char *__wrap_HMAC(const EVP_MD *md, const void *key, int key_len, const unsigned char *d,
                           size_t n, unsigned char *md_out, unsigned int *md_len);
unsigned char *__wrap_HMAC(const EVP_MD *md, const void *key, int key_len, const unsigned char *d,
                           size_t n, unsigned char *md_out, unsigned int *md_len)
{
    hmac_calls++;
    return __real_HMAC(md, key, key_len, d, n, md_out, md_len);
}

/* ---- the client side, computed independently ---- */

static void b64(const uint8_t *in, size_t len, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

static size_t unb64(const char *in, size_t len, uint8_t *out)
{
    int n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
    assert_true(n >= 0);
    size_t pad = len >= 2 && in[len - 1] == '=' ? (in[len - 2] == '=' ? 2 : 1) : 0;
    return (size_t)n - pad;
}

static void hmac512(const uint8_t *key, size_t key_len, const void *data, size_t len, uint8_t *out)
{
    unsigned n = 0;
    assert_non_null(__real_HMAC(EVP_sha512(), key, (int)key_len, data, len, out, &n));
    assert_int_equal(n, 64);
}

struct client {
    const char *user, *password, *cnonce;
    char first_bare[256];
    char server_first[512];
    char nonce[256];
    uint8_t salt[64];
    size_t salt_len;
    int iterations;
    uint8_t server_signature[64];
    char final[512];
};

static const char *field(const char *msg, char key, char *out, size_t out_len)
{
    char pat[3] = {key, '=', 0};
    const char *p = strncmp(msg, pat, 2) == 0 ? msg : NULL;
    if (!p) {
        char mid[4] = {',', key, '=', 0};
        p = strstr(msg, mid);
        if (p)
            p++;
    }
    assert_non_null(p);
    p += 2;
    size_t n = strcspn(p, ",");
    assert_true(n < out_len);
    memcpy(out, p, n);
    out[n] = 0;
    return out;
}

/* Reads server-first, computes client-final (with `nonce` instead of the
 * server's when not NULL: a tampered one). */
static void client_final(struct client *c, const uint8_t *sf, size_t sf_len, const char *nonce)
{
    char buf[256];
    assert_true(sf_len < sizeof(c->server_first));
    memcpy(c->server_first, sf, sf_len);
    c->server_first[sf_len] = 0;
    field(c->server_first, 'r', c->nonce, sizeof(c->nonce));
    assert_int_equal(strncmp(c->nonce, c->cnonce, strlen(c->cnonce)), 0); /* RFC 5802 5.1 */
    assert_true(strlen(c->nonce) > strlen(c->cnonce));
    field(c->server_first, 's', buf, sizeof(buf));
    c->salt_len = unb64(buf, strlen(buf), c->salt);
    c->iterations = atoi(field(c->server_first, 'i', buf, sizeof(buf)));
    uint8_t salted[64], client_key[64], stored_key[64], sig[64], proof[64], server_key[64];
    assert_int_equal(PKCS5_PBKDF2_HMAC(c->password, (int)strlen(c->password), c->salt,
                                       (int)c->salt_len, c->iterations, EVP_sha512(), 64, salted),
                     1);
    char without_proof[300], auth[1200];
    snprintf(without_proof, sizeof(without_proof), "c=biws,r=%s", nonce ? nonce : c->nonce);
    snprintf(auth, sizeof(auth), "%s,%s,%s", c->first_bare, c->server_first, without_proof);
    hmac512(salted, 64, "Client Key", 10, client_key);
    unsigned n = 0;
    EVP_Digest(client_key, 64, stored_key, &n, EVP_sha512(), NULL);
    hmac512(stored_key, 64, auth, strlen(auth), sig);
    for (int i = 0; i < 64; i++)
        proof[i] = client_key[i] ^ sig[i];
    hmac512(salted, 64, "Server Key", 10, server_key);
    hmac512(server_key, 64, auth, strlen(auth), c->server_signature);
    char proof_b64[100];
    b64(proof, 64, proof_b64);
    snprintf(c->final, sizeof(c->final), "%s,p=%s", without_proof, proof_b64);
}

/* ---- fixture: a password file with a $7$ user, a $6$ user ---- */

struct fixture {
    char dir[64];
    struct auth_passwd *pw;
};

/* SHA512("secret" || "salt12345678") as a $6$ entry: Mosquitto's older format. */
static void write_sha512_entry(FILE *fp)
{
    const char *salt = "salt12345678";
    uint8_t digest[64];
    unsigned n = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha512(), NULL);
    EVP_DigestUpdate(ctx, "secret", 6);
    EVP_DigestUpdate(ctx, salt, strlen(salt));
    EVP_DigestFinal_ex(ctx, digest, &n);
    EVP_MD_CTX_free(ctx);
    char salt_b64[32], digest_b64[100];
    b64((const uint8_t *)salt, strlen(salt), salt_b64);
    b64(digest, 64, digest_b64);
    fprintf(fp, "old:$6$%s$%s\n", salt_b64, digest_b64);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    strcpy(f->dir, "/tmp/sol-test-scram-XXXXXX");
    if (!f || !mkdtemp(f->dir))
        return -1;
    char path[128], hash[AUTH_PASSWD_HASH_MAX], err[256];
    snprintf(path, sizeof(path), "%s/passwd", f->dir);
    FILE *fp = fopen(path, "w");
    if (!fp)
        return -1;
    /* As `solctl passwd` does: auth_passwd_hash_new() with the default iterations. */
    if (auth_passwd_hash_new((const uint8_t *)"correct horse", 13, 0, hash, sizeof(hash)) != 0)
        return -1;
    fprintf(fp, "alice:%s\n", hash);
    if (auth_passwd_hash_new((const uint8_t *)"p,w=", 4, 0, hash, sizeof(hash)) != 0)
        return -1;
    fprintf(fp, "a,b=c:%s\n", hash);
    if (auth_passwd_hash_new((const uint8_t *)"bobs", 4, 4096, hash, sizeof(hash)) != 0)
        return -1;
    fprintf(fp, "bob:%s\n", hash);
    write_sha512_entry(fp);
    fclose(fp);
    if (auth_passwd_load(path, &f->pw, err, sizeof(err)) != AUTH_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    auth_passwd_free(f->pw);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* Runs an exchange; returns auth_scram_finish()'s code. server_final gets
 * its text; *finish_hmacs the server's HMAC count in step 2. */
static int exchange(struct fixture *f, struct client *c, const char *escaped_user,
                    const char *tampered_nonce, char *server_final, int *finish_hmacs)
{
    char first[300];
    snprintf(c->first_bare, sizeof(c->first_bare), "n=%s,r=%s", escaped_user, c->cnonce);
    snprintf(first, sizeof(first), "n,,%s", c->first_bare);
    struct auth_scram *s = auth_scram_new();
    assert_non_null(s);
    const uint8_t *out = NULL;
    size_t out_len = 0;
    assert_int_equal(
        auth_scram_start(s, f->pw, (const uint8_t *)first, strlen(first), &out, &out_len), AUTH_OK);
    client_final(c, out, out_len, tampered_nonce);
    int before = hmac_calls;
    int rc = auth_scram_finish(s, (const uint8_t *)c->final, strlen(c->final), &out, &out_len);
    if (finish_hmacs)
        *finish_hmacs = hmac_calls - before;
    memcpy(server_final, out, out_len);
    server_final[out_len] = 0;
    if (rc == AUTH_OK)
        assert_string_equal(auth_scram_username(s), c->user);
    auth_scram_free(s);
    return rc;
}

/* ---- tests ---- */

static void test_scram_full_exchange_with_a_solctl_passwd_entry(void **state)
{
    struct fixture *f = *state;
    struct client c = {
        .user = "alice", .password = "correct horse", .cnonce = "fyko+d2lbbFgONRv9qkxdawL"};
    char final[256];
    assert_int_equal(exchange(f, &c, "alice", NULL, final, NULL), AUTH_OK);
    assert_int_equal(c.iterations, AUTH_PASSWD_DEFAULT_ITERATIONS);
    assert_int_equal(c.salt_len, AUTH_PASSWD_SALT_LEN);
    /* The client checks the server too: v= is the ServerSignature it computed. */
    char want[100];
    b64(c.server_signature, 64, want);
    assert_int_equal(strncmp(final, "v=", 2), 0);
    assert_string_equal(final + 2, want);
}

static void test_scram_escaped_username_and_password_with_commas(void **state)
{
    struct fixture *f = *state;
    struct client c = {.user = "a,b=c", .password = "p,w=", .cnonce = "abc"};
    char final[256];
    assert_int_equal(exchange(f, &c, "a=2Cb=3Dc", NULL, final, NULL), AUTH_OK);
}

/* The entry's own iteration count and salt are SCRAM's i and salt. */
static void test_scram_uses_the_entrys_iteration_count(void **state)
{
    struct fixture *f = *state;
    struct client c = {.user = "bob", .password = "bobs", .cnonce = "xyz"};
    char final[256];
    assert_int_equal(exchange(f, &c, "bob", NULL, final, NULL), AUTH_OK);
    assert_int_equal(c.iterations, 4096);
}

static void test_scram_wrong_password_fails_with_invalid_proof(void **state)
{
    struct fixture *f = *state;
    struct client c = {.user = "alice", .password = "wrong horse", .cnonce = "n1"};
    char final[256];
    assert_int_equal(exchange(f, &c, "alice", NULL, final, NULL), AUTH_ERR_DENIED);
    assert_string_equal(final, "e=invalid-proof");
}

static void test_scram_tampered_nonce_fails(void **state)
{
    struct fixture *f = *state;
    struct client c = {.user = "alice", .password = "correct horse", .cnonce = "n1"};
    char final[256];
    /* The right password, but the nonce of another exchange (replay). */
    assert_int_equal(exchange(f, &c, "alice", "n1AAAAAAAAAAAAAAAAAAAAAAAAAA", final, NULL),
                     AUTH_ERR_DENIED);
    assert_string_equal(final, "e=other-error");
}

/* An unknown user gets a server-first-message of the same shape (a stable
 * salt per name) and the same HMAC work in step 2 as a known user. */
static void test_scram_unknown_user_fails_without_a_timing_shortcut(void **state)
{
    struct fixture *f = *state;
    char final[256];
    int known_hmacs = 0, unknown_hmacs = 0;
    struct client k = {.user = "alice", .password = "nope", .cnonce = "n1"};
    assert_int_equal(exchange(f, &k, "alice", NULL, final, &known_hmacs), AUTH_ERR_DENIED);
    struct client u1 = {.user = "mallory", .password = "nope", .cnonce = "n1"};
    assert_int_equal(exchange(f, &u1, "mallory", NULL, final, &unknown_hmacs), AUTH_ERR_DENIED);
    assert_string_equal(final, "e=invalid-proof"); /* the same answer as a wrong password */
    assert_int_equal(unknown_hmacs, known_hmacs);
    assert_true(known_hmacs >= 4);
    assert_int_equal(u1.iterations, k.iterations);
    assert_int_equal(u1.salt_len, k.salt_len);
    struct client u2 = {.user = "mallory", .password = "nope", .cnonce = "n2"};
    exchange(f, &u2, "mallory", NULL, final, NULL);
    assert_memory_equal(u1.salt, u2.salt, u1.salt_len); /* stable: probing shows nothing */
    struct client u3 = {.user = "trudy", .password = "nope", .cnonce = "n2"};
    exchange(f, &u3, "trudy", NULL, final, NULL);
    assert_memory_not_equal(u1.salt, u3.salt, u1.salt_len);
}

static void test_scram_sha512_crypt_user_cannot_use_scram(void **state)
{
    struct fixture *f = *state;
    struct client c = {.user = "old", .password = "secret", .cnonce = "n1"};
    char first[300];
    snprintf(c.first_bare, sizeof(c.first_bare), "n=old,r=%s", c.cnonce);
    snprintf(first, sizeof(first), "n,,%s", c.first_bare);
    struct auth_scram *s = auth_scram_new();
    const uint8_t *out;
    size_t out_len;
    assert_int_equal(
        auth_scram_start(s, f->pw, (const uint8_t *)first, strlen(first), &out, &out_len), AUTH_OK);
    client_final(&c, out, out_len, NULL);
    assert_int_equal(
        auth_scram_finish(s, (const uint8_t *)c.final, strlen(c.final), &out, &out_len),
        AUTH_ERR_DENIED);
    assert_non_null(strstr(auth_scram_error(s), "$6$"));
    assert_non_null(strstr(auth_scram_error(s), "$7$"));
    auth_scram_free(s);
}

static void assert_start_invalid(struct fixture *f, const char *msg, const char *why_part)
{
    struct auth_scram *s = auth_scram_new();
    const uint8_t *out = NULL;
    size_t out_len = 0;
    assert_int_equal(auth_scram_start(s, f->pw, (const uint8_t *)msg, strlen(msg), &out, &out_len),
                     AUTH_ERR_INVALID);
    if (!strstr(auth_scram_error(s), why_part))
        fail_msg("%s: error '%s' lacks '%s'", msg, auth_scram_error(s), why_part);
    auth_scram_free(s);
}

static void test_scram_malformed_client_first_messages_fail(void **state)
{
    struct fixture *f = *state;
    assert_start_invalid(f, "", "empty");
    assert_start_invalid(f, "n,,", "username");
    assert_start_invalid(f, "x,,n=alice,r=abc", "GS2");
    assert_start_invalid(f, "p=tls-unique,,n=alice,r=abc", "channel binding");
    assert_start_invalid(f, "n,a=admin,n=alice,r=abc", "authorization identity");
    assert_start_invalid(f, "n,,m=ext,n=alice,r=abc", "mandatory extension");
    assert_start_invalid(f, "n,,n=,r=abc", "username");
    assert_start_invalid(f, "n,,n=a=ZZ,r=abc", "username"); /* bad escape */
    assert_start_invalid(f, "n,,n=a=2", "username");        /* truncated escape */
    assert_start_invalid(f, "n,,n=alice", "nonce");
    assert_start_invalid(f, "n,,n=alice,r=", "nonce");
    assert_start_invalid(f, "n,,n=alice,x=abc", "nonce");
    assert_start_invalid(f, "n,,r=abc,n=alice", "username"); /* order matters */
    char big[5000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    memcpy(big, "n,,n=alice,r=", 13);
    assert_start_invalid(f, big, "too long");
}

/* Step 2 errors after a valid step 1. */
static void assert_finish_fails(struct fixture *f, const char *final_msg, int want_rc,
                                const char *want_e)
{
    struct auth_scram *s = auth_scram_new();
    const char *first = "n,,n=alice,r=abc";
    const uint8_t *out = NULL;
    size_t out_len = 0;
    assert_int_equal(
        auth_scram_start(s, f->pw, (const uint8_t *)first, strlen(first), &out, &out_len), AUTH_OK);
    char msg[600];
    char nonce[300];
    char sf[512];
    memcpy(sf, out, out_len);
    sf[out_len] = 0;
    field(sf, 'r', nonce, sizeof(nonce));
    snprintf(msg, sizeof(msg), final_msg, nonce);
    assert_int_equal(auth_scram_finish(s, (const uint8_t *)msg, strlen(msg), &out, &out_len),
                     want_rc);
    assert_int_equal(out_len, strlen(want_e));
    assert_memory_equal(out, want_e, out_len);
    /* An exchange is over once step 2 ran: a second final is refused. */
    assert_int_equal(auth_scram_finish(s, (const uint8_t *)msg, strlen(msg), &out, &out_len),
                     AUTH_ERR_INVALID);
    auth_scram_free(s);
}

static void test_scram_malformed_client_final_messages_fail(void **state)
{
    struct fixture *f = *state;
    char proof[100] = "p=";
    uint8_t zeros[64] = {0};
    b64(zeros, sizeof(zeros), proof + 2); /* a well-formed proof of the right length */
    char fmt[400];
    assert_finish_fails(f, "c=biws,r=%s", AUTH_ERR_INVALID, "e=other-error"); /* no proof */
    assert_finish_fails(f, "c=biws,r=%s,p=!!!!", AUTH_ERR_INVALID, "e=other-error");
    assert_finish_fails(f, "c=biws,r=%s,p=AAAA", AUTH_ERR_INVALID, "e=other-error"); /* short */
    snprintf(fmt, sizeof(fmt), "c=eSws,r=%%s,%s", proof); /* "y,," but step 1 said "n,," */
    assert_finish_fails(f, fmt, AUTH_ERR_DENIED, "e=channel-bindings-dont-match");
    snprintf(fmt, sizeof(fmt), "r=%%s,c=biws,%s", proof);
    assert_finish_fails(f, fmt, AUTH_ERR_DENIED, "e=channel-bindings-dont-match");
    snprintf(fmt, sizeof(fmt), "c=biws,%s", proof); /* no nonce */
    assert_finish_fails(f, fmt, AUTH_ERR_INVALID, "e=other-error");
    snprintf(fmt, sizeof(fmt), "c=biws,r=%%s,%s", proof); /* well-formed, wrong proof */
    assert_finish_fails(f, fmt, AUTH_ERR_DENIED, "e=invalid-proof");
}

static void test_scram_steps_out_of_order_fail(void **state)
{
    struct fixture *f = *state;
    struct auth_scram *s = auth_scram_new();
    const uint8_t *out = NULL;
    size_t out_len = 0;
    const char *m = "c=biws,r=abc,p=AAAA";
    assert_int_equal(auth_scram_finish(s, (const uint8_t *)m, strlen(m), &out, &out_len),
                     AUTH_ERR_INVALID);
    auth_scram_free(s);
    s = auth_scram_new();
    const char *first = "n,,n=alice,r=abc";
    assert_int_equal(
        auth_scram_start(s, f->pw, (const uint8_t *)first, strlen(first), &out, &out_len), AUTH_OK);
    assert_int_equal(
        auth_scram_start(s, f->pw, (const uint8_t *)first, strlen(first), &out, &out_len),
        AUTH_ERR_INVALID);
    auth_scram_free(s);
}

/* ---- --serve: one exchange over stdin/stdout for the Python client test ---- */

static int read_line(char *buf, size_t len)
{
    if (!fgets(buf, (int)len, stdin))
        return -1;
    buf[strcspn(buf, "\n")] = 0;
    return 0;
}

static int serve(const char *passwd_path)
{
    char err[256], line[8192];
    struct auth_passwd *pw = NULL;
    if (auth_passwd_load(passwd_path, &pw, err, sizeof(err)) != AUTH_OK) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    struct auth_scram *s = auth_scram_new();
    const uint8_t *out = NULL;
    size_t out_len = 0;
    int rc = 2;
    if (s && read_line(line, sizeof(line)) == 0 &&
        auth_scram_start(s, pw, (const uint8_t *)line, strlen(line), &out, &out_len) == AUTH_OK) {
        printf("%.*s\n", (int)out_len, (const char *)out);
        fflush(stdout);
        if (read_line(line, sizeof(line)) == 0) {
            rc = auth_scram_finish(s, (const uint8_t *)line, strlen(line), &out, &out_len);
            printf("%s %.*s\n", rc == AUTH_OK ? "OK" : "DENIED", (int)out_len, (const char *)out);
            fprintf(stderr, "%s\n", auth_scram_error(s));
            rc = rc == AUTH_OK ? 0 : 1;
        }
    } else if (s) {
        printf("INVALID %s\n", auth_scram_error(s));
    }
    auth_scram_free(s);
    auth_passwd_free(pw);
    return rc;
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--serve") == 0)
        return serve(argv[2]);
    const struct CMUnitTest tests[] = {
        T(test_scram_full_exchange_with_a_solctl_passwd_entry),
        T(test_scram_escaped_username_and_password_with_commas),
        T(test_scram_uses_the_entrys_iteration_count),
        T(test_scram_wrong_password_fails_with_invalid_proof),
        T(test_scram_tampered_nonce_fails),
        T(test_scram_unknown_user_fails_without_a_timing_shortcut),
        T(test_scram_sha512_crypt_user_cannot_use_scram),
        T(test_scram_malformed_client_first_messages_fail),
        T(test_scram_malformed_client_final_messages_fail),
        T(test_scram_steps_out_of_order_fail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
