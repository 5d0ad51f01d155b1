"""test_power_cut.py - simulated power loss: what sol acknowledged survives.

kill -9 leaves the page cache intact, so test_crash.py proves only what
survives the broker's death. Here the broker runs with the fault-injection
shim preloaded (tests/fault/solfault.c, build/libsolfault.so): at a random
moment it reverts an adversarial subset of the writes to data.mdb that were
not yet fsynced (none, all, a random subset, half the sectors, one torn
write, an in-order prefix; 512-byte or 4 KiB sectors; unsynced directory
entries) and SIGKILLs the broker, leaving on disk exactly what a machine that
lost power at that instant could have left. Then:
- `solctl check` must pass on the surviving files (in every mode);
- sol must start on them (in every mode), and the time to accept is recorded;
- every acknowledged SUBSCRIBE/UNSUBSCRIBE is still in effect (solctl dump);
- every retained topic holds its last acknowledged value or a later one;
and, at the end, after a final start without the shim and a drain:
- every message whose PUBACK/PUBREC the publisher received was delivered to
  both persistent subscribers (QoS 1 at least once, QoS 2 exactly once to the
  QoS 2 subscriber) - in fsync mode. In nosync mode the loss is reported, and
  each lost message must have been acknowledged within NOSYNC_WINDOW_S of the
  cut (README: at most the last commit is lost).

Clients: a publisher keeps PIPELINE QoS 1/QoS 2 messages in flight (unique
sequence numbers; every 10th is retained on one of 4 topics); subscriber A
(clean session 0, pc/# at QoS 2) and subscriber B (clean session 0, pc/m at
QoS 1) read and ack; B also subscribes a new filter and unsubscribes an old
one at each reconnect. Clients keep their QoS 2 state across reconnects.

Environment (defaults: the short run CI does):
  SOL_POWERCUT_CYCLES=N      cuts per campaign in fsync mode (24; ASan 8)
  SOL_POWERCUT_NOSYNC_CYCLES=N  cuts per campaign in nosync mode (12; ASan 4)
  SOL_POWERCUT_SEEDS=1,2     one campaign per seed and mode (1)
  SOL_POWERCUT_MODES=fsync,nosync   storage_sync modes to run
  SOL_POWERCUT_CUT_MODE=M    the shim's revert mode (mix)
  SOL_POWERCUT_REPORT_ONLY=1 count violations instead of failing (to show what
                             the harness catches, e.g. on an older build)
  SOL_POWERCUT_SUMMARY=PATH  append one JSON line per campaign
  SOL_FAULT_LIB=PATH         the shim (build/libsolfault.so)
Long run (see README, Durability):
  SOL_POWERCUT_CYCLES=250 SOL_POWERCUT_NOSYNC_CYCLES=100 SOL_POWERCUT_SEEDS=1,2,3,4 \
      /usr/bin/python3 tests/integration/test_power_cut.py
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
from harness import (CONNACK, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBACK, UNSUBACK, Raw,
                     ack_packet, check, connect_packet, packet, parse_publish, publish_packet,
                     subscribe_packet)

SHIM = os.environ.get("SOL_FAULT_LIB", os.path.join(harness.BUILD_DIR, "libsolfault.so"))
SOLCTL = os.path.join(harness.BUILD_DIR, "solctl")
PIPELINE = 16
CUT_AFTER_MS = (150, 1100)  # from the shim's load to the cut (uniform)
NOSYNC_WINDOW_S = 1.5       # nosync: a lost message was acked at most this long before the cut
DRAIN_QUIET_S = 1.5
RETAINED_TOPICS = 4


asan_runtime = harness.asan_runtime


ASAN = asan_runtime()
IS_ASAN = ASAN is not None
CYCLES = int(os.environ.get("SOL_POWERCUT_CYCLES", "8" if IS_ASAN else "24"))
NOSYNC_CYCLES = int(os.environ.get("SOL_POWERCUT_NOSYNC_CYCLES", "4" if IS_ASAN else "12"))
SEEDS = [int(s) for s in os.environ.get("SOL_POWERCUT_SEEDS", "1").split(",") if s.strip()]
SYNC_MODES = [m for m in os.environ.get("SOL_POWERCUT_MODES", "fsync,nosync").split(",") if m]
CUT_MODE = os.environ.get("SOL_POWERCUT_CUT_MODE", "mix")
REPORT_ONLY = os.environ.get("SOL_POWERCUT_REPORT_ONLY", "") == "1"
SUMMARY = os.environ.get("SOL_POWERCUT_SUMMARY", "")


class Model:
    """What the clients saw, shared by the client threads (under lock)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.stop_pub = threading.Event()
        self.stop = threading.Event()
        self.cycle = 0
        self.acked = {}          # seq -> (qos, topic, broker process number, ack wall time)
        self.got_a, self.got_b = {}, {}
        self.ret_acked = {}      # retained topic -> [(acked seq, ack wall time)], increasing
        self.subs_acked = {}     # B's filters whose SUBACK arrived (no UNSUBSCRIBE sent) -> time
        self.subs_sent = set()   # ... SUBSCRIBE sent (maybe unacked)
        self.unsubs_acked = {}   # filter -> UNSUBACK wall time
        self.last_rx = time.monotonic()
        self.errors = []
        self.cut_walls = []      # wall time of each cut (from the shim's report)


connect = harness.connect_session


def unsubscribe_packet(packet_id, filters):
    body = struct.pack("!H", packet_id)
    for f in filters:
        body += harness.mqtt_string(f)
    return packet(10, 2, body)


# ---- publisher ------------------------------------------------------------------

def publisher(broker, m, seq_box, subs):
    # Publish only once both subscriptions exist, so every message has its readers.
    for s in subs:
        if not s.subscribed.wait(60):
            with m.lock:
                m.errors.append("%s never got its SUBACK" % s.name)
            return
    for _ in range(1_000_000):
        if m.stop_pub.is_set():
            return
        try:
            raw, _ = connect(broker.port, "pc-pub", True)
            # Acks on this connection come from this broker process, which the
            # cut with the same number ends.
            publish_window(raw, m, seq_box, broker.starts)
        except (OSError, harness.TestFailure, ValueError):
            time.sleep(0.02)


def publish_window(raw, m, seq_box, instance):
    inflight = {}  # packet id -> (seq, qos, topic)
    for _ in range(100_000_000):
        while len(inflight) < PIPELINE and not m.stop_pub.is_set():
            seq_box[0] += 1
            seq = seq_box[0]
            qos = 1 if seq % 2 else 2
            retain = seq % 10 == 0
            topic = "pc/ret/%d" % (seq // 10 % RETAINED_TOPICS) if retain else "pc/m"
            pid = seq % 65535 + 1
            inflight[pid] = (seq, qos, topic)
            raw.send(publish_packet(topic, b"%d" % seq, qos=qos, packet_id=pid, retain=retain))
        if m.stop_pub.is_set() and not inflight:
            return
        pkt = raw.read_packet(timeout_s=3)
        if pkt is None:
            raise OSError("broker closed")
        type_, _, body = pkt
        (pid,) = struct.unpack("!H", body[:2])
        if type_ in (PUBACK, PUBREC) and pid in inflight:
            seq, qos, topic = inflight[pid]
            now = time.time()
            with m.lock:
                m.acked[seq] = (qos, topic, instance, now)
                if topic.startswith("pc/ret/"):
                    m.ret_acked.setdefault(topic, []).append((seq, now))
            if type_ == PUBACK:
                del inflight[pid]
            else:
                raw.send(ack_packet(PUBREL, pid))
        elif type_ == PUBCOMP:
            inflight.pop(pid, None)


# ---- subscribers ------------------------------------------------------------------

class Subscriber:
    def __init__(self, name, filt, qos, got, churn):
        self.name, self.filt, self.qos, self.got, self.churn = name, filt, qos, got, churn
        self.awaiting_pubrel = {}  # packet id -> seq: the client's QoS 2 state, kept across
                                   # reconnects
        self.pid_reuse = 0         # a new message under a packet id still awaiting PUBREL
        self.subscribed = threading.Event()
        self.connections = 0
        self.pending = {}  # packet id -> ("sub"|"unsub", filter)

    def run(self, broker, m):
        for _ in range(1_000_000):
            if m.stop.is_set():
                return
            try:
                raw, present = connect(broker.port, self.name, False)
                self.connections += 1
                if self.subscribed.is_set() and not present:
                    with m.lock:
                        m.errors.append("%s: session present 0 after a restart (cycle %d)"
                                        % (self.name, m.cycle))
                if not self.subscribed.is_set():
                    raw.send(subscribe_packet(1, [(self.filt, self.qos)]))
                    raw.expect(SUBACK, timeout_s=3)
                    self.subscribed.set()
                if self.churn:
                    self.send_churn(raw, m)
                self.receive(raw, m)
            except (OSError, harness.TestFailure, ValueError):
                time.sleep(0.02)

    def send_churn(self, raw, m):
        n = self.connections
        new, old = "pc/extra/%d" % n, "pc/extra/%d" % (n - 2)
        pid_sub, pid_unsub = 2 + (n * 2) % 60000, 3 + (n * 2) % 60000
        with m.lock:
            m.subs_sent.add(new)
            self.pending[pid_sub] = ("sub", new)
            if old in m.subs_sent:
                m.subs_acked.pop(old, None)  # from now on either state is allowed
                m.subs_sent.discard(old)
                self.pending[pid_unsub] = ("unsub", old)
        raw.send(subscribe_packet(pid_sub, [(new, 1)]))
        if pid_unsub in self.pending:
            raw.send(unsubscribe_packet(pid_unsub, [old]))

    def receive(self, raw, m):
        for _ in range(100_000_000):
            if m.stop.is_set():
                return
            try:
                pkt = raw.read_packet(timeout_s=0.3)
            except harness.TestFailure:
                continue
            if pkt is None:
                raise OSError("broker closed")
            type_, flags, body = pkt
            with m.lock:
                m.last_rx = time.monotonic()
            if type_ == PUBLISH:
                self.on_publish(raw, m, flags, body)
            elif type_ == PUBREL:
                (pid,) = struct.unpack("!H", body)
                self.awaiting_pubrel.pop(pid, None)
                raw.send(ack_packet(PUBCOMP, pid))
            elif type_ in (SUBACK, UNSUBACK):
                (pid,) = struct.unpack("!H", body[:2])
                kind, filt = self.pending.pop(pid, (None, None))
                with m.lock:
                    if kind == "sub" and filt in m.subs_sent:
                        m.subs_acked[filt] = time.time()
                    elif kind == "unsub":
                        m.unsubs_acked[filt] = time.time()

    def on_publish(self, raw, m, flags, body):
        topic, pid, payload, qos, _, retain = parse_publish(flags, body)
        seq = int(payload)
        if qos == 2 and self.awaiting_pubrel.get(pid) == seq:
            raw.send(ack_packet(PUBREC, pid))  # a resend: already counted
            return
        if qos == 2 and pid in self.awaiting_pubrel:
            # The broker lost the commit that sent the first message under this
            # id (nosync) and reuses it: a real client would drop this one as a
            # resend. Counted apart, and as delivered: the broker did send it.
            self.pid_reuse += 1
        with m.lock:
            self.got[seq] = self.got.get(seq, 0) + 1
        if qos == 1:
            raw.send(ack_packet(PUBACK, pid))
        elif qos == 2:
            self.awaiting_pubrel[pid] = seq
            raw.send(ack_packet(PUBREC, pid))


# ---- checks after a cut --------------------------------------------------------------

def solctl(broker, *args):
    return subprocess.run([SOLCTL, *args, "--data-dir", broker.data_dir], capture_output=True,
                          text=True, timeout=60)


def check_subscriptions(broker, m, stats, subs, before):
    """Acknowledged (un)subscriptions are in effect; those acknowledged after
    `before` (nosync: the last commit's window) may be lost."""
    r = solctl(broker, "dump", "--json", "subscriptions")
    if r.returncode != 0:
        return "solctl dump failed: %s" % r.stderr.strip()
    have = set()
    for line in r.stdout.splitlines():
        rec = json.loads(line)
        if rec.get("type") == "subscription":
            have.add((rec.get("client_id"), rec.get("filter")))
    with m.lock:
        want = {(s.name, s.filt) for s in subs if s.subscribed.is_set()}
        want |= {("pc-sub-b", f) for f, at in m.subs_acked.items() if at <= before}
        gone = {("pc-sub-b", f) for f, at in m.unsubs_acked.items() if at <= before}
    missing, back = want - have, gone & have
    stats["subs_checked"] += len(want) + len(gone)
    if missing or back:
        return "subscriptions: acknowledged but missing %s; unsubscribed but present %s" % (
            sorted(missing)[:5], sorted(back)[:5])
    return None


def check_retained(broker, m, snapshot):
    """snapshot: topic -> the seq it must hold at least."""
    raw = Raw.tcp(broker.port, timeout_s=3)
    raw.send(connect_packet("pc-ret-check", clean=True))
    raw.expect(CONNACK, timeout_s=3)
    raw.send(subscribe_packet(1, [("pc/ret/#", 0)]))
    values = {}
    deadline = time.monotonic() + 2
    for _ in range(1000):
        try:
            pkt = raw.read_packet(timeout_s=max(0.05, min(0.3, deadline - time.monotonic())))
        except harness.TestFailure:
            break
        if pkt is None or time.monotonic() > deadline:
            break
        if pkt[0] == PUBLISH:
            topic, _, payload, _, _, retain = parse_publish(pkt[1], pkt[2])
            if retain:
                values[topic] = int(payload)
        if len(values) >= len(snapshot) and all(t in values for t in snapshot):
            break
    raw.close()
    bad = ["%s: %s < acked %d" % (t, values.get(t), v) for t, v in snapshot.items()
           if values.get(t) is None or values[t] < v]
    return "retained: " + "; ".join(bad) if bad else None


def shim_env(seed, cycle):
    rng = random.Random(seed * 100003 + cycle)
    # Under ASan, libasan must come first in the preload list.
    return {"LD_PRELOAD": (ASAN + ":" if ASAN else "") + SHIM,
            "SOL_FAULT_SEED": str(seed * 100003 + cycle),
            "SOL_FAULT_CUT_AFTER_MS": str(rng.randint(*CUT_AFTER_MS)),
            "SOL_FAULT_CUT_MODE": CUT_MODE}


def read_cuts(report_path):
    try:
        with open(report_path) as f:
            return [json.loads(l) for l in f if l.strip()]
    except FileNotFoundError:
        return []


# ---- one campaign --------------------------------------------------------------------

def campaign(broker, sync, seed, cycles):
    m = Model()
    stats = {"cuts": 0, "no_cut": 0, "check_failures": 0, "start_failures": 0,
             "subs_checked": 0, "recovery_ms": [], "violations": [], "modes": {},
             "reverted_writes": 0, "torn_writes": 0, "dirents_lost": 0, "cut_reports": []}
    report_path = os.path.join(broker.tmp, "cuts.jsonl")
    subs = [Subscriber("pc-sub-a", "pc/#", 2, m.got_a, False),
            Subscriber("pc-sub-b", "pc/m", 1, m.got_b, True)]
    seq_box = [0]
    t0 = time.monotonic()

    def violation(text):
        stats["violations"].append("cycle %d: %s" % (m.cycle, text))
        if not REPORT_ONLY:
            raise harness.TestFailure(text)

    broker.env = dict(shim_env(seed, 0), SOL_FAULT_REPORT=report_path)
    broker.start()
    threads = [threading.Thread(target=s.run, args=(broker, m), daemon=True) for s in subs]
    threads.append(threading.Thread(target=publisher, args=(broker, m, seq_box, subs),
                                    daemon=True))
    for t in threads:
        t.start()
    ok = True
    for cycle in range(cycles):
        cut_ms = int(broker.env["SOL_FAULT_CUT_AFTER_MS"])
        try:
            rc = broker.proc.wait(timeout=cut_ms / 1000 + 10)
        except subprocess.TimeoutExpired:
            rc = broker.kill9()
            stats["no_cut"] += 1
        with m.lock:
            ret_history = {t: list(v) for t, v in m.ret_acked.items()}
            m.cycle = cycle + 1
        if rc != -9:
            violation("the broker exited with %s before the cut" % rc)
        cuts = read_cuts(report_path)
        if len(cuts) > stats["cuts"]:
            cut = cuts[-1]
            stats["cuts"] = len(cuts)
            stats["modes"][cut["mode"]] = stats["modes"].get(cut["mode"], 0) + 1
            stats["reverted_writes"] += cut["reverted"]
            stats["torn_writes"] += cut["torn"]
            stats["dirents_lost"] += cut["dirents_lost"]
            m.cut_walls.append(cut["wall"])
            stats["cut_reports"].append("%s/%s at %s event %d" % (cut["mode"], cut["sector"],
                                                                  cut["at"], cut["event"]))
            if not cut["ok"] or not cut["modelled"]:
                violation("the shim could not model this cut: %r" % cut)
        # What must have survived: everything acknowledged before the cut
        # (fsync), or before the nosync window that precedes it.
        cut_wall = m.cut_walls[-1] if m.cut_walls else time.time()
        before = cut_wall - (NOSYNC_WINDOW_S if sync == "nosync" else 0) + 1e-3
        ret_snapshot = {}
        for topic, hist in ret_history.items():
            old_enough = [seq for seq, at in hist if at <= before]
            if old_enough:
                ret_snapshot[topic] = max(old_enough)
        r = solctl(broker, "check")
        if r.returncode != 0:
            stats["check_failures"] += 1
            violation("solctl check after the cut: %s %s" % (r.stdout.strip()[-500:],
                                                              r.stderr.strip()[-500:]))
        problem = check_subscriptions(broker, m, stats, subs, before) if r.returncode == 0 else None
        if problem:
            violation(problem)
        last = cycle == cycles - 1
        broker.env = None if last else dict(shim_env(seed, cycle + 1),
                                            SOL_FAULT_REPORT=report_path)
        t_start = time.monotonic()
        try:
            start_through_early_cuts(broker, stats, violation)
        except harness.TestFailure as e:
            stats["start_failures"] += 1
            tail = broker.log().splitlines()[-3:]
            ok = False
            violation("sol did not start after the cut: %s; log: %s" % (e, tail))
            break
        stats["recovery_ms"].append((time.monotonic() - t_start) * 1000)
        try:
            problem = check_retained(broker, m, ret_snapshot)
        except (OSError, harness.TestFailure) as e:
            problem = None if broker.proc.poll() is not None else "retained check: %s" % e
        if problem:
            violation(problem)
    # Drain: the last broker runs without the shim.
    m.stop_pub.set()
    threads[-1].join(10)
    deadline = time.monotonic() + 30
    for _ in range(3000):
        with m.lock:
            quiet = time.monotonic() - m.last_rx
        if not ok or quiet > DRAIN_QUIET_S or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    m.stop.set()
    for t in threads:
        t.join(10)
    stats["pid_reuse"] = sum(s.pid_reuse for s in subs)
    return finish(m, sync, seed, stats, ok, time.monotonic() - t0)


def finish(m, sync, seed, stats, ok, elapsed_s):
    with m.lock:
        acked = dict(m.acked)
        got_a, got_b = dict(m.got_a), dict(m.got_b)
        errors = list(m.errors)
    lost_a = sorted(s for s in acked if s not in got_a)
    lost_b = sorted(s for s, (_, topic, _, _) in acked.items()
                    if topic == "pc/m" and s not in got_b)
    twice2 = sorted(s for s, n in got_a.items() if n > 1 and acked.get(s, (1,))[0] == 2)
    dups1 = sum(n - 1 for s, n in got_a.items() if acked.get(s, (2,))[0] == 1) + \
        sum(n - 1 for n in got_b.values())
    lost = sorted(set(lost_a) | set(lost_b))
    # How long before its cut was each lost message acknowledged?
    cut_walls = m.cut_walls
    ages, which = [], []
    for s in lost:
        _, _, instance, at = acked[s]
        i = instance - 1  # process n ended with cut n
        which.append(i if i < len(cut_walls) else -1)
        ages.append(max(0.0, cut_walls[i] - at) if i < len(cut_walls) else float("inf"))
    rec = stats["recovery_ms"]
    summary = {
        "sync": sync, "seed": seed, "cut_mode": CUT_MODE, "cuts": stats["cuts"],
        "no_cut": stats["no_cut"], "acked": len(acked),
        "acked_qos1": sum(1 for v in acked.values() if v[0] == 1),
        "acked_qos2": sum(1 for v in acked.values() if v[0] == 2),
        "lost": len(lost), "lost_max_age_s": round(max(ages), 3) if ages else 0,
        "qos2_duplicated": len(twice2), "qos1_duplicates": dups1,
        "qos2_packet_id_reused": stats.get("pid_reuse", 0),
        "check_failures": stats["check_failures"], "start_failures": stats["start_failures"],
        "subs_checked": stats["subs_checked"], "session_errors": len(errors),
        "recovery_ms_mean": round(sum(rec) / len(rec), 1) if rec else None,
        "recovery_ms_max": round(max(rec), 1) if rec else None,
        "reverted_writes": stats["reverted_writes"], "torn_writes": stats["torn_writes"],
        "dirents_lost": stats["dirents_lost"], "modes": stats["modes"],
        "violations": len(stats["violations"]), "elapsed_s": round(elapsed_s, 1),
        "asan": IS_ASAN,
    }
    print("powercut: " + json.dumps(summary), flush=True)
    for s, age, cut_index in list(zip(lost, ages, which))[:10]:
        qos, topic, instance, _ = acked[s]
        print("powercut: lost seq %d (QoS %d, %s, acked by process %d, %.3f s before cut #%d %s; "
              "subscriber A %s, B %s)" % (s, qos, topic, instance, age, cut_index + 1,
                                          stats["cut_reports"][cut_index] if cut_index >= 0 else "",
                                          "got it" if s in got_a else "lost it",
                                          "got it" if s in got_b else "lost it"), flush=True)
    for v in stats["violations"][:10]:
        print("powercut: violation: %s" % v, flush=True)
    if SUMMARY:
        with open(SUMMARY, "a") as f:
            f.write(json.dumps(summary) + "\n")
    if REPORT_ONLY:
        return
    check(ok, "the campaign stopped early")
    check(not errors, "; ".join(errors[:3]))
    check(stats["cuts"] > 0, "no power cut happened")
    check(len(acked) > 0, "nothing was acknowledged")
    if sync == "fsync":
        check(not lost, "fsync: %d acknowledged messages lost: %s" % (len(lost), lost[:20]))
        check(not twice2, "fsync: QoS 2 messages delivered twice: %s" % twice2[:20])
        check(not stats.get("pid_reuse"), "fsync: a QoS 2 packet id reused before its PUBREL")
    else:
        too_old = [s for s, a in zip(lost, ages) if a > NOSYNC_WINDOW_S]
        check(not too_old, "nosync: lost messages acknowledged more than %.1f s before a cut: %s"
              % (NOSYNC_WINDOW_S, too_old[:20]))


# ---- deterministic cases -------------------------------------------------------------

def start_through_early_cuts(broker, stats, violation):
    """Starts sol; a power cut that lands before it is listening (a slow or
    loaded machine: the shim's clock starts when it loads) is a cut during
    recovery - the store must still pass `solctl check` - and sol is started
    again, its cut moved a second later."""
    try:
        broker.start()
        return
    except harness.TestFailure:
        log = broker.log()
        this_start = log[log.rfind("---- harness: start #"):]
        if "solfault: power cut" not in this_start:
            raise
    stats["cuts_during_startup"] = stats.get("cuts_during_startup", 0) + 1
    r = solctl(broker, "check")
    if r.returncode != 0:
        stats["check_failures"] += 1
        violation("solctl check after a cut during start-up: %s" % r.stdout.strip()[-500:])
    cut_ms = int(broker.env["SOL_FAULT_CUT_AFTER_MS"]) + 1000
    broker.env = dict(broker.env, SOL_FAULT_CUT_AFTER_MS=str(cut_ms))
    broker.start()


def test_new_store_survives_a_power_cut_right_after_its_first_ack(broker):
    """The directory entries of data.mdb (and of the data directory sol made)
    are fsynced before the first acknowledgement: a cut that loses every
    unsynced write and directory entry keeps the session. Both sync modes."""
    for sync in ("fsync", "nosync"):
        b = harness.Broker(extra_config=["storage_sync %s" % sync])
        try:
            b.env = {"LD_PRELOAD": (ASAN + ":" if ASAN else "") + SHIM,
                     "SOL_FAULT_CUT_AFTER_MS": "600", "SOL_FAULT_CUT_MODE": "all",
                     "SOL_FAULT_REPORT": os.path.join(b.tmp, "cuts.jsonl")}
            b.start()
            raw, present = connect(b.port, "first", False)
            check(present == 0, "a new store has a session already")
            raw.send(subscribe_packet(1, [("first/#", 1)]))
            raw.expect(SUBACK, timeout_s=3)
            rc = b.proc.wait(timeout=10)
            check(rc == -9, "%s: the shim did not cut (exit %s)" % (sync, rc))
            cuts = read_cuts(os.path.join(b.tmp, "cuts.jsonl"))
            check(len(cuts) == 1 and cuts[0]["mode"] == "all", "cut report %r" % cuts)
            b.env = None
            b.start()
            raw, present = connect(b.port, "first", False)
            check(present == 1, "%s: the session acknowledged before the cut is gone (cut: %r)"
                  % (sync, cuts[0]))
            raw.close()
            check(b.stop() == 0, "exit code on SIGTERM")
        except Exception:
            print(b.log(), flush=True)
            raise
        finally:
            b.cleanup()


def test_damaged_store_refuses_to_start_with_a_clear_error(broker):
    """A store whose file lost its tail: sol exits 1 at start-up saying the
    store is damaged and to run solctl check (it used to start, then fail
    every commit)."""
    raw, _ = connect(broker.port, "victim", False)
    raw.send(subscribe_packet(1, [("v/#", 1)]))
    raw.expect(SUBACK, timeout_s=3)
    raw.close()
    check(broker.stop() == 0, "exit code on SIGTERM")
    path = os.path.join(broker.data_dir, "data.mdb")
    os.truncate(path, 8192)
    broker.start(wait_port=False)
    rc = broker.wait_exit(15)
    log = broker.log()
    check(rc == 1, "sol on a damaged store exited with %s" % rc)
    check("data.mdb: damaged store" in log and "solctl check --data-dir" in log,
          "no clear error in the log: %s" % log.splitlines()[-3:])
    r = solctl(broker, "check")
    check(r.returncode == 2 and "damaged store" in r.stderr, "solctl check: %r" % r.stderr)


def make_test(sync, seed, cycles):
    def test(broker):
        return campaign(broker, sync, seed, cycles)
    test.__name__ = "test_power_cut_%s_seed_%d_%d_cuts" % (sync, seed, cycles)
    return test


def main():
    if not os.path.exists(SHIM):
        print("SKIP: no fault-injection shim at %s" % SHIM, flush=True)
        sys.exit(0)
    r = harness.Runner()
    r.run(test_new_store_survives_a_power_cut_right_after_its_first_ack, start=False)
    r.run(test_damaged_store_refuses_to_start_with_a_clear_error)
    for sync in SYNC_MODES:
        cycles = CYCLES if sync == "fsync" else NOSYNC_CYCLES
        for seed in SEEDS:
            r.run(make_test(sync, seed, cycles), start=False,
                  extra_config=["storage_sync %s" % sync, "max_queued_messages 0",
                                "max_queued_bytes 0",
                                "connection_messages false"])
    r.finish()


if __name__ == "__main__":
    main()
