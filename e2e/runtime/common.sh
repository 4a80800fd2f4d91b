# shellcheck shell=bash
# Settings and helpers shared by the runtime suite's scripts (up, down, run).
# The runtime is containerd + runc + the CNI plugins built by
# e2e/cluster/build.sh, with everything of its own: root, state and socket,
# bridge and subnet, cgroup parent and nftables table, all different from the
# e2e cluster's, so both can run at the same time.
# shellcheck disable=SC2034 # sourced by the other scripts
rt_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The cluster's common.sh gives the versions, the cache, the binaries' paths,
# log, die and cgroup_dirs (which follows $CGROUP_ROOT); point its state
# directories at the runtime's own.
IMPRINT_E2E_STATE=${IMPRINT_RT_STATE:-/var/lib/imprint-runtime}
IMPRINT_E2E_RUN=${IMPRINT_RT_RUN:-/run/imprint-runtime}
# shellcheck source=SCRIPTDIR/../cluster/common.sh
. "$rt_here/../cluster/common.sh"
cluster_dir=$here                     # e2e/cluster (set by its common.sh)
CLUSTER_RUN=/run/imprint-e2e          # the e2e cluster's, to leave its shared host paths alone

BRIDGE=imprint-rt0
HOST_IP=10.245.0.1                    # the host's address on the bridge, the pods' gateway
SUBNET=10.245.0.0/24
CGROUP_ROOT=imprint-rt                # every pod's cgroup parent lives below /imprint-rt
NFT_TABLE=imprint_rt                  # inet table: nothing is forwarded out of the bridge
CONTAINERD_SOCK=$RUN/containerd/containerd.sock
CRICTL_CONFIG=$STATE/config/crictl.yaml
# The bridge's address and the CNI network on it (up_host; no portmap).
BRIDGE_ADDRESSES=("$HOST_IP/${SUBNET#*/}")
CNI_NETWORK=imprint-rt
CNI_SUBNET=$SUBNET
CNI_GATEWAY=$HOST_IP
CNI_PORTMAP=
FAILED_LOGS=${IMPRINT_RT_FAILED_LOGS:-/tmp/imprint-runtime-failed-logs}

# crictl ARGS...: the CRI client on this runtime's socket.
crictl() { "$CRICTL_BIN/crictl" --config "$CRICTL_CONFIG" "$@"; }
# ctr ARGS...: containerd's own client on this runtime's socket (CRI namespace).
ctr() { "$CONTAINERD_BIN/ctr" --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }

# The pid of the running containerd of this runtime, if any.
containerd_pid() {
  local pid
  pid=$(cat "$PIDS/containerd.pid" 2>/dev/null) || return 1
  [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == "$CONTAINERD_BIN/containerd" ]] || return 1
  echo "$pid"
}

# start_containerd: start containerd with this runtime's configuration, in
# its own session, logging to $STATE/logs/containerd.log; wait for its socket
# to answer.
start_containerd() {
  mkdir -p "$STATE/logs" "$PIDS"
  PATH=$CONTAINERD_BIN:$RUNC_BIN:$PATH setsid "$CONTAINERD_BIN/containerd" --config "$CONTAINERD_CONFIG" \
    >> "$STATE/logs/containerd.log" 2>&1 < /dev/null &
  echo $! > "$PIDS/containerd.pid"
  local i
  for ((i = 0; i < 120; i++)); do
    if [[ -S $CONTAINERD_SOCK ]] && crictl info > /dev/null 2>&1; then return 0; fi
    containerd_pid > /dev/null || die "containerd exited (see $STATE/logs/containerd.log)"
    sleep 0.25
  done
  die "containerd did not answer on $CONTAINERD_SOCK within 30 s"
}

# stop_containerd [SIGNAL]: stop it by PID (SIGTERM by default: it removes
# its socket; SIGKILL leaves the socket file behind, as a crash does).
# Container shims and containers keep running.
stop_containerd() {
  local sig=${1:-TERM} pid i
  pid=$(containerd_pid) || return 0
  kill "-$sig" "$pid"
  for ((i = 0; i < 100; i++)); do
    [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == "$CONTAINERD_BIN/containerd" ]] || break
    sleep 0.1
  done
  if [[ -e /proc/$pid ]] && [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == "$CONTAINERD_BIN/containerd" ]]; then
    kill -KILL "$pid"; sleep 0.2
  fi
  rm -f "$PIDS/containerd.pid"
}
