"""test_fanout.py - one PUBLISH to many subscribers arrives intact at each.

The broker encodes a message's QoS 0 PUBLISH once and shares its payload by
reference among the subscribers' output queues (only the header differs at
QoS > 0). These tests check the bytes every subscriber receives: a 1 -> 1000
fan-out at QoS 0, 1 and 2 with payloads on both sides of the size where the
server stops copying and starts referencing, and the retain flag of a
retained copy next to a live one. Every subscriber is a raw socket driven by
one bounded selector loop.
Not for: throughput (tools/bench-vs-mosquitto.sh, scenario qos1_fanout1000).
"""

import os
import selectors
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check  # noqa: E402

SUBSCRIBERS = 1000
PUMP_TIMEOUT_S = 60.0


class Sub:
    """A raw subscriber that answers QoS 1/2 flows and records what arrives."""

    def __init__(self, raw, name):
        self.raw = raw
        self.name = name
        self.buf = bytearray(raw.buf)  # what came with the SUBACK (a retained copy)
        self.got = []  # (topic, payload, qos, retain)
        self.acks = []  # packet types the broker sent besides PUBLISH (publisher)

    def on_readable(self):
        try:
            data = self.raw.sock.recv(1 << 20)
        except BlockingIOError:
            return
        check(data, "%s: the broker closed the connection" % self.name)
        self.buf += data
        self.take_packets()

    def take_packets(self):
        out = bytearray()
        for _ in range(100_000):
            pkt = split(self.buf)
            if pkt is None:
                break
            type_, flags, body = pkt
            if type_ == h.PUBLISH:
                topic, pid, payload, qos, _dup, retain = h.parse_publish(flags, body)
                self.got.append((topic, bytes(payload), qos, retain))
                if qos == 1:
                    out += h.ack_packet(h.PUBACK, pid)
                elif qos == 2:
                    out += h.ack_packet(h.PUBREC, pid)
            elif type_ == h.PUBREL:
                out += h.ack_packet(h.PUBCOMP, struct.unpack("!H", body[:2])[0])
            elif type_ == h.PUBREC:  # our own QoS 2 publish (publisher)
                self.acks.append(type_)
                out += h.ack_packet(h.PUBREL, struct.unpack("!H", body[:2])[0])
            else:
                self.acks.append(type_)
        if out:
            self.raw.sock.setblocking(True)
            self.raw.sock.sendall(out)
            self.raw.sock.setblocking(False)


def split(buf):
    """One whole packet off the front of bytearray buf as (type, flags, body)."""
    if len(buf) < 2:
        return None
    length, mult, i = 0, 1, 1
    while i < len(buf) and i <= 4:
        byte = buf[i]
        length += (byte & 0x7F) * mult
        mult *= 128
        i += 1
        if not byte & 0x80:
            break
    else:
        return None
    if len(buf) < i + length:
        return None
    first = buf[0]
    body = bytes(buf[i:i + length])
    del buf[:i + length]
    return first >> 4, first & 0x0F, body


def pump(subs, done, what):
    """Serves every socket until done() holds; bounded by time and rounds."""
    sel = selectors.DefaultSelector()
    for s in subs:
        s.raw.sock.setblocking(False)
        sel.register(s.raw.sock, selectors.EVENT_READ, s)
    try:
        for s in subs:
            s.take_packets()  # bytes read before the pump
        deadline = time.monotonic() + PUMP_TIMEOUT_S
        for _ in range(1_000_000):
            if done():
                return
            left = deadline - time.monotonic()
            check(left > 0, "timed out waiting for %s" % what)
            for key, _ in sel.select(min(left, 1.0)):
                key.data.on_readable()
        raise h.TestFailure("too many rounds waiting for %s" % what)
    finally:
        for s in subs:
            sel.unregister(s.raw.sock)
            s.raw.sock.setblocking(True)
        sel.close()


def connect_subscribers(port, n, topic_filter, qos):
    subs = []
    for i in range(n):
        name = "fan-%d" % i
        c = h.mqtt_connect(port, name)
        check(h.subscribe_one(c, topic_filter, qos) == qos, "%s: SUBSCRIBE refused" % name)
        subs.append(Sub(c, name))
    return subs


def payload_of(i, size):
    return bytes((i * 31 + j * 7) & 0xFF for j in range(size))


def test_fanout_1_to_1000_every_message_intact(b):
    subs = connect_subscribers(b.port, SUBSCRIBERS, "fan/#", 2)
    pub = Sub(h.mqtt_connect(b.port, "fan-pub"), "fan-pub")
    # (QoS, payload size): small ones are copied into the output queue, larger
    # ones (> 1 KB) referenced; 20000 needs a 3-byte remaining length.
    plan = [(0, 10), (1, 10), (2, 10), (0, 1024), (1, 1025), (0, 3000), (1, 3000), (2, 3000),
            (0, 20000), (1, 20000), (2, 20000), (0, 0), (1, 1)]
    expected = []
    for i, (qos, size) in enumerate(plan):
        topic = "fan/%d/q%d" % (i, qos)
        body = payload_of(i, size)
        pub.raw.send(h.publish_packet(topic, body, qos=qos, packet_id=i + 1))
        expected.append((topic, body, qos, False))
        want = len(expected)
        pump(subs + [pub], lambda: all(len(s.got) >= want for s in subs),
             "message %d (QoS %d, %d bytes) at every subscriber" % (i, qos, size))
    pump([pub], lambda: pub.acks.count(h.PUBACK) + pub.acks.count(h.PUBCOMP) >= 7,
         "the publisher's acks")
    for s in subs:
        check(len(s.got) == len(expected),
              "%s got %d messages, expected %d" % (s.name, len(s.got), len(expected)))
        for got, exp in zip(s.got, expected):
            check(got == exp, "%s: got %r... expected %r..." % (s.name, got[:1] + (got[1][:16],),
                                                                exp[:1] + (exp[1][:16],)))
    for s in subs + [pub]:
        s.raw.close()


def test_retained_and_live_copies_carry_their_own_retain_flag(b):
    pub = h.mqtt_connect(b.port, "ret-pub")
    body = payload_of(7, 3000)
    pub.send(h.publish_packet("ret/t", body, qos=1, packet_id=1, retain=True))
    pub.expect(h.PUBACK)
    subs = connect_subscribers(b.port, 50, "ret/#", 0)
    pump(subs, lambda: all(len(s.got) >= 1 for s in subs), "the retained message")
    pub.send(h.publish_packet("ret/t", body, qos=1, packet_id=2, retain=True))
    pub.expect(h.PUBACK)
    pump(subs, lambda: all(len(s.got) >= 2 for s in subs), "the live message")
    for s in subs:
        # [MQTT-3.3.1-8]: retained on subscribe; [MQTT-3.3.1-9]: live without it.
        check(s.got == [("ret/t", body, 0, True), ("ret/t", body, 0, False)],
              "%s got %r" % (s.name, [(t, len(p), q, r) for t, p, q, r in s.got]))
        s.raw.close()
    pub.close()


def main():
    r = h.Runner()
    for fn in (test_fanout_1_to_1000_every_message_intact,
               test_retained_and_live_copies_carry_their_own_retain_flag):
        r.run(fn)
    r.finish()


if __name__ == "__main__":
    main()
