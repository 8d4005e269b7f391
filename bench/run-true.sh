#!/usr/bin/env bash
# Times `herd run -- true` end to end (CLI -> manager -> worker -> sandbox
# -> back) against `unshare --fork --pid --mount-proc --mount --net true` in
# the same hyperfine run, on a manager and one worker started here on unix
# sockets. Then runs the worker-side spawn benchmark (cargo bench). Needs
# root and hyperfine (apt-get install hyperfine).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) -eq 0 ]] || { echo "bench: run as root" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "bench: apt-get install hyperfine" >&2; exit 1; }

cargo build --release --workspace --bins
bin=$PWD/target/release
dir=$(mktemp -d)
export HERD_ADDR=unix://$dir/managerd.sock
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

"$bin/herd-managerd" --listen "$HERD_ADDR" --state-dir "$dir/state" 2>"$dir/managerd.log" &
pids+=($!)
"$bin/herd-workerd" --manager "$HERD_ADDR" --id bench --listen "unix://$dir/w.sock" \
  --cgroup-parent "herd-bench-$$" --state-dir "$dir/worker-state" 2>"$dir/worker.log" &
pids+=($!)
for _ in $(seq 100); do
  "$bin/herd" workers 2>/dev/null | grep -q READY && break
  sleep 0.1
done

echo "== end to end, $(nproc) cores, $(uname -r)"
hyperfine --warmup 20 --runs 300 -N \
  "$bin/herd run -- true" \
  "unshare --fork --pid --mount-proc --mount --net true"

echo "== worker-side spawn"
cargo bench -p herd-workerd --bench spawn 2>/dev/null
