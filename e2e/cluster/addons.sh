# shellcheck shell=bash
# The cluster's add-ons, sourced by up.sh: cluster DNS (CoreDNS as a pod in
# kube-system behind the kube-dns Service, the way kubeadm installs it) and
# the NetworkPolicy enforcer (kube-router with only its firewall on, a host
# process beside the bridge CNI and kube-proxy).

COREDNS_IMAGE=localhost/imprint-e2e/coredns:$COREDNS_VERSION

# coredns_image: the CoreDNS image (the binary build.sh built, nothing else)
# as an OCI tarball, made once per version next to the binary; prints its path.
coredns_image() {
  local dir=$CACHE/coredns-$COREDNS_VERSION tar root
  tar=$dir/image/coredns.tar
  if [[ ! -f $tar ]]; then
    # shellcheck source=e2e/images/oci-image.sh disable=SC2154 # here: common.sh
    . "$here/../images/oci-image.sh"
    root=$(mktemp -d)
    install -m 0755 "$COREDNS_BIN/coredns" "$root/coredns"
    mkdir -p "$dir/image"
    oci_image "$root" "$COREDNS_IMAGE" \
      '{"Entrypoint":["/coredns"],"Cmd":["-conf","/etc/coredns/Corefile"],"User":"65532:65532"}' "$tar.tmp"
    mv "$tar.tmp" "$tar"
    rm -rf "$root"
  fi
  echo "$tar"
}

# addons_manifest: kube-router's RBAC (it authenticates as system:kube-router)
# and CoreDNS: its ServiceAccount, RBAC, Corefile, Deployment and the kube-dns
# Service at $CLUSTER_DNS_IP. CoreDNS answers for cluster.local and the
# reverse zones only: nothing is forwarded outside the cluster.
addons_manifest() {
  cat <<YAML
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:kube-router"}
rules:
- apiGroups: [""]
  resources: [namespaces, pods, services, nodes, endpoints]
  verbs: [get, list, watch]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:kube-router"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:kube-router"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:kube-router"}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    .:53 {
        errors
        health :8080
        ready :8181
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
        }
        prometheus :9153
        cache 30
        loadbalance
        reload
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      priorityClassName: system-cluster-critical
      dnsPolicy: Default
      securityContext:
        runAsNonRoot: true
        # Port 53 without a capability.
        sysctls: [{name: net.ipv4.ip_unprivileged_port_start, value: "0"}]
        seccompProfile: {type: RuntimeDefault}
      containers:
      - name: coredns
        image: $COREDNS_IMAGE
        imagePullPolicy: Never
        volumeMounts: [{name: config, mountPath: /etc/coredns, readOnly: true}]
        ports:
        - {name: dns, containerPort: 53, protocol: UDP}
        - {name: dns-tcp, containerPort: 53, protocol: TCP}
        - {name: metrics, containerPort: 9153, protocol: TCP}
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL]}
        livenessProbe: {httpGet: {path: /health, port: 8080}, periodSeconds: 10}
        readinessProbe: {httpGet: {path: /ready, port: 8181}, periodSeconds: 2}
        resources: {requests: {cpu: 10m, memory: 32Mi}, limits: {memory: 128Mi}}
      volumes: [{name: config, configMap: {name: coredns}}]
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  selector: {k8s-app: kube-dns}
  clusterIP: $CLUSTER_DNS_IP
  ports:
  - {name: dns, port: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, protocol: TCP}
  - {name: metrics, port: 9153, protocol: TCP}
YAML
}

# kube_router_args: kube-router's network policy controller alone (no
# routing, no service proxy, no load balancer), for this node.
kube_router_args() {
  echo --run-firewall=true --run-router=false --run-service-proxy=false --run-loadbalancer=false \
    --kubeconfig "$STATE/config/kube-router.kubeconfig" --hostname-override "$NODE_NAME" \
    --service-cluster-ip-range "$SERVICE_CIDR" --enable-ipv4=true --enable-ipv6=false \
    --health-port 20244 --metrics-port 0
}
