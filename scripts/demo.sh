#!/usr/bin/env bash
# Builds herd, starts a manager and two workers on unix sockets under
# ./.demo, runs a real command through them, shows its output and status,
# then stops the daemons it started.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
  echo "demo: run as root (sudo $0): sandboxes need namespaces and cgroups" >&2
  exit 1
fi

echo "==> building herd (release)"
cargo build --release --workspace --bins
bin=$PWD/target/release
demo=$PWD/.demo
rm -rf "$demo"
mkdir -p "$demo"
export HERD_ADDR=unix://$demo/managerd.sock

pids=()
stop_daemons() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop_daemons EXIT

echo "==> starting herd-managerd and workers w1, w2 (logs in $demo)"
"$bin/herd-managerd" --listen "$HERD_ADDR" --worker-lease 3s --state-dir "$demo/state" \
  2>"$demo/managerd.log" &
pids+=($!)
for worker in w1 w2; do
  "$bin/herd-workerd" --manager "$HERD_ADDR" --id "$worker" \
    --listen "unix://$demo/$worker.sock" --cgroup-parent "herd-demo-$worker" \
    --state-dir "$demo/worker-state" --join-token-file "$demo/state/join-token" \
    2>"$demo/$worker.log" &
  pids+=($!)
done
for _ in $(seq 100); do
  ready=$("$bin/herd" workers 2>/dev/null | grep -c READY || true)
  [[ $ready -eq 2 ]] && break
  sleep 0.1
done

run() {
  echo
  printf '$ herd'
  printf ' %q' "$@"
  echo
  "$bin/herd" "$@"
}
run workers
run run --id demo-hello -- bash -c 'echo "Hello from $(hostname), PID $$"; ls /sys/class/net; ps ax'
run status demo-hello
run run --id demo-oom --memory 64m -- tail /dev/zero || true
run ps --all
echo
echo "==> done; stopping the daemons"
