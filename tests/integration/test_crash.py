"""test_crash.py - kill -9 under load loses no acknowledged message.

A publisher sends QoS 1 and QoS 2 messages (each payload a unique sequence
number) as fast as the acks come back; a persistent subscriber (clean session
0, subscribed at QoS 2) reads and acks them. Meanwhile the broker is killed
with SIGKILL at random moments and restarted on the same data directory,
SOL_CRASH_CYCLES times (default 8: the short form CI runs), once with
storage_sync fsync (the default) and once with nosync. Both clients
reconnect after each restart, the subscriber keeping its QoS 2 state as a
real client does (method B of MQTT 3.1.1 4.3.3: a PUBLISH whose packet id
is awaiting PUBREL is not delivered again).

Campaign mode (not in CI; see README, Durability): the same loop over
several seeds and both sync modes, with totals:
  SOL_CRASH_CYCLES=N       kill -9 cycles per run (8)
  SOL_CRASH_SEEDS=1,2,...  one run per seed and mode (1234)
  SOL_CRASH_MODES=fsync,nosync
  SOL_CRASH_RUN_S=LO,HI    each cycle runs LO..HI seconds before kill -9 (0.4,1.2)
  SOL_CRASH_SUMMARY=PATH   append one JSON line per run
  e.g. SOL_CRASH_CYCLES=125 SOL_CRASH_SEEDS=1,2,3,4 SOL_CRASH_RUN_S=0.2,0.8 \
       /usr/bin/python3 tests/integration/test_crash.py

At the end the subscriber drains its queue, and the test asserts:
- every QoS 1 message whose PUBACK the publisher saw was delivered (>= once);
- every QoS 2 message whose PUBREC the publisher saw was delivered exactly
  once, and no QoS 2 message was delivered twice;
- the subscription survived every restart;
and reports the QoS 1 duplicate count. Bounded in time and count throughout.

The MQTT 5 variant (SOL_CRASH_VERSIONS=3,5 selects the variants; both by
default) runs the same loop with MQTT 5 clients - the subscriber's session
lasts by its Session Expiry Interval (3600 s), every message carries
properties and a Message Expiry Interval - and, across the same kill -9
cycles, checks:
- the same: no acknowledged QoS 1/2 message lost, QoS 2 exactly once; each
  delivery carries its properties unchanged (User Property in order, Content
  Type, Correlation Data), the subscription's identifier and the interval left;
- message expiry: a persistent subscriber offline throughout gets, at the end,
  every acknowledged message published with a 3600 s expiry and none of those
  published with 2 s (their deadlines passed while queued, across restarts);
- session expiry: a session with a 2 s expiry, disconnected at the start, and
  one connected at the first kill, are gone at the end; one with 3600 s is
  not; a session that expires while the broker is down is gone at the start;
- will delay: a will with a 3 s delay whose client was connected at the first
  kill is published exactly once (QoS 2), not before the delay and - while
  kills continue - not much after it (its deadline survives the kills); a will
  whose session (2 s) ends before its delay is published once at the session's
  end; a will whose session resumes is never published.

The shared-subscription variant ("shared" in SOL_CRASH_VERSIONS) has a
publisher send QoS 1 and 2 into the group $share/g/cs/# of three persistent
members (one MQTT 5, two 3.1.1; each subscribed at QoS 2), which connect and
disconnect on their own between the kills (with DISCONNECT or by dropping
the socket); every third cycle has no member connected, so the messages wait
in the group's queue in the store when the broker is killed. After a final
drain with every member connected it asserts:
- every acknowledged QoS 1 message reached at least one member, every
  acknowledged QoS 2 message exactly one member exactly once;
- no message reached two members (one sent to a member stays with it);
- the group queue was used while every member was offline, is empty at the
  end, and `solctl check` finds nothing wrong.
  SOL_CRASH_SHARED_CYCLES=N     its kill -9 cycles (4: the short form CI runs)
  SOL_CRASH_SHARED_MESSAGES=N   the most messages published per cycle (1500)
"""

import json
import os
import random
import struct
import subprocess
import sys
import threading
import time

import harness
from harness import (CONNACK, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBACK, ack5_packet,
                     ack_packet, check, disconnect5_packet, parse_ack5, parse_publish,
                     parse_publish5, prop, props_block, props_get, publish5_packet,
                     publish_packet, subscribe5_packet, subscribe_packet)
from harness import (P_CONTENT_TYPE, P_CORRELATION_DATA, P_MESSAGE_EXPIRY, P_SESSION_EXPIRY,
                     P_SUBSCRIPTION_ID, P_USER_PROPERTY, P_WILL_DELAY)

CYCLES = int(os.environ.get("SOL_CRASH_CYCLES", "8"))
SEEDS = [int(x) for x in os.environ.get("SOL_CRASH_SEEDS", "1234").split(",") if x.strip()]
MODES = [x for x in os.environ.get("SOL_CRASH_MODES", "fsync,nosync").split(",") if x]
# each cycle runs this long (uniform) before kill -9
RUN_S = tuple(float(x) for x in os.environ.get("SOL_CRASH_RUN_S", "0.4,1.2").split(","))
SUMMARY = os.environ.get("SOL_CRASH_SUMMARY", "")
# Variants: 3 (MQTT 3.1.1), 5 (MQTT 5), shared (shared-subscription groups)
VERSIONS = [int(x) if x.strip().isdigit() else x.strip()
            for x in os.environ.get("SOL_CRASH_VERSIONS", "3,5,shared").split(",") if x.strip()]
DRAIN_QUIET_S = 1.5
TOTAL_LIMIT_S = 60 + CYCLES * (RUN_S[1] + 4)


class Shared:
    def __init__(self):
        self.lock = threading.Lock()
        self.stop = threading.Event()  # subscriber
        self.stop_pub = threading.Event()
        self.acked1, self.acked2 = set(), set()
        self.got1, self.got2 = {}, {}
        self.last_rx = time.monotonic()
        self.errors = []


connect = harness.connect_session


def publisher(broker, sh):
    seq = 0
    for _ in range(100000):
        if sh.stop_pub.is_set():
            return
        try:
            raw, _ = connect(broker.port, "crash-pub", True)
            for _ in range(1000000):
                if sh.stop_pub.is_set():
                    return
                seq += 1
                qos = 1 if seq % 2 else 2
                pid = seq % 65535 + 1
                raw.send(publish_packet("crash/t", b"%d" % seq, qos=qos, packet_id=pid))
                if qos == 1:
                    raw.expect(PUBACK, timeout_s=3)
                    with sh.lock:
                        sh.acked1.add(seq)
                else:
                    raw.expect(PUBREC, timeout_s=3)
                    with sh.lock:
                        sh.acked2.add(seq)
                    raw.send(ack_packet(PUBREL, pid))
                    raw.expect(PUBCOMP, timeout_s=3)
        except (OSError, harness.TestFailure):
            time.sleep(0.05)  # broker down: retry until it is back


def subscriber(broker, sh, subscribed_once):
    awaiting_pubrel = set()  # the client's QoS 2 state, kept across reconnects
    for _ in range(100000):
        if sh.stop.is_set():
            return
        try:
            raw, present = connect(broker.port, "crash-sub", False)
            if subscribed_once.is_set() and not present:
                sh.errors.append("session present 0 after a restart: session lost")
            if not subscribed_once.is_set():
                raw.send(subscribe_packet(1, [("crash/#", 2)]))
                raw.expect(SUBACK, timeout_s=3)
                subscribed_once.set()
            receive_loop(raw, sh, awaiting_pubrel)
        except (OSError, harness.TestFailure):
            time.sleep(0.05)


def receive_loop(raw, sh, awaiting_pubrel):
    for _ in range(10000000):
        if sh.stop.is_set():
            return
        try:
            pkt = raw.read_packet(timeout_s=0.5)
        except harness.TestFailure:
            continue  # quiet: poll the stop flag
        if pkt is None:
            raise OSError("broker closed")
        type_, flags, body = pkt
        with sh.lock:
            sh.last_rx = time.monotonic()
        if type_ == PUBLISH:
            handle_publish(raw, sh, awaiting_pubrel, flags, body)
        elif type_ == PUBREL:
            (pid,) = struct.unpack("!H", body)
            awaiting_pubrel.discard(pid)
            raw.send(ack_packet(PUBCOMP, pid))


def handle_publish(raw, sh, awaiting_pubrel, flags, body):
    _, pid, payload, qos, dup, _ = parse_publish(flags, body)
    seq = int(payload)
    if qos == 1:
        with sh.lock:
            sh.got1[seq] = sh.got1.get(seq, 0) + 1
        raw.send(ack_packet(PUBACK, pid))
        return
    if pid not in awaiting_pubrel:
        awaiting_pubrel.add(pid)
        with sh.lock:
            sh.got2[seq] = sh.got2.get(seq, 0) + 1
    raw.send(ack_packet(PUBREC, pid))


def test_kill9_under_load_loses_no_acknowledged_message(broker, seed=1234, mode="fsync"):
    sh = Shared()
    subscribed = threading.Event()
    rng = random.Random(seed)
    restart_ms = []
    t0 = time.monotonic()
    sub = threading.Thread(target=subscriber, args=(broker, sh, subscribed), daemon=True)
    sub.start()
    harness.wait_until(subscribed.is_set, 10, "the subscription")
    pub = threading.Thread(target=publisher, args=(broker, sh), daemon=True)
    pub.start()
    for cycle in range(CYCLES):
        time.sleep(rng.uniform(*RUN_S))
        broker.kill9()
        t_start = time.monotonic()
        broker.start()
        restart_ms.append((time.monotonic() - t_start) * 1000)
        check(time.monotonic() - t0 < TOTAL_LIMIT_S, "crash loop over its time bound")
    # Drain: stop publishing, wait until the subscriber has been quiet a while.
    sh.stop_pub.set()
    pub.join(10)
    deadline = time.monotonic() + 30
    for _ in range(3000):
        with sh.lock:
            quiet = time.monotonic() - sh.last_rx
        if quiet > DRAIN_QUIET_S or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    sh.stop.set()
    sub.join(10)

    with sh.lock:
        lost1 = sorted(s for s in sh.acked1 if s not in sh.got1)
        lost2 = sorted(s for s in sh.acked2 if s not in sh.got2)
        twice2 = sorted(s for s, n in sh.got2.items() if n > 1)
        dups1 = sum(n - 1 for n in sh.got1.values())
        print("crash: %d kill -9 cycles, acked QoS1 %d, QoS2 %d; delivered QoS1 %d (duplicates %d),"
              " QoS2 %d" % (CYCLES, len(sh.acked1), len(sh.acked2), len(sh.got1), dups1,
                            len(sh.got2)), flush=True)
        summary = {"sync": mode, "seed": seed, "cycles": CYCLES, "acked_qos1": len(sh.acked1),
                   "acked_qos2": len(sh.acked2), "lost_qos1": len(lost1), "lost_qos2": len(lost2),
                   "qos2_duplicated": len(twice2), "qos1_duplicates": dups1,
                   "restart_ms_mean": round(sum(restart_ms) / len(restart_ms), 1),
                   "restart_ms_max": round(max(restart_ms), 1),
                   "errors": len(sh.errors), "elapsed_s": round(time.monotonic() - t0, 1)}
        print("crash: " + json.dumps(summary), flush=True)
        if SUMMARY:
            with open(SUMMARY, "a") as f:
                f.write(json.dumps(summary) + "\n")
    check(not sh.errors, "; ".join(sh.errors[:3]))
    check(len(sh.acked1) > 0 and len(sh.acked2) > 0, "no message was acknowledged at all")
    check(not lost1, "acknowledged QoS 1 messages lost: %s" % lost1[:20])
    check(not lost2, "acknowledged QoS 2 messages lost: %s" % lost2[:20])
    check(not twice2, "QoS 2 messages delivered twice: %s" % twice2[:20])


# ---- MQTT 5 ----

SUB5_ID, WILL_SUB_ID = 7, 8  # the main subscriber's Subscription Identifiers
SHORT_S = 2                  # message / session expiry that passes during a run
LONG_S = 3600                # one that does not
WILL_DELAY_S = 3
DOWN_S = 3.5                 # the last kill -9 leaves the broker down this long


class Shared5(Shared):
    def __init__(self):
        super().__init__()
        self.acked_exp_long, self.acked_exp_short = set(), set()
        self.wills = {}  # topic -> [monotonic arrival time, ...] at the main subscriber

    def error(self, message):
        with self.lock:
            if len(self.errors) < 50:
                self.errors.append(message)


def connect5(port, client_id, clean, expiry_s, will=None):
    """A raw MQTT 5 connection after CONNACK 0x00 (short timeouts):
    returns (raw, session present flag)."""
    raw = harness.Raw.tcp(port, timeout_s=2)
    props = props_block(prop(P_SESSION_EXPIRY, expiry_s)) if expiry_s else b"\x00"
    raw.send(harness.connect5_packet(client_id, clean=clean, keepalive_s=30, props=props,
                                     will=will))
    _, _, body = raw.expect(CONNACK, timeout_s=3)
    check(body[1] == 0, "CONNACK %r" % body)
    return raw, body[0] & 1


def message5_props(seq, expiry_s):
    return props_block(prop(P_MESSAGE_EXPIRY, expiry_s), prop(P_CONTENT_TYPE, "text/seq"),
                       prop(P_USER_PROPERTY, ("seq", str(seq))), prop(P_USER_PROPERTY, ("k", "v")),
                       prop(P_CORRELATION_DATA, b"c%d" % seq))


def props5_problem(d, seq, sub_id, max_expiry_s):
    """Why the delivery d of message seq lacks what it was published with, or None."""
    props = d["props"]
    users = [v for k, v in props if k == P_USER_PROPERTY]
    if users != [(b"seq", b"%d" % seq), (b"k", b"v")]:
        return "user properties %r" % users
    if props_get(props, P_CONTENT_TYPE) != b"text/seq":
        return "content type %r" % props_get(props, P_CONTENT_TYPE)
    if props_get(props, P_CORRELATION_DATA) != b"c%d" % seq:
        return "correlation data %r" % props_get(props, P_CORRELATION_DATA)
    ids = [v for k, v in props if k == P_SUBSCRIPTION_ID]
    if ids != [sub_id]:
        return "subscription identifiers %r" % ids
    expiry = props_get(props, P_MESSAGE_EXPIRY)
    if expiry is None or not 0 < expiry <= max_expiry_s:
        return "message expiry %r" % expiry
    return None


def publisher5(broker, sh):
    """QoS 1 and 2 to c5/main with a 3600 s expiry; every tenth message (QoS 1)
    to c5/exp with 3600 s, every tenth but two with 2 s."""
    seq = 0
    for _ in range(100000):
        if sh.stop_pub.is_set():
            return
        try:
            raw, _ = connect5(broker.port, "crash-pub5", True, 0)
            for _ in range(1000000):
                if sh.stop_pub.is_set():
                    return
                seq += 1
                qos = 1 if seq % 2 else 2
                pid = seq % 65535 + 1
                topic, expiry, acked = "c5/main", LONG_S, sh.acked1 if qos == 1 else sh.acked2
                if seq % 10 == 1:
                    topic, acked = "c5/exp", sh.acked_exp_long
                elif seq % 10 == 3:
                    topic, expiry, acked = "c5/exp", SHORT_S, sh.acked_exp_short
                raw.send(publish5_packet(topic, b"%d" % seq, qos=qos, packet_id=pid,
                                         props=message5_props(seq, expiry)))
                _, _, body = raw.expect(PUBACK if qos == 1 else PUBREC, timeout_s=3)
                _, reason, _ = parse_ack5(body)
                if reason != 0:  # 0x10: a subscription was lost
                    sh.error("%s %d acknowledged with reason 0x%02x" % (topic, seq, reason))
                    continue
                with sh.lock:
                    acked.add(seq)
                if qos == 2:
                    raw.send(ack5_packet(PUBREL, pid))
                    raw.expect(PUBCOMP, timeout_s=3)
        except (OSError, harness.TestFailure):
            time.sleep(0.05)  # broker down: retry until it is back


def subscriber5(broker, sh, subscribed_once):
    awaiting_pubrel = set()  # the client's QoS 2 state, kept across reconnects
    for _ in range(100000):
        if sh.stop.is_set():
            return
        try:
            raw, present = connect5(broker.port, "crash-sub5", False, LONG_S)
            if subscribed_once.is_set() and not present:
                sh.error("session present 0 after a restart: session lost")
            if not subscribed_once.is_set():
                for pid, (f, sub_id) in enumerate([("c5/main", SUB5_ID),
                                                   ("c5/will/#", WILL_SUB_ID)], 1):
                    raw.send(subscribe5_packet(pid, [(f, 2)],
                                               props_block(prop(P_SUBSCRIPTION_ID, sub_id))))
                    _, _, body = raw.expect(SUBACK, timeout_s=3)
                    check(body[-1] == 2, "SUBACK %r" % body)
                subscribed_once.set()
            receive_loop5(raw, sh, awaiting_pubrel)
        except (OSError, harness.TestFailure):
            time.sleep(0.05)


def receive_loop5(raw, sh, awaiting_pubrel):
    for _ in range(10000000):
        if sh.stop.is_set():
            return
        try:
            pkt = raw.read_packet(timeout_s=0.5)
        except harness.TestFailure:
            continue  # quiet: poll the stop flag
        if pkt is None:
            raise OSError("broker closed")
        type_, flags, body = pkt
        with sh.lock:
            sh.last_rx = time.monotonic()
        if type_ == PUBLISH:
            handle_publish5(raw, sh, awaiting_pubrel, parse_publish5(flags, body))
        elif type_ == PUBREL:
            pid = parse_ack5(body)[0]
            awaiting_pubrel.discard(pid)
            raw.send(ack5_packet(PUBCOMP, pid))


def handle_publish5(raw, sh, awaiting_pubrel, d):
    pid, qos = d["packet_id"], d["qos"]
    is_new = qos == 1 or pid not in awaiting_pubrel  # method B for QoS 2
    if qos == 2:
        awaiting_pubrel.add(pid)
    if is_new and d["topic"].startswith("c5/will/"):
        with sh.lock:
            sh.wills.setdefault(d["topic"], []).append(time.monotonic())
    elif is_new:
        seq = int(d["payload"])
        problem = props5_problem(d, seq, SUB5_ID, LONG_S)
        if d["topic"] != "c5/main" or problem:
            sh.error("delivery of %d on %s: %s" % (seq, d["topic"], problem))
        with sh.lock:
            got = sh.got1 if qos == 1 else sh.got2
            got[seq] = got.get(seq, 0) + 1
    raw.send(ack5_packet(PUBACK if qos == 1 else PUBREC, pid))


def will5(topic, delay_s):
    return (topic, b"will", 2, False, props_block(prop(P_WILL_DELAY, delay_s)))


def setup_side_sessions5(broker):
    """The sessions and wills checked at the end; returns the connections
    left open (their clients are connected at the first kill -9)."""
    exp, _ = connect5(broker.port, "crash-exp5", True, LONG_S)
    exp.send(subscribe5_packet(1, [("c5/exp", 1), ("c5/will/#", 2)]))
    exp.expect(SUBACK, timeout_s=3)
    exp.send(disconnect5_packet())
    short, _ = connect5(broker.port, "crash-short5", True, SHORT_S)
    short.send(subscribe5_packet(1, [("c5/main", 1)]))
    short.expect(SUBACK, timeout_s=3)
    short.send(disconnect5_packet())
    online, _ = connect5(broker.port, "crash-online5", True, SHORT_S)
    online.send(subscribe5_packet(1, [("c5/main", 1)]))
    online.expect(SUBACK, timeout_s=3)
    return [online,
            connect5(broker.port, "crash-will5", True, LONG_S,
                     will5("c5/will/delay", WILL_DELAY_S))[0],
            connect5(broker.port, "crash-willexp5", True, SHORT_S,
                     will5("c5/will/expiry", LONG_S))[0],
            connect5(broker.port, "crash-willresume5", True, LONG_S,
                     will5("c5/will/resume", LONG_S))[0]]


def drain_exp_subscriber5(broker):
    """Connects crash-exp5 and reads its queue until quiet: (present,
    {seq: [delivery, ...]} of c5/exp, {will topic: count})."""
    raw, present = connect5(broker.port, "crash-exp5", False, LONG_S)
    got, wills = {}, {}
    awaiting_pubrel = set()
    quiet_until = time.monotonic() + 3
    for _ in range(10000000):
        if time.monotonic() > quiet_until:
            break
        try:
            pkt = raw.read_packet(timeout_s=0.5)
        except harness.TestFailure:
            continue
        check(pkt is not None, "crash-exp5: the broker closed the connection")
        quiet_until = time.monotonic() + DRAIN_QUIET_S
        type_, flags, body = pkt
        if type_ == PUBREL:
            raw.send(ack5_packet(PUBCOMP, parse_ack5(body)[0]))
            continue
        if type_ != PUBLISH:
            continue
        d = parse_publish5(flags, body)
        if d["qos"] == 2 and d["packet_id"] in awaiting_pubrel:
            pass  # a resend of one already counted
        elif d["topic"].startswith("c5/will/"):
            wills[d["topic"]] = wills.get(d["topic"], 0) + 1
        else:
            got.setdefault(int(d["payload"]), []).append(d)
        if d["qos"] == 2:
            awaiting_pubrel.add(d["packet_id"])
        raw.send(ack5_packet(PUBACK if d["qos"] == 1 else PUBREC, d["packet_id"]))
    raw.send(disconnect5_packet())
    raw.close()
    return present, got, wills


def present5(broker, client_id, expiry_s=0):
    raw, present = connect5(broker.port, client_id, False, expiry_s)
    raw.send(disconnect5_packet())
    raw.close()
    return present


def test_kill9_v5_sessions_expiry_and_wills(broker, seed=1234, mode="fsync"):
    sh = Shared5()
    subscribed = threading.Event()
    rng = random.Random(seed)
    restart_ms = []
    t0 = time.monotonic()
    sub = threading.Thread(target=subscriber5, args=(broker, sh, subscribed), daemon=True)
    sub.start()
    harness.wait_until(subscribed.is_set, 10, "the subscription")
    side = setup_side_sessions5(broker)
    pub = threading.Thread(target=publisher5, args=(broker, sh), daemon=True)
    pub.start()
    t_first_kill = None
    for cycle in range(CYCLES):
        time.sleep(rng.uniform(*RUN_S))
        if t_first_kill is None:
            t_first_kill = time.monotonic()
        broker.kill9()
        t_start = time.monotonic()
        broker.start()
        restart_ms.append((time.monotonic() - t_start) * 1000)
        check(time.monotonic() - t0 < TOTAL_LIMIT_S, "crash loop over its time bound")
    t_last_restart = time.monotonic()
    for raw in side:
        raw.close()
    sh.stop_pub.set()
    t_stop_pub = time.monotonic()
    pub.join(10)
    deadline = time.monotonic() + 30
    for _ in range(3000):
        with sh.lock:
            quiet = time.monotonic() - sh.last_rx
        if quiet > DRAIN_QUIET_S or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    sh.stop.set()
    sub.join(10)

    # A session that expires while the broker is down is gone at the start,
    # and the short-lived messages' deadlines pass meanwhile.
    down, _ = connect5(broker.port, "crash-down5", True, SHORT_S)
    down.send(subscribe5_packet(1, [("c5/main", 1)]))
    down.expect(SUBACK, timeout_s=3)
    down.send(disconnect5_packet())
    check(down.wait_closed(), "crash-down5: no close after DISCONNECT")
    down.close()
    time.sleep(0.2)  # the turn that closed it commits the disconnect time
    broker.kill9()
    time.sleep(max(DOWN_S, SHORT_S + 2 - (time.monotonic() - t_stop_pub)))
    broker.start()
    gone = {cid: present5(broker, cid) for cid in
            ("crash-down5", "crash-short5", "crash-online5", "crash-willexp5")}
    resumed = present5(broker, "crash-willresume5", LONG_S)  # its will never goes
    exp_present, exp_got, exp_wills = drain_exp_subscriber5(broker)

    with sh.lock:
        lost1 = sorted(s for s in sh.acked1 if s not in sh.got1)
        lost2 = sorted(s for s in sh.acked2 if s not in sh.got2)
        twice2 = sorted(s for s, n in sh.got2.items() if n > 1)
        dups1 = sum(n - 1 for n in sh.got1.values())
        lost_exp = sorted(s for s in sh.acked_exp_long if s not in exp_got)
        expired_sent = sorted(s for s in exp_got if s % 10 == 3)
        wills = {k: list(v) for k, v in sh.wills.items()}
        summary = {"mqtt": 5, "sync": mode, "seed": seed, "cycles": CYCLES,
                   "acked_qos1": len(sh.acked1), "acked_qos2": len(sh.acked2),
                   "lost_qos1": len(lost1), "lost_qos2": len(lost2),
                   "qos2_duplicated": len(twice2), "qos1_duplicates": dups1,
                   "acked_expiring": len(sh.acked_exp_short),
                   "expired_delivered": len(expired_sent),
                   "acked_lasting": len(sh.acked_exp_long), "lost_lasting": len(lost_exp),
                   "will_delay_s": [round(t - t_first_kill, 2) for t in
                                    wills.get("c5/will/delay", [])],
                   "restart_ms_mean": round(sum(restart_ms) / len(restart_ms), 1),
                   "restart_ms_max": round(max(restart_ms), 1),
                   "errors": len(sh.errors), "elapsed_s": round(time.monotonic() - t0, 1)}
        print("crash: " + json.dumps(summary), flush=True)
        if SUMMARY:
            with open(SUMMARY, "a") as f:
                f.write(json.dumps(summary) + "\n")
    check(not sh.errors, "; ".join(sh.errors[:3]))
    check(len(sh.acked1) > 0 and len(sh.acked2) > 0, "no message was acknowledged at all")
    check(not lost1, "acknowledged QoS 1 messages lost: %s" % lost1[:20])
    check(not lost2, "acknowledged QoS 2 messages lost: %s" % lost2[:20])
    check(not twice2, "QoS 2 messages delivered twice: %s" % twice2[:20])
    # Message expiry across kills and downtime.
    check(exp_present, "crash-exp5 (expiry %d s) lost its session" % LONG_S)
    check(len(sh.acked_exp_short) > 0, "no expiring message was acknowledged")
    check(not expired_sent, "messages past their expiry delivered: %s" % expired_sent[:20])
    check(not lost_exp, "acknowledged messages (3600 s expiry) lost: %s" % lost_exp[:20])
    elapsed = time.monotonic() - t0
    for seq, ds in exp_got.items():
        problem = props5_problem(ds[0], seq, None, LONG_S)
        problem = problem if problem and not problem.startswith("subscription") else None
        expiry = props_get(ds[0]["props"], P_MESSAGE_EXPIRY)
        check(not problem and expiry >= LONG_S - elapsed - 2,
              "queued message %d: %s (expiry %r after %.1f s)" % (seq, problem, expiry, elapsed))
    # Session expiry.
    check(not any(gone.values()), "sessions that should have expired: %s"
          % [cid for cid, p in gone.items() if p])
    check(resumed, "crash-willresume5 (expiry %d s) lost its session" % LONG_S)
    # Wills: once each, after their delay, none for the resumed session.
    check(exp_wills == {"c5/will/delay": 1, "c5/will/expiry": 1},
          "wills queued for the offline subscriber: %r" % exp_wills)
    delay_at = wills.get("c5/will/delay", [])
    if delay_at:
        check(len(delay_at) == 1, "the delayed will arrived %d times" % len(delay_at))
        after = delay_at[0] - t_first_kill
        check(after >= WILL_DELAY_S, "the delayed will came %.2f s after the first kill: early"
              % after)
        # Only while kills went on past its deadline: had each restart reset it,
        # it would have come only after the last one.
        if t_last_restart > t_first_kill + WILL_DELAY_S + 3:
            check(after <= WILL_DELAY_S + 3, "the delayed will came %.2f s after the first kill "
                  "(its deadline did not survive the kills)" % after)
    check(len(wills.get("c5/will/expiry", [])) <= 1, "the session-end will arrived twice")
    check("c5/will/resume" not in wills, "the will of a resumed session was published")


# ---- Shared-subscription groups ----

SHARE_FILTER = "$share/g/cs/#"
SHARE_MEMBERS = (("cs-m0", 5), ("cs-m1", 3), ("cs-m2", 3))  # (client id, MQTT version)
# Kill cycles of the shared variant (a few in CI) and the most messages the
# publisher sends per cycle (the bound on each cycle's group queue).
SHARE_CYCLES = int(os.environ.get("SOL_CRASH_SHARED_CYCLES", "4"))
SHARE_MESSAGES = int(os.environ.get("SOL_CRASH_SHARED_MESSAGES", "1500"))
SHARE_TOTAL_LIMIT_S = 90 + SHARE_CYCLES * (RUN_S[1] + 8)
SOLCTL = os.path.join(harness.BUILD_DIR, "solctl")


class SharedGroup(Shared):
    """Shared state of the group variant: got1 / got2 map seq -> [member, ...]
    (one entry per new delivery, as the member's QoS 2 state counts it)."""

    def __init__(self):
        super().__init__()
        self.members_off = threading.Event()  # the driver wants every member offline
        self.draining = threading.Event()     # stay connected: the final drain
        self.budget = 0                       # messages the publisher may still send this cycle
        self.connected = {}                   # member -> connected now
        self.connects = {}                    # member -> connections made
        self.connected_to = {}                # member -> broker start it last connected to
        self.max_group_queue = 0              # deepest group queue solctl saw

    def error(self, message):
        with self.lock:
            if len(self.errors) < 50:
                self.errors.append(message)


def group_publisher(broker, sh):
    """QoS 1 and 2 into cs/t (3.1.1, clean), as fast as the acks come back,
    at most sh.budget per cycle."""
    seq = 0
    for _ in range(100000):
        if sh.stop_pub.is_set():
            return
        try:
            raw, _ = connect(broker.port, "cs-pub", True)
            for _ in range(10000000):
                if sh.stop_pub.is_set():
                    return
                with sh.lock:
                    may_send = sh.budget > 0
                    sh.budget -= 1 if may_send else 0
                if not may_send:
                    time.sleep(0.01)
                    continue
                seq += 1
                qos = 1 if seq % 2 else 2
                pid = seq % 65535 + 1
                raw.send(publish_packet("cs/t", b"%d" % seq, qos=qos, packet_id=pid))
                raw.expect(PUBACK if qos == 1 else PUBREC, timeout_s=3)
                with sh.lock:
                    (sh.acked1 if qos == 1 else sh.acked2).add(seq)
                if qos == 2:
                    raw.send(ack_packet(PUBREL, pid))
                    raw.expect(PUBCOMP, timeout_s=3)
        except (OSError, harness.TestFailure):
            time.sleep(0.05)  # broker down: retry until it is back


class GroupMember:
    """A persistent member of SHARE_FILTER (MQTT 3.1.1 or 5) that comes and
    goes on its own (online 0.2..1.5 s, offline 0.05..0.5 s, leaving with
    DISCONNECT or by dropping the socket), and stays offline while the driver
    asks every member to. Its QoS 2 state (packet ids awaiting PUBREL) lasts
    across reconnects, as a real client's does (method B)."""

    def __init__(self, broker, sh, client_id, version, rng):
        self.broker, self.sh = broker, sh
        self.client_id, self.version, self.rng = client_id, version, rng
        self.awaiting_pubrel = set()
        self.subscribed = False

    def connect(self):
        if self.version == 5:
            raw, present = connect5(self.broker.port, self.client_id, False, LONG_S)
        else:
            raw, present = connect(self.broker.port, self.client_id, False)
        if self.subscribed and not present:
            self.sh.error("%s: session present 0: session lost" % self.client_id)
        if not self.subscribed:
            if self.version == 5:
                raw.send(subscribe5_packet(1, [(SHARE_FILTER, 2)]))
            else:
                raw.send(subscribe_packet(1, [(SHARE_FILTER, 2)]))
            _, _, body = raw.expect(SUBACK, timeout_s=3)
            check(body[-1] == 2, "%s: SUBACK %r" % (self.client_id, body))
            self.subscribed = True
        return raw

    def run(self):
        sh = self.sh
        for _ in range(100000):
            if sh.stop.is_set():
                return
            if sh.members_off.is_set() and not sh.draining.is_set():
                time.sleep(0.02)
                continue
            raw = None
            try:
                raw = self.connect()
                with sh.lock:
                    sh.connected[self.client_id] = True
                    sh.connects[self.client_id] = sh.connects.get(self.client_id, 0) + 1
                    sh.connected_to[self.client_id] = self.broker.starts
                self.receive(raw, time.monotonic() + self.rng.uniform(0.2, 1.5))
                if self.rng.random() < 0.5:
                    raw.send(disconnect5_packet() if self.version == 5 else
                             harness.DISCONNECT_BYTES)
            except (OSError, harness.TestFailure):
                pass
            finally:
                if raw is not None:
                    raw.close()
                with sh.lock:
                    sh.connected[self.client_id] = False
            if not sh.draining.is_set():
                time.sleep(self.rng.uniform(0.05, 0.5))

    def receive(self, raw, leave_at):
        sh = self.sh
        for _ in range(10000000):
            if sh.stop.is_set():
                return
            if not sh.draining.is_set() and (sh.members_off.is_set() or
                                             time.monotonic() > leave_at):
                return
            try:
                pkt = raw.read_packet(timeout_s=0.1)
            except harness.TestFailure:
                continue  # quiet: poll the flags
            if pkt is None:
                raise OSError("broker closed")
            type_, flags, body = pkt
            with sh.lock:
                sh.last_rx = time.monotonic()
            if type_ == PUBLISH:
                self.on_publish(raw, flags, body)
            elif type_ == PUBREL:
                pid = struct.unpack("!H", body[:2])[0]
                self.awaiting_pubrel.discard(pid)
                raw.send(ack5_packet(PUBCOMP, pid) if self.version == 5 else
                         ack_packet(PUBCOMP, pid))

    def on_publish(self, raw, flags, body):
        if self.version == 5:
            d = parse_publish5(flags, body)
            topic, pid, payload, qos = d["topic"], d["packet_id"], d["payload"], d["qos"]
        else:
            topic, pid, payload, qos, _, _ = parse_publish(flags, body)
        if topic != "cs/t" or qos == 0:
            self.sh.error("%s: delivery on %r at QoS %d" % (self.client_id, topic, qos))
            return
        is_new = qos == 1 or pid not in self.awaiting_pubrel
        if qos == 2:
            self.awaiting_pubrel.add(pid)
        if is_new:
            with self.sh.lock:
                got = self.sh.got1 if qos == 1 else self.sh.got2
                got.setdefault(int(payload), []).append(self.client_id)
        ack = PUBACK if qos == 1 else PUBREC
        raw.send(ack5_packet(ack, pid) if self.version == 5 else ack_packet(ack, pid))


def solctl_group_queue_len(broker):
    """Entries in the group queues now (solctl beside the running broker)."""
    r = subprocess.run([SOLCTL, "dump", "--json", "groups", "--data-dir", broker.data_dir],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, "solctl dump groups: %s" % r.stderr)
    return len([l for l in r.stdout.splitlines() if l.strip()])


def members_connected(sh):
    with sh.lock:
        return sum(1 for v in sh.connected.values() if v)


def off_phase(broker, sh, rng):
    """Every member offline: the publisher's messages go to the group queue,
    which then lives through a kill -9."""
    sh.members_off.set()
    harness.wait_until(lambda: members_connected(sh) == 0, 10, "every member offline")
    time.sleep(0.2)  # the broker sees the closes; then only the group queue takes messages
    with sh.lock:
        sh.budget = SHARE_MESSAGES
    time.sleep(rng.uniform(*RUN_S))
    depth = solctl_group_queue_len(broker)
    with sh.lock:
        sh.max_group_queue = max(sh.max_group_queue, depth)


def drain_group(broker, sh):
    """Members stay connected until nothing arrives for DRAIN_QUIET_S, once
    each is connected to the broker's last start (so its own queue and
    inflight go out)."""
    sh.draining.set()
    sh.members_off.clear()

    def all_connected():
        with sh.lock:
            return all(sh.connected.get(cid) and sh.connected_to.get(cid) == broker.starts
                       for cid, _ in SHARE_MEMBERS)
    harness.wait_until(all_connected, 20, "every member connected after the last restart")
    deadline = time.monotonic() + 60
    for _ in range(6000):
        with sh.lock:
            quiet = time.monotonic() - sh.last_rx
        if quiet > DRAIN_QUIET_S or time.monotonic() > deadline:
            break
        time.sleep(0.05)


def test_kill9_shared_group(broker, seed=1234, mode="fsync"):
    sh = SharedGroup()
    rng = random.Random(seed)
    restart_ms = []
    t0 = time.monotonic()
    members = [GroupMember(broker, sh, cid, v, random.Random("%d-%s" % (seed, cid)))
               for cid, v in SHARE_MEMBERS]
    threads = [threading.Thread(target=m.run, daemon=True) for m in members]
    for t in threads:
        t.start()
    harness.wait_until(lambda: all(m.subscribed for m in members), 10, "the members' SUBACKs")
    pub = threading.Thread(target=group_publisher, args=(broker, sh), daemon=True)
    pub.start()
    off_cycles = 0
    for cycle in range(SHARE_CYCLES):
        # Every third cycle from the second on has no member connected; the
        # next cycle starts with the kill still in place and lifts it.
        if cycle % 3 == 1:
            off_phase(broker, sh, rng)
            off_cycles += 1
        else:
            with sh.lock:
                sh.budget = SHARE_MESSAGES
            sh.members_off.clear()
            time.sleep(rng.uniform(*RUN_S))
        broker.kill9()
        t_start = time.monotonic()
        broker.start()
        restart_ms.append((time.monotonic() - t_start) * 1000)
        check(time.monotonic() - t0 < SHARE_TOTAL_LIMIT_S, "crash loop over its time bound")
    sh.stop_pub.set()
    pub.join(10)
    drain_group(broker, sh)
    sh.stop.set()
    for t in threads:
        t.join(10)
    queue_left = solctl_group_queue_len(broker)
    chk = subprocess.run([SOLCTL, "check", "--data-dir", broker.data_dir], capture_output=True,
                         text=True, timeout=60)

    with sh.lock:
        lost1 = sorted(s for s in sh.acked1 if s not in sh.got1)
        lost2 = sorted(s for s in sh.acked2 if s not in sh.got2)
        twice2 = sorted(s for s, who in sh.got2.items() if len(who) > 1)
        moved = sorted(s for got in (sh.got1, sh.got2) for s, who in got.items()
                       if len(set(who)) > 1)
        dups1 = sum(len(who) - 1 for who in sh.got1.values())
        per_member = {cid: sum(1 for got in (sh.got1, sh.got2) for who in got.values()
                               for w in who if w == cid) for cid, _ in SHARE_MEMBERS}
        summary = {"variant": "shared", "sync": mode, "seed": seed, "cycles": SHARE_CYCLES,
                   "off_cycles": off_cycles, "acked_qos1": len(sh.acked1),
                   "acked_qos2": len(sh.acked2), "lost_qos1": len(lost1),
                   "lost_qos2": len(lost2), "qos2_duplicated": len(twice2),
                   "qos1_duplicates": dups1, "moved_between_members": len(moved),
                   "delivered_per_member": per_member,
                   "member_connects": dict(sh.connects),
                   "max_group_queue": sh.max_group_queue, "group_queue_left": queue_left,
                   "restart_ms_mean": round(sum(restart_ms) / len(restart_ms), 1),
                   "restart_ms_max": round(max(restart_ms), 1),
                   "errors": len(sh.errors), "elapsed_s": round(time.monotonic() - t0, 1)}
        print("crash: " + json.dumps(summary), flush=True)
        if SUMMARY:
            with open(SUMMARY, "a") as f:
                f.write(json.dumps(summary) + "\n")
    check(not sh.errors, "; ".join(sh.errors[:3]))
    check(len(sh.acked1) > 0 and len(sh.acked2) > 0, "no message was acknowledged at all")
    check(not lost1, "acknowledged QoS 1 messages lost: %s" % lost1[:20])
    check(not lost2, "acknowledged QoS 2 messages lost: %s" % lost2[:20])
    check(not twice2, "QoS 2 messages delivered twice in the group: %s" % twice2[:20])
    check(not moved, "messages delivered to two members: %s" % moved[:20])
    check(off_cycles == 0 or sh.max_group_queue > 0,
          "no message waited in the group queue while every member was offline")
    check(queue_left == 0, "%d entries left in the group queue after the drain" % queue_left)
    check(chk.returncode == 0, "solctl check: %s%s" % (chk.stdout[-500:], chk.stderr[-300:]))
    check(sum(1 for n in per_member.values() if n > 0) >= 2,
          "the group's messages went to fewer than two members: %r" % per_member)


def make_test(mode, seed, version):
    """nosync leaves the last meta page in the page cache: still enough for kill -9."""
    if version == "shared":
        def test(broker):
            test_kill9_shared_group(broker, seed, mode)
        test.__name__ = "test_kill9_shared_%s_seed_%d_group_loses_nothing" % (mode, seed)
        return test
    if version == 5:
        def test(broker):
            test_kill9_v5_sessions_expiry_and_wills(broker, seed, mode)
        test.__name__ = "test_kill9_v5_%s_seed_%d_sessions_expiry_and_wills" % (mode, seed)
        return test

    def test(broker):
        test_kill9_under_load_loses_no_acknowledged_message(broker, seed, mode)
    test.__name__ = "test_kill9_%s_seed_%d_loses_no_acknowledged_message" % (mode, seed)
    return test


def main():
    r = harness.Runner()
    for version in VERSIONS:
        for mode in MODES:
            for seed in SEEDS:
                # Queue limits off: a drop by a configured limit is allowed (and
                # logged), and would count as "lost" here, where durability is tested.
                r.run(make_test(mode, seed, version),
                      extra_config=["storage_sync %s" % mode, "max_queued_messages 0",
                                    "max_queued_bytes 0"])
    r.finish()


if __name__ == "__main__":
    main()
