#!/bin/sh
# Throughput of `ordeal explore`: runs per minute on the demo and on the Redis example, with
# -j 1 and -j 2, and where the time of one run goes (means over the campaign's runs, ms).
#
#   bench/explore.sh                 # RUNS=60 per campaign; about 3 minutes on 2 CPUs
#   RUNS=20 bench/explore.sh         # a quick look
#   ORDEAL=/path/to/ordeal bench/explore.sh
#
# Results and analysis: docs/bench.md#exploration-throughput.
set -eu
cd "$(dirname "$0")/.."
RUNS=${RUNS:-60}
if [ -z "${ORDEAL:-}" ]; then
    cargo build --release -p ordeal >&2
    ORDEAL=${CARGO_TARGET_DIR:-target}/release/ordeal
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
printf '%-14s %-3s %6s %9s %6s %8s  %s\n' system j runs runs/min runs/s run_ms \
    'setup start ready workload check teardown outputs analysis (ms)'
bench() { # name jobs experiment-args...
    name=$1 j=$2
    shift 2
    out="$TMP/$name-$j"
    "$ORDEAL" explore "$@" --runs "$RUNS" -j "$j" --reruns 0 --no-shrink -q --out "$out" \
        > "$out.log" 2>&1 || true
    python3 - "$out/explore.json" "$name" "$j" <<'PY'
import json, sys
o = json.load(open(sys.argv[1]))
p = o["mean_phases_ms"]
keys = ["setup", "start", "ready", "workload", "check", "teardown", "outputs", "analysis"]
print("%-14s %-3s %6d %9.0f %6.1f %8.0f  %s" % (sys.argv[2], sys.argv[3], o["runs"],
      o["runs_per_minute"], o["runs_per_minute"] / 60, o["mean_run_ms"],
      " ".join("%.0f" % p[k] for k in keys)))
PY
}
# The demo as `ordeal explore --demo` runs it (its [explore] settings), then the baselines:
# the same without CPU pinning, and with the demo's single-run settings.
bench demo 1 --demo
bench demo 2 --demo
(export ORDEAL_EXPLORE_NO_PIN=1; bench demo-unpinned 2 --demo)
bench demo-run-cfg 2 --demo --set ops=40 --set peer_timeout_ms=1000 \
    --fault-duration 1500ms --restart-after 500ms
if command -v redis-server > /dev/null; then
    bench redis 1 examples/redis-replication.toml
    bench redis 2 examples/redis-replication.toml
else
    echo "redis   (redis-server not installed: skipped)"
fi
