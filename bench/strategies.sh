#!/usr/bin/env bash
# Guided search against random: for known bugs, how many runs (and seconds) `ordeal explore`
# needs to find each with each strategy, over several seeds, with the same budget.
# See docs/bench.md#guided-search-against-random.
#
#   bench/strategies.sh                       # every bug, 4 strategies, 5 seeds
#   SEEDS=2 BUGS="demo-stale-read" bench/strategies.sh     # a quick look
#
# Environment (all optional):
#   ORDEAL=PATH        ordeal binary to use (default: build target/release/ordeal)
#   SEEDS=N            seeds 1..N per bug and strategy (default 5)
#   MAX_RUNS=N         budget of each campaign, baselines included (default 150)
#   JOBS=J             runs in parallel in each campaign (default 2)
#   STRATEGIES="..."   among random, systematic, novelty, guided (default all four)
#   BUGS="..."         among the names below (default all)
#   KEEP=1             keep the campaign directories (etcd's take about 300 MB a run kept)
#
# The bugs (each a campaign that stops at its first failure, without shrinking or reruns):
#   demo-stale-read            the demo, a backup answers reads from a stale copy
#   demo-ack-before-replicate  the demo, the primary acknowledges before its backups have a write
#   demo-no-short-read         the demo, a node takes one read() for one whole message
#   redis-failover             Debian's redis-server: acknowledged writes lost when the client
#                              fails over to a replica that lags (examples/redis-failover.toml)
#   redis-replica-read         Debian's redis-server: reads from a replica that lost its primary
#                              are stale (examples/redis-replica-read.toml)
#   etcd-serializable-read     Debian's etcd: serializable reads from a member cut from the
#                              others are stale (examples/etcd-serializable-read.toml)
#   redis-sentinel             Debian's redis-server under three Sentinels: writes a master cut
#                              off from the others acknowledged are lost (examples/redis-sentinel.toml)
#
# The table goes to stdout: per bug and strategy, the runs to the first failure for each seed
# (`>N` when the budget ran out), their median, the median seconds, and the median of random
# over each strategy (above 1: found sooner than random). Exit status: 0, or 1 if a campaign
# ended in an error.
set -euo pipefail

SEEDS=${SEEDS:-5}
MAX_RUNS=${MAX_RUNS:-150}
JOBS=${JOBS:-2}
STRATEGIES=${STRATEGIES:-random systematic novelty guided}
BUGS=${BUGS:-demo-stale-read demo-ack-before-replicate demo-no-short-read redis-failover redis-replica-read etcd-serializable-read redis-sentinel}
KEEP=${KEEP:-0}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FAILED=0

die() { echo "bench/strategies.sh: $*" >&2; exit 2; }
for v in SEEDS MAX_RUNS JOBS; do
    [[ ${!v} =~ ^[0-9]+$ ]] && ((${!v} >= 1)) || die "$v must be a whole number above 0 (got '${!v}')"
done
read -ra STRATEGY_LIST <<<"$STRATEGIES"
for s in "${STRATEGY_LIST[@]}"; do
    [[ $s == random || $s == systematic || $s == novelty || $s == guided ]] || die "unknown strategy '$s'"
done
read -ra BUG_LIST <<<"$BUGS"

# bug_args NAME: the explore arguments of a bug (experiment and variables).
bug_args() {
    case $1 in
    demo-stale-read) echo "--demo --set bugs=stale-read" ;;
    demo-ack-before-replicate) echo "--demo --set bugs=ack-before-replicate" ;;
    demo-no-short-read) echo "--demo --set bugs=no-short-read-handling" ;;
    redis-failover) echo "$ROOT/examples/redis-failover.toml" ;;
    redis-replica-read) echo "$ROOT/examples/redis-replica-read.toml" ;;
    etcd-serializable-read) echo "$ROOT/examples/etcd-serializable-read.toml" ;;
    redis-sentinel) echo "$ROOT/examples/redis-sentinel.toml" ;;
    *) die "unknown bug '$1' (see the list at the top of this script)" ;;
    esac
}
for b in "${BUG_LIST[@]}"; do bug_args "$b" >/dev/null; done
if [[ " ${BUG_LIST[*]} " == *" redis-"* ]]; then
    command -v redis-server >/dev/null && command -v redis-cli >/dev/null ||
        die "the redis bugs need redis-server and redis-cli (apt-get install redis-server redis-tools)"
fi
if [[ " ${BUG_LIST[*]} " == *" etcd-"* ]]; then
    command -v etcd >/dev/null && command -v etcdctl >/dev/null ||
        die "the etcd bug needs etcd and etcdctl (apt-get install etcd-server etcd-client)"
fi

if [[ -z ${ORDEAL:-} ]]; then
    echo "building ordeal (cargo build --release -p ordeal)..." >&2
    cargo build --release -p ordeal --manifest-path "$ROOT/Cargo.toml" --quiet
    ORDEAL="${CARGO_TARGET_DIR:-$ROOT/target}/release/ordeal"
fi
[[ -x $ORDEAL ]] || die "ordeal binary $ORDEAL is not executable"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ordeal-strategies.XXXXXX")
cleanup() { if [[ $KEEP == 1 ]]; then echo "work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi; }
trap cleanup EXIT

# median V...: the median of the numbers given ("" when none).
median() {
    printf '%s\n' "$@" | awk 'NF { v[n++] = $1 } END {
        if (n == 0) exit
        for (i = 1; i < n; i++) for (j = i; j > 0 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
        m = n % 2 ? v[(n - 1) / 2] : (v[n / 2 - 1] + v[n / 2]) / 2
        printf "%.6g\n", m }'
}

# first_hit DIR: the runs to the campaign's first failure (its first failing run + 1), or ""
# when it found none. Failures come last in explore.json, after the behaviours.
first_hit() {
    awk '/"failures": \[/ { f = 1 } f && /"first_run":/ { gsub(/[^0-9]/, ""); print $0 + 1; exit }' \
        "$1/explore.json"
}

declare -A RUNS SECS
echo "$(date -u +%FT%H:%MZ): ${#BUG_LIST[@]} bugs x ${#STRATEGY_LIST[@]} strategies x $SEEDS seeds, budget $MAX_RUNS runs, -j $JOBS" >&2
for b in "${BUG_LIST[@]}"; do
    read -ra args <<<"$(bug_args "$b")"
    for s in "${STRATEGY_LIST[@]}"; do
        for ((seed = 1; seed <= SEEDS; seed++)); do
            out="$WORK/$b-$s-$seed"
            t0=$EPOCHREALTIME
            rc=0
            "$ORDEAL" explore "${args[@]}" --strategy "$s" --seed "$seed" --stop-after 1 \
                --runs "$MAX_RUNS" --reruns 0 --no-shrink -j "$JOBS" -q --out "$out" \
                >"$out.stdout" 2>"$out.stderr" || rc=$?
            t1=$EPOCHREALTIME
            if ((rc != 0 && rc != 1)); then
                echo "explore failed (exit $rc): $b $s seed $seed" >&2
                tail -5 "$out.stderr" >&2
                [[ $KEEP == 1 ]] || rm -rf "$out"
                FAILED=1
                continue
            fi
            hit=$(first_hit "$out")
            # A campaign of a real system keeps hundreds of MB of run directories (etcd's
            # preallocated WALs): gone as soon as its figure is read, unless KEEP=1.
            [[ $KEEP == 1 ]] || rm -rf "$out"
            RUNS[$b,$s,$seed]=${hit:->$MAX_RUNS}
            SECS[$b,$s,$seed]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
            echo "  $b $s seed $seed: ${RUNS[$b,$s,$seed]} runs, ${SECS[$b,$s,$seed]} s" >&2
        done
    done
done

printf '%-26s %-10s %-28s %11s %11s %9s\n' bug strategy "runs to first failure" "median runs" "median s" "random/x"
printf '%-26s %-10s %-28s %11s %11s %9s\n' --- -------- --------------------- ----------- -------- --------
for b in "${BUG_LIST[@]}"; do
    declare -A MED=()
    for s in "${STRATEGY_LIST[@]}"; do
        runs=() secs=() vals=()
        for ((seed = 1; seed <= SEEDS; seed++)); do
            runs+=("${RUNS[$b,$s,$seed]:-?}")
            # A budget that ran out counts as one run past it: a lower bound.
            v=${RUNS[$b,$s,$seed]:-}
            [[ $v == ">"* ]] && v=$((${v#>} + 1))
            vals+=("$v")
            secs+=("${SECS[$b,$s,$seed]:-}")
        done
        MED[$s]=$(median "${vals[@]}")
        msec=$(median "${secs[@]}")
        ratio=""
        if [[ -n ${MED[random]:-} && -n ${MED[$s]} ]]; then
            ratio=$(awk -v r="${MED[random]}" -v x="${MED[$s]}" 'BEGIN { if (x > 0) printf "%.2f", r / x }')
        fi
        printf '%-26s %-10s %-28s %11s %11s %9s\n' "$b" "$s" "${runs[*]}" "${MED[$s]}" "$msec" "${ratio:--}"
    done
    unset MED
done
echo
echo "runs: exploration runs until the first failing one, baselines included (>N: none within the budget,"
echo "counted as N+1 in the median). random/x: median runs of random over this strategy's."
exit $FAILED
