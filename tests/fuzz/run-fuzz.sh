#!/bin/sh
# run-fuzz.sh SECONDS - builds the libFuzzer targets with clang in build-fuzz
# and fuzzes the stream decoder for SECONDS (default 60).
#
# Fuzzing works on a scratch copy of tests/fuzz/corpus, so the committed seed
# corpus never grows. A crash leaves its input in build-fuzz/fuzz-artifacts/
# and makes this script exit non-zero.
set -eu

seconds=${1:-60}
root=$(cd "$(dirname "$0")/../.." && pwd)
build="$root/build-fuzz"
jobs=$(nproc 2>/dev/null || echo 2)

cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSOL_FUZZ=ON -DSOL_SANITIZE=ON >/dev/null
cmake --build "$build" --target fuzz_stream -j "$jobs"

scratch=$(mktemp -d "${TMPDIR:-/tmp}/sol-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT INT TERM
mkdir -p "$scratch/corpus" "$build/fuzz-artifacts"
cp "$root/tests/fuzz/corpus/"* "$scratch/corpus/"

# Committed regression inputs first: each must run clean.
if [ -d "$root/tests/fuzz/regressions" ] && [ -n "$(ls -A "$root/tests/fuzz/regressions")" ]; then
    "$build/fuzz_stream" -runs=0 "$root/tests/fuzz/regressions"
fi

echo "fuzzing fuzz_stream for ${seconds}s"
status=0
"$build/fuzz_stream" -max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$build/fuzz-artifacts/" "$scratch/corpus" || status=$?
if [ "$status" -ne 0 ]; then
    echo "run-fuzz.sh: fuzz_stream failed (exit $status); inputs in $build/fuzz-artifacts/" >&2
    exit "$status"
fi
echo "run-fuzz.sh: no crash in ${seconds}s"
