#!/usr/bin/env bash
# redis-benchmark throughput against redis-server: untraced, under ordeal (several CPU
# placements) and under strace, in one run. See docs/bench.md.
#
#   bench/redis.sh                      # the whole bench, about 3 minutes on 2 CPUs
#   REQUESTS=20000 MEM_SECONDS=0 STRACE=0 bench/redis.sh   # a quick look
#
# Environment (all optional):
#   ORDEAL=PATH        ordeal binary to use (default: build target/release/ordeal)
#   REQUESTS=N         redis-benchmark -n, the same for every configuration (default 40000)
#   CLIENTS=N          redis-benchmark -c (default 50)
#   PIPELINE=N         redis-benchmark -P (default 1)
#   SERVER_CPU=N       CPU for redis-server (and the tracer) when pinned (default 0)
#   CLIENT_CPU=N       CPU for redis-benchmark when pinned (default 1)
#   STRACE=0           skip the strace configurations
#   FAULTS=0           skip the run with a schedule of faults that never fire
#   MEM_SECONDS=N      length of the traced run that measures peak memory (default 60; 0 skips)
#   KEEP=1             keep the work directory (run directories, logs) instead of deleting it
#
# The table goes to stdout, progress and errors to stderr. Exit status: 0, or 1 if a run failed.
set -euo pipefail

REQUESTS=${REQUESTS:-40000}
CLIENTS=${CLIENTS:-50}
PIPELINE=${PIPELINE:-1}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
STRACE=${STRACE:-1}
FAULTS=${FAULTS:-1}
MEM_SECONDS=${MEM_SECONDS:-60}
KEEP=${KEEP:-0}
TESTS=set,get
FAILED=0

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EXP="$ROOT/bench/redis-server.toml"

die() { echo "bench/redis.sh: $*" >&2; exit 2; }

for v in REQUESTS CLIENTS PIPELINE SERVER_CPU CLIENT_CPU MEM_SECONDS; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number (got '${!v}')"
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
    ORDEAL="$ROOT/target/release/ordeal"
fi
[[ -x $ORDEAL ]] || die "ordeal binary $ORDEAL is not executable"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ordeal-bench.XXXXXX")

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
        sleep 0.1
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
                return 0
            fi
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
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

# Results, per configuration key.
declare -A LABEL SET GET STOPS TCPU
ORDER=()
record() { # KEY LABEL CSVFILE [STOPS [TRACER_US_PER_STOP]]
    ORDER+=("$1")
    LABEL[$1]=$2
    SET[$1]=$(rps SET "$3")
    GET[$1]=$(rps GET "$3")
    STOPS[$1]=${4:-}
    TCPU[$1]=${5:-}
    printf '  %-40s SET %10s  GET %10s req/s\n' "$2" "${SET[$1]:-?}" "${GET[$1]:-?}" >&2
}

# direct KEY LABEL SERVER_PREFIX... -- CLIENT_PREFIX...: redis-benchmark against a server
# started by us.
direct() {
    local key=$1 label=$2 sp=() cp=() bpid
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
        echo "redis-benchmark failed ($label):" >&2
        cat "$WORK/$key.err" >&2
        FAILED=1
    fi
    forget "$bpid"
    stop_server
    record "$key" "$label" "$WORK/$key.csv"
}

# ---- ordeal runs -----------------------------------------------------------------------------
RUN_DIR="" RUN_STOPS="" RUN_EVENTS="" HWM_TRACING="" HWM_PEAK="" MAXRSS="" RUN_RC=0
TRACER_TICKS="" BUILD_SECS=""
CLK_TCK=$(getconf CLK_TCK)
# run_ordeal KEY [ordeal run flags...]: one traced run. Every 0.1 s it samples, with shell
# builtins only (no forks to perturb a 2-CPU machine), the ordeal process' VmHWM and the CPU
# time of its tracer thread ("ordeal-tracer"); the tracing phase ends when ordeal prints
# "stopping all processes", after which it builds the outputs from trace.jsonl. With
# /usr/bin/time it also records the maximum resident set size.
run_ordeal() {
    local key=$1 pid opid="" ttid="" i line hwm k v t f timer=() cmd
    shift
    RUN_DIR="$WORK/run-$key"
    HWM_TRACING="" HWM_PEAK="" MAXRSS="" RUN_STOPS="" RUN_EVENTS="" TRACER_TICKS="" BUILD_SECS=""
    if [[ -x /usr/bin/time ]]; then timer=(/usr/bin/time -f %M -o "$WORK/$key.maxrss"); fi
    cmd=("$ORDEAL" run "$EXP" --out "$RUN_DIR" --set "requests=$REQUESTS" --set "clients=$CLIENTS"
        --set "pipeline=$PIPELINE" --set "tests=$TESTS" "$@")
    "${timer[@]}" "${cmd[@]}" >"$WORK/$key.out" 2>"$WORK/$key.err" &
    pid=$!
    PIDS+=("$pid")
    # Bounded: the experiment's own timeout (10m) ends ordeal well before this.
    for ((i = 0; i < 12000; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        if [[ -z $opid ]]; then
            if ((${#timer[@]})); then
                read -r opid _ 2>/dev/null <"/proc/$pid/task/$pid/children" || true
            else
                opid=$pid
            fi
            if [[ -n $opid ]]; then PIDS+=("$opid"); fi
        fi
        if [[ -n $opid && -z $ttid ]]; then
            for t in "/proc/$opid/task/"*; do
                read -r v 2>/dev/null <"$t/comm" || continue
                if [[ $v == ordeal-tracer ]]; then ttid=${t##*/}; fi
            done
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
            if [[ -n $ttid && -z $HWM_TRACING ]] && read -ra f 2>/dev/null <"/proc/$opid/task/$ttid/stat"; then
                # utime + stime (fields 14 and 15; the comm field has no spaces).
                TRACER_TICKS=$((f[13] + f[14]))
            fi
        fi
        sleep 0.1
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
    if ((RUN_RC != 0)) || [[ ! -s $RUN_DIR/logs/bench.stdout ]]; then
        echo "ordeal run failed (exit $RUN_RC): ${cmd[*]}" >&2
        tail -20 "$WORK/$key.err" >&2
        tail -5 "$RUN_DIR/logs/bench.stderr" 2>/dev/null >&2 || true
        FAILED=1
    fi
}

# tracer_us STOPS: CPU time of the tracer thread per ptrace stop, in µs (from TRACER_TICKS).
tracer_us() {
    awk -v t="${TRACER_TICKS:-0}" -v hz="$CLK_TCK" -v s="${1:-0}" \
        'BEGIN { if (t > 0 && s > 0) printf "%.1f", t / hz / s * 1e6 }'
}
declare -A BUILD
traced() { # KEY LABEL [ordeal run flags...]
    local key=$1 label=$2
    shift 2
    run_ordeal "$key" "$@"
    touch "$RUN_DIR/logs/bench.stdout" 2>/dev/null || true
    record "$key" "$label" "$RUN_DIR/logs/bench.stdout" "$RUN_STOPS" "$(tracer_us "$RUN_STOPS")"
    BUILD[$key]=$BUILD_SECS
    [[ $KEEP == 1 ]] || rm -rf "$RUN_DIR"
}

# ---- the configurations -----------------------------------------------------------------
echo "redis-benchmark -n $REQUESTS -c $CLIENTS -P $PIPELINE -t $TESTS; $NCPU CPUs; $(redis-server --version | awk '{print $3}')" >&2
S=$SERVER_CPU C=$CLIENT_CPU

direct untraced "untraced" -- 
if ((PIN)); then
    direct untraced_pin "untraced, pinned (srv $S, bench $C)" taskset -c "$S" -- taskset -c "$C"
fi
traced ordeal "ordeal"
if ((PIN)); then
    traced ordeal_same "ordeal, tracer+srv CPU $S, bench $C" \
        --tracer-cpu "$S" --set "server_cpus=$S" --set "client_cpus=$C"
    if [[ $FAULTS != 0 ]]; then
        traced ordeal_same_dormant "ordeal + 4 dormant faults, same CPUs" \
            --tracer-cpu "$S" --set "server_cpus=$S" --set "client_cpus=$C" \
            --faults "$ROOT/bench/dormant-faults.toml"
        # Again without faults, so that drift over the minutes of the bench shows.
        traced ordeal_same_again "ordeal, tracer+srv CPU $S, bench $C (again)" \
            --tracer-cpu "$S" --set "server_cpus=$S" --set "client_cpus=$C"
    fi
    traced ordeal_split "ordeal, tracer CPU $C, srv $S, bench $C" \
        --tracer-cpu "$C" --set "server_cpus=$S" --set "client_cpus=$C"
fi
if [[ $STRACE != 0 ]]; then
    direct strace "strace -f" strace -f -o /dev/null --
    direct strace_bpf "strace -f --seccomp-bpf net,rd,wr" \
        strace -f --seccomp-bpf -e trace=network,read,write -o /dev/null --
    if ((PIN)); then
        # strace and redis-server on one CPU (taskset exec's strace, which forks redis-server):
        # the placement of "ordeal, tracer+srv CPU S", for a like-for-like comparison.
        direct strace_bpf_pin "strace --seccomp-bpf, +srv CPU $S, bench $C" \
            taskset -c "$S" strace -f --seccomp-bpf -e trace=network,read,write -o /dev/null \
            -- taskset -c "$C"
    fi
fi

# ---- report ---------------------------------------------------------------------------------
# ratio A B: A/B with 2 decimals, "?" when unknown.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else printf "?" }'; }
# usec_per_stop KEY BASE: ((n/set + n/get) traced - same untraced) / stops, in µs.
usec_per_stop() {
    awk -v n="$REQUESTS" -v s="${SET[$1]:-0}" -v g="${GET[$1]:-0}" -v bs="${SET[$2]:-0}" \
        -v bg="${GET[$2]:-0}" -v st="${STOPS[$1]:-0}" 'BEGIN {
        if (s > 0 && g > 0 && bs > 0 && bg > 0 && st > 0)
            printf "%.1f", ((n / s + n / g) - (n / bs + n / bg)) / st * 1e6
        else printf "-" }'
}
base_of() { case $1 in *_same | *_same_* | *_split | *_pin) echo untraced_pin ;; *) echo untraced ;; esac; }

echo
echo "redis-benchmark -n $REQUESTS -c $CLIENTS -P $PIPELINE -t $TESTS --csv  ($(date -u +%Y-%m-%dT%H:%MZ), $NCPU CPUs, $(uname -r))"
echo
FMT='%-41s %10s %10s %6s %6s %8s %8s %8s\n'
# shellcheck disable=SC2059
printf "$FMT" "configuration" "SET req/s" "GET req/s" "SET x" "GET x" "stops" "us/stop" "tracer"
# shellcheck disable=SC2059
printf "$FMT" "-------------" "---------" "---------" "-----" "-----" "-----" "-------" "------"
for k in "${ORDER[@]}"; do
    b=$(base_of "$k")
    # shellcheck disable=SC2059
    printf "$FMT" "${LABEL[$k]}" "${SET[$k]:-?}" "${GET[$k]:-?}" \
        "$(ratio "${SET[$k]}" "${SET[$b]:-}")" "$(ratio "${GET[$k]}" "${GET[$b]:-}")" \
        "${STOPS[$k]:--}" "$(if [[ -n ${STOPS[$k]} ]]; then usec_per_stop "$k" "$b"; else echo -; fi)" \
        "${TCPU[$k]:--}"
done
echo
echo "x: requests/s relative to the untraced run with the same pinning. stops: ptrace stops of the"
echo "whole ordeal run. us/stop: (benchmark time traced - untraced) / stops, the wall-clock cost of"
echo "one stop. tracer: CPU time (user+sys) of ordeal's tracer thread per stop, in us."
echo
echo "ratios:"
for k in "${ORDER[@]}"; do
    b=$(base_of "$k")
    if [[ $k == untraced* ]]; then continue; fi
    printf '  %s: SET %sx  GET %sx untraced%s\n' "${LABEL[$k]}" "$(ratio "${SET[$k]}" "${SET[$b]:-}")" \
        "$(ratio "${GET[$k]}" "${GET[$b]:-}")" "$(if [[ $b == untraced_pin ]]; then echo ' (pinned)'; fi)"
done
if [[ -n ${SET[ordeal_same_dormant]:-} ]]; then
    printf '  4 dormant faults: SET %sx  GET %sx of the same placement without faults (before), %sx %sx (after)\n' \
        "$(ratio "${SET[ordeal_same_dormant]}" "${SET[ordeal_same]:-}")" \
        "$(ratio "${GET[ordeal_same_dormant]}" "${GET[ordeal_same]:-}")" \
        "$(ratio "${SET[ordeal_same_dormant]}" "${SET[ordeal_same_again]:-}")" \
        "$(ratio "${GET[ordeal_same_dormant]}" "${GET[ordeal_same_again]:-}")"
fi
for k in "${ORDER[@]}"; do
    [[ -n ${STOPS[$k]} ]] || continue
    printf '  %s: %s ptrace stops = %s per request; cost %s us per stop (tracer CPU %s us);' \
        "${LABEL[$k]}" "${STOPS[$k]}" \
        "$(awk -v s="${STOPS[$k]}" -v n="$REQUESTS" 'BEGIN { printf "%.2f", s / (2 * n) }')" \
        "$(usec_per_stop "$k" "$(base_of "$k")")" "${TCPU[$k]:-?}"
    printf ' outputs built in %s s\n' "${BUILD[$k]:-?}"
done

# ---- peak memory over a long traced run ---------------------------------------------------
if ((MEM_SECONDS > 0)); then
    # Size the run from the measured traced throughput so that it lasts about MEM_SECONDS.
    if ((PIN)); then
        mk=ordeal_same
        memflags=(--tracer-cpu "$S" --set "server_cpus=$S" --set "client_cpus=$C")
    else
        mk=ordeal
        memflags=()
    fi
    n=$(awk -v t="$MEM_SECONDS" -v s="${SET[$mk]:-0}" -v g="${GET[$mk]:-0}" \
        'BEGIN { if (s > 0 && g > 0) printf "%d", t / (1 / s + 1 / g); else printf "%d", t * 5000 }')
    echo
    echo "peak memory: ordeal run of about ${MEM_SECONDS}s (${LABEL[$mk]}), redis-benchmark -n $n" >&2
    saved=$REQUESTS
    REQUESTS=$n
    run_ordeal mem "${memflags[@]}"
    REQUESTS=$saved
    if ((RUN_RC != 0)); then
        echo "peak memory: the ordeal run failed (see above)"
        exit 1
    fi
    wl=$(awk 'match($0, /[0-9]+\.[0-9]+s]/) { t = substr($0, RSTART, RLENGTH - 2) }
              /started workload bench/ { a = t }
              /workload bench ended/ { b = t }
              END { if (a != "" && b != "") printf "%.1f", b - a; else printf "?" }' "$WORK/mem.err")
    tsize=$(stat -c %s "$RUN_DIR/trace.jsonl" 2>/dev/null || echo 0)
    dsize=$(du -sb "$RUN_DIR" 2>/dev/null | awk '{print $1}' || true)
    mib() { awk -v b="${1:-0}" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
    echo "peak memory over a ${wl}s traced run (${LABEL[$mk]}, redis-benchmark -n $n -c $CLIENTS):"
    printf '  SET %s  GET %s req/s; %s events, %s ptrace stops\n' \
        "$(rps SET "$RUN_DIR/logs/bench.stdout")" "$(rps GET "$RUN_DIR/logs/bench.stdout")" \
        "${RUN_EVENTS:-?}" "${RUN_STOPS:-?}"
    printf '  ordeal VmHWM while tracing:            %s\n' "$(mib $((${HWM_TRACING:-0} * 1024)))"
    printf '  ordeal VmHWM incl. building outputs:   %s (sampled every 0.1 s; outputs built in %s s)\n' \
        "$(mib $((${HWM_PEAK:-0} * 1024)))" "${BUILD_SECS:-?}"
    printf '  tracer thread CPU: %s us per stop\n' "$(tracer_us "$RUN_STOPS")"
    if [[ -n $MAXRSS ]]; then
        printf '  /usr/bin/time maximum resident set:   %s\n' "$(mib $((MAXRSS * 1024)))"
    fi
    printf '  trace.jsonl: %s (%s bytes/event); whole run directory: %s\n' "$(mib "$tsize")" \
        "$(awk -v b="$tsize" -v e="${RUN_EVENTS:-0}" 'BEGIN { if (e > 0) printf "%.0f", b / e; else printf "?" }')" \
        "$(mib "$dsize")"
    [[ $KEEP == 1 ]] || rm -rf "$RUN_DIR"
fi

exit $((FAILED ? 1 : 0))
