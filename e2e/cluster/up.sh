#!/usr/bin/env bash
# Bring up a real two-node Kubernetes cluster from upstream components
# built by build.sh (cached outside the repository, keyed by version):
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet,
# kube-proxy (nftables mode), containerd 2 with runc and the CNI plugins
# bridge, host-local, loopback and portmap; CoreDNS as the cluster DNS and
# kube-router's network policy controller enforcing NetworkPolicies
# (addons.sh). TLS everywhere with a local CA,
# RBAC + Node authorization, the default admission plugins plus
# NodeRestriction, ServiceAccount tokens signed by the API server.
#
# Pods live on the bridges this script creates (one per node, routed to each
# other by the host), in the cluster's own pod and service ranges
# (common.sh); forwarding out of them is dropped, so pod traffic never
# leaves what the run created. The second node (node2.sh) is tainted: only
# pods that tolerate it run there. Every process started here
# has a pid file; `down.sh` stops them by PID and removes all that up added.
#
# Usage: e2e/cluster/up.sh            (as root)
# Then:  eval "$(e2e/cluster/env.sh)"  # KUBECONFIG, kubectl and helm on PATH
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=SCRIPTDIR/pki.sh
. "$here/pki.sh"
# shellcheck source=SCRIPTDIR/addons.sh
. "$here/addons.sh"
# shellcheck source=SCRIPTDIR/node2.sh
. "$here/node2.sh"

as_root
t_start=$SECONDS

if [[ -e $RUN || -e $STATE ]]; then
  die "a cluster (or its leftovers) exists at $STATE / $RUN: run $here/down.sh first"
fi
# If anything below fails, leave nothing half-started behind.
teardown_on_failure "$here/down.sh"

"$here/build.sh"
# Images are keyed by the busybox package and the image sources.
base_images prune

# --- the host: directories, snapshot, bridge and fence, cgroups, containerd
# and CNI configuration (common.sh) --------------------------------------------
log "network: bridge $BRIDGE ($NODE_IP, pods $POD_CIDR, services $SERVICE_CIDR)"
mkdir -p "$SOCKETS"
up_host pki etcd kubelet
# Pod -> Service -> pod on the same bridge is routed (DNAT) by the host.
sysctl -qw net.ipv4.ip_forward=1

# --- certificates, kubeconfigs, configuration files ---------------------------
log "certificates"
make_pki "$STATE/pki"
make_kubeconfig "$KUBECONFIG_ADMIN" admin imprint-e2e-admin
make_kubeconfig "$STATE/config/controller-manager.kubeconfig" controller-manager system:kube-controller-manager
make_kubeconfig "$STATE/config/scheduler.kubeconfig" scheduler system:kube-scheduler
make_kubeconfig "$STATE/config/kube-proxy.kubeconfig" kube-proxy system:kube-proxy
make_kubeconfig "$STATE/config/kubelet.kubeconfig" kubelet-client "system:node:$NODE_NAME"
make_kubeconfig "$STATE/config/kube-router.kubeconfig" kube-router system:kube-router
pki=$STATE/pki
log "second node's host side: bridge $BRIDGE2 ($NODE2_IP, pods $NODE2_POD_CIDR)"
node2_host

kubelet_config "/$CGROUP_ROOT" "$CONTAINERD_SOCK" "$NODE_IP" 127.0.0.1 kubelet-server "$STATE/pod-logs" 250 \
  > "$STATE/config/kubelet.yaml"

cat > "$STATE/config/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["$NODE_IP/32"]
oomScoreAdj: 0
clientConnection:
  kubeconfig: $STATE/config/kube-proxy.kubeconfig
# Leave the host's conntrack settings alone.
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
YAML

# --- processes ----------------------------------------------------------------
# start NAME CMD...: run in its own session, log to $STATE/logs/NAME.log,
# remember the PID in $PIDS/NAME.pid.
start() {
  local name=$1; shift
  setsid "$@" > "$STATE/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$PIDS/$name.pid"
}
# wait_for WHAT SECONDS CMD...: poll until CMD succeeds.
wait_for() {
  local what=$1 limit=$2 t0=$SECONDS; shift 2
  until "$@" > /dev/null 2>&1; do
    if (( SECONDS - t0 > limit )); then die "timed out after ${limit}s waiting for $what"; fi
    sleep 0.5
  done
  log "$what ready after $((SECONDS - t0))s"
}
curl_api() { curl -fsS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "$API_SERVER$1"; }
curl_etcd() {
  curl -fsS --cacert "$pki/ca.crt" --cert "$pki/apiserver-etcd-client.crt" \
    --key "$pki/apiserver-etcd-client.key" https://127.0.0.1:2379/health
}

log "starting etcd and containerd"
start etcd "$ETCD_BIN/etcd" --name "$NODE_NAME" --data-dir "$STATE/etcd" \
  --listen-client-urls https://127.0.0.1:2379 --advertise-client-urls https://127.0.0.1:2379 \
  --listen-peer-urls https://127.0.0.1:2380 --initial-advertise-peer-urls https://127.0.0.1:2380 \
  --initial-cluster "$NODE_NAME=https://127.0.0.1:2380" --initial-cluster-state new \
  --cert-file "$pki/etcd.crt" --key-file "$pki/etcd.key" --trusted-ca-file "$pki/ca.crt" --client-cert-auth \
  --peer-cert-file "$pki/etcd.crt" --peer-key-file "$pki/etcd.key" --peer-trusted-ca-file "$pki/ca.crt" \
  --peer-client-cert-auth --listen-metrics-urls http://127.0.0.1:2381 --log-level warn

PATH=$CONTAINERD_BIN:$RUNC_BIN:$PATH start containerd "$CONTAINERD_BIN/containerd" \
  --config "$CONTAINERD_CONFIG"

wait_for etcd 60 curl_etcd

log "starting kube-apiserver"
start kube-apiserver "$K8S_BIN/kube-apiserver" \
  --advertise-address "$NODE_IP" --bind-address "$NODE_IP" --secure-port "$API_PORT" \
  --etcd-servers https://127.0.0.1:2379 --etcd-cafile "$pki/ca.crt" \
  --etcd-certfile "$pki/apiserver-etcd-client.crt" --etcd-keyfile "$pki/apiserver-etcd-client.key" \
  --client-ca-file "$pki/ca.crt" --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
  --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" \
  --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority "$pki/ca.crt" --kubelet-preferred-address-types InternalIP \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
  --service-cluster-ip-range "$SERVICE_CIDR" \
  --requestheader-client-ca-file "$pki/front-proxy-ca.crt" --requestheader-allowed-names front-proxy-client \
  --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
  --requestheader-extra-headers-prefix X-Remote-Extra- \
  --proxy-client-cert-file "$pki/front-proxy-client.crt" --proxy-client-key-file "$pki/front-proxy-client.key" \
  --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
  --allow-privileged=true --anonymous-auth=false --profiling=false

wait_for containerd 60 test -S "$CONTAINERD_SOCK"
log "importing images into containerd (k8s.io namespace)"
import_images "$images"/{pause,busybox,apiclient}.tar "$(coredns_image)"

wait_for kube-apiserver 120 curl_api /readyz

log "starting kube-controller-manager and kube-scheduler"
start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
  --kubeconfig "$STATE/config/controller-manager.kubeconfig" \
  --authentication-kubeconfig "$STATE/config/controller-manager.kubeconfig" \
  --authorization-kubeconfig "$STATE/config/controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --leader-elect=false --use-service-account-credentials=true \
  --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
  --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
  --allocate-node-cidrs=true --cluster-cidr "$POD_CIDR" --node-cidr-mask-size 24 \
  --service-cluster-ip-range "$SERVICE_CIDR" --profiling=false
start kube-scheduler "$K8S_BIN/kube-scheduler" \
  --kubeconfig "$STATE/config/scheduler.kubeconfig" \
  --authentication-kubeconfig "$STATE/config/scheduler.kubeconfig" \
  --authorization-kubeconfig "$STATE/config/scheduler.kubeconfig" \
  --bind-address 127.0.0.1 --leader-elect=false --profiling=false

log "starting kubelet and kube-proxy"
start kubelet "$K8S_BIN/kubelet" --config "$STATE/config/kubelet.yaml" \
  --kubeconfig "$STATE/config/kubelet.kubeconfig" --root-dir "$STATE/kubelet" \
  --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" --v 1
start kube-proxy "$K8S_BIN/kube-proxy" --config "$STATE/config/kube-proxy.yaml"
log "starting the second node's containerd and kubelet"
node2_start

kubectl() { "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }
wait_for "node registration" 120 kubectl get node "$NODE_NAME"
kubectl wait --for=condition=Ready "node/$NODE_NAME" --timeout=120s > /dev/null
log "node $NODE_NAME Ready"
node2_ready
wait_for "default ServiceAccount" 60 kubectl -n default get serviceaccount default

log "add-ons: CoreDNS ($CLUSTER_DNS_IP) and kube-router's network policy controller"
addons_manifest | kubectl apply -f - > /dev/null
# shellcheck disable=SC2046 # one argument per word
start kube-router "$KUBE_ROUTER_BIN/kube-router" $(kube_router_args)
# Its first full sync ends with the rule that accepts what policies allow.
firewall_synced() { iptables -S KUBE-ROUTER-FORWARD 2>/dev/null | grep -q 'explicitly ACCEPT'; }
wait_for "kube-router's firewall" 90 firewall_synced
kubectl -n kube-system rollout status deployment/coredns --timeout=120s > /dev/null
log "CoreDNS ready"
wait_for "kubernetes Service" 60 kubectl -n default get endpointslices -l kubernetes.io/service-name=kubernetes

for f in "$PIDS"/*.pid; do
  kill -0 "$(cat "$f")" 2>/dev/null || die "$(basename "$f" .pid) is not running (see $STATE/logs)"
done

cat > "$STATE/env" <<ENV
export KUBECONFIG=$KUBECONFIG_ADMIN
export PATH=$K8S_BIN:$HELM_BIN:\$PATH
export IMPRINT_E2E_BUSYBOX_IMAGE=$BUSYBOX_IMAGE
export IMPRINT_E2E_PAUSE_IMAGE=$PAUSE_IMAGE
export IMPRINT_E2E_APICLIENT_IMAGE=$APICLIENT_IMAGE
export IMPRINT_E2E_NODE_NAME=$NODE_NAME
export IMPRINT_E2E_RUNTIME_SOCKET=$CONTAINERD_SOCK
export IMPRINT_E2E_KUBELET_ROOT=$STATE/kubelet
export IMPRINT_E2E_NODE2_NAME=$NODE2_NAME
export IMPRINT_E2E_NODE2_TAINT=$NODE2_TAINT
export IMPRINT_E2E_RUNTIME_SOCKET2=$CONTAINERD2_SOCK
export IMPRINT_E2E_KUBELET_ROOT2=$NODE2_STATE/kubelet
export IMPRINT_E2E_RUNTIME_SOCKETS="$CONTAINERD_SOCK $CONTAINERD2_SOCK"
export IMPRINT_E2E_PIDS=$PIDS
export IMPRINT_E2E_NETWORK_POLICIES=kube-router
ENV
trap - EXIT
log "cluster up in $((SECONDS - t_start))s; use: eval \"\$($here/env.sh)\""
