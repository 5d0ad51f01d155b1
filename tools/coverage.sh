#!/bin/sh
# coverage.sh - line coverage of the MQTT codec (src/mqtt/*.c) by its unit tests.
#
# Configures build-cov with gcc --coverage (-DSOL_COVERAGE=ON), builds the
# mqtt unit tests, runs them with ctest and prints lcov's per-file table and
# summary. Files no test reaches still count (an --initial baseline is merged
# in). Exits 0 when the build and the tests pass; a failing test still prints
# the coverage, then exits non-zero.
# Not for: the other modules (their tests are not built here).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build-cov"
jobs=$(nproc 2>/dev/null || echo 2)
info="$build/coverage.info"

cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=gcc -DCMAKE_BUILD_TYPE=Debug -DSOL_COVERAGE=ON \
    >/dev/null
targets=$(cd "$root/tests/unit" && ls test_mqtt*.c | sed 's/\.c$//')
# shellcheck disable=SC2086 # one word per target
cmake --build "$build" -j "$jobs" --target $targets

# lcov's geninfo (Debian 1.16) prints perl "Subroutine ... redefined" noise on
# stderr: keep it in a log and show it only when lcov fails.
lcov_quiet()
{
    lcov --quiet "$@" 2>"$build/lcov.log" || { cat "$build/lcov.log" >&2; return 1; }
}

find "$build" -name '*.gcda' -delete
lcov_quiet --capture --initial --directory "$build" --include '*/src/mqtt/*' \
    --output-file "$build/base.info"

status=0
ctest --test-dir "$build" -R 'unit/test_mqtt' --output-on-failure || status=$?

lcov_quiet --capture --directory "$build" --include '*/src/mqtt/*' --output-file "$build/run.info"
lcov_quiet --add-tracefile "$build/base.info" --add-tracefile "$build/run.info" \
    --output-file "$info"
lcov --list "$info"
lcov --summary "$info"

if [ "$status" -ne 0 ]; then
    echo "coverage.sh: some mqtt tests failed (ctest exit $status)" >&2
fi
exit "$status"
