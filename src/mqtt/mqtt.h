/*
 * mqtt.h - the MQTT codec (5.0, 3.1.1 and 3.1): framing, decoding, encoding.
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
 * larger, so an unauthenticated socket cannot make the broker buffer more. */
#define MQTT_CONNECT_MAX_PACKET_SIZE (1u + 3u + 12u + 5u * (2u + 65535u))
/* MQTT 5 adds two property blocks to CONNECT (the CONNECT's and the will's),
 * whose length the protocol bounds only by the Remaining Length. Before
 * CONNECT we allow them 64 KiB together, length prefixes included: far more
 * than real clients send (a few user properties, an authentication method and
 * its data), still small per unauthenticated socket. A v5 CONNECT larger than
 * MQTT_CONNECT_MAX_PACKET_SIZE_V5 is refused as too large. A server that
 * accepts v5 uses this (the larger) bound until the CONNECT is handled. */
#define MQTT_V5_CONNECT_PROPERTIES_ALLOWANCE 65536u
#define MQTT_CONNECT_MAX_PACKET_SIZE_V5                                                            \
    (MQTT_CONNECT_MAX_PACKET_SIZE + MQTT_V5_CONNECT_PROPERTIES_ALLOWANCE)
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
    MQTT_AUTH = 15, /* MQTT 5 only; reserved in 3.1.1 */
};

/* Protocol levels accepted in CONNECT. */
enum mqtt_protocol_level {
    MQTT_PROTOCOL_V31 = 3,  /* "MQIsdp" */
    MQTT_PROTOCOL_V311 = 4, /* "MQTT" */
    MQTT_PROTOCOL_V5 = 5,   /* "MQTT" */
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
 * MQTT 5 reason codes [MQTT 5.0 2.4], named as in the spec's table. One value
 * may have several names (0x00 is Success, Normal disconnection and Granted
 * QoS 0); mqtt_reason_valid() says which packet may carry which.
 */
enum mqtt_reason_code {
    MQTT_RC_SUCCESS = 0x00,
    MQTT_RC_NORMAL_DISCONNECTION = 0x00,
    MQTT_RC_GRANTED_QOS_0 = 0x00,
    MQTT_RC_GRANTED_QOS_1 = 0x01,
    MQTT_RC_GRANTED_QOS_2 = 0x02,
    MQTT_RC_DISCONNECT_WITH_WILL_MESSAGE = 0x04,
    MQTT_RC_NO_MATCHING_SUBSCRIBERS = 0x10,
    MQTT_RC_NO_SUBSCRIPTION_EXISTED = 0x11,
    MQTT_RC_CONTINUE_AUTHENTICATION = 0x18,
    MQTT_RC_RE_AUTHENTICATE = 0x19,
    MQTT_RC_UNSPECIFIED_ERROR = 0x80,
    MQTT_RC_MALFORMED_PACKET = 0x81,
    MQTT_RC_PROTOCOL_ERROR = 0x82,
    MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR = 0x83,
    MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION = 0x84,
    MQTT_RC_CLIENT_IDENTIFIER_NOT_VALID = 0x85,
    MQTT_RC_BAD_USER_NAME_OR_PASSWORD = 0x86,
    MQTT_RC_NOT_AUTHORIZED = 0x87,
    MQTT_RC_SERVER_UNAVAILABLE = 0x88,
    MQTT_RC_SERVER_BUSY = 0x89,
    MQTT_RC_BANNED = 0x8A,
    MQTT_RC_SERVER_SHUTTING_DOWN = 0x8B,
    MQTT_RC_BAD_AUTHENTICATION_METHOD = 0x8C,
    MQTT_RC_KEEP_ALIVE_TIMEOUT = 0x8D,
    MQTT_RC_SESSION_TAKEN_OVER = 0x8E,
    MQTT_RC_TOPIC_FILTER_INVALID = 0x8F,
    MQTT_RC_TOPIC_NAME_INVALID = 0x90,
    MQTT_RC_PACKET_IDENTIFIER_IN_USE = 0x91,
    MQTT_RC_PACKET_IDENTIFIER_NOT_FOUND = 0x92,
    MQTT_RC_RECEIVE_MAXIMUM_EXCEEDED = 0x93,
    MQTT_RC_TOPIC_ALIAS_INVALID = 0x94,
    MQTT_RC_PACKET_TOO_LARGE = 0x95,
    MQTT_RC_MESSAGE_RATE_TOO_HIGH = 0x96,
    MQTT_RC_QUOTA_EXCEEDED = 0x97,
    MQTT_RC_ADMINISTRATIVE_ACTION = 0x98,
    MQTT_RC_PAYLOAD_FORMAT_INVALID = 0x99,
    MQTT_RC_RETAIN_NOT_SUPPORTED = 0x9A,
    MQTT_RC_QOS_NOT_SUPPORTED = 0x9B,
    MQTT_RC_USE_ANOTHER_SERVER = 0x9C,
    MQTT_RC_SERVER_MOVED = 0x9D,
    MQTT_RC_SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E,
    MQTT_RC_CONNECTION_RATE_EXCEEDED = 0x9F,
    MQTT_RC_MAXIMUM_CONNECT_TIME = 0xA0,
    MQTT_RC_SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1,
    MQTT_RC_WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2,
};

/* True if an MQTT 5 packet of this type may carry this reason code
 * [MQTT 5.0 2.4]: CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK,
 * DISCONNECT and AUTH; false for any other type. */
bool mqtt_reason_valid(uint8_t packet_type, uint8_t code);

/* The spec's name of a reason code as carried by this packet type ("Granted
 * QoS 0" in a SUBACK, "Normal disconnection" in a DISCONNECT, "Success"
 * elsewhere), for log lines; "Unknown reason code" if none. Never NULL. */
const char *mqtt_reason_name(uint8_t packet_type, uint8_t code);

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
    /* MQTT 5 only. mqtt_reason_for_error() gives the reason code to send. */
    MQTT_ERR_PROPERTY = -23,          /* property unknown or not allowed on the packet [2.2.2.2] */
    MQTT_ERR_PROPERTY_REPEATED = -24, /* a property that may appear once appears twice */
    MQTT_ERR_PROPERTY_VALUE = -25,    /* property value not allowed (0, not 0/1, ...) */
    MQTT_ERR_VARIABLE_INT = -26, /* Variable Byte Integer too long or not minimal [MQTT-1.5.5-1] */
    MQTT_ERR_REASON_CODE = -27,  /* reason code not defined for the packet */
    MQTT_ERR_TOPIC_ALIAS = -28,  /* Topic Alias 0 [MQTT-3.3.2-8] */
    MQTT_ERR_SUBSCRIBE_OPTIONS = -29, /* reserved subscription option bits set [MQTT-3.8.3-5] */
    MQTT_ERR_RETAIN_HANDLING = -30,   /* Retain Handling 3 [3.8.3.1] */
};

/* Human-readable text for a result code; never NULL. */
const char *mqtt_strerror(int code);

/*
 * The MQTT 5 reason code a receiver sends (CONNACK before a CONNECT is
 * accepted, DISCONNECT after) for a negative result of mqtt_frame() or
 * mqtt_decode_for() [MQTT 5.0 4.13]: 0x81 Malformed Packet for what cannot be
 * parsed (truncated fields, bad UTF-8, reserved bits, a property not allowed
 * on the packet), 0x82 Protocol Error for data the protocol forbids (a
 * property twice, a value out of range, packet id 0, an unknown reason code),
 * 0x84 for an unsupported protocol name or level, 0x94 for Topic Alias 0,
 * 0x95 for a packet above the maximum size, 0x80 for anything else.
 */
uint8_t mqtt_reason_for_error(int code);

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
/* As mqtt_frame(); with MQTT_PROTOCOL_V5 type 15 (AUTH) is a packet, not reserved. */
int mqtt_frame_for(const uint8_t *buf, size_t len, size_t max_packet_size, uint8_t protocol_level,
                   struct mqtt_frame *frame);

/*
 * MQTT 5 property identifiers [MQTT 5.0 2.2.2.2], with their wire type and
 * where they may appear (W = will properties inside CONNECT):
 */
enum mqtt_property_id {
    MQTT_PROP_PAYLOAD_FORMAT_INDICATOR = 0x01,     /* byte 0/1; PUBLISH, W */
    MQTT_PROP_MESSAGE_EXPIRY_INTERVAL = 0x02,      /* 4-byte; PUBLISH, W */
    MQTT_PROP_CONTENT_TYPE = 0x03,                 /* UTF-8; PUBLISH, W */
    MQTT_PROP_RESPONSE_TOPIC = 0x08,               /* UTF-8 topic name; PUBLISH, W */
    MQTT_PROP_CORRELATION_DATA = 0x09,             /* binary; PUBLISH, W */
    MQTT_PROP_SUBSCRIPTION_IDENTIFIER = 0x0B,      /* VBI 1..268435455; PUBLISH (many), SUBSCRIBE */
    MQTT_PROP_SESSION_EXPIRY_INTERVAL = 0x11,      /* 4-byte; CONNECT, CONNACK, DISCONNECT */
    MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER = 0x12,   /* UTF-8; CONNACK */
    MQTT_PROP_SERVER_KEEP_ALIVE = 0x13,            /* 2-byte; CONNACK */
    MQTT_PROP_AUTHENTICATION_METHOD = 0x15,        /* UTF-8; CONNECT, CONNACK, AUTH */
    MQTT_PROP_AUTHENTICATION_DATA = 0x16,          /* binary; CONNECT, CONNACK, AUTH */
    MQTT_PROP_REQUEST_PROBLEM_INFORMATION = 0x17,  /* byte 0/1; CONNECT */
    MQTT_PROP_WILL_DELAY_INTERVAL = 0x18,          /* 4-byte; W */
    MQTT_PROP_REQUEST_RESPONSE_INFORMATION = 0x19, /* byte 0/1; CONNECT */
    MQTT_PROP_RESPONSE_INFORMATION = 0x1A,         /* UTF-8; CONNACK */
    MQTT_PROP_SERVER_REFERENCE = 0x1C,             /* UTF-8; CONNACK, DISCONNECT */
    MQTT_PROP_REASON_STRING = 0x1F,                /* UTF-8; every ack, DISCONNECT, AUTH */
    MQTT_PROP_RECEIVE_MAXIMUM = 0x21,              /* 2-byte, not 0; CONNECT, CONNACK */
    MQTT_PROP_TOPIC_ALIAS_MAXIMUM = 0x22,          /* 2-byte; CONNECT, CONNACK */
    MQTT_PROP_TOPIC_ALIAS = 0x23,                  /* 2-byte, not 0; PUBLISH */
    MQTT_PROP_MAXIMUM_QOS = 0x24,                  /* byte 0/1; CONNACK */
    MQTT_PROP_RETAIN_AVAILABLE = 0x25,             /* byte 0/1; CONNACK */
    MQTT_PROP_USER_PROPERTY = 0x26,                /* string pair; everywhere but PING*, many */
    MQTT_PROP_MAXIMUM_PACKET_SIZE = 0x27,          /* 4-byte, not 0; CONNECT, CONNACK */
    MQTT_PROP_WILDCARD_SUBSCRIPTION_AVAILABLE = 0x28,   /* byte 0/1; CONNACK */
    MQTT_PROP_SUBSCRIPTION_IDENTIFIER_AVAILABLE = 0x29, /* byte 0/1; CONNACK */
    MQTT_PROP_SHARED_SUBSCRIPTION_AVAILABLE = 0x2A,     /* byte 0/1; CONNACK */
};

/* The bit of a property in mqtt_properties.present. */
#define MQTT_PROP_BIT(id) ((uint64_t)1 << (id))

/* A User Property: a UTF-8 string pair; names may repeat [3.1.2.11.8]. */
struct mqtt_user_property {
    struct mqtt_bytes name;
    struct mqtt_bytes value;
};

/*
 * The properties of an MQTT 5 packet (or of a will):
 *   property length (Variable Byte Integer) | { identifier (VBI) | value }*
 *
 * Decoding sets `raw` to the block (without its length prefix, a view into
 * the frame), sets the bit of every property seen in `present`, and fills the
 * field of each single-valued property. User Properties (in wire order,
 * duplicates kept) and Subscription Identifiers (several in a PUBLISH) are
 * counted; walk them in `raw` with mqtt_property_iter. subscription_identifier
 * holds the first one. The pointers user_properties and subscription_ids stay
 * NULL.
 *
 * Encoding writes `raw` verbatim when raw.len > 0 (so decode-then-encode
 * round-trips byte for byte) and ignores every other field. Otherwise it
 * writes, in this order: each single-valued property whose bit is in
 * `present`, by identifier; the subscription_id_count values of
 * subscription_ids (or, when that is NULL, subscription_identifier if its bit
 * is present); the user_property_count pairs of user_properties; then `extra`,
 * already-encoded properties copied verbatim (e.g. a stored message's
 * forwarded properties, see mqtt_properties_copy()). To change a decoded
 * packet's properties, clear raw and set the fields. The encoder checks that
 * each property may appear on the packet and the ranges it can; it does not
 * check strings' UTF-8 or the content of raw and extra (the caller's job).
 */
struct mqtt_properties {
    struct mqtt_bytes raw;
    uint64_t present; /* MQTT_PROP_BIT(id) of each property given */

    uint8_t payload_format_indicator;
    uint8_t request_problem_information;
    uint8_t request_response_information;
    uint8_t maximum_qos;
    uint8_t retain_available;
    uint8_t wildcard_subscription_available;
    uint8_t subscription_identifier_available;
    uint8_t shared_subscription_available;
    uint16_t server_keep_alive_s;
    uint16_t receive_maximum;
    uint16_t topic_alias_maximum;
    uint16_t topic_alias;
    uint32_t message_expiry_interval_s;
    uint32_t session_expiry_interval_s;
    uint32_t will_delay_interval_s;
    uint32_t maximum_packet_size;
    uint32_t subscription_identifier;
    struct mqtt_bytes content_type;
    struct mqtt_bytes response_topic;
    struct mqtt_bytes correlation_data; /* binary */
    struct mqtt_bytes assigned_client_identifier;
    struct mqtt_bytes authentication_method;
    struct mqtt_bytes authentication_data; /* binary */
    struct mqtt_bytes response_information;
    struct mqtt_bytes server_reference;
    struct mqtt_bytes reason_string;

    size_t user_property_count;
    const struct mqtt_user_property *user_properties; /* encode only */
    size_t subscription_id_count;
    const uint32_t *subscription_ids; /* encode only */
    struct mqtt_bytes extra;          /* encode only */
};

/* True if the property was decoded (or is to be encoded). */
bool mqtt_properties_has(const struct mqtt_properties *props, uint8_t id);

/* One property of a block, as mqtt_property_iter_next() yields it. */
struct mqtt_property {
    uint8_t id;
    uint32_t value;          /* byte, two-byte, four-byte and VBI properties */
    struct mqtt_bytes data;  /* UTF-8 string or binary; a pair's name */
    struct mqtt_bytes data2; /* a pair's value */
    struct mqtt_bytes wire;  /* the whole property as encoded, identifier included */
};

/*
 * Walks the properties of a block in wire order: init with a decoded
 * (validated) props->raw, or with any block (mqtt_property_iter_init_raw);
 * next() returns false at the end or at the first property it cannot read
 * (it never reads outside the block).
 */
struct mqtt_property_iter {
    const uint8_t *pos;
    const uint8_t *end;
};
void mqtt_property_iter_init(struct mqtt_property_iter *it, const struct mqtt_properties *props);
void mqtt_property_iter_init_raw(struct mqtt_property_iter *it, struct mqtt_bytes block);
bool mqtt_property_iter_next(struct mqtt_property_iter *it, struct mqtt_property *prop);
/* The next User Property / Subscription Identifier, skipping other properties. */
bool mqtt_property_iter_next_user(struct mqtt_property_iter *it, struct mqtt_user_property *up);
bool mqtt_property_iter_next_subscription_id(struct mqtt_property_iter *it, uint32_t *id);

/*
 * Copies the properties of block whose bit is not in drop_mask into
 * buf[0..cap), as a block without length prefix, for use as
 * mqtt_properties.extra. E.g. a broker keeps a PUBLISH's properties without
 * Topic Alias, Subscription Identifier and Message Expiry Interval, and adds
 * per subscriber its own. cap >= block.len always suffices. Returns MQTT_OK
 * with *written, MQTT_ERR_BUFFER_TOO_SMALL, or MQTT_ERR_TRUNCATED if block
 * cannot be read.
 */
int mqtt_properties_copy(struct mqtt_bytes block, uint64_t drop_mask, uint8_t *buf, size_t cap,
                         size_t *written);

/*
 * CONNECT
 *   protocol name (string) | level (1) | flags (1) | keepalive (2)
 *   [v5: properties]
 *   payload: client id | [v5: will properties | will topic | will message]
 *            | [username] | [password]
 * (MQTT 5 allows a password without a username [3.1.2.9].)
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
    struct mqtt_bytes password;        /* binary */
    struct mqtt_properties props;      /* v5 */
    struct mqtt_properties will_props; /* v5, when has_will */
};

/* CONNACK: flags (bit 0 = session present) | return code | [v5: properties] */
struct mqtt_connack {
    bool session_present;
    uint8_t return_code; /* v5: a reason code; session_present only with 0 [MQTT-3.2.2-6] */
    struct mqtt_properties props;
};

/*
 * PUBLISH: fixed-header flags = DUP(3) QoS(2-1) RETAIN(0)
 *   topic name (string) | packet id (2, only when QoS > 0) | [v5: properties]
 *   | payload (rest)
 * v5: the topic may be empty when a Topic Alias is present [MQTT-3.3.2-12].
 * The codec does not know the direction: the broker refuses a Subscription
 * Identifier in a PUBLISH from a client [MQTT-3.3.4-6] and checks the Topic
 * Alias against its maximum, and Payload Format Indicator 1 against the
 * payload if it wants to (mqtt_utf8_check, reason 0x99).
 */
struct mqtt_publish {
    bool dup;
    uint8_t qos;
    bool retain;
    struct mqtt_bytes topic;
    uint16_t packet_id; /* 0 when qos == 0 */
    struct mqtt_bytes payload;
    struct mqtt_properties props;
};

/*
 * PUBACK, PUBREC, PUBREL, PUBCOMP: packet id (2)
 *   v5: | [reason code (1) | [properties]]: a Remaining Length of 2 means
 *   reason 0x00 and no properties, 3 means no properties [3.4.2.1]; the
 *   encoder writes the shortest form.
 * UNSUBACK: packet id (2)
 *   v5: | properties | reason code (1) per filter (reason_codes)
 */
struct mqtt_ack {
    uint16_t packet_id;
    uint8_t reason_code; /* v5, not UNSUBACK */
    struct mqtt_properties props;
    struct mqtt_bytes reason_codes; /* v5 UNSUBACK only */
};

/* One entry of a SUBSCRIBE (filter + requested QoS) or UNSUBSCRIBE (filter). */
struct mqtt_topic_entry {
    struct mqtt_bytes filter;
    uint8_t qos; /* SUBSCRIBE only */
};

/*
 * The rest of an MQTT 5 SUBSCRIBE entry's options byte [3.8.3.1]:
 *   reserved (7-6) | retain handling (5-4) | retain as published (3)
 *   | no local (2) | QoS (1-0, in mqtt_topic_entry.qos)
 * Kept apart from struct mqtt_topic_entry so that 3.1.1 code initializing
 * entries positionally stays valid.
 */
struct mqtt_subscription_options {
    bool no_local;
    bool retain_as_published;
    uint8_t retain_handling; /* 0..2 */
};

/*
 * SUBSCRIBE:   packet id (2) | [v5: properties] | { filter (string) | requested QoS (1) }+
 * UNSUBSCRIBE: packet id (2) | [v5: properties] | { filter (string) }+
 * (v5: the QoS byte is the subscription options byte.)
 *
 * Decoding fills `raw` (the entries as on the wire) and `count`, and leaves
 * `entries` NULL; walk them with mqtt_topic_iter. Encoding uses `entries` when
 * it is not NULL, otherwise copies `raw`, so decode-then-encode round-trips.
 *
 * The decoder checks each filter's length and UTF-8 but not its wildcard
 * placement: a filter like "a/b#" is well-formed on the wire, and the broker
 * answers it with SUBACK 0x80 rather than closing the connection. Call
 * mqtt_topic_filter_check() on each entry. (v5: the broker also refuses No
 * Local on a shared subscription [MQTT-3.8.3-4].)
 */
struct mqtt_subscribe {
    uint16_t packet_id;
    size_t count;
    const struct mqtt_topic_entry *entries;
    struct mqtt_bytes raw;
    struct mqtt_properties props; /* v5 */
    /* v5 encode from entries: count options, or NULL for all zero. */
    const struct mqtt_subscription_options *options;
};

/* SUBACK: packet id (2) | [v5: properties] | return (v5: reason) code (1) per filter */
struct mqtt_suback {
    uint16_t packet_id;
    struct mqtt_bytes return_codes; /* may contain zero bytes */
    struct mqtt_properties props;
};

/*
 * DISCONNECT (v5; 3.1.1 has no body) and AUTH (v5 only):
 *   [reason code (1) | [properties]]
 * A Remaining Length of 0 means reason 0x00 and no properties; 1 (accepted
 * for AUTH too) means no properties [3.14.2.2.1] [3.15.2.1]. The encoder
 * writes the shortest form (never a 1-byte AUTH).
 */
struct mqtt_disconnect {
    uint8_t reason_code;
    struct mqtt_properties props;
};

/*
 * A decoded (or to-be-encoded) packet. Types without a body use no union
 * member. protocol_level selects the layout: MQTT_PROTOCOL_V5 for MQTT 5,
 * anything else (0 included, so `{.type = ...}` stays 3.1.1) for 3.1.1/3.1.
 * The decoder sets it; a CONNECT's layout follows u.connect.protocol_level.
 */
struct mqtt_packet {
    uint8_t type; /* enum mqtt_packet_type */
    uint8_t protocol_level;
    union {
        struct mqtt_connect connect;
        struct mqtt_connack connack;
        struct mqtt_publish publish;
        struct mqtt_ack ack;             /* PUBACK PUBREC PUBREL PUBCOMP UNSUBACK */
        struct mqtt_subscribe subscribe; /* SUBSCRIBE and UNSUBSCRIBE */
        struct mqtt_suback suback;
        struct mqtt_disconnect disconnect; /* v5 DISCONNECT */
        struct mqtt_disconnect auth;       /* v5 AUTH */
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
 * resend, which MQTT 3.1 allowed); the packet decodes as with 0010. With
 * MQTT_PROTOCOL_V5 packets decode as MQTT 5 (properties, reason codes,
 * AUTH); pkt->protocol_level is set to the level used.
 *
 * A CONNECT is decoded by its own protocol level byte (3, 4 or 5), and here
 * protocol_level is the highest level the caller accepts: a CONNECT for
 * level 5 decodes only when it is MQTT_PROTOCOL_V5, otherwise it is
 * MQTT_ERR_PROTOCOL_LEVEL (checked before the rest of the packet), so a
 * caller that does not speak MQTT 5 answers CONNACK 0x01 as before.
 * On an error, mqtt_reason_for_error() names the v5 reason code to send.
 */
int mqtt_decode_for(const struct mqtt_frame *frame, uint8_t protocol_level,
                    struct mqtt_packet *pkt);

/*
 * Frames and decodes the first packet of buf[0..len): mqtt_frame() then
 * mqtt_decode(). On MQTT_OK, *consumed is the packet's size in bytes.
 */
int mqtt_decode_stream(const uint8_t *buf, size_t len, size_t max_packet_size,
                       struct mqtt_packet *pkt, size_t *consumed);
/* As mqtt_decode_stream(), with mqtt_frame_for() and mqtt_decode_for(). */
int mqtt_decode_stream_for(const uint8_t *buf, size_t len, size_t max_packet_size,
                           uint8_t protocol_level, struct mqtt_packet *pkt, size_t *consumed);

/* Iterates the entries of a decoded SUBSCRIBE or UNSUBSCRIBE. */
struct mqtt_topic_iter {
    const uint8_t *pos;
    const uint8_t *end;
    bool has_qos;
};
void mqtt_topic_iter_init(struct mqtt_topic_iter *it, const struct mqtt_packet *pkt);
/* Returns true and fills *entry, or false when no entries are left. */
bool mqtt_topic_iter_next(struct mqtt_topic_iter *it, struct mqtt_topic_entry *entry);
/* As mqtt_topic_iter_next(), and fills *opts with a v5 entry's other
 * subscription options (all zero in 3.1.1 and in UNSUBSCRIBE). */
bool mqtt_topic_iter_next_options(struct mqtt_topic_iter *it, struct mqtt_topic_entry *entry,
                                  struct mqtt_subscription_options *opts);

/*
 * Bytes needed to encode *pkt (fixed header included), or 0 if *pkt cannot be
 * encoded (a field out of range, a body above MQTT_MAX_REMAINING_LENGTH).
 * MQTT 5: compare it with the peer's Maximum Packet Size, or use
 * mqtt_fit_packet().
 */
size_t mqtt_encoded_size(const struct mqtt_packet *pkt);

/*
 * MQTT 5 Maximum Packet Size [3.1.2.11.4] [3.2.2.3.6]: makes *pkt fit in
 * max_packet_size bytes (0: no limit) by dropping what the spec lets a sender
 * drop, first the Reason String, then all User Properties, and only from
 * CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, DISCONNECT and
 * AUTH [MQTT-3.2.2-19] [MQTT-3.2.2-20] [MQTT-3.4.2-2] [MQTT-3.4.2-3] ...
 * Only properties given as fields are dropped (not raw or extra).
 * Returns MQTT_OK with *size, MQTT_ERR_TOO_LARGE if it still does not fit
 * (a PUBLISH must then be discarded as if sent [MQTT-3.1.2-25]), or
 * MQTT_ERR_INVALID_ARGUMENT if it cannot be encoded at all.
 */
int mqtt_fit_packet(struct mqtt_packet *pkt, size_t max_packet_size, size_t *size);

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

/*
 * As mqtt_encode_publish_header() at a protocol level; with MQTT_PROTOCOL_V5
 * the header includes pub->props (e.g. per subscriber: Subscription
 * Identifiers, Topic Alias with an empty topic, the Message Expiry Interval
 * left, plus the stored properties as `extra`). buf needs
 * mqtt_publish_header_size() bytes.
 */
int mqtt_encode_publish_header_for(const struct mqtt_publish *pub, uint8_t protocol_level,
                                   uint8_t *buf, size_t cap, size_t *written);
/* Bytes of that header, or 0 if pub cannot be encoded. The whole packet is
 * this plus pub->payload.len. */
size_t mqtt_publish_header_size(const struct mqtt_publish *pub, uint8_t protocol_level);

/* Writes a Remaining Length (0..MQTT_MAX_REMAINING_LENGTH) into buf (>= 4 bytes).
 * Returns the number of bytes written (1..4), or 0 if value is out of range. */
size_t mqtt_encode_remaining_length(uint32_t value, uint8_t *buf);

/* Name of a packet type ("PUBLISH"), or "UNKNOWN". */
const char *mqtt_packet_name(uint8_t type);

#endif /* SOL_MQTT_H */
