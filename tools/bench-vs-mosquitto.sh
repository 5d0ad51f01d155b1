#!/usr/bin/env bash
# bench-vs-mosquitto.sh - runs the benchmark scenarios (issues 6, 11) against Sol and
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
# Usage: tools/bench-vs-mosquitto.sh       (all scenarios, full size: about 35 minutes on 2 cores)
#        ZERO_LOSS=1 SCENARIOS="qos1_fanin qos2_fanin_w1000" tools/bench-vs-mosquitto.sh
#        (ZERO_LOSS=1 adds up to ZL_BUDGET seconds per flat-out scenario: about 30 minutes for all)
# Environment (defaults in brackets):
#   ROUNDS [3]           rounds; each round runs every broker variant once
#   DURATION [5]         seconds of publishing per run; DURATION_<scenario> overrides
#   DRAIN [2]            at most this many seconds to wait for in-flight messages
#   SCENARIOS [all]      space-separated subset of the names below
#   SOL [build/sol]  SOLBENCH [build/solbench]  MOSQUITTO [/usr/sbin/mosquitto]
#   MAX_INFLIGHT [100]   max_inflight_messages for both brokers (the *_w1000 scenarios: 1000)
#   MAX_QUEUED [1000000] max_queued_messages for both brokers (high: the flat-out rows compare
#                        throughput without drops; the lost % column shows any that remain)
#   CONF_<scenario>      broker directives for one scenario, both brokers, "key value;key value";
#                        they replace the defaults above (e.g. CONF_qos1_fanin="max_inflight_messages 1000")
#   RATE_<scenario>      the --rate (msg/s in, all publishers) of a paced scenario
#   IDLE_CONNS [10000]   connections in the idle_conns scenario
#   IDLE_CONNS_LARGE [100000]  connections in the idle_100k scenario, spread over source
#                        addresses 127.0.0.2, .3, ... (IDLE_PER_SOURCE [20000] each: one address
#                        has about 28k ephemeral ports); the script raises `ulimit -n` (soft and,
#                        with CAP_SYS_RESOURCE, hard) for itself, the brokers and solbench; if
#                        the hard limit stays lower it runs as many connections as that allows
#                        and prints a NOTE (each broker holds every connection itself)
#   ZERO_LOSS [0]        1: after the rounds of each flat-out scenario, search per broker for the
#                        highest --rate with nothing lost and the backlog drained within ZL_DRAIN
#                        (see "Throughput at zero loss" below); adds zl:<scenario> rows
#   ZL_DURATION [2]      seconds of publishing per search step
#   ZL_DRAIN [1]         the drain deadline of a search step (seconds after publishing stops)
#   ZL_KEEP_UP [0.9]     a step also needs delivered msg/s >= this x the offered deliveries/s
#   ZL_STEPS [9]         runs per broker at most (1 flat-out probe + doubling/halving + bisection)
#   ZL_BUDGET [170]      seconds per scenario for the whole search (shared by its broker variants)
#   ZL_RESOLUTION [1.15] stop when first failing rate / best passing rate <= this
#   RETAINED_N [1000000] RETAINED_SIZE [100]  retained_1m: messages and payload bytes
#   RETAINED_ARGS []     more options for tools/bench-retained.py (e.g. "--starts 5 --rounds 30")
#   SCALE_CLIENTS [100000] SCALE_SUBS [10]    subs_1m: persistent clients, subscriptions each
#   SCALE_ARGS []        more options for tools/bench-scale.py (e.g. "--sol-sync fsync")
#   MOSQ_NODELAY [1]     1 gives mosquitto "set_tcp_nodelay true" (Sol always sets TCP_NODELAY;
#                        mosquitto's default leaves Nagle on, and its small writes then wait for
#                        the client's delayed ACK: p50 latencies of milliseconds at low rates);
#                        0 reproduces the tables made before this knob existed
#   FLOOR [0]            1: also run build/floor (tools/floor/floor.c: the least work a broker can
#                        do per delivery - one read per ready socket, one write per connection per
#                        turn, no MQTT state) as "floor", and with --uring as "floor-uring", in the
#                        non-persistent scenarios: what the kernel alone costs on this machine
#   KEEP_TMP [0]         1 keeps the temp dir (configs, logs, raw results)
# Scenarios: qos0_fanin qos1_fanin qos2_1to1 qos0_fanout (as fast as each broker goes),
#            qos0_fanin_rate qos1_fanin_rate qos0_fanout_rate (a fixed load both brokers carry
#            without drops: the fair basis for CPU per message), qos1_latency idle_conns
#            qos1_256k qos1_persist_fanin qos1_fanout1000 (1->1,000 at QoS 1, flat out)
#            qos1_fanout1000_rate (1->1,000 at QoS 1, 20 msg/s in, 20k out: equal load)
#            qos1_fanout1000_4k (1->1,000 at QoS 1, 4 KB payloads, flat out)
#            qos1_fanin_w1000 qos2_fanin_w1000 (8->1 at QoS 1 / QoS 2, max_inflight_messages
#            1000 for both brokers, publishers' --window 1000, flat out) and
#            qos1_fanin_w1000_rate qos2_fanin_w1000_rate (the same paced at 5,000 / 2,000 msg/s
#            in, a load both brokers carry without loss: compare CPU per message and p50 there)
#            idle_100k (IDLE_CONNS_LARGE idle connections from several source addresses:
#            RSS per connection, time to connect all)
#            retained_1m (tools/bench-retained.py: RETAINED_N retained messages - RssAnon per
#            message, exact / '+' / '#' SUBSCRIBE, start-up to first CONNACK on that store)
#            subs_1m (tools/bench-scale.py: SCALE_CLIENTS persistent sessions x SCALE_SUBS
#            subscriptions - RSS per subscription, SUBSCRIBE cost at start vs end, start-up
#            to first CONNACK with 1M retained + 1M subscriptions + 1M queued in the store)
#            retained_1m and subs_1m print their own tables after the main one.
# Throughput at zero loss (ZERO_LOSS=1): flat-out rows compare badly when one broker drops
#   messages or acknowledges faster than it delivers (a backlog still queued at the drain
#   deadline). For each flat-out scenario and broker: a flat-out probe gives the delivered rate
#   D; the search starts at 0.8 x D per subscriber reached, doubles (or halves) until a run fails,
#   then bisects (geometric mean) between the best passing and the first failing rate. A run
#   passes if solbench completed, lost 0 (every expected delivery arrived before the ZL_DRAIN
#   deadline), had no connection errors, the publishers kept >= 95% of the asked rate (a
#   QoS 1/2 window that stays full means the broker is not keeping up), and the delivered rate
#   was >= ZL_KEEP_UP x the offered one (a broker that acknowledges faster than it delivers
#   and builds a backlog is not credited with the rate it accepted). One search per broker,
#   not a median of rounds: rerun for noise. Full size: about 1.5-3 min per scenario.
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
IDLE_CONNS_LARGE=${IDLE_CONNS_LARGE:-100000}
IDLE_PER_SOURCE=${IDLE_PER_SOURCE:-20000}
ZERO_LOSS=${ZERO_LOSS:-0}
ZL_DURATION=${ZL_DURATION:-2}
ZL_DRAIN=${ZL_DRAIN:-1}
ZL_KEEP_UP=${ZL_KEEP_UP:-0.9}
ZL_STEPS=${ZL_STEPS:-9}
ZL_BUDGET=${ZL_BUDGET:-170}
ZL_RESOLUTION=${ZL_RESOLUTION:-1.15}
RETAINED_N=${RETAINED_N:-1000000}
RETAINED_SIZE=${RETAINED_SIZE:-100}
SCALE_CLIENTS=${SCALE_CLIENTS:-100000}
SCALE_SUBS=${SCALE_SUBS:-10}
RETAINED_ARGS=${RETAINED_ARGS:-}
SCALE_ARGS=${SCALE_ARGS:-}
KEEP_TMP=${KEEP_TMP:-0}
MOSQ_NODELAY=${MOSQ_NODELAY:-1}
FLOOR=${FLOOR:-0}
FLOOR_BIN=${FLOOR_BIN:-$repo/build/floor}
ALL_SCENARIOS="qos0_fanin qos1_fanin qos2_1to1 qos0_fanout qos0_fanin_rate qos1_fanin_rate qos0_fanout_rate qos1_latency idle_conns qos1_256k qos1_persist_fanin qos1_fanout1000 qos1_fanout1000_rate qos1_fanout1000_4k qos1_fanin_w1000 qos1_fanin_w1000_rate qos2_fanin_w1000 qos2_fanin_w1000_rate idle_100k retained_1m subs_1m"
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
    [qos1_fanin_w1000]="-P 8 -S 1 --qos 1 --window 1000"
    [qos1_fanin_w1000_rate]="-P 8 -S 1 --qos 1 --window 1000 --rate 5000"
    [qos2_fanin_w1000]="-P 8 -S 1 --qos 2 --window 1000"
    [qos2_fanin_w1000_rate]="-P 8 -S 1 --qos 2 --window 1000 --rate 2000"
    [idle_100k]="" # set_idle_large
)
# Scenarios run by another script; they print their own table (same columns).
declare -A EXTERNAL=(
    [retained_1m]="bench-retained.py"
    [subs_1m]="bench-scale.py"
)
# Broker directives per scenario (both brokers), "key value;key value": replace the defaults.
declare -A CONF=(
    [qos1_fanin_w1000]="max_inflight_messages 1000"
    [qos1_fanin_w1000_rate]="max_inflight_messages 1000"
    [qos2_fanin_w1000]="max_inflight_messages 1000"
    [qos2_fanin_w1000_rate]="max_inflight_messages 1000"
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
    [qos1_fanin_w1000]="QoS1 fan-in 8->1, max_inflight_messages 1000"
    [qos1_fanin_w1000_rate]="QoS1 fan-in 8->1, max_inflight_messages 1000, paced (equal load)"
    [qos2_fanin_w1000]="QoS2 fan-in 8->1, max_inflight_messages 1000"
    [qos2_fanin_w1000_rate]="QoS2 fan-in 8->1, max_inflight_messages 1000, paced (equal load)"
    [idle_100k]="" # set_idle_large
    [retained_1m]="$RETAINED_N retained messages of $RETAINED_SIZE B"
    [subs_1m]="$SCALE_CLIENTS persistent clients x $SCALE_SUBS subscriptions"
)
# set_idle_large N: idle_100k's solbench arguments for N connections, IDLE_PER_SOURCE per
# loopback source address (127.0.0.2, .3, ...; the brokers listen on 127.0.0.1).
set_idle_large() {
    local n=$1 sources
    sources=$(((n + IDLE_PER_SOURCE - 1) / IDLE_PER_SOURCE))
    ARGS[idle_100k]="-P 0 -S 0 -C $n --source 127.0.0.2 --sources $sources --connect-timeout 300"
    TITLE[idle_100k]="$n idle connections from $sources source addresses"
}
set_idle_large "$IDLE_CONNS_LARGE"
# Persistent scenarios compare mosquitto (persistence true) with Sol fsync and Sol nosync.
declare -A PERSISTENT=([qos1_latency]=1 [qos1_persist_fanin]=1)

started_pids=()
external_tables=()
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

# Raises the fd limit for this shell and its children (the brokers and solbench); 0 if `need`
# is covered. The hard limit is raised too when allowed (root or CAP_SYS_RESOURCE).
raise_nofile() {
    local need=$1 hard
    hard=$(ulimit -Hn)
    if [[ $hard != unlimited && $hard -lt $need ]] && ! ulimit -Hn "$need" 2>/dev/null; then
        ulimit -Sn "$hard"
        return 1
    fi
    # -S: bash's plain `ulimit -n` sets the hard limit too, and a hard limit once
    # lowered (idle_conns asks for 11,024) cannot be raised again (idle_100k).
    ulimit -Sn "$need"
}

# The directives both brokers get for SCENARIO: the defaults, then CONF_<scenario> (or
# CONF[scenario]) "key value;key value" replacing a default of the same key or adding a line.
shared_directives() {
    local scenario=$1 item key cvar=CONF_$1
    local -A value=([max_inflight_messages]=$MAX_INFLIGHT [max_queued_messages]=$MAX_QUEUED
        [max_queued_bytes]=0)
    local -a order=(max_inflight_messages max_queued_messages max_queued_bytes) items=()
    IFS=';' read -r -a items <<<"${!cvar:-${CONF[$scenario]:-}}"
    for item in "${items[@]}"; do
        item=${item#"${item%%[![:space:]]*}"} # leading spaces
        [[ -n $item ]] || continue
        key=${item%% *}
        [[ -n ${value[$key]+set} ]] || order+=("$key")
        value[$key]=${item#"$key"}
        value[$key]=${value[$key]#"${value[$key]%%[![:space:]]*}"}
        value[$key]=${value[$key]%"${value[$key]##*[![:space:]]}"}
    done
    for key in "${order[@]}"; do
        echo "$key ${value[$key]}"
    done
}

# write_conf VARIANT PORT DIR SCENARIO: the broker config, same limits for every variant.
write_conf() {
    local variant=$1 port=$2 dir=$3 scenario=$4
    {
        echo "listener $port 127.0.0.1"
        echo "allow_anonymous true"
        shared_directives "$scenario"
        case $variant in
        mosquitto*)
            echo "user $(id -un)"
            # Sol sets TCP_NODELAY on every connection; mosquitto only when told to. Without
            # it, mosquitto's small writes wait for the peer's delayed ACK (up to 40 ms).
            [[ $MOSQ_NODELAY != 1 ]] || echo "set_tcp_nodelay true"
            ;;&
        mosquitto-persist)
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

# start_broker VARIANT DIR PORT SCENARIO: sets broker_pid.
start_broker() {
    local variant=$1 dir=$2 port=$3 scenario=$4
    mkdir -p "$dir/data"
    write_conf "$variant" "$port" "$dir" "$scenario"
    case $variant in
    mosquitto*) "$MOSQUITTO" -c "$dir/broker.conf" >"$dir/broker.log" 2>&1 & ;;
    sol*) "$SOL" -c "$dir/broker.conf" >"$dir/broker.log" 2>&1 & ;;
    floor) "$FLOOR_BIN" "$port" >"$dir/broker.log" 2>&1 & ;;
    floor-uring) "$FLOOR_BIN" "$port" --uring >"$dir/broker.log" 2>&1 & ;;
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

# The solbench arguments of SCENARIO, with --rate replaced by RATE (if given) or RATE_<scenario>.
scenario_args() {
    local scenario=$1 rate=${2:-} rvar=RATE_$1 out=() skip=0 a
    local -a args
    read -r -a args <<<"${ARGS[$scenario]}"
    rate=${rate:-${!rvar:-}}
    for a in "${args[@]}"; do
        if ((skip)); then
            skip=0
        elif [[ -n $rate && $a == --rate ]]; then
            skip=1
        else
            out+=("$a")
        fi
    done
    [[ -z $rate ]] || out+=(--rate "$rate")
    echo "${out[*]}"
}

# bench_once SCENARIO VARIANT TAG DURATION DRAIN [RATE]: a fresh broker and one solbench run.
# Sets run_status (OK or FAILED), run_ticks (broker CPU), run_rss (kB at the end), run_json.
bench_once() {
    local scenario=$1 variant=$2 tag=$3 duration=$4 drain=$5 rate=${6:-}
    local dir=$tmp/$scenario-$variant-$tag port cpu0 cpu1
    local -a args
    read -r -a args <<<"$(scenario_args "$scenario" "$rate")"
    mkdir -p "$dir"
    port=$(free_port)
    run_status=FAILED run_ticks=0 run_rss=0 run_json="{}"
    start_broker "$variant" "$dir" "$port" "$scenario" || return 0
    cpu0=$(cpu_ticks "$broker_pid")
    run_json=$("$SOLBENCH" --host 127.0.0.1 -p "$port" -d "$duration" --drain "$drain" --json \
        --broker-pid "$broker_pid" "${args[@]}" 2>"$dir/solbench.err") || true
    cpu1=$(cpu_ticks "$broker_pid")
    run_rss=$(rss_kb "$broker_pid")
    stop_broker "$broker_pid"
    run_status=OK run_ticks=$((cpu1 - cpu0))
    if [[ -z $run_json ]]; then
        run_json="{}"
        echo "bench-vs-mosquitto: solbench printed nothing for $scenario/$variant:" >&2
        tail -n 5 "$dir/solbench.err" >&2 || true
    fi
}

# run_one SCENARIO VARIANT ROUND: one broker, one solbench run, one results line.
run_one() {
    local scenario=$1 variant=$2 round=$3 dvar=DURATION_$1
    bench_once "$scenario" "$variant" "$round" "${!dvar:-$DURATION}" "$DRAIN"
    echo "$scenario $variant $round $run_status $run_ticks $run_rss $run_json" >>"$results"
    printf '  %-20s %-18s round %s: %s\n' "$scenario" "$variant" "$round" \
        "$(summarise "$run_json")" >&2
}

# Is SCENARIO a flat-out message scenario (no --rate), the kind ZERO_LOSS searches?
is_flat_out() {
    [[ -n ${ARGS[$1]:-} && ${ARGS[$1]} != *--rate* && ${ARGS[$1]} == *-P\ [1-9]* ]]
}

# zl_verdict JSON RATE: "pass" if the run at RATE lost nothing, kept the rate in and kept up
# delivering it, else "fail".
zl_verdict() {
    python3 -c 'import json,sys; d=json.loads(sys.argv[1] or "{}"); rate=float(sys.argv[2])
per_pub = d["expected"] / d["published"] if d.get("published") else 0
ok = (d.get("ok") and d.get("lost", 1) == 0 and d.get("errors", 1) == 0
      and d.get("publish_rate_msgs", 0) >= 0.95 * rate
      and d.get("throughput_msgs", 0) >= float(sys.argv[3]) * rate * per_pub)
print("pass" if ok else "fail")' "$1" "$2" "$ZL_KEEP_UP"
}

# The first rate to try: 0.8 x what the flat-out probe delivered per subscriber it reached.
zl_start_rate() {
    python3 -c 'import json,sys; d=json.loads(sys.argv[1] or "{}")
per_pub = d["expected"] / d["published"] if d.get("published") else 0
rx = d.get("throughput_msgs", 0)
print("%.0f" % max(10.0, 0.8 * rx / per_pub) if per_pub and rx else 1000)' "$1"
}

# zl_next LO HI RATE: the next rate (doubling while nothing failed, halving while nothing
# passed, then the geometric middle), or "stop" when the bracket is within ZL_RESOLUTION.
zl_next() {
    python3 -c 'import math,sys; lo,hi,r=(float(x) for x in sys.argv[1:4]); res=float(sys.argv[4])
if lo > 0 and hi > 0:
    print("stop" if hi / lo <= res else "%.0f" % math.sqrt(lo * hi))
elif hi > 0:
    print("%.0f" % (r / 2) if r / 2 >= 1 else "stop")
else:
    print("%.0f" % (r * 2))' "$1" "$2" "$3" "$ZL_RESOLUTION"
}

# zero_loss_search SCENARIO VARIANT BUDGET_S: one "zl:SCENARIO" results line with the best rate.
zero_loss_search() {
    local scenario=$1 variant=$2 budget=$3 t0=$SECONDS step=1 rate lo=0 hi=0 verdict
    local best_json="{}" best_ticks=0 best_rss=0 step_s=0 t_step
    t_step=$SECONDS
    bench_once "$scenario" "$variant" zl-probe "$ZL_DURATION" "$ZL_DRAIN"
    step_s=$((SECONDS - t_step))
    rate=$(zl_start_rate "$run_json")
    printf '  %-20s %-18s zero-loss probe (flat out): %s -> start at %s msg/s\n' "$scenario" \
        "$variant" "$(summarise "$run_json")" "$rate" >&2
    while ((step < ZL_STEPS)) && ((SECONDS - t0 + step_s <= budget)); do
        t_step=$SECONDS
        bench_once "$scenario" "$variant" "zl-$step" "$ZL_DURATION" "$ZL_DRAIN" "$rate"
        step_s=$((SECONDS - t_step))
        verdict=$(zl_verdict "$run_json" "$rate")
        printf '  %-20s %-18s zero-loss step %s at %s msg/s: %s: %s\n' "$scenario" "$variant" \
            "$step" "$rate" "$verdict" "$(summarise "$run_json")" >&2
        if [[ $verdict == pass ]]; then
            lo=$rate best_json=$run_json best_ticks=$run_ticks best_rss=$run_rss
        else
            hi=$rate
        fi
        rate=$(zl_next "$lo" "$hi" "$rate")
        [[ $rate != stop ]] || break
        step=$((step + 1))
    done
    best_json=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["zl_hi"]=float(sys.argv[2])
print(json.dumps(d, separators=(",", ":")))' "$best_json" "$hi")
    local status=OK
    [[ $lo != 0 ]] || status=FAILED
    echo "zl:$scenario $variant zl $status $best_ticks $best_rss $best_json" >>"$results"
    printf '  %-20s %-18s zero loss up to %s msg/s in (first failing: %s) after %s s\n' \
        "$scenario" "$variant" "$lo" "$hi" "$((SECONDS - t0))" >&2
}

summarise() {
    python3 -c 'import json,sys; d=json.loads(sys.argv[1] or "{}")
if not d: print("no result"); sys.exit()
print("ok" if d.get("ok") else "FAILED(%s)" % d.get("failure"),
      "pub %.0f msg/s rx %.0f msg/s lost %d p50 %.0f us idle %d in %.2f s" % (d["publish_rate_msgs"],
      d["throughput_msgs"], d["lost"], d["latency_p50_us"], d["idle_connected"], d["idle_connect_s"]))' "$1"
}

variants_of() {
    local base=sol
    [[ -x $SOL ]] || base=""
    if [[ -n ${PERSISTENT[$1]:-} ]]; then
        echo "mosquitto-persist ${base:+sol-fsync sol-nosync}"
    elif [[ $FLOOR == 1 && $1 != idle_* && ${ARGS[$1]:-} != *"--qos 2"* ]]; then
        echo "mosquitto $base floor floor-uring"
    else
        echo "mosquitto $base"
    fi
}

run_scenario() {
    local scenario=$1 round variant nvariants
    echo "${TITLE[$scenario]} ($scenario): $(variants_of "$scenario")" >&2
    for ((round = 1; round <= ROUNDS; round++)); do
        for variant in $(variants_of "$scenario"); do
            run_one "$scenario" "$variant" "$round"
        done
    done
    if [[ $ZERO_LOSS == 1 ]] && is_flat_out "$scenario"; then
        nvariants=$(wc -w <<<"$(variants_of "$scenario")")
        for variant in $(variants_of "$scenario"); do
            zero_loss_search "$scenario" "$variant" $((ZL_BUDGET / nvariants))
        done
    fi
}

# run_external SCENARIO: the other script, with the same brokers; its table goes to a file.
run_external() {
    local scenario=$1 script=$repo/tools/${EXTERNAL[$1]}
    local table_file=$tmp/$scenario.table
    echo "${TITLE[$scenario]} ($scenario): tools/${EXTERNAL[$scenario]}" >&2
    if [[ ! -x $SOL ]]; then
        echo "bench-vs-mosquitto: skipping $scenario: it needs $SOL" >&2
        return 0
    fi
    local -a extra
    case $scenario in
    retained_1m)
        read -r -a extra <<<"$RETAINED_ARGS"
        SOL=$SOL MOSQUITTO=$MOSQUITTO /usr/bin/python3 "$script" --size "$RETAINED_SIZE" \
            --messages "$RETAINED_N" "${extra[@]+"${extra[@]}"}" >"$table_file" ||
            echo "bench-vs-mosquitto: $scenario failed" >&2
        ;;
    subs_1m)
        read -r -a extra <<<"$SCALE_ARGS"
        SOL=$SOL MOSQUITTO=$MOSQUITTO /usr/bin/python3 "$script" --clients "$SCALE_CLIENTS" \
            --subs "$SCALE_SUBS" "${extra[@]+"${extra[@]}"}" >"$table_file" ||
            echo "bench-vs-mosquitto: $scenario failed" >&2
        ;;
    esac
    external_tables+=("$table_file")
}

print_table() {
    python3 - "$results" "$(getconf CLK_TCK)" <<'EOF'
import json, statistics, sys
path, hz = sys.argv[1], int(sys.argv[2])
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
    "idle": [("connected", lambda d: d["idle_connected"]),
             ("connect all s", lambda d: d["idle_connect_s"]),
             ("RSS B / conn", lambda d: (d["broker_rss_after_kb"] - d["broker_rss_before_kb"]) * 1024.0
                                        / d["idle_connected"] if d["idle_connected"] else None),
             ("CPU s total", lambda d: d["cpu_s"]),
             ("RSS MB at end", lambda d: d["rss_end_kb"] / 1024.0)],
    # One search per broker (ZERO_LOSS=1): the best passing run's figures.
    "zl": [("0-loss rate msg/s in", lambda d: d["rate"]),
           ("first failing rate", lambda d: d["zl_hi"] or None),
           ("delivered msg/s", lambda d: d["throughput_msgs"]),
           ("latency p50 us", lambda d: d["latency_p50_us"]),
           ("latency p99 us", lambda d: d["latency_p99_us"]),
           ("CPU s / 100k msg", lambda d: d["cpu_s"] * 1e5 / d["received"] if d["received"] else None)],
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
extra = [v for v in ("floor", "floor-uring") if any(k[1] == v for k in runs)]
for v in extra:
    hdr += (v, v + "/mosq")
rows = []
for scen in order:
    name_only = scen[3:] if scen.startswith("zl:") else scen
    persistent = name_only in ("qos1_latency", "qos1_persist_fanin")
    base = "mosquitto-persist" if persistent else "mosquitto"
    sol = "sol-fsync" if persistent else "sol"
    kind = "zl" if scen.startswith("zl:") else "idle" if name_only.startswith("idle_") else "msg"
    first = True
    for name, f in METRICS[kind]:
        m, n = median(scen, base, f)
        s, _ = median(scen, sol, f)
        ns, _ = median(scen, "sol-nosync", f) if persistent else (None, 0)
        row = (scen if first else "", name, fmt(m), fmt(s), ratio(s, m),
               fmt(ns) if persistent else "-", ratio(ns, m) if persistent else "-")
        for v in extra:
            x, _ = median(scen, v, f)
            row += (fmt(x), ratio(x, m))
        rows.append(row)
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
    local scenario need table fit notes=()
    for scenario in $SCENARIOS; do
        [[ -n ${ARGS[$scenario]:-}${EXTERNAL[$scenario]:-} ]] ||
            die "unknown scenario '$scenario' (known: $ALL_SCENARIOS)"
    done
    for scenario in $SCENARIOS; do
        need=0
        [[ $scenario != idle_conns ]] || need=$((IDLE_CONNS + 1024))
        [[ $scenario != idle_100k ]] || need=$((IDLE_CONNS_LARGE + 1024))
        if ((need)) && ! raise_nofile "$need"; then
            fit=$(($(ulimit -Hn) - 1024))
            if [[ $scenario != idle_100k || $fit -lt 1000 ]]; then
                echo "bench-vs-mosquitto: skipping $scenario: hard fd limit $(ulimit -Hn) < $need" >&2
                continue
            fi
            # Each broker holds every connection itself: it cannot go past its own fd limit.
            notes+=("idle_100k: $fit connections, not $IDLE_CONNS_LARGE: the hard fd limit is $(ulimit -Hn) and this user cannot raise it (needs root with CAP_SYS_RESOURCE, or e.g. docker --ulimit nofile=$need)")
            echo "bench-vs-mosquitto: ${notes[-1]}" >&2
            set_idle_large "$fit"
        fi
        if [[ -n ${EXTERNAL[$scenario]:-} ]]; then
            run_external "$scenario"
        else
            run_scenario "$scenario"
        fi
    done
    echo
    echo "Medians of $ROUNDS rounds, ${DURATION}s runs (drain <= ${DRAIN}s); max_inflight_messages $MAX_INFLIGHT, max_queued_messages $MAX_QUEUED (*_w1000: max_inflight_messages 1000)."
    echo "Persistent scenarios: mosquitto 'persistence true' vs Sol 'storage_sync fsync' (sol) and 'nosync'. Other scenarios: Sol's default config."
    echo "mosquitto set_tcp_nodelay: $([[ $MOSQ_NODELAY == 1 ]] && echo true || echo "false (its default)") (Sol always sets TCP_NODELAY)."
    echo "CPU = broker utime+stime over the run / messages delivered to subscribers. $(nproc) CPUs, $(uname -r)."
    if [[ $ZERO_LOSS == 1 ]]; then
        echo "zl:<scenario> rows: one search per broker (${ZL_DURATION}s steps, <= $ZL_STEPS steps, <= ${ZL_BUDGET}s per scenario) for the highest --rate with 0 lost within a ${ZL_DRAIN}s drain and delivery >= ${ZL_KEEP_UP}x offered; figures of that run."
    fi
    for table in "${notes[@]+"${notes[@]}"}"; do
        echo "NOTE: $table"
    done
    [[ ! -s $results ]] || print_table
    for table in "${external_tables[@]+"${external_tables[@]}"}"; do
        echo
        cat "$table"
    done
}

main "$@"
