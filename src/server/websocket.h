/*
 * websocket.h - MQTT over WebSockets (RFC 6455; MQTT 3.1.1 section 6):
 *  - ws_upgrade.c: the HTTP/1.1 upgrade request, parsed by http-parser, and
 *    its answer (101 Switching Protocols, or 400 Bad Request). Pure: bytes in,
 *    bytes out, no socket, so unit tests and the fuzzer drive it directly.
 *  - websocket.c: a transport (struct conn_transport) that sits between the
 *    byte transport (plain TCP or TLS) and the MQTT decoder: inbound frames
 *    are unwrapped by wslay and their payload goes to the decoder as a plain
 *    byte stream; outbound bytes leave in binary frames. conn.c and the
 *    session manager never know they run over WebSockets.
 * Not for: MQTT semantics, listening sockets, the output queue.
 */
#ifndef SOL_WEBSOCKET_H
#define SOL_WEBSOCKET_H

#include <stddef.h>
#include <stdint.h>

/* The request line and headers of an upgrade request, at most. A longer
 * request is refused (400) before more memory is spent on it. */
#define WS_UPGRADE_MAX_BYTES 8192
/* base64(SHA-1) is 28 characters. */
#define WS_ACCEPT_KEY_LEN 28
/* Room for any response ws_upgrade_response() writes. */
#define WS_RESPONSE_MAX_BYTES 512

enum ws_upgrade_status {
    WS_UPGRADE_BAD = -1, /* refuse with 400; ws_upgrade_error() says why */
    WS_UPGRADE_MORE = 0, /* the request is not complete yet */
    WS_UPGRADE_DONE = 1, /* a valid upgrade: answer 101 */
};

struct ws_upgrade;

/* A parser for one upgrade request; NULL when out of memory. Release with
 * ws_upgrade_free(); ws_upgrade_free(NULL) does nothing. */
struct ws_upgrade *ws_upgrade_new(void);
void ws_upgrade_free(struct ws_upgrade *u);

/*
 * Feeds the next len bytes the client sent (copied; data is not kept).
 * Returns WS_UPGRADE_MORE when all of data was taken and the request goes
 * on; WS_UPGRADE_DONE when the request is complete and valid, with *used the
 * bytes of data that belonged to it (data[*used..len) are the client's first
 * WebSocket frames); WS_UPGRADE_BAD when the request is malformed, is not a
 * WebSocket upgrade we accept, or passes WS_UPGRADE_MAX_BYTES. After DONE or
 * BAD, further calls return the same status and take nothing.
 * A valid request: method GET, HTTP/1.1 or later, "Upgrade: websocket",
 * "Connection" listing "upgrade", "Sec-WebSocket-Version: 13", a
 * Sec-WebSocket-Key of 16 bytes in base64, no body, and, when the client
 * offers subprotocols, "mqtt" or "mqttv3.1" among them [MQTT-6.0.0-3].
 */
int ws_upgrade_feed(struct ws_upgrade *u, const uint8_t *data, size_t len, size_t *used);

/* Why the request was refused (after WS_UPGRADE_BAD), for a log line; "" before. */
const char *ws_upgrade_error(const struct ws_upgrade *u);

/* The subprotocol chosen after WS_UPGRADE_DONE: "mqtt", "mqttv3.1", or NULL
 * when the client offered none (the 101 then names none). */
const char *ws_upgrade_subprotocol(const struct ws_upgrade *u);

/* Writes the answer into buf: after WS_UPGRADE_DONE the 101 with
 * Sec-WebSocket-Accept (and the subprotocol), otherwise a 400 whose body is
 * the reason. Returns its length, or 0 when len is too small (len >=
 * WS_RESPONSE_MAX_BYTES always suffices). */
size_t ws_upgrade_response(const struct ws_upgrade *u, char *buf, size_t len);

/* RFC 6455 4.2.2: base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
 * into out (NUL-terminated). Returns 0, or -1 when key_len is over 64 (no
 * valid key is that long) or hashing fails. */
int ws_accept_key(const char *key, size_t key_len, char out[WS_ACCEPT_KEY_LEN + 1]);

struct conn;

/* Puts the WebSocket transport on top of c's current one (plain or TLS):
 * c is handshaking until its upgrade request is answered with a 101. Returns
 * 0, or -ENOMEM (c keeps its transport; the caller closes it). */
int ws_conn_start(struct conn *c);

#endif /* SOL_WEBSOCKET_H */
