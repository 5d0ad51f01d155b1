/*
 * utf8.c - the UTF-8 well-formedness rule for MQTT strings [MQTT-1.5.3].
 *
 * Follows the table of well-formed byte sequences in Unicode 3.2 (Table 3-7),
 * which is exactly what RFC 3629 allows, and adds MQTT's ban on U+0000.
 * Control characters and non-characters are accepted: the spec only says a
 * receiver MAY close on them, and we don't.
 * Not for: topic or filter rules (topic.c).
 */
#include "mqtt_topic.h"

/*
 * For a lead byte, the sequence length and the range allowed for the second
 * byte. The narrowed ranges are what reject overlong forms (E0, F0),
 * surrogates (ED) and code points above U+10FFFF (F4). Returns 0 for a byte
 * that can never start a sequence: a continuation byte (80..BF), C0, C1 and
 * F5..FF.
 */
static size_t lead_info(uint8_t b, uint8_t *lo, uint8_t *hi)
{
    *lo = 0x80;
    *hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF)
        return 2;
    if (b == 0xE0)
        *lo = 0xA0; /* below: overlong 3-byte form */
    else if (b == 0xED)
        *hi = 0x9F; /* above: U+D800..U+DFFF surrogates [MQTT-1.5.3-1] */
    else if (b == 0xF0)
        *lo = 0x90; /* below: overlong 4-byte form */
    else if (b == 0xF4)
        *hi = 0x8F; /* above: beyond U+10FFFF [MQTT-1.5.3-1] */
    if (b >= 0xE0 && b <= 0xEF)
        return 3;
    if (b >= 0xF0 && b <= 0xF4)
        return 4;
    return 0;
}

/* Length of the well-formed multi-byte sequence at s[0..avail), or 0. */
static size_t multibyte_len(const uint8_t *s, size_t avail)
{
    uint8_t lo, hi;
    size_t n = lead_info(s[0], &lo, &hi);

    if (n == 0 || n > avail)
        return 0; /* stray or invalid lead byte, or truncated sequence */
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++) {
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    }
    return n;
}

int mqtt_utf8_check(const uint8_t *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        if (s[i] == 0x00)
            return MQTT_ERR_UTF8; /* U+0000 [MQTT-1.5.3-2] */
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = multibyte_len(s + i, len - i);
        if (n == 0)
            return MQTT_ERR_UTF8; /* [MQTT-1.5.3-1] */
        i += n;
    }
    return MQTT_OK;
}
