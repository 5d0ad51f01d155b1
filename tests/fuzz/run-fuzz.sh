#!/bin/sh
# run-fuzz.sh SECONDS - builds the libFuzzer targets with clang in build-fuzz
# and fuzzes each for SECONDS (default 60): fuzz_stream (the stream decoder),
# fuzz_session (the session manager on a real store) and fuzz_websocket (the
# WebSocket upgrade and frames).
#
# Fuzzing works on a scratch copy of each seed corpus, so the committed
# corpora never grow. A crash leaves its input in build-fuzz/fuzz-artifacts/
# and makes this script exit non-zero.
set -eu

seconds=${1:-60}
root=$(cd "$(dirname "$0")/../.." && pwd)
build="$root/build-fuzz"
jobs=$(nproc 2>/dev/null || echo 2)

cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSOL_FUZZ=ON -DSOL_SANITIZE=ON >/dev/null
cmake --build "$build" --target fuzz_stream fuzz_session fuzz_websocket -j "$jobs"

scratch=$(mktemp -d "${TMPDIR:-/tmp}/sol-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT INT TERM
mkdir -p "$build/fuzz-artifacts"

# fuzz TARGET CORPUS REGRESSIONS MAX_LEN
fuzz() {
    target=$1 corpus=$2 regressions=$3 max_len=$4
    # Committed regression inputs first: each must run clean.
    if [ -d "$regressions" ] && [ -n "$(ls -A "$regressions")" ]; then
        "$build/$target" -runs=0 "$regressions"
    fi
    mkdir -p "$scratch/$target"
    cp "$corpus/"* "$scratch/$target/"
    echo "fuzzing $target for ${seconds}s"
    status=0
    "$build/$target" -max_total_time="$seconds" -max_len="$max_len" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$build/fuzz-artifacts/" \
        "$scratch/$target" || status=$?
    if [ "$status" -ne 0 ]; then
        echo "run-fuzz.sh: $target failed (exit $status); inputs in $build/fuzz-artifacts/" >&2
        exit "$status"
    fi
    echo "run-fuzz.sh: $target: no crash in ${seconds}s"
}

fuzz fuzz_stream "$root/tests/fuzz/corpus" "$root/tests/fuzz/regressions" 8192
# The session target opens an LMDB store per input: keep it in memory.
shm=${FUZZ_TMPDIR:-/dev/shm}
[ -d "$shm" ] && [ -w "$shm" ] || shm=${TMPDIR:-/tmp}
TMPDIR=$shm fuzz fuzz_session "$root/tests/fuzz/session-corpus" \
    "$root/tests/fuzz/session-regressions" 2048
fuzz fuzz_websocket "$root/tests/fuzz/websocket-corpus" "$root/tests/fuzz/websocket-regressions" 16384
