"""test_bench_tools.py - the benchmark tools still run and measure what they claim.

At tiny sizes (seconds, not figures): solbench spreads its connections over
several loopback source addresses (--source/--sources, how idle_100k gets past
one address's ephemeral ports) and loses nothing at QoS 1;
tools/bench-retained.py and tools/bench-scale.py run against Sol alone and
their own checks hold (every retained message delivered to '#', the persistent
session, its queued messages and the retained messages found after restarts);
tools/bench-vs-mosquitto.sh runs a per-scenario config override
(max_inflight_messages 1000) into the broker's config.
Not for: performance figures (tools/bench-vs-mosquitto.sh at full size).
"""

import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import check  # noqa: E402

SOLBENCH = os.path.join(h.BUILD_DIR, "solbench")
TOOLS = os.path.join(h.SOURCE_DIR, "tools")
RUN_TIMEOUT_S = 120


def run(cmd, env=None):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                       env={**os.environ, "SOL": h.SOL, "SOLBENCH": SOLBENCH, **(env or {})})
    check(r.returncode == 0, "%s exited %d:\n%s\n%s" % (cmd[0], r.returncode, r.stdout, r.stderr))
    return r


def test_solbench_spreads_connections_over_source_addresses(broker):
    out = run([SOLBENCH, "-p", str(broker.port), "-C", "30", "-P", "1", "-S", "1", "-q", "1",
               "-d", "0.5", "--rate", "1000", "--source", "127.0.0.2", "--sources", "3",
               "--json"]).stdout
    d = json.loads(out)
    check(d["ok"] and d["idle_connected"] == 30, "idle connections: %s" % out)
    check(d["received"] > 0 and d["lost"] == 0, "QoS 1 through spread connections: %s" % out)
    peers = set(re.findall(r"New client connected from (127\.0\.0\.\d+):", broker.log()))
    check(peers == {"127.0.0.2", "127.0.0.3", "127.0.0.4"}, "source addresses seen: %s" % peers)


def test_solbench_rejects_a_bad_source(_broker):
    r = subprocess.run([SOLBENCH, "-p", "1", "--source", "not-an-address"],
                       capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    check(r.returncode == 2 and "IPv4" in r.stderr, "exit %d: %s" % (r.returncode, r.stderr))


def table_rows(out):
    """metric -> sol column of a tools/benchlib.py table."""
    rows = {}
    for line in out.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) >= 4:
            rows[cells[-4] if len(cells) == 4 else cells[1]] = cells[-2]
    return rows


def test_bench_retained_runs_and_delivers_every_retained_message(_broker):
    out = run([sys.executable, os.path.join(TOOLS, "bench-retained.py"), "300", "3", "--starts",
               "1", "--brokers", "sol"]).stdout
    rows = table_rows(out)
    check(rows.get("'#' messages delivered") == "300", "table:\n%s" % out)
    check(rows.get("exact after restart ms (1)") not in (None, "n/a"), "table:\n%s" % out)


def test_bench_scale_runs_and_finds_its_sessions_after_restart(_broker):
    out = run([sys.executable, os.path.join(TOOLS, "bench-scale.py"), "--clients", "40",
               "--subs", "3", "--probe", "3", "--starts", "1", "--per-source", "15",
               "--brokers", "sol"]).stdout
    rows = table_rows(out)
    check("WARNING" not in out, "the script's own checks failed:\n%s" % out)
    check(rows.get("after restart: queued received") == "3", "table:\n%s" % out)
    check(rows.get("after restart: session present") == "1", "table:\n%s" % out)


def test_bench_vs_mosquitto_applies_a_scenario_override(_broker):
    if not os.access("/usr/sbin/mosquitto", os.X_OK):
        return "skip"
    r = run(["bash", os.path.join(TOOLS, "bench-vs-mosquitto.sh")],
            env={"SCENARIOS": "qos1_fanin_w1000_rate", "ROUNDS": "1", "DURATION": "0.3",
                 "DRAIN": "1", "RATE_qos1_fanin_w1000_rate": "500", "KEEP_TMP": "1"})
    kept = re.search(r"kept (\S+)", r.stderr)
    check(kept, "no kept temp dir:\n%s" % r.stderr)
    try:
        out = r.stdout
        check(re.search(r"qos1_fanin_w1000_rate\s+throughput msg/s\s+\d+\s+\d+", out),
              "no row for both brokers:\n%s" % out)
        check(re.search(r"lost %\s+0\s+0\s", out), "a paced run lost messages:\n%s" % out)
        for variant in ("mosquitto", "sol"):
            with open(os.path.join(kept.group(1), "qos1_fanin_w1000_rate-%s-1" % variant,
                                   "broker.conf")) as f:
                conf = f.read()
            check("max_inflight_messages 1000\n" in conf, "%s config:\n%s" % (variant, conf))
            check(("set_tcp_nodelay true" in conf) == (variant == "mosquitto"), conf)
    finally:
        shutil.rmtree(kept.group(1), ignore_errors=True)


def main():
    r = h.Runner()
    r.run(test_solbench_spreads_connections_over_source_addresses)
    # The rest start their own brokers.
    r.run(test_solbench_rejects_a_bad_source, start=False)
    r.run(test_bench_retained_runs_and_delivers_every_retained_message, start=False)
    r.run(test_bench_scale_runs_and_finds_its_sessions_after_restart, start=False)
    r.run(test_bench_vs_mosquitto_applies_a_scenario_override, start=False)
    r.finish()


if __name__ == "__main__":
    main()
