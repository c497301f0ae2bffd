#!/usr/bin/env bash
# docs/scale.md's Slurm job array, run for real on a one-machine Slurm cluster.
#
#   tests/cluster/slurm.sh OUT        # as root, with slurm-wlm and munge installed
#
# Starts munged, slurmctld and slurmd of its own (key, sockets, ports, state, logs and pids in
# a temporary directory; nothing system-wide is changed), then:
#   1. OUT/single/shard-0: the single-machine planned campaign (`--shard 0/1`), made by running
#      deploy/slurm/ordeal-explore.sbatch directly as task 0 of an array of 1;
#   2. OUT/shards/shard-{0,1,2}: the same script submitted with `sbatch --array=0-2`, its
#      results pinned to the single campaign's (ORDEAL_EXPLORE_PIN_RESULTS, docs/scale.md);
#   3. OUT/shards/merged: `ordeal merge` submitted with `--dependency=afterany`, as the
#      script's header says.
# crates/ordeal/tests/scale.rs runs this and compares the merge with the single campaign.
# `ordeal` is taken from PATH; RUNS (default 30) is the campaign's --runs. Everything started
# here is stopped on exit, and the temporary directory removed.
set -euo pipefail

out=${1:?usage: $0 OUT_DIR}
runs=${RUNS:-30}
here=$(cd "$(dirname "$0")" && pwd)
job_script=$(cd "$here/../.." && pwd)/deploy/slurm/ordeal-explore.sbatch
command -v ordeal >/dev/null || { echo "ordeal is not on PATH" >&2; exit 2; }
mkdir -p "$out"
out=$(cd "$out" && pwd)

tmp=$(mktemp -d /tmp/ordeal-slurm.XXXXXX)
started=()
echo "slurm: cluster files in $tmp (removed on exit)"

# The processes started under this cluster's config that are not the daemons themselves: job
# steps (slurmstepd detaches from slurmd), and the campaign of step 1 below. SLURM_CONF names
# this script's temporary directory, so only they carry it.
ours() {
    local p
    for p in /proc/[0-9]*; do
        [ "${p#/proc/}" = "$BASHPID" ] && continue
        if { tr '\0' '\n' <"$p/environ"; } 2>/dev/null | grep -qxF "SLURM_CONF=$tmp/slurm.conf"; then
            echo "${p#/proc/}"
        fi
    done
}

cleanup() {
    local rc=$? pid deadline left
    trap - EXIT INT TERM
    if [ ${#started[@]} -gt 1 ]; then # slurmctld runs: cancel its jobs first
        scancel --full --quiet --user=root 2>/dev/null || true
        deadline=$((SECONDS + 30))
        while [ -n "$(squeue -h -o %i 2>/dev/null)" ] && [ $SECONDS -lt $deadline ]; do
            sleep 0.2
        done
    fi
    for pid in "${started[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${started[@]}"; do wait "$pid" 2>/dev/null || true; done
    # Whatever is left: SIGTERM (ordeal stops its runs cleanly), SIGKILL after 30 s.
    left=$(ours)
    [ -z "$left" ] || kill $left 2>/dev/null || true
    deadline=$((SECONDS + 30))
    while left=$(ours) && [ -n "$left" ] && [ $SECONDS -lt $((deadline + 10)) ]; do
        [ $SECONDS -lt $deadline ] || kill -KILL $left 2>/dev/null || true
        sleep 0.2
    done
    if [ "$rc" -ne 0 ]; then
        for log in "$tmp"/*.log "$tmp"/munge/munged.log "$tmp"/munged.err; do
            [ -f "$log" ] && { echo "--- $log" >&2; tail -n 40 "$log" >&2; }
        done
    fi
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for DESCRIPTION SECONDS COMMAND...: polls COMMAND until it succeeds.
wait_for() {
    local what=$1 limit=$2 deadline
    shift 2
    deadline=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        if [ $SECONDS -ge $deadline ]; then
            echo "no $what within ${limit}s" >&2
            return 1
        fi
        sleep 0.2
    done
}

# reserve_port NAME: sets NAME to a port no socket uses, reserved for the script's life the way
# ordeal reserves its nodes' ports (crates/ordeal-sys/src/ports.rs: from 20000-32767,
# below the kernel's ephemeral range, and a flock on /tmp/ordeal-ports/PORT.lock), so that
# neither a campaign running beside it nor an outgoing connection takes it before slurmctld
# binds it (seen: "Error binding slurm stream socket: Address already in use"). Not in a
# subshell: the lock lives as long as its descriptor.
lock_dir=/tmp/ordeal-ports
mkdir -p -m 1777 "$lock_dir"
reserve_port() {
    local p fd
    while :; do
        p=$((20000 + RANDOM % 12768))
        [ -z "$(ss -Htan "sport = :$p")" ] || continue
        exec {fd}>>"$lock_dir/$p.lock"
        if flock -n "$fd"; then
            printf -v "$1" %s "$p"
            return
        fi
        exec {fd}>&-
    done
}

# --- munge: its own key, socket, pid, seed and log ---
# munged wants its socket's directories searchable by all (the key stays mode 600).
chmod 711 "$tmp"
mkdir -m 711 "$tmp/munge"
mungekey --create --keyfile="$tmp/munge/munge.key"
munged --foreground --socket="$tmp/munge/munge.socket" --key-file="$tmp/munge/munge.key" \
    --pid-file="$tmp/munge/munged.pid" --seed-file="$tmp/munge/munged.seed" \
    --log-file="$tmp/munge/munged.log" 2>"$tmp/munged.err" &
started+=($!)
munge_works() { munge -S "$tmp/munge/munge.socket" -n | unmunge -S "$tmp/munge/munge.socket"; }
wait_for "munge credential" 20 munge_works

# --- a one-node cluster ---
node=$(hostname -s)
reserve_port ctld_port
reserve_port slurmd_port
mkdir -p "$tmp/state" "$tmp/spool"
cat >"$tmp/slurm.conf" <<EOF
ClusterName=ordeal-test
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$tmp/munge/munge.socket
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/slurmctld.log
SlurmdLogFile=$tmp/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
MailProg=/bin/true
NodeName=$node NodeAddr=127.0.0.1 CPUs=2 RealMemory=2048 State=UNKNOWN
PartitionName=test Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$tmp/slurm.conf
# -D: in the foreground, so that the pids are the daemons'; their stderr repeats their logs.
slurmctld -D -c -f "$SLURM_CONF" 2>/dev/null &
started+=($!)
slurmd -D -f "$SLURM_CONF" -N "$node" 2>/dev/null &
started+=($!)
node_idle() { [ "$(sinfo -h -n "$node" -o %T)" = idle ]; }
wait_for "idle node $node in sinfo" 60 node_idle
echo "slurm: node $node idle (slurmctld :$ctld_port, slurmd :$slurmd_port)"

# --- 1. the single-machine planned campaign: the job script as task 0 of 1 ---
rm -rf "$out/single" "$out/shards"
# (In the background and waited for, so that a signal stops the script at once.)
RESULTS=$out/single RUNS=$runs SLURM_ARRAY_TASK_ID=0 SLURM_ARRAY_TASK_COUNT=1 \
    bash "$job_script" &
wait $!
test -f "$out/single/shard-0/explore.json"

# --- 2. the job array, 3. the merge after it (docs/scale.md, the script's header) ---
export RESULTS=$out/shards RUNS=$runs
export ORDEAL_EXPLORE_PIN_RESULTS=$out/single/shard-0/runs.jsonl
mkdir -p "$RESULTS"
cd "$RESULTS"
jid=$(sbatch --parsable --array=0-2 "$job_script")
merge_cmd='ordeal merge "$RESULTS"/shard-* --out "$RESULTS"/merged'
merge_jid=$(sbatch --parsable --dependency=afterany:$jid --wrap "$merge_cmd")
echo "slurm: job array $jid, merge job $merge_jid"

# Done when both jobs left the queue (the merge job is the last: it writes explore.json
# before its report, so the files alone do not say it finished).
queued() { squeue -h -o %i || echo "squeue failed"; }
deadline=$((SECONDS + 600))
while [ -n "$(queued)" ]; do
    if [ $SECONDS -ge $deadline ]; then
        echo "the job array and merge did not finish within 600s" >&2
        squeue >&2 || true
        exit 1
    fi
    sleep 0.5
done
for d in shard-0 shard-1 shard-2 merged; do
    if [ ! -f "$RESULTS/$d/explore.json" ]; then
        echo "the jobs ended, and $RESULTS/$d/explore.json is missing" >&2
        tail -n 20 "$RESULTS"/*.out >&2 || true
        exit 1
    fi
done
echo "slurm: merged $RESULTS/shard-{0,1,2} into $RESULTS/merged"
