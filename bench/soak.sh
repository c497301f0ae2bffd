#!/bin/sh
# Soak: the demo explored for a long time with -j 2, ordeal watched from outside. Every
# INTERVAL it samples ordeal's resident memory (VmRSS), open descriptors and threads (the
# fewest of readings every 50 ms since the last sample), the processes of the campaign (ordeal's descendants), the network namespaces on the machine and
# ordeal-ckpt-* entries in its $TMPDIR (a directory of its own). ordeal's own memory is its RSS minus the eBPF rings mapped
# into it (kernel memory, 32 MiB per traced run, counted twice in RSS: the kernel maps a ring's
# pages twice), so that a sample taken while two runs are in flight is comparable to one taken
# between runs. At the end it checks what must hold after a long campaign:
#
#   - memory: the peak of ordeal's own memory of the last quarter of the samples is at most GROWTH % (default
#     25) above the peak of the second quarter (the first is warm-up), and so is the floor
#     (+ 8 MiB): a sample may fall inside two runs or between runs, hence peaks and floors;
#   - descriptors and threads: the last quarter's floor is at most 8 above the second's. A leak
#     raises what ordeal holds between runs; a peak only says how many runs a sample fell in;
#   - once ordeal exited: none of its processes is left, no namespace, no $TMPDIR entry more
#     than before it started (a run's checkpoint socket directory, ordeal-ckpt-*);
#   - every run is accounted for: runs.jsonl has one line per run of explore.json, and no run
#     ended in error.
#
#   bench/soak.sh                         # 30 minutes, the documented soak (docs/bench.md)
#   DURATION=3m bench/soak.sh             # a quick look
#   ORDEAL=/path/to/ordeal INTERVAL=5 bench/soak.sh
#   KEEP=/tmp/soak-campaign bench/soak.sh # keep the campaign's directory there
#
# A failure found on the demo (which has no bug unless asked) is printed with its cause.
#
# Prints the samples as a table (every tenth, and the last), the checks, and exits 1 when one
# fails. Not a CI test: 30 minutes of both CPUs.
set -eu
cd "$(dirname "$0")/.."
DURATION=${DURATION:-30m}
INTERVAL=${INTERVAL:-10}
GROWTH=${GROWTH:-25}
if [ -z "${ORDEAL:-}" ]; then
    cargo build --release -q -p ordeal >&2
    ORDEAL=${CARGO_TARGET_DIR:-target}/release/ordeal
fi
WORK=$(mktemp -d)
# ordeal's own $TMPDIR, so that other programs' entries do not count.
tmpdir=$WORK/tmp
mkdir "$tmpdir"
count_tmp() { find "$tmpdir" -maxdepth 1 -name 'ordeal-ckpt-*' 2>/dev/null | wc -l; }
count_netns() { find /proc/[0-9]*/ns/net -maxdepth 0 -printf '%l\n' 2>/dev/null | awk NF | sort -u | wc -l; }
tmp_before=$(count_tmp)
netns_before=$(count_netns)
TMPDIR=$tmpdir "$ORDEAL" explore --demo --time "$DURATION" -j 2 --reruns 3 -q --out "$WORK/c" \
    > "$WORK/explore.log" 2>&1 &
pid=$!
trap 'kill -9 $pid 2>/dev/null || true; if [ -n "${KEEP:-}" ]; then rm -rf "$KEEP"; mv "$WORK/c" "$KEEP"; fi; rm -rf "$WORK"' EXIT
echo "soak: ordeal explore --demo --time $DURATION -j 2 (pid $pid), sampled every ${INTERVAL}s ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs)"
# The sampler reads /proc itself (no process per reading): a full sample every INTERVAL, and
# descriptors and threads every 50 ms in between, of which a sample keeps the fewest. Between
# runs ordeal holds a few descriptors, one run in flight about 25 more; a leak raises the
# fewest, and 50 ms readings see a moment between runs in every quarter of even a short soak.
python3 - "$pid" "$INTERVAL" "$tmpdir" "$WORK/c/runs.jsonl" > "$WORK/samples" <<'PY'
import glob, os, sys, time
pid, interval, tmpdir, journal = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
def status(key):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return line.split()[1]
def memory():
    # One read of smaps for both, so that a run starting in between cannot skew them.
    own = ring = 0
    bpf = False
    for line in open(f"/proc/{pid}/smaps"):
        f = line.split()
        if not f:
            continue
        if not f[0].endswith(":"):  # a mapping's header, not one of its fields
            bpf = len(f) >= 6 and f[5] == "anon_inode:bpf-map"
        elif f[0] == "Rss:":
            if bpf:
                ring += int(f[1])
            else:
                own += int(f[1])
    return own, ring
def descendants():
    parent = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            text = open(stat).read()
        except OSError:
            continue
        # The name in parentheses may hold spaces: the fields after its last ')'.
        parent[int(stat.split("/")[2])] = int(text[text.rindex(")") + 2:].split()[1])
    n = 0
    for p in parent:
        q = p
        while q in parent and q not in (pid, 0, 1):
            q = parent[q]
        n += q == pid and p != pid
    return n
def netns():
    seen = set()
    for ns in glob.glob("/proc/[0-9]*/ns/net"):
        try:
            seen.add(os.readlink(ns))
        except OSError:
            pass
    return len(seen)
def runs():
    try:
        with open(journal, "rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return 0
start = time.monotonic()
try:
    while status("State") != "Z":
        now = time.monotonic()
        own, ring = memory()
        fds, thr = len(os.listdir(f"/proc/{pid}/fd")), int(status("Threads"))
        # The fewest descriptors and threads until the next sample, or ordeal's end.
        deadline = now + interval
        while time.monotonic() < deadline and status("State") != "Z":
            time.sleep(0.05)
            fds = min(fds, len(os.listdir(f"/proc/{pid}/fd")))
            thr = min(thr, int(status("Threads")))
        tmp = len(glob.glob(f"{tmpdir}/ordeal-ckpt-*"))
        print(int((now - start) * 1000), own, ring, fds, thr, descendants(), netns(), tmp, runs(), flush=True)
except (OSError, TypeError):
    pass  # ordeal is gone (reaped): the samples end here
PY
rc=0
wait "$pid" || rc=$?
# Processes, namespaces and temp entries of the campaign must be gone once it returned.
left=$(pgrep -f "$WORK/c" | wc -l || true)
python3 - "$WORK" "$rc" "$GROWTH" "$left" "$netns_before" "$(count_netns)" "$tmp_before" "$(count_tmp)" <<'PY'
import json, statistics, sys
work, rc, growth, left, ns0, ns1, tmp0, tmp1 = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), *map(int, sys.argv[4:])
rows = [list(map(int, l.split())) for l in open(f"{work}/samples") if l.strip()]
print("   t_s  own_kib ring_kib  fds threads procs netns tmp  journal")
for i, r in enumerate(rows):
    if i % 10 == 0 or i == len(rows) - 1 or len(rows) <= 40:
        print("%6.1f %8d %8d %4d %7d %5d %5d %3d %8d" % tuple([r[0] / 1000] + r[1:]))
# Columns: t in ms, then own memory, rings, descriptors, threads, processes, namespaces, tmp, runs.
OWN, FDS, THREADS, PROCS = 1, 3, 4, 5
fails = []
def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        fails.append(what)
check(rc in (0, 1), f"ordeal explore exited {rc} (0: no failure found, 1: failures found)")
if rc not in (0, 1):
    print("".join(open(f"{work}/explore.log", errors="replace").readlines()[-30:]))
if len(rows) >= 8:
    # Samples land anywhere in a run's life (two runs' tracers and buffers, or none), so the
    # quarters are compared by their peaks and their floors, not by medians. Descriptors and
    # threads by their floors only: between runs ordeal holds a few; one run in flight adds
    # about 25 descriptors, so two quarters' peaks differ by the runs their samples fell in.
    # A floor needs one sample between runs per quarter: sample often (INTERVAL) when short.
    q = len(rows) // 4
    second, last = rows[q:2 * q], rows[-q:]
    hi = lambda rs, k: max(r[k] for r in rs)
    lo = lambda rs, k: min(r[k] for r in rs)
    check(hi(last, OWN) <= hi(second, OWN) * (1 + growth / 100), f"own memory peak: {hi(second, OWN)} KiB (2nd quarter) -> {hi(last, OWN)} KiB (last quarter), at most +{growth:.0f} %")
    check(lo(last, OWN) <= lo(second, OWN) * (1 + growth / 100) + 8192, f"own memory floor: {lo(second, OWN)} KiB (2nd quarter) -> {lo(last, OWN)} KiB (last quarter), at most +{growth:.0f} % + 8 MiB")
    check(lo(last, FDS) <= lo(second, FDS) + 8, f"descriptors floor: {lo(second, FDS)} (2nd quarter) -> {lo(last, FDS)} (last quarter), at most +8")
    check(lo(last, THREADS) <= lo(second, THREADS) + 8, f"threads floor: {lo(second, THREADS)} (2nd quarter) -> {lo(last, THREADS)} (last quarter), at most +8")
    check(max(r[PROCS] for r in rows) <= 40, f"processes of the campaign at most {max(r[PROCS] for r in rows)} at any sample (two runs of 3 nodes + client)")
else:
    fails.append("too few samples")
    print("FAIL  too few samples: a longer DURATION or a shorter INTERVAL")
check(left == 0, f"processes of the campaign left after it ended: {left}")
check(ns1 <= ns0, f"network namespaces: {ns0} before, {ns1} after")
check(tmp1 <= tmp0, f"ordeal-ckpt-* entries in $TMPDIR: {tmp0} before, {tmp1} after")
try:
    ex = json.load(open(f"{work}/c/explore.json"))
    lines = [json.loads(l) for l in open(f"{work}/c/runs.jsonl") if l.strip()]
    runs = [l for l in lines if l.get("kind") == "run"]
    total = ex["runs"] + ex.get("shrink_runs", 0) + ex.get("rerun_runs", 0)
    check(len(runs) == total, f"runs.jsonl has {len(runs)} runs, explore.json counts {ex['runs']} + {ex.get('shrink_runs', 0)} shrinking + {ex.get('rerun_runs', 0)} reruns = {total}")
    check(len(ex["errors"]) == 0, f"runs that ended in error: {len(ex['errors'])}")
    for f in ex["failures"]:
        print(f"failure {f.get('id', '?')}: {json.dumps({k: f[k] for k in f if k in ('signature', 'cause', 'lines', 'first_run', 'hits', 'original_faults', 'minimal_faults', 'reproduction')})[:1500]}")
    print(f"campaign: {ex['runs']} runs in {ex['elapsed_s']:.0f} s ({ex['runs_per_minute']:.0f}/min), {ex['unique_behaviours']} behaviours, {len(ex['failures'])} failures")
except (OSError, KeyError, ValueError) as e:
    check(False, f"explore.json / runs.jsonl readable ({e})")
sys.exit(1 if fails else 0)
PY
