/*
 * scram_test_client.h - the client side of SCRAM-SHA-512 (RFC 5802 with
 * SHA-512), computed with OpenSSL directly, for unit tests that drive MQTT 5
 * enhanced authentication through the session manager (test_session_v5.c).
 * tests/unit/test_scram.c has its own client (it counts the server's HMACs);
 * this one only produces the messages a well-behaved client sends.
 * Static functions: include it once per test binary, after cmocka.h.
 * Not for: checking scram.c's edge cases (test_scram.c does).
 */
#ifndef SOL_TEST_SCRAM_TEST_CLIENT_H
#define SOL_TEST_SCRAM_TEST_CLIENT_H

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

struct scram_test_client {
    const char *password;
    char first_bare[256];
    char first[300];
    uint8_t server_signature[64];
    char final[700];
};

/* "n,,n=USER,r=NONCE": the Authentication Data of the CONNECT. */
__attribute__((unused)) static const char *
scram_client_first(struct scram_test_client *c, const char *user, const char *password)
{
    memset(c, 0, sizeof(*c));
    c->password = password;
    snprintf(c->first_bare, sizeof(c->first_bare), "n=%s,r=%s", user, "fyko+d2lbbFgONRv9qkxdawL");
    snprintf(c->first, sizeof(c->first), "n,,%s", c->first_bare);
    return c->first;
}

/* The value of attribute key in a SCRAM message, copied to out. */
static void scram_attribute(const char *msg, char key, char *out, size_t out_len)
{
    const char *p = msg;
    while (p && !(p[0] == key && p[1] == '=')) {
        p = strchr(p, ',');
        if (p)
            p++;
    }
    assert_non_null(p);
    size_t n = strcspn(p + 2, ",");
    assert_true(n < out_len);
    memcpy(out, p + 2, n);
    out[n] = '\0';
}

/* client-final-message for the server-first-message sf[0..len); remembers
 * the ServerSignature the server must prove in its server-final. */
__attribute__((unused)) static const char *scram_client_final(struct scram_test_client *c,
                                                              const uint8_t *sf, size_t len)
{
    char server_first[512], nonce[256], salt_b64[128], iter[16];
    assert_true(len < sizeof(server_first));
    memcpy(server_first, sf, len);
    server_first[len] = '\0';
    scram_attribute(server_first, 'r', nonce, sizeof(nonce));
    scram_attribute(server_first, 's', salt_b64, sizeof(salt_b64));
    scram_attribute(server_first, 'i', iter, sizeof(iter));
    uint8_t salt[96];
    int salt_len = EVP_DecodeBlock(salt, (const unsigned char *)salt_b64, (int)strlen(salt_b64));
    assert_true(salt_len > 0);
    size_t b64_len = strlen(salt_b64);
    salt_len -=
        b64_len >= 2 && salt_b64[b64_len - 1] == '=' ? (salt_b64[b64_len - 2] == '=' ? 2 : 1) : 0;
    uint8_t salted[64], client_key[64], stored_key[64], client_sig[64], server_key[64], proof[64];
    assert_int_equal(PKCS5_PBKDF2_HMAC(c->password, (int)strlen(c->password), salt, salt_len,
                                       atoi(iter), EVP_sha512(), 64, salted),
                     1);
    char without_proof[300], auth_message[1200];
    snprintf(without_proof, sizeof(without_proof), "c=biws,r=%s", nonce);
    snprintf(auth_message, sizeof(auth_message), "%s,%s,%s", c->first_bare, server_first,
             without_proof);
    unsigned n = 0;
    assert_non_null(
        HMAC(EVP_sha512(), salted, 64, (const uint8_t *)"Client Key", 10, client_key, &n));
    assert_int_equal(EVP_Digest(client_key, 64, stored_key, &n, EVP_sha512(), NULL), 1);
    assert_non_null(HMAC(EVP_sha512(), stored_key, 64, (const uint8_t *)auth_message,
                         strlen(auth_message), client_sig, &n));
    for (size_t i = 0; i < 64; i++)
        proof[i] = client_key[i] ^ client_sig[i];
    assert_non_null(
        HMAC(EVP_sha512(), salted, 64, (const uint8_t *)"Server Key", 10, server_key, &n));
    assert_non_null(HMAC(EVP_sha512(), server_key, 64, (const uint8_t *)auth_message,
                         strlen(auth_message), c->server_signature, &n));
    char proof_b64[100];
    EVP_EncodeBlock((unsigned char *)proof_b64, proof, 64);
    snprintf(c->final, sizeof(c->final), "%s,p=%s", without_proof, proof_b64);
    return c->final;
}

/* Does server-final ("v=...") prove the server knows the key? */
__attribute__((unused)) static bool scram_server_final_ok(const struct scram_test_client *c,
                                                          const uint8_t *v, size_t len)
{
    char expected[100] = "v=";
    EVP_EncodeBlock((unsigned char *)expected + 2, c->server_signature, 64);
    return len == strlen(expected) && memcmp(v, expected, len) == 0;
}

#endif /* SOL_TEST_SCRAM_TEST_CLIENT_H */
