#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 45 s each), seeded from
# the test vectors. A crash or a leak fails the run; libFuzzer leaves the
# input that caused it under plugin/fuzz/artifacts/<target>/.
#
#   bash plugin/fuzz/run.sh [SECONDS]
#
# Installs what it needs first: a nightly toolchain and cargo-fuzz.
set -euo pipefail

seconds=${1:-45}
case $seconds in '' | *[!0-9]*) echo "run.sh: SECONDS must be a whole number, got '$seconds'" >&2; exit 2 ;; esac

here=$(cd "$(dirname "$0")" && pwd)

if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null; then
    cargo install --locked cargo-fuzz
fi

python3 "$here/seed_corpus.py"

cd "$here/.."
for target in jwt jwks cwt; do
    echo "fuzz: $target for ${seconds}s"
    log="$here/artifacts/$target.log"
    mkdir -p "$here/artifacts"
    status=0
    cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1 || status=$?
    grep -E '^stat::(number_of_executed_units|peak_rss_mb)|^SUMMARY|panicked' "$log" || true
    if [ "$status" -ne 0 ]; then
        tail -40 "$log" >&2
        echo "fuzz: $target failed (exit $status); the input is under plugin/fuzz/artifacts/$target/" >&2
        exit 1
    fi
done
