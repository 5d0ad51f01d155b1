/*
 * siphash.c - SipHash-c-d over a byte string, after the reference
 * implementation (github.com/veorq/SipHash), little-endian word loads done
 * byte by byte so any alignment and host order give the same result.
 * Not for: keying (the caller owns the key; hashtable.c draws one per process).
 */
#include "siphash.h"

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

struct sip_state {
    uint64_t v0, v1, v2, v3;
};

static void sip_round(struct sip_state *s)
{
    s->v0 += s->v1;
    s->v1 = ROTL(s->v1, 13);
    s->v1 ^= s->v0;
    s->v0 = ROTL(s->v0, 32);
    s->v2 += s->v3;
    s->v3 = ROTL(s->v3, 16);
    s->v3 ^= s->v2;
    s->v0 += s->v3;
    s->v3 = ROTL(s->v3, 21);
    s->v3 ^= s->v0;
    s->v2 += s->v1;
    s->v1 = ROTL(s->v1, 17);
    s->v1 ^= s->v2;
    s->v2 = ROTL(s->v2, 32);
}

static void sip_absorb(struct sip_state *s, uint64_t m, int c_rounds)
{
    s->v3 ^= m;
    for (int i = 0; i < c_rounds; i++)
        sip_round(s);
    s->v0 ^= m;
}

static uint64_t siphash(const uint8_t key[SIPHASH_KEY_LEN], const void *data, size_t len,
                        int c_rounds, int d_rounds)
{
    const uint8_t *in = data;
    uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
    struct sip_state s = {
        .v0 = 0x736f6d6570736575ull ^ k0,
        .v1 = 0x646f72616e646f6dull ^ k1,
        .v2 = 0x6c7967656e657261ull ^ k0,
        .v3 = 0x7465646279746573ull ^ k1,
    };
    size_t tail = len & 7;
    const uint8_t *end = in + (len - tail);
    for (; in != end; in += 8)
        sip_absorb(&s, load_le64(in), c_rounds);
    uint64_t b = (uint64_t)len << 56;
    for (size_t i = 0; i < tail; i++)
        b |= (uint64_t)in[i] << (8 * i);
    sip_absorb(&s, b, c_rounds);
    s.v2 ^= 0xff;
    for (int i = 0; i < d_rounds; i++)
        sip_round(&s);
    return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

uint64_t siphash24(const uint8_t key[SIPHASH_KEY_LEN], const void *data, size_t len)
{
    return siphash(key, data, len, 2, 4);
}

uint64_t siphash13(const uint8_t key[SIPHASH_KEY_LEN], const void *data, size_t len)
{
    return siphash(key, data, len, 1, 3);
}
