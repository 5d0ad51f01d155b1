"""test_upgrade.py - a store written by the schema 1 build (MQTT 3.1.1 only,
main at da55dc1: tests/integration/data/schema1-store, made by
make_schema1_store.py) is upgraded in place on the first start (issue 12):
every session, subscription, queued and inflight message, QoS 2 id and
retained message is still there and served, to 3.1.1 and MQTT 5 clients;
solctl reads the old store read-only before, and checks the new one after.
A schema 1 store written by main at 42925b3, with shared-subscription group
queues (tests/integration/data/schema1-groupq-store), is upgraded too.
Every wait is bounded.
"""

import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
FIXTURE = os.path.join(DATA, "schema1-store", "data.mdb")
# main at 42925b3: schema 1 with the group queue database (make_schema1_groupq_store.py)
GROUPQ_FIXTURE = os.path.join(DATA, "schema1-groupq-store", "data.mdb")
SOLCTL = os.path.join(h.BUILD_DIR, "solctl")


def solctl(*args):
    r = subprocess.run([SOLCTL, *args], capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout, r.stderr


def install_fixture(b, fixture=FIXTURE):
    os.makedirs(b.data_dir, exist_ok=True)
    shutil.copyfile(fixture, os.path.join(b.data_dir, "data.mdb"))


def receive(c, n):
    """n PUBLISH as (payload, qos, dup), in order; QoS 1 and 2 acknowledged."""
    got = []
    for _ in range(n * 4):
        if len(got) == n:
            break
        pkt = c.read_packet()
        check(pkt is not None, "closed after %r" % got)
        if pkt[0] == h.PUBREL:
            c.send(h.ack_packet(h.PUBCOMP, h.struct.unpack("!H", pkt[2][:2])[0]))
            continue
        if pkt[0] != h.PUBLISH:
            continue
        topic, pid, payload, qos, dup, retain = h.parse_publish(pkt[1], pkt[2])
        if qos:
            c.send(h.ack_packet(h.PUBACK if qos == 1 else h.PUBREC, pid))
        got.append((payload, qos, dup))
    return got


def test_solctl_reads_a_schema_1_store_as_it_is(b):
    install_fixture(b)
    rc, out, err = solctl("dump", "--data-dir", b.data_dir, "--json", "sessions")
    check(rc == 0, "solctl dump: %s" % err)
    sessions = [json.loads(line) for line in out.splitlines()]
    check([s["client_id"] for s in sessions] == ["pub2", "sub1", "sub2"], "sessions %r" % out)
    check(all(s["expiry_s"] is None for s in sessions), "3.1.1 sessions expire never: %r" % out)
    rc, out, _ = solctl("stats", "--data-dir", b.data_dir, "--json")
    check(rc == 0 and '"schema_version":1' in out, "stats %r" % out)
    rc, out, _ = solctl("check", "--data-dir", b.data_dir)
    check(rc == 0, "check of the schema 1 store: %s" % out)


def test_schema_1_store_is_upgraded_and_serves_everything(b):
    install_fixture(b)
    b.start()
    b.wait_for_log("upgraded from schema 1 to 2 (3 session records rewritten)")
    rc, out, _ = solctl("stats", "--data-dir", b.data_dir, "--json")
    check('"schema_version":2,"upgraded_from":1' in out, "stats %r" % out)
    rc, out, _ = solctl("check", "--data-dir", b.data_dir)
    check(rc == 0, "solctl check after the upgrade: %s" % out)
    # sub1 (3.1.1) gets its whole queue, in order.
    sub1, present = h.connect_session(b.port, "sub1", clean=False)
    check(present == 1, "sub1's session is gone")
    got = receive(sub1, 6)
    want = [(b"m1", 1, False), (b"b1", 1, False), (b"m2", 1, False), (b"m3", 1, False),
            (b"n1", 2, False), (b"on", 1, False)]
    check(got == want, "sub1 got %r" % got)
    # sub2 resumes with MQTT 5: m1 again with DUP, the PUBREL of b1, then the rest.
    sub2, present, _ = h.mqtt5_connect(b.port, "sub2", clean=False,
                                       props=h.props_block(h.prop(h.P_SESSION_EXPIRY, 60)))
    check(present == 1, "sub2's session is gone")
    first = sub2.read_packet()
    check(first[0] == h.PUBLISH, "sub2's first packet %r" % (first,))
    m = h.parse_publish5(first[1], first[2])
    check(m["payload"] == b"m1" and m["dup"], "sub2 resend %r" % m)
    sub2.send(h.ack5_packet(h.PUBACK, m["packet_id"]))
    pkt = sub2.expect(h.PUBREL)
    check(pkt[2][:2] == b"\x00\x02", "PUBREL for packet id 2: %r" % (pkt,))
    sub2.send(h.ack5_packet(h.PUBCOMP, 2))
    rest = [h.next_publish5(sub2) for _ in range(3)]
    check([r["payload"] for r in rest] == [b"m2", b"m3", b"on"], "sub2 rest %r" % rest)
    # pub2's QoS 2 id 7 is remembered: a resend is not routed again.
    watch = h.mqtt_connect(b.port, "watch")
    h.subscribe_one(watch, "other", 2)
    pub2, present = h.connect_session(b.port, "pub2", clean=False)
    check(present == 1, "pub2's session is gone")
    pub2.send(h.publish_packet("other", b"x", qos=2, packet_id=7, dup=True))
    pub2.expect(h.PUBREC)
    pub2.send(h.ack_packet(h.PUBREL, 7))
    pub2.expect(h.PUBCOMP)
    check(h.next_publish(watch, timeout_s=0.5) is None, "QoS 2 id 7 routed twice")
    # Retained messages.
    r = h.mqtt_connect(b.port, "reader")
    h.subscribe_one(r, "bin/blob", 0)
    m = h.next_publish(r)
    check(m is not None and m[1] == b"\x00\x01\x02\xff", "retained bin/blob %r" % (m,))
    # A restart does not upgrade again.
    b.stop()
    b.start()
    check(b.log().count("upgraded from schema") == 1, "upgraded twice")
    rc, out, _ = solctl("check", "--data-dir", b.data_dir)
    check(rc == 0, "check after the restart: %s" % out)


def test_schema_1_store_with_group_queues_is_upgraded(b):
    """The group queue database came in schema 1 without a version change: its
    entries are valid schema 2 entries, and a group's queue is served after
    the upgrade."""
    install_fixture(b, GROUPQ_FIXTURE)
    b.start()
    b.wait_for_log("upgraded from schema 1 to 2 (3 session records rewritten)")
    rc, out, _ = solctl("check", "--data-dir", b.data_dir)
    check(rc == 0, "solctl check after the upgrade: %s" % out)
    rc, out, _ = solctl("dump", "--data-dir", b.data_dir, "--json", "groups")
    check(rc == 0 and len(out.splitlines()) == 6, "groups %r" % out)
    # A member comes back with MQTT 5 and takes the group's queue.
    m1, present, _ = h.mqtt5_connect(b.port, "m1", clean=False,
                                     props=h.props_block(h.prop(h.P_SESSION_EXPIRY, 60)))
    check(present == 1, "m1's session is gone")
    got = []
    for _ in range(6):
        m = h.next_publish5(m1)
        check(m is not None, "m1 got only %r" % got)
        m1.send(h.ack5_packet(h.PUBACK, m["packet_id"]))
        got.append((m["topic"], m["payload"]))
    want = [("q/%d" % i, b"m%d" % i) for i in range(5)] + [("q/ret", b"kept")]
    check(got == want, "m1 got %r" % got)
    plain, present = h.connect_session(b.port, "plain", clean=False)
    check(present == 1, "plain's session is gone")
    got = receive(plain, 6)
    check([g[0] for g in got] == [b"m0", b"m1", b"m2", b"m3", b"m4", b"kept"], "plain %r" % got)


def main():
    r = h.Runner()
    r.run(test_solctl_reads_a_schema_1_store_as_it_is, start=False)
    r.run(test_schema_1_store_is_upgraded_and_serves_everything, start=False)
    r.run(test_schema_1_store_with_group_queues_is_upgraded, start=False)
    r.finish()


if __name__ == "__main__":
    main()
