/*
 * msg.c - reference-counted message bodies: a published payload is copied
 * once and shared by every delivery, down to the connections' output queues
 * (session_sink send_ref). Not for: the store's copy of a message (storage/
 * keeps its own, written once per message).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "session_internal.h"

/* Room for the QoS 0 PUBLISH header: fixed header, topic length, topic. */
static size_t qos0_header_room(size_t topic_len)
{
    return MQTT_MAX_FIXED_HEADER + 2 + topic_len;
}

struct msg *msg_new_v5(struct mqtt_bytes topic, struct mqtt_bytes payload, struct mqtt_bytes props,
                       uint64_t expiry_at_s, uint8_t qos, bool retain)
{
    if (topic.len > UINT16_MAX || props.len > UINT32_MAX)
        return NULL;
    /* One allocation: header, topic (NUL-terminated for log lines),
     * properties, room for the QoS 0 PUBLISH header, payload. */
    size_t room = qos0_header_room(topic.len);
    size_t fixed = sizeof(struct msg) + topic.len + 1 + props.len + room;
    if (payload.len > SIZE_MAX - fixed)
        return NULL;
    struct msg *m = malloc(fixed + payload.len);
    if (!m)
        return NULL;
    m->refs = 1;
    m->qos0_header_len = 0;
    m->store_id = 0;
    m->store_batch_gen = 0;
    m->expiry_at_s = expiry_at_s;
    m->qos = qos;
    m->retain = retain;
    m->topic_len = (uint16_t)topic.len;
    m->props_len = (uint32_t)props.len;
    m->payload_len = payload.len;
    m->topic = (uint8_t *)(m + 1);
    m->props = m->topic + topic.len + 1;
    m->payload = m->props + props.len + room;
    if (topic.len)
        memcpy(m->topic, topic.data, topic.len);
    m->topic[topic.len] = '\0';
    if (props.len)
        memcpy(m->props, props.data, props.len);
    if (payload.len)
        memcpy(m->payload, payload.data, payload.len);
    return m;
}

struct msg *msg_new(struct mqtt_bytes topic, struct mqtt_bytes payload, uint8_t qos, bool retain)
{
    return msg_new_v5(topic, payload, (struct mqtt_bytes){NULL, 0}, 0, qos, retain);
}

struct msg *msg_ref(struct msg *m)
{
    if (m)
        m->refs++;
    return m;
}

void msg_unref(struct msg *m)
{
    if (m && --m->refs == 0)
        free(m);
}

void msg_release(void *ref)
{
    msg_unref(ref);
}

int msg_qos0_packet(struct msg *m, struct mqtt_bytes *out)
{
    if (m->qos0_header_len == 0) {
        struct mqtt_publish pub = {
            .qos = 0,
            .retain = m->retain,
            .topic = {m->topic, m->topic_len},
            .payload = {m->payload, m->payload_len},
        };
        /* Encoded at the start of the room, then moved to end where the
         * payload starts (its length is known only once encoded). */
        size_t room = qos0_header_room(m->topic_len);
        uint8_t *start = m->payload - room;
        size_t len = 0;
        if (mqtt_encode_publish_header(&pub, start, room, &len) != MQTT_OK || len == 0)
            return -EINVAL;
        memmove(m->payload - len, start, len);
        m->qos0_header_len = (uint32_t)len;
    }
    out->data = m->payload - m->qos0_header_len;
    out->len = m->qos0_header_len + m->payload_len;
    return 0;
}
