/*
 * ws_upgrade.c - the HTTP/1.1 request that opens a WebSocket (RFC 6455 4.2),
 * parsed with http-parser (nodejs/http-parser, Debian's libhttp-parser), and
 * the 101 or 400 that answers it.
 *
 * The request is copied into one buffer of at most WS_UPGRADE_MAX_BYTES, so
 * the parser's callbacks can note headers as offsets into it, whatever the
 * reads it arrived in. Only the headers the upgrade needs are kept.
 *
 * Not for: sockets, frames (websocket.c), HTTP beyond this one request.
 */
#include "websocket.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

/* RFC 6455 1.3: appended to the client's key before hashing. */
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
/* A Sec-WebSocket-Key is 16 random bytes in base64: 24 characters. */
#define WS_KEY_B64_LEN 24
#define WS_KEY_RAW_LEN 16
#define WS_KEY_MAX_LEN 64
/* First allocation of the request buffer; it doubles up to the maximum. */
#define REQUEST_FIRST_CAP 1024

/* Bytes [off, off + len) of the request buffer. */
struct span {
    size_t off;
    size_t len;
};

struct ws_upgrade {
    http_parser parser;
    char *buf; /* the request so far */
    size_t len;
    size_t cap;
    struct span field, value; /* the header being parsed */
    bool has_field;
    bool is_in_value;
    struct span key, version;
    unsigned key_count, version_count;
    bool has_upgrade_websocket;  /* Upgrade: websocket */
    bool has_connection_upgrade; /* Connection: ..., Upgrade */
    bool is_protocol_offered;    /* Sec-WebSocket-Protocol was sent */
    bool is_complete;
    int status;
    const char *subprotocol;
    const char *why;
    char accept[WS_ACCEPT_KEY_LEN + 1];
};

struct ws_upgrade *ws_upgrade_new(void)
{
    struct ws_upgrade *u = calloc(1, sizeof(*u));
    if (u == NULL)
        return NULL;
    http_parser_init(&u->parser, HTTP_REQUEST);
    u->parser.data = u;
    u->why = "";
    return u;
}

void ws_upgrade_free(struct ws_upgrade *u)
{
    if (u == NULL)
        return;
    free(u->buf);
    free(u);
}

const char *ws_upgrade_error(const struct ws_upgrade *u)
{
    return u->why;
}

const char *ws_upgrade_subprotocol(const struct ws_upgrade *u)
{
    return u->status == WS_UPGRADE_DONE ? u->subprotocol : NULL;
}

/* ---- the accept key ---- */

int ws_accept_key(const char *key, size_t key_len, char out[WS_ACCEPT_KEY_LEN + 1])
{
    static const char guid[] = WS_GUID;
    char joined[WS_KEY_MAX_LEN + sizeof(guid)];
    unsigned char digest[SHA_DIGEST_LENGTH];
    if (key_len > WS_KEY_MAX_LEN)
        return -1;
    memcpy(joined, key, key_len);
    memcpy(joined + key_len, guid, sizeof(guid) - 1);
    if (EVP_Digest(joined, key_len + sizeof(guid) - 1, digest, NULL, EVP_sha1(), NULL) != 1)
        return -1;
    /* 20 bytes encode to 28 characters and a NUL. */
    return EVP_EncodeBlock((unsigned char *)out, digest, sizeof(digest)) == WS_ACCEPT_KEY_LEN ? 0
                                                                                              : -1;
}

/* RFC 6455 4.2.1 item 5: base64 of exactly 16 bytes ("...==" padding). */
static bool is_valid_key(const char *key, size_t len)
{
    unsigned char raw[WS_KEY_B64_LEN];
    if (len != WS_KEY_B64_LEN || key[21] == '=' || key[22] != '=' || key[23] != '=')
        return false;
    /* EVP_DecodeBlock counts the padding as zero bytes: 24 chars -> 18. */
    return EVP_DecodeBlock(raw, (const unsigned char *)key, (int)len) == WS_KEY_RAW_LEN + 2;
}

/* ---- header values ---- */

static bool is_blank(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* s[0..*len) without leading and trailing blanks. */
static const char *trim(const char *s, size_t *len)
{
    while (*len > 0 && is_blank(s[0])) {
        s++;
        (*len)--;
    }
    while (*len > 0 && is_blank(s[*len - 1]))
        (*len)--;
    return s;
}

/* Whether the comma-separated list s[0..len) holds token (case-insensitive
 * when is_nocase, as Upgrade and Connection are; subprotocols are not). */
static bool has_token(const char *s, size_t len, const char *token, bool is_nocase)
{
    size_t token_len = strlen(token);
    while (len > 0) {
        const char *comma = memchr(s, ',', len);
        size_t item_len = comma != NULL ? (size_t)(comma - s) : len;
        size_t rest = comma != NULL ? len - item_len - 1 : 0;
        const char *item = trim(s, &item_len);
        if (item_len == token_len && (is_nocase ? strncasecmp(item, token, token_len) == 0
                                                : memcmp(item, token, token_len) == 0))
            return true;
        s = comma != NULL ? comma + 1 : s + len;
        len = rest;
    }
    return false;
}

static bool is_field(const struct ws_upgrade *u, const char *name)
{
    size_t len = strlen(name);
    return u->field.len == len && strncasecmp(u->buf + u->field.off, name, len) == 0;
}

/* The subprotocol to answer with [MQTT-6.0.0-3, 6.0.0-4]: "mqtt", or the
 * MQTT 3.1 name older clients offer. The header may come more than once. */
static void note_protocols(struct ws_upgrade *u, const char *value, size_t len)
{
    u->is_protocol_offered = true;
    if (has_token(value, len, "mqtt", false))
        u->subprotocol = "mqtt";
    else if (u->subprotocol == NULL && has_token(value, len, "mqttv3.1", false))
        u->subprotocol = "mqttv3.1";
}

/* One complete header (field and value): note it if the upgrade needs it. */
static void end_header(struct ws_upgrade *u)
{
    size_t len = u->value.len;
    const char *value = trim(u->buf + u->value.off, &len);
    struct span trimmed = {.off = (size_t)(value - u->buf), .len = len};
    if (is_field(u, "Upgrade")) {
        u->has_upgrade_websocket |= has_token(value, len, "websocket", true);
    } else if (is_field(u, "Connection")) {
        u->has_connection_upgrade |= has_token(value, len, "upgrade", true);
    } else if (is_field(u, "Sec-WebSocket-Key")) {
        u->key = trimmed;
        u->key_count++;
    } else if (is_field(u, "Sec-WebSocket-Version")) {
        u->version = trimmed;
        u->version_count++;
    } else if (is_field(u, "Sec-WebSocket-Protocol")) {
        note_protocols(u, value, len);
    }
    u->has_field = false;
    u->is_in_value = false;
}

/* ---- http-parser callbacks ---- */

static struct ws_upgrade *upgrade_of(http_parser *p)
{
    return p->data;
}

/* A header's field or value may come in pieces (one per read): they are
 * consecutive in the buffer, so the span just grows to the piece's end. */
static void extend(struct span *s, const struct ws_upgrade *u, const char *at, size_t n)
{
    s->len = (size_t)(at + n - (u->buf + s->off));
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    struct ws_upgrade *u = upgrade_of(p);
    if (u->is_in_value)
        end_header(u);
    if (!u->has_field) {
        u->field = (struct span){.off = (size_t)(at - u->buf), .len = n};
        u->has_field = true;
    } else {
        extend(&u->field, u, at, n);
    }
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    struct ws_upgrade *u = upgrade_of(p);
    if (!u->is_in_value) {
        u->value = (struct span){.off = (size_t)(at - u->buf), .len = n};
        u->is_in_value = true;
    } else {
        extend(&u->value, u, at, n);
    }
    return 0;
}

/* The first rule the request breaks, or NULL when it is a valid upgrade. */
static const char *check_request(const struct ws_upgrade *u)
{
    const http_parser *p = &u->parser;
    if (p->method != HTTP_GET)
        return "method is not GET";
    if (p->http_major < 1 || (p->http_major == 1 && p->http_minor < 1))
        return "HTTP version is older than 1.1";
    if (!u->has_upgrade_websocket)
        return "no \"Upgrade: websocket\" header";
    if (!u->has_connection_upgrade)
        return "no \"Connection: Upgrade\" header";
    if (u->version_count != 1 || u->version.len != 2 || memcmp(u->buf + u->version.off, "13", 2))
        return "Sec-WebSocket-Version is not 13";
    if (u->key_count != 1 || !is_valid_key(u->buf + u->key.off, u->key.len))
        return "missing or invalid Sec-WebSocket-Key";
    if (p->uses_transfer_encoding || (p->content_length != 0 && p->content_length != ULLONG_MAX))
        return "the upgrade request has a body";
    if (u->is_protocol_offered && u->subprotocol == NULL)
        return "no \"mqtt\" in Sec-WebSocket-Protocol";
    return NULL;
}

static int on_headers_complete(http_parser *p)
{
    struct ws_upgrade *u = upgrade_of(p);
    if (u->is_in_value)
        end_header(u);
    const char *problem = check_request(u);
    if (problem == NULL && ws_accept_key(u->buf + u->key.off, u->key.len, u->accept) < 0)
        problem = "cannot compute Sec-WebSocket-Accept";
    if (problem != NULL) {
        u->why = problem;
        return -1; /* stops the parser: HPE_CB_headers_complete */
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    upgrade_of(p)->is_complete = true;
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_message_complete,
};

/* ---- feeding ---- */

/* Makes room for n more bytes (n <= WS_UPGRADE_MAX_BYTES - u->len). */
static int reserve(struct ws_upgrade *u, size_t n)
{
    if (u->len + n <= u->cap)
        return 0;
    size_t cap = u->cap > 0 ? u->cap : REQUEST_FIRST_CAP;
    while (cap < u->len + n)
        cap *= 2;
    if (cap > WS_UPGRADE_MAX_BYTES)
        cap = WS_UPGRADE_MAX_BYTES;
    char *grown = realloc(u->buf, cap);
    if (grown == NULL)
        return -1;
    u->buf = grown;
    u->cap = cap;
    return 0;
}

static int refuse(struct ws_upgrade *u, const char *why)
{
    u->why = why;
    u->status = WS_UPGRADE_BAD;
    return u->status;
}

int ws_upgrade_feed(struct ws_upgrade *u, const uint8_t *data, size_t len, size_t *used)
{
    *used = 0;
    if (u->status != WS_UPGRADE_MORE || len == 0)
        return u->status;
    size_t take = WS_UPGRADE_MAX_BYTES - u->len < len ? WS_UPGRADE_MAX_BYTES - u->len : len;
    if (take == 0 || reserve(u, take) < 0)
        return refuse(u, take == 0 ? "request headers too large" : "out of memory");
    char *start = u->buf + u->len;
    memcpy(start, data, take);
    u->len += take;
    size_t parsed = http_parser_execute(&u->parser, &parser_settings, start, take);
    enum http_errno err = HTTP_PARSER_ERRNO(&u->parser);
    if (err == HPE_CB_headers_complete)
        return refuse(u, u->why);
    if (err != HPE_OK)
        return refuse(u, http_errno_description(err));
    if (u->is_complete) {
        *used = parsed;
        u->status = WS_UPGRADE_DONE;
        return u->status;
    }
    if (take < len || u->len == WS_UPGRADE_MAX_BYTES)
        return refuse(u, "request headers too large");
    return WS_UPGRADE_MORE;
}

/* ---- the answer ---- */

static size_t fit(int n, size_t len)
{
    return n > 0 && (size_t)n < len ? (size_t)n : 0;
}

size_t ws_upgrade_response(const struct ws_upgrade *u, char *buf, size_t len)
{
    if (u->status == WS_UPGRADE_DONE) {
        const char *proto = u->subprotocol;
        return fit(snprintf(buf, len,
                            "HTTP/1.1 101 Switching Protocols\r\n"
                            "Upgrade: websocket\r\n"
                            "Connection: Upgrade\r\n"
                            "Sec-WebSocket-Accept: %s\r\n"
                            "%s%s%s"
                            "\r\n",
                            u->accept, proto != NULL ? "Sec-WebSocket-Protocol: " : "",
                            proto != NULL ? proto : "", proto != NULL ? "\r\n" : ""),
                   len);
    }
    const char *why = u->why[0] != '\0' ? u->why : "bad request";
    /* Sec-WebSocket-Version tells a client of another version which one to
     * use (RFC 6455 4.4). The body is the reason, one line. */
    return fit(snprintf(buf, len,
                        "HTTP/1.1 400 Bad Request\r\n"
                        "Connection: close\r\n"
                        "Sec-WebSocket-Version: 13\r\n"
                        "Content-Type: text/plain\r\n"
                        "Content-Length: %zu\r\n"
                        "\r\n"
                        "%s\n",
                        strlen(why) + 1, why),
               len);
}
