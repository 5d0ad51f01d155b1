#!/usr/bin/env python3
"""bench-scale.py - a million subscriptions, a million retained and a million
queued messages in Sol and in Debian's mosquitto, side by side (issue 11).

For each broker, on a free 127.0.0.1 port with a fresh data directory (Sol:
storage_sync nosync unless --sol-sync fsync; mosquitto: persistence true,
set_tcp_nodelay true as Sol always does; both: no per-client or total
subscription limit, connection log lines off):
  1. SUBSCRIBE cost at the start: --probe SUBSCRIBEs of one new filter each,
     time to SUBACK, median; once from a clean session and once from a
     persistent one (Sol stores a persistent session's subscription and sends
     the SUBACK after that commit; mosquitto keeps it in memory until it saves).
  2. The fleet: --clients clients, each connects with clean session 0, sends
     one SUBSCRIBE of --subs filters "fleet/<c>/<j>" (QoS 1), waits for its
     SUBACK, disconnects (256 at a time, over loopback source addresses
     127.0.0.2, ... so no ephemeral port is used twice). RssAnon per
     subscription = (RssAnon after - before the fleet) / (clients x subs).
  3. SUBSCRIBE cost at the end (as 1., with the fleet's subscriptions in).
  4. --retained retained messages "dev/<i>/state" and --queued QoS 1 messages
     to "fleet/<c>/<j>" (one per subscription at the defaults, so each offline
     session queues --subs messages), --size bytes each, QoS 1 pipelined over
     4 connections, every PUBACK awaited.
  5. SIGTERM (mosquitto saves its db), then --starts restarts on that store:
     seconds from exec to the first CONNACK, median; RssAnon after the first;
     after the last, client fleet-<clients-1> reconnects (session present must
     be 1) and must receive its queued messages, and an exact SUBSCRIBE must
     find its retained message.
Prints one table (the columns of tools/bench-vs-mosquitto.sh) with the
Sol / mosquitto ratio. Only PIDs it started are signalled; every loop is
bounded in count and every wait in time.

Usage: tools/bench-scale.py [--clients 100000] [--subs 10] [--retained N]
         [--queued N] [--size 100] [--probe 100] [--starts 3] [--sol-sync nosync]
         [--brokers "mosquitto sol"] [--keep]
Environment: SOL [build/sol], MOSQUITTO [/usr/sbin/mosquitto].
Full size (100,000 clients x 10, 1M retained, 1M queued): roughly 10-20
minutes for both brokers on 2 cores; a few GB of RAM and disk.
Not for: correctness (tests/integration covers sessions and queues).
"""

import argparse
import os
import shutil
import socket
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402


def directives(kind, sol_sync):
    common = ["connection_messages false"]
    if kind == "sol":
        return common + ["storage_sync %s" % sol_sync, "storage_max_size 64G",
                         "max_subscriptions 0", "max_subscriptions_per_client 0"]
    return common + ["set_tcp_nodelay true"]


def probe_subscribes(port, client_id, clean, filters):
    """Median seconds from SUBSCRIBE to SUBACK over filters, one new filter each."""
    s, r, _sp = bl.connect(port, client_id, clean=clean)
    times = []
    for i, f in enumerate(filters):
        t, codes = bl.time_subscribe(s, r, f, 1, i % 60000 + 1, want_publish=False)
        if codes[:1] == b"\x80":
            raise bl.BenchError("%s: SUBSCRIBE %s refused" % (client_id, f))
        times.append(t)
    bl.close_client(s)
    return statistics.median(times) * 1e3


def probes(port, phase, count):
    clean = probe_subscribes(port, "probe-%s-clean" % phase, True,
                             ["probe/%s/clean/%d" % (phase, k) for k in range(count)])
    persistent = probe_subscribes(port, "probe-%s-persistent" % phase, False,
                                  ["probe/%s/persistent/%d" % (phase, k) for k in range(count)])
    return clean, persistent


def verify_after_restart(port, client, expect_queued, has_retained):
    """Session present for fleet client `client`, how many queued messages it receives (each
    acknowledged; at most 10 s of waiting), and whether an exact SUBSCRIBE finds retained
    message 0 (None if there are none)."""
    s, r, present = bl.connect(port, "fleet-%d" % client, clean=False)
    got = 0
    s.settimeout(10.0)
    try:
        for _ in range(max(expect_queued, 1) * 4):
            if got >= expect_queued:
                break
            first, body = r.packet()
            if first >> 4 == bl.PUBLISH:
                got += 1
                if (first >> 1) & 3:
                    tlen = int.from_bytes(body[0:2], "big")
                    s.sendall(b"\x40\x02" + body[2 + tlen:4 + tlen])
    except (socket.timeout, bl.BenchError):
        pass
    bl.close_client(s)
    retained_ok = None
    if has_retained:
        t, r2, _sp = bl.connect(port, "verify-retained")
        t.settimeout(10.0)
        try:
            bl.time_subscribe(t, r2, "dev/0/state", 0, 1, True)
            retained_ok = 1
        except (socket.timeout, bl.BenchError):
            retained_ok = 0
        bl.close_client(t)
    return int(present), got, retained_ok


def measure(kind, tmp, a):
    payload = bytes((0x61 + i % 26) for i in range(a.size))
    b = bl.Broker(kind, tmp, directives(kind, a.sol_sync))
    out = {}
    nsubs = a.clients * a.subs
    try:
        b.start(timeout_s=a.start_timeout)
        out["sub_start_clean"], out["sub_start_persistent"] = probes(b.port, "start", a.probe)
        rss0 = b.rss_anon_kb()
        seconds, errors, refused = bl.subscribe_fleet(
            b.port, a.clients, lambda c: ["fleet/%d/%d" % (c, j) for j in range(a.subs)], 1,
            concurrency=a.concurrency, per_source=a.per_source)
        out["fleet_rate"] = nsubs / seconds
        out["fleet_errors"], out["fleet_refused"] = errors, refused
        rss1 = b.rss_anon_kb()
        out["rss_per_sub"] = (rss1 - rss0) * 1024.0 / nsubs
        out["rss_fleet_mb"] = rss1 / 1024.0
        out["sub_end_clean"], out["sub_end_persistent"] = probes(b.port, "end", a.probe)
        if a.retained:
            out["retained_rate"] = a.retained / bl.publish_many(
                b.port, a.retained, lambda i: b"dev/%d/state" % i, payload, retain=True)
        if a.queued:
            subs, clients = a.subs, a.clients
            out["queued_rate"] = a.queued / bl.publish_many(
                b.port, a.queued, lambda i: b"fleet/%d/%d" % (i // subs % clients, i % subs),
                payload)
        out["rss_all_mb"] = b.rss_anon_kb() / 1024.0
        out["stop_s"] = b.stop(timeout_s=a.start_timeout)
        out["store_mb"] = b.store_bytes() / 1e6
        starts = []
        last = a.clients - 1
        # Message i went to client i // subs % clients: whole rounds, then part of the last.
        per_client = (a.queued // nsubs * a.subs
                      + max(0, min(a.subs, a.queued % nsubs - last * a.subs)))
        for i in range(a.starts):
            starts.append(b.start(timeout_s=a.start_timeout))
            if i == 0:
                out["rss_restart_mb"] = b.rss_anon_kb() / 1024.0
            if i == a.starts - 1:
                out["present"], out["queued_got"], out["retained_ok"] = verify_after_restart(
                    b.port, last, per_client, a.retained > 0)
                out["queued_want"] = per_client
            b.stop(timeout_s=a.start_timeout)
        out["startup_s"] = statistics.median(starts) if starts else None
    finally:
        b.kill()
    return out


ROWS = [
    ("SUBSCRIBE ms at start, clean", "sub_start_clean"),
    ("SUBSCRIBE ms at end, clean", "sub_end_clean"),
    ("SUBSCRIBE ms at start, persistent", "sub_start_persistent"),
    ("SUBSCRIBE ms at end, persistent", "sub_end_persistent"),
    ("fleet subscriptions/s", "fleet_rate"),
    ("fleet errors / refused filters", "fleet_errors"),
    ("RssAnon B / subscription", "rss_per_sub"),
    ("RssAnon MB after fleet", "rss_fleet_mb"),
    ("retained fill msg/s", "retained_rate"),
    ("queued fill msg/s", "queued_rate"),
    ("RssAnon MB with everything", "rss_all_mb"),
    ("shutdown s (SIGTERM)", "stop_s"),
    ("store on disk MB", "store_mb"),
    ("start-up to CONNACK s", "startup_s"),
    ("RssAnon MB after start", "rss_restart_mb"),
    ("after restart: session present", "present"),
    ("after restart: queued received", "queued_got"),
    ("after restart: retained found", "retained_ok"),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=100000)
    ap.add_argument("--subs", type=int, default=10, help="subscriptions per client")
    ap.add_argument("--retained", type=int, default=None, help="default: clients x subs")
    ap.add_argument("--queued", type=int, default=None, help="default: clients x subs")
    ap.add_argument("--size", type=int, default=100, help="payload bytes")
    ap.add_argument("--probe", type=int, default=100, help="SUBSCRIBEs timed per probe")
    ap.add_argument("--starts", type=int, default=3, help="restarts timed")
    ap.add_argument("--concurrency", type=int, default=256, help="fleet handshakes at once")
    ap.add_argument("--per-source", type=int, default=20000,
                    help="fleet connections per loopback source address")
    ap.add_argument("--sol-sync", choices=("nosync", "fsync"), default="nosync")
    ap.add_argument("--start-timeout", type=float, default=900.0,
                    help="seconds a start or a stop may take")
    ap.add_argument("--brokers", default="mosquitto sol", help="which, in order")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs)")
    a = ap.parse_args()
    nsubs = a.clients * a.subs
    a.retained = nsubs if a.retained is None else a.retained
    a.queued = nsubs if a.queued is None else a.queued
    if a.clients < 1 or a.subs < 1 or a.probe < 1 or a.starts < 1 or a.size < 0 \
            or a.retained < 0 or a.queued < 0 or a.concurrency < 1 or a.subs > 1000:
        ap.error("--clients, --subs (<= 1000), --probe, --starts, --concurrency must be >= 1")
    tmp = tempfile.mkdtemp(prefix="bench-scale-")
    results = {}
    try:
        for kind in a.brokers.split():
            print("bench-scale: %s: %d clients x %d subscriptions, %d retained, %d queued"
                  % (kind, a.clients, a.subs, a.retained, a.queued), file=sys.stderr)
            results[kind] = measure(kind, tmp, a)
            print("bench-scale: %s: %s" % (kind, results[kind]), file=sys.stderr)
    finally:
        if a.keep:
            print("kept %s" % tmp, file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("%d persistent clients x %d subscriptions (fleet/<c>/<j>, QoS 1), %d retained and %d "
          "queued messages of %d B; SUBSCRIBE medians of %d; start-up median of %d restarts after "
          "a clean shutdown; Sol storage_sync %s, mosquitto persistence true."
          % (a.clients, a.subs, a.retained, a.queued, a.size, a.probe, a.starts, a.sol_sync))
    for kind, r in results.items():
        if r.get("fleet_errors") or r.get("fleet_refused") or r.get("present") != 1 \
                or r.get("queued_got") != r.get("queued_want") or r.get("retained_ok") != 1:
            print("WARNING: %s: fleet errors %s, refused %s, session present %s, queued %s of "
                  "%s, retained found %s" % (kind, r.get("fleet_errors"), r.get("fleet_refused"),
                                             r.get("present"), r.get("queued_got"),
                                             r.get("queued_want"), r.get("retained_ok")))
    m, s = results.get("mosquitto", {}), results.get("sol", {})
    scen = "subs_%dx%d" % (a.clients, a.subs)
    rows = [(scen, name, m.get(key), s.get(key)) for name, key in ROWS]
    rows[5] = (scen, rows[5][1], "%s / %s" % (m.get("fleet_errors"), m.get("fleet_refused")),
               "%s / %s" % (s.get("fleet_errors"), s.get("fleet_refused")))
    bl.print_table(rows)


if __name__ == "__main__":
    main()
