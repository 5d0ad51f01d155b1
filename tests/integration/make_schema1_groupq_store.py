"""make_schema1_groupq_store.py - writes
tests/integration/data/schema1-groupq-store/data.mdb: a schema 1 store with the
shared-subscription group queue database, which main added (at 42925b3)
without changing the schema version. test_upgrade.py upgrades it. Not a test
(ctest runs test_*.py only).

    git -C /work/main archive 42925b3 | tar -x -C /tmp/sol-main2
    cmake -S /tmp/sol-main2 -B /tmp/sol-main2/build && cmake --build /tmp/sol-main2/build -j2
    SOL_BUILD_DIR=/tmp/sol-main2/build /usr/bin/python3 \
        tests/integration/make_schema1_groupq_store.py

What the store holds (test_upgrade.py relies on it):
  m1, m2  persistent, offline members of "$share/g/q/#" (QoS 1): the group's
          queue holds q/0 .. q/4 "m0" .. "m4" and q/ret "kept" (QoS 1)
  plain   persistent, offline: "q/#" QoS 2; queued: the same six
  retained: q/ret "kept" (QoS 1)
"""

import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "schema1-groupq-store")


def main():
    b = h.Broker()
    try:
        b.start()
        for cid in ("m1", "m2"):
            c, _ = h.connect_session(b.port, cid, clean=False)
            check(h.subscribe_one(c, "$share/g/q/#", 1) == 1, "%s $share/g/q/#" % cid)
            c.send(h.DISCONNECT_BYTES)
            c.close()
        c, _ = h.connect_session(b.port, "plain", clean=False)
        check(h.subscribe_one(c, "q/#", 2) == 2, "plain q/#")
        c.send(h.DISCONNECT_BYTES)
        c.close()
        pub = h.mqtt_connect(b.port, "pub")
        for i in range(5):
            pub.send(h.publish_packet("q/%d" % i, b"m%d" % i, qos=1, packet_id=i + 1))
            pub.expect(h.PUBACK)
        pub.send(h.publish_packet("q/ret", b"kept", qos=1, packet_id=9, retain=True))
        pub.expect(h.PUBACK)
        pub.close()
        check(b.stop() == 0, "the schema 1 broker did not exit 0")
        os.makedirs(OUT, exist_ok=True)
        shutil.copyfile(os.path.join(b.data_dir, "data.mdb"), os.path.join(OUT, "data.mdb"))
        print("wrote %s/data.mdb (%s)" % (OUT, h.SOL))
    finally:
        b.cleanup()


if __name__ == "__main__":
    main()
