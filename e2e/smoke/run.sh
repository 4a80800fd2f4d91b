#!/usr/bin/env bash
# shellcheck disable=SC2016 # the $ in single quotes expand inside the pods
# Smoke suite: checks that the cluster behind $KUBECONFIG is a working
# Kubernetes, with nothing mocked. Runs the same against the cluster of
# e2e/cluster/up.sh and against kind.
#   - every node is Ready
#   - a Deployment of 2 busybox replicas becomes Available
#   - kubectl exec and kubectl logs work
#   - a DaemonSet runs one pod on each node
#   - a pod calls the API through the kubernetes Service ClusterIP with its
#     mounted ServiceAccount token and gets an authorised answer (and an
#     unauthenticated call is refused)
#   - a pod reaches another pod's IP
#   - helm installs a chart (when helm is on PATH)
# Needs: kubectl on PATH, KUBECONFIG, and the busybox image already in the
# cluster (IMPRINT_E2E_BUSYBOX_IMAGE, IMPRINT_E2E_APICLIENT_IMAGE;
# e2e/images/build.sh makes them).
# Prints one line per test and closes with "N passed, N failed".
set -uo pipefail
# shellcheck source=e2e/suite.sh
. "$(dirname "${BASH_SOURCE[0]}")/../suite.sh"
IMAGE=${IMPRINT_E2E_BUSYBOX_IMAGE:-localhost/imprint-e2e/busybox:1.35.0}
APICLIENT_IMAGE=${IMPRINT_E2E_APICLIENT_IMAGE:-localhost/imprint-e2e/apiclient:1.0}
NS=imprint-smoke-$(date +%s)-$$
TIMEOUT=${IMPRINT_E2E_TIMEOUT:-120s}
# How the API server refuses a request without credentials: 401 where
# anonymous requests are off (the local cluster), 403 where they are on and
# RBAC forbids them (kubeadm's API servers, as kind's: their health probes
# are anonymous).
ANONYMOUS_STATUS=${IMPRINT_E2E_ANONYMOUS_STATUS:-401}
k() { kubectl "$@"; }

cleanup() { k delete namespace "$NS" --wait=false > /dev/null 2>&1 || true; }
trap cleanup EXIT

nodes_ready() {
  k wait --for=condition=Ready node --all --timeout="$TIMEOUT"
}

setup() {
  k create namespace "$NS"
  # The pod reading its own Pod through the API needs a Role for that only.
  k apply -n "$NS" -f - <<YAML
apiVersion: v1
kind: ServiceAccount
metadata: {name: smoke}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: read-pods}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: smoke-read-pods}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: read-pods}
subjects:
- {kind: ServiceAccount, name: smoke, namespace: $NS}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: smoke
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: $IMAGE
        imagePullPolicy: Never
        command: [/bin/sh, -c]
        args:
        - |
          mkdir -p /tmp/www && echo "hello from \$(hostname)" > /tmp/www/index.html
          echo "smoke: web \$(hostname) started"
          exec httpd -f -p 8080 -h /tmp/www
        ports: [{containerPort: 8080}]
        readinessProbe:
          tcpSocket: {port: 8080}
          periodSeconds: 1
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: every-node}
spec:
  selector: {matchLabels: {app: every-node}}
  template:
    metadata: {labels: {app: every-node}}
    spec:
      terminationGracePeriodSeconds: 1
      tolerations: [{operator: Exists}]
      containers:
      - name: sleep
        image: $IMAGE
        imagePullPolicy: Never
        command: [/bin/sh, -c, "echo smoke: daemon on \$(hostname); exec sleep 3600"]
YAML
}

deployment_available() {
  k -n "$NS" wait --for=condition=Available deployment/web --timeout="$TIMEOUT" &&
    [[ $(k -n "$NS" get deployment web -o jsonpath='{.status.availableReplicas}') == 2 ]]
}

web_pods() { k -n "$NS" get pods -l app=web --field-selector=status.phase=Running -o jsonpath='{range .items[*]}{.metadata.name} {.status.podIP}{"\n"}{end}'; }

exec_works() {
  local pod out
  pod=$(web_pods | head -1 | cut -d' ' -f1)
  out=$(k -n "$NS" exec "$pod" -- sh -c 'echo exec-ok from $(hostname)')
  echo "$out"
  [[ $out == "exec-ok from $pod" ]]
}

logs_work() {
  local pod
  pod=$(web_pods | head -1 | cut -d' ' -f1)
  k -n "$NS" logs "$pod" | grep -qx "smoke: web $pod started"
}

daemonset_one_per_node() {
  k -n "$NS" rollout status daemonset/every-node --timeout="$TIMEOUT" || return 1
  local nodes scheduled ready on_nodes
  nodes=$(k get nodes -o name | wc -l)
  scheduled=$(k -n "$NS" get daemonset every-node -o jsonpath='{.status.desiredNumberScheduled}')
  ready=$(k -n "$NS" get daemonset every-node -o jsonpath='{.status.numberReady}')
  on_nodes=$(k -n "$NS" get pods -l app=every-node -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}' | sort -u | wc -l)
  echo "nodes=$nodes scheduled=$scheduled ready=$ready distinct-nodes=$on_nodes"
  [[ $nodes -ge 1 && $scheduled == "$nodes" && $ready == "$nodes" && $on_nodes == "$nodes" ]]
}

api_via_service_ip() {
  local svc_ip
  svc_ip=$(k -n default get service kubernetes -o jsonpath='{.spec.clusterIP}')
  # kube-api-get reads the mounted token and CA and calls
  # https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, verifying the
  # server certificate. First without the token (refused: 401, or 403 where
  # anonymous requests are on), then with it
  # (the pod reads itself, allowed by the Role above).
  k -n "$NS" apply -f - <<YAML || return 1
apiVersion: v1
kind: Pod
metadata: {name: api-client}
spec:
  serviceAccountName: smoke
  restartPolicy: Never
  initContainers:
  - name: anonymous
    image: $APICLIENT_IMAGE
    imagePullPolicy: Never
    args: [-anonymous, -expect, "$ANONYMOUS_STATUS", /api/v1/namespaces/default/pods]
  containers:
  - name: with-token
    image: $APICLIENT_IMAGE
    imagePullPolicy: Never
    env:
    - name: POD_NAMESPACE
      valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
    args: [/api/v1/namespaces/\$(POD_NAMESPACE)/pods/api-client]
YAML
  k -n "$NS" wait --for=jsonpath='{.status.phase}'=Succeeded pod/api-client --timeout="$TIMEOUT"
  local rc=$?
  k -n "$NS" logs api-client -c anonymous | head -c 300; echo
  local out
  out=$(k -n "$NS" logs api-client -c with-token)
  echo "$out" | head -c 300; echo
  [[ $rc == 0 ]] || return 1
  echo "$out" | head -1 | grep -q "^GET https://$svc_ip:[0-9]*/.* (token: true): 200$" &&
    echo "$out" | grep -q '"name": *"api-client"'
}

pod_to_pod() {
  local from to to_ip out
  read -r from _ < <(web_pods | sed -n 1p)
  read -r to to_ip < <(web_pods | sed -n 2p)
  [[ -n $to_ip ]] || { echo "no second pod IP"; return 1; }
  # (busybox 1.35's wget -T crashes; the timeout applet bounds it instead)
  out=$(k -n "$NS" exec "$from" -- timeout 10 wget -q -O - "http://$to_ip:8080/")
  echo "$from -> $to ($to_ip): $out"
  [[ $out == "hello from $to" ]]
}

helm_install() {
  local chart
  chart=$(mktemp -d)
  mkdir -p "$chart/templates"
  printf 'apiVersion: v2\nname: smoke\nversion: 0.1.0\n' > "$chart/Chart.yaml"
  printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  from: helm\n' \
    > "$chart/templates/configmap.yaml"
  helm install smoke-release "$chart" -n "$NS" --wait --timeout "$TIMEOUT"
  local rc=$?
  rm -rf "$chart"
  [[ $rc == 0 ]] && [[ $(k -n "$NS" get configmap smoke-release -o jsonpath='{.data.from}') == helm ]]
}

check "nodes are Ready" nodes_ready
check "test namespace and workloads created" setup
check "Deployment of 2 busybox replicas becomes Available" deployment_available
check "kubectl exec" exec_works
check "kubectl logs" logs_work
check "DaemonSet runs one pod on each node" daemonset_one_per_node
check "pod calls the API via the kubernetes Service ClusterIP with its token" api_via_service_ip
check "pod reaches another pod's IP" pod_to_pod
if command -v helm > /dev/null; then check "helm installs a chart" helm_install; fi

finish smoke
