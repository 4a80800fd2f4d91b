#!/usr/bin/env bash
# Build (cached) and start the local cluster, run the e2e test command
# against it, and always tear it down, also on failure or interruption.
# Usage (as root): e2e/local.sh
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
"$here/cluster/install-deps.sh"
finish() {
  local rc=$?
  "$here/cluster/down.sh" || { [[ $rc != 0 ]] || rc=1; }
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM
"$here/cluster/up.sh"
eval "$("$here/cluster/env.sh")"
"$here/run.sh"
