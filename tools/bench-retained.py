#!/usr/bin/env python3
"""bench-retained.py - many retained messages in Sol and in Debian's mosquitto,
side by side in the same run (issue 11).

For each broker: start it on a free 127.0.0.1 port with a fresh data
directory (Sol: its LMDB store, storage_sync nosync; mosquitto: persistence
true), read RssAnon, store N retained messages "dev/<i>/state" of SIZE bytes
(QoS 1, 4 connections each with a window of 1000, every PUBACK awaited: both ack
once the message is stored), then measure:
  RssAnon per message   (RssAnon after - before) / N, from /proc/PID/status
  exact                 SUBSCRIBE "dev/<k>/state" until its retained message
                        arrives, ROUNDS different k, median (UNSUBSCRIBE between)
  plus                  the same for "dev/<k>/+" (one match)
  hash                  one SUBSCRIBE "#" (QoS 0) until all N retained messages
                        have arrived (counted by bytes, then parsed), at most
                        --hash-timeout seconds; the count delivered is a row
  start-up              SIGTERM (mosquitto saves its db), then start again on
                        the same store: seconds from exec to the first CONNACK,
                        median of --starts restarts; after the first, an exact
                        SUBSCRIBE must still find its message
and print one table (the columns of tools/bench-vs-mosquitto.sh) with the
Sol / mosquitto ratio. Only PIDs it started are signalled; every wait is
bounded.

For the "#" row mosquitto gets max_queued_messages 0 (no limit), so that it
cannot drop any of the N QoS 0 messages it queues at once; Sol keeps its
defaults (it streams them at the subscriber's pace under
max_output_buffer_bytes). --default-limits keeps mosquitto's default too
(then the delivered count shows whether it drops). mosquitto gets set_tcp_nodelay true (Sol always
sets TCP_NODELAY): without it every mosquitto figure here is about 40 ms, the
client's delayed ACK holding back the retained PUBLISH behind the SUBACK.

Usage: tools/bench-retained.py [N=1000000] [ROUNDS=50] [--size 100] [--starts 3]
       (or --messages N --rounds ROUNDS)
                               [--hash-timeout 300] [--default-limits] [--keep]
Environment: SOL [build/sol], MOSQUITTO [/usr/sbin/mosquitto].
Full size (N = 1,000,000): about 3-6 minutes on 2 cores, 200 MB of RAM per
broker plus the client's copy of the "#" delivery, a few hundred MB of disk.
Not for: correctness (tests/integration/test_broker.py covers retained).
"""

import argparse
import os
import shutil
import statistics
import sys
import socket
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402


def topic(i):
    return b"dev/%d/state" % i


def directives(kind, default_limits):
    if kind == "sol":
        # Sol streams a '#' at the subscriber's pace within its output limit: its defaults.
        return ["storage_sync nosync", "storage_max_size 64G"]
    # Sol always sets TCP_NODELAY; without it mosquitto's SUBACK and the retained PUBLISH
    # behind it wait for the client's delayed ACK (about 40 ms on Linux).
    return ["set_tcp_nodelay true"] + ([] if default_limits else ["max_queued_messages 0"])


def time_filters(port, filters, want_publish=True):
    """Median seconds from SUBSCRIBE to SUBACK + its retained message, one filter per round."""
    s, r, _sp = bl.connect(port, "timer")
    times = []
    for i, f in enumerate(filters):
        pid = i % 60000 + 1
        t, codes = bl.time_subscribe(s, r, f, 0, pid, want_publish)
        if codes[:1] == b"\x80":
            raise bl.BenchError("SUBSCRIBE %s refused" % f)
        times.append(t)
        bl.unsubscribe(s, r, f, pid)
    bl.close_client(s)
    return statistics.median(times)


def time_hash(port, n, size, timeout_s):
    """Seconds until a '#' SUBSCRIBE has delivered all n retained messages, and how many came."""
    s, r, _sp = bl.connect(port, "hash")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    suback = 5  # 90 03 00 01 00
    total = suback + sum(bl.publish_size(len(topic(i)), size, 0) for i in range(n))
    s.sendall(bl.subscribe_packet(1, ["#"], 0))
    data, seconds = bl.receive_bytes(s, total, timeout_s)
    bl.close_client(s)
    publishes, _others = bl.count_publishes(data)
    return seconds, publishes


def measure(kind, tmp, args):
    rounds, n = args.rounds, args.n
    payload = bytes((0x61 + i % 26) for i in range(args.size))
    b = bl.Broker(kind, tmp, directives(kind, args.default_limits))
    out = {}
    try:
        b.start()
        rss0 = b.rss_anon_kb()
        out["fill"] = n / bl.publish_many(b.port, n, topic, payload, retain=True)
        rss1 = b.rss_anon_kb()
        out["rss_per_msg"] = (rss1 - rss0) * 1024.0 / n
        out["rss_mb"] = rss1 / 1024.0
        ks = [(n // 2 + r * 7919) % n for r in range(rounds)]
        out["exact"] = time_filters(b.port, ["dev/%d/state" % k for k in ks]) * 1e3
        out["plus"] = time_filters(b.port, ["dev/%d/+" % k for k in ks]) * 1e3
        if args.hash_timeout > 0:
            out["hash_s"], out["hash_n"] = time_hash(b.port, n, args.size, args.hash_timeout)
        out["stop_s"] = b.stop()
        out["store_mb"] = b.store_bytes() / 1e6
        starts = []
        for i in range(args.starts):
            starts.append(b.start())
            if i == 0:
                out["rss_restart_mb"] = b.rss_anon_kb() / 1024.0
                out["exact_after_restart"] = time_filters(b.port, ["dev/%d/state" % ks[0]]) * 1e3
            b.stop()
        out["startup_s"] = statistics.median(starts) if starts else None
    finally:
        b.kill()
    return out


ROWS = [
    ("fill msg/s (QoS 1, 4 conns)", "fill"),
    ("RssAnon B / retained msg", "rss_per_msg"),
    ("RssAnon MB after fill", "rss_mb"),
    ("exact SUBSCRIBE ms (p50)", "exact"),
    ("'+' SUBSCRIBE ms (p50)", "plus"),
    ("'#' SUBSCRIBE: all in s", "hash_s"),
    ("'#' messages delivered", "hash_n"),
    ("shutdown s (SIGTERM)", "stop_s"),
    ("store on disk MB", "store_mb"),
    ("start-up to CONNACK s", "startup_s"),
    ("RssAnon MB after start", "rss_restart_mb"),
    ("exact after restart ms (1)", "exact_after_restart"),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n", nargs="?", type=int, default=None, help="retained messages (1000000)")
    ap.add_argument("rounds", nargs="?", type=int, default=None,
                    help="SUBSCRIBEs timed per filter kind (50)")
    ap.add_argument("--messages", type=int, default=None, help="the same as N")
    ap.add_argument("--rounds", dest="rounds_opt", type=int, default=None,
                    help="the same as ROUNDS")
    ap.add_argument("--size", type=int, default=100, help="payload bytes (default 100)")
    ap.add_argument("--starts", type=int, default=3, help="restarts timed (default 3)")
    ap.add_argument("--hash-timeout", type=float, default=300.0,
                    help="seconds the '#' SUBSCRIBE may take; 0 skips it (default 300)")
    ap.add_argument("--default-limits", action="store_true",
                    help="keep each broker's default output/queue limits for the '#' row")
    ap.add_argument("--brokers", default="mosquitto sol", help="which, in order")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs)")
    args = ap.parse_args()
    args.n = args.messages or args.n or 1000000
    args.rounds = args.rounds_opt or args.rounds or 50
    if args.n < 1 or args.rounds < 1 or args.starts < 0 or args.size < 0:
        ap.error("N and ROUNDS must be >= 1, --starts and --size >= 0")
    tmp = tempfile.mkdtemp(prefix="bench-retained-")
    results = {}
    try:
        for kind in args.brokers.split():
            print("bench-retained: %s: %d retained messages of %d B" % (kind, args.n, args.size),
                  file=sys.stderr)
            results[kind] = measure(kind, tmp, args)
            print("bench-retained: %s: %s" % (kind, results[kind]), file=sys.stderr)
    finally:
        if args.keep:
            print("kept %s" % tmp, file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    avg_topic = sum(len(topic(i)) for i in range(0, args.n, max(1, args.n // 1000)))
    avg_topic /= len(range(0, args.n, max(1, args.n // 1000)))
    print("%d retained messages dev/<i>/state (topic %.1f B on average), %d B payloads; SUBSCRIBE "
          "medians of %d; start-up median of %d restarts after a clean shutdown; Sol storage_sync "
          "nosync, mosquitto persistence true and set_tcp_nodelay true%s."
          % (args.n, avg_topic, args.size, args.rounds, args.starts,
             "" if args.default_limits else ", max_queued_messages 0 (for '#')"))
    m, s = results.get("mosquitto", {}), results.get("sol", {})
    bl.print_table([("retained_%d" % args.n, name, m.get(key), s.get(key)) for name, key in ROWS])


if __name__ == "__main__":
    main()
