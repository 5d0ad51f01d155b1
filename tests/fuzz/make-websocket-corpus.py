#!/usr/bin/env python3
"""make-websocket-corpus.py - writes the seed corpus of fuzz_websocket
(tests/fuzz/websocket-corpus/).

Each seed is one byte choosing max_packet_size (0: the protocol maximum,
else n * 97 bytes), then what a client sends: an HTTP upgrade request (valid
ones and refused ones), then masked frames: MQTT packets whole, split across
a fragmented message with a ping inside, several per frame; close; and the
frames the transport refuses (text, unmasked, reserved bits, a stray
continuation, a 2^62-byte header, one past the frame limit). Deterministic:
rerunning rewrites the same files (fixed mask keys).
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "websocket-corpus")
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
MASK = b"\x37\xfa\x21\x3d"

CONNECT = bytes.fromhex("101000044d5154540402003c0004667a7a31")
SUBSCRIBE = bytes.fromhex("820800010003612f2301")
PUBLISH = bytes.fromhex("3007000361") + b"/xhi"
PINGREQ = b"\xc0\x00"


def request(key=KEY, version="13", protocol="mqtt", method="GET", extra=""):
    lines = ["%s /mqtt HTTP/1.1" % method, "Host: localhost", "Upgrade: websocket",
             "Connection: Upgrade"]
    if key:
        lines.append("Sec-WebSocket-Key: " + key)
    if version:
        lines.append("Sec-WebSocket-Version: " + version)
    if protocol:
        lines.append("Sec-WebSocket-Protocol: " + protocol)
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


def frame(opcode, payload, fin=True, mask=True, rsv=0, length=None):
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    return head + MASK + bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))


def binary(payload, **kw):
    return frame(2, payload, **kw)


SEEDS = {
    "upgrade-only": (0, request()),
    "upgrade-connect": (0, request() + binary(CONNECT)),
    "upgrade-session": (0, request() + binary(CONNECT) + binary(SUBSCRIBE + PUBLISH)
                        + binary(PINGREQ[:1]) + binary(PINGREQ[1:]) + frame(8, b"\x03\xe8")),
    "fragmented-with-ping": (0, request() + binary(CONNECT[:5], fin=False)
                             + frame(0, CONNECT[5:9], fin=False) + frame(9, b"ping?")
                             + frame(0, CONNECT[9:]) + frame(10, b"")),
    "mqttv31-no-protocol": (3, request(protocol="mqttv3.1") + binary(CONNECT)
                            + request(protocol=None)),
    "large-frame": (0, request() + binary(bytes(range(256)) * 300)),
    "frame-over-limit": (1, request() + binary(CONNECT + b"\x00" * 200)),
    "huge-header": (0, request() + binary(b"\x10" * 16, length=1 << 62)),
    "text": (0, request() + frame(1, b"hello")),
    "unmasked": (0, request() + binary(CONNECT, mask=False)),
    "rsv": (0, request() + binary(CONNECT, rsv=4)),
    "stray-continuation": (0, request() + frame(0, CONNECT)),
    "close-1-byte": (0, request() + frame(8, b"\x03")),
    "bad-no-key": (0, request(key=None)),
    "bad-version": (0, request(version="8")),
    "bad-post": (0, request(method="POST")),
    "bad-body": (0, request(extra="Content-Length: 3\r\n") + b"abc"),
    "bad-garbage": (0, CONNECT),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, (limit, data) in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(bytes([limit]) + data)


if __name__ == "__main__":
    main()
