#!/bin/sh
# Throughput of `ordeal explore`, per engine: runs per minute on the demo and on the Redis
# example (primary + replica), with -j 1 and -j 2, where the time of one run goes (means over
# the campaign's runs, ms), and what the campaign found (behaviours, failures, errors).
#
#   bench/explore.sh                 # RUNS=60 per campaign, both engines; about 4½ minutes
#   RUNS=20 bench/explore.sh         # a quick look
#   ENGINES=ptrace bench/explore.sh  # one engine only
#   ORDEAL=/path/to/ordeal bench/explore.sh
#
# `ordeal explore` takes its engine from the experiment's `engine` key, so each campaign runs a
# copy of the experiment with `engine = "..."` added, written to the work directory. The rows
# of one configuration run one engine after the other, so that the machine's load hits them
# alike. Results and analysis: docs/bench.md#exploration-throughput.
set -eu
cd "$(dirname "$0")/.."
RUNS=${RUNS:-60}
ENGINES=${ENGINES:-ebpf ptrace}
case $RUNS in '' | *[!0-9]*) echo "bench/explore.sh: RUNS must be a whole number" >&2; exit 2 ;; esac
for e in $ENGINES; do
    case $e in ebpf | ptrace) ;; *) echo "bench/explore.sh: unknown engine '$e' in ENGINES" >&2; exit 2 ;; esac
done
if [ -z "${ORDEAL:-}" ]; then
    cargo build --release -p ordeal >&2
    ORDEAL=${CARGO_TARGET_DIR:-target}/release/ordeal
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
FAILED=0

# with_engine FILE ENGINE: a copy of experiment FILE in $TMP whose `engine` is ENGINE (a
# top-level key: it goes before the first table).
with_engine() {
    copy="$TMP/$(basename "$1" .toml)-$2.toml"
    awk -v e="$2" '/^engine[ \t]*=/ { next }
        !done && /^\[/ { print "engine = \"" e "\""; print ""; done = 1 }
        { print }' "$1" > "$copy"
    echo "$copy"
}

echo "ordeal explore, $RUNS runs per campaign, --reruns 0 --no-shrink ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $(uname -r))"
printf '%-13s %-6s %-2s %4s %8s %6s %6s %5s %4s %4s  %s\n' system engine j runs runs/min runs/s \
    run_ms behav fail err 'setup start ready workload check teardown outputs analysis (ms)'
bench() { # name engine jobs experiment extra-args...
    name=$1 engine=$2 j=$3 exp=$4
    shift 4
    out="$TMP/$name-$engine-$j"
    rc=0
    "$ORDEAL" explore "$(with_engine "$exp" "$engine")" "$@" --runs "$RUNS" -j "$j" --reruns 0 \
        --no-shrink -q --out "$out" > "$out.log" 2>&1 || rc=$?
    # Exit 1 means failures were found, which a buggy variant is expected to; anything else
    # (or no explore.json) is an error of the campaign.
    if [ "$rc" -gt 1 ] || [ ! -s "$out/explore.json" ]; then
        echo "$name $engine -j $j: ordeal explore exited $rc" >&2
        tail -5 "$out.log" >&2
        FAILED=1
        return 0
    fi
    python3 - "$out/explore.json" "$name" "$engine" "$j" <<'PY'
import json, sys
o = json.load(open(sys.argv[1]))
p = o["mean_phases_ms"]
keys = ["setup", "start", "ready", "workload", "check", "teardown", "outputs", "analysis"]
print("%-13s %-6s %-2s %4d %8.0f %6.1f %6.0f %5d %4d %4d  %s" % (sys.argv[2], sys.argv[3],
      sys.argv[4], o["runs"], o["runs_per_minute"], o["runs_per_minute"] / 60, o["mean_run_ms"],
      o["unique_behaviours"], len(o["failures"]), len(o["errors"]),
      " ".join("%.0f" % p[k] for k in keys)))
PY
    rm -rf "$out"
}
DEMO=examples/demo-kv.toml
# The demo as `ordeal explore --demo` runs it (its [explore] settings), then the baselines:
# the same without CPU pinning, and with the demo's single-run settings.
for e in $ENGINES; do bench demo "$e" 1 "$DEMO"; done
for e in $ENGINES; do bench demo "$e" 2 "$DEMO"; done
for e in $ENGINES; do (export ORDEAL_EXPLORE_NO_PIN=1; bench demo-unpinned "$e" 2 "$DEMO"); done
for e in $ENGINES; do
    bench demo-run-cfg "$e" 2 "$DEMO" --set ops=40 --set peer_timeout_ms=1000 \
        --fault-duration 1500ms --restart-after 500ms
done
if command -v redis-server > /dev/null; then
    for e in $ENGINES; do bench redis "$e" 1 examples/redis-replication.toml; done
    for e in $ENGINES; do bench redis "$e" 2 examples/redis-replication.toml; done
else
    echo "redis   (redis-server not installed: skipped)"
fi
exit $FAILED
