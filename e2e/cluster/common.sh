# shellcheck shell=bash
# Settings shared by up, down and env. Everything the cluster creates lives in
# the paths and names below, so `down` knows exactly what to remove.
# shellcheck disable=SC2034 # sourced by the other scripts
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/versions.sh
. "$here/versions.sh"

CACHE=${IMPRINT_E2E_CACHE:-/var/cache/imprint/e2e}
STATE=${IMPRINT_E2E_STATE:-/var/lib/imprint-e2e}   # data, certificates, logs
RUN=${IMPRINT_E2E_RUN:-/run/imprint-e2e}           # sockets, runtime state, pid files
PIDS=$RUN/pids

K8S_BIN=$CACHE/kubernetes-$KUBERNETES_VERSION/bin
ETCD_BIN=$CACHE/etcd-$ETCD_VERSION/bin
CONTAINERD_BIN=$CACHE/containerd-$CONTAINERD_VERSION/bin
RUNC_BIN=$CACHE/runc-$RUNC_VERSION/bin
CNI_BIN=$CACHE/cni-plugins-$CNI_PLUGINS_VERSION/bin
HELM_BIN=$CACHE/helm-$HELM_VERSION/bin
KUBE_ROUTER_BIN=$CACHE/kube-router-$KUBE_ROUTER_VERSION/bin
COREDNS_BIN=$CACHE/coredns-$COREDNS_VERSION/bin
CRICTL_BIN=$CACHE/cri-tools-$CRI_TOOLS_VERSION/bin

NODE_NAME=imprint-e2e
BRIDGE=imprint-e2e0
# The node's address and the pod gateway both sit on the bridge this cluster
# creates; pods and services use ranges of their own.
NODE_IP=10.243.0.1
NODE_PREFIX=24
POD_CIDR=10.244.0.0/16
NODE_POD_CIDR=10.244.0.0/24
POD_GATEWAY=10.244.0.1
SERVICE_CIDR=10.96.0.0/16
KUBERNETES_SERVICE_IP=10.96.0.1
CLUSTER_DNS_IP=10.96.0.10                # the kube-dns Service (CoreDNS)
API_PORT=6443
API_SERVER=https://$NODE_IP:$API_PORT
CGROUP_ROOT=imprint-e2e                  # kubelet cgroupRoot (/imprint-e2e)
NFT_TABLE=imprint_e2e                    # inet table: nothing is forwarded out of the bridge
# Each node's containerd socket is $SOCKETS/<node name>.sock: one directory
# that a DaemonSet mounts, and each agent picks its node's socket by name.
SOCKETS=$RUN/sockets
CONTAINERD_SOCK=$SOCKETS/$NODE_NAME.sock
CONTAINERD_CONFIG=$STATE/config/containerd.toml
KUBECONFIG_ADMIN=$STATE/kubeconfig
# The bridge's own addresses, and the CNI network that attaches pods to it
# (up_host): its name, the pods' subnet and gateway, portmap or not.
BRIDGE_ADDRESSES=("$NODE_IP/$NODE_PREFIX" "$POD_GATEWAY/${NODE_POD_CIDR#*/}")
CNI_NETWORK=imprint-e2e
CNI_SUBNET=$NODE_POD_CIDR
CNI_GATEWAY=$POD_GATEWAY
CNI_PORTMAP=1
# The second node (node2.sh): its own kubelet and containerd (root, state,
# socket, CNI network), bridge and pod subnet, routed to the first by the
# host; its pods in a cgroup root below the first node's. Tainted, so only
# pods that tolerate $NODE2_TAINT (and DaemonSets that tolerate everything)
# run there: the single-node suites keep their pods on the first node.
NODE2_NAME=imprint-e2e-2
NODE2_STATE=$STATE/$NODE2_NAME
NODE2_RUN=$RUN/$NODE2_NAME
BRIDGE2=imprint-e2e1
NODE2_IP=10.243.1.1
NODE2_POD_CIDR=10.244.1.0/24
POD2_GATEWAY=10.244.1.1
CONTAINERD2_SOCK=$SOCKETS/$NODE2_NAME.sock
CGROUP_ROOT2=$CGROUP_ROOT/$NODE2_NAME
NODE2_TAINT=imprint-e2e/second-node
# Where a failed up copies the logs before it tears down.
FAILED_LOGS=${IMPRINT_E2E_FAILED_LOGS:-/tmp/imprint-e2e-failed-logs}

# nftables tables created by kube-proxy (nftables mode), the CNI plugins and
# iptables (nft backend): kube-router's firewall, the kubelet's canary chains.
NFT_TABLES=("ip kube-proxy" "ip6 kube-proxy" "inet cni_plugins_masquerade" "ip cni_plugins_masquerade"
  "inet cni_hostport" "ip cni_hostport" "ip6 cni_hostport"
  "ip filter" "ip6 filter" "ip nat" "ip6 nat" "ip mangle" "ip6 mangle")
# Sysctls the kubelet, kube-proxy or the bridge plugin may set; up saves them, down restores them.
SYSCTLS=(net.ipv4.ip_forward net.ipv6.conf.all.forwarding net.bridge.bridge-nf-call-iptables
  net.bridge.bridge-nf-call-ip6tables vm.overcommit_memory vm.panic_on_oom kernel.panic
  kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes
  net.ipv4.conf.all.route_localnet net.netfilter.nf_conntrack_max
  net.netfilter.nf_conntrack_tcp_timeout_established net.netfilter.nf_conntrack_tcp_timeout_close_wait)
# Host paths components may create on their own (shim sockets, CNI caches,
# container log links); down removes those that did not exist before up.
HOST_PATHS=(/run/containerd /var/lib/cni /var/log/containers /var/log/pods /run/netns /var/run/netns
  /etc/cni /opt/cni /var/lib/kubelet /etc/kubernetes /run/nri /var/run/nri /opt/containerd
  /var/lib/containerd /run/runc /var/lib/dockershim /run/flannel /etc/containerd /run/xtables.lock)

# The v1 hierarchies (and the v2 one) in which the cluster's cgroups live.
cgroup_dirs() {
  local m
  for m in /sys/fs/cgroup/*; do
    [[ -d $m/$CGROUP_ROOT ]] && echo "$m/$CGROUP_ROOT"
  done
  [[ -d /sys/fs/cgroup/$CGROUP_ROOT ]] && [[ $(stat -f -c %T /sys/fs/cgroup) == cgroup2fs ]] && echo "/sys/fs/cgroup/$CGROUP_ROOT"
  return 0
}

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# as_root: up and down run as root, with the system's directories on PATH.
as_root() {
  [[ $(id -u) == 0 ]] || die "run as root"
  export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
}

# containerd_config STATE RUN SOCKET: containerd's configuration (CRI,
# runc, CNI) for its data in STATE, its runtime state in RUN, its SOCKET and
# $PAUSE_IMAGE; shared by the cluster's nodes and the runtime suite
# (e2e/runtime), each with its own paths.
containerd_config() {
  local state=$1 run=$2 sock=$3
  cat <<TOML
version = 3
root = '$state/containerd/root'
state = '$run/containerd/state'
disabled_plugins = ['io.containerd.internal.v1.opt', 'io.containerd.nri.v1.nri',
  'io.containerd.snapshotter.v1.btrfs', 'io.containerd.snapshotter.v1.zfs',
  'io.containerd.snapshotter.v1.devmapper', 'io.containerd.snapshotter.v1.blockfile',
  'io.containerd.snapshotter.v1.erofs', 'io.containerd.differ.v1.erofs']

[grpc]
  address = '$sock'
[ttrpc]
  address = '$sock.ttrpc'

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = '$PAUSE_IMAGE'
  [plugins.'io.containerd.cri.v1.runtime']
    # Needed where root lacks CAP_SYS_RESOURCE: runc must not lower oom_score_adj.
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = '$RUNC_BIN/runc'
          Root = '$run/runc'
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['$CNI_BIN']
      conf_dir = '$state/cni/net.d'
      max_conf_num = 1
  [plugins.'io.containerd.grpc.v1.cri']
    disable_tcp_service = true
    stream_server_address = '127.0.0.1'
    stream_server_port = '0'
TOML
}

# restore_sysctls: the sysctls up saved ($RUN/snapshot/sysctl), back.
restore_sysctls() {
  [[ -f $RUN/snapshot/sysctl ]] || return 0
  local k v
  while IFS='=' read -r k v; do
    [[ $(sysctl -n "$k" 2>/dev/null) == "$v" ]] || sysctl -q -w "$k=$v" > /dev/null 2>&1 || log "could not restore $k"
  done < "$RUN/snapshot/sysctl"
}

# remove_created_host_paths: the HOST_PATHS that did not exist before up
# ($RUN/snapshot/paths), unless something is mounted below them.
remove_created_host_paths() {
  [[ -f $RUN/snapshot/paths ]] || return 0
  local p
  for p in "${HOST_PATHS[@]}"; do
    if [[ -e $p || -L $p ]] && ! grep -qx "$p" "$RUN/snapshot/paths"; then
      if findmnt -rn -o TARGET | grep -qE "^$p(/|$)"; then log "not removing $p: mounts below"; else rm -rf --one-file-system "$p"; fi
    fi
  done
}

# remove_own_dirs: $STATE and $RUN, unless something is still mounted below.
remove_own_dirs() {
  local d
  for d in "$STATE" "$RUN"; do
    [[ -e $d ]] || continue
    if findmnt -rn -o TARGET | grep -qE "^$d(/|$)"; then log "not removing $d: still mounted below"; else rm -rf --one-file-system "$d"; fi
  done
}

# snapshot_host_state: the SYSCTLS' values, which HOST_PATHS exist and the
# nftables tables, for down (restore_sysctls, remove_created_host_paths; the
# cluster's down deletes only the NFT_TABLES that were not there).
snapshot_host_state() {
  local s v p
  for s in "${SYSCTLS[@]}"; do
    v=$(sysctl -n "$s" 2>/dev/null) && printf '%s=%s\n' "$s" "$v"
  done > "$RUN/snapshot/sysctl"
  for p in "${HOST_PATHS[@]}"; do [[ -e $p || -L $p ]] && echo "$p"; done > "$RUN/snapshot/paths" || true
  nft list tables > "$RUN/snapshot/nft-tables" 2>/dev/null || true
}

# make_own_cgroups [PATH]: PATH (default $CGROUP_ROOT; its parent must
# exist) in every mounted hierarchy (cpuset ones get their parent's CPUs and
# memory nodes).
make_own_cgroups() {
  local m path=${1:-$CGROUP_ROOT} parent
  for m in /sys/fs/cgroup/*; do
    [[ -d $m ]] || continue
    [[ $(stat -f -c %T "$m") == cgroup* ]] || continue
    mkdir -p "$m/$path"
    parent=$(dirname "$m/$path")
    if [[ -f $parent/cpuset.cpus && -f $m/$path/cpuset.cpus ]]; then
      cat "$parent/cpuset.cpus" > "$m/$path/cpuset.cpus"
      cat "$parent/cpuset.mems" > "$m/$path/cpuset.mems"
    fi
  done
  return 0
}

# unmount_below_own_dirs: every mount below $STATE and $RUN, deepest first.
unmount_below_own_dirs() {
  local round m mounts
  for ((round = 0; round < 5; round++)); do
    mapfile -t mounts < <(findmnt -rn -o TARGET | grep -E "^($STATE|$RUN)(/|$)" | awk '{print length, $0}' | sort -rn | cut -d' ' -f2-)
    [[ ${#mounts[@]} -gt 0 ]] || break
    for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
  done
  return 0
}

# kill_in_own_cgroups: SIGKILL to whatever runs in the cgroups below
# $CGROUP_ROOT, again until they are empty (at most 20 rounds).
kill_in_own_cgroups() {
  local round left d pid
  for ((round = 0; round < 20; round++)); do
    left=0
    while read -r d; do
      while read -r pid; do
        [[ -n $pid ]] || continue
        left=1; kill -KILL "$pid" 2>/dev/null
      done < <(find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null)
    done < <(cgroup_dirs)
    (( left )) || break
    sleep 0.3
  done
  return 0
}

# remove_own_cgroups: the cgroups below $CGROUP_ROOT, deepest first.
remove_own_cgroups() {
  local d
  while read -r d; do
    find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
    [[ -d $d ]] && log "cgroup $d still busy"
  done < <(cgroup_dirs)
  return 0
}


# --- up ---------------------------------------------------------------------------
# The core that the cluster's and the runtime suite's up.sh share, each with
# the names of its own common.sh.

# teardown_on_failure DOWN: from now on, if up fails, copy $STATE/logs to
# $FAILED_LOGS and run DOWN (its down.sh): nothing half-started is left.
# --- a dockerd of a suite's own (the Docker and kind suites) -----------------
DOCKERD=/usr/sbin/dockerd           # Debian's docker.io
DOCKER=/usr/bin/docker
# run_dockerd SOCK ARGS...: the suite's dockerd in its own session, with its
# data root $STATE/data, exec root $RUN/exec, pid file $RUN/dockerd.pid,
# socket SOCK and containers under /$CGROUP_ROOT (cgroupfs), logging to
# $STATE/logs/dockerd.log, with ARGS besides; waits until it answers.
run_dockerd() {
  local sock=$1 i pid; shift
  mkdir -p "$RUN" "$STATE/data" "$STATE/logs"
  setsid "$DOCKERD" --data-root "$STATE/data" --exec-root "$RUN/exec" --pidfile "$RUN/dockerd.pid" \
    -H "unix://$sock" --cgroup-parent "/$CGROUP_ROOT" --exec-opt native.cgroupdriver=cgroupfs "$@" \
    >> "$STATE/logs/dockerd.log" 2>&1 < /dev/null &
  pid=$!
  echo "$pid" > "$RUN/dockerd.started"
  for ((i = 0; i < 120; i++)); do
    "$DOCKER" -H "unix://$sock" version > /dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || [[ -s $RUN/dockerd.pid ]] || { tail -20 "$STATE/logs/dockerd.log" >&2; return 1; }
    sleep 0.5
  done
  return 1
}

# end_dockerd: SIGTERM to the suite's dockerd (its pid file, else the PID
# run_dockerd recorded), SIGKILL after 20 s.
end_dockerd() {
  local pid i
  pid=$(cat "$RUN/dockerd.pid" 2>/dev/null || cat "$RUN/dockerd.started" 2>/dev/null)
  [[ -n $pid && $(readlink "/proc/$pid/exe" 2>/dev/null) == "$DOCKERD" ]] || return 0
  kill -TERM "$pid"
  for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  log "dockerd did not stop: SIGKILL"; kill -KILL "$pid"
}

# remove_daemon_leftovers NAME BRIDGE NFT_TABLE: after a suite's daemon
# (dockerd) stopped, removes its bridge (should it have died first) and fence
# table, kills whatever still runs in the suite's cgroups or names a path
# below $RUN (its containerd and shims), unmounts below and removes $STATE
# and $RUN and the cgroups; then says what is left, if anything (status 1),
# or "NAME down: clean".
remove_daemon_leftovers() {
  local name=$1 bridge=$2 table=$3 p leftover=0
  ip link show "$bridge" > /dev/null 2>&1 && ip link del "$bridge"
  nft delete table inet "$table" 2> /dev/null
  kill_in_own_cgroups
  for p in /proc/[0-9]*; do
    tr '\0' ' ' 2>/dev/null < "$p/cmdline" | grep -q -- "$RUN/" || continue
    kill -KILL "${p#/proc/}" 2>/dev/null
  done
  sleep 0.3
  unmount_below_own_dirs
  remove_own_cgroups
  remove_own_dirs
  [[ -z $(cgroup_dirs) ]] || { log "left: cgroups $(cgroup_dirs | tr '\n' ' ')"; leftover=1; }
  [[ ! -e $STATE && ! -e $RUN ]] || { log "left: $STATE or $RUN"; leftover=1; }
  ip link show "$bridge" > /dev/null 2>&1 && { log "left: bridge $bridge"; leftover=1; }
  nft list table inet "$table" > /dev/null 2>&1 && { log "left: nftables table $table"; leftover=1; }
  for p in /proc/[0-9]*; do
    tr '\0' ' ' 2>/dev/null < "$p/cmdline" | grep -q -- "$RUN/" && { log "left: process ${p#/proc/}"; leftover=1; }
  done
  (( leftover == 0 )) || return 1
  log "$name down: clean"
}

teardown_on_failure() {
  UP_DOWN=$1
  trap up_failed EXIT
}
up_failed() {
  local rc=$?
  [[ $rc == 0 ]] && return 0
  log "up failed (exit $rc); logs copied to $FAILED_LOGS; tearing down"
  rm -rf "$FAILED_LOGS"; cp -r "$STATE/logs" "$FAILED_LOGS" 2>/dev/null || true
  "$UP_DOWN" || true
}

# base_images prune|keep: the busybox, pause and apiclient images
# (e2e/images/build.sh) in $CACHE/images-KEY, KEY from busybox-static's
# version and the images' sources: built when missing (prune: other keys'
# builds removed first; keep: left). Sets $images and sources its images.env.
base_images() {
  local key
  mkdir -p "$CACHE"
  key=$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null | tr ':~+' '___')-$(cat "$here"/../images/*.sh \
    "$here"/../images/*.c "$here"/../images/kube-api-get/* | sha256sum | cut -c1-12)
  images=$CACHE/images-$key
  if [[ ! -f $images/images.env ]]; then
    [[ $1 != prune ]] || find "$CACHE" -maxdepth 1 -name 'images-*' -exec rm -rf {} +
    "$here/../images/build.sh" "$images"
  fi
  # shellcheck disable=SC1091
  . "$images/images.env"
}

# up_host SUBDIR...: the host side of up, before containerd starts: $RUN,
# $PIDS and $STATE (logs, config, pod-logs, the CNI's directories and
# SUBDIR...); the snapshot of host state for down; the bridge $BRIDGE with
# $BRIDGE_ADDRESSES and the nftables table inet $NFT_TABLE, which drops
# anything forwarded out of it; cgroups of our own in every hierarchy;
# containerd's configuration ($CONTAINERD_CONFIG) and the CNI network
# $CNI_NETWORK on the bridge.
up_host() {
  local d
  mkdir -p "$RUN" "$PIDS" "$RUN/snapshot"
  for d in logs config pod-logs cni/net.d cni/ipam "$@"; do mkdir -p "$STATE/$d"; done

  # Host state that the components may change.
  snapshot_host_state

  # Network: the bridge, its addresses, a fence. Pods may talk to each other
  # and to the host (and, in the cluster, to services); nothing they send is
  # forwarded anywhere else.
  ip link add "$BRIDGE" type bridge
  echo "$BRIDGE" > "$RUN/snapshot/bridge"
  for d in "${BRIDGE_ADDRESSES[@]}"; do ip addr add "$d" dev "$BRIDGE"; done
  ip link set "$BRIDGE" up
  nft -f - <<NFT
table inet $NFT_TABLE {
  chain forward {
    type filter hook forward priority -10; policy accept;
    iifname "$BRIDGE" oifname != "$BRIDGE" drop
  }
}
NFT

  make_own_cgroups "$CGROUP_ROOT"

  containerd_config "$STATE" "$RUN" "$CONTAINERD_SOCK" > "$CONTAINERD_CONFIG"

  cni_network "$STATE/cni" "$BRIDGE" "$CNI_SUBNET" "$CNI_GATEWAY"
}

# cni_network DIR BRIDGE SUBNET GATEWAY: the CNI network $CNI_NETWORK
# attaching pods to BRIDGE (SUBNET, GATEWAY; portmap if $CNI_PORTMAP) in
# DIR/net.d, its leases in DIR/ipam. The bridge and its addresses belong to
# up, so the bridge plugin only attaches pods (isGateway: false) and IPAM
# hands out the gateway route.
cni_network() {
  local dir=$1 bridge=$2 subnet=$3 gateway=$4 portmap=''
  mkdir -p "$dir/net.d" "$dir/ipam"
  [[ -z $CNI_PORTMAP ]] || portmap=',
    {"type": "portmap", "backend": "nftables", "capabilities": {"portMappings": true}}'
  cat > "$dir/net.d/10-$CNI_NETWORK.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "$CNI_NETWORK",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$bridge",
      "isGateway": false,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$dir/ipam",
        "ranges": [[{"subnet": "$subnet", "gateway": "$gateway"}]],
        "routes": [{"dst": "0.0.0.0/0", "gw": "$gateway"}]
      }
    }$portmap
  ]
}
JSON
}

# kubelet_config CGROUP_ROOT SOCKET ADDRESS HEALTHZ_ADDRESS CERT POD_LOGS MAX_PODS [TAINT]:
# a node's kubelet configuration: its cgroup root, runtime socket, serving
# address (HEALTHZ_ADDRESS for its health port), serving certificate
# $STATE/pki/CERT.{crt,key}, pod log directory, pod limit, and a NoSchedule
# taint TAINT=true at registration.
kubelet_config() {
  local pki=$STATE/pki taints=''
  [[ -z ${8:-} ]] || taints="registerWithTaints: [{key: $8, value: \"true\", effect: NoSchedule}]"
  cat <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# cgroup v1 (and v1-hybrid) hosts: Kubernetes >= 1.35 refuses them unless told.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: $1
cgroupsPerQOS: true
enforceNodeAllocatable: [pods]
containerRuntimeEndpoint: unix://$2
address: $3
port: 10250
readOnlyPort: 0
healthzBindAddress: $4
healthzPort: 10248
tlsCertFile: $pki/$5.crt
tlsPrivateKeyFile: $pki/$5.key
rotateCertificates: false
serverTLSBootstrap: false
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization:
  mode: Webhook
clusterDomain: cluster.local
# CoreDNS (addons.sh); no host resolv.conf: pods resolve nothing outside.
clusterDNS: [$CLUSTER_DNS_IP]
resolvConf: ""
podLogsDir: $6
failSwapOn: false
# Room for the suites' crowds (the first node: 100 pods at once) beside
# everything else.
maxPods: $7
$taints
# Thresholds low enough that a busy build machine does not evict test pods:
# absolute sizes, since a share of a large, thinly provisioned disk (2% of
# 250 GB) can be more than the room a build machine really has left.
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1Gi
  imagefs.available: 1Gi
  nodefs.inodesFree: 2%
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
YAML
}

# import_images TAR...: OCI image tarballs into the CRI namespace of the
# containerd at $CONTAINERD_SOCK.
import_images() {
  local tar out
  for tar in "$@"; do
    # (ctr's cgroup v1 deprecation notice is only shown when the import fails)
    out=$("$CONTAINERD_BIN/ctr" --address "$CONTAINERD_SOCK" -n k8s.io images import --platform linux/amd64 "$tar" 2>&1) ||
      die "importing $tar: $out"
  done
}
