#!/usr/bin/env bash
# Show the running e2e cluster: its processes (from the pid files, plus the
# container shims) with their resident memory, the memory of the pods'
# cgroup, the node and the pods.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[[ -d $PIDS ]] || die "no running cluster"
total=0
printf '%-28s %8s %10s\n' process pid rss-MiB
for p in /proc/[0-9]*; do
  exe=$(readlink "$p/exe" 2>/dev/null) || continue
  [[ $exe == "$CACHE"/* ]] || continue
  rss=$(awk '/^VmRSS/ {print $2}' "$p/status" 2>/dev/null) || continue
  [[ -n $rss ]] || continue
  printf '%-28s %8s %10s\n' "${exe##*/}" "${p#/proc/}" $((rss / 1024))
  total=$((total + rss))
done
printf '%-28s %8s %10s\n' "components + shims" "" $((total / 1024))
pods_mem=/sys/fs/cgroup/memory/$CGROUP_ROOT/memory.usage_in_bytes
[[ -f $pods_mem ]] || pods_mem=/sys/fs/cgroup/$CGROUP_ROOT/memory.current
[[ -f $pods_mem ]] && printf '%-28s %8s %10s\n' "pods (cgroup /$CGROUP_ROOT)" "" $(($(cat "$pods_mem") / 1048576))
"$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" get nodes,pods -A -o wide
