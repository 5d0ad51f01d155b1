/*
 * names.c - text for codec result codes and packet types, for log lines.
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
    default:
        return "UNKNOWN";
    }
}
