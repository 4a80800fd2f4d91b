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
# The bridge (should dockerd have died first) and the fence.
ip link show "$DK_BRIDGE" > /dev/null 2>&1 && ip link del "$DK_BRIDGE"
nft delete table inet "$DK_NFT_TABLE" 2> /dev/null
# Whatever still runs in the suite's cgroups (a shim left by a killed dockerd).
kill_in_own_cgroups
# The containerd dockerd started, and its shims, by their sockets under $DK_RUN.
for p in /proc/[0-9]*; do
  tr '\0' ' ' 2>/dev/null < "$p/cmdline" | grep -q -- "$DK_RUN/" || continue
  kill -KILL "${p#/proc/}" 2>/dev/null
done
sleep 0.3
unmount_below_own_dirs
remove_own_cgroups
remove_own_dirs
leftover=0
[[ -z $(cgroup_dirs) ]] || { log "left: cgroups $(cgroup_dirs | tr '\n' ' ')"; leftover=1; }
[[ ! -e $DK_STATE && ! -e $DK_RUN ]] || { log "left: $DK_STATE or $DK_RUN"; leftover=1; }
ip link show "$DK_BRIDGE" > /dev/null 2>&1 && { log "left: bridge $DK_BRIDGE"; leftover=1; }
nft list table inet "$DK_NFT_TABLE" > /dev/null 2>&1 && { log "left: nftables table $DK_NFT_TABLE"; leftover=1; }
for p in /proc/[0-9]*; do
  tr '\0' ' ' 2>/dev/null < "$p/cmdline" | grep -q -- "$DK_RUN/" && { log "left: process ${p#/proc/}"; leftover=1; }
done
(( leftover == 0 )) || exit 1
log "docker down: clean"
