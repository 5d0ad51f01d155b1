/*
 * codec.h - internal to src/mqtt/: the bounds-checked reader and the writer
 * shared by decode.c, encode.c and props.c, and the MQTT 5 property block
 * functions they call. Not installed, not for other modules.
 *
 * Readers check the bytes left before every read and return MQTT_ERR_*;
 * writers write into a buffer whose size was computed and checked first.
 */
#ifndef SOL_MQTT_CODEC_H
#define SOL_MQTT_CODEC_H

#include <string.h>

#include "mqtt.h"

/* Length prefixes of strings and binary fields are 16 bits [MQTT-1.5.3]. */
#define MQTT_FIELD_MAX_LEN 65535u
/* Property kind for a will's properties (CONNECT payload); 0 is no packet type. */
#define MQTT_PROPS_WILL 0u

/* A cursor over the bytes of one packet body. */
struct reader {
    const uint8_t *pos;
    size_t left;
};

static inline int read_u8(struct reader *r, uint8_t *out)
{
    if (r->left < 1)
        return MQTT_ERR_TRUNCATED;
    *out = r->pos[0];
    r->pos++;
    r->left--;
    return MQTT_OK;
}

/* Two-byte integers are big-endian [MQTT-1.5.2]. */
static inline int read_u16(struct reader *r, uint16_t *out)
{
    if (r->left < 2)
        return MQTT_ERR_TRUNCATED;
    *out = (uint16_t)((r->pos[0] << 8) | r->pos[1]);
    r->pos += 2;
    r->left -= 2;
    return MQTT_OK;
}

/* Four-byte integers are big-endian [MQTT 5.0 1.5.3]. */
static inline int read_u32(struct reader *r, uint32_t *out)
{
    if (r->left < 4)
        return MQTT_ERR_TRUNCATED;
    *out = ((uint32_t)r->pos[0] << 24) | ((uint32_t)r->pos[1] << 16) | ((uint32_t)r->pos[2] << 8) |
           r->pos[3];
    r->pos += 4;
    r->left -= 4;
    return MQTT_OK;
}

/*
 * A Variable Byte Integer [MQTT 5.0 1.5.5]: at most 4 bytes, and in the
 * minimum number of bytes [MQTT-1.5.5-1] (a last byte of 0 after the first
 * is a longer form of a smaller value).
 */
static inline int read_vbi(struct reader *r, uint32_t *out)
{
    uint32_t v = 0;
    for (size_t i = 0; i < 4; i++) {
        uint8_t b = 0;
        int rc = read_u8(r, &b);
        if (rc != MQTT_OK)
            return rc;
        v |= (uint32_t)(b & 0x7fu) << (7u * i);
        if ((b & 0x80u) == 0) {
            if (i > 0 && b == 0)
                return MQTT_ERR_VARIABLE_INT;
            *out = v;
            return MQTT_OK;
        }
    }
    return MQTT_ERR_VARIABLE_INT;
}

/* A 2-byte length then that many bytes [MQTT-1.5.3]; binary-safe. */
static inline int read_bytes(struct reader *r, struct mqtt_bytes *out)
{
    uint16_t len = 0;
    int rc = read_u16(r, &len);
    if (rc != MQTT_OK)
        return rc;
    if (r->left < len)
        return MQTT_ERR_TRUNCATED;
    out->data = r->pos;
    out->len = len;
    r->pos += len;
    r->left -= len;
    return MQTT_OK;
}

/* n bytes as a view. */
static inline int read_view(struct reader *r, size_t n, struct mqtt_bytes *out)
{
    if (r->left < n)
        return MQTT_ERR_TRUNCATED;
    out->data = r->pos;
    out->len = n;
    r->pos += n;
    r->left -= n;
    return MQTT_OK;
}

/* A cursor over an output buffer whose size was checked up front. */
struct writer {
    uint8_t *pos;
};

static inline void put_u8(struct writer *w, uint8_t v)
{
    *w->pos++ = v;
}

static inline void put_u16(struct writer *w, uint16_t v)
{
    put_u8(w, (uint8_t)(v >> 8));
    put_u8(w, (uint8_t)(v & 0xffu));
}

static inline void put_u32(struct writer *w, uint32_t v)
{
    put_u16(w, (uint16_t)(v >> 16));
    put_u16(w, (uint16_t)(v & 0xffffu));
}

static inline void put_raw(struct writer *w, struct mqtt_bytes b)
{
    if (b.len > 0)
        memcpy(w->pos, b.data, b.len);
    w->pos += b.len;
}

static inline void put_field(struct writer *w, struct mqtt_bytes b)
{
    put_u16(w, (uint16_t)b.len);
    put_raw(w, b);
}

/* value <= MQTT_MAX_REMAINING_LENGTH, checked by the caller. */
static inline void put_vbi(struct writer *w, uint32_t value)
{
    w->pos += mqtt_encode_remaining_length(value, w->pos);
}

/* Bytes a Variable Byte Integer of `value` (<= MQTT_MAX_REMAINING_LENGTH) takes. */
static inline size_t vbi_size(size_t value)
{
    if (value < 128u)
        return 1;
    if (value < 16384u)
        return 2;
    if (value < 2097152u)
        return 3;
    return 4;
}

/*
 * Reads a property block (length prefix included) allowed on packet `kind`
 * (a packet type, or MQTT_PROPS_WILL) into *props, validating every property.
 * Returns MQTT_OK or a negative error (see mqtt.h).
 */
int mqtt_props_decode(struct reader *r, uint8_t kind, struct mqtt_properties *props);

/*
 * Size of the encoded block for *props on `kind`, length prefix included, in
 * *size. Returns MQTT_OK or MQTT_ERR_INVALID_ARGUMENT.
 */
int mqtt_props_size(const struct mqtt_properties *props, uint8_t kind, size_t *size);

/* Writes a block mqtt_props_size() accepted for the same kind. */
void mqtt_props_write(struct writer *w, const struct mqtt_properties *props, uint8_t kind);

#endif /* SOL_MQTT_CODEC_H */
