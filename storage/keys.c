/*
 * keys.c - key encoders and decoders, and the byte-order helpers the records
 * use. Keys put big-endian integers after "client 00" so a cursor walks a
 * client's records in numeric order and a prefix seek finds them.
 * Not for: record values (records.c) or LMDB calls.
 */
#include "store_internal.h"

#include <string.h>

void store_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

void store_put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

void store_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

uint16_t store_get_u16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

uint32_t store_get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v = (v << 8) | p[i];
    return v;
}

uint64_t store_get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* A 0x00 inside a key part would make "a 00 b" ambiguous and break prefix
 * scans; the codec already rejects U+0000 [MQTT-1.5.3-2], so this only
 * catches a caller bug. */
static bool has_nul(struct store_bytes s)
{
    return s.len > 0 && memchr(s.data, 0, s.len) != NULL;
}

int store_check_client_id(const struct store *store, struct store_bytes id)
{
    if (id.len == 0 || id.data == NULL || has_nul(id))
        return STORE_ERR_INVALID;
    if (id.len > store_max_client_id_len(store))
        return STORE_ERR_KEY_TOO_LONG;
    return 0;
}

int store_check_key_string(const struct store *store, struct store_bytes s, size_t prefix_len)
{
    if (s.len == 0 || s.data == NULL || has_nul(s))
        return STORE_ERR_INVALID;
    if (prefix_len + s.len > store->max_key_len)
        return STORE_ERR_KEY_TOO_LONG;
    return 0;
}

size_t store_key_client_prefix(uint8_t *out, struct store_bytes client)
{
    memcpy(out, client.data, client.len);
    out[client.len] = 0;
    return client.len + 1;
}

bool store_key_split(const MDB_val *key, struct store_bytes *client, struct store_bytes *rest)
{
    const uint8_t *p = key->mv_data;
    const uint8_t *sep = key->mv_size > 0 ? memchr(p, 0, key->mv_size) : NULL;
    if (sep == NULL || sep == p)
        return false;
    client->data = p;
    client->len = (size_t)(sep - p);
    rest->data = sep + 1;
    rest->len = key->mv_size - client->len - 1;
    return true;
}
