/*
 * props.c - MQTT 5 properties [MQTT 5.0 2.2.2]: the table of identifiers,
 * their types and the packets they may appear on; decoding a property block
 * with its validation, encoding one, and walking one.
 *
 * Decoded values are views into the packet; nothing is allocated.
 * Not for: what a property means to a session (src/session/), or the
 * packets around the block (decode.c, encode.c).
 */
#include "codec.h"
#include "mqtt_topic.h"

enum prop_type {
    PROP_BYTE,
    PROP_U16,
    PROP_U32,
    PROP_VBI,
    PROP_UTF8,
    PROP_BINARY,
    PROP_PAIR,
    PROP_UNKNOWN,
};

#define BIT(id) MQTT_PROP_BIT(id)

/* The identifier table [MQTT 5.0 2.2.2.2]. */
static enum prop_type prop_type(uint32_t id)
{
    switch (id) {
    case MQTT_PROP_PAYLOAD_FORMAT_INDICATOR:
    case MQTT_PROP_REQUEST_PROBLEM_INFORMATION:
    case MQTT_PROP_REQUEST_RESPONSE_INFORMATION:
    case MQTT_PROP_MAXIMUM_QOS:
    case MQTT_PROP_RETAIN_AVAILABLE:
    case MQTT_PROP_WILDCARD_SUBSCRIPTION_AVAILABLE:
    case MQTT_PROP_SUBSCRIPTION_IDENTIFIER_AVAILABLE:
    case MQTT_PROP_SHARED_SUBSCRIPTION_AVAILABLE:
        return PROP_BYTE;
    case MQTT_PROP_SERVER_KEEP_ALIVE:
    case MQTT_PROP_RECEIVE_MAXIMUM:
    case MQTT_PROP_TOPIC_ALIAS_MAXIMUM:
    case MQTT_PROP_TOPIC_ALIAS:
        return PROP_U16;
    case MQTT_PROP_MESSAGE_EXPIRY_INTERVAL:
    case MQTT_PROP_SESSION_EXPIRY_INTERVAL:
    case MQTT_PROP_WILL_DELAY_INTERVAL:
    case MQTT_PROP_MAXIMUM_PACKET_SIZE:
        return PROP_U32;
    case MQTT_PROP_SUBSCRIPTION_IDENTIFIER:
        return PROP_VBI;
    case MQTT_PROP_CONTENT_TYPE:
    case MQTT_PROP_RESPONSE_TOPIC:
    case MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER:
    case MQTT_PROP_AUTHENTICATION_METHOD:
    case MQTT_PROP_RESPONSE_INFORMATION:
    case MQTT_PROP_SERVER_REFERENCE:
    case MQTT_PROP_REASON_STRING:
        return PROP_UTF8;
    case MQTT_PROP_CORRELATION_DATA:
    case MQTT_PROP_AUTHENTICATION_DATA:
        return PROP_BINARY;
    case MQTT_PROP_USER_PROPERTY:
        return PROP_PAIR;
    default:
        return PROP_UNKNOWN;
    }
}

/* The properties a packet (or a will) may carry: the table's last column. */
static uint64_t allowed_on(uint8_t kind)
{
    const uint64_t user = BIT(MQTT_PROP_USER_PROPERTY);
    const uint64_t reason = BIT(MQTT_PROP_REASON_STRING) | user;
    const uint64_t message = BIT(MQTT_PROP_PAYLOAD_FORMAT_INDICATOR) |
                             BIT(MQTT_PROP_MESSAGE_EXPIRY_INTERVAL) | BIT(MQTT_PROP_CONTENT_TYPE) |
                             BIT(MQTT_PROP_RESPONSE_TOPIC) | BIT(MQTT_PROP_CORRELATION_DATA) | user;
    const uint64_t auth = BIT(MQTT_PROP_AUTHENTICATION_METHOD) | BIT(MQTT_PROP_AUTHENTICATION_DATA);
    const uint64_t limits = BIT(MQTT_PROP_SESSION_EXPIRY_INTERVAL) |
                            BIT(MQTT_PROP_RECEIVE_MAXIMUM) | BIT(MQTT_PROP_MAXIMUM_PACKET_SIZE) |
                            BIT(MQTT_PROP_TOPIC_ALIAS_MAXIMUM) | auth | user;
    switch (kind) {
    case MQTT_PROPS_WILL:
        return message | BIT(MQTT_PROP_WILL_DELAY_INTERVAL);
    case MQTT_CONNECT:
        return limits | BIT(MQTT_PROP_REQUEST_PROBLEM_INFORMATION) |
               BIT(MQTT_PROP_REQUEST_RESPONSE_INFORMATION);
    case MQTT_CONNACK:
        return limits | reason | BIT(MQTT_PROP_MAXIMUM_QOS) | BIT(MQTT_PROP_RETAIN_AVAILABLE) |
               BIT(MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER) |
               BIT(MQTT_PROP_WILDCARD_SUBSCRIPTION_AVAILABLE) |
               BIT(MQTT_PROP_SUBSCRIPTION_IDENTIFIER_AVAILABLE) |
               BIT(MQTT_PROP_SHARED_SUBSCRIPTION_AVAILABLE) | BIT(MQTT_PROP_SERVER_KEEP_ALIVE) |
               BIT(MQTT_PROP_RESPONSE_INFORMATION) | BIT(MQTT_PROP_SERVER_REFERENCE);
    case MQTT_PUBLISH:
        return message | BIT(MQTT_PROP_TOPIC_ALIAS) | BIT(MQTT_PROP_SUBSCRIPTION_IDENTIFIER);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        return reason;
    case MQTT_SUBSCRIBE:
        return BIT(MQTT_PROP_SUBSCRIPTION_IDENTIFIER) | user;
    case MQTT_UNSUBSCRIBE:
        return user;
    case MQTT_DISCONNECT:
        return BIT(MQTT_PROP_SESSION_EXPIRY_INTERVAL) | BIT(MQTT_PROP_SERVER_REFERENCE) | reason;
    case MQTT_AUTH:
        return auth | reason;
    default:
        return 0;
    }
}

/* Every property may appear once, except User Property [3.1.2.11.8] and a
 * PUBLISH's Subscription Identifiers [3.3.2.3.8]. */
static bool is_repeatable(uint8_t kind, uint8_t id)
{
    return id == MQTT_PROP_USER_PROPERTY ||
           (id == MQTT_PROP_SUBSCRIPTION_IDENTIFIER && kind == MQTT_PUBLISH);
}

/* The field of a string or binary property, or NULL. */
static struct mqtt_bytes *bytes_field(struct mqtt_properties *p, uint8_t id)
{
    switch (id) {
    case MQTT_PROP_CONTENT_TYPE:
        return &p->content_type;
    case MQTT_PROP_RESPONSE_TOPIC:
        return &p->response_topic;
    case MQTT_PROP_CORRELATION_DATA:
        return &p->correlation_data;
    case MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER:
        return &p->assigned_client_identifier;
    case MQTT_PROP_AUTHENTICATION_METHOD:
        return &p->authentication_method;
    case MQTT_PROP_AUTHENTICATION_DATA:
        return &p->authentication_data;
    case MQTT_PROP_RESPONSE_INFORMATION:
        return &p->response_information;
    case MQTT_PROP_SERVER_REFERENCE:
        return &p->server_reference;
    case MQTT_PROP_REASON_STRING:
        return &p->reason_string;
    default:
        return NULL;
    }
}

static struct mqtt_bytes get_bytes(const struct mqtt_properties *p, uint8_t id)
{
    /* bytes_field() does not write; the cast only shares the switch. */
    struct mqtt_bytes *b = bytes_field((struct mqtt_properties *)p, id);
    return b != NULL ? *b : (struct mqtt_bytes){NULL, 0};
}

/* The field of a byte-sized property, or NULL. */
static uint8_t *u8_field(struct mqtt_properties *p, uint8_t id)
{
    switch (id) {
    case MQTT_PROP_PAYLOAD_FORMAT_INDICATOR:
        return &p->payload_format_indicator;
    case MQTT_PROP_REQUEST_PROBLEM_INFORMATION:
        return &p->request_problem_information;
    case MQTT_PROP_REQUEST_RESPONSE_INFORMATION:
        return &p->request_response_information;
    case MQTT_PROP_MAXIMUM_QOS:
        return &p->maximum_qos;
    case MQTT_PROP_RETAIN_AVAILABLE:
        return &p->retain_available;
    case MQTT_PROP_WILDCARD_SUBSCRIPTION_AVAILABLE:
        return &p->wildcard_subscription_available;
    case MQTT_PROP_SUBSCRIPTION_IDENTIFIER_AVAILABLE:
        return &p->subscription_identifier_available;
    case MQTT_PROP_SHARED_SUBSCRIPTION_AVAILABLE:
        return &p->shared_subscription_available;
    default:
        return NULL;
    }
}

static uint16_t *u16_field(struct mqtt_properties *p, uint8_t id)
{
    switch (id) {
    case MQTT_PROP_SERVER_KEEP_ALIVE:
        return &p->server_keep_alive_s;
    case MQTT_PROP_RECEIVE_MAXIMUM:
        return &p->receive_maximum;
    case MQTT_PROP_TOPIC_ALIAS_MAXIMUM:
        return &p->topic_alias_maximum;
    case MQTT_PROP_TOPIC_ALIAS:
        return &p->topic_alias;
    default:
        return NULL;
    }
}

static uint32_t *u32_field(struct mqtt_properties *p, uint8_t id)
{
    switch (id) {
    case MQTT_PROP_MESSAGE_EXPIRY_INTERVAL:
        return &p->message_expiry_interval_s;
    case MQTT_PROP_SESSION_EXPIRY_INTERVAL:
        return &p->session_expiry_interval_s;
    case MQTT_PROP_WILL_DELAY_INTERVAL:
        return &p->will_delay_interval_s;
    case MQTT_PROP_MAXIMUM_PACKET_SIZE:
        return &p->maximum_packet_size;
    case MQTT_PROP_SUBSCRIPTION_IDENTIFIER:
        return &p->subscription_identifier;
    default:
        return NULL;
    }
}

static void set_number(struct mqtt_properties *p, uint8_t id, uint32_t v)
{
    uint8_t *b = u8_field(p, id);
    uint16_t *s = u16_field(p, id);
    uint32_t *l = u32_field(p, id);
    if (b != NULL)
        *b = (uint8_t)v;
    else if (s != NULL)
        *s = (uint16_t)v;
    else if (l != NULL)
        *l = v;
}

static uint32_t get_number(const struct mqtt_properties *p, uint8_t id)
{
    struct mqtt_properties *q = (struct mqtt_properties *)p; /* read only */
    const uint8_t *b = u8_field(q, id);
    const uint16_t *s = u16_field(q, id);
    const uint32_t *l = u32_field(q, id);
    return b != NULL ? *b : s != NULL ? *s : l != NULL ? *l : 0;
}

/* Reads one property's identifier and value; no validation but its type. */
static int read_property(struct reader *r, struct mqtt_property *prop)
{
    const uint8_t *start = r->pos;
    uint32_t id = 0;
    int rc = read_vbi(r, &id); /* the identifier is a VBI [2.2.2.2] */
    if (rc != MQTT_OK)
        return rc;
    prop->id = id <= 0xffu ? (uint8_t)id : 0;
    prop->value = 0;
    prop->data = prop->data2 = (struct mqtt_bytes){NULL, 0};
    uint8_t b = 0;
    uint16_t s = 0;
    switch (prop_type(id)) {
    case PROP_BYTE:
        rc = read_u8(r, &b);
        prop->value = b;
        break;
    case PROP_U16:
        rc = read_u16(r, &s);
        prop->value = s;
        break;
    case PROP_U32:
        rc = read_u32(r, &prop->value);
        break;
    case PROP_VBI:
        rc = read_vbi(r, &prop->value);
        break;
    case PROP_UTF8:
    case PROP_BINARY:
        rc = read_bytes(r, &prop->data);
        break;
    case PROP_PAIR:
        rc = read_bytes(r, &prop->data);
        if (rc == MQTT_OK)
            rc = read_bytes(r, &prop->data2);
        break;
    default:
        return MQTT_ERR_PROPERTY; /* not in the table: malformed [2.2.2.2] */
    }
    prop->wire = (struct mqtt_bytes){start, (size_t)(r->pos - start)};
    return rc;
}

/* Value rules; each "It is a Protocol Error ..." of the property's section. */
static int check_value(const struct mqtt_property *prop)
{
    switch (prop->id) {
    case MQTT_PROP_PAYLOAD_FORMAT_INDICATOR:          /* 3.3.2.3.2 */
    case MQTT_PROP_REQUEST_PROBLEM_INFORMATION:       /* 3.1.2.11.7 */
    case MQTT_PROP_REQUEST_RESPONSE_INFORMATION:      /* 3.1.2.11.6 */
    case MQTT_PROP_MAXIMUM_QOS:                       /* 3.2.2.3.4 */
    case MQTT_PROP_RETAIN_AVAILABLE:                  /* 3.2.2.3.5 */
    case MQTT_PROP_WILDCARD_SUBSCRIPTION_AVAILABLE:   /* 3.2.2.3.11 */
    case MQTT_PROP_SUBSCRIPTION_IDENTIFIER_AVAILABLE: /* 3.2.2.3.12 */
    case MQTT_PROP_SHARED_SUBSCRIPTION_AVAILABLE:     /* 3.2.2.3.13 */
        return prop->value <= 1 ? MQTT_OK : MQTT_ERR_PROPERTY_VALUE;
    case MQTT_PROP_RECEIVE_MAXIMUM:         /* 3.1.2.11.3 */
    case MQTT_PROP_MAXIMUM_PACKET_SIZE:     /* 3.1.2.11.4 */
    case MQTT_PROP_SUBSCRIPTION_IDENTIFIER: /* 3.3.2.3.8 */
        return prop->value != 0 ? MQTT_OK : MQTT_ERR_PROPERTY_VALUE;
    case MQTT_PROP_TOPIC_ALIAS:
        return prop->value != 0 ? MQTT_OK : MQTT_ERR_TOPIC_ALIAS; /* [MQTT-3.3.2-8] */
    case MQTT_PROP_RESPONSE_TOPIC: {
        /* A topic name: UTF-8 [MQTT-3.3.2-13], no wildcards [MQTT-3.3.2-14]. */
        int rc = mqtt_topic_name_check(prop->data);
        return rc == MQTT_ERR_TOPIC_NAME ? MQTT_ERR_PROPERTY_VALUE : rc;
    }
    case MQTT_PROP_USER_PROPERTY: {
        int rc = mqtt_utf8_check(prop->data.data, prop->data.len); /* [MQTT-1.5.7-1] */
        return rc == MQTT_OK ? mqtt_utf8_check(prop->data2.data, prop->data2.len) : rc;
    }
    default:
        if (prop_type(prop->id) == PROP_UTF8)
            return mqtt_utf8_check(prop->data.data, prop->data.len); /* [MQTT-1.5.4-1] */
        return MQTT_OK;
    }
}

/* Records a validated property in *p. */
static void store_property(struct mqtt_properties *p, const struct mqtt_property *prop)
{
    bool first = (p->present & BIT(prop->id)) == 0;
    p->present |= BIT(prop->id);
    struct mqtt_bytes *b = bytes_field(p, prop->id);
    if (b != NULL)
        *b = prop->data;
    else if (prop->id == MQTT_PROP_USER_PROPERTY)
        p->user_property_count++;
    else if (prop->id == MQTT_PROP_SUBSCRIPTION_IDENTIFIER) {
        p->subscription_id_count++;
        if (first)
            p->subscription_identifier = prop->value;
    } else
        set_number(p, prop->id, prop->value);
}

/*
 * One property of a block on packet `kind`. An identifier the table lacks or
 * does not allow on this packet is a Malformed Packet [2.2.2.2]; a second
 * copy of a single property is a Protocol Error (each property's section).
 */
static int decode_property(struct reader *r, uint8_t kind, struct mqtt_properties *p)
{
    struct mqtt_property prop;
    int rc = read_property(r, &prop);
    if (rc != MQTT_OK)
        return rc;
    if (prop.id == 0 || prop.id > 63 || (allowed_on(kind) & BIT(prop.id)) == 0)
        return MQTT_ERR_PROPERTY;
    if ((p->present & BIT(prop.id)) && !is_repeatable(kind, prop.id))
        return MQTT_ERR_PROPERTY_REPEATED;
    rc = check_value(&prop);
    if (rc == MQTT_OK)
        store_property(p, &prop);
    return rc;
}

int mqtt_props_decode(struct reader *r, uint8_t kind, struct mqtt_properties *props)
{
    uint32_t len = 0;
    memset(props, 0, sizeof(*props));
    int rc = read_vbi(r, &len);
    if (rc == MQTT_OK)
        rc = read_view(r, len, &props->raw); /* the block must fit the packet */
    if (rc != MQTT_OK)
        return rc;
    struct reader block = {props->raw.data, props->raw.len};
    while (rc == MQTT_OK && block.left > 0)
        rc = decode_property(&block, kind, props);
    /* Authentication Data without Authentication Method [3.1.2.11.10] [3.2.2.3.18]. */
    if (rc == MQTT_OK && mqtt_properties_has(props, MQTT_PROP_AUTHENTICATION_DATA) &&
        !mqtt_properties_has(props, MQTT_PROP_AUTHENTICATION_METHOD))
        rc = MQTT_ERR_PROPERTY_VALUE;
    return rc;
}

bool mqtt_properties_has(const struct mqtt_properties *props, uint8_t id)
{
    return id < 64 && (props->present & BIT(id)) != 0;
}

/* ---- encoding ------------------------------------------------------------ */

/* Bytes of one single-valued property as encoded; 0 if it cannot be. */
static size_t single_size(const struct mqtt_properties *p, uint8_t id)
{
    switch (prop_type(id)) {
    case PROP_BYTE:
        return 2;
    case PROP_U16:
        return 3;
    case PROP_U32:
        return 5;
    case PROP_UTF8:
    case PROP_BINARY:
        return get_bytes(p, id).len <= MQTT_FIELD_MAX_LEN ? 3 + get_bytes(p, id).len : 0;
    default:
        return 0;
    }
}

static bool valid_subscription_id(uint32_t v)
{
    return v >= 1 && v <= MQTT_MAX_REMAINING_LENGTH;
}

/* Subscription Identifiers: from the array, or the single field. */
static int subscription_ids_size(const struct mqtt_properties *p, uint8_t kind, size_t *size)
{
    size_t n = p->subscription_ids != NULL ? p->subscription_id_count
               : mqtt_properties_has(p, MQTT_PROP_SUBSCRIPTION_IDENTIFIER) ? 1
                                                                           : 0;
    if (n > 1 && kind != MQTT_PUBLISH)
        return MQTT_ERR_INVALID_ARGUMENT;
    if (n > 0 && (allowed_on(kind) & BIT(MQTT_PROP_SUBSCRIPTION_IDENTIFIER)) == 0)
        return MQTT_ERR_INVALID_ARGUMENT;
    for (size_t i = 0; i < n; i++) {
        uint32_t v =
            p->subscription_ids != NULL ? p->subscription_ids[i] : p->subscription_identifier;
        if (!valid_subscription_id(v) || *size > MQTT_MAX_REMAINING_LENGTH)
            return MQTT_ERR_INVALID_ARGUMENT;
        *size += 1 + vbi_size(v);
    }
    return MQTT_OK;
}

static int user_properties_size(const struct mqtt_properties *p, size_t *size)
{
    if (p->user_property_count > 0 && p->user_properties == NULL)
        return MQTT_ERR_INVALID_ARGUMENT;
    for (size_t i = 0; i < p->user_property_count; i++) {
        const struct mqtt_user_property *up = &p->user_properties[i];
        if (up->name.len > MQTT_FIELD_MAX_LEN || up->value.len > MQTT_FIELD_MAX_LEN ||
            *size > MQTT_MAX_REMAINING_LENGTH)
            return MQTT_ERR_INVALID_ARGUMENT;
        *size += 1 + 2 + up->name.len + 2 + up->value.len;
    }
    return MQTT_OK;
}

/* The block's content length, without its prefix. */
static int content_size(const struct mqtt_properties *p, uint8_t kind, size_t *size)
{
    *size = 0;
    if (p->raw.len > 0) {
        *size = p->raw.len;
        return p->raw.len <= MQTT_MAX_REMAINING_LENGTH ? MQTT_OK : MQTT_ERR_INVALID_ARGUMENT;
    }
    const uint64_t listed = BIT(MQTT_PROP_SUBSCRIPTION_IDENTIFIER) | BIT(MQTT_PROP_USER_PROPERTY);
    uint64_t singles = p->present & ~listed;
    if (singles & ~allowed_on(kind))
        return MQTT_ERR_INVALID_ARGUMENT;
    for (uint8_t id = 1; id < 64; id++) {
        if ((singles & BIT(id)) == 0)
            continue;
        size_t n = single_size(p, id);
        if (n == 0)
            return MQTT_ERR_INVALID_ARGUMENT;
        *size += n;
    }
    int rc = subscription_ids_size(p, kind, size);
    if (rc == MQTT_OK)
        rc = user_properties_size(p, size);
    if (rc == MQTT_OK && p->extra.len > MQTT_MAX_REMAINING_LENGTH)
        rc = MQTT_ERR_INVALID_ARGUMENT;
    *size += p->extra.len;
    if (rc == MQTT_OK && *size > MQTT_MAX_REMAINING_LENGTH)
        rc = MQTT_ERR_INVALID_ARGUMENT;
    return rc;
}

int mqtt_props_size(const struct mqtt_properties *props, uint8_t kind, size_t *size)
{
    size_t content = 0;
    int rc = content_size(props, kind, &content);
    if (rc != MQTT_OK)
        return rc;
    *size = vbi_size(content) + content;
    return MQTT_OK;
}

static void write_single(struct writer *w, const struct mqtt_properties *p, uint8_t id)
{
    put_u8(w, id);
    switch (prop_type(id)) {
    case PROP_BYTE:
        put_u8(w, (uint8_t)get_number(p, id));
        break;
    case PROP_U16:
        put_u16(w, (uint16_t)get_number(p, id));
        break;
    case PROP_U32:
        put_u32(w, get_number(p, id));
        break;
    default:
        put_field(w, get_bytes(p, id));
        break;
    }
}

static void write_listed(struct writer *w, const struct mqtt_properties *p)
{
    if (p->subscription_ids != NULL) {
        for (size_t i = 0; i < p->subscription_id_count; i++) {
            put_u8(w, MQTT_PROP_SUBSCRIPTION_IDENTIFIER);
            put_vbi(w, p->subscription_ids[i]);
        }
    } else if (mqtt_properties_has(p, MQTT_PROP_SUBSCRIPTION_IDENTIFIER)) {
        put_u8(w, MQTT_PROP_SUBSCRIPTION_IDENTIFIER);
        put_vbi(w, p->subscription_identifier);
    }
    for (size_t i = 0; i < p->user_property_count; i++) {
        put_u8(w, MQTT_PROP_USER_PROPERTY);
        put_field(w, p->user_properties[i].name);
        put_field(w, p->user_properties[i].value);
    }
}

void mqtt_props_write(struct writer *w, const struct mqtt_properties *props, uint8_t kind)
{
    size_t content = 0;
    (void)content_size(props, kind, &content); /* accepted by mqtt_props_size() */
    put_vbi(w, (uint32_t)content);
    if (props->raw.len > 0) {
        put_raw(w, props->raw);
        return;
    }
    const uint64_t listed = BIT(MQTT_PROP_SUBSCRIPTION_IDENTIFIER) | BIT(MQTT_PROP_USER_PROPERTY);
    for (uint8_t id = 1; id < 64; id++) {
        if ((props->present & ~listed) & BIT(id))
            write_single(w, props, id);
    }
    write_listed(w, props);
    put_raw(w, props->extra);
}

/* ---- walking a block ----------------------------------------------------- */

void mqtt_property_iter_init_raw(struct mqtt_property_iter *it, struct mqtt_bytes block)
{
    it->pos = block.data;
    it->end = block.data != NULL ? block.data + block.len : NULL;
}

void mqtt_property_iter_init(struct mqtt_property_iter *it, const struct mqtt_properties *props)
{
    mqtt_property_iter_init_raw(it, props->raw);
}

bool mqtt_property_iter_next(struct mqtt_property_iter *it, struct mqtt_property *prop)
{
    if (it->pos == NULL || it->pos >= it->end)
        return false;
    struct reader r = {it->pos, (size_t)(it->end - it->pos)};
    if (read_property(&r, prop) != MQTT_OK) {
        it->pos = it->end; /* unreadable: stop for good */
        return false;
    }
    it->pos = r.pos;
    return true;
}

bool mqtt_property_iter_next_user(struct mqtt_property_iter *it, struct mqtt_user_property *up)
{
    struct mqtt_property prop;
    while (mqtt_property_iter_next(it, &prop)) {
        if (prop.id == MQTT_PROP_USER_PROPERTY) {
            up->name = prop.data;
            up->value = prop.data2;
            return true;
        }
    }
    return false;
}

bool mqtt_property_iter_next_subscription_id(struct mqtt_property_iter *it, uint32_t *id)
{
    struct mqtt_property prop;
    while (mqtt_property_iter_next(it, &prop)) {
        if (prop.id == MQTT_PROP_SUBSCRIPTION_IDENTIFIER) {
            *id = prop.value;
            return true;
        }
    }
    return false;
}

int mqtt_properties_copy(struct mqtt_bytes block, uint64_t drop_mask, uint8_t *buf, size_t cap,
                         size_t *written)
{
    struct reader r = {block.data, block.data != NULL ? block.len : 0};
    size_t n = 0;
    while (r.left > 0) {
        struct mqtt_property prop;
        if (read_property(&r, &prop) != MQTT_OK)
            return MQTT_ERR_TRUNCATED;
        if (prop.id < 64 && (drop_mask & BIT(prop.id)))
            continue;
        if (cap - n < prop.wire.len)
            return MQTT_ERR_BUFFER_TOO_SMALL;
        memcpy(buf + n, prop.wire.data, prop.wire.len);
        n += prop.wire.len;
    }
    *written = n;
    return MQTT_OK;
}
