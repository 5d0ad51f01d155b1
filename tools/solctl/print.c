/*
 * print.c - solctl's output helpers: JSON string escaping, human-readable
 * escaping, payloads shown as text when printable and hex otherwise,
 * truncated unless --full.
 * Not for: deciding what to print (dump.c).
 */
#include "solctl.h"

#include <time.h>

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if invalid. Enough
 * for escaping decisions; the codec's full check lives in src/mqtt. */
static size_t utf8_seq_len(const uint8_t *p, size_t left)
{
    size_t n = p[0] < 0x80         ? 1
               : (p[0] >> 5) == 6  ? 2
               : (p[0] >> 4) == 14 ? 3
               : (p[0] >> 3) == 30 ? 4
                                   : 0;
    if (n == 0 || n > left)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

void solctl_json_string(FILE *out, struct store_bytes s)
{
    fputc('"', out);
    for (size_t i = 0; i < s.len;) {
        uint8_t c = s.data[i];
        size_t n = utf8_seq_len(s.data + i, s.len - i);
        if (c == '"' || c == '\\') {
            fprintf(out, "\\%c", c);
        } else if (c == '\n') {
            fputs("\\n", out);
        } else if (c < 0x20 || c == 0x7f || n == 0) {
            fprintf(out, "\\u%04x", c);
            n = 1;
        } else {
            fwrite(s.data + i, 1, n, out);
        }
        i += n ? n : 1;
    }
    fputc('"', out);
}

void solctl_text(FILE *out, struct store_bytes s)
{
    for (size_t i = 0; i < s.len; i++) {
        uint8_t c = s.data[i];
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"')
            fputc(c, out);
        else
            fprintf(out, "\\x%02x", c);
    }
}

static bool is_printable(struct store_bytes p)
{
    for (size_t i = 0; i < p.len;) {
        size_t n = utf8_seq_len(p.data + i, p.len - i);
        if (n == 0 || (n == 1 && p.data[i] < 0x20 && p.data[i] != '\n' && p.data[i] != '\t'))
            return false;
        i += n;
    }
    return true;
}

static void hex(FILE *out, struct store_bytes p)
{
    for (size_t i = 0; i < p.len; i++)
        fprintf(out, "%02x", p.data[i]);
}

void solctl_payload(FILE *out, const struct solctl_opts *opts, const char *key,
                    struct store_bytes p, uint64_t total_len)
{
    bool truncated = !opts->full && p.len > SOLCTL_PAYLOAD_SHOWN;
    if (truncated) {
        p.len = SOLCTL_PAYLOAD_SHOWN;
        while (p.len > 0 && (p.data[p.len] & 0xc0) == 0x80)
            p.len--; /* cut at a UTF-8 boundary so text stays text */
    }
    truncated = truncated || p.len < total_len;
    bool text = is_printable(p);
    if (opts->json) {
        fprintf(out, ",\"%s_len\":%llu,\"%s_truncated\":%s", key, (unsigned long long)total_len,
                key, truncated ? "true" : "false");
        fprintf(out, text ? ",\"%s\":" : ",\"%s_hex\":\"", key);
        if (text)
            solctl_json_string(out, p);
        else {
            hex(out, p);
            fputc('"', out);
        }
        return;
    }
    fprintf(out, " %s_len=%llu %s%s", key, (unsigned long long)total_len, key,
            text ? "=\"" : "_hex=");
    if (text)
        solctl_text(out, p);
    else
        hex(out, p);
    fputs(text ? "\"" : "", out);
    if (truncated)
        fputs(" (truncated; --full shows all)", out);
}

const char *solctl_time(char *buf, size_t len, uint64_t unix_s)
{
    time_t t = (time_t)unix_s;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, len, "%llu", (unsigned long long)unix_s);
    return buf;
}
