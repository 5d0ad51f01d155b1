#!/usr/bin/env python3
"""make-corpus.py - writes the fuzz seed corpus (tests/fuzz/corpus/).

One valid packet per MQTT 3.1.1 packet type, a few variants that reach more
decoder branches, and some coalesced streams (several packets back to back,
one ending in a partial packet); then the same for MQTT 5.0 (v5-*: every
packet type with properties, every property at least once, the short forms,
AUTH). Deterministic: rerunning rewrites the same files. Encoded
independently of the C codec, from the spec's wire layout.
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

# ---- MQTT 5.0 ----

def vbi(n):
    return remaining_length(n)


def props(*items):
    """A property block: its length (VBI), then the properties."""
    body = b"".join(items)
    return vbi(len(body)) + body


def p_byte(id_, v):
    return vbi(id_) + bytes([v])


def p_u16(id_, v):
    return vbi(id_) + u16(v)


def p_u32(id_, v):
    return vbi(id_) + struct.pack(">I", v)


def p_vbi(id_, v):
    return vbi(id_) + vbi(v)


def p_str(id_, v):
    return vbi(id_) + s(v)


def p_pair(k, v):
    return vbi(0x26) + s(k) + s(v)


def connect5(client="sol-v5", keepalive=30, clean=True, prop=b"\x00", will=None,
             will_props=b"\x00", will_qos=0, user=None, password=None):
    flags = 0x02 if clean else 0
    payload = s(client)
    if will is not None:
        flags |= 0x04 | (will_qos << 3)
        payload += will_props + s(will[0]) + s(will[1])
    if user is not None:
        flags |= 0x80
        payload += s(user)
    if password is not None:
        flags |= 0x40
        payload += s(password)
    return packet(1, 0, s("MQTT") + bytes([5, flags]) + u16(keepalive) + prop + payload)


def publish5(topic, payload, prop=b"\x00", qos=0, packet_id=0, retain=False, dup=False):
    flags = (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0)
    return packet(3, flags, s(topic) + (u16(packet_id) if qos else b"") + prop + payload)


def ack5(type_, packet_id, code=None, prop=None):
    body = u16(packet_id)
    if code is not None:
        body += bytes([code])
        if prop is not None:
            body += prop
    return packet(type_, 2 if type_ == 6 else 0, body)


def reason5(type_, code=None, prop=None):
    body = b"" if code is None else bytes([code]) + (prop if prop is not None else b"")
    return packet(type_, 0, body)


V5_PACKETS = {
    "v5-connect": connect5(),
    "v5-connect-spec-example": connect5(client="cid", keepalive=10,
                                        prop=props(p_u32(0x11, 10)), will=("w/t", b"hi"),
                                        will_props=props(p_u32(0x18, 30), p_byte(0x01, 1)),
                                        will_qos=1, user="user", password=b"\xff\x00"),
    "v5-connect-all-props": connect5(
        prop=props(p_u32(0x11, 3600), p_u16(0x21, 20), p_u32(0x27, 1 << 20), p_u16(0x22, 10),
                   p_byte(0x19, 1), p_byte(0x17, 0), p_pair("region", "eu"),
                   p_str(0x15, "SCRAM-SHA-1"), vbi(0x16) + s(b"\x00client-first")),
        will=("dead/letter", b"bye"),
        will_props=props(p_u32(0x18, 5), p_byte(0x01, 1), p_u32(0x02, 60),
                         p_str(0x03, "text/plain"), p_str(0x08, "reply/here"),
                         vbi(0x09) + s(b"\x01\x02"), p_pair("k", "v"), p_pair("k", "v2"))),
    "v5-connect-password-only": connect5(password=b"secret"),
    "v5-connack": packet(2, 0, b"\x00\x00" + props(
        p_u32(0x11, 0), p_u16(0x21, 100), p_byte(0x24, 1), p_byte(0x25, 1), p_u32(0x27, 65536),
        p_str(0x12, "auto-1"), p_u16(0x22, 16), p_str(0x1f, "welcome"), p_pair("a", "b"),
        p_byte(0x28, 1), p_byte(0x29, 1), p_byte(0x2a, 0), p_u16(0x13, 60),
        p_str(0x1a, "resp/info"), p_str(0x1c, "other:1883"), p_str(0x15, "m"),
        vbi(0x16) + s(b"d"))),
    "v5-connack-refused": packet(2, 0, b"\x00\x87\x00"),
    "v5-publish": publish5("sport/tennis", b"ace", qos=1, packet_id=5, prop=props(
        p_byte(0x01, 1), p_u32(0x02, 120), p_str(0x03, "text/plain"), p_str(0x08, "resp/t"),
        vbi(0x09) + s(b"\x00corr"), p_u16(0x23, 3), p_pair("x", "y"), p_pair("x", "y"),
        p_vbi(0x0b, 1), p_vbi(0x0b, 268435455))),
    "v5-publish-alias-only": publish5("", b"again", prop=props(p_u16(0x23, 3))),
    "v5-publish-qos2": publish5("a/b", b"", qos=2, packet_id=65535, retain=True, dup=True),
    "v5-puback-rl2": ack5(4, 1),
    "v5-puback-rl3": ack5(4, 2, code=0x10),
    "v5-puback-rl4": ack5(4, 3, code=0x00, prop=b"\x00"),
    "v5-pubrec-props": ack5(5, 4, code=0x97, prop=props(p_str(0x1f, "quota"), p_pair("q", "1"))),
    "v5-pubrel": ack5(6, 4, code=0x92, prop=props(p_str(0x1f, "gone"))),
    "v5-pubcomp": ack5(7, 4, code=0x00),
    "v5-subscribe": packet(8, 2, u16(6) + props(p_vbi(0x0b, 42), p_pair("s", "1")) +
                           s("sport/#") + b"\x2e" + s("$share/g/a") + b"\x01" + s("+") + b"\x10"),
    "v5-suback": packet(9, 0, u16(6) + props(p_str(0x1f, "partly")) + b"\x02\x01\x9e\xa2"),
    "v5-unsubscribe": packet(10, 2, u16(7) + props(p_pair("u", "1")) + s("sport/#") + s("+")),
    "v5-unsuback": packet(11, 0, u16(7) + props(p_str(0x1f, "ok")) + b"\x00\x11"),
    "v5-disconnect-rl0": reason5(14),
    "v5-disconnect-will": reason5(14, 0x04),
    "v5-disconnect-props": reason5(14, 0x9c, props(p_u32(0x11, 0), p_str(0x1c, "b:1883"),
                                                   p_str(0x1f, "moved"), p_pair("d", "1"))),
    "v5-auth-rl0": reason5(15),
    "v5-auth-continue": reason5(15, 0x18, props(p_str(0x15, "SCRAM-SHA-1"),
                                                vbi(0x16) + s(b"\x00server-first"),
                                                p_str(0x1f, "go on"), p_pair("a", "1"))),
}
PACKETS.update(V5_PACKETS)

STREAMS = {
    "stream-client-session": [PACKETS[k] for k in (
        "connect", "subscribe", "publish-qos1", "puback", "publish-qos2-retain-dup", "pubrec",
        "pubrel", "pubcomp", "unsubscribe", "pingreq", "disconnect")],
    "stream-server-replies": [PACKETS[k] for k in (
        "connack", "suback", "publish-sys-utf8", "unsuback", "pingresp")],
    "stream-many-pings": [PACKETS["pingreq"]] * 16,
    "stream-partial-tail": [PACKETS["connect"], PACKETS["publish-qos0"],
                            PACKETS["subscribe"][:7]],
    "v5-stream-client-session": [PACKETS[k] for k in (
        "v5-connect-all-props", "v5-auth-continue", "v5-subscribe", "v5-publish", "v5-puback-rl2",
        "v5-publish-alias-only", "v5-publish-qos2", "v5-pubrec-props", "v5-pubrel", "v5-pubcomp",
        "v5-unsubscribe", "pingreq", "v5-disconnect-will")],
    "v5-stream-server-replies": [PACKETS[k] for k in (
        "v5-connack", "v5-suback", "v5-publish", "v5-puback-rl3", "v5-unsuback", "pingresp",
        "v5-disconnect-props")],
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
