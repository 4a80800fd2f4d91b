#!/usr/bin/env bash
# Stop the suite's dockerd (by the PID up.sh recorded) and remove what it
# made: its containers (dockerd stops them on the way out), its cgroups,
# mounts below its roots, its directories. Exits non-zero if anything is left.
# Usage: e2e/docker/down.sh    (as root)
set -uo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[[ $(id -u) == 0 ]] || die "run as root"
# Podman's containers, pods and service; Podman's paths outside the
# suite's own that were not there before up.
stop_podman
if [[ -f $DK_RUN/podman-host-paths ]]; then
  for p in "${PM_HOST_PATHS[@]}"; do grep -qx "$p" "$DK_RUN/podman-host-paths" || rm -rf "$p"; done
fi
# Its containers first (with --live-restore they outlive dockerd), its
# network, then dockerd.
dk ps -aq 2>/dev/null | xargs -r "$DOCKER" -H "unix://$DK_SOCK" rm -f > /dev/null 2>&1
dk network rm "$DK_NETWORK" > /dev/null 2>&1
stop_dockerd
# The bridge and fence, processes, mounts, cgroups and directories left.
remove_daemon_leftovers docker "$DK_BRIDGE" "$DK_NFT_TABLE"
