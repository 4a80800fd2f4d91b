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
for ((round = 0; round < 20; round++)); do
  left=0
  while read -r d; do
    while read -r p; do [[ -n $p ]] && { left=1; kill -KILL "$p" 2>/dev/null; }; done < <(find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null)
  done < <(dk_cgroups)
  (( left )) || break
  sleep 0.3
done
# The containerd dockerd started, and its shims, by their sockets under $DK_RUN.
for p in /proc/[0-9]*; do
  tr '\0' ' ' < "$p/cmdline" 2>/dev/null | grep -q -- "$DK_RUN/" || continue
  kill -KILL "${p#/proc/}" 2>/dev/null
done
sleep 0.3
for ((round = 0; round < 5; round++)); do
  mapfile -t mounts < <(findmnt -rn -o TARGET | grep -E "^($DK_STATE|$DK_RUN)(/|$)" | awk '{print length, $0}' | sort -rn | cut -d' ' -f2-)
  [[ ${#mounts[@]} -gt 0 ]] || break
  for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
done
while read -r d; do find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null; done < <(dk_cgroups)
for d in "$DK_STATE" "$DK_RUN"; do
  [[ -e $d ]] || continue
  findmnt -rn -o TARGET | grep -qE "^$d(/|$)" || rm -rf --one-file-system "$d"
done
leftover=0
[[ -z $(dk_cgroups) ]] || { log "left: cgroups $(dk_cgroups | tr '\n' ' ')"; leftover=1; }
[[ ! -e $DK_STATE && ! -e $DK_RUN ]] || { log "left: $DK_STATE or $DK_RUN"; leftover=1; }
for p in /proc/[0-9]*; do
  tr '\0' ' ' < "$p/cmdline" 2>/dev/null | grep -q -- "$DK_RUN/" && { log "left: process ${p#/proc/}"; leftover=1; }
done
(( leftover == 0 )) || exit 1
log "docker down: clean"
