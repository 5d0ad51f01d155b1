/*
 * siphash.h - SipHash (Aumasson and Bernstein), a keyed hash: without the
 * 128-bit key an attacker cannot choose inputs that collide, so tables keyed
 * by client bytes (client ids, topics, filter levels) stay O(1) per lookup
 * whatever the clients send. redis dict.c uses it for the same reason.
 * Not for: cryptographic MACs over long-lived data, or storage formats (the
 * key changes with every process, so hashes must never be stored).
 */
#ifndef SOL_SIPHASH_H
#define SOL_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

#define SIPHASH_KEY_LEN 16

/* SipHash-2-4 of data[0..len) under key: the reference variant (test vectors). */
uint64_t siphash24(const uint8_t key[SIPHASH_KEY_LEN], const void *data, size_t len);

/* SipHash-1-3: fewer rounds, still keyed; what hash tables use (as redis, Rust). */
uint64_t siphash13(const uint8_t key[SIPHASH_KEY_LEN], const void *data, size_t len);

#endif /* SOL_SIPHASH_H */
