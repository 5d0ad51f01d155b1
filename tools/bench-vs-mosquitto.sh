#!/usr/bin/env bash
# bench-vs-mosquitto.sh - runs the issue-6 benchmark scenarios against Sol and
# Debian's mosquitto with the same limits, alternating the brokers (A B A B)
# over ROUNDS rounds, and prints a table of medians with the Sol/Mosquitto
# ratio, broker CPU seconds per 100k delivered messages and broker RSS.
#
# Each run starts a fresh broker on a free 127.0.0.1 port with a fresh data
# directory, runs tools/solbench against it, reads /proc/PID/stat and
# /proc/PID/status, and stops that broker. Only PIDs this script started are
# ever signalled. Every wait is bounded.
# Not for: correctness testing (tests/integration) or remote brokers.
#
# Usage: tools/bench-vs-mosquitto.sh
# Environment (defaults in brackets):
#   ROUNDS [3]           rounds; each round runs every broker variant once
#   DURATION [5]         seconds of publishing per run; DURATION_<scenario> overrides
#   DRAIN [2]            at most this many seconds to wait for in-flight messages
#   SCENARIOS [all]      space-separated subset of the names below
#   SOL [build/sol]  SOLBENCH [build/solbench]  MOSQUITTO [/usr/sbin/mosquitto]
#   MAX_INFLIGHT [100]   max_inflight_messages for both brokers
#   MAX_QUEUED [1000000] max_queued_messages for both brokers (high: the flat-out rows compare
#                        throughput without drops; the lost % column shows any that remain)
#   IDLE_CONNS [10000]   connections in the idle scenario
#   KEEP_TMP [0]         1 keeps the temp dir (configs, logs, raw results)
# Scenarios: qos0_fanin qos1_fanin qos2_1to1 qos0_fanout (as fast as each broker goes),
#            qos0_fanin_rate qos1_fanin_rate qos0_fanout_rate (a fixed load both brokers carry
#            without drops: the fair basis for CPU per message), qos1_latency idle_conns
#            qos1_256k qos1_persist_fanin qos1_fanout1000 (1->1,000 at QoS 1, flat out)
#            qos1_fanout1000_rate (1->1,000 at QoS 1, 20 msg/s in, 20k out: equal load)
#            qos1_fanout1000_4k (1->1,000 at QoS 1, 4 KB payloads, flat out)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
DRAIN=${DRAIN:-2}
SOL=${SOL:-$repo/build/sol}
SOLBENCH=${SOLBENCH:-$repo/build/solbench}
MOSQUITTO=${MOSQUITTO:-/usr/sbin/mosquitto}
MAX_INFLIGHT=${MAX_INFLIGHT:-100}
MAX_QUEUED=${MAX_QUEUED:-1000000}
IDLE_CONNS=${IDLE_CONNS:-10000}
KEEP_TMP=${KEEP_TMP:-0}
ALL_SCENARIOS="qos0_fanin qos1_fanin qos2_1to1 qos0_fanout qos0_fanin_rate qos1_fanin_rate qos0_fanout_rate qos1_latency idle_conns qos1_256k qos1_persist_fanin qos1_fanout1000 qos1_fanout1000_rate qos1_fanout1000_4k"
SCENARIOS=${SCENARIOS:-$ALL_SCENARIOS}

# name -> solbench arguments (besides host, port, duration, json)
declare -A ARGS=(
    [qos0_fanin]="-P 8 -S 1 --qos 0"
    [qos1_fanin]="-P 8 -S 1 --qos 1"
    [qos2_1to1]="-P 1 -S 1 --qos 2"
    [qos0_fanout]="-P 1 -S 100 --qos 0"
    [qos0_fanin_rate]="-P 8 -S 1 --qos 0 --rate 20000"
    [qos1_fanin_rate]="-P 8 -S 1 --qos 1 --rate 3000"
    [qos0_fanout_rate]="-P 1 -S 100 --qos 0 --rate 300"
    [qos1_latency]="-P 1 -S 1 --qos 1 --rate 5000 --clean 0 --client-prefix lat-"
    [idle_conns]="-P 0 -S 0 -C $IDLE_CONNS"
    [qos1_256k]="-P 1 -S 1 --qos 1 --size 262144 --window 16"
    [qos1_persist_fanin]="-P 8 -S 1 --qos 1 --clean 0 --client-prefix pfan-"
    [qos1_fanout1000]="-P 1 -S 1000 --qos 1"
    [qos1_fanout1000_rate]="-P 1 -S 1000 --qos 1 --rate 20"
    [qos1_fanout1000_4k]="-P 1 -S 1000 --qos 1 --size 4096"
)
declare -A TITLE=(
    [qos0_fanin]="QoS0 fan-in 8->1"
    [qos1_fanin]="QoS1 fan-in 8->1"
    [qos2_1to1]="QoS2 1->1"
    [qos0_fanout]="QoS0 fan-out 1->100"
    [qos0_fanin_rate]="QoS0 fan-in 8->1 at 20k msg/s (equal load: compare CPU/msg)"
    [qos1_fanin_rate]="QoS1 fan-in 8->1 at 3k msg/s (equal load: compare CPU/msg)"
    [qos0_fanout_rate]="QoS0 fan-out 1->100 at 300 msg/s in, 30k out (equal load)"
    [qos1_latency]="QoS1 5k msg/s, persistent"
    [idle_conns]="$IDLE_CONNS idle connections"
    [qos1_256k]="QoS1 256 KB payloads"
    [qos1_persist_fanin]="QoS1 fan-in 8->1, persistent"
    [qos1_fanout1000]="QoS1 fan-out 1->1000"
    [qos1_fanout1000_rate]="QoS1 fan-out 1->1000 at 20 msg/s in, 20k out (equal load)"
    [qos1_fanout1000_4k]="QoS1 fan-out 1->1000, 4 KB payloads"
)
# Persistent scenarios compare mosquitto (persistence true) with Sol fsync and Sol nosync.
declare -A PERSISTENT=([qos1_latency]=1 [qos1_persist_fanin]=1)

started_pids=()
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-vs-mosquitto.XXXXXX")
results=$tmp/results.txt
: >"$results"

cleanup() {
    local pid
    for pid in "${started_pids[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    if [[ $KEEP_TMP == 1 ]]; then
        echo "kept $tmp" >&2
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT

die() {
    echo "bench-vs-mosquitto: $*" >&2
    exit 1
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Raises the soft fd limit for this shell and its children; 0 if `need` is covered.
raise_nofile() {
    local need=$1 hard
    hard=$(ulimit -Hn)
    if [[ $hard != unlimited && $hard -lt $need ]]; then
        ulimit -n "$hard"
        return 1
    fi
    ulimit -n "$need"
}

# write_conf VARIANT PORT DIR: the broker config, same limits for every variant.
write_conf() {
    local variant=$1 port=$2 dir=$3
    {
        echo "listener $port 127.0.0.1"
        echo "allow_anonymous true"
        echo "max_inflight_messages $MAX_INFLIGHT"
        echo "max_queued_messages $MAX_QUEUED"
        echo "max_queued_bytes 0"
        case $variant in
        mosquitto)
            echo "user $(id -un)"
            ;;
        mosquitto-persist)
            echo "user $(id -un)"
            echo "persistence true"
            echo "persistence_location $dir/data/"
            ;;
        sol)
            echo "persistence_location $dir/data"
            echo "max_output_buffer_bytes 1G" # Sol's QoS 0 drop threshold: off, like mosquitto's
            ;;
        sol-fsync)
            echo "persistence_location $dir/data"
            echo "storage_sync fsync"
            ;;
        sol-nosync)
            echo "persistence_location $dir/data"
            echo "storage_sync nosync"
            ;;
        esac
    } >"$dir/broker.conf"
}

# Waits (at most 10 s) until 127.0.0.1:PORT accepts a connection while PID lives.
wait_listening() {
    local pid=$1 port=$2 i
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || return 1
        if timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# start_broker VARIANT DIR PORT: sets broker_pid.
start_broker() {
    local variant=$1 dir=$2 port=$3
    mkdir -p "$dir/data"
    write_conf "$variant" "$port" "$dir"
    case $variant in
    mosquitto*) "$MOSQUITTO" -c "$dir/broker.conf" >"$dir/broker.log" 2>&1 & ;;
    sol*) "$SOL" -c "$dir/broker.conf" >"$dir/broker.log" 2>&1 & ;;
    esac
    broker_pid=$!
    started_pids+=("$broker_pid")
    if ! wait_listening "$broker_pid" "$port"; then
        echo "bench-vs-mosquitto: $variant did not start listening on port $port; its log:" >&2
        tail -n 20 "$dir/broker.log" >&2 || true
        stop_broker "$broker_pid"
        return 1
    fi
}

# Sends SIGTERM, waits at most 10 s, then SIGKILL.
stop_broker() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    local kept=()
    local p
    for p in "${started_pids[@]}"; do
        [[ $p == "$pid" ]] || kept+=("$p")
    done
    started_pids=("${kept[@]+"${kept[@]}"}")
}

# utime+stime of PID in clock ticks (fields 14 and 15, counted after the ")" of comm).
cpu_ticks() {
    local stat
    stat=$(<"/proc/$1/stat")
    stat=${stat##*) }
    awk '{ print $12 + $13 }' <<<"$stat"
}

rss_kb() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# run_one SCENARIO VARIANT ROUND: one broker, one solbench run, one results line.
run_one() {
    local scenario=$1 variant=$2 round=$3
    local dir=$tmp/$scenario-$variant-$round port duration cpu0 cpu1 rss json
    local -a args
    read -r -a args <<<"${ARGS[$scenario]}"
    mkdir -p "$dir"
    port=$(free_port)
    if ! start_broker "$variant" "$dir" "$port"; then
        echo "$scenario $variant $round FAILED 0 0 {}" >>"$results"
        return 0
    fi
    local dvar=DURATION_$scenario
    duration=${!dvar:-$DURATION}
    cpu0=$(cpu_ticks "$broker_pid")
    json=$("$SOLBENCH" --host 127.0.0.1 -p "$port" -d "$duration" --drain "$DRAIN" --json \
        --broker-pid "$broker_pid" "${args[@]}" 2>"$dir/solbench.err") || true
    cpu1=$(cpu_ticks "$broker_pid")
    rss=$(rss_kb "$broker_pid")
    stop_broker "$broker_pid"
    if [[ -z $json ]]; then
        json="{}"
        echo "bench-vs-mosquitto: solbench printed nothing for $scenario/$variant:" >&2
        tail -n 5 "$dir/solbench.err" >&2 || true
    fi
    echo "$scenario $variant $round OK $((cpu1 - cpu0)) $rss $json" >>"$results"
    printf '  %-20s %-18s round %s: %s\n' "$scenario" "$variant" "$round" \
        "$(summarise "$json")" >&2
}

summarise() {
    python3 -c 'import json,sys; d=json.loads(sys.argv[1] or "{}")
if not d: print("no result"); sys.exit()
print("ok" if d.get("ok") else "FAILED(%s)" % d.get("failure"),
      "rx %.0f msg/s lost %d p50 %.0f us idle %d in %.2f s" % (d["throughput_msgs"], d["lost"],
      d["latency_p50_us"], d["idle_connected"], d["idle_connect_s"]))' "$1"
}

variants_of() {
    local base=sol
    [[ -x $SOL ]] || base=""
    if [[ -n ${PERSISTENT[$1]:-} ]]; then
        echo "mosquitto-persist ${base:+sol-fsync sol-nosync}"
    else
        echo "mosquitto $base"
    fi
}

run_scenario() {
    local scenario=$1 round variant
    echo "${TITLE[$scenario]} ($scenario): $(variants_of "$scenario")" >&2
    for ((round = 1; round <= ROUNDS; round++)); do
        for variant in $(variants_of "$scenario"); do
            run_one "$scenario" "$variant" "$round"
        done
    done
}

print_table() {
    python3 - "$results" "$(getconf CLK_TCK)" "$IDLE_CONNS" <<'EOF'
import json, statistics, sys
path, hz, idle_conns = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
runs = {}
order = []
for line in open(path):
    scen, variant, _round, status, ticks, rss, js = line.rstrip("\n").split(" ", 6)
    d = json.loads(js)
    if scen not in order:
        order.append(scen)
    if status != "OK" or not d.get("ok"):
        continue
    d["cpu_s"] = int(ticks) / hz
    d["rss_end_kb"] = int(rss)
    runs.setdefault((scen, variant), []).append(d)

METRICS = {
    "msg": [("throughput msg/s", lambda d: d["throughput_msgs"]),
            ("lost %", lambda d: 100.0 * d["lost"] / d["expected"] if d["expected"] else 0.0),
            ("latency p50 us", lambda d: d["latency_p50_us"]),
            ("latency p99 us", lambda d: d["latency_p99_us"]),
            ("latency p99.9 us", lambda d: d["latency_p999_us"]),
            ("CPU s / 100k msg", lambda d: d["cpu_s"] * 1e5 / d["received"] if d["received"] else None),
            ("RSS MB at end", lambda d: d["rss_end_kb"] / 1024.0)],
    "idle": [("connect all s", lambda d: d["idle_connect_s"]),
             ("RSS B / conn", lambda d: (d["broker_rss_after_kb"] - d["broker_rss_before_kb"]) * 1024.0 / idle_conns),
             ("CPU s total", lambda d: d["cpu_s"]),
             ("RSS MB at end", lambda d: d["rss_end_kb"] / 1024.0)],
}

def median(scen, variant, f):
    vals = [f(d) for d in runs.get((scen, variant), [])]
    vals = [v for v in vals if v is not None]
    return (statistics.median(vals), len(vals)) if vals else (None, 0)

def fmt(v):
    if v is None:
        return "n/a"
    return "%.0f" % v if abs(v) >= 100 else "%.3g" % v

def ratio(a, b):
    return "%.2f" % (a / b) if a is not None and b else "n/a"

hdr = ("scenario", "metric", "mosquitto", "sol", "sol/mosq", "sol nosync", "nosync/mosq")
rows = []
for scen in order:
    persistent = scen in ("qos1_latency", "qos1_persist_fanin")
    base = "mosquitto-persist" if persistent else "mosquitto"
    sol = "sol-fsync" if persistent else "sol"
    kind = "idle" if scen == "idle_conns" else "msg"
    first = True
    for name, f in METRICS[kind]:
        m, n = median(scen, base, f)
        s, _ = median(scen, sol, f)
        ns, _ = median(scen, "sol-nosync", f) if persistent else (None, 0)
        rows.append((scen if first else "", name, fmt(m), fmt(s), ratio(s, m),
                     fmt(ns) if persistent else "-", ratio(ns, m) if persistent else "-"))
        first = False
widths = [max(len(str(r[i])) for r in rows + [hdr]) for i in range(len(hdr))]
line = "  ".join("%-*s" % (widths[i], hdr[i]) for i in range(len(hdr)))
print(line)
print("-" * len(line))
for r in rows:
    print("  ".join(("%-*s" if i < 2 else "%*s") % (widths[i], r[i]) for i in range(len(hdr))))
EOF
}

main() {
    [[ -x $SOLBENCH ]] || die "$SOLBENCH not found; build it: make build"
    [[ -x $MOSQUITTO ]] || die "$MOSQUITTO not found (apt-get install mosquitto)"
    command -v python3 >/dev/null || die "python3 is needed for free ports and the table"
    if [[ ! -x $SOL ]]; then
        echo "bench-vs-mosquitto: $SOL not found; running mosquitto only" >&2
    fi
    local scenario
    for scenario in $SCENARIOS; do
        [[ -n ${ARGS[$scenario]:-} ]] || die "unknown scenario '$scenario' (known: $ALL_SCENARIOS)"
        if [[ $scenario == idle_conns ]] && ! raise_nofile $((IDLE_CONNS + 1024)); then
            echo "bench-vs-mosquitto: skipping idle_conns: hard fd limit $(ulimit -Hn) < $((IDLE_CONNS + 1024))" >&2
            continue
        fi
        run_scenario "$scenario"
    done
    echo
    echo "Medians of $ROUNDS rounds, ${DURATION}s runs (drain <= ${DRAIN}s); max_inflight_messages $MAX_INFLIGHT, max_queued_messages $MAX_QUEUED."
    echo "Persistent scenarios: mosquitto 'persistence true' vs Sol 'storage_sync fsync' (sol) and 'nosync'. Other scenarios: Sol's default config."
    echo "CPU = broker utime+stime over the run / messages delivered to subscribers. $(nproc) CPUs, $(uname -r)."
    print_table
}

main "$@"
