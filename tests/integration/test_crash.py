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
"""

import json
import os
import random
import struct
import sys
import threading
import time

import harness
from harness import (PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBACK, ack_packet, check,
                     parse_publish, publish_packet, subscribe_packet)

CYCLES = int(os.environ.get("SOL_CRASH_CYCLES", "8"))
SEEDS = [int(x) for x in os.environ.get("SOL_CRASH_SEEDS", "1234").split(",") if x.strip()]
MODES = [x for x in os.environ.get("SOL_CRASH_MODES", "fsync,nosync").split(",") if x]
# each cycle runs this long (uniform) before kill -9
RUN_S = tuple(float(x) for x in os.environ.get("SOL_CRASH_RUN_S", "0.4,1.2").split(","))
SUMMARY = os.environ.get("SOL_CRASH_SUMMARY", "")
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


def make_test(mode, seed):
    """nosync leaves the last meta page in the page cache: still enough for kill -9."""
    def test(broker):
        test_kill9_under_load_loses_no_acknowledged_message(broker, seed, mode)
    test.__name__ = "test_kill9_%s_seed_%d_loses_no_acknowledged_message" % (mode, seed)
    return test


def main():
    r = harness.Runner()
    for mode in MODES:
        for seed in SEEDS:
            # Queue limits off: a drop by a configured limit is allowed (and
            # logged), and would count as "lost" here, where durability is tested.
            r.run(make_test(mode, seed), extra_config=["storage_sync %s" % mode,
                                                       "max_queued_messages 0",
                                                       "max_queued_bytes 0"])
    r.finish()


if __name__ == "__main__":
    main()
