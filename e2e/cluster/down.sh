#!/usr/bin/env bash
# Tear the e2e cluster down and remove everything up.sh added: processes (by
# the PIDs up.sh recorded, then any container shim or container process left
# in the cluster's own cgroups), mounts under the cluster's state
# directories, its cgroups, network namespaces, bridge, nftables tables,
# the sysctls it changed (restored) and its state directories. Safe to run
# more than once and after a failed up. Exits non-zero if anything is left.
#
# Usage: e2e/cluster/down.sh          (as root)
set -uo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
as_root
# The nftables tables there before up (the snapshot goes with $RUN).
tables_before=$(cat "$RUN/snapshot/nft-tables" 2>/dev/null)

# is_ours PID: the process runs one of the binaries built for this cluster.
is_ours() {
  local exe
  exe=$(readlink "/proc/$1/exe" 2>/dev/null) || return 1
  [[ $exe == "$CACHE"/* ]]
}
# stop_pid NAME: SIGTERM the recorded process, SIGKILL after a grace period.
stop_pid() {
  local name=$1 f=$PIDS/$1.pid pid i
  [[ -f $f ]] || return 0
  pid=$(cat "$f")
  if [[ -n $pid ]] && is_ours "$pid"; then
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 100; i++)); do is_ours "$pid" || break; sleep 0.1; done
    if is_ours "$pid"; then log "$name ($pid) did not stop: SIGKILL"; kill -KILL "$pid" 2>/dev/null; sleep 0.2; fi
    log "stopped $name ($pid)"
  fi
  rm -f "$f"
}

# 1. The kubelets first, so they restart nothing; then every pod container
#    of either node's containerd.
stop_pid kubelet
stop_pid kubelet-2
for node in containerd:"$CONTAINERD_SOCK" containerd-2:"$CONTAINERD2_SOCK"; do
  name=${node%%:*} sock=${node#*:}
  if ! [[ -S $sock && -f $PIDS/$name.pid ]] || ! is_ours "$(cat "$PIDS/$name.pid")"; then continue; fi
  ctr=("$CONTAINERD_BIN/ctr" --address "$sock" -n k8s.io)
  for id in $(timeout 20 "${ctr[@]}" tasks ls -q 2>/dev/null); do
    timeout 20 "${ctr[@]}" tasks kill -s SIGKILL "$id" > /dev/null 2>&1
  done
  for id in $(timeout 20 "${ctr[@]}" tasks ls -q 2>/dev/null); do
    timeout 20 "${ctr[@]}" tasks delete -f "$id" > /dev/null 2>&1
  done
  for id in $(timeout 20 "${ctr[@]}" containers ls -q 2>/dev/null); do
    timeout 20 "${ctr[@]}" containers delete "$id" > /dev/null 2>&1
  done
done

# 2. The other components, in reverse start order.
for name in kube-router kube-proxy kube-scheduler kube-controller-manager containerd-2 containerd kube-apiserver etcd; do
  stop_pid "$name"
done

# 3. Container shims started by this cluster's containerds, found by their
#    binary and sockets, and whatever still runs in the cluster's cgroups.
shim=$CONTAINERD_BIN/containerd-shim-runc-v2
for p in /proc/[0-9]*; do
  pid=${p#/proc/}
  [[ $(readlink "$p/exe" 2>/dev/null) == "$shim" ]] || continue
  tr '\0' ' ' 2>/dev/null < "$p/cmdline" | grep -q -- "$SOCKETS/" || continue
  log "killing container shim $pid"; kill -KILL "$pid" 2>/dev/null
done
kill_in_own_cgroups

# 4. Mounts under the cluster's directories (pod volumes, rootfs overlays,
#    shm, network namespaces, the kubelet's rshared bind), deepest first.
unmount_below_own_dirs

# 5. Cgroups of our own, deepest first.
remove_own_cgroups

# remove_iptables_leftovers: kube-router's rules and ipsets (its own
# --cleanup-config fails in v2.1.0) and the kubelet's chains (canaries, its
# localnet firewall). The tables iptables made for them go with NFT_TABLES;
# in a table that was there before up, only the jumps to these chains and
# the chains go.
remove_iptables_leftovers() {
  local chain set table cmd ours='^KUBE-(ROUTER|POD-FW|NWPLCY|KUBELET-CANARY|IPTABLES-HINT|FIREWALL)'
  command -v iptables > /dev/null || return 0
  for table in filter nat mangle; do
    for cmd in iptables ip6tables; do
      local family=ip; [[ $cmd == ip6tables ]] && family=ip6
      grep -qx "table $family $table" "$RUN/snapshot/nft-tables" 2>/dev/null || continue
      nft list table "$family" "$table" > /dev/null 2>&1 || continue
      for chain in INPUT FORWARD OUTPUT PREROUTING POSTROUTING; do
        while "$cmd" -t "$table" -S "$chain" 2>/dev/null | grep -qE -- "-j ${ours#^}"; do
          "$cmd" -t "$table" -S "$chain" | grep -E -- "-j ${ours#^}" | head -1 | sed 's/^-A/-D/' |
            xargs "$cmd" -t "$table" || break
        done
      done
      for chain in $("$cmd" -t "$table" -S 2>/dev/null | awk -v re="$ours" '$1 == "-N" && $2 ~ re { print $2 }'); do
        "$cmd" -t "$table" -F "$chain" 2>/dev/null
      done
      for chain in $("$cmd" -t "$table" -S 2>/dev/null | awk -v re="$ours" '$1 == "-N" && $2 ~ re { print $2 }'); do
        "$cmd" -t "$table" -X "$chain" 2>/dev/null
      done
    done
  done
  command -v ipset > /dev/null || return 0
  for set in $(ipset list -n 2>/dev/null | grep -E '^KUBE-(SRC|DST)-'); do
    ipset destroy "$set" 2>/dev/null || log "ipset $set still in use"
  done
}

# 6. Network: bridge, fence, kube-proxy and CNI tables.
for b in "$BRIDGE" "$BRIDGE2"; do ip link show "$b" > /dev/null 2>&1 && ip link del "$b"; done
nft list table inet "$NFT_TABLE" > /dev/null 2>&1 && nft delete table inet "$NFT_TABLE"
for t in "${NFT_TABLES[@]}"; do
  if nft list table "$t" > /dev/null 2>&1 && ! grep -qx "table $t" "$RUN/snapshot/nft-tables" 2>/dev/null; then
    # shellcheck disable=SC2086 # "family name"
    nft delete table $t
  fi
done

# kube-router's firewall and the kubelet's canaries in tables that were
# there before up (the others went with NFT_TABLES), and kube-router's ipsets.
remove_iptables_leftovers

# 7. Sysctls back to what they were before up.
restore_sysctls

# 8. Host paths created during the run, then the cluster's own directories.
remove_created_host_paths
remove_own_dirs

# 9. Check that nothing is left.
leftover=0
for p in /proc/[0-9]*; do
  if is_ours "${p#/proc/}"; then log "left: process ${p#/proc/} ($(readlink "$p/exe"))"; leftover=1; fi
done
if findmnt -rn -o TARGET | grep -qE "^($STATE|$RUN)(/|$)"; then log "left: mounts"; leftover=1; fi
if [[ -n $(cgroup_dirs) ]]; then log "left: cgroups $(cgroup_dirs | tr '\n' ' ')"; leftover=1; fi
for b in "$BRIDGE" "$BRIDGE2"; do
  if ip link show "$b" > /dev/null 2>&1; then log "left: bridge $b"; leftover=1; fi
done
if [[ -e $STATE || -e $RUN ]]; then log "left: $STATE or $RUN"; leftover=1; fi
for t in "inet $NFT_TABLE" "${NFT_TABLES[@]}"; do
  grep -qx "table $t" <<< "$tables_before" && continue
  # shellcheck disable=SC2086
  if nft list table $t > /dev/null 2>&1; then log "left: nftables table $t"; leftover=1; fi
done
if command -v ipset > /dev/null && ipset list -n 2>/dev/null | grep -qE '^KUBE-(SRC|DST)-'; then
  log "left: kube-router's ipsets"; leftover=1
fi
if (( leftover )); then log "down: something was left behind"; exit 1; fi
log "down: clean"
