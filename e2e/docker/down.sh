#!/usr/bin/env bash
# Stop the suite's dockerd (by the PID up.sh recorded) and remove what it
# made: its containers (dockerd stops them on the way out), its cgroups,
# mounts below its roots, its directories. Exits non-zero if anything is left.
# Usage: e2e/docker/down.sh    (as root)
set -uo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[[ $(id -u) == 0 ]] || die "run as root"
# Its containers first (with --live-restore they outlive dockerd), then dockerd.
dk ps -aq 2>/dev/null | xargs -r "$DOCKER" -H "unix://$DK_SOCK" rm -f > /dev/null 2>&1
stop_dockerd
# Whatever still runs in the suite's cgroups (a shim left by a killed dockerd).
kill_in_own_cgroups
# The containerd dockerd started, and its shims, by their sockets under $DK_RUN.
for p in /proc/[0-9]*; do
  tr '\0' ' ' < "$p/cmdline" 2>/dev/null | grep -q -- "$DK_RUN/" || continue
  kill -KILL "${p#/proc/}" 2>/dev/null
done
sleep 0.3
unmount_below_own_dirs
remove_own_cgroups
remove_own_dirs
leftover=0
[[ -z $(cgroup_dirs) ]] || { log "left: cgroups $(cgroup_dirs | tr '\n' ' ')"; leftover=1; }
[[ ! -e $DK_STATE && ! -e $DK_RUN ]] || { log "left: $DK_STATE or $DK_RUN"; leftover=1; }
for p in /proc/[0-9]*; do
  tr '\0' ' ' < "$p/cmdline" 2>/dev/null | grep -q -- "$DK_RUN/" && { log "left: process ${p#/proc/}"; leftover=1; }
done
(( leftover == 0 )) || exit 1
log "docker down: clean"
