#!/usr/bin/env bash
# e2e/up-run-down.sh DIR: a suite that brings up what it tests (the runtime
# suite, the Docker suite): installs what is missing (DIR/install-deps.sh),
# starts it (DIR/up.sh), runs the suite (DIR/run.sh) and always tears it
# down (DIR/down.sh), also on failure or interruption. Exits non-zero if a
# test failed or down left anything behind.
set -euo pipefail
dir=${1:?usage: up-run-down.sh SUITE_DIR}
"$dir/install-deps.sh"
finish() {
  local rc=$?
  "$dir/down.sh" || { [[ $rc != 0 ]] || rc=1; }
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM
"$dir/up.sh"
"$dir/run.sh"
