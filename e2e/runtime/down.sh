#!/usr/bin/env bash
# Stop the runtime of up.sh and remove all it added: pods (through CRI, which
# also releases their network), containerd (by its recorded PID), the shims of
# this containerd (found by binary and socket), whatever still runs in the
# runtime's cgroups, mounts under its state directories, its cgroups, bridge,
# nftables table, the sysctls and host paths it changed, its state. Leaves the
# e2e cluster's processes and shared host paths alone when that cluster runs.
# Safe to run more than once and after a failed up. Exits non-zero if
# anything is left.
# Usage: e2e/runtime/down.sh     (as root)
set -uo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
as_root
shim=$CONTAINERD_BIN/containerd-shim-runc-v2

# our_shims: PIDs of container shims started by this runtime's containerd.
our_shims() {
  local p
  for p in /proc/[0-9]*; do
    [[ $(readlink "$p/exe" 2>/dev/null) == "$shim" ]] || continue
    tr '\0' ' ' 2>/dev/null < "$p/cmdline" | grep -q -- "$CONTAINERD_SOCK" && echo "${p#/proc/}"
  done
  return 0
}
# cgroup_procs: PIDs in the runtime's cgroups, every hierarchy.
cgroup_procs() {
  local d
  while read -r d; do find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null; done < <(cgroup_dirs)
}

# 1. Pods through CRI: containers stopped and removed, sandboxes' networks
#    released by the CNI plugins.
if containerd_pid > /dev/null && [[ -S $CONTAINERD_SOCK ]]; then
  timeout 60 "$CRICTL_BIN/crictl" --config "$CRICTL_CONFIG" rmp -af > /dev/null 2>&1 || log "crictl rmp -af failed"
  for id in $(timeout 20 "$CONTAINERD_BIN/ctr" --address "$CONTAINERD_SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
    timeout 20 "$CONTAINERD_BIN/ctr" --address "$CONTAINERD_SOCK" -n k8s.io tasks kill -s SIGKILL "$id" > /dev/null 2>&1
    timeout 20 "$CONTAINERD_BIN/ctr" --address "$CONTAINERD_SOCK" -n k8s.io tasks delete -f "$id" > /dev/null 2>&1
  done
fi

# 2. containerd, by its PID.
if pid=$(containerd_pid); then
  stop_containerd TERM
  log "stopped containerd ($pid)"
fi
rm -f "$PIDS/containerd.pid"

# 3. Shims of this containerd and anything left in our cgroups.
for pid in $(our_shims); do log "killing container shim $pid"; kill -KILL "$pid" 2>/dev/null; done
for ((round = 0; round < 20; round++)); do
  mapfile -t procs < <(cgroup_procs)
  [[ ${#procs[@]} -gt 0 ]] || break
  for pid in "${procs[@]}"; do [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null; done
  sleep 0.3
done

# 4. Mounts under the runtime's directories (rootfs overlays, shm, network
#    namespaces), deepest first.
unmount_below_own_dirs

# 5. Cgroups of our own, deepest first.
remove_own_cgroups

# 6. Network: the bridge (pods' veths went with their namespaces) and the fence.
ip link show "$BRIDGE" > /dev/null 2>&1 && ip link del "$BRIDGE"
nft list table inet "$NFT_TABLE" > /dev/null 2>&1 && nft delete table inet "$NFT_TABLE"

# 7. Sysctls and host paths the run changed or created, unless the e2e
#    cluster runs (they may be its own now).
if [[ -e $CLUSTER_RUN ]]; then
  log "the e2e cluster runs ($CLUSTER_RUN): its sysctls and shared host paths are left to its down.sh"
else
  restore_sysctls
  remove_created_host_paths
fi
remove_own_dirs

# 8. Check that nothing is left.
leftover=0
for pid in $(our_shims); do log "left: shim $pid"; leftover=1; done
for p in /proc/[0-9]*; do
  [[ $(readlink "$p/exe" 2>/dev/null) == "$CONTAINERD_BIN/containerd" ]] || continue
  if tr '\0' ' ' 2>/dev/null < "$p/cmdline" | grep -q -- "$CONTAINERD_CONFIG"; then
    log "left: containerd ${p#/proc/}"; leftover=1
  fi
done
if [[ -n $(cgroup_procs) ]]; then log "left: processes in the runtime's cgroups"; leftover=1; fi
if findmnt -rn -o TARGET | grep -qE "^($STATE|$RUN)(/|$)"; then log "left: mounts"; leftover=1; fi
if [[ -n $(cgroup_dirs) ]]; then log "left: cgroups $(cgroup_dirs | tr '\n' ' ')"; leftover=1; fi
if ip link show "$BRIDGE" > /dev/null 2>&1; then log "left: bridge $BRIDGE"; leftover=1; fi
if nft list table inet "$NFT_TABLE" > /dev/null 2>&1; then log "left: nftables table inet $NFT_TABLE"; leftover=1; fi
if [[ -e $STATE || -e $RUN ]]; then log "left: $STATE or $RUN"; leftover=1; fi
if (( leftover )); then log "down: something was left behind"; exit 1; fi
log "down: clean"
