#!/usr/bin/env bash
# redis-benchmark throughput against redis-server: untraced, under ordeal with each engine
# (eBPF, ptrace; default placement and pinned), and under strace, in interleaved rounds; the
# peak memory of ordeal per engine. See docs/bench.md.
#
#   bench/redis.sh                      # the whole bench, about 4 minutes on 2 CPUs
#   REQUESTS=20000 ROUNDS=1 MEM_SECONDS=0 STRACE=0 bench/redis.sh   # a quick look
#
# Environment (all optional):
#   ORDEAL=PATH        ordeal binary to use (default: build target/release/ordeal)
#   REQUESTS=N         redis-benchmark -n, the same for every configuration (default 40000)
#   CLIENTS=N          redis-benchmark -c (default 50)
#   PIPELINE=N         redis-benchmark -P (default 1)
#   ROUNDS=N           rounds; each runs every configuration once, the table shows medians (3)
#   ENGINES="E..."     ordeal engines to run, among ebpf and ptrace (default "ebpf ptrace")
#   SERVER_CPU=N       CPU for redis-server (and the tracer) when pinned (default 0)
#   CLIENT_CPU=N       CPU for redis-benchmark when pinned (default 1)
#   STRACE=0           skip the strace configurations
#   FAULTS=0           skip the runs with a schedule of faults that never fire
#   NOCAPTURE=0        skip the runs with --payload 0 (no payload capture, no call log: what
#                      decoding costs is the difference with the default runs)
#   MEM_SECONDS=N      length of the traced runs that measure peak memory (default 60; 0 skips)
#   KEEP=1             keep the work directory (run directories, logs) instead of deleting it
#
# The table goes to stdout, progress and errors to stderr. Exit status: 0, or 1 if a run failed.
set -euo pipefail

REQUESTS=${REQUESTS:-40000}
CLIENTS=${CLIENTS:-50}
PIPELINE=${PIPELINE:-1}
ROUNDS=${ROUNDS:-3}
ENGINES=${ENGINES:-ebpf ptrace}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
STRACE=${STRACE:-1}
FAULTS=${FAULTS:-1}
NOCAPTURE=${NOCAPTURE:-1}
MEM_SECONDS=${MEM_SECONDS:-60}
KEEP=${KEEP:-0}
TESTS=set,get
FAILED=0

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EXP="$ROOT/bench/redis-server.toml"

die() { echo "bench/redis.sh: $*" >&2; exit 2; }

for v in REQUESTS CLIENTS PIPELINE ROUNDS SERVER_CPU CLIENT_CPU MEM_SECONDS; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number (got '${!v}')"
done
((ROUNDS >= 1)) || die "ROUNDS must be at least 1"
read -ra ENGINE_LIST <<<"$ENGINES"
for e in "${ENGINE_LIST[@]}"; do
    [[ $e == ebpf || $e == ptrace ]] || die "ENGINES: unknown engine '$e' (expected ebpf, ptrace)"
done
for p in redis-server redis-benchmark taskset flock; do
    command -v "$p" >/dev/null || die "$p not found in PATH"
done
if [[ $STRACE != 0 ]] && ! command -v strace >/dev/null; then
    echo "strace not found: skipping the strace configurations" >&2
    STRACE=0
fi
NCPU=$(nproc)
PIN=1
if ((NCPU < 2)) || ((SERVER_CPU >= NCPU || CLIENT_CPU >= NCPU)) || ((SERVER_CPU == CLIENT_CPU)); then
    echo "need two distinct CPUs < $NCPU for the pinned configurations: skipping them" >&2
    PIN=0
fi

if [[ -z ${ORDEAL:-} ]]; then
    echo "building ordeal (cargo build --release -p ordeal)..." >&2
    cargo build --release -p ordeal --manifest-path "$ROOT/Cargo.toml" --quiet
    ORDEAL="${CARGO_TARGET_DIR:-$ROOT/target}/release/ordeal"
fi
[[ -x $ORDEAL ]] || die "ordeal binary $ORDEAL is not executable"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ordeal-bench.XXXXXX")
# A descriptor nobody writes to: `read -t` on it is a sleep without a fork.
exec {NAP_FD}<> <(:)
nap() { read -rt "$1" -u "$NAP_FD" _ || true; }

# ---- process bookkeeping ------------------------------------------------------------------
# Every process started here is remembered and ended (TERM, then KILL) on exit.
PIDS=()
forget() { # PID...: processes known to be gone (reaped), never to be signalled again
    local p q keep=()
    for p in "${PIDS[@]}"; do
        for q in "$@"; do [[ $p == "$q" ]] && continue 2; done
        keep+=("$p")
    done
    PIDS=("${keep[@]}")
}
cleanup() {
    local rc=$? p i
    trap - EXIT INT TERM
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do
        for ((i = 0; i < 50; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if [[ $KEEP == 1 ]]; then
        echo "work directory kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Waits (bounded, 0.1 s steps) until process $1 is gone; returns 1 if it is still there.
wait_gone() {
    local pid=$1 steps=$2 i
    for ((i = 0; i < steps; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        nap 0.1
    done
    return 1
}

# ---- untraced and strace'd servers ---------------------------------------------------------
PORT=""
PORT_FD=""
# Picks a free port in ordeal's range and reserves it the way ordeal does (flock on
# /tmp/ordeal-ports/PORT.lock), so concurrent ordeal runs do not receive it.
pick_port() {
    local lockdir=/tmp/ordeal-ports p i fd
    mkdir -p "$lockdir"
    release_port
    for ((i = 0; i < 200; i++)); do
        p=$((20000 + RANDOM % 12000))
        exec {fd}>"$lockdir/$p.lock"
        if flock -n "$fd" && ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            PORT=$p PORT_FD=$fd
            return 0
        fi
        exec {fd}>&-
    done
    die "no free port found in 20000-32767"
}
release_port() {
    if [[ -n $PORT_FD ]]; then exec {PORT_FD}>&-; fi
    PORT="" PORT_FD=""
}

SERVER_PID=""   # the process we started (taskset/redis-server or strace)
REDIS_PID=""    # redis-server itself (from its pid file)
# start_server WRAPPER...: starts redis-server on a fresh port under the given command prefix
# (may be empty) and waits until it accepts connections.
start_server() {
    local try i log
    for ((try = 1; try <= 5; try++)); do
        pick_port
        log="$WORK/redis-$PORT.log"
        rm -f "$WORK/redis.pid"
        "$@" redis-server --bind 127.0.0.1 --port "$PORT" --save '' --appendonly no \
            --protected-mode no --daemonize no --pidfile "$WORK/redis.pid" --dir "$WORK" \
            >"$log" 2>&1 &
        SERVER_PID=$!
        PIDS+=("$SERVER_PID")
        for ((i = 0; i < 300; i++)); do
            if grep -q "Ready to accept connections" "$log" 2>/dev/null && [[ -s $WORK/redis.pid ]]; then
                REDIS_PID=$(<"$WORK/redis.pid")
                PIDS+=("$REDIS_PID")
                rm -f "$log"
                return 0
            fi
            kill -0 "$SERVER_PID" 2>/dev/null || break
            nap 0.1
        done
        echo "redis-server did not start on port $PORT (attempt $try):" >&2
        tail -3 "$log" >&2
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        forget "$SERVER_PID"
    done
    die "cannot start redis-server"
}
stop_server() {
    # TERM redis-server itself: strace ignores TERM while it runs a command, and ends when
    # its tracee does.
    if [[ -n $REDIS_PID ]]; then kill -TERM "$REDIS_PID" 2>/dev/null || true; fi
    if ! wait_gone "$SERVER_PID" 100; then
        kill -KILL "$REDIS_PID" "$SERVER_PID" 2>/dev/null || true
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    forget "$SERVER_PID" "$REDIS_PID"
    SERVER_PID="" REDIS_PID=""
    release_port
}

# rps TEST CSVFILE: the requests/s of TEST ("SET", "GET") in redis-benchmark --csv output.
rps() {
    [[ -f $2 ]] || { echo ""; return 0; }
    awk -F'"' -v t="$1" '$2 == t { print $4; found = 1 } END { if (!found) print "" }' "$2"
}

# Results of each run, keyed "CONFIG,ROUND": requests/s, ptrace stops, events, ordeal's CPU
# per request while tracing (us), its maximum resident set (KiB), events lost.
declare -A SET GET STOPS EVENTS CPUREQ RSS LOST
# record KEY ROUND CSVFILE [STOPS EVENTS CPU_US_PER_REQ RSS_KIB LOST]
record() {
    local k="$1,$2"
    SET[$k]=$(rps SET "$3")
    GET[$k]=$(rps GET "$3")
    STOPS[$k]=${4:-} EVENTS[$k]=${5:-} CPUREQ[$k]=${6:-} RSS[$k]=${7:-} LOST[$k]=${8:-}
    printf '  round %d  %-50s SET %10s  GET %10s req/s\n' "$2" "${LABEL[$1]}" "${SET[$k]:-?}" \
        "${GET[$k]:-?}" >&2
}

# direct KEY ROUND SERVER_PREFIX... -- CLIENT_PREFIX...: redis-benchmark against a server
# started by us.
direct() {
    local key=$1 round=$2 sp=() cp=() bpid
    shift 2
    while [[ $# -gt 0 && $1 != -- ]]; do sp+=("$1"); shift; done
    shift
    cp=("$@")
    start_server "${sp[@]}"
    # In the background, so that a signal to this script is handled at once.
    "${cp[@]}" redis-benchmark -h 127.0.0.1 -p "$PORT" -n "$REQUESTS" -c "$CLIENTS" \
        -P "$PIPELINE" -t "$TESTS" --csv >"$WORK/$key.csv" 2>"$WORK/$key.err" &
    bpid=$!
    PIDS+=("$bpid")
    if ! wait "$bpid"; then
        echo "redis-benchmark failed (${LABEL[$key]}):" >&2
        cat "$WORK/$key.err" >&2
        FAILED=1
    fi
    forget "$bpid"
    stop_server
    record "$key" "$round" "$WORK/$key.csv"
}

# ---- ordeal runs -----------------------------------------------------------------------------
RUN_DIR="" RUN_STOPS="" RUN_EVENTS="" RUN_LOST="" HWM_TRACING="" HWM_PEAK="" MAXRSS="" RUN_RC=0
CPU_TICKS="" BUILD_SECS=""
CLK_TCK=$(getconf CLK_TCK)
# run_ordeal KEY [ordeal run flags...]: one traced run. Every 0.05 s it samples, with shell
# builtins only (no forks to perturb a 2-CPU machine), the ordeal process' VmHWM and CPU time
# (all its threads); the tracing phase ends when ordeal prints "stopping all processes", after
# which it builds the outputs from trace.jsonl. With /usr/bin/time it also records the maximum
# resident set size of the whole run.
run_ordeal() {
    local key=$1 pid opid="" i line hwm k v f timer=() cmd
    shift
    RUN_DIR="$WORK/run-$key"
    rm -rf "$RUN_DIR"
    HWM_TRACING="" HWM_PEAK="" MAXRSS="" RUN_STOPS="" RUN_EVENTS="" RUN_LOST="" CPU_TICKS=""
    BUILD_SECS=""
    if [[ -x /usr/bin/time ]]; then timer=(/usr/bin/time -f %M -o "$WORK/$key.maxrss"); fi
    cmd=("$ORDEAL" run "$EXP" --out "$RUN_DIR" --set "requests=$REQUESTS" --set "clients=$CLIENTS"
        --set "pipeline=$PIPELINE" --set "tests=$TESTS" "$@")
    "${timer[@]}" "${cmd[@]}" >"$WORK/$key.out" 2>"$WORK/$key.err" &
    pid=$!
    PIDS+=("$pid")
    # Bounded: the experiment's own timeout (10m) ends ordeal well before this.
    for ((i = 0; i < 24000; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        if [[ -z $opid ]]; then
            if ((${#timer[@]})); then
                read -r opid _ 2>/dev/null <"/proc/$pid/task/$pid/children" || true
            else
                opid=$pid
            fi
            if [[ -n $opid ]]; then PIDS+=("$opid"); fi
        fi
        if [[ -n $opid ]]; then
            hwm=""
            while read -r k v _; do
                if [[ $k == VmHWM: ]]; then hwm=$v; fi
            done 2>/dev/null <"/proc/$opid/status" || true
            if [[ -n $hwm && -z $HWM_TRACING ]] && [[ $(<"$WORK/$key.err") == *"stopping all processes"* ]]; then
                # The last sample taken before the line appeared: the tracing phase.
                HWM_TRACING=${HWM_PEAK:-$hwm}
            fi
            if [[ -n $hwm ]]; then HWM_PEAK=$hwm; fi
            if [[ -z $HWM_TRACING ]] && read -ra f 2>/dev/null <"/proc/$opid/stat"; then
                # utime + stime of all threads (fields 14 and 15; comm "ordeal" has no spaces).
                CPU_TICKS=$((f[13] + f[14]))
            fi
        fi
        nap 0.05
    done
    RUN_RC=0
    wait "$pid" || RUN_RC=$?
    forget "$pid" $opid
    if [[ -s $WORK/$key.maxrss ]]; then MAXRSS=$(tail -1 "$WORK/$key.maxrss" | tr -dc 0-9 || true); fi
    BUILD_SECS=$(awk 'match($0, /[0-9]+\.[0-9]+s]/) { t = substr($0, RSTART, RLENGTH - 2) }
        / ptrace stops/ { a = t } /outputs written/ { b = t }
        END { if (a != "" && b != "") printf "%.1f", b - a }' "$WORK/$key.err")
    line=$(grep -E '[0-9]+ events traced, [0-9]+ ptrace stops' "$WORK/$key.err" | tail -1 || true)
    if [[ -n $line ]]; then
        RUN_EVENTS=$(sed -E 's/.* ([0-9]+) events traced.*/\1/' <<<"$line")
        RUN_STOPS=$(sed -E 's/.* ([0-9]+) ptrace stops.*/\1/' <<<"$line")
    fi
    RUN_LOST=$(grep -oE '"lost_events": *[0-9]+' "$RUN_DIR/summary.json" 2>/dev/null | tr -dc 0-9 || true)
    if ((RUN_RC != 0)) || [[ ! -s $RUN_DIR/logs/bench.stdout ]]; then
        echo "ordeal run failed (exit $RUN_RC): ${cmd[*]}" >&2
        tail -20 "$WORK/$key.err" >&2
        tail -5 "$RUN_DIR/logs/bench.stderr" 2>/dev/null >&2 || true
        FAILED=1
    fi
}

# cpu_per_request: ordeal's CPU time while tracing per request (both tests), in us.
cpu_per_request() {
    awk -v t="${CPU_TICKS:-0}" -v hz="$CLK_TCK" -v n="$REQUESTS" \
        'BEGIN { if (t > 0) printf "%.1f", t / hz / (2 * n) * 1e6 }'
}
declare -A BUILD
traced() { # KEY ROUND [ordeal run flags...]
    local key=$1 round=$2
    shift 2
    run_ordeal "$key" "$@"
    touch "$RUN_DIR/logs/bench.stdout" 2>/dev/null || true
    record "$key" "$round" "$RUN_DIR/logs/bench.stdout" "$RUN_STOPS" "$RUN_EVENTS" \
        "$(cpu_per_request)" "${MAXRSS:-$HWM_PEAK}" "$RUN_LOST"
    BUILD[$key,$round]=$BUILD_SECS
    [[ $KEEP == 1 ]] || rm -rf "$RUN_DIR"
}

# ---- the configurations -----------------------------------------------------------------
S=$SERVER_CPU C=$CLIENT_CPU
declare -A LABEL BASE
CONFIGS=()
# config KEY BASELINE_KEY LABEL: a row of the table (its baseline: the untraced run with the
# same placement).
config() { CONFIGS+=("$1"); BASE[$1]=$2; LABEL[$1]=$3; }
PINNED=(--tracer-cpu "$S" --set "server_cpus=$S" --set "client_cpus=$C")

config untraced untraced "untraced"
for e in "${ENGINE_LIST[@]}"; do config "ordeal_$e" untraced "ordeal --engine $e"; done
if [[ $FAULTS != 0 ]]; then
    for e in "${ENGINE_LIST[@]}"; do
        config "ordeal_${e}_dormant" untraced "ordeal --engine $e + 4 dormant faults"
    done
fi
if [[ $NOCAPTURE != 0 ]]; then
    for e in "${ENGINE_LIST[@]}"; do
        config "ordeal_${e}_nocapture" untraced "ordeal --engine $e --payload 0 (no call log)"
    done
fi
if [[ $STRACE != 0 ]]; then
    config strace untraced "strace -f"
    config strace_bpf untraced "strace -f --seccomp-bpf net,rd,wr"
fi
if ((PIN)); then
    config untraced_pin untraced_pin "untraced, pinned (srv $S, bench $C)"
    for e in "${ENGINE_LIST[@]}"; do
        config "ordeal_${e}_pin" untraced_pin "ordeal --engine $e, tracer+srv CPU $S, bench $C"
    done
    if [[ $STRACE != 0 ]]; then
        config strace_bpf_pin untraced_pin "strace --seccomp-bpf, +srv CPU $S, bench $C"
    fi
fi

run_config() { # KEY ROUND
    local key=$1 round=$2
    case $key in
    untraced) direct "$key" "$round" -- ;;
    untraced_pin) direct "$key" "$round" taskset -c "$S" -- taskset -c "$C" ;;
    ordeal_*_dormant)
        local e=${key#ordeal_}
        traced "$key" "$round" --engine "${e%_dormant}" --faults "$ROOT/bench/dormant-faults.toml"
        ;;
    ordeal_*_nocapture)
        local e=${key#ordeal_}
        traced "$key" "$round" --engine "${e%_nocapture}" --payload 0
        ;;
    ordeal_*_pin)
        local e=${key#ordeal_}
        traced "$key" "$round" --engine "${e%_pin}" "${PINNED[@]}"
        ;;
    ordeal_*) traced "$key" "$round" --engine "${key#ordeal_}" ;;
    strace) direct "$key" "$round" strace -f -o /dev/null -- ;;
    strace_bpf)
        direct "$key" "$round" strace -f --seccomp-bpf -e trace=network,read,write -o /dev/null --
        ;;
    strace_bpf_pin)
        # strace and redis-server on one CPU (taskset exec's strace, which forks redis-server):
        # the placement of the pinned ordeal rows, for a like-for-like comparison.
        direct "$key" "$round" taskset -c "$S" strace -f --seccomp-bpf \
            -e trace=network,read,write -o /dev/null -- taskset -c "$C"
        ;;
    *) die "unknown configuration $key" ;;
    esac
}

echo "redis-benchmark -n $REQUESTS -c $CLIENTS -P $PIPELINE -t $TESTS; $NCPU CPUs; $(redis-server --version | awk '{print $3}'); $ROUNDS rounds" >&2
STARTED=$SECONDS
for ((r = 1; r <= ROUNDS; r++)); do
    for k in "${CONFIGS[@]}"; do run_config "$k" "$r"; done
done

# ---- report ---------------------------------------------------------------------------------
# median V...: the median of the numbers given (empty ones ignored), "" when none.
median() {
    printf '%s\n' "$@" | awk 'NF { v[n++] = $1 } END {
        if (n == 0) exit
        for (i = 1; i < n; i++) for (j = i; j > 0 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
        m = n % 2 ? v[(n - 1) / 2] : (v[n / 2 - 1] + v[n / 2]) / 2
        printf "%.6g\n", m }'
}
# ratio A B: A/B with 2 decimals, "" when unknown.
ratio() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b }'; }
# per_round ARRAY KEY: the values of ARRAY for KEY in every round.
per_round() {
    local -n arr=$1
    local r
    for ((r = 1; r <= ROUNDS; r++)); do echo "${arr[$2,$r]:-}"; done
}
# ratios TEST KEY: KEY's requests/s over its baseline's, round by round.
ratios() {
    local -n arr=$1
    local r
    for ((r = 1; r <= ROUNDS; r++)); do ratio "${arr[$2,$r]:-}" "${arr[${BASE[$2]},$r]:-}"; echo; done
}
# usec_per_stop KEY ROUND: ((n/set + n/get) traced - same untraced) / stops, in us; only for
# runs with at least one stop per request, where stops are what costs.
usec_per_stop() {
    local k="$1,$2" b="${BASE[$1]},$2"
    awk -v n="$REQUESTS" -v s="${SET[$k]:-0}" -v g="${GET[$k]:-0}" -v bs="${SET[$b]:-0}" \
        -v bg="${GET[$b]:-0}" -v st="${STOPS[$k]:-0}" 'BEGIN {
        if (s > 0 && g > 0 && bs > 0 && bg > 0 && st >= 2 * n)
            printf "%.1f", ((n / s + n / g) - (n / bs + n / bg)) / st * 1e6 }'
}
# each FMT V...: every value given, printf'd with FMT ("?" for an empty one), space-separated.
each() {
    local fmt=$1 v out=()
    shift
    for v in "$@"; do
        if [[ -n $v ]]; then out+=("$(awk -v v="$v" -v f="$fmt" 'BEGIN { printf f, v }')"); else out+=("?"); fi
    done
    echo "${out[*]}"
}
# rel TEST A B: the median over the rounds of A's requests/s over B's, "-" when unknown.
rel() {
    local -n arr=$1
    local r
    dash "$(f2 "$(median $(for ((r = 1; r <= ROUNDS; r++)); do ratio "${arr[$2,$r]:-}" "${arr[$3,$r]:-}"; echo; done))")"
}
int() { awk -v v="${1:-}" 'BEGIN { if (v != "") printf "%.0f", v }'; }
f1() { awk -v v="${1:-}" 'BEGIN { if (v != "") printf "%.1f", v }'; }
f2() { awk -v v="${1:-}" 'BEGIN { if (v != "") printf "%.2f", v }'; }
mib() { awk -v k="${1:-}" 'BEGIN { if (k != "") printf "%.1f", k / 1024 }'; }
dash() { echo "${1:--}"; }

declare -A MSET MGET MSX MGX MSTOPS MUS MCPU MRSS MAXLOST
for k in "${CONFIGS[@]}"; do
    MSET[$k]=$(median $(per_round SET "$k"))
    MGET[$k]=$(median $(per_round GET "$k"))
    MSX[$k]=$(median $(ratios SET "$k"))
    MGX[$k]=$(median $(ratios GET "$k"))
    MSTOPS[$k]=$(median $(per_round STOPS "$k"))
    MUS[$k]=$(median $(for ((r = 1; r <= ROUNDS; r++)); do usec_per_stop "$k" "$r"; echo; done))
    MCPU[$k]=$(median $(per_round CPUREQ "$k"))
    MRSS[$k]=$(median $(per_round RSS "$k"))
    MAXLOST[$k]=$(per_round LOST "$k" | awk 'NF { if ($1 > m) m = $1; n++ } END { if (n) print m + 0 }')
done

echo
echo "redis-benchmark -n $REQUESTS -c $CLIENTS -P $PIPELINE -t $TESTS --csv  ($(date -u +%Y-%m-%dT%H:%MZ), $NCPU CPUs, $(uname -r))"
echo "medians of $ROUNDS interleaved rounds; $((SECONDS - STARTED)) s"
echo
FMT='%-50s %9s %9s %5s %5s %8s %7s %7s %8s %5s\n'
# shellcheck disable=SC2059
printf "$FMT" "configuration" "SET req/s" "GET req/s" "SET x" "GET x" "stops" "us/stop" \
    "cpu/req" "peak MiB" "lost"
# shellcheck disable=SC2059
printf "$FMT" "-------------" "---------" "---------" "-----" "-----" "-----" "-------" \
    "-------" "--------" "----"
for k in "${CONFIGS[@]}"; do
    # shellcheck disable=SC2059
    printf "$FMT" "${LABEL[$k]}" "$(dash "$(int "${MSET[$k]}")")" "$(dash "$(int "${MGET[$k]}")")" \
        "$(dash "$(f2 "${MSX[$k]}")")" "$(dash "$(f2 "${MGX[$k]}")")" \
        "$(dash "$(int "${MSTOPS[$k]}")")" "$(dash "$(f1 "${MUS[$k]}")")" \
        "$(dash "$(f1 "${MCPU[$k]}")")" "$(dash "$(mib "${MRSS[$k]}")")" \
        "$(dash "${MAXLOST[$k]}")"
done
echo
echo "x: requests/s over the untraced run of the same placement and round (median of the rounds)."
echo "stops: ptrace stops of the whole ordeal run. us/stop: (benchmark time traced - untraced) /"
echo "stops, the wall-clock cost of one stop (runs with at least one stop per request only)."
echo "cpu/req: CPU time of the ordeal process (all threads) while tracing, per request, in us."
echo "peak MiB: maximum resident set of the ordeal process over the whole run. lost: events the"
echo "eBPF ring buffer dropped (summary.json engine.lost_events; the largest over the rounds)."
echo
echo "each round:"
for k in "${CONFIGS[@]}"; do
    b=${BASE[$k]} sets=() gets=() sx=() gx=()
    for ((r = 1; r <= ROUNDS; r++)); do
        sets+=("${SET[$k,$r]:-}") gets+=("${GET[$k,$r]:-}")
        sx+=("$(ratio "${SET[$k,$r]:-}" "${SET[$b,$r]:-}")")
        gx+=("$(ratio "${GET[$k,$r]:-}" "${GET[$b,$r]:-}")")
    done
    printf '  %-50s SET %s  GET %s req/s' "${LABEL[$k]}" "$(each %.0f "${sets[@]}")" \
        "$(each %.0f "${gets[@]}")"
    if [[ $k != "$b" ]]; then
        printf ';  x SET %s  GET %s' "$(each %.2f "${sx[@]}")" "$(each %.2f "${gx[@]}")"
    fi
    if [[ -n $(per_round LOST "$k" | tr -d '0\n') ]]; then
        printf ';  LOST %s' "$(each %.0f $(per_round LOST "$k"))"
    fi
    echo
done
if ((${#ENGINE_LIST[@]} == 2)); then
    echo
    echo "ebpf over ptrace (same placement, same round; median):"
    for pair in "ordeal_ebpf ordeal_ptrace" "ordeal_ebpf_pin ordeal_ptrace_pin"; do
        read -r a b <<<"$pair"
        [[ -n ${LABEL[$a]:-} && -n ${LABEL[$b]:-} ]] || continue
        printf '  %s: SET %sx  GET %sx\n' "${LABEL[$a]}" \
            "$(rel SET "$a" "$b")" \
            "$(rel GET "$a" "$b")"
    done
fi
if [[ $FAULTS != 0 ]]; then
    echo
    echo "4 dormant faults, over the same engine without faults (same round; median):"
    for e in "${ENGINE_LIST[@]}"; do
        a=ordeal_${e}_dormant b=ordeal_$e
        printf '  --engine %s: SET %sx  GET %sx; %s ptrace stops instead of %s\n' "$e" \
            "$(rel SET "$a" "$b")" \
            "$(rel GET "$a" "$b")" \
            "$(dash "$(int "${MSTOPS[$a]}")")" "$(dash "$(int "${MSTOPS[$b]}")")"
    done
fi

# ---- peak memory over a long traced run, per engine -------------------------------------
if ((MEM_SECONDS > 0)); then
    # One request count for every engine, so that their traces hold the same events: sized from
    # the slowest engine's default-placement throughput so that its run lasts about
    # MEM_SECONDS (faster engines finish sooner).
    n=""
    for e in "${ENGINE_LIST[@]}"; do
        m=$(awk -v t="$MEM_SECONDS" -v s="${MSET[ordeal_$e]:-0}" -v g="${MGET[ordeal_$e]:-0}" \
            'BEGIN { if (s > 0 && g > 0) printf "%d", t / (1 / s + 1 / g) }')
        if [[ -n $m ]] && { [[ -z $n ]] || ((m < n)); }; then n=$m; fi
    done
    n=${n:-$((MEM_SECONDS * 5000))}
    saved=$REQUESTS
    REQUESTS=$n
    for e in "${ENGINE_LIST[@]}"; do
        echo >&2
        echo "peak memory: ordeal run --engine $e, redis-benchmark -n $n" >&2
        run_ordeal "mem_$e" --engine "$e"
        if ((RUN_RC != 0)); then
            echo "peak memory (--engine $e): the ordeal run failed (see above)"
            continue
        fi
        wl=$(awk 'match($0, /[0-9]+\.[0-9]+s]/) { t = substr($0, RSTART, RLENGTH - 2) }
                  /started workload bench/ { a = t }
                  /workload bench ended/ { b = t }
                  END { if (a != "" && b != "") printf "%.1f", b - a; else printf "?" }' "$WORK/mem_$e.err")
        tsize=$(stat -c %s "$RUN_DIR/trace.jsonl" 2>/dev/null || echo 0)
        dsize=$(du -sb "$RUN_DIR" 2>/dev/null | awk '{print $1}' || true)
        echo
        echo "peak memory, ordeal run --engine $e (default placement), redis-benchmark -n $n -c $CLIENTS, ${wl}s:"
        printf '  SET %s  GET %s req/s; %s events, %s ptrace stops, %s lost\n' \
            "$(int "$(rps SET "$RUN_DIR/logs/bench.stdout")")" \
            "$(int "$(rps GET "$RUN_DIR/logs/bench.stdout")")" \
            "${RUN_EVENTS:-?}" "${RUN_STOPS:-?}" "${RUN_LOST:-?}"
        printf '  ordeal VmHWM while tracing:            %s MiB\n' "$(mib "${HWM_TRACING:-0}")"
        printf '  ordeal VmHWM incl. building outputs:   %s MiB (sampled every 0.05 s; outputs built in %s s)\n' \
            "$(mib "${HWM_PEAK:-0}")" "${BUILD_SECS:-?}"
        if [[ -n $MAXRSS ]]; then
            printf '  /usr/bin/time maximum resident set:   %s MiB\n' "$(mib "$MAXRSS")"
        fi
        printf '  ordeal CPU while tracing: %s us per request\n' "$(cpu_per_request)"
        printf '  trace.jsonl: %s MiB (%s bytes/event); whole run directory: %s MiB\n' \
            "$(mib $((tsize / 1024)))" \
            "$(awk -v b="$tsize" -v e="${RUN_EVENTS:-0}" 'BEGIN { if (e > 0) printf "%.0f", b / e; else printf "?" }')" \
            "$(mib $((${dsize:-0} / 1024)))"
        [[ $KEEP == 1 ]] || rm -rf "$RUN_DIR"
    done
    REQUESTS=$saved
fi

exit $((FAILED ? 1 : 0))
