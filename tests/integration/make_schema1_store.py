"""make_schema1_store.py - writes tests/integration/data/schema1-store/data.mdb,
the store test_upgrade.py upgrades: made by a Sol build of schema 1 (MQTT 3.1.1
only), main at commit da55dc1, so the upgrade is tested on what that build
really wrote. Not a test (ctest runs test_*.py only).

    git -C /work/main archive da55dc1 | tar -x -C /tmp/sol-main
    cmake -S /tmp/sol-main -B /tmp/sol-main/build && cmake --build /tmp/sol-main/build -j2
    SOL_BUILD_DIR=/tmp/sol-main/build /usr/bin/python3 tests/integration/make_schema1_store.py

What the store holds (test_upgrade.py relies on it):
  sub1  persistent, offline: "up/#" QoS 1, "q2/#" QoS 2; queued: up/a m1, up/b b1,
        up/a m2, up/a m3 (QoS 1), q2/x n1 (QoS 2), up/state on (QoS 1)
  sub2  persistent, offline: "up/+" QoS 2; inflight: up/a m1 sent (no PUBACK),
        up/b b1 PUBREC received (PUBREL sent, no PUBCOMP); queued: m2, m3, on
  pub2  persistent, offline: QoS 2 packet id 7 received, PUBREL not yet
  retained: up/state "on" (QoS 1), bin/blob 00 01 02 ff (QoS 0)
"""

import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "schema1-store")


def persistent(port, cid):
    c, present = h.connect_session(port, cid, clean=False)
    return c


def main():
    b = h.Broker()
    try:
        b.start()
        sub1 = persistent(b.port, "sub1")
        check(h.subscribe_one(sub1, "up/#", 1) == 1, "sub1 up/#")
        check(h.subscribe_one(sub1, "q2/#", 2, packet_id=2) == 2, "sub1 q2/#")
        sub1.send(h.DISCONNECT_BYTES)
        sub1.close()
        sub2 = persistent(b.port, "sub2")
        check(h.subscribe_one(sub2, "up/+", 2) == 2, "sub2 up/+")
        pub = h.mqtt_connect(b.port, "pub")
        pub.send(h.publish_packet("up/a", b"m1", qos=1, packet_id=1))
        pub.expect(h.PUBACK)
        m = h.next_publish(sub2)  # sent, never acknowledged
        check(m is not None and m[1] == b"m1", "sub2 m1")
        pub.send(h.publish_packet("up/b", b"b1", qos=2, packet_id=2))
        pub.expect(h.PUBREC)
        pub.send(h.ack_packet(h.PUBREL, 2))
        pub.expect(h.PUBCOMP)
        m = h.next_publish(sub2)
        check(m is not None and m[1] == b"b1" and m[2] == 2, "sub2 b1")
        sub2.send(h.ack_packet(h.PUBREC, m[3]))
        sub2.expect(h.PUBREL)
        sub2.close()  # no PUBCOMP: the entry stays PUBREC received
        for i, payload in ((3, b"m2"), (4, b"m3")):
            pub.send(h.publish_packet("up/a", payload, qos=1, packet_id=i))
            pub.expect(h.PUBACK)
        pub.send(h.publish_packet("q2/x", b"n1", qos=2, packet_id=5))
        pub.expect(h.PUBREC)
        pub.send(h.ack_packet(h.PUBREL, 5))
        pub.expect(h.PUBCOMP)
        pub.send(h.publish_packet("up/state", b"on", qos=1, packet_id=6, retain=True))
        pub.expect(h.PUBACK)
        pub.send(h.publish_packet("bin/blob", b"\x00\x01\x02\xff", retain=True))
        pub.close()
        pub2 = persistent(b.port, "pub2")
        pub2.send(h.publish_packet("other", b"x", qos=2, packet_id=7))
        pub2.expect(h.PUBREC)
        pub2.close()
        check(b.stop() == 0, "the schema 1 broker did not exit 0")
        os.makedirs(OUT, exist_ok=True)
        shutil.copyfile(os.path.join(b.data_dir, "data.mdb"), os.path.join(OUT, "data.mdb"))
        print("wrote %s/data.mdb (%s)" % (OUT, h.SOL))
    finally:
        b.cleanup()


if __name__ == "__main__":
    main()
