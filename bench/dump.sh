#!/usr/bin/env bash
# How long a process is paused per GiB dumped: a traced node fills MB MiB of heap, then
# `ordeal snapshot` takes a core and a minidump of it. See docs/outputs.md#dumps.
#
#   bench/dump.sh              # 1024 MiB
#   MB=256 bench/dump.sh
#
# Environment (all optional):
#   ORDEAL=PATH   ordeal binary to use (default: build target/release/ordeal)
#   MB=N          heap to fill and dump, in MiB (default 1024; needs that much RAM and 2x disk)
#   KEEP=1        keep the work directory (run directories, dumps)
#
# Prints one line per dump kind: bytes written, pause, pause per GiB.
set -euo pipefail

MB=${MB:-1024}
root=$(cd "$(dirname "$0")/.." && pwd)
if [[ -z "${ORDEAL:-}" ]]; then
    cargo build --release -q -p ordeal --manifest-path "$root/Cargo.toml"
    ORDEAL=${CARGO_TARGET_DIR:-$root/target}/release/ordeal
fi
work=$(mktemp -d)
cleanup() {
    [[ -n "${pid:-}" ]] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    [[ "${KEEP:-0}" == 1 ]] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/big.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
    size_t mb = (size_t)atol(argv[1]);
    char *p = malloc(mb << 20);
    for (size_t i = 0; i < (mb << 20); i += 4096) p[i] = (char)(i | 1);
    printf("filled\n");
    fflush(stdout);
    for (;;) pause();
}
EOF
cc -O1 -o "$work/big" "$work/big.c"
cat >"$work/big.toml" <<EOF
name = "dump-bench"
timeout = "600s"
hang_timeout = "off"
[[node]]
name = "big"
argv = ["$work/big", "$MB"]
ready = { log = "filled" }
ready_timeout = "120s"
[[workload]]
name = "wait"
argv = ["sleep", "600"]
EOF

for kind in core minidump; do
    mkdir -p "$work/dumps-$kind"
    run="$work/run-$kind"
    "$ORDEAL" run "$work/big.toml" -q --out "$run" --dump-dir "$work/dumps-$kind" \
        --dump "$kind" --dump-reserve 1G --dump-cap $((MB * 2))M >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 1200); do
        [[ -e "$run/logs/wait.stderr" ]] && break
        sleep 0.1
    done
    [[ -e "$run/logs/wait.stderr" ]] || { echo "the node never filled its heap" >&2; exit 1; }
    text=$("$ORDEAL" snapshot "$run" --timeout 300s)
    echo "$kind: $(grep -m1 "of big/" "$text" | sed 's/^ *//')"
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
    pid=
    rm -rf "$work/dumps-$kind"
done
