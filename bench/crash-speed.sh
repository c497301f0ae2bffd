#!/usr/bin/env bash
# How many crash states `ordeal crash` checks per second (docs/bench.md#crash-states): the demo
# with rename-without-fsync, the bug-free demo, and a sqlite3 script run as a workload target
# (WAL + synchronous=FULL, checked by `PRAGMA integrity_check` and a count; skipped without
# sqlite3), each at -j 1 (the baseline, measured in the same run) and at -j JOBS. Prints one
# row per run: distinct states checked, seconds, states/s, the speed-up over -j 1, and
# whether the findings (crash.json without times and paths) equal those at -j 1.
#
#   bench/crash-speed.sh                 # budget 1000, -j 1 and -j $(nproc)
#   BUDGET=100 JOBS=4 bench/crash-speed.sh
#
# Environment: ORDEAL=PATH (default: build target/release/ordeal), BUDGET=N (default 1000),
# JOBS=N (default: the number of CPUs).
set -euo pipefail
BUDGET=${BUDGET:-1000}
JOBS=${JOBS:-$(nproc)}
[[ $BUDGET =~ ^[0-9]+$ && $JOBS =~ ^[1-9][0-9]*$ ]] || { echo "BUDGET and JOBS must be whole numbers" >&2; exit 2; }
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -z ${ORDEAL:-} ]]; then
    cargo build --release -p ordeal --manifest-path "$ROOT/Cargo.toml" --quiet
    ORDEAL="$ROOT/target/release/ordeal"
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ordeal-crash-speed.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# A workload committing one row with sqlite3 into node db's data dir (the node only holds it);
# the crash check wants an intact database holding the row once the commit was promised.
cat >"$WORK/sqlite.toml" <<'TOML'
name = "sqlite-wal"
timeout = "60s"
[[node]]
name = "db"
argv = ["sleep", "1000"]
data_dir = true
[[workload]]
name = "w"
argv = ["sh", "-c", """
sqlite3 "$1/db" "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; CREATE TABLE t(x); INSERT INTO t VALUES (42);" >/dev/null
"$0" checkpoint committed >/dev/null
""", "{ordeal}", "{data_dir.db}"]
[crash]
workload = "w"
check = ["sh", "-c", """
[ -e "$1/db" ] || {{ [ "$ORDEAL_CRASH_CHECKPOINT" != committed ] && exit 0; echo "db missing" >&2; exit 1; }}
ok=$(sqlite3 "$1/db" "PRAGMA integrity_check;" 2>&1) && [ "$ok" = ok ] || {{ echo "integrity: $ok" >&2; exit 1; }}
[ "$ORDEAL_CRASH_CHECKPOINT" != committed ] || [ "$(sqlite3 "$1/db" "SELECT count(*) FROM t WHERE x = 42;")" = 1 ]
""", "sh", "{data_dir.db}"]
TOML

# findings RUN_DIR: crash.json without what depends on time, place and recording (each run
# records its own: the seqs of its calls differ).
findings() {
    # `generated` too: at -j N the generator may compute a few states past the budget while
    # the last checks run (the states checked, and so the findings, are the same).
    sed -E -e 's/"(seconds|seq|crash_after_seq|generated)": [0-9.e+-]*//' -e "s#$1#RUN#g" "$1/crash.json"
}

echo "ordeal crash, budget $BUDGET, -j 1 and -j $JOBS ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%-22s %3s %10s %8s %8s %8s %9s %9s\n' target j verdict checked seconds states/s speed-up findings
status=0
run() { # NAME EXPERIMENT ARGS...
    local name=$1 exp=$2 base=""
    shift 2
    for j in 1 "$JOBS"; do
        local out="$WORK/$name-j$j" rc=0
        "$ORDEAL" crash "$exp" "$@" --budget "$BUDGET" -j "$j" --out "$out" -q >"$WORK/out" 2>"$WORK/err" || rc=$?
        if [[ ! -f $out/crash.json ]] || ((rc > 1)); then
            echo "$name -j $j: exit $rc" >&2
            cat "$WORK/err" "$WORK/out" >&2
            status=1
            continue
        fi
        read -r verdict checked seconds < <(sed -n \
            -e 's/^  "verdict": "\(.*\)",/\1/p' -e 's/^  "checked": \([0-9]*\),/\1/p' \
            -e 's/^  "seconds": \([0-9.e+-]*\),/\1/p' "$out/crash.json" | paste -sd' ')
        local rate same=same
        rate=$(awk -v n="$checked" -v s="$seconds" 'BEGIN { printf "%.1f", n / s }')
        if [[ $j == 1 ]]; then
            base=$rate
            findings "$out" >"$WORK/$name.base"
        elif ! findings "$out" | cmp -s - "$WORK/$name.base"; then
            same=DIFFER
            findings "$out" | diff "$WORK/$name.base" - >&2 || true
            status=1
        fi
        printf '%-22s %3s %10s %8s %8.2f %8s %8.2fx %9s\n' "$name" "$j" "$verdict" "$checked" "$seconds" "$rate" \
            "$(awk -v a="$rate" -v b="$base" 'BEGIN { print a / b }')" "$same"
    done
}
run demo-rename-no-fsync demo --set bugs=rename-without-fsync
run demo demo
if command -v sqlite3 >/dev/null; then
    run sqlite3-wal-full "$WORK/sqlite.toml"
else
    echo "sqlite3 not installed: its row skipped" >&2
fi
exit $status
