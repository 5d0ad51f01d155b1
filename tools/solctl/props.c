/*
 * props.c - MQTT 5 property blocks as stored with messages, retained
 * messages and wills: printed for `solctl dump` (humans and JSON), and
 * checked for `solctl check` (every property readable and allowed on a
 * message: what the broker forwards). Storage keeps them as opaque bytes;
 * solctl reads them with the codec.
 * Not for: anything that writes.
 */
#include "solctl.h"

#include <string.h>

#include "mqtt.h"

static const char *property_name(uint8_t id)
{
    switch (id) {
    case MQTT_PROP_PAYLOAD_FORMAT_INDICATOR:
        return "payload_format_indicator";
    case MQTT_PROP_MESSAGE_EXPIRY_INTERVAL:
        return "message_expiry_interval";
    case MQTT_PROP_CONTENT_TYPE:
        return "content_type";
    case MQTT_PROP_RESPONSE_TOPIC:
        return "response_topic";
    case MQTT_PROP_CORRELATION_DATA:
        return "correlation_data";
    case MQTT_PROP_SUBSCRIPTION_IDENTIFIER:
        return "subscription_identifier";
    case MQTT_PROP_USER_PROPERTY:
        return "user_property";
    case MQTT_PROP_WILL_DELAY_INTERVAL:
        return "will_delay_interval";
    default:
        return NULL;
    }
}

static bool is_binary(uint8_t id)
{
    return id == MQTT_PROP_CORRELATION_DATA;
}

static struct store_bytes sb(struct mqtt_bytes b)
{
    return (struct store_bytes){b.data, b.len};
}

static void print_one_json(FILE *out, const struct mqtt_property *p)
{
    fprintf(out, "{\"id\":%u,\"name\":\"%s\"", p->id, property_name(p->id));
    if (p->id == MQTT_PROP_USER_PROPERTY) {
        fputs(",\"key\":", out);
        solctl_json_string(out, sb(p->data));
        fputs(",\"value\":", out);
        solctl_json_string(out, sb(p->data2));
    } else if (is_binary(p->id)) {
        fputs(",\"value_hex\":\"", out);
        for (size_t i = 0; i < p->data.len; i++)
            fprintf(out, "%02x", p->data.data[i]);
        fputc('"', out);
    } else if (p->data.data != NULL) {
        fputs(",\"value\":", out);
        solctl_json_string(out, sb(p->data));
    } else {
        fprintf(out, ",\"value\":%u", p->value);
    }
    fputc('}', out);
}

static void print_one_text(FILE *out, const struct mqtt_property *p)
{
    fprintf(out, "%s=", property_name(p->id));
    if (p->id == MQTT_PROP_USER_PROPERTY) {
        fputc('"', out);
        solctl_text(out, sb(p->data));
        fputs("\":\"", out);
        solctl_text(out, sb(p->data2));
        fputc('"', out);
    } else if (is_binary(p->id)) {
        for (size_t i = 0; i < p->data.len; i++)
            fprintf(out, "%02x", p->data.data[i]);
    } else if (p->data.data != NULL) {
        fputc('"', out);
        solctl_text(out, sb(p->data));
        fputc('"', out);
    } else {
        fprintf(out, "%u", p->value);
    }
}

bool solctl_properties_valid(struct store_bytes block)
{
    struct mqtt_property_iter it;
    struct mqtt_property p;
    mqtt_property_iter_init_raw(&it, (struct mqtt_bytes){block.data, block.len});
    size_t seen = 0;
    while (mqtt_property_iter_next(&it, &p)) {
        if (property_name(p.id) == NULL)
            return false;
        seen += p.wire.len;
    }
    return seen == block.len;
}

void solctl_properties(FILE *out, const struct solctl_opts *opts, const char *key,
                       struct store_bytes block)
{
    if (block.len == 0)
        return;
    if (!solctl_properties_valid(block)) {
        fprintf(out, opts->json ? ",\"%s_invalid\":true" : " %s=<invalid>", key);
        return;
    }
    struct mqtt_property_iter it;
    struct mqtt_property p;
    mqtt_property_iter_init_raw(&it, (struct mqtt_bytes){block.data, block.len});
    fprintf(out, opts->json ? ",\"%s\":[" : " %s={", key);
    for (bool first = true; mqtt_property_iter_next(&it, &p); first = false) {
        if (!first)
            fputs(opts->json ? "," : " ", out);
        if (opts->json)
            print_one_json(out, &p);
        else
            print_one_text(out, &p);
    }
    fputs(opts->json ? "]" : "}", out);
}
