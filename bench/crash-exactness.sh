#!/usr/bin/env bash
# How exactly a call-triggered crash fires, over many runs (docs/bench.md): the demo with
# examples/faults/crash-primary-after-ack.toml (crash n0 right after its 8th reply to the
# client), RUNS times bug-free and RUNS times with ack-before-replicate. For each run it checks
# that the one marked event is n0's 8th data send to the client, that n0 made no call after
# it, and the verdict (pass bug-free, fail with the bug).
#
#   bench/crash-exactness.sh            # 100 + 100 runs, about 4 minutes on 2 CPUs
#   RUNS=10 bench/crash-exactness.sh
#
# Environment: ORDEAL=PATH (default: build target/release/ordeal), RUNS=N (default 100).
set -euo pipefail
RUNS=${RUNS:-100}
[[ $RUNS =~ ^[0-9]+$ ]] || { echo "RUNS must be a whole number" >&2; exit 2; }
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -z ${ORDEAL:-} ]]; then
    cargo build --release -p ordeal --manifest-path "$ROOT/Cargo.toml" --quiet
    ORDEAL="$ROOT/target/release/ordeal"
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ordeal-crash.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
SCHED="$ROOT/examples/faults/crash-primary-after-ack.toml"

# check RUN_DIR: prints "exact" when the marker is on n0's 8th send to the client and no call of
# n0 started after it (calls already in flight in other threads may still complete: the kill
# takes effect at their next stop); otherwise what was found.
check() {
    awk '
        function num(key,   m) {
            if (match($0, "\"" key "\":[0-9]+")) return substr($0, RSTART + length(key) + 3, RLENGTH - length(key) - 3) + 0
            return -1
        }
        /"type":"event"/ && /"node":"n0"/ {
            if (marked) {
                if ($0 !~ /"call":"exit"/ && num("ts") > end) after++
                next
            }
            if (/"class":"data"/ && /"peer_node":"client"/ && /"call":"(sendto|write|writev|sendmsg)"/) sends++
            if (/"fault":"crash-primary: crash n0 after"/) { marked = 1; at = sends; end = num("ts") + num("dur") }
        }
        END {
            if (!marked) print "no marker"
            else if (at != 8) print "marker on send " at
            else if (after > 0) print after " calls of n0 started after the crash"
            else print "exact"
        }' "$1/trace.jsonl"
}

declare -A count
for bugs in "" ack-before-replicate; do
    label=${bugs:-bug-free}
    for ((i = 1; i <= RUNS; i++)); do
        run="$WORK/$label-$i"
        rc=0
        "$ORDEAL" demo --faults "$SCHED" --set "bugs=$bugs" --out "$run" -q >/dev/null 2>"$WORK/err" || rc=$?
        what=$(check "$run")
        key="$label exit $rc, $what"
        count[$key]=$((${count[$key]:-0} + 1))
        printf '\r%s: %d/%d ' "$label" "$i" "$RUNS" >&2
        rm -rf "$run"
    done
    echo >&2
done
echo "crash-primary-after-ack over $RUNS runs each ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs):"
for k in "${!count[@]}"; do printf '  %4d  %s\n' "${count[$k]}" "$k"; done | sort -k2
