/*
 * stats.c - solbench's measuring instruments: the clock, the payload stamp,
 * the latency histogram, per-stream loss/duplicate/order tracking, and the
 * broker's RSS from /proc.
 *
 * Memory is bounded: the histogram has a fixed size and each stream keeps one
 * bit per sequence number it has seen. Not for: sockets or MQTT (conn.c).
 */
#include "solbench.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    /* CLOCK_MONOTONIC cannot fail with a valid clock id and pointer. */
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)(v & 0xffu);
        v >>= 8;
    }
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

void stamp_write(uint8_t *payload, uint32_t pub, uint64_t seq, uint64_t t_ns)
{
    put_be64(payload, ((uint64_t)pub << BENCH_SEQ_BITS) | (seq & BENCH_SEQ_MASK));
    put_be64(payload + 8, t_ns);
}

void stamp_read(const uint8_t *payload, uint32_t *pub, uint64_t *seq, uint64_t *t_ns)
{
    uint64_t id = get_be64(payload);
    *pub = (uint32_t)(id >> BENCH_SEQ_BITS);
    *seq = id & BENCH_SEQ_MASK;
    *t_ns = get_be64(payload + 8);
}

/* Values below 64 get a bucket each; above, 64 buckets per power of two. */
static uint32_t hist_index(uint64_t v)
{
    if (v < (1u << HIST_SUB_BITS))
        return (uint32_t)v;
    uint32_t e = 63u - (uint32_t)__builtin_clzll(v);
    uint32_t mantissa = (uint32_t)(v >> (e - HIST_SUB_BITS)) & ((1u << HIST_SUB_BITS) - 1);
    return (e - HIST_SUB_BITS + 1) * (1u << HIST_SUB_BITS) + mantissa;
}

/* The middle of bucket i, in nanoseconds. */
static uint64_t hist_value(uint32_t i)
{
    if (i < (1u << HIST_SUB_BITS))
        return i;
    uint32_t e = i / (1u << HIST_SUB_BITS) + HIST_SUB_BITS - 1;
    uint64_t mantissa = i % (1u << HIST_SUB_BITS);
    uint64_t width = UINT64_C(1) << (e - HIST_SUB_BITS);
    return (((UINT64_C(1) << HIST_SUB_BITS) + mantissa) * width) + width / 2;
}

void hist_add(struct hist *h, uint64_t ns)
{
    h->counts[hist_index(ns)]++;
    h->total++;
    if (ns > h->max_ns)
        h->max_ns = ns;
}

/* The value below which a fraction q of the samples fall; 0 if there are none. */
uint64_t hist_quantile(const struct hist *h, double q)
{
    if (h->total == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)h->total);
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (uint32_t i = 0; i < HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank)
            return hist_value(i) < h->max_ns ? hist_value(i) : h->max_ns;
    }
    return h->max_ns;
}

static int stream_grow(struct stream *s, uint64_t seq)
{
    uint64_t need = seq / 64 + 1;
    uint64_t words = s->seen_words ? s->seen_words : 8;
    while (words < need)
        words *= 2;
    uint64_t *p = realloc(s->seen, words * sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    memset(p + s->seen_words, 0, (words - s->seen_words) * sizeof(*p));
    s->seen = p;
    s->seen_words = words;
    return 0;
}

int stream_record(struct stream *s, uint64_t seq)
{
    if (seq / 64 >= s->seen_words && stream_grow(s, seq) != 0)
        return -ENOMEM;
    uint64_t bit = UINT64_C(1) << (seq % 64);
    if (s->seen[seq / 64] & bit) {
        s->dup++;
        return STREAM_DUP;
    }
    s->seen[seq / 64] |= bit;
    s->unique++;
    /* Arriving after a later sequence number of the same publisher. */
    if (s->has_any && seq < s->max_seq) {
        s->ooo++;
        return STREAM_NEW_OUT_OF_ORDER;
    }
    s->max_seq = seq;
    s->has_any = true;
    return STREAM_NEW;
}

void stream_free(struct stream *s)
{
    free(s->seen);
    s->seen = NULL;
    s->seen_words = 0;
}

/* VmRSS of pid in KiB, or -1 if it cannot be read. */
long proc_rss_kb(long pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    }
    fclose(f);
    return kb;
}
