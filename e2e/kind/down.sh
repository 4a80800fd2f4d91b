#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Delete the kind cluster of up.sh and the host's routes to its pods; with
# --own-dockerd also stop the suite's
# dockerd and remove what it made (its network and fence, containers,
# cgroups, mounts below its roots, its directories). Exits non-zero if
# anything is left.
# Usage: e2e/kind/down.sh [--own-dockerd]
set -uo pipefail
# shellcheck source=SCRIPTDIR/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
own=0
[[ ${1:-} == --own-dockerd ]] && own=1
export PATH=$KIND_BIN:$PATH
# The host's routes to the pods (up.sh).
if [[ -f $KIND_STATE/routes ]]; then
  while read -r cidr _ via; do ip route del "$cidr" via "$via" 2> /dev/null; done < "$KIND_STATE/routes"
  rm -f "$KIND_STATE/routes"
fi
if (( own )); then
  [[ $(id -u) == 0 ]] || die "--own-dockerd: run as root"
  export DOCKER_HOST=unix://$KIND_DOCKER_SOCK
  [[ -S $KIND_DOCKER_SOCK ]] && kind delete cluster --name "$KIND_CLUSTER" > /dev/null 2>&1
  kdocker ps -aq 2>/dev/null | xargs -r "$DOCKER" -H "unix://$KIND_DOCKER_SOCK" rm -f -v > /dev/null 2>&1
  kdocker network rm "$KIND_NETWORK" > /dev/null 2>&1
  end_dockerd
  # The bridge and fence, processes, mounts, cgroups and directories left.
  remove_daemon_leftovers kind "$KIND_BRIDGE" "$KIND_NFT_TABLE" || exit 1
else
  kind delete cluster --name "$KIND_CLUSTER"
  rm -f "$KIND_KUBECONFIG"
fi
