# shellcheck shell=bash
# shellcheck disable=SC2154 # images: set by up.sh (base_images)
# The cluster's second node, sourced by up.sh after the first node's
# components started: a kubelet and a containerd of its own (root, state,
# socket $CONTAINERD2_SOCK, CNI network on bridge $BRIDGE2 with pods in
# $NODE2_POD_CIDR, cgroup root /$CGROUP_ROOT2, kubelet root, ports on
# $NODE2_IP), registered as $NODE2_NAME with the taint $NODE2_TAINT. The host
# routes between the two bridges; the fence lets pods of either reach the
# other and still drops anything forwarded elsewhere. Shared with the first
# node: the control plane, kube-proxy (the host's Service rules serve
# both) and kube-router, whose firewall holds the policies of the first
# node's pods only (it runs once per node, and both would share the host's
# iptables).

# node2_host: directories, bridge, fence, cgroup root, containerd's and the
# CNI's configuration, the kubelet's configuration and credentials.
node2_host() {
  local d
  for d in config cni kubelet pod-logs containerd; do mkdir -p "$NODE2_STATE/$d"; done
  mkdir -p "$NODE2_RUN"

  ip link add "$BRIDGE2" type bridge
  echo "$BRIDGE2" >> "$RUN/snapshot/bridge"
  ip addr add "$NODE2_IP/$NODE_PREFIX" dev "$BRIDGE2"
  ip addr add "$POD2_GATEWAY/${NODE2_POD_CIDR#*/}" dev "$BRIDGE2"
  ip link set "$BRIDGE2" up
  # Between the two bridges: forwarded (the first node's drop rule comes
  # after the inserted accept). Out of the second bridge elsewhere: dropped.
  nft insert rule inet "$NFT_TABLE" forward iifname "$BRIDGE" oifname "$BRIDGE2" accept
  nft add rule inet "$NFT_TABLE" forward iifname "$BRIDGE2" oifname "$BRIDGE" accept
  nft add rule inet "$NFT_TABLE" forward iifname "$BRIDGE2" oifname != "$BRIDGE2" drop

  make_own_cgroups "$CGROUP_ROOT2"

  containerd_config "$NODE2_STATE" "$NODE2_RUN" "$CONTAINERD2_SOCK" > "$NODE2_STATE/config/containerd.toml"
  cni_network "$NODE2_STATE/cni" "$BRIDGE2" "$NODE2_POD_CIDR" "$POD2_GATEWAY"

  make_kubeconfig "$NODE2_STATE/config/kubelet.kubeconfig" kubelet2-client "system:node:$NODE2_NAME"
  kubelet_config "/$CGROUP_ROOT2" "$CONTAINERD2_SOCK" "$NODE2_IP" "$NODE2_IP" kubelet2-server \
    "$NODE2_STATE/pod-logs" 110 "$NODE2_TAINT" > "$NODE2_STATE/config/kubelet.yaml"
}

# node2_start: its containerd (images imported) and kubelet; returns once the
# node is Ready.
node2_start() {
  PATH=$CONTAINERD_BIN:$RUNC_BIN:$PATH start containerd-2 "$CONTAINERD_BIN/containerd" \
    --config "$NODE2_STATE/config/containerd.toml"
  wait_for "containerd of $NODE2_NAME" 60 test -S "$CONTAINERD2_SOCK"
  CONTAINERD_SOCK=$CONTAINERD2_SOCK import_images "$images"/{pause,busybox,apiclient}.tar
  start kubelet-2 "$K8S_BIN/kubelet" --config "$NODE2_STATE/config/kubelet.yaml" \
    --kubeconfig "$NODE2_STATE/config/kubelet.kubeconfig" --root-dir "$NODE2_STATE/kubelet" \
    --hostname-override "$NODE2_NAME" --node-ip "$NODE2_IP" --v 1
}

# node2_ready: waits for the second node to register and be Ready.
node2_ready() {
  wait_for "node registration ($NODE2_NAME)" 120 kubectl get node "$NODE2_NAME"
  kubectl wait --for=condition=Ready "node/$NODE2_NAME" --timeout=120s > /dev/null
  log "node $NODE2_NAME Ready (tainted $NODE2_TAINT)"
}
