#!/usr/bin/env python3
"""make-corpus.py - writes the fuzz seed corpus (tests/fuzz/corpus/).

One valid packet per MQTT 3.1.1 packet type, a few variants that reach more
decoder branches, and some coalesced streams (several packets back to back,
one ending in a partial packet). Deterministic: rerunning rewrites the same
files. Encoded independently of the C codec, from the spec's wire layout.
"""
import os
import struct
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def remaining_length(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def packet(type_, flags, body):
    return bytes([(type_ << 4) | flags]) + remaining_length(len(body)) + body


def s(text):
    data = text.encode("utf-8") if isinstance(text, str) else text
    return struct.pack(">H", len(data)) + data


def u16(v):
    return struct.pack(">H", v)


def connect(name="MQTT", level=4, client="sol-fuzz", keepalive=60, clean=True,
            will=None, will_qos=0, will_retain=False, user=None, password=None):
    flags = 0x02 if clean else 0
    payload = s(client)
    if will is not None:
        flags |= 0x04 | (will_qos << 3) | (0x20 if will_retain else 0)
        payload += s(will[0]) + s(will[1])
    if user is not None:
        flags |= 0x80
        payload += s(user)
    if password is not None:
        flags |= 0x40
        payload += s(password)
    body = s(name) + bytes([level, flags]) + u16(keepalive) + payload
    return packet(1, 0, body)


def publish(topic, payload, qos=0, packet_id=0, retain=False, dup=False):
    flags = (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0)
    body = s(topic) + (u16(packet_id) if qos else b"") + payload
    return packet(3, flags, body)


def subscribe(packet_id, entries):
    body = u16(packet_id) + b"".join(s(f) + bytes([q]) for f, q in entries)
    return packet(8, 2, body)


def unsubscribe(packet_id, filters):
    return packet(10, 2, u16(packet_id) + b"".join(s(f) for f in filters))


def ack(type_, packet_id, flags=0):
    return packet(type_, flags, u16(packet_id))


PACKETS = {
    "connect": connect(),
    "connect-will-user-pass": connect(client="c1", clean=False, will=("last/will", b"\x00gone"),
                                      will_qos=1, will_retain=True, user="alice",
                                      password=b"\x00\xffsecret"),
    "connect-mqisdp-v31": connect(name="MQIsdp", level=3, client="old-client"),
    "connect-empty-client-id": connect(client=""),
    "connack": packet(2, 0, b"\x00\x00"),
    "connack-session-present": packet(2, 0, b"\x01\x00"),
    "publish-qos0": publish("sport/tennis/player1", b"hello"),
    "publish-qos1": publish("sport/tennis", b"\x00\x01\x02", qos=1, packet_id=1),
    "publish-qos2-retain-dup": publish("a/b", b"", qos=2, packet_id=65535, retain=True, dup=True),
    "publish-sys-utf8": publish("$SYS/\u00fc/\U0010ffff", b"x"),
    "publish-2byte-length": publish("big", bytes(range(256)) * 2, qos=1, packet_id=7),
    "puback": ack(4, 1),
    "pubrec": ack(5, 2),
    "pubrel": ack(6, 3, flags=2),
    "pubcomp": ack(7, 4),
    "subscribe": subscribe(10, [("sport/+/player1", 1), ("#", 0), ("$SYS/#", 2), ("/", 0)]),
    "subscribe-bad-placement": subscribe(11, [("a/b#", 0), ("sport+", 1)]),
    "suback": packet(9, 0, u16(10) + b"\x00\x01\x02\x80"),
    "unsubscribe": unsubscribe(12, ["sport/#", "+/+", "$SYS/monitor/+"]),
    "unsuback": ack(11, 12),
    "pingreq": packet(12, 0, b""),
    "pingresp": packet(13, 0, b""),
    "disconnect": packet(14, 0, b""),
}

STREAMS = {
    "stream-client-session": [PACKETS[k] for k in (
        "connect", "subscribe", "publish-qos1", "puback", "publish-qos2-retain-dup", "pubrec",
        "pubrel", "pubcomp", "unsubscribe", "pingreq", "disconnect")],
    "stream-server-replies": [PACKETS[k] for k in (
        "connack", "suback", "publish-sys-utf8", "unsuback", "pingresp")],
    "stream-many-pings": [PACKETS["pingreq"]] * 16,
    "stream-partial-tail": [PACKETS["connect"], PACKETS["publish-qos0"],
                            PACKETS["subscribe"][:7]],
}


def main():
    os.makedirs(OUT, exist_ok=True)
    files = dict(PACKETS)
    files.update({name: b"".join(parts) for name, parts in STREAMS.items()})
    for name, data in sorted(files.items()):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(files)} files to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
