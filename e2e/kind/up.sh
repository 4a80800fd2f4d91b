#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Create the two-node kind cluster of kind-config.yaml and give it a network:
# each node gets the bridge CNI plugin on its pod range and a route to the
# other node's pods through the other node (the nodes share kind's Docker
# network), so pods on the two nodes reach each other by their own addresses;
# this host gets routes to both ranges (as root).
# Usage: e2e/kind/up.sh [--own-dockerd] [--node-image IMAGE]
#   --own-dockerd   start a dockerd of the suite's own first (as root; for
#                   machines without Docker: its roots, socket and cgroups
#                   are the suite's, down.sh --own-dockerd removes them)
#   --node-image    the kind node image to use (default: assembled here from
#                   locally built parts, node-image.sh, and imported)
# Writes the cluster's kubeconfig to $IMPRINT_KIND_STATE/kubeconfig
# (default /var/lib/imprint-kind) and prints the environment to use it:
#   eval "$(e2e/kind/up.sh --own-dockerd)"
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
own=0 image=
while [[ $# -gt 0 ]]; do
  case $1 in
    --own-dockerd) own=1 ;;
    --node-image) image=$2; shift ;;
    *) die "unknown argument: $1" ;;
  esac
  shift
done
[[ -x $KIND_BIN/kind ]] || "$kind_here/../cluster/build.sh" kind >&2
export PATH=$KIND_BIN:$K8S_BIN:$PATH
mkdir -p "$KIND_STATE"

if (( own )); then
  [[ $(id -u) == 0 ]] || die "--own-dockerd: run as root"
  [[ -x $DOCKERD ]] || die "no $DOCKERD: run $kind_here/../docker/install-deps.sh"
  [[ ! -e $KIND_DOCKER_SOCK ]] || die "$KIND_DOCKER_SOCK exists: run $kind_here/down.sh --own-dockerd first"
  start_own_dockerd || die "dockerd did not answer on $KIND_DOCKER_SOCK (see $KIND_STATE/logs/dockerd.log)"
  export DOCKER_HOST=unix://$KIND_DOCKER_SOCK
  log "dockerd $(docker version -f '{{.Server.Version}}') on $KIND_DOCKER_SOCK"
  # kind's network, made here with a bridge name and range of the suite's
  # own (kind uses a network named "kind" if there is one), fenced: nothing
  # is forwarded out of it.
  docker network create --driver bridge --subnet "$KIND_SUBNET" --gateway "$KIND_GATEWAY" \
    -o com.docker.network.bridge.name="$KIND_BRIDGE" -o com.docker.network.bridge.enable_ip_masquerade=false \
    "$KIND_NETWORK" > /dev/null
  nft -f - <<NFT
table inet $KIND_NFT_TABLE {
  chain forward {
    type filter hook forward priority -10; policy accept;
    iifname "$KIND_BRIDGE" oifname != "$KIND_BRIDGE" drop
  }
}
NFT
fi

if [[ -z $image ]]; then
  rootfs=$("$kind_here/node-image.sh")
  image=localhost/imprint-e2e/kind-node:$KUBERNETES_VERSION-$(basename "$(dirname "$rootfs")" | sed 's/.*-//')
  if ! docker image inspect "$image" > /dev/null 2>&1; then
    log "importing the node image $image"
    # `docker import` takes no STOPSIGNAL: a build from the imported image adds it.
    docker import --change 'ENV container=docker' \
      --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' "$rootfs" "$image-imported" > /dev/null
    printf 'FROM %s\nSTOPSIGNAL SIGRTMIN+3\n' "$image-imported" | docker build -q -t "$image" - > /dev/null
    docker rmi "$image-imported" > /dev/null
  fi
fi

t0=$SECONDS
log "kind create cluster $KIND_CLUSTER ($image)"
kind create cluster --name "$KIND_CLUSTER" --image "$image" --config "$kind_here/kind-config.yaml" \
  --kubeconfig "$KIND_KUBECONFIG" >&2
export KUBECONFIG=$KIND_KUBECONFIG

# The network: the bridge plugin on each node's pod range (no masquerading:
# a pod is seen by its own address on the other node), and routes to the
# other nodes' pod ranges through their addresses, on the nodes and here.
rm -f "$KIND_STATE/routes"
nodes=$(kind get nodes --name "$KIND_CLUSTER")
for n in $nodes; do
  cidr=$(kubectl get node "$n" -o jsonpath='{.spec.podCIDR}')
  [[ -n $cidr ]] || die "node $n has no pod range"
  docker exec -i "$n" sh -c 'mkdir -p /etc/cni/net.d && cat > /etc/cni/net.d/10-imprint-bridge.conflist' <<JSON
{"cniVersion": "1.0.0", "name": "imprint-kind", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$cidr"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
JSON
  ip=$(docker inspect -f "{{(index .NetworkSettings.Networks \"$KIND_NETWORK\").IPAddress}}" "$n")
  for m in $nodes; do
    [[ $m == "$n" ]] || docker exec "$m" ip route replace "$cidr" via "$ip"
  done
  # The host reaches the pods too (the suites' load and metrics), through
  # kind's network; down.sh removes these routes.
  ip route replace "$cidr" via "$ip"
  echo "$cidr via $ip" >> "$KIND_STATE/routes"
  log "node $n: $ip, pods $cidr"
done
kubectl wait --for=condition=Ready nodes --all --timeout=180s >&2
# Cluster DNS answers for the cluster's names only: kubeadm's Corefile
# forwards every other name to the node's resolver (and probes it for
# loops), which would leave the cluster.
kubectl -n kube-system get configmap coredns -o json |
  jq '.data.Corefile |= (split("\n") | reduce .[] as $l ({out: [], skip: false};
        if .skip then (if ($l | test("^\\s*}")) then .skip = false else . end)
        elif ($l | test("^\\s*forward ")) then (if ($l | test("{\\s*$")) then .skip = true else . end)
        elif ($l | test("^\\s*loop\\s*$")) then .
        else .out += [$l] end) | .out | join("\n"))' |
  kubectl apply -f - > /dev/null
kubectl -n kube-system rollout restart deployment coredns > /dev/null
kubectl -n kube-system rollout status deployment coredns --timeout=120s >&2
log "cluster up in $((SECONDS - t0)) s"
echo "export KUBECONFIG=$KIND_KUBECONFIG"
[[ -z ${DOCKER_HOST:-} ]] || echo "export DOCKER_HOST=$DOCKER_HOST"
