/*
 * mqtt.h - the MQTT 3.1.1 (and 3.1) codec: framing, decoding, encoding.
 *
 * Pure functions over byte buffers. No I/O, no clock, no globals, no static
 * buffers; every function is reentrant. Decoded packets hold *views*
 * (pointer + length) into the caller's buffer and allocate nothing.
 * Not for: sessions, sockets, storage. Topic and UTF-8 rules live in
 * mqtt_topic.h.
 *
 * Fixed header (every packet):
 *   byte 0     : type (bits 7-4) | flags (bits 3-0)
 *   byte 1..4  : Remaining Length, 7 bits per byte, bit 7 = "more bytes"
 *   then       : variable header + payload, exactly Remaining Length bytes
 */
#ifndef SOL_MQTT_H
#define SOL_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest value a 4-byte Remaining Length can carry [MQTT-2.2.3]. */
#define MQTT_MAX_REMAINING_LENGTH 268435455u
/* Largest fixed header: 1 type byte + 4 length bytes. */
#define MQTT_MAX_FIXED_HEADER 5u

/* The largest CONNECT an MQTT 3.1 or 3.1.1 client can send: the fixed header
 * (1 byte + a 3-byte Remaining Length), MQTT 3.1's longer variable header
 * ("MQIsdp": 2 + 6 + level + flags + keepalive = 12 bytes) and the five
 * payload fields (client id, will topic, will message, username, password),
 * each at most 2 + 65535 bytes. Until a CONNECT is accepted no packet may be
 * larger, so an unauthenticated socket cannot make the broker buffer more.
 * (MQTT 5 adds properties to CONNECT and its will; its bound comes with it.) */
#define MQTT_CONNECT_MAX_PACKET_SIZE (1u + 3u + 12u + 5u * (2u + 65535u))
/* The first byte of every CONNECT: type 1, reserved flags 0 [MQTT-2.2.2-2]. */
#define MQTT_CONNECT_FIRST_BYTE 0x10u

enum mqtt_packet_type {
    MQTT_CONNECT = 1,
    MQTT_CONNACK = 2,
    MQTT_PUBLISH = 3,
    MQTT_PUBACK = 4,
    MQTT_PUBREC = 5,
    MQTT_PUBREL = 6,
    MQTT_PUBCOMP = 7,
    MQTT_SUBSCRIBE = 8,
    MQTT_SUBACK = 9,
    MQTT_UNSUBSCRIBE = 10,
    MQTT_UNSUBACK = 11,
    MQTT_PINGREQ = 12,
    MQTT_PINGRESP = 13,
    MQTT_DISCONNECT = 14,
};

/* Protocol levels accepted in CONNECT. */
enum mqtt_protocol_level {
    MQTT_PROTOCOL_V31 = 3,  /* "MQIsdp" */
    MQTT_PROTOCOL_V311 = 4, /* "MQTT" */
};

/* CONNACK return codes [MQTT-3.2.2.3]. */
enum mqtt_connack_code {
    MQTT_CONNACK_ACCEPTED = 0,
    MQTT_CONNACK_BAD_PROTOCOL = 1,
    MQTT_CONNACK_ID_REJECTED = 2,
    MQTT_CONNACK_UNAVAILABLE = 3,
    MQTT_CONNACK_BAD_CREDENTIALS = 4,
    MQTT_CONNACK_NOT_AUTHORIZED = 5,
};

#define MQTT_SUBACK_FAILURE 0x80

/*
 * Result codes. MQTT_OK and MQTT_NEED_MORE are not errors; every other code is
 * negative and names one rule of the spec (see mqtt_strerror()).
 */
enum mqtt_result {
    MQTT_OK = 0,
    MQTT_NEED_MORE = 1, /* the buffer holds only part of a packet */

    MQTT_ERR_REMAINING_LENGTH = -1,  /* 5th continuation byte [MQTT-2.2.3] */
    MQTT_ERR_TOO_LARGE = -2,         /* packet exceeds the configured maximum */
    MQTT_ERR_PACKET_TYPE = -3,       /* reserved type 0 or 15 */
    MQTT_ERR_HEADER_FLAGS = -4,      /* fixed-header flag bits wrong for type [MQTT-2.2.2-2] */
    MQTT_ERR_QOS = -5,               /* QoS 3 [MQTT-3.3.1-4] */
    MQTT_ERR_PROTOCOL_NAME = -6,     /* not "MQTT" / "MQIsdp" [MQTT-3.1.2-1] */
    MQTT_ERR_PROTOCOL_LEVEL = -7,    /* level not 4 (MQTT) or 3 (MQIsdp) [MQTT-3.1.2-2] */
    MQTT_ERR_CONNECT_RESERVED = -8,  /* reserved connect flag set [MQTT-3.1.2-3] */
    MQTT_ERR_WILL_FLAGS = -9,        /* will QoS/retain without will flag [MQTT-3.1.2-11..15] */
    MQTT_ERR_PASSWORD_NO_USER = -10, /* password flag without username flag [MQTT-3.1.2-22] */
    MQTT_ERR_UTF8 = -11,             /* ill-formed UTF-8, U+0000, surrogates [MQTT-1.5.3] */
    MQTT_ERR_TOPIC_NAME = -12,       /* empty or has wildcards [MQTT-3.3.2-2] */
    MQTT_ERR_TOPIC_FILTER = -13,     /* bad + or # placement [MQTT-4.7.1] */
    MQTT_ERR_EMPTY_PAYLOAD = -14,    /* no filter [MQTT-3.8.3-3], or SUBACK with no code */
    MQTT_ERR_PACKET_ID = -15,        /* packet identifier 0 [MQTT-2.3.1-1] */
    MQTT_ERR_TRAILING = -16,         /* bytes left over inside the packet */
    MQTT_ERR_TRUNCATED = -17,        /* a field runs past the end of the packet */
    MQTT_ERR_SUBSCRIBE_QOS = -18,    /* requested QoS byte not 0..2 [MQTT-3.8.3-4] */
    MQTT_ERR_CONNACK_FLAGS = -19,    /* reserved CONNACK flags set [MQTT-3.2.2-1] */
    MQTT_ERR_SUBACK_CODE = -20,      /* SUBACK code not 0,1,2,0x80 [MQTT-3.9.3-2] */
    MQTT_ERR_BUFFER_TOO_SMALL = -21, /* encode: output buffer too small */
    MQTT_ERR_INVALID_ARGUMENT = -22, /* encode: packet fields out of range */
};

/* Human-readable text for a result code; never NULL. */
const char *mqtt_strerror(int code);

/* A view into someone else's bytes; binary-safe, not NUL-terminated. */
struct mqtt_bytes {
    const uint8_t *data;
    size_t len;
};

/* One complete packet located in a buffer by mqtt_frame(). */
struct mqtt_frame {
    uint8_t type;        /* 0..15, as on the wire */
    uint8_t flags;       /* low nibble of byte 0 */
    const uint8_t *body; /* variable header + payload */
    size_t body_len;     /* == Remaining Length */
    size_t total_len;    /* fixed header + body: bytes to consume */
};

/*
 * Locates the first packet in buf[0..len).
 * Returns MQTT_OK with *frame filled (frame->total_len bytes form the packet),
 * MQTT_NEED_MORE if buf holds a prefix of a valid packet, or a negative error:
 * MQTT_ERR_REMAINING_LENGTH, MQTT_ERR_PACKET_TYPE, MQTT_ERR_TOO_LARGE when the
 * whole packet would exceed max_packet_size bytes (checked as soon as the
 * Remaining Length is known, before the body arrives: callers may use it
 * before allocating). max_packet_size 0 means the protocol maximum.
 * Never reads past buf[len-1]. On MQTT_NEED_MORE, frame->total_len is the
 * whole packet's size once the fixed header is complete (so a caller can
 * allocate the packet's buffer once), else 0; other fields are unset.
 */
int mqtt_frame(const uint8_t *buf, size_t len, size_t max_packet_size, struct mqtt_frame *frame);

/*
 * CONNECT
 *   protocol name (string) | level (1) | flags (1) | keepalive (2)
 *   payload: client id | [will topic | will message] | [username] | [password]
 * Strings are 2-byte big-endian length + bytes.
 */
struct mqtt_connect {
    struct mqtt_bytes protocol_name; /* "MQTT" or "MQIsdp" */
    uint8_t protocol_level;          /* 4 or 3 */
    bool clean_session;
    bool has_will;
    uint8_t will_qos;
    bool will_retain;
    bool has_username;
    bool has_password;
    uint16_t keepalive_s;
    struct mqtt_bytes client_id;
    struct mqtt_bytes will_topic;
    struct mqtt_bytes will_payload; /* binary */
    struct mqtt_bytes username;
    struct mqtt_bytes password; /* binary */
};

/* CONNACK: flags (bit 0 = session present) | return code */
struct mqtt_connack {
    bool session_present;
    uint8_t return_code;
};

/*
 * PUBLISH: fixed-header flags = DUP(3) QoS(2-1) RETAIN(0)
 *   topic name (string) | packet id (2, only when QoS > 0) | payload (rest)
 */
struct mqtt_publish {
    bool dup;
    uint8_t qos;
    bool retain;
    struct mqtt_bytes topic;
    uint16_t packet_id; /* 0 when qos == 0 */
    struct mqtt_bytes payload;
};

/* PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK: packet id (2) */
struct mqtt_ack {
    uint16_t packet_id;
};

/* One entry of a SUBSCRIBE (filter + requested QoS) or UNSUBSCRIBE (filter). */
struct mqtt_topic_entry {
    struct mqtt_bytes filter;
    uint8_t qos; /* SUBSCRIBE only */
};

/*
 * SUBSCRIBE:   packet id (2) | { filter (string) | requested QoS (1) }+
 * UNSUBSCRIBE: packet id (2) | { filter (string) }+
 *
 * Decoding fills `raw` (the entries as on the wire) and `count`, and leaves
 * `entries` NULL; walk them with mqtt_topic_iter. Encoding uses `entries` when
 * it is not NULL, otherwise copies `raw`, so decode-then-encode round-trips.
 *
 * The decoder checks each filter's length and UTF-8 but not its wildcard
 * placement: a filter like "a/b#" is well-formed on the wire, and the broker
 * answers it with SUBACK 0x80 rather than closing the connection. Call
 * mqtt_topic_filter_check() on each entry.
 */
struct mqtt_subscribe {
    uint16_t packet_id;
    size_t count;
    const struct mqtt_topic_entry *entries;
    struct mqtt_bytes raw;
};

/* SUBACK: packet id (2) | return code (1) per requested filter */
struct mqtt_suback {
    uint16_t packet_id;
    struct mqtt_bytes return_codes; /* may contain zero bytes */
};

/* A decoded (or to-be-encoded) packet. Types without a body use no union member. */
struct mqtt_packet {
    uint8_t type; /* enum mqtt_packet_type */
    union {
        struct mqtt_connect connect;
        struct mqtt_connack connack;
        struct mqtt_publish publish;
        struct mqtt_ack ack;             /* PUBACK PUBREC PUBREL PUBCOMP UNSUBACK */
        struct mqtt_subscribe subscribe; /* SUBSCRIBE and UNSUBSCRIBE */
        struct mqtt_suback suback;
    } u;
};

/*
 * Decodes one complete frame (from mqtt_frame()) and validates it against the
 * spec's normative rules. On MQTT_OK the views in *pkt point into frame->body,
 * which the caller keeps alive and unchanged while it uses *pkt.
 * Returns MQTT_OK or a negative error. Allocates nothing.
 */
int mqtt_decode(const struct mqtt_frame *frame, struct mqtt_packet *pkt);

/*
 * As mqtt_decode(), for a connection that negotiated protocol_level in its
 * CONNECT (mqtt_decode() assumes 4, MQTT 3.1.1). With MQTT_PROTOCOL_V31 a
 * PUBREL, SUBSCRIBE or UNSUBSCRIBE may also carry flags 1010 (DUP set on a
 * resend, which MQTT 3.1 allowed); the packet decodes as with 0010.
 */
int mqtt_decode_for(const struct mqtt_frame *frame, uint8_t protocol_level,
                    struct mqtt_packet *pkt);

/*
 * Frames and decodes the first packet of buf[0..len): mqtt_frame() then
 * mqtt_decode(). On MQTT_OK, *consumed is the packet's size in bytes.
 */
int mqtt_decode_stream(const uint8_t *buf, size_t len, size_t max_packet_size,
                       struct mqtt_packet *pkt, size_t *consumed);

/* Iterates the entries of a decoded SUBSCRIBE or UNSUBSCRIBE. */
struct mqtt_topic_iter {
    const uint8_t *pos;
    const uint8_t *end;
    bool has_qos;
};
void mqtt_topic_iter_init(struct mqtt_topic_iter *it, const struct mqtt_packet *pkt);
/* Returns true and fills *entry, or false when no entries are left. */
bool mqtt_topic_iter_next(struct mqtt_topic_iter *it, struct mqtt_topic_entry *entry);

/*
 * Bytes needed to encode *pkt (fixed header included), or 0 if *pkt cannot be
 * encoded (a field out of range, a body above MQTT_MAX_REMAINING_LENGTH).
 */
size_t mqtt_encoded_size(const struct mqtt_packet *pkt);

/*
 * Encodes *pkt into buf[0..cap). On MQTT_OK *written holds the byte count.
 * Returns MQTT_ERR_BUFFER_TOO_SMALL or MQTT_ERR_INVALID_ARGUMENT (e.g. QoS 3,
 * DUP at QoS 0, packet id 0 where one is required, a string longer than 65535
 * bytes, an empty SUBSCRIBE/UNSUBSCRIBE/SUBACK, a SUBACK code not 0,1,2,0x80) and
 * writes nothing meaningful then. The encoder does not re-validate topic or
 * UTF-8 rules: that is the caller's job, as it is the decoder's on input.
 */
int mqtt_encode(const struct mqtt_packet *pkt, uint8_t *buf, size_t cap, size_t *written);

/*
 * Encodes the PUBLISH fixed header, topic and packet id but not the payload,
 * so a payload can be shared among subscribers and sent with writev.
 * buf needs at most MQTT_MAX_FIXED_HEADER + 2 + topic.len + 2 bytes.
 * Returns MQTT_OK with *written set, or an error as mqtt_encode().
 */
int mqtt_encode_publish_header(const struct mqtt_publish *pub, uint8_t *buf, size_t cap,
                               size_t *written);

/* Writes a Remaining Length (0..MQTT_MAX_REMAINING_LENGTH) into buf (>= 4 bytes).
 * Returns the number of bytes written (1..4), or 0 if value is out of range. */
size_t mqtt_encode_remaining_length(uint32_t value, uint8_t *buf);

/* Name of a packet type ("PUBLISH"), or "UNKNOWN". */
const char *mqtt_packet_name(uint8_t type);

#endif /* SOL_MQTT_H */
