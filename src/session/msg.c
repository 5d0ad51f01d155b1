/*
 * msg.c - reference-counted message bodies: a published payload is copied
 * once and shared by every delivery. Not for: the store's copy of a message
 * (storage/ keeps its own, written once per message).
 */
#include <stdlib.h>
#include <string.h>

#include "session_internal.h"

struct msg *msg_new(struct mqtt_bytes topic, struct mqtt_bytes payload, uint8_t qos, bool retain)
{
    if (topic.len > UINT16_MAX)
        return NULL;
    /* One allocation: header, topic (NUL-terminated for log lines), payload. */
    struct msg *m = malloc(sizeof(*m) + topic.len + 1 + payload.len);
    if (!m)
        return NULL;
    m->refs = 1;
    m->store_id = 0;
    m->store_batch_gen = 0;
    m->qos = qos;
    m->retain = retain;
    m->topic_len = (uint16_t)topic.len;
    m->payload_len = payload.len;
    m->topic = (uint8_t *)(m + 1);
    m->payload = m->topic + topic.len + 1;
    if (topic.len)
        memcpy(m->topic, topic.data, topic.len);
    m->topic[topic.len] = '\0';
    if (payload.len)
        memcpy(m->payload, payload.data, payload.len);
    return m;
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
