"""test_bridge.py - bridges (issue 13) against Debian's mosquitto as the
remote broker: forwarding out, in and both with Mosquitto's topic prefixes;
a remote that is down for a while, then back (everything queued arrives, in
order); kill -9 of Sol with messages queued for a down remote and while it
forwards (every message Sol acknowledged arrives: delivered / lost /
duplicated counted and printed); `solctl dump` and `solctl check` on the
bridge queue; a TLS bridge to a mosquitto TLS listener (its own CA made with
openssl, the host name checked unless bridge_insecure); the queue limit and
the metrics; and hostile remotes (garbage after CONNECT, a remote that
refuses the bridge flag) that close the bridge's connection while Sol keeps
serving its clients.

Each test starts its own mosquitto (generated config, free port, stopped by
PID) and its own sol. Every wait is bounded.
Environment (for longer runs): SOL_BRIDGE_CRASH_MESSAGES (messages per kill
-9 test, default 600), SOL_BRIDGE_ONLY=TEXT runs the tests whose name holds
TEXT, SOL_BRIDGE_ROUNDS=N runs them N times, SOL_BRIDGE_SUMMARY=FILE appends
one JSON line of counts per kill -9 test.
"""

import json
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (CONNACK, PUBACK, PUBLISH, Raw, check, mqtt_connect,  # noqa: E402
                     publish_packet, wait_until)

import paho.mqtt.client as mqtt  # noqa: E402

CRASH_MESSAGES = int(os.environ.get("SOL_BRIDGE_CRASH_MESSAGES", "600"))
SEED = int(os.environ.get("SOL_BRIDGE_SEED", str(int(time.time()))))
RNG = random.Random(SEED)
SUMMARY = os.environ.get("SOL_BRIDGE_SUMMARY")
SOLCTL = os.path.join(harness.BUILD_DIR, "solctl")


# ---- the remote: a real mosquitto ----

class Mosquitto:
    """mosquitto with a generated config on a free port and persistence on,
    so a persistent subscriber's session (and Sol's bridge session) survive
    its restarts. Stopped by PID."""

    def __init__(self, extra=()):
        self.tmp = tempfile.mkdtemp(prefix="sol-it-mosq-")
        self.port = harness.free_port()
        self.conf = os.path.join(self.tmp, "mosquitto.conf")
        self.log_path = os.path.join(self.tmp, "mosquitto.log")
        self.proc = None
        # As this user: run as root, mosquitto would switch to user
        # "mosquitto", who cannot read these files (tools/bench-vs-mosquitto.sh
        # does the same).
        lines = ["user %s" % pwd.getpwuid(os.geteuid()).pw_name,
                 "per_listener_settings false", "persistence true",
                 "persistence_location %s/" % self.tmp, "max_queued_messages 0",
                 "log_type all", "listener %d 127.0.0.1" % self.port,
                 "allow_anonymous true", *extra]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self):
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(["mosquitto", "-c", self.conf], stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()

        def ready():
            check(self.proc.poll() is None, "mosquitto exited: %s" % self.log())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            except OSError:
                return False
            return harness.listens_on(self.proc.pid, self.port)
        wait_until(ready, 10, "mosquitto on port %d" % self.port)
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


class Collector:
    """A paho client that subscribes and keeps what arrives: (topic, payload,
    qos, retain). Persistent (clean_session False) unless told otherwise."""

    def __init__(self, port, client_id, topics, clean=False):
        self.messages = []
        self.lock = threading.Lock()
        self.connacks = []
        self.suback = set()
        self.c = mqtt.Client(client_id=client_id, clean_session=clean)
        self.c.on_message = self._on_message
        self.c.on_connect = lambda cl, ud, flags, rc: self.connacks.append((flags, rc))
        self.c.on_subscribe = lambda cl, ud, mid, granted: self.suback.add(mid)
        self.c.connect("127.0.0.1", port, keepalive=30)
        self.c.loop_start()
        wait_until(lambda: self.connacks, 10, "CONNACK for %s" % client_id)
        check(self.connacks[0][1] == 0, "CONNACK %r" % (self.connacks,))
        if topics:
            mids = [self.c.subscribe(t, qos)[1] for t, qos in topics]
            wait_until(lambda: set(mids) <= self.suback, 10, "SUBACK for %s" % client_id)

    def _on_message(self, client, userdata, msg):
        with self.lock:
            self.messages.append((msg.topic, msg.payload.decode(errors="replace"), msg.qos,
                                  bool(msg.retain)))

    def got(self):
        with self.lock:
            return list(self.messages)

    def wait_count(self, n, timeout_s, what="messages"):
        wait_until(lambda: len(self.got()) >= n, timeout_s, "%d %s (have %d)"
                   % (n, what, len(self.got())))
        return self.got()

    def stop(self):
        self.c.disconnect()
        self.c.loop_stop()


def add_config(broker, lines):
    with open(broker.config_path, "a") as f:
        f.write("\n".join(lines) + "\n")


def bridge_lines(remote_port, *topics, name="cloud", extra=()):
    return ["connection %s" % name, "address 127.0.0.1:%d" % remote_port,
            "remote_clientid edge-%s" % name, "restart_timeout 1", "keepalive_interval 5",
            *("topic %s" % t for t in topics), *extra]


def publish_many(port, client_id, messages, window=50, on_ack=None):
    """Publishes messages [(topic, payload, qos 1 or 2)] on a raw connection,
    `window` in flight; returns the indexes the broker acknowledged (PUBACK,
    or PUBREC at QoS 2: the acks that promise durability), in order of
    arrival, after completing every QoS 2 flow (PUBREL/PUBCOMP). Stops quietly
    when the broker goes away (kill -9)."""
    acked = []
    try:
        c = mqtt_connect(port, client_id)
    except (OSError, harness.TestFailure):
        return acked
    inflight, released, nxt, n = {}, set(), 0, len(messages)
    try:
        # Until every QoS 2 flow is complete too: a broker that delivers on
        # PUBREL (mosquitto) would otherwise keep the last ones forever.
        while len(acked) < n or released:
            while len(inflight) + len(released) < window and nxt < n:
                pid = nxt % 65535 + 1
                topic, payload, qos = messages[nxt]
                c.send(publish_packet(topic, payload.encode(), qos=qos, packet_id=pid))
                inflight[pid] = nxt
                nxt += 1
            pkt = c.read_packet(10)
            if pkt is None:
                break
            pid = int.from_bytes(pkt[2][:2], "big")
            if pkt[0] == harness.PUBREC:
                c.send(harness.ack_packet(harness.PUBREL, pid))
                released.add(pid)
            if pkt[0] == harness.PUBCOMP:
                released.discard(pid)
            if pkt[0] in (PUBACK, harness.PUBREC) and pid in inflight:
                acked.append(inflight.pop(pid))
                if on_ack:
                    on_ack(len(acked))
    except (OSError, harness.TestFailure):
        pass
    finally:
        c.close()
    return acked


def solctl(*args):
    r = subprocess.run([SOLCTL, *args], capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout, r.stderr


def bridge_queue_dump(broker, name="cloud"):
    rc, out, err = solctl("dump", "--json", "--data-dir", broker.data_dir, "bridges",
                          "--client", name)
    check(rc == 0, "solctl dump bridges: %s" % err)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def store_is_consistent(broker):
    rc, out, err = solctl("check", "--data-dir", broker.data_dir)
    check(rc == 0, "solctl check: %s %s" % (out, err))


def with_remote(fn):
    """Runs fn(broker, remote) with a mosquitto that is cleaned up after."""
    def wrapper(broker):
        remote = Mosquitto()
        try:
            return fn(broker, remote)
        except Exception:
            print("---- mosquitto log ----\n%s---- end of mosquitto log ----"
                  % remote.log()[-6000:], flush=True)
            raise
        finally:
            remote.cleanup()
    wrapper.__name__ = fn.__name__
    return wrapper


def wait_connected(broker, name="cloud", count=1):
    wait_until(lambda: broker.log().count("bridge %s: connected to" % name) >= count, 15,
               "bridge %s connected (#%d)" % (name, count))


# ---- forwarding ----

@with_remote
def test_forwarding_out_in_and_both_with_prefixes(broker, remote):
    remote.start()
    add_config(broker, bridge_lines(
        remote.port,
        "sensors/# out 1 edge/ site1/",      # local edge/sensors/x -> remote site1/sensors/x
        "cmd/# in 2 local/ hq/",             # remote hq/cmd/x -> local local/cmd/x
        "shared/# both 1",                   # both ways, same names
        "live/# out 0",                      # QoS 0: sent at once, never stored
        "\"\" out 1 edge/state site1/edge-state"))  # one topic renamed exactly
    broker.start()
    wait_connected(broker)
    at_remote = Collector(remote.port, "remote-view", [("site1/#", 1), ("shared/#", 1),
                                                        ("live/#", 1), ("edge/#", 1)], clean=True)
    at_sol = Collector(broker.port, "sol-view", [("local/#", 2), ("shared/#", 1), ("hq/#", 1),
                                                 ("cmd/#", 1)], clean=True)
    for i in range(3):
        check(harness.mosquitto_pub(broker.port, "edge/sensors/t%d" % i, "s%d" % i, qos=1)
              .returncode == 0, "publish to sol")
    harness.mosquitto_pub(broker.port, "shared/from-sol", "a", qos=1)
    harness.mosquitto_pub(broker.port, "live/x", "q0", qos=0)
    harness.mosquitto_pub(broker.port, "edge/state", "renamed", qos=1)
    harness.mosquitto_pub(broker.port, "edge/other", "stays", qos=1)  # matches no out topic
    harness.mosquitto_pub(remote.port, "hq/cmd/reboot", "now", qos=2)
    harness.mosquitto_pub(remote.port, "shared/from-remote", "b", qos=1)
    harness.mosquitto_pub(remote.port, "cmd/unprefixed", "no", qos=1)  # not hq/cmd: not in
    wait_until(lambda: len(at_remote.got()) >= 6 and len(at_sol.got()) >= 3, 10,
               "forwarded messages (remote %r, sol %r)" % (at_remote.got(), at_sol.got()))
    time.sleep(0.5)  # anything extra (an echo, a loop) would arrive by now
    remote_got = sorted((t, p) for t, p, _, _ in at_remote.got())
    check(remote_got == sorted([("site1/sensors/t0", "s0"), ("site1/sensors/t1", "s1"),
                                ("site1/sensors/t2", "s2"), ("shared/from-sol", "a"),
                                ("live/x", "q0"), ("site1/edge-state", "renamed"),
                                ("shared/from-remote", "b")]),
          "at the remote: %r" % remote_got)
    sol_got = sorted((t, p, q) for t, p, q, _ in at_sol.got())
    check(sol_got == sorted([("local/cmd/reboot", "now", 2), ("shared/from-sol", "a", 1),
                             ("shared/from-remote", "b", 1)]),
          "at sol (each once: no echo of shared/from-sol): %r" % sol_got)
    at_remote.stop()
    at_sol.stop()


@with_remote
def test_retained_flag_and_state_notifications(broker, remote):
    remote.start()
    add_config(broker, bridge_lines(remote.port, "r/# out 1"))
    broker.start()
    wait_connected(broker)
    harness.mosquitto_pub(broker.port, "r/kept", "v1", qos=1, extra=["-r"])
    state = "$SYS/broker/connection/edge-cloud/state"

    def retained_at(port, topic):
        """What a new subscriber gets at once: the retained message."""
        rc, lines, err = harness.MosquittoSub(port, topic, count=1, timeout_s=3).wait()
        return lines

    wait_until(lambda: retained_at(remote.port, "r/kept") == ["r/kept v1"], 10,
               "the retained copy at the remote")
    check(retained_at(remote.port, state) == [state + " 1"], "remote state 1")
    check(retained_at(broker.port, state) == [state + " 1"], "local state 1")
    remote.stop()
    wait_until(lambda: retained_at(broker.port, state) == [state + " 0"], 15, "local state 0")
    remote.start()  # the bridge's will ("0") and then "1" again, retained at the remote
    wait_connected(broker, count=2)
    wait_until(lambda: retained_at(remote.port, state) == [state + " 1"], 10, "remote state 1")


# ---- outages and crashes ----

def payloads(n, prefix="m"):
    return ["%s%05d" % (prefix, i) for i in range(n)]


@with_remote
def test_remote_down_then_back_everything_queued_arrives_in_order(broker, remote):
    remote.start()
    add_config(broker, bridge_lines(remote.port, "up/# out 1", "up2/# out 2"))
    broker.start()
    wait_connected(broker)
    watcher = Collector(remote.port, "watcher", [("up/#", 1), ("up2/#", 2)])
    watcher.stop()  # offline; its session (and queue) stays at the remote
    remote.stop()
    n = 400
    msgs = [("up/%d" % (i % 7), p, 1) if i % 5 else ("up2/x", p, 2)
            for i, p in enumerate(payloads(n))]
    acked = publish_many(broker.port, "pub", msgs)
    check(len(acked) == n, "sol acknowledged %d of %d while the remote was down" % (len(acked), n))
    queued = bridge_queue_dump(broker)
    check(len([q for q in queued if q["type"] == "bridge_queue"]) == n,
          "solctl dump bridges shows %d entries, expected %d" % (len(queued), n))
    check(queued[0]["topic"] == "up2/x" and queued[0]["qos"] == 2 and queued[1]["qos"] == 1,
          "dump fields: %r" % queued[:2])
    time.sleep(2)  # a while down: the bridge keeps retrying
    remote.start()
    wait_connected(broker, count=2)
    # The watcher comes back once the remote acknowledged everything (the
    # bridge's queue is empty), so the remote hands it one queue in the order
    # Sol sent it, not a queue and a live flow at once.
    wait_until(lambda: not [q for q in bridge_queue_dump(broker) if q["type"] == "bridge_queue"],
               20, "the bridge queue to empty once the remote acknowledged everything")
    watcher = Collector(remote.port, "watcher", [])  # the same session, no new subscribe
    got = watcher.wait_count(n, 20)
    watcher.stop()
    # In order per QoS: MQTT orders messages per topic and QoS [MQTT-4.6.0-6],
    # and mosquitto sends its QoS 1 and QoS 2 flows to the watcher apart.
    for qos in (1, 2):
        sent = [p for _, p, q in msgs if q == qos]
        arrived = [p for _, p, q, _ in got if p in set(sent)]
        at = next((i for i, (a, b) in enumerate(zip(arrived, sent)) if a != b),
                  min(len(arrived), len(sent)))
        check(arrived == sent, "QoS %d: %d arrived for %d sent, first difference at %d: %r "
              "instead of %r" % (qos, len(arrived), len(sent), at, arrived[at:at + 5],
                                 sent[at:at + 5]))
    check(len(got) == n, "%d arrived for %d sent" % (len(got), n))
    store_is_consistent(broker)


def count_outcome(expected, got):
    """(delivered, lost, duplicated) of the expected payloads in got."""
    seen = {}
    for p in got:
        seen[p] = seen.get(p, 0) + 1
    delivered = sum(1 for p in expected if p in seen)
    lost = [p for p in expected if p not in seen]
    duplicated = sum(c - 1 for c in seen.values() if c > 1)
    return delivered, lost, duplicated


def report(name, acked, delivered, lost, duplicated, extra=""):
    print("%s (seed %d): acknowledged %d, delivered %d, lost %d, duplicated %d%s"
          % (name, SEED, acked, delivered, len(lost), duplicated, extra), flush=True)
    if SUMMARY:
        with open(SUMMARY, "a") as f:
            f.write(json.dumps({"test": name, "seed": SEED, "acknowledged": acked,
                                "delivered": delivered,
                                "lost": len(lost), "duplicated": duplicated}) + "\n")


def kill_point(n):
    """When to kill -9: after a random 20-80 % of the n messages were acked
    (SOL_BRIDGE_SEED makes a run repeatable; the seed is printed)."""
    return max(1, int(n * RNG.uniform(0.2, 0.8)))


def kill_after(broker, acks_needed):
    """An on_ack callback that kill -9s the broker once acks_needed acks arrived."""
    def on_ack(count):
        if count == acks_needed:
            broker.kill9()
    return on_ack


@with_remote
def test_kill9_with_messages_queued_for_a_down_remote_loses_nothing_acknowledged(broker, remote):
    remote.start()
    add_config(broker, bridge_lines(remote.port, "k/# out 1 edge/ site/", "k2/# out 2"))
    broker.start()
    wait_connected(broker)
    watcher = Collector(remote.port, "watcher", [("site/#", 1), ("k2/#", 2)])
    watcher.stop()
    remote.stop()
    n = CRASH_MESSAGES
    msgs = [("edge/k/%d" % (i % 3), p, 1) if i % 4 else ("k2/q2", p, 2)
            for i, p in enumerate(payloads(n))]
    acked = publish_many(broker.port, "pub", msgs, on_ack=kill_after(broker, kill_point(n)))
    check(not broker.is_running(), "the broker was not killed (%d acks)" % len(acked))
    broker.start()  # restart on the same store, the remote still down
    queued = [q["msg_id"] for q in bridge_queue_dump(broker) if q["type"] == "bridge_queue"]
    check(len(queued) >= len(acked), "solctl dump bridges: %d entries for %d acknowledged"
          % (len(queued), len(acked)))
    store_is_consistent(broker)
    more = [("edge/k/after", p, 1) for p in payloads(50, "a")]
    acked_more = publish_many(broker.port, "pub2", more)
    check(len(acked_more) == 50, "after the restart: %d of 50 acked" % len(acked_more))
    remote.start()
    wait_connected(broker)
    watcher = Collector(remote.port, "watcher", [])
    expected = [msgs[i][1] for i in acked] + [p for _, p, _ in more]
    try:
        wait_until(lambda: count_outcome(expected, [p for _, p, _, _ in watcher.got()])[0]
                   == len(expected), 30, "every acknowledged message at the remote")
    finally:
        watcher.stop()
    delivered, lost, dup = count_outcome(expected, [p for _, p, _, _ in watcher.got()])
    report("bridge kill -9, remote down", len(expected), delivered, lost, dup)
    check(not lost, "lost %d acknowledged messages, e.g. %r" % (len(lost), lost[:5]))
    store_is_consistent(broker)


@with_remote
def test_kill9_while_forwarding_loses_nothing_acknowledged(broker, remote):
    remote.start()
    add_config(broker, bridge_lines(remote.port, "f/# out 1", "f2/# out 2"))
    broker.start()
    wait_connected(broker)
    watcher = Collector(remote.port, "watcher", [("f/#", 1), ("f2/#", 2)])
    n = CRASH_MESSAGES
    msgs = [("f/%d" % (i % 3), p, 1) if i % 3 else ("f2/x", p, 2)
            for i, p in enumerate(payloads(n))]
    acked = publish_many(broker.port, "pub", msgs, on_ack=kill_after(broker, kill_point(n)))
    check(not broker.is_running(), "the broker was not killed (%d acks)" % len(acked))
    broker.start()
    wait_connected(broker)
    expected = [msgs[i][1] for i in acked]
    try:
        wait_until(lambda: count_outcome(expected, [p for _, p, _, _ in watcher.got()])[0]
                   == len(expected), 30, "every acknowledged message at the remote")
        time.sleep(0.5)  # resends of the last window, if any, are counted too
    finally:
        watcher.stop()
    got = [p for _, p, _, _ in watcher.got()]
    delivered, lost, dup = count_outcome(expected, got)
    qos2 = [p for t, p, _, _ in watcher.got() if t == "f2/x"]
    dup2 = len(qos2) - len(set(qos2))
    report("bridge kill -9, remote up", len(expected), delivered, lost, dup,
           " (QoS 2 topic duplicated %d)" % dup2)
    check(not lost, "lost %d acknowledged messages, e.g. %r" % (len(lost), lost[:5]))
    check(dup2 == 0, "a QoS 2 message reached the remote twice")


@with_remote
def test_kill9_while_receiving_loses_nothing_the_remote_accepted(broker, remote):
    remote.start()
    # The local subscriber's queue must not be what limits the test.
    add_config(broker, ["max_queued_messages 0", *bridge_lines(remote.port, "in/# in 2")])
    broker.start()
    wait_connected(broker)
    local = Collector(broker.port, "local", [("in/#", 2)])
    local.stop()  # offline: what arrives is queued for it in Sol's store
    n = CRASH_MESSAGES
    msgs = [("in/q1", p, 1) if i % 2 else ("in/q2", p, 2) for i, p in enumerate(payloads(n))]
    # At most 10 in flight: mosquitto's receive maximum (max_inflight_messages
    # 20) counts QoS 2 messages until their PUBREL.
    result = {}
    pub = threading.Thread(target=lambda: result.setdefault(
        "acked", publish_many(remote.port, "remote-pub", msgs, window=10)))
    pub.start()
    time.sleep(RNG.uniform(0.05, 0.3))
    broker.kill9()  # in the middle of the inflow
    pub.join(60)
    check(len(result.get("acked", [])) == n, "the remote accepted %d of %d"
          % (len(result.get("acked", [])), n))
    broker.start()
    local = Collector(broker.port, "local", [])
    expected = [p for _, p, _ in msgs]
    try:
        wait_until(lambda: count_outcome(expected, [p for _, p, _, _ in local.got()])[0]
                   == n, 30, "every message the remote accepted, at Sol's subscriber")
        time.sleep(0.5)
    finally:
        local.stop()
    got = local.got()
    delivered, lost, dup = count_outcome(expected, [p for _, p, _, _ in got])
    qos2 = [p for t, p, _, _ in got if t == "in/q2"]
    dup2 = len(qos2) - len(set(qos2))
    report("bridge kill -9, receiving", n, delivered, lost, dup,
           " (QoS 2 topic duplicated %d)" % dup2)
    check(not lost, "lost %d messages the remote accepted, e.g. %r" % (len(lost), lost[:5]))
    check(dup2 == 0, "a QoS 2 message from the remote was delivered twice")
    store_is_consistent(broker)


# ---- limits and metrics ----

def scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        return r.read().decode()


def metric(text, name, labels):
    want = "%s{%s} " % (name, labels)
    for line in text.splitlines():
        if line.startswith(want):
            return float(line[len(want):])
    return None


def test_full_bridge_queue_refuses_the_publisher_and_metrics_show_it(broker):
    dead = harness.free_port()  # nothing listens there: the remote stays down
    metrics_port = harness.free_port()
    add_config(broker, ["metrics_listener %d 127.0.0.1" % metrics_port,
                        *bridge_lines(dead, "q/# out 1", extra=["bridge_max_queued_messages 5"])])
    broker.start()
    c = mqtt_connect(broker.port, "pub")
    for i in range(5):
        c.send(publish_packet("q/t", b"x%d" % i, qos=1, packet_id=i + 1))
        c.expect(PUBACK)
    c.send(publish_packet("q/t", b"over", qos=1, packet_id=9))
    check(c.wait_closed(5), "the sixth publish was not refused")
    check(harness.mosquitto_pub(broker.port, "q/t", "qos0", qos=0).returncode == 0,
          "a QoS 0 publish is never queued, never refused")
    text = scrape(metrics_port)
    check(metric(text, "sol_bridge_connected", 'name="cloud"') == 0, "connected metric")
    check(metric(text, "sol_bridge_queued_messages", 'name="cloud"') == 5, "queued metric")
    check(metric(text, "sol_bridge_publishes_refused_total", 'name="cloud"') == 1,
          "refused metric")
    broker.stop()
    broker.start()  # the limit counts what the store holds after a restart
    c = mqtt_connect(broker.port, "pub")
    c.send(publish_packet("q/t", b"over", qos=1, packet_id=1))
    check(c.wait_closed(5), "refused after the restart too")
    check(metric(scrape(metrics_port), "sol_bridge_queued_messages", 'name="cloud"') == 5,
          "queued after the restart")


@with_remote
def test_metrics_show_a_connected_bridge_found_by_name(broker, remote):
    remote.start()
    metrics_port = harness.free_port()
    lines = bridge_lines(remote.port, "m/# out 1")
    # Two addresses: nothing listens at the first, so the next attempt takes
    # the second; a name, so the asynchronous resolver runs (localhost may
    # also give ::1, where nothing listens: its next address is tried).
    lines[1] = "address 127.0.0.1:%d localhost:%d" % (harness.free_port(), remote.port)
    add_config(broker, ["metrics_listener %d 127.0.0.1" % metrics_port, *lines])
    broker.start()
    wait_connected(broker)
    text = scrape(metrics_port)
    check(metric(text, "sol_bridge_connected", 'name="cloud"') == 1, "connected: %s" % text)
    check(metric(text, "sol_bridge_queued_messages", 'name="cloud"') == 0, "queued 0")
    check(metric(text, "sol_bridge_connects_total", 'name="cloud"') == 1, "connects 1")


# ---- TLS ----

def make_server_cert(directory, ca, name, san):
    """A server certificate signed by ca whose subjectAltName is san."""
    key, csr, crt, ext = (os.path.join(directory, name + e)
                          for e in (".key", ".csr", ".crt", ".ext"))
    harness._openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                      "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=%s" % name], directory)
    with open(ext, "w") as f:
        f.write("subjectAltName=%s\nextendedKeyUsage=serverAuth\n" % san)
    harness._openssl(["x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1],
                      "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", ext], directory)
    return crt, key


def test_tls_bridge_checks_the_chain_and_the_host_name(broker):
    tls_dir = tempfile.mkdtemp(prefix="sol-it-tls-")
    ca = harness.make_tls_ca(tls_dir, "ca")
    other_ca = harness.make_tls_ca(tls_dir, "other")
    good = make_server_cert(tls_dir, ca, "good", "IP:127.0.0.1")
    wrong_name = make_server_cert(tls_dir, ca, "wrongname", "DNS:elsewhere.example")
    tls_port, tls2_port = harness.free_port(), harness.free_port()
    remote = Mosquitto(extra=["listener %d 127.0.0.1" % tls_port, "cafile %s" % ca[0],
                              "certfile %s" % good[0], "keyfile %s" % good[1],
                              "listener %d 127.0.0.1" % tls2_port, "cafile %s" % ca[0],
                              "certfile %s" % wrong_name[0], "keyfile %s" % wrong_name[1]])
    try:
        remote.start()
        add_config(broker, [
            *bridge_lines(tls_port, "tls/# out 1", name="good",
                          extra=["bridge_cafile %s" % ca[0]]),
            *bridge_lines(tls_port, "tls/# out 1", name="untrusted",
                          extra=["bridge_cafile %s" % other_ca[0]]),
            *bridge_lines(tls2_port, "tls/# out 1", name="misnamed",
                          extra=["bridge_cafile %s" % ca[0]]),
            *bridge_lines(tls2_port, "tls/# out 1", name="insecure",
                          extra=["bridge_cafile %s" % ca[0], "bridge_insecure true"])])
        broker.start()
        wait_connected(broker, "good")
        wait_connected(broker, "insecure")
        watcher = Collector(remote.port, "watcher", [("tls/#", 1)], clean=True)
        harness.mosquitto_pub(broker.port, "tls/x", "secret", qos=1)
        got = watcher.wait_count(2, 10)  # through "good" and through "insecure"
        time.sleep(0.3)
        watcher.stop()
        check(sorted(p for _, p, _, _ in watcher.got()) == ["secret", "secret"],
              "via TLS: %r" % watcher.got())
        broker.wait_for_log("bridge untrusted: TLS handshake with 127.0.0.1:%d failed" % tls_port)
        broker.wait_for_log("bridge misnamed: TLS handshake with 127.0.0.1:%d failed" % tls2_port)
        log = broker.log()
        check("bridge untrusted: connected" not in log and "bridge misnamed: connected" not in log,
              "a bridge connected to a server it cannot verify")
        check("certificate verify failed" in log, "the reason is logged")
    except Exception:
        print("---- mosquitto log ----\n%s" % remote.log()[-4000:], flush=True)
        raise
    finally:
        remote.cleanup()
        shutil.rmtree(tls_dir, ignore_errors=True)


# ---- hostile remotes ----

class FakeRemote:
    """A TCP server on a free port that answers each connection's CONNECT with
    the next of `replies` (bytes, or a function of the CONNECT) and records
    whether Sol closed the connection afterwards."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.port = harness.free_port()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.connects = []  # the CONNECT packets' bodies
        self.closed_by_sol = []  # per connection: True when Sol closed it after the reply
        self.after_reply = []  # per connection: bytes Sol sent after the reply
        self.stop_flag = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        for _ in range(1000):
            if self.stop_flag or not self.replies:
                return
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                self._one(conn, self.replies.pop(0))

    def _one(self, conn, reply):
        raw = Raw(conn)
        try:
            pkt = raw.read_packet(5)
        except harness.TestFailure:
            pkt = None
        if pkt is None:
            return
        self.connects.append(pkt[2])
        data = reply(pkt[2]) if callable(reply) else reply
        if data is None:  # refuse by closing at once
            self.after_reply.append(b"")
            self.closed_by_sol.append(False)
            return
        conn.sendall(data)
        data, closed = b"", False
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not self.stop_flag:
            try:
                conn.settimeout(0.2)
                chunk = conn.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            data += chunk
        self.after_reply.append(data)
        self.closed_by_sol.append(closed)

    def close(self):
        self.stop_flag = True
        self.thread.join(10)
        self.sock.close()


CONNACK_OK = b"\x20\x02\x00\x00"


def test_a_remote_sending_garbage_closes_the_bridge_and_sol_keeps_serving(broker):
    garbage = [
        b"\x00\x00",                                    # reserved packet type 0
        b"\x20\x03\x00\x00\x00",                        # CONNACK with a byte too many
        b"\x90\x03\x00\x01\x00",                        # SUBACK before CONNACK
        CONNACK_OK + b"\x30\xff\xff\xff\xff\x7f",       # a 5-byte remaining length
        CONNACK_OK + b"\x30\xff\xff\xff\x7f",           # 256 MB PUBLISH: over the packet limit
        CONNACK_OK + publish_packet("a/#", b"x"),       # a wildcard in a PUBLISH topic
        CONNACK_OK + b"\x32\x06\x00\x02\xff\xfe\x00\x01",  # invalid UTF-8 topic, QoS 1
        CONNACK_OK + harness.connect_packet("x"),       # a CONNECT from the server
        CONNACK_OK + b"\x62\x02\x00\x00",               # PUBREL with packet id 0
    ]
    remote = FakeRemote(garbage)
    try:
        add_config(broker, bridge_lines(remote.port, "g/# both 1"))
        broker.start()
        wait_until(lambda: len(remote.closed_by_sol) == len(garbage), 40,
                   "sol to close each garbage connection (%d so far)" % len(remote.closed_by_sol))
        check(all(remote.closed_by_sol), "closed by sol: %r" % remote.closed_by_sol)
        # Garbage is no refusal of the bridge flag: every CONNECT kept it.
        check(all(c[6] == 0x84 for c in remote.connects),
              "protocol levels %r" % [c[6] for c in remote.connects])
        # Sol itself never stopped serving its own clients.
        sub = harness.MosquittoSub(broker.port, "local/t", count=1, qos=1)
        harness.publish_until_received(broker.port, sub, "local/t", "alive", qos=1)
        rc, lines, err = sub.wait()
        check(rc == 0 and lines == ["local/t alive"], "local delivery: %r %r" % (lines, err))
        check(broker.is_running(), "broker still running")
        log = broker.log()
        check(log.count("bridge cloud: malformed packet from") >= 5, "malformed packets logged")
        check("sent CONNECT" in log or "sent an unexpected CONNECT" in log, "CONNECT logged")
    finally:
        remote.close()


def test_a_remote_that_refuses_the_bridge_flag_gets_a_plain_connect(broker):
    levels = []

    def refuse_private(connect_body):
        level = connect_body[6]
        levels.append(level)
        return None if level & 0x80 else CONNACK_OK

    def accept(connect_body):
        levels.append(connect_body[6])
        return CONNACK_OK

    remote = FakeRemote([refuse_private, accept])
    try:
        add_config(broker, bridge_lines(remote.port, "p/# out 1"))
        broker.start()
        wait_until(lambda: len(levels) >= 2, 20, "two CONNECTs")
        check(levels[0] == 0x84 and levels[1] == 0x04, "protocol levels %r" % levels)
        broker.wait_for_log("bridge cloud: connected to")
        broker.wait_for_log("retrying at once without the bridge flag")
    finally:
        remote.close()


TESTS = [
    test_forwarding_out_in_and_both_with_prefixes,
    test_retained_flag_and_state_notifications,
    test_remote_down_then_back_everything_queued_arrives_in_order,
    test_kill9_with_messages_queued_for_a_down_remote_loses_nothing_acknowledged,
    test_kill9_while_forwarding_loses_nothing_acknowledged,
    test_kill9_while_receiving_loses_nothing_the_remote_accepted,
    test_full_bridge_queue_refuses_the_publisher_and_metrics_show_it,
    test_metrics_show_a_connected_bridge_found_by_name,
    test_tls_bridge_checks_the_chain_and_the_host_name,
    test_a_remote_sending_garbage_closes_the_bridge_and_sol_keeps_serving,
    test_a_remote_that_refuses_the_bridge_flag_gets_a_plain_connect,
]


def main():
    if shutil.which("mosquitto") is None:
        print("SKIP test_bridge: no mosquitto (tools/install-deps.sh installs it)")
        return
    only = os.environ.get("SOL_BRIDGE_ONLY")  # run the tests whose name contains it
    rounds = int(os.environ.get("SOL_BRIDGE_ROUNDS", "1"))
    r = harness.Runner()
    for _ in range(rounds):
        for fn in TESTS:
            if only is None or only in fn.__name__:
                r.run(fn, start=False)
    r.finish()


if __name__ == "__main__":
    main()
