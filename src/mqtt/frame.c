/*
 * frame.c - locating packets in a byte stream: the fixed header and its
 * Remaining Length [MQTT-2.2], and the frame-then-decode convenience.
 *
 * Not for: the contents of a packet (decode.c) or writing packets (encode.c).
 */
#include "mqtt.h"

/* Bits 7-4 of byte 0; types 0 and 15 are reserved [MQTT-2.2.1], except that
 * MQTT 5 gave 15 to AUTH [MQTT 5.0 2.1.2]. */
static bool is_valid_type(uint8_t type, uint8_t protocol_level)
{
    if (type == MQTT_AUTH)
        return protocol_level == MQTT_PROTOCOL_V5;
    return type >= MQTT_CONNECT && type <= MQTT_DISCONNECT;
}

/*
 * Reads a Remaining Length from buf[0..len) [MQTT-2.2.3]: 7 bits per byte,
 * least significant group first, bit 7 set when another byte follows, at most
 * 4 bytes. Returns MQTT_OK with *value and *nbytes, MQTT_NEED_MORE when every
 * byte present has its continuation bit set, or MQTT_ERR_REMAINING_LENGTH as
 * soon as a 4th byte asks for a 5th. Non-minimal encodings (0x80 0x00) are
 * accepted: 3.1.1 does not forbid them.
 */
static int read_remaining_length(const uint8_t *buf, size_t len, uint32_t *value, size_t *nbytes)
{
    uint32_t v = 0;
    for (size_t i = 0; i < 4; i++) {
        if (i >= len)
            return MQTT_NEED_MORE;
        v |= (uint32_t)(buf[i] & 0x7fu) << (7u * i);
        if ((buf[i] & 0x80u) == 0) {
            *value = v;
            *nbytes = i + 1;
            return MQTT_OK;
        }
    }
    return MQTT_ERR_REMAINING_LENGTH;
}

int mqtt_frame(const uint8_t *buf, size_t len, size_t max_packet_size, struct mqtt_frame *frame)
{
    return mqtt_frame_for(buf, len, max_packet_size, MQTT_PROTOCOL_V311, frame);
}

int mqtt_frame_for(const uint8_t *buf, size_t len, size_t max_packet_size, uint8_t protocol_level,
                   struct mqtt_frame *frame)
{
    frame->total_len = 0; /* "not known yet" until the fixed header is complete */
    if (len == 0)
        return MQTT_NEED_MORE;
    uint8_t type = buf[0] >> 4;
    if (!is_valid_type(type, protocol_level))
        return MQTT_ERR_PACKET_TYPE;

    uint32_t remaining = 0;
    size_t rl_bytes = 0;
    int rc = read_remaining_length(buf + 1, len - 1, &remaining, &rl_bytes);
    if (rc != MQTT_OK)
        return rc;

    /* Known before the body arrives, so callers can refuse before buffering it. */
    size_t total = 1 + rl_bytes + (size_t)remaining;
    if (max_packet_size != 0 && total > max_packet_size)
        return MQTT_ERR_TOO_LARGE;
    if (len < total) {
        frame->total_len = total; /* lets a caller size its buffer once */
        return MQTT_NEED_MORE;
    }

    frame->type = type;
    frame->flags = buf[0] & 0x0fu;
    frame->body = buf + 1 + rl_bytes;
    frame->body_len = remaining;
    frame->total_len = total;
    return MQTT_OK;
}

size_t mqtt_encode_remaining_length(uint32_t value, uint8_t *buf)
{
    if (value > MQTT_MAX_REMAINING_LENGTH)
        return 0;
    size_t n = 0;
    do {
        uint8_t byte = value & 0x7fu;
        value >>= 7;
        if (value > 0)
            byte |= 0x80u;
        buf[n++] = byte;
    } while (value > 0);
    return n;
}

int mqtt_decode_stream(const uint8_t *buf, size_t len, size_t max_packet_size,
                       struct mqtt_packet *pkt, size_t *consumed)
{
    return mqtt_decode_stream_for(buf, len, max_packet_size, MQTT_PROTOCOL_V311, pkt, consumed);
}

int mqtt_decode_stream_for(const uint8_t *buf, size_t len, size_t max_packet_size,
                           uint8_t protocol_level, struct mqtt_packet *pkt, size_t *consumed)
{
    struct mqtt_frame frame;
    *consumed = 0;
    int rc = mqtt_frame_for(buf, len, max_packet_size, protocol_level, &frame);
    if (rc != MQTT_OK)
        return rc;
    rc = mqtt_decode_for(&frame, protocol_level, pkt);
    if (rc != MQTT_OK)
        return rc;
    *consumed = frame.total_len;
    return MQTT_OK;
}
