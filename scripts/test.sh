#!/usr/bin/env bash
# Runs every test: formatting, lints, unit tests, the end-to-end tests that
# start the real binaries (as root; they skip without it) and the fuzz suite.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
  echo "test: not root, so the end-to-end tests will skip; run with sudo to run them" >&2
fi
for tool in ps bash sh; do
  command -v "$tool" >/dev/null || { echo "test: $tool is missing (apt-get install procps)" >&2; exit 1; }
done

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --workspace --bins --locked

# Unit and end-to-end tests, without doctests (herd has none), then the fuzz
# suite, then one summary line over every test binary.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --exclude herd-fuzz --lib --bins --tests --locked 2>&1 | tee "$log" || status=$?

# Each fuzz target runs for 60 s. The 14 targets share one test binary, so
# seven threads run them in two rounds of about a minute each.
HERD_FUZZ_SECONDS=60 cargo test -p herd-fuzz --tests --locked -- --test-threads=7 2>&1 |
  tee -a "$log" || status=$?
awk '/^test result:/ { passed += $4; failed += $6 }
     END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
exit "$status"
