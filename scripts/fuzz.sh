#!/usr/bin/env bash
# Fuzzes every parser that takes bytes a container or a tenant controls
# (fuzz/fuzz_targets: ring-buffer records, cgroup paths, file paths, report
# files and custom resources, the profiles `imprint run` takes), each for
# SECONDS (default 60), starting from the corpora in fuzz/corpus. Prints one
# line per target: executions and crashes. Exits 1 when a target crashed;
# the input is in fuzz/artifacts/TARGET/: put it into fuzz/regressions/TARGET/
# (agent/tests/hostile_input.rs replays it) and fix the parser.
# Needs a nightly toolchain (rustup toolchain install nightly) and cargo-fuzz
# (installed from crates.io when missing).
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
cache=${IMPRINT_CACHE:-/var/cache/imprint}
export CARGO_TARGET_DIR="$cache/fuzz-target"
command -v cargo-fuzz > /dev/null || cargo install cargo-fuzz --locked
flags=(-O --sanitizer "${IMPRINT_FUZZ_SANITIZER:-none}")
cargo +nightly fuzz build "${flags[@]}"
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || mapfile -t targets < <(cargo +nightly fuzz list)
status=0
for target in "${targets[@]}"; do
  # New inputs go to a corpus outside the repository; the seeds stay as they are.
  found="$cache/fuzz-corpus/$target"
  mkdir -p "$found" "fuzz/corpus/$target"
  log=$(mktemp)
  crashes=0
  cargo +nightly fuzz run "${flags[@]}" "$target" "$found" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 > "$log" 2>&1 || crashes=1
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
  printf '%-16s %12s executions in %ss, %s crashes\n' "$target" "${runs:-?}" "$seconds" "$crashes"
  if [[ $crashes -ne 0 ]]; then
    status=1
    tail -40 "$log"
  fi
  rm -f "$log"
done
exit "$status"
