/*
 * names.c - text for codec result codes, packet types and MQTT 5 reason
 * codes, for log lines; which reason code each packet may carry; which
 * reason code answers a decoding error.
 */
#include "mqtt.h"

const char *mqtt_strerror(int code)
{
    switch (code) {
    case MQTT_OK:
        return "ok";
    case MQTT_NEED_MORE:
        return "incomplete packet";
    case MQTT_ERR_REMAINING_LENGTH:
        return "malformed remaining length (more than 4 bytes)";
    case MQTT_ERR_TOO_LARGE:
        return "packet larger than the maximum packet size";
    case MQTT_ERR_PACKET_TYPE:
        return "reserved packet type";
    case MQTT_ERR_HEADER_FLAGS:
        return "invalid fixed-header flags for packet type";
    case MQTT_ERR_QOS:
        return "invalid QoS 3";
    case MQTT_ERR_PROTOCOL_NAME:
        return "unknown protocol name";
    case MQTT_ERR_PROTOCOL_LEVEL:
        return "unsupported protocol level";
    case MQTT_ERR_CONNECT_RESERVED:
        return "reserved CONNECT flag set";
    case MQTT_ERR_WILL_FLAGS:
        return "will QoS or retain set without will flag";
    case MQTT_ERR_PASSWORD_NO_USER:
        return "password flag without username flag";
    case MQTT_ERR_UTF8:
        return "ill-formed UTF-8 string";
    case MQTT_ERR_TOPIC_NAME:
        return "invalid topic name";
    case MQTT_ERR_TOPIC_FILTER:
        return "invalid topic filter";
    case MQTT_ERR_EMPTY_PAYLOAD:
        return "no topic filter in SUBSCRIBE or UNSUBSCRIBE, or no return code in SUBACK";
    case MQTT_ERR_PACKET_ID:
        return "packet identifier 0";
    case MQTT_ERR_TRAILING:
        return "unexpected bytes at end of packet";
    case MQTT_ERR_TRUNCATED:
        return "field extends past end of packet";
    case MQTT_ERR_SUBSCRIBE_QOS:
        return "invalid requested QoS in SUBSCRIBE";
    case MQTT_ERR_CONNACK_FLAGS:
        return "reserved CONNACK flags set";
    case MQTT_ERR_SUBACK_CODE:
        return "invalid SUBACK return code";
    case MQTT_ERR_BUFFER_TOO_SMALL:
        return "output buffer too small";
    case MQTT_ERR_INVALID_ARGUMENT:
        return "packet field out of range";
    case MQTT_ERR_PROPERTY:
        return "property unknown or not allowed on this packet";
    case MQTT_ERR_PROPERTY_REPEATED:
        return "property included more than once";
    case MQTT_ERR_PROPERTY_VALUE:
        return "property value not allowed";
    case MQTT_ERR_VARIABLE_INT:
        return "malformed variable byte integer";
    case MQTT_ERR_REASON_CODE:
        return "reason code not allowed on this packet";
    case MQTT_ERR_TOPIC_ALIAS:
        return "topic alias 0";
    case MQTT_ERR_SUBSCRIBE_OPTIONS:
        return "reserved subscription option bits set";
    case MQTT_ERR_RETAIN_HANDLING:
        return "invalid retain handling 3";
    default:
        return "unknown codec error";
    }
}

const char *mqtt_packet_name(uint8_t type)
{
    switch (type) {
    case MQTT_CONNECT:
        return "CONNECT";
    case MQTT_CONNACK:
        return "CONNACK";
    case MQTT_PUBLISH:
        return "PUBLISH";
    case MQTT_PUBACK:
        return "PUBACK";
    case MQTT_PUBREC:
        return "PUBREC";
    case MQTT_PUBREL:
        return "PUBREL";
    case MQTT_PUBCOMP:
        return "PUBCOMP";
    case MQTT_SUBSCRIBE:
        return "SUBSCRIBE";
    case MQTT_SUBACK:
        return "SUBACK";
    case MQTT_UNSUBSCRIBE:
        return "UNSUBSCRIBE";
    case MQTT_UNSUBACK:
        return "UNSUBACK";
    case MQTT_PINGREQ:
        return "PINGREQ";
    case MQTT_PINGRESP:
        return "PINGRESP";
    case MQTT_DISCONNECT:
        return "DISCONNECT";
    case MQTT_AUTH:
        return "AUTH";
    default:
        return "UNKNOWN";
    }
}

uint8_t mqtt_reason_for_error(int code)
{
    switch (code) {
    case MQTT_OK:
    case MQTT_NEED_MORE:
        return MQTT_RC_SUCCESS;
    case MQTT_ERR_REMAINING_LENGTH: /* [MQTT-1.5.5-1] ... */
    case MQTT_ERR_PACKET_TYPE:
    case MQTT_ERR_HEADER_FLAGS:     /* [MQTT-2.2.2-2] */
    case MQTT_ERR_QOS:              /* [MQTT-3.3.1-4] */
    case MQTT_ERR_CONNECT_RESERVED: /* [MQTT-3.1.2-3] */
    case MQTT_ERR_WILL_FLAGS:
    case MQTT_ERR_UTF8: /* [MQTT-1.5.4-1] */
    case MQTT_ERR_TRAILING:
    case MQTT_ERR_TRUNCATED:
    case MQTT_ERR_CONNACK_FLAGS:
    case MQTT_ERR_SUBACK_CODE:
    case MQTT_ERR_PROPERTY: /* [2.2.2.2] */
    case MQTT_ERR_VARIABLE_INT:
    case MQTT_ERR_SUBSCRIBE_OPTIONS: /* [MQTT-3.8.3-5] */
        return MQTT_RC_MALFORMED_PACKET;
    case MQTT_ERR_PASSWORD_NO_USER:
    case MQTT_ERR_TOPIC_NAME:
    case MQTT_ERR_TOPIC_FILTER:
    case MQTT_ERR_EMPTY_PAYLOAD: /* [MQTT-3.8.3-2] */
    case MQTT_ERR_PACKET_ID:
    case MQTT_ERR_SUBSCRIBE_QOS:
    case MQTT_ERR_PROPERTY_REPEATED:
    case MQTT_ERR_PROPERTY_VALUE:
    case MQTT_ERR_REASON_CODE:
    case MQTT_ERR_RETAIN_HANDLING:
        return MQTT_RC_PROTOCOL_ERROR;
    case MQTT_ERR_PROTOCOL_NAME:  /* [3.1.2.1] */
    case MQTT_ERR_PROTOCOL_LEVEL: /* [3.1.2.2] */
        return MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION;
    case MQTT_ERR_TOPIC_ALIAS:
        return MQTT_RC_TOPIC_ALIAS_INVALID;
    case MQTT_ERR_TOO_LARGE:
        return MQTT_RC_PACKET_TOO_LARGE;
    default:
        return MQTT_RC_UNSPECIFIED_ERROR;
    }
}

/* Codes shared by PUBACK and PUBREC [3.4.2.1] [3.5.2.1]. */
static bool is_puback_code(uint8_t code)
{
    switch (code) {
    case 0x00:
    case 0x10:
    case 0x80:
    case 0x83:
    case 0x87:
    case 0x90:
    case 0x91:
    case 0x97:
    case 0x99:
        return true;
    default:
        return false;
    }
}

/* SUBACK [3.9.3]. */
static bool is_suback_code(uint8_t code)
{
    switch (code) {
    case 0x00:
    case 0x01:
    case 0x02:
    case 0x80:
    case 0x83:
    case 0x87:
    case 0x8F:
    case 0x91:
    case 0x97:
    case 0x9E:
    case 0xA1:
    case 0xA2:
        return true;
    default:
        return false;
    }
}

/* UNSUBACK [3.11.3]. */
static bool is_unsuback_code(uint8_t code)
{
    switch (code) {
    case 0x00:
    case 0x11:
    case 0x80:
    case 0x83:
    case 0x87:
    case 0x8F:
    case 0x91:
        return true;
    default:
        return false;
    }
}

/* CONNACK [3.2.2.2]: Success, or an error 0x80..0x9F but the ones for other packets. */
static bool is_connack_code(uint8_t code)
{
    switch (code) {
    case 0x00:
    case 0x80:
    case 0x81:
    case 0x82:
    case 0x83:
    case 0x84:
    case 0x85:
    case 0x86:
    case 0x87:
    case 0x88:
    case 0x89:
    case 0x8A:
    case 0x8C:
    case 0x90:
    case 0x95:
    case 0x97:
    case 0x99:
    case 0x9A:
    case 0x9B:
    case 0x9C:
    case 0x9D:
    case 0x9F:
        return true;
    default:
        return false;
    }
}

/* DISCONNECT [3.14.2.1]: 0x00, 0x04, and 0x80..0xA2 except the CONNACK-only
 * and ack-only ones. */
static bool is_disconnect_code(uint8_t code)
{
    switch (code) {
    case 0x00:
    case 0x04:
        return true;
    case 0x84: /* Unsupported Protocol Version: CONNACK only */
    case 0x85:
    case 0x86:
    case 0x88:
    case 0x8A:
    case 0x8C:
    case 0x91: /* Packet Identifier in use / not found: acks only */
    case 0x92:
        return false;
    default:
        return code >= 0x80 && code <= 0xA2;
    }
}

bool mqtt_reason_valid(uint8_t packet_type, uint8_t code)
{
    switch (packet_type) {
    case MQTT_CONNACK:
        return is_connack_code(code);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
        return is_puback_code(code);
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        return code == 0x00 || code == 0x92; /* [3.6.2.1] [3.7.2.1] */
    case MQTT_SUBACK:
        return is_suback_code(code);
    case MQTT_UNSUBACK:
        return is_unsuback_code(code);
    case MQTT_DISCONNECT:
        return is_disconnect_code(code);
    case MQTT_AUTH:
        return code == 0x00 || code == 0x18 || code == 0x19; /* [3.15.2.1] */
    default:
        return false;
    }
}

/* Names of 0x80 and above, the same on every packet. */
static const char *error_reason_name(uint8_t code)
{
    switch (code) {
    case 0x80:
        return "Unspecified error";
    case 0x81:
        return "Malformed Packet";
    case 0x82:
        return "Protocol Error";
    case 0x83:
        return "Implementation specific error";
    case 0x84:
        return "Unsupported Protocol Version";
    case 0x85:
        return "Client Identifier not valid";
    case 0x86:
        return "Bad User Name or Password";
    case 0x87:
        return "Not authorized";
    case 0x88:
        return "Server unavailable";
    case 0x89:
        return "Server busy";
    case 0x8A:
        return "Banned";
    case 0x8B:
        return "Server shutting down";
    case 0x8C:
        return "Bad authentication method";
    case 0x8D:
        return "Keep Alive timeout";
    case 0x8E:
        return "Session taken over";
    case 0x8F:
        return "Topic Filter invalid";
    case 0x90:
        return "Topic Name invalid";
    case 0x91:
        return "Packet Identifier in use";
    case 0x92:
        return "Packet Identifier not found";
    case 0x93:
        return "Receive Maximum exceeded";
    case 0x94:
        return "Topic Alias invalid";
    case 0x95:
        return "Packet too large";
    case 0x96:
        return "Message rate too high";
    case 0x97:
        return "Quota exceeded";
    case 0x98:
        return "Administrative action";
    case 0x99:
        return "Payload format invalid";
    case 0x9A:
        return "Retain not supported";
    case 0x9B:
        return "QoS not supported";
    case 0x9C:
        return "Use another server";
    case 0x9D:
        return "Server moved";
    case 0x9E:
        return "Shared Subscriptions not supported";
    case 0x9F:
        return "Connection rate exceeded";
    case 0xA0:
        return "Maximum connect time";
    case 0xA1:
        return "Subscription Identifiers not supported";
    case 0xA2:
        return "Wildcard Subscriptions not supported";
    default:
        return "Unknown reason code";
    }
}

const char *mqtt_reason_name(uint8_t packet_type, uint8_t code)
{
    switch (code) {
    case 0x00:
        if (packet_type == MQTT_SUBACK)
            return "Granted QoS 0";
        return packet_type == MQTT_DISCONNECT ? "Normal disconnection" : "Success";
    case 0x01:
        return "Granted QoS 1";
    case 0x02:
        return "Granted QoS 2";
    case 0x04:
        return "Disconnect with Will Message";
    case 0x10:
        return "No matching subscribers";
    case 0x11:
        return "No subscription existed";
    case 0x18:
        return "Continue authentication";
    case 0x19:
        return "Re-authenticate";
    default:
        return error_reason_name(code);
    }
}
