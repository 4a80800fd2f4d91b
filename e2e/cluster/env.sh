#!/usr/bin/env bash
# Print the shell exports for the running e2e cluster (KUBECONFIG, kubectl
# and helm on PATH, the test image names): eval "$(e2e/cluster/env.sh)"
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[[ -f $STATE/env ]] || die "no running cluster at $STATE (run up.sh)"
cat "$STATE/env"
