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
as_root
t_start=$SECONDS

if [[ -f $STATE/up ]] && containerd_pid > /dev/null && crictl info > /dev/null 2>&1; then
  log "runtime already up (containerd $(containerd_pid), $CONTAINERD_SOCK)"
  exit 0
fi
if [[ -e $RUN || -e $STATE ]] || ip link show "$BRIDGE" > /dev/null 2>&1 || [[ -n $(cgroup_dirs) ]]; then
  log "leftovers of an earlier runtime: removing them first"
  "$rt_here/down.sh"
fi
teardown_on_failure "$rt_here/down.sh"

"$cluster_dir/build.sh" runc cni-plugins containerd cri-tools

# Images: busybox and pause exactly as the cluster builds them (same cache
# key, so both share one build), the servers keyed by their .deb versions.
base_images keep
servers=$("$cluster_dir/../images/servers.sh" --cached "$CACHE")
# shellcheck disable=SC1091
. "$servers/servers.env"

# --- the host: directories, snapshot, bridge and fence, cgroups, containerd
# and CNI configuration (e2e/cluster/common.sh) ---------------------------------
log "network: bridge $BRIDGE ($HOST_IP, pods $SUBNET)"
up_host profiles

# --- configuration -------------------------------------------------------------
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
import_images "$images/pause.tar" "$images/busybox.tar" "$servers/nginx.tar" "$servers/redis.tar"

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
