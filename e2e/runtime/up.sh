#!/usr/bin/env bash
# Start a real container runtime for the runtime suite: containerd 2 with its
# CRI plugin, runc and the CNI plugins bridge/host-local/loopback, built by
# e2e/cluster/build.sh (cached), plus crictl as the CRI client. Everything is
# its own (common.sh): root /var/lib/imprint-runtime, state and socket under
# /run/imprint-runtime, bridge imprint-rt0 with 10.245.0.0/24 (the host is
# 10.245.0.1), cgroups below /imprint-rt, nftables table inet imprint_rt that
# drops anything forwarded out of the bridge. Images (busybox, pause, nginx,
# redis) are built without a registry and imported.
#
# Idempotent: when the runtime is already up and answering, it says so and
# exits 0; leftovers of a broken run are removed first (down.sh).
# Usage: e2e/runtime/up.sh       (as root)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[[ $(id -u) == 0 ]] || die "run as root"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
t_start=$SECONDS

if [[ -f $STATE/up ]] && containerd_pid > /dev/null && crictl info > /dev/null 2>&1; then
  log "runtime already up (containerd $(containerd_pid), $CONTAINERD_SOCK)"
  exit 0
fi
if [[ -e $RUN || -e $STATE ]] || ip link show "$BRIDGE" > /dev/null 2>&1 || [[ -n $(cgroup_dirs) ]]; then
  log "leftovers of an earlier runtime: removing them first"
  "$rt_here/down.sh"
fi
on_exit() {
  local rc=$?
  [[ $rc == 0 ]] && return 0
  local keep=${IMPRINT_RT_FAILED_LOGS:-/tmp/imprint-runtime-failed-logs}
  log "up failed (exit $rc); logs copied to $keep; tearing down"
  rm -rf "$keep"; cp -r "$STATE/logs" "$keep" 2>/dev/null || true
  "$rt_here/down.sh" || true
}
trap on_exit EXIT

"$cluster_dir/build.sh" runc cni-plugins containerd cri-tools

# Images: busybox and pause exactly as the cluster builds them (same cache
# key, so both share one build), the servers keyed by their .deb versions.
images_key=$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null | tr ':~+' '___')-$(cat "$cluster_dir"/../images/*.sh \
  "$cluster_dir"/../images/*.c "$cluster_dir"/../images/kube-api-get/* | sha256sum | cut -c1-12)
images=$CACHE/images-$images_key
if [[ ! -f $images/images.env ]]; then
  "$cluster_dir/../images/build.sh" "$images"
fi
servers=$CACHE/servers-$("$cluster_dir/../images/servers.sh" --key)
if [[ ! -f $servers/servers.env ]]; then
  find "$CACHE" -maxdepth 1 -name 'servers-*' -exec rm -rf {} +
  "$cluster_dir/../images/servers.sh" "$servers"
fi
# shellcheck disable=SC1091
. "$images/images.env"
# shellcheck disable=SC1091
. "$servers/servers.env"

mkdir -p "$RUN" "$PIDS" "$RUN/snapshot" "$STATE"/{logs,config,pod-logs,cni/net.d,cni/ipam,profiles}

# --- snapshot of host state that the runtime may change ------------------------
snapshot_host_state

# --- network: bridge, host address, fence --------------------------------------
log "network: bridge $BRIDGE ($HOST_IP, pods $SUBNET)"
ip link add "$BRIDGE" type bridge
ip addr add "$HOST_IP/${SUBNET#*/}" dev "$BRIDGE"
ip link set "$BRIDGE" up
nft -f - <<NFT
table inet $NFT_TABLE {
  chain forward {
    type filter hook forward priority -10; policy accept;
    iifname "$BRIDGE" oifname != "$BRIDGE" drop
  }
}
NFT

# --- cgroups of our own in every hierarchy -------------------------------------
make_own_cgroups

# --- configuration -------------------------------------------------------------
containerd_config > "$CONTAINERD_CONFIG"

# The bridge and its address belong to this script: the bridge plugin only
# attaches pods, IPAM hands out the route through the host.
cat > "$STATE/cni/net.d/10-imprint-rt.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "imprint-rt",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": false,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$STATE/cni/ipam",
        "ranges": [[{"subnet": "$SUBNET", "gateway": "$HOST_IP"}]],
        "routes": [{"dst": "0.0.0.0/0", "gw": "$HOST_IP"}]
      }
    }
  ]
}
JSON

cat > "$CRICTL_CONFIG" <<YAML
runtime-endpoint: unix://$CONTAINERD_SOCK
image-endpoint: unix://$CONTAINERD_SOCK
timeout: 60
debug: false
pull-image-on-create: false
disable-pull-on-run: true
YAML

# --- containerd, images --------------------------------------------------------
log "starting containerd ($CONTAINERD_SOCK)"
start_containerd
log "importing images"
for tar in "$images/pause.tar" "$images/busybox.tar" "$servers/nginx.tar" "$servers/redis.tar"; do
  # (ctr's cgroup v1 deprecation notice is only shown when the import fails)
  out=$(ctr images import --platform linux/amd64 "$tar" 2>&1) || die "importing $tar: $out"
done

cat > "$STATE/env" <<ENV
IMPRINT_RT_SOCK=$CONTAINERD_SOCK
IMPRINT_RT_BUSYBOX_IMAGE=$BUSYBOX_IMAGE
IMPRINT_RT_PAUSE_IMAGE=$PAUSE_IMAGE
IMPRINT_RT_NGINX_IMAGE=$NGINX_IMAGE
IMPRINT_RT_REDIS_IMAGE=$REDIS_IMAGE
ENV
touch "$STATE/up"
trap - EXIT
log "runtime up in $((SECONDS - t_start))s: $CONTAINERD_SOCK (crictl: $CRICTL_BIN/crictl --config $CRICTL_CONFIG)"
