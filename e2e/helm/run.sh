#!/usr/bin/env bash
# shellcheck disable=SC2016,SC2015 # $ in single quotes expand in jq or the pods; A && B || fail is meant
# The Helm suite: imprint installed with its chart, in the cluster, the way a
# user installs it, from `helm install` to an enforced profile.
#   - helm lint; the rendered chart (and manifests/install.yaml) pass a
#     server-side dry run
#   - helm install with the locally built image: the agent DaemonSet and the
#     controller (2 replicas, one leads) become Ready; the agent runs with
#     exactly the chart's capabilities, under the runtime's seccomp profile
#   - nginx (2 replicas) and redis from local images under real load (wrk and
#     curl against the nginx pods, redis-benchmark against redis)
#   - one ContainerBehaviorReport per pod container (pod, container, node)
#   - a BehaviorProfile per workload reaches Stable; SeccompProfiles exist
#     (SPO's CRD validates them)
#   - enforcement: each profile as a localhost profile on the node, the
#     workloads restarted with it and the recommended securityContext: the
#     same load, zero errors
#   - a new behavior after enforcement (a shell exec'd into nginx calling a
#     syscall outside the profile) is denied; the guarding profile lists it
#     as an anomaly
#   - detection: a shell on a terminal exec'd into guarded nginx runs a
#     package manager's name, writes /etc, listens: alerts in 10 s in the
#     agent's log and as Warning Events; the allow-list unchanged; an
#     accepted listener alerts no more in the other replica
#   - the ValidatingAdmissionPolicy binds the agent's writes to its node:
#     impersonating its ServiceAccount with another node's token claim, an
#     archive, no claim, or a take-over of a real report is refused
#   - no 403 in the logs (the chart's RBAC is enough); metrics are served,
#     and a real Prometheus (Debian's) scraping through the chart's Services
#     answers every query of the Grafana dashboard with data; alerts reach
#     a real Alertmanager (Debian's)
#   - helm upgrade rolls the agent: the old one's BPF objects go, the Lease
#     still elects
#   - a second release in the cluster is refused
#   - helm uninstall removes every object of the release but the CRDs; its
#     cleanup hook releases the reports (a pod deleted afterwards takes its
#     report); no BPF program or link of the agent stays attached
# Needs: root, kubectl, helm, jq, curl, wrk, redis-benchmark, bpftool,
# prometheus, prometheus-alertmanager (e2e/runtime/install-deps.sh), SPO's
# CRDs (IMPRINT_SPO_CRDS).
# Images: on the local cluster (IMPRINT_E2E_RUNTIME_SOCKET set) the imprint
# image is built from IMPRINT_BIN (e2e/images/imprint.sh) and the nginx and
# redis images by e2e/images/servers.sh (cached), all imported with ctr.
# Elsewhere (kind) load them first and set IMPRINT_IMAGE_REPOSITORY,
# IMPRINT_IMAGE_TAG, NGINX_IMAGE and REDIS_IMAGE.
# Localhost profiles go to IMPRINT_E2E_KUBELET_ROOT/seccomp/operator (local
# cluster), else through a pod mounting the node's /var/lib/kubelet/seccomp.
# Prints one line per test and closes with "helm: N passed, N failed".
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=e2e/suite.sh
. "$here/../suite.sh"
# shellcheck source=e2e/load.sh
. "$here/../load.sh"
# shellcheck source=e2e/kube.sh
. "$here/../kube.sh"
# shellcheck source=e2e/chart.sh
. "$here/../chart.sh"
CACHE=${IMPRINT_E2E_CACHE:-/var/cache/imprint/e2e}
SOCKET=${IMPRINT_E2E_RUNTIME_SOCKET:-}
KUBELET_ROOT=${IMPRINT_E2E_KUBELET_ROOT:-}
STAMP=$(date +%s)
NS=imprint-helm-$STAMP          # the workloads
NS2=$NS-nodes                   # the workloads of the two-node checks
RELEASE_NS=imprint-helm-system  # the release
RELEASE=imprint
work=$(mktemp -d)
# Figures and observations: printed with the results at the end.
note() { echo "# $*" | tee -a "$work/notes"; }

ks() { kubectl -n "$RELEASE_NS" "$@"; }

# The node the suite's workloads run on: the local cluster's first node
# (its second is tainted), else the first node without a NoSchedule taint
# (kind's worker).
WORKLOAD_NODE=${IMPRINT_E2E_NODE_NAME:-$(kubectl get nodes -o json |
  jq -r '[.items[] | select([.spec.taints[]? | select(.effect == "NoSchedule")] | length == 0)][0].metadata.name')}
# Another node, for the two-node checks: the local cluster's second node
# (tainted IMPRINT_E2E_NODE2_TAINT), else any node but the workloads' (on
# kind, the control plane; empty on one node: the checks say so and pass).
NODE2=${IMPRINT_E2E_NODE2_NAME:-$(kubectl get nodes -o jsonpath='{.items[*].metadata.name}' | tr ' ' '\n' |
  grep -vx "$WORKLOAD_NODE" | head -1)}
NODE2_TAINT=${IMPRINT_E2E_NODE2_TAINT:-node-role.kubernetes.io/control-plane}
# agent_field JSONPATH [NODE]: a field of the agent pod on NODE (default:
# the workloads' node), e.g. agent_field metadata.uid.
agent_field() {
  ks get pods -l app.kubernetes.io/component=agent --field-selector="spec.nodeName=${2:-$WORKLOAD_NODE},status.phase=Running" \
    -o jsonpath="{.items[0].$1}"
}

# Alertmanager and Prometheus the suite starts (Debian's packages): their
# PIDs in $work/monitoring.pids (a check runs in a subshell).
AM_PORT=19093
PROM_PORT=19090

cleanup() {
  local pid
  if [[ -f $work/monitoring.pids ]]; then
    while read -r pid; do kill "$pid" 2> /dev/null; done < "$work/monitoring.pids"
  fi
  if [[ -n ${IMPRINT_E2E_KEEP_NAMESPACE:-} ]]; then echo "kept namespaces $NS $RELEASE_NS"; rm -rf "$work"; return; fi
  # The workloads' namespace first, while the controller (if still
  # installed) releases the reports' finalizers; uninstalling releases
  # those left.
  kubectl delete namespace "$NS" "$NS2" --timeout=90s > /dev/null 2>&1 || echo "namespace $NS or $NS2 not deleted within 90s"
  helm uninstall "$RELEASE" -n "$RELEASE_NS" --wait > /dev/null 2>&1
  kubectl delete namespace "$NS" "$NS2" "$RELEASE_NS" --wait=false > /dev/null 2>&1
  delete_profiles
  rm -rf "$work"
}
trap cleanup EXIT

# --- Alertmanager and Prometheus ---------------------------------------------------
# Debian's, started here with configurations of the suite's own: Alertmanager
# on the node's address (the bridge of the e2e cluster: the agent's pod
# reaches it), Prometheus on loopback, scraping the agents and the
# controller at the endpoints of the chart's Services, labelled as the
# chart's ServiceMonitor labels them. Only on the local cluster (a kind
# node cannot reach them).
node_ip() { kubectl get node "$WORKLOAD_NODE" -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}'; }
start_monitoring() {
  if [[ -z $SOCKET ]]; then
    note "Alertmanager and Prometheus: not started (not the local cluster)"
    return 0
  fi
  command -v prometheus > /dev/null && command -v prometheus-alertmanager > /dev/null ||
    { echo "prometheus or prometheus-alertmanager missing (e2e/runtime/install-deps.sh)"; return 1; }
  local ip
  ip=$(node_ip) && [[ -n $ip ]] || return 1
  # Ours, not something already listening there.
  ! curl -fsS -o /dev/null "http://$ip:$AM_PORT/-/ready" 2> /dev/null &&
    ! curl -fsSk -o /dev/null "https://$ip:$AM_PORT/-/ready" 2> /dev/null &&
    ! curl -fsS -o /dev/null "http://127.0.0.1:$PROM_PORT/-/ready" 2> /dev/null ||
    { echo "ports $AM_PORT or $PROM_PORT already answer: not the suite's"; return 1; }
  cat > "$work/alertmanager.yml" <<YAML
route: {receiver: kept}
receivers: [{name: kept}]
YAML
  # Over https, its certificate signed by a CA of the suite's own, which
  # the chart is given (agent.detection.alertmanagerCa).
  "$root/e2e/tls-server.sh" "$work/am-tls" "$ip" || return 1
  cat > "$work/alertmanager-web.yml" <<YAML
tls_server_config: {cert_file: $work/am-tls/server.pem, key_file: $work/am-tls/server.key}
YAML
  prometheus-alertmanager --config.file="$work/alertmanager.yml" --storage.path="$work/alertmanager" \
    --web.config.file="$work/alertmanager-web.yml" \
    --web.listen-address="$ip:$AM_PORT" --cluster.listen-address= > "$work/alertmanager.log" 2>&1 &
  echo "$!" >> "$work/monitoring.pids"
  # Debian builds Prometheus without Kubernetes discovery: the targets are
  # the endpoints of the chart's Services, written to a file Prometheus
  # watches (prometheus_targets, again before the queries).
  echo '[]' > "$work/targets.json"
  cat > "$work/prometheus.yml" <<YAML
global: {scrape_interval: 5s, evaluation_interval: 5s}
scrape_configs:
  - job_name: imprint
    file_sd_configs: [{files: ['$work/targets.json'], refresh_interval: 5s}]
YAML
  prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prometheus" \
    --web.listen-address="127.0.0.1:$PROM_PORT" > "$work/prometheus.log" 2>&1 &
  echo "$!" >> "$work/monitoring.pids"
  echo "https://$ip:$AM_PORT" > "$work/alertmanager-url"
  eventually 30 am_curl -o /dev/null "https://$ip:$AM_PORT/-/ready" ||
    { tail -5 "$work/alertmanager.log"; return 1; }
  eventually 30 curl -fsS -o /dev/null "http://127.0.0.1:$PROM_PORT/-/ready" ||
    { tail -5 "$work/prometheus.log"; return 1; }
  note "Alertmanager $(prometheus-alertmanager --version 2>&1 | head -1 | awk '{print $3}') on https://$ip:$AM_PORT, Prometheus $(prometheus --version 2>&1 | head -1 | awk '{print $3}') on 127.0.0.1:$PROM_PORT"
}
# prometheus_targets: the endpoints of the chart's metrics Services (agent
# and controller) as Prometheus file targets, labelled as the chart's
# ServiceMonitor labels them (namespace, node, pod).
prometheus_targets() {
  ks get endpointslices -o json | jq --arg ns "$RELEASE_NS" '[.items[]
    | select(.metadata.labels["kubernetes.io/service-name"] | test("^imprint-(agent|controller)-metrics$"))
    | . as $slice | .endpoints[] | select(.conditions.ready != false)
    | {targets: ["\(.addresses[0]):\($slice.ports[] | select(.name == "metrics") | .port)"],
       labels: {namespace: $ns, node: (.nodeName // ""), pod: (.targetRef.name // ""),
                service: $slice.metadata.labels["kubernetes.io/service-name"]}}]' > "$work/targets.json.new" &&
    mv "$work/targets.json.new" "$work/targets.json"
}
# am_curl ARGS...: curl trusting the suite's Alertmanager CA.
am_curl() { curl -fsS --cacert "$work/am-tls/ca.pem" "$@"; }
# am_alerted POD RULE: Alertmanager holds an alert of RULE about POD.
am_alerted() {
  am_curl "$(cat "$work/alertmanager-url")/api/v2/alerts" |
    jq -e --arg p "$1" --arg r "$2" '[.[] | select(.labels.pod == $p and .labels.rule == $r)] | length > 0' > /dev/null
}
# prom_has_data QUERY: Prometheus answers QUERY with at least one series.
prom_has_data() {
  curl -fsS --get --data-urlencode "query=$1" "http://127.0.0.1:$PROM_PORT/api/v1/query" |
    jq -e '.status == "success" and (.data.result | length > 0)' > /dev/null
}

# --- the chart -----------------------------------------------------------------
# cgroup v2 inside the node's /sys/fs/cgroup: itself (pure v2) or unified/ (hybrid).

values() { # the e2e's values: the local image, this node's paths, short windows
  cat <<YAML
image: {repository: $IMPRINT_IMAGE_REPOSITORY, tag: $IMPRINT_IMAGE_TAG, pullPolicy: Never}
logLevel: info
agent:
  interval: 3s
  namespaces: [$NS, $NS2]
  runtimeSocket: $(runtime_socket)
  cgroup: {root: $(cgroup_root)}
  # A shell session's burst of alerts (its programs' new syscalls, files)
  # fits in a second: the rate limit has a test of its own.
  detection: {maxAlertsPerSecond: 50}
controller:
  replicas: 2
  stabilityWindow: 20s
  resync: 3s
dashboard: {enabled: true}
YAML
  if [[ -f $work/alertmanager-url ]]; then
    {
      printf 'agent:\n  detection:\n    alertmanagerUrl: %s\n    alertmanagerCa: |\n' "$(cat "$work/alertmanager-url")"
      sed 's/^/      /' "$work/am-tls/ca.pem"
    } > "$work/values-alertmanager.yaml"
  fi
}
# -f arguments: the e2e's values, then IMPRINT_HELM_EXTRA_VALUES (a values
# file for a variant run, e.g. agent: {runtimeApi: cri}).
value_files() {
  echo "-f"; echo "$work/values.yaml"
  if [[ -f $work/values-alertmanager.yaml ]]; then echo "-f"; echo "$work/values-alertmanager.yaml"; fi
  if [[ -n ${IMPRINT_HELM_EXTRA_VALUES:-} ]]; then echo "-f"; echo "$IMPRINT_HELM_EXTRA_VALUES"; fi
}

lint_and_server_dry_run() {
  load_image_names
  helm lint "$root/charts/imprint" --kube-version 1.33.0 > "$work/lint" 2>&1 || { cat "$work/lint"; return 1; }
  kubectl create namespace "$RELEASE_NS" > /dev/null || return 1
  kubectl label namespace "$RELEASE_NS" pod-security.kubernetes.io/enforce=privileged > /dev/null || return 1
  # The chart with the e2e's values and with its defaults, and install.yaml
  # (moved to the same namespace): the API server validates every object.
  values > "$work/values.yaml"
  local vf
  mapfile -t vf < <(value_files)
  local version
  version=$(kubectl version -o json | jq -r .serverVersion.gitVersion)
  helm template "$RELEASE" "$root/charts/imprint" -n "$RELEASE_NS" --include-crds "${vf[@]}" \
    --kube-version "$version" |
    kubectl apply --server-side --dry-run=server -f - > "$work/dry" 2>&1 || { cat "$work/dry"; return 1; }
  # The other branches of the templates: privileged, no leader election, an
  # existing priority class, pinned by digest.
  helm template "$RELEASE" "$root/charts/imprint" -n "$RELEASE_NS" "${vf[@]}" --kube-version "$version" \
    --set agent.privileged=true --set controller.replicas=1 --set controller.leaderElection.enabled=false \
    --set agent.priorityClassName=system-node-critical --set agent.hostPID=false \
    --set image.digest=sha256:0000000000000000000000000000000000000000000000000000000000000000 |
    kubectl apply --server-side --dry-run=server -f - > "$work/dry" 2>&1 || { cat "$work/dry"; return 1; }
  "$root/e2e/helm/render.sh" --check > "$work/stale" 2>&1 || { head -20 "$work/stale"; return 1; }
  sed "s/imprint-system/$RELEASE_NS/g" "$root/manifests/install.yaml" |
    kubectl apply --server-side --dry-run=server -f - > "$work/dry" 2>&1 || { cat "$work/dry"; return 1; }
  grep -c "server dry run" "$work/dry" | while read -r n; do note "install.yaml: $n objects accepted (server dry run)"; done
}

snapshot_bpf() { # the kernel's BPF programs and links before the install
  bpftool prog show -j | jq -c '[.[].id]' > "$work/bpf-progs-before" &&
    bpftool link show -j | jq -c '[.[].id]' > "$work/bpf-links-before"
}

install() {
  load_image_names
  # SPO's CRD as SPO ships it (v1, cluster-scoped): a suite that tried the
  # namespaced v1beta1 variant may have left that one behind.
  local crd=$SP
  if [[ $(kubectl get crd "$crd" -o jsonpath='{.spec.scope}' 2> /dev/null) == Namespaced ]]; then
    kubectl delete crd "$crd" --wait=true --timeout=60s > /dev/null || return 1
  fi
  kubectl apply --server-side -f "$CRDS/seccompprofile.crd.yaml" > /dev/null &&
    kubectl wait --for condition=Established --timeout=60s "crd/$SP" > /dev/null &&
    kubectl create namespace "$NS" > /dev/null && kubectl create namespace "$NS2" > /dev/null || return 1
  snapshot_bpf || return 1
  local t0=$SECONDS vf
  mapfile -t vf < <(value_files)
  helm install "$RELEASE" "$root/charts/imprint" -n "$RELEASE_NS" "${vf[@]}" \
    --wait --timeout 180s > "$work/install" 2>&1 || { cat "$work/install"; ks get pods; return 1; }
  note "helm install --wait: $((SECONDS - t0))s"
  ks rollout status daemonset/imprint-agent --timeout=60s &&
    ks rollout status deployment/imprint-controller --timeout=60s || return 1
  # One agent on every node (the chart's agent tolerates every taint).
  [[ $(ks get daemonset imprint-agent -o jsonpath='{.status.numberReady}') == "$(kubectl get nodes -o name | wc -l)" ]] &&
    [[ $(ks get deployment imprint-controller -o jsonpath='{.status.readyReplicas}') == 2 ]] || return 1
  # One replica leads.
  eventually 60 leader_is_a_replica || { ks get pods; ks get lease imprint-controller -o yaml; return 1; }
}
leader_is_a_replica() {
  local holder
  holder=$(ks get lease imprint-controller -o jsonpath='{.spec.holderIdentity}')
  [[ -n $holder ]] && ks get pods -l app.kubernetes.io/component=controller -o name | grep -qx "pod/$holder"
}

# pids_of_pod UID: the host PIDs of a pod's processes (their cgroup paths
# name the pod: pod<uid> with cgroupfs, pod<uid with _> with systemd).
pids_of_pod() {
  grep -lE "pod($1|${1//-/_})" /proc/[0-9]*/cgroup 2> /dev/null | cut -d/ -f3
}
agent_runs_confined() {
  local uid pid='' status want got
  uid=$(agent_field metadata.uid)
  for pid in $(pids_of_pod "$uid"); do
    [[ $(cat "/proc/$pid/comm" 2> /dev/null) == imprint ]] && break
    pid=
  done
  [[ -n $pid ]] || { echo "no imprint process in pod $uid"; return 1; }
  status=$(cat "/proc/$pid/status")
  want=$(ks get daemonset imprint-agent -o json | jq -r '.spec.template.spec.containers[0].securityContext.capabilities.add[]' | sort)
  got=$(cap_names "$(awk '/^CapEff:/ { print $2 }' <<< "$status")")
  [[ $got == "$want" ]] || { echo "effective: $(echo "$got" | tr '\n' ' '); chart: $(echo "$want" | tr '\n' ' ')"; return 1; }
  got=$(cap_names "$(awk '/^CapBnd:/ { print $2 }' <<< "$status")")
  [[ $got == "$want" ]] || { echo "bounding set: $(echo "$got" | tr '\n' ' ')"; return 1; }
  [[ $(awk '/^Seccomp:/ { print $2 }' <<< "$status") == 2 ]] || { echo "the agent runs without seccomp"; return 1; }
  note "agent (pid $pid): capabilities $(echo "$want" | tr '\n' ' ')under the runtime's seccomp profile; $(tr '\0' ' ' < "/proc/$pid/cmdline" | cut -d' ' -f2-)"
}

# --- workloads -----------------------------------------------------------------
# nginx carries a busybox copied in by an init container (/tools), so a shell
# can be exec'd into it later; the server image itself has none.
# server NAME IMAGE REPLICAS PORT [SECURITY-CONTEXT-JSON]: a Deployment of
# one server container (kube.sh's deploy).
server() {
  local tools=''
  [[ $1 == nginx ]] && tools=1
  deploy "$1" image="$2" replicas="$3" port="$4" grace=10 tools="$tools" sc="${5:-}" > /dev/null
}

pod_ips() { k get pods -l "app=$1" --field-selector=status.phase=Running -o jsonpath='{range .items[*]}{.status.podIP}{"\n"}{end}'; }

deploy_workloads() {
  load_image_names
  server nginx "$NGINX_IMAGE" 2 80 && server redis "$REDIS_IMAGE" 1 6379 || return 1
  k rollout status deployment/nginx --timeout=120s > /dev/null && k rollout status deployment/redis --timeout=120s > /dev/null
}

load() { # load LABEL: every nginx pod and the redis pod
  local ip n=0
  for ip in $(pod_ips nginx); do nginx_load "$ip" "$1" || return 1; n=$((n + 1)); done
  [[ $n == 2 ]] || { echo "$n nginx pods answer, expected 2"; return 1; }
  ip=$(pod_ips redis)
  [[ -n $ip ]] && redis_load "$ip" "$1"
}

workloads_serve_load() { load recorded; }

# --- reports and profiles ------------------------------------------------------
reports_one_per_pod_container() {
  local node pod c want=() got line
  node=$WORKLOAD_NODE
  for pod in $(k get pods -l app=nginx -o jsonpath='{.items[*].metadata.name}'); do want+=("$pod/nginx/$node" "$pod/tools/$node"); done
  for pod in $(k get pods -l app=redis -o jsonpath='{.items[*].metadata.name}'); do want+=("$pod/redis/$node"); done
  [[ ${#want[@]} == 5 ]] || { echo "pods: ${want[*]}"; return 1; }
  # Reports are written every 3 s: wait until every container has its own.
  listing() { k get cbr -l '!imprint.dev/archive' -o json | jq -r '.items[] | "\(.spec.subject.pod)/\(.spec.subject.container)/\(.spec.subject.node)"' | sort; }
  eventually 60 bash -c "[[ \$(kubectl -n $NS get cbr -l '!imprint.dev/archive' -o name | wc -l) -ge ${#want[@]} ]]" || { k get cbr; return 1; }
  got=$(listing)
  [[ $got == "$(printf '%s\n' "${want[@]}" | sort)" ]] || { echo "reports: $got"; echo "expected: ${want[*]}"; return 1; }
  # The printer columns a user sees (kubectl get cbr).
  k get cbr > "$work/cbr.txt" || return 1
  while IFS= read -r line; do note "$line"; done < "$work/cbr.txt"
  for c in nginx redis; do
    k get cbr -l "imprint.dev/container=$c" -o json | jq -e '[.items[] | .spec.syscalls.names | length > 30] | all' > /dev/null ||
      { echo "$c: a report holds few syscalls"; return 1; }
  done
}

profiles_become_stable() {
  local t0=$SECONDS line
  eventually 180 phase_is deployment-nginx Stable && eventually 60 phase_is deployment-redis Stable ||
    { k get bp; return 1; }
  note "both BehaviorProfiles Stable $((SECONDS - t0))s after the load"
  k get bp > "$work/bp.txt" && while IFS= read -r line; do note "$line"; done < "$work/bp.txt"
  k get bp deployment-nginx -o json | jq -e '.status.replicas == 2 and .status.nodes == 1' > /dev/null
}

seccomp_profiles_exist() {
  local c name line
  load_image_names
  for c in nginx redis; do
    name=$(seccomp_of "deployment-$c" "$c")
    [[ -n $name ]] || { echo "BehaviorProfile of $c names no SeccompProfile"; return 1; }
    kubectl get "$SP" "$name" -o json > "$work/sp-$c.json" || return 1
    jq -e --arg ns "$NS" '.spec.defaultAction == "SCMP_ACT_ERRNO" and (.spec.syscalls[0].names | length) > 30 and
      .metadata.labels["imprint.dev/profile-namespace"] == $ns' "$work/sp-$c.json" > /dev/null || { jq .spec "$work/sp-$c.json" | head; return 1; }
    k get bp "deployment-$c" -o json | jq -e --arg n "$name" --arg c "$c" \
      '.status.containers[] | select(.name == $c) | .seccompProfile == $n' > /dev/null || { echo "BehaviorProfile of $c does not name $name"; return 1; }
    note "SeccompProfile $name: $(jq '[.spec.syscalls[] | select(.action == "SCMP_ACT_ALLOW") | .names[]] | length' "$work/sp-$c.json") syscalls allowed"
  done
  # The README's ProfileBinding for it passes SPO's CRD.
  kubectl apply --server-side -f "$CRDS/profilebinding.crd.yaml" > /dev/null &&
    kubectl wait --for condition=Established --timeout=60s crd/profilebindings.security-profiles-operator.x-k8s.io > /dev/null || return 1
  k apply --server-side --dry-run=server -f - > /dev/null <<YAML || { echo "ProfileBinding refused"; return 1; }
apiVersion: security-profiles-operator.x-k8s.io/v1
kind: ProfileBinding
metadata: {name: nginx}
spec:
  profileRef: {kind: SeccompProfile, name: $(seccomp_of deployment-nginx nginx)}
  image: $NGINX_IMAGE
YAML
  # What a user sees.
  kubectl get "$SP" -l "imprint.dev/profile-namespace=$NS" > "$work/sp.txt" &&
    k get bp deployment-nginx -o jsonpath='{.status.containers[?(@.name=="nginx")].securityContext}{"\n"}' >> "$work/sp.txt" || return 1
  while IFS= read -r line; do note "$line"; done < "$work/sp.txt"
}

# this_host_is_a_node: one of the nodes' addresses is this host's.
this_host_is_a_node() {
  local ip
  for ip in $(kubectl get nodes -o jsonpath='{.items[*].status.addresses[?(@.type=="InternalIP")].address}'); do
    ip -o addr show | grep -q " inet6\? $ip/" && return 0
  done
  return 1
}

network_policies_are_proposed() {
  local c selector line src blocks
  for c in nginx redis; do
    k get bp "deployment-$c" -o json > "$work/bp-$c.json" || return 1
    selector=$(k get deployment "$c" -o json | jq -c .spec.selector.matchLabels)
    # Their clients are the kubelet and the load, sent from this host: a
    # node (the local cluster: no ingress rule names an address), or a
    # host outside the cluster (kind: the one address it sends from).
    if this_host_is_a_node; then
      blocks='[]'
    else
      src=$(ip -o route get "$(pod_ips "$c" | head -1)" | sed -n 's/.* src \([^ ]*\).*/\1/p')
      blocks="[\"$src/32\"]"
    fi
    jq -e --argjson s "$selector" --argjson blocks "$blocks" '.status.networkPolicy.state == "Proposed" and
      .status.networkPolicy.spec.podSelector.matchLabels == $s and
      (.status.networkPolicy.spec.policyTypes | sort) == ["Egress", "Ingress"] and
      ([.status.networkPolicy.spec.ingress[]?.from[]?.ipBlock.cidr] | unique) == $blocks' "$work/bp-$c.json" > /dev/null ||
      { echo "ingress address blocks expected: $blocks"; jq -c .status.networkPolicy "$work/bp-$c.json"; return 1; }
    # The proposal is a NetworkPolicy the API server takes.
    jq --arg c "$c" '{apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy",
        metadata: {name: ("imprint-" + $c)}, spec: .status.networkPolicy.spec}' "$work/bp-$c.json" |
      k apply --server-side --dry-run=server -f - > /dev/null || { echo "the proposal for $c is refused"; return 1; }
    note "NetworkPolicy proposed for $c: $(jq -c '.status.networkPolicy | {ingressRules, egressRules, unobservedListeners, notes}' "$work/bp-$c.json")"
  done
  k get bp > "$work/bp.txt" || return 1
  head -1 "$work/bp.txt" | grep -q NETWORKPOLICY || { echo "no NetworkPolicy column: $(head -1 "$work/bp.txt")"; return 1; }
  while IFS= read -r line; do note "$line"; done < "$work/bp.txt"
}

# --- two nodes -------------------------------------------------------------------
# One agent per node, each naming only its own runtime's containers: both
# share the kernel, and each leaves the other node's containers out instead
# of recording, reporting or alerting about them: counted as foreign where
# both see the same cgroups (the local cluster:
# imprint_agent_foreign_cgroups_total), as out of view where each node has
# a cgroup namespace of its own (kind: imprint_agent_cgroups_out_of_view). A Deployment spread over both nodes is
# one profile (2 nodes); a client on one node and a server on the other
# name each other; every report is written by its node's agent.
k2() { kubectl -n "$NS2" "$@"; }
two_nodes() { [[ -n $NODE2 ]] || { note "one node: the two-node checks have nothing to check"; return 1; }; }

# nodes_of APP: the nodes APP's running pods are on, sorted.
nodes_of() { k2 get pods -l "app=$1" --field-selector=status.phase=Running -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}' | sort; }

# reports_at_least N: $NS2 holds N reports or more (archives aside).
reports_at_least() { [[ $(k2 get cbr -l '!imprint.dev/archive' -o name | wc -l) -ge $1 ]]; }
# merged: the spread Deployment's profile holds both replicas, both nodes
# and what only the second node's replica ran.
merged() {
  k2 get bp deployment-spread -o json 2> /dev/null |
    jq -e '.status.replicas == 2 and .status.nodes == 2 and (.status.containers[0].executables | index("/tmp/only-on-node2"))' > /dev/null
}
network_of() { # network_of POD: the network entries of POD's report
  k2 get cbr -l '!imprint.dev/archive' -o json | jq -c --arg p "$1" '[.items[] | select(.spec.subject.pod == $p) | .spec.network[]?]'
}
names() { # names POD DIRECTION KIND WORKLOAD
  network_of "$1" | jq -e --arg d "$2" --arg k "$3" --arg w "$4" \
    '[.[] | select(.direction == $d and .peer.kind == $k and .peer.workload.name == $w)] | length > 0' > /dev/null
}
# foreign NODE: the agent on NODE's count of cgroups it left out.
# foreign NODE: the other nodes' cgroups the agent on NODE leaves out, as
# "FOREIGN OUT_OF_VIEW": containers of the hierarchy it sees that no followed
# runtime knows (nodes sharing one cgroup view, as the local cluster's), and
# cgroups outside that view (nodes in cgroup namespaces, as kind's).
foreign() {
  agent_metrics "$1" | awk '$1 == "imprint_agent_foreign_cgroups_total" { f = $2 }
    $1 == "imprint_agent_cgroups_out_of_view" { o = $2 } END { print f + 0, o + 0 }'
}
some_foreign() { local f o; read -r f o < <(foreign "$1"); [[ $f -ge 1 || $o -ge 1 ]]; }

deploy_on_two_nodes() {
  two_nodes || return 0
  # kube.sh's deploy applies with k: here, into $NS2 (a check runs in a subshell).
  k() { kubectl -n "$NS2" "$@"; }
  deploy spread replicas=2 tolerate="$NODE2_TAINT" spread=1 script='exec sleep 3600' > /dev/null &&
    deploy peer-server node="$WORKLOAD_NODE" port=8080 script='mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www' > /dev/null &&
    k2 expose deployment peer-server --port 8080 > /dev/null &&
    deploy peer-client node="$NODE2" tolerate="$NODE2_TAINT" \
      script="while true; do wget -q -O /dev/null http://peer-server.$NS2.svc.cluster.local:8080/; sleep 1; done" > /dev/null || return 1
  local d
  for d in spread peer-server peer-client; do k2 rollout status "deployment/$d" --timeout=120s > /dev/null || return 1; done
  [[ $(nodes_of spread | tr '\n' ' ') == "$(printf '%s\n' "$WORKLOAD_NODE" "$NODE2" | sort | tr '\n' ' ')" ]] ||
    { echo "spread runs on: $(nodes_of spread)"; return 1; }
  # Something only the replica on the second node does: a program of its
  # own (busybox under a name that is no applet: it runs, and says so).
  local pod
  pod=$(k2 get pods -l app=spread --field-selector="spec.nodeName=$NODE2" -o jsonpath='{.items[0].metadata.name}')
  k2 exec "$pod" -- sh -c 'cp /bin/busybox /tmp/only-on-node2 && { /tmp/only-on-node2 2> /dev/null; true; }' || return 1
  note "spread: one replica on $WORKLOAD_NODE, one on $NODE2; peer-server on $WORKLOAD_NODE, peer-client on $NODE2"
}

# Every report names its pod's node (subject and label), which is the only
# node whose agent may write it (the chart's admission policy); both nodes
# have reports.
every_report_is_its_nodes() {
  two_nodes || return 0
  eventually 60 reports_at_least 4 || { k2 get cbr; return 1; }
  local pods reports bad
  pods=$(k2 get pods -o json | jq -c '[.items[] | {key: .metadata.name, value: .spec.nodeName}] | from_entries')
  reports=$(k2 get cbr -l '!imprint.dev/archive' -o json)
  bad=$(jq -r --argjson pods "$pods" '.items[] | select(.spec.subject.node != $pods[.spec.subject.pod] or
      .metadata.labels["imprint.dev/node"] != .spec.subject.node) |
      "\(.metadata.name): subject \(.spec.subject.node), label \(.metadata.labels["imprint.dev/node"]), pod on \($pods[.spec.subject.pod])"' <<< "$reports")
  [[ -z $bad ]] || { echo "$bad"; return 1; }
  [[ $(jq -r '[.items[].spec.subject.node] | unique | length' <<< "$reports") == 2 ]] ||
    { echo "reports of one node only: $(jq -r '[.items[].spec.subject.node] | unique' <<< "$reports")"; return 1; }
  note "$(jq -r '.items | group_by(.spec.subject.node)[] | "\(.[0].spec.subject.node): \(length) reports"' <<< "$reports" | paste -sd ';' -)"
}

a_workload_on_two_nodes_is_one_profile() {
  two_nodes || return 0
  eventually 120 merged ||
    { k2 get bp deployment-spread -o json | jq -c '.status | {replicas, nodes, executables: [.containers[].executables]}'; return 1; }
  note "$(k2 get bp deployment-spread | tail -1)"
}

peers_across_nodes_are_named() {
  two_nodes || return 0
  local client server
  client=$(k2 get pods -l app=peer-client -o jsonpath='{.items[0].metadata.name}')
  server=$(k2 get pods -l app=peer-server -o jsonpath='{.items[0].metadata.name}')
  eventually 60 names "$client" outbound Service peer-server || { network_of "$client"; return 1; }
  eventually 60 names "$server" inbound Pod peer-client || { network_of "$server"; return 1; }
  note "the client on $NODE2 names the Service peer-server; the server on $WORKLOAD_NODE names the pod of peer-client"
}

# Each agent counts the other node's containers as foreign or out of its
# view; a terminal
# shell in the client (on the second node) is an alert of the second
# node's agent, and the first node's agent says nothing about it.
each_agent_leaves_the_other_nodes_containers_alone() {
  two_nodes || return 0
  local node f o client uid
  for node in "$WORKLOAD_NODE" "$NODE2"; do
    eventually 60 some_foreign "$node" || { echo "the agent on $node counts no foreign cgroup: $(foreign "$node")"; return 1; }
    read -r f o < <(foreign "$node")
    note "agent on $node: left out $f cgroups of the other node's containers (same cgroup view), $o cgroups outside its view (another cgroup namespace's)"
  done
  client=$(k2 get pods -l app=peer-client -o jsonpath='{.items[0].metadata.name}')
  uid=$(k2 get pod "$client" -o jsonpath='{.metadata.uid}')
  timeout 60 script -qec "kubectl -n $NS2 exec -it $client -- sh -c 'exit 0'" /dev/null < /dev/null > "$work/exec2" 2>&1 ||
    { cat "$work/exec2"; return 1; }
  eventually 30 alerted "$client" terminal-shell "$NODE2" || { echo "no terminal-shell alert from the agent on $NODE2"; agent_alerts "$NODE2" | tail -3; return 1; }
  sleep 5
  if agent_alerts "$WORKLOAD_NODE" | grep -E "$client|$uid|${uid//-/_}"; then
    echo "the agent on $WORKLOAD_NODE alerted about a container of $NODE2"; return 1
  fi
}

# --- enforcement ---------------------------------------------------------------
# Each container's SeccompProfile (the name its BehaviorProfile gives) as a
# localhost profile of that name, and its recommended securityContext (kube.sh).

runs_under_profile() { # runs_under_profile APP COMM: every COMM process of APP's pods is filtered
  local uid pid n=0
  for uid in $(k get pods -l "app=$1" -o jsonpath='{.items[*].metadata.uid}'); do
    for pid in $(pids_of_pod "$uid"); do
      [[ $(cat "/proc/$pid/comm" 2> /dev/null) == "$2" ]] || continue
      [[ $(awk '/^Seccomp:/ { print $2 }' "/proc/$pid/status") == 2 ]] || { echo "$2 ($pid) runs without seccomp"; return 1; }
      n=$((n + 1))
    done
  done
  [[ $n -gt 0 ]] || { echo "no $2 process found"; return 1; }
}

enforced_workloads_serve_without_errors() {
  load_image_names
  local c sc name
  for c in nginx redis; do
    name=$(seccomp_of "deployment-$c" "$c") && [[ -n $name ]] || return 1
    install_profile "$name" || return 1
    sc=$(enforced_context "deployment-$c" "$c" "$name") || return 1
    note "$c: securityContext $sc"
    echo "$sc" > "$work/sc-$c.json"
  done
  server nginx "$NGINX_IMAGE" 2 80 "$(cat "$work/sc-nginx.json")" &&
    server redis "$REDIS_IMAGE" 1 6379 "$(cat "$work/sc-redis.json")" || return 1
  k rollout status deployment/nginx --timeout=120s > /dev/null && k rollout status deployment/redis --timeout=120s > /dev/null ||
    { k get pods; k describe pods | tail -20; return 1; }
  # Only the new pods answer.
  eventually 60 bash -c "[[ \$(kubectl -n $NS get pods -o name | wc -l) == 3 ]]" || return 1
  if [[ -n $KUBELET_ROOT ]]; then
    runs_under_profile nginx nginx && runs_under_profile redis redis-server || return 1
  fi
  load enforced
}

# Busybox applets that each make one syscall nginx never makes, with the
# syscall: the test uses the first whose syscall the profile does not allow.
# (Debian's busybox-static has no flock or nice applet; runc init's mknod
# puts mknodat into every profile.)
OUTSIDE=("ioprio_set:/tools/busybox ionice -c 3 /tools/busybox true"
  "fallocate:/tools/busybox fallocate -l 4096 /tools/falloc"
  "setpriority:/tools/busybox renice -n 5 -p \$\$"
  "mknodat:/tools/busybox mkfifo /tools/fifo")

new_behavior_is_denied_and_an_anomaly() {
  local pod out allowed entry syscall cmd=
  # The restarted pods may still bring the profile a few new facts (the
  # runtime under the new securityContext); start from Stable.
  eventually 120 phase_is deployment-nginx Stable || { k get bp; return 1; }
  allowed=$(kubectl get "$SP" "$(seccomp_of deployment-nginx nginx)" -o json |
    jq -r '.spec.syscalls[] | select(.action == "SCMP_ACT_ALLOW") | .names[]')
  for entry in "${OUTSIDE[@]}"; do
    syscall=${entry%%:*}
    grep -qx "$syscall" <<< "$allowed" || { cmd=${entry#*:}; break; }
  done
  [[ -n $cmd ]] || { echo "every candidate syscall is in nginx's profile"; return 1; }
  pod=$(k get pods -l app=nginx -o jsonpath='{.items[0].metadata.name}')
  # Without a filter the command works (a busybox pod with the same tools path).
  k run outside-control --image="$BUSYBOX" --image-pull-policy=Never --restart=Never -- \
    /bin/sh -c "mkdir -p /tools && cp /bin/busybox /tools/busybox && $cmd && echo worked" > /dev/null &&
    k wait --for=jsonpath='{.status.phase}'=Succeeded --timeout=60s pod/outside-control > /dev/null &&
    k logs outside-control | grep -q worked || { echo "'$cmd' fails even without a profile:"; k logs outside-control; return 1; }
  k delete pod outside-control --wait=false > /dev/null
  # Under nginx's profile the filter refuses the syscall.
  out=$(k exec "$pod" -c nginx -- /tools/busybox sh -c "$cmd" 2>&1) && { echo "'$cmd' succeeded under the profile: $out"; return 1; }
  grep -q "Operation not permitted" <<< "$out" || { echo "unexpected: $out"; return 1; }
  note "a shell exec'd into $pod ran '$cmd' ($syscall, not in the profile): $out"
  # The agent saw a new program in the nginx container; the profile,
  # Stable, guards: an anomaly, not learnt.
  eventually 60 holds bp deployment-nginx '.status.containers[] | select(.name == "nginx") |
    [.anomalies[]? | select(.kind == "exec" and .value == "/tools/busybox")] | length == 1' ||
    { k get bp deployment-nginx -o json | jq -c '.status.containers[].anomalies'; return 1; }
  holds bp deployment-nginx '.status.guarding and (.status.containers[] | select(.name == "nginx") |
    .executables | index("/tools/busybox") | not)' || { echo "learnt while guarding"; return 1; }
}

# Detection in the cluster: nginx guarding (Stable), a shell on a terminal
# exec'd into it runs a package manager's name, writes /etc, listens on a
# new port: each an alert within 10 s, as a JSON line in the agent's log
# and a Warning Event on the pod; the profile's allow-list and SeccompProfile
# stay as they were. The listener accepted in spec.accept: the same
# listener in the other replica alerts no more (cooldowns are per
# container, so only the profile can have silenced it).
agent_alerts() { # agent_alerts [NODE]: the alert lines of the agent's log (the workloads' node's)
  local pod
  pod=$(agent_field metadata.name "${1:-}")
  ks logs "$pod" 2> /dev/null | grep '^{"schema":"imprint.dev/alert/v1"' | jq -cR 'fromjson? // empty'
}
alerted() { # alerted POD RULE [NODE]: an alert of RULE about POD in the agent's log
  agent_alerts "${3:-}" | jq -se --arg p "$1" --arg r "$2" '[.[] | select(.subject.pod == $p and .rule == $r)] | length > 0' > /dev/null
}
warned() { # warned POD REASON: a Warning Event on POD with REASON
  kubectl get events.events.k8s.io -n "$NS" -o json |
    jq -e --arg p "$1" --arg r "$2" '[.items[] | select(.regarding.name == $p and .reason == $r and .type == "Warning")] | length > 0' > /dev/null
}

an_intruder_in_a_guarded_pod_is_alerted() {
  local pods pod other t0 before_bp before_sp rule reason
  holds bp deployment-nginx '.status.guarding' || { echo "nginx's profile does not guard"; return 1; }
  note "guarding profiles (what each agent compares against): nginx $(k get bp deployment-nginx -o json | wc -c) bytes, redis $(k get bp deployment-redis -o json | wc -c) bytes"
  before_bp=$(k get bp deployment-nginx -o json | jq -c '[.status.containers[] | {name, syscalls, executables, network, files}]')
  before_sp=$(kubectl get "$SP" "$(seccomp_of deployment-nginx nginx)" -o json | jq -c .spec)
  mapfile -t pods < <(k get pods -l app=nginx -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
  pod=${pods[0]} other=${pods[1]}
  t0=$SECONDS
  # A terminal (script gives kubectl one), as `kubectl exec -it` from a person.
  # (The nginx image has no tools of its own: every command is busybox's.
  # Before enforcement: under nginx's seccomp profile a shell cannot even
  # reap its children.)
  timeout 60 script -qec "kubectl -n $NS exec -it $pod -c nginx -- /tools/busybox sh -c '/tools/busybox ln -sf /tools/busybox /tmp/apt-get; /tmp/apt-get install curl; echo x > /etc/imprint-e2e; /tools/busybox nc -l -p 4444 & /tools/busybox sleep 1; kill \$!; exit 0'" /dev/null < /dev/null > "$work/exec" 2>&1
  for rule in terminal-shell package-manager write-below-system-dir unexpected-listener; do
    eventually 10 alerted "$pod" "$rule" || {
      echo "no $rule alert within 10s; the pod's alerts:"
      agent_alerts | jq -c --arg p "$pod" 'select(.subject.pod == $p) | [.rule, .observed.kind, (.observed.path // .observed.name // .observed.port), .process.args[0:2]]'
      return 1
    }
  done
  note "4 alerts in the agent's log $((SECONDS - t0))s after the exec (terminal-shell, package-manager, write-below-system-dir, unexpected-listener)"
  agent_alerts | jq -c --arg p "$pod" 'select(.subject.pod == $p and .rule == "package-manager") |
    {rule, process: .process.args, ancestry: [.ancestry[].args[0]], workload: .subject.workload}' | head -1 |
    while IFS= read -r line; do note "$line"; done
  for reason in TerminalShell PackageManager WriteBelowSystemDir UnexpectedListener; do
    eventually 20 warned "$pod" "$reason" || { echo "no Warning Event $reason on $pod"; return 1; }
  done
  if [[ -f $work/alertmanager-url ]]; then
    for rule in terminal-shell package-manager write-below-system-dir unexpected-listener; do
      eventually 10 am_alerted "$pod" "$rule" || { echo "no $rule alert in Alertmanager"; tail -5 "$work/alertmanager.log"; return 1; }
    done
    note "Alertmanager (its API) holds the 4 alerts among the pod's: $(am_curl "$(cat "$work/alertmanager-url")/api/v2/alerts" |
      jq -c --arg p "$pod" '[.[] | select(.labels.pod == $p) | .labels.alertname] | sort')"
  fi
  sleep 5 # two controller resyncs with the intruder's report written
  [[ $(k get bp deployment-nginx -o json | jq -c '[.status.containers[] | {name, syscalls, executables, network, files}]') == "$before_bp" ]] ||
    { echo "the allow-list changed while guarding"; return 1; }
  [[ $(kubectl get "$SP" "$(seccomp_of deployment-nginx nginx)" -o json | jq -c .spec) == "$before_sp" ]] ||
    { echo "the SeccompProfile changed while guarding"; return 1; }
  # Accept the listener as the profile's anomalies name it; once the
  # profile holds it (the agent takes the new allow-list in from its watch
  # and places the pod's containers again with their next event), the other
  # replica's listener raises nothing.
  local listener=''
  listener_anomaly() {
    k get bp deployment-nginx -o json | jq -er '.status.containers[] | select(.name == "nginx") |
      .anomalies[]? | select(.kind == "network" and (.value | endswith(" 4444"))) | .value'
  }
  eventually 30 listener_anomaly > /dev/null || { echo "the listener is not among the profile's anomalies"; return 1; }
  listener=$(listener_anomaly | head -1)
  k patch bp deployment-nginx --type=merge \
    -p "{\"spec\":{\"accept\":[{\"container\":\"nginx\",\"kind\":\"network\",\"value\":\"$listener\"}]}}" > /dev/null || return 1
  eventually 30 holds bp deployment-nginx '.status.containers[] | select(.name == "nginx") | .network | any(.port == 4444)' || return 1
  sleep 5
  k exec "$other" -c nginx -- /tools/busybox sh -c '/tools/busybox nc -l -p 4444 & /tools/busybox sleep 1; kill $!; echo x > /etc/imprint-e2e-2' > /dev/null 2>&1
  eventually 10 alerted "$other" write-below-system-dir || { echo "the other replica alerted nothing at all"; return 1; }
  ! alerted "$other" unexpected-listener || {
    echo "an accepted listener ($listener) still alerts:"
    agent_alerts | jq -c --arg p "$other" 'select(.subject.pod == $p and .rule == "unexpected-listener") | .observed'
    return 1
  }
  note "accepted '$listener' (the profile's anomaly): the other replica's listener raised nothing (its /etc write did)"
}

# agent_metrics: what the agent's /metrics serves.
agent_metrics() {
  local ip
  ip=$(agent_field status.podIP "${1:-}") && test_network_only "$ip" || return 1
  curl -fsS "http://$ip:9090/metrics"
}
# agent_metric NAME: the value of an unlabelled metric of the agent.
agent_metric() { agent_metrics | awk -v n="$1" '$1 == n { print $2 }'; }
# A flood in a guarded pod: a program dropped into the container and run
# 10,000 times raises one alert (its cooldown holds the rest; the kernel
# sends a repeated exec as a count), with the agent's CPU and memory over
# the flood as figures. Also: the agent's gauge of guarded containers.
a_flood_in_a_guarded_pod_is_one_alert() {
  local pod pid hz a b rss0 rss1 t0 n guarded ran
  pod=$(k get pods -l app=nginx -o jsonpath='{.items[1].metadata.name}')
  pid=$(agent_pid) || { echo "no agent process"; return 1; }
  guarded=$(agent_metric imprint_agent_guarded_containers)
  [[ ${guarded:-0} -ge 1 ]] || { echo "the agent's gauge of guarded containers: '${guarded}'"; return 1; }
  hz=$(getconf CLK_TCK)
  a=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
  rss0=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")
  t0=$SECONDS
  ran=$(k exec "$pod" -c nginx -- /tools/busybox sh -c \
    '/tools/busybox cp /tools/busybox /tmp/true; i=0; while /tmp/true && [ $i -lt 10000 ]; do i=$((i + 1)); done; echo $i')
  [[ $ran == 10000 ]] || { echo "the flood ran $ran times"; return 1; }
  sleep 3
  b=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
  rss1=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")
  n=$(agent_alerts | jq -s --arg p "$pod" '[.[] | select(.subject.pod == $p and .observed.kind == "exec" and .observed.path == "/tmp/true")] | length')
  [[ $n -eq 1 ]] || {
    echo "$n alerts of /tmp/true (one expected):"
    agent_alerts | jq -c --arg p "$pod" 'select(.subject.pod == $p and .observed.kind == "exec" and .observed.path == "/tmp/true") | [.rule, .count]'
    return 1
  }
  note "10,000 execs of /tmp/true in $((SECONDS - t0 - 3))s: 1 alert ($(agent_alerts | jq -r --arg p "$pod" 'select(.subject.pod == $p and .observed.kind == "exec" and .observed.path == "/tmp/true") | .rule')); agent CPU $(awk -v a="$a" -v b="$b" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz }') s over it, RSS $((rss0 / 1024)) -> $((rss1 / 1024)) MiB; guarded containers on the node: $guarded"
}

# The trust model: a report write by the agent's ServiceAccount is bound to
# the node named in its token. Impersonating that ServiceAccount (the API
# server's impersonation, with the token's node claim as user extra):
# another node's claim, an archive, or no claim at all is refused; its own
# node's report is accepted; a real agent's report cannot be taken over
# from another node. The agents' own writes go on (no 403 in their logs,
# checked next).
# forge NAME CLAIM LABEL-NODE SUBJECT-NODE [EXTRA-LABELS]: apply a report as
# the agent, with CLAIM as its node (none when empty); kubectl's output.
forge() {
  local as=(--as "$AGENT_USER")
  [[ -n $2 ]] && as+=(--as-user-extra "authentication.kubernetes.io/node-name=$2")
  k apply --server-side --field-manager=imprint-agent "${as[@]}" -f - 2>&1 <<YAML
apiVersion: imprint.dev/v1alpha1
kind: ContainerBehaviorReport
metadata:
  name: $1
  labels: {imprint.dev/node: $3${5:+, $5}}
spec:
  subject: {namespace: $NS, pod: forged, container: forged, node: $4}
  syscalls: {arch: x86_64, names: [read, reboot]}
YAML
}

forged_reports_are_refused() {
  local node out report
  AGENT_USER=system:serviceaccount:$RELEASE_NS:$(ks get ds -o jsonpath='{.items[0].spec.template.spec.serviceAccountName}')
  node=$WORKLOAD_NODE
  out=$(forge forged-elsewhere other-node "$node" "$node") &&
    { echo "a report for $node written with another node's token: $out"; return 1; }
  grep -q "must be that node's" <<< "$out" || { echo "refused, but not by the policy: $out"; return 1; }
  note "another node's token: $(grep -o 'ValidatingAdmissionPolicy.*' <<< "$out" | head -c 200)"
  out=$(forge forged-archive "$node" "$node" "$node" 'imprint.dev/archive: "true"') &&
    { echo "an archive written by the agent: $out"; return 1; }
  grep -q "never writes archives" <<< "$out" || { echo "$out"; return 1; }
  out=$(forge forged-unclaimed "" "$node" "$node") && { echo "written without a node claim: $out"; return 1; }
  grep -q "names no node" <<< "$out" || { echo "$out"; return 1; }
  # Taking over a real agent's report from another node.
  report=$(k get cbr -l "imprint.dev/node=$node,!imprint.dev/archive" -o jsonpath='{.items[0].metadata.name}')
  [[ -n $report ]] || { echo "no agent report to take over"; return 1; }
  out=$(forge "$report" other-node other-node other-node) && { echo "another node took over $report: $out"; return 1; }
  grep -q "may update only its own reports\|must be that node's" <<< "$out" || { echo "$out"; return 1; }
  # The agent's own node: accepted.
  out=$(forge forged-here "$node" "$node" "$node") || { echo "the node's own report refused: $out"; return 1; }
  k delete cbr forged-here > /dev/null
}

no_forbidden_in_logs() {
  local pod
  for pod in $(ks get pods -o name); do
    ks logs "$pod" > "$work/log" 2>&1
    if grep -iE "forbidden|code: 403" "$work/log" | head -3 | grep .; then echo "in $pod"; return 1; fi
  done
}

metrics_are_served() {
  local controller a c
  controller=$(ks get pod "$(ks get lease imprint-controller -o jsonpath='{.spec.holderIdentity}')" -o jsonpath='{.status.podIP}')
  a=$(agent_metrics) && test_network_only "$controller" && c=$(curl -fsS "http://$controller:9091/metrics") || return 1
  grep -E '^imprint_agent_report_writes_total\{kind="applied"\} [1-9]' <<< "$a" > /dev/null &&
    grep -E '^imprint_agent_events_total\{kind="syscall"\} [1-9]' <<< "$a" > /dev/null &&
    grep -E '^imprint_agent_containers_tracked [1-9]' <<< "$a" > /dev/null &&
    grep -E '^imprint_agent_guarded_containers [1-9]' <<< "$a" > /dev/null &&
    grep -E '^imprint_agent_covered_reports [1-9]' <<< "$a" > /dev/null &&
    grep -E '^imprint_controller_profiles\{kind="(Stable|Learning)"\} [1-9]' <<< "$c" > /dev/null &&
    grep -E '^imprint_controller_merges_total [1-9]' <<< "$c" > /dev/null || { echo "$a"; echo "$c"; return 1; }
  # Memory after the load (figures, not limits).
  local uid pid rss=()
  for uid in $(ks get pods -o jsonpath='{.items[*].metadata.uid}'); do
    for pid in $(pids_of_pod "$uid"); do
      [[ $(cat "/proc/$pid/comm" 2> /dev/null) == imprint ]] &&
        rss+=("$(tr '\0' ' ' < "/proc/$pid/cmdline" | cut -d' ' -f2) $(awk '/^VmRSS:/ { printf "%d MiB", $2 / 1024 }' "/proc/$pid/status")")
    done
  done
  note "resident memory: ${rss[*]}"
  # The dashboard's ConfigMap holds a dashboard whose queries name only served metrics.
  local names
  names=$( (echo "$a"; echo "$c") | awk '/^imprint_/ { sub(/[{ ].*/, ""); sub(/_(bucket|sum|count)$/, ""); print }' | sort -u)
  ks get configmap imprint-dashboard -o jsonpath='{.data.imprint\.json}' | jq -r '.panels[].targets[]?.expr' > "$work/queries"
  grep -oE 'imprint_[a-z_]+' "$work/queries" | sed -E 's/_(bucket|sum|count)$//' | sort -u | while read -r m; do
    grep -qx "$m" <<< "$names" || { echo "dashboard queries $m, not served"; exit 1; }
  done || return 1
  [[ -n $SOCKET ]] || return 0
  # Every query of the dashboard, as Grafana would send it, answered with
  # data by the real Prometheus scraping through the chart's Services.
  local query n=0
  prometheus_targets || return 1
  [[ $(jq '[.[].targets[]] | length' "$work/targets.json") -ge 3 ]] ||
    { echo "targets: $(cat "$work/targets.json")"; return 1; }
  while IFS= read -r query; do
    query=${query//\$namespace/$RELEASE_NS}
    query=${query//\$node/.*}
    query=${query//\$__rate_interval/1m}
    eventually 60 prom_has_data "$query" || { echo "Prometheus has no data for: $query"; tail -3 "$work/prometheus.log"; return 1; }
    n=$((n + 1))
  done < "$work/queries"
  note "Prometheus answered all $n dashboard queries with data (alerts by rule included)"
}

# --- upgrade -------------------------------------------------------------------
agent_pid() { # the host PID of the running agent's imprint process
  local uid pid
  uid=$(agent_field metadata.uid) || return 1
  for pid in $(pids_of_pod "$uid"); do
    [[ $(cat "/proc/$pid/comm" 2> /dev/null) == imprint ]] && { echo "$pid"; return 0; }
  done
  return 1
}

upgrade_rolls_the_agent_and_keeps_the_lease() {
  local old new vf reports id pid kind stale=()
  old=$(agent_pid) || { echo "no agent process"; return 1; }
  reports=$(k get cbr -o name | wc -l)
  mapfile -t vf < <(value_files)
  helm upgrade "$RELEASE" "$root/charts/imprint" -n "$RELEASE_NS" "${vf[@]}" --set agent.interval=4s \
    --wait --timeout 120s > "$work/upgrade" 2>&1 || { cat "$work/upgrade"; return 1; }
  ks rollout status daemonset/imprint-agent --timeout=60s > /dev/null || return 1
  eventually 30 bash -c "! kill -0 $old 2> /dev/null" || { echo "the old agent ($old) still runs"; return 1; }
  new=$(agent_pid) || { echo "no agent process after the upgrade"; return 1; }
  # The Lease the chart made still elects (Helm's merge leaves its spec to the replicas).
  eventually 60 leader_is_a_replica || { ks get lease imprint-controller -o yaml; return 1; }
  # The old agent's programs and links went with it: every new one is the
  # new agent's (or another process's, outside the release).
  for kind in prog link; do
    for id in $(bpftool "$kind" show -j | jq -r --argjson before "$(cat "$work/bpf-${kind}s-before")" \
      '.[] | select(.id as $i | $before | index($i) | not) | .id'); do
      pid=$(held_by "$kind" "$id" | head -1)
      [[ -z $pid || $pid == "$old" ]] && bpftool "$kind" show id "$id" > /dev/null 2>&1 && stale+=("$kind $id (${pid:-no holder})")
    done
  done
  [[ ${#stale[@]} == 0 ]] || { echo "left by the old agent: ${stale[*]}"; return 1; }
  # The reports are still there, and the new agent writes (read back, merged).
  [[ $(k get cbr -o name | wc -l) -ge $reports ]] || { echo "reports: $reports before, $(k get cbr -o name | wc -l) after"; return 1; }
  note "helm upgrade: agent pid $old -> $new, Lease held, the old agent's BPF objects gone"
}

# --- uninstall -----------------------------------------------------------------
uninstall_leaves_only_the_crds() {
  helm uninstall "$RELEASE" -n "$RELEASE_NS" --wait --timeout 180s > "$work/uninstall" 2>&1 || { cat "$work/uninstall"; return 1; }
  eventually 60 bash -c "[[ -z \$(kubectl -n $RELEASE_NS get pods -o name) ]]" || { ks get pods; return 1; }
  local left
  # The release's objects, and the cleanup hook's (removed once it succeeded).
  left=$(kubectl get daemonsets,deployments,jobs,services,serviceaccounts,roles,rolebindings,configmaps,leases \
    -n "$RELEASE_NS" -l "app.kubernetes.io/instance=$RELEASE" -o name 2> /dev/null)
  left+=$(kubectl get clusterroles,clusterrolebindings,priorityclasses -l "app.kubernetes.io/instance=$RELEASE" -o name 2> /dev/null)
  [[ -z $left ]] || { echo "left: $left"; return 1; }
  kubectl get crd containerbehaviorreports.imprint.dev behaviorprofiles.imprint.dev > /dev/null || { echo "CRDs removed"; return 1; }
  # The reports and profiles (the release's results, not its objects) stay.
  [[ $(k get cbr -o name | wc -l) -ge 5 ]] && k get bp deployment-nginx > /dev/null
}

# After the uninstall nothing holds a report: the cleanup Job removed the
# fold finalizer once the agents were gone, so a pod deleted now takes its
# report with it (and its namespace could go).
uninstall_releases_the_reports() {
  local held
  held=$(k get cbr -o json | jq -r '.items[] | select(.metadata.finalizers // [] | index("imprint.dev/fold")) | .metadata.name')
  [[ -z $held ]] || { echo "still held by the fold finalizer: $held"; return 1; }
  local pod report
  pod=$(k get pods -l app=redis -o jsonpath='{.items[0].metadata.name}')
  report=$(k get cbr -l imprint.dev/workload-name=redis -o json |
    jq -r --arg pod "$pod" '.items[] | select(.spec.subject.pod == $pod) | .metadata.name' | head -1)
  [[ -n $pod && -n $report ]] || { echo "no redis pod ($pod) or report ($report)"; k get cbr; return 1; }
  k delete pod "$pod" --wait=true --timeout=60s > /dev/null || return 1
  eventually 60 bash -c "! kubectl -n $NS get cbr $report > /dev/null 2>&1" || { k get cbr "$report" -o yaml | head -30; return 1; }
  note "uninstall: $(k get cbr -o name | wc -l) reports kept, none held; the deleted pod's report went with it"
}

# imprint cleanup by hand (as after a kubectl-applied install): a report
# held again is released; pods that outlast --timeout are named, and the
# reports are released anyway.
cleanup_by_hand_names_pods_left() {
  local bin=${IMPRINT_BIN:-$(command -v imprint)} report out
  report=$(k get cbr -o jsonpath='{.items[0].metadata.name}')
  k patch cbr "$report" --type merge -p '{"metadata":{"finalizers":["imprint.dev/fold"]}}' > /dev/null || return 1
  out=$("$bin" cleanup --wait-for-pods app=nginx --pods-namespace "$NS" --timeout 3s 2>&1) || { echo "$out"; return 1; }
  grep -q "released 1 report(s)" <<< "$out" && grep -q "still there when the wait ended: nginx-" <<< "$out" ||
    { echo "$out"; return 1; }
  [[ -z $(k get cbr "$report" -o jsonpath='{.metadata.finalizers}') ]] || { echo "$report still held"; return 1; }
}

# After the uninstall, an install made with kubectl from manifests/install.yaml
# (only its agent ClusterRole, which is what the chart recognises) makes a
# helm install refuse, naming it as such.
kubectl_install_is_recognised() {
  local out role
  role=$(mktemp)
  "$root/e2e/helm/render.sh" --stdout | kubectl create --dry-run=client -o json -f - |
    jq 'select(.kind == "ClusterRole" and .metadata.labels["app.kubernetes.io/component"] == "agent")' > "$role"
  kubectl apply -f "$role" > /dev/null || { rm -f "$role"; return 1; }
  out=$(helm install imprint-second "$root/charts/imprint" -n "$RELEASE_NS" --dry-run=server 2>&1)
  local status=$?
  kubectl delete -f "$role" > /dev/null; rm -f "$role"
  [[ $status != 0 ]] || { echo "a helm install beside a kubectl one was accepted"; return 1; }
  grep -q "already installed in this cluster without Helm" <<< "$out" || { echo "$out"; return 1; }
}

# One install per cluster: a second release is refused with a clear error.
second_install_is_refused() {
  local out
  if out=$(helm install imprint-second "$root/charts/imprint" -n "$RELEASE_NS" --dry-run=server 2>&1); then
    echo "a second release was accepted"; return 1
  fi
  grep -q "imprint is already installed in this cluster (release \"$RELEASE\"" <<< "$out" || { echo "$out"; return 1; }
}

# held_by prog|link ID: the PIDs whose file descriptors hold a BPF program or link.
held_by() {
  grep -lsE "^${1}_id:[[:space:]]+$2\$" /proc/[0-9]*/fdinfo/* 2> /dev/null | cut -d/ -f3 | sort -u
}

no_bpf_left() {
  local kind id pid new line leaked=() others=()
  # What the agent attached goes with its process: links and programs are
  # held by its file descriptors (no pins, no fd-less cgroup attachments).
  # New ones still held by a live process belong to someone else (an
  # imprint run on the host, for example) and are named, not counted.
  for kind in prog link; do
    new=$(bpftool "$kind" show -j | jq -r --argjson before "$(cat "$work/bpf-${kind}s-before")" \
      '.[] | select(.id as $i | $before | index($i) | not) | .id')
    for id in $new; do
      pid=$(held_by "$kind" "$id" | head -1)
      if [[ -n $pid ]]; then others+=("$kind $id (pid $pid: $(tr '\0' ' ' < "/proc/$pid/cmdline" | cut -c1-60))"); continue; fi
      # Gone meanwhile (another process's short-lived probe): not left.
      sleep 0.2
      line=$(bpftool "$kind" show id "$id" 2> /dev/null | head -1) || continue
      [[ -z $(held_by "$kind" "$id") ]] && leaked+=("$kind $id: $line")
    done
  done
  [[ ${#others[@]} == 0 ]] || note "BPF objects of other processes, not the release's: ${#others[@]} (${others[0]}, ...)"
  [[ ${#leaked[@]} == 0 ]] || { printf 'left attached: %s\n' "${leaked[@]}"; return 1; }
  note "BPF: nothing of the agent left attached (before the install: $(jq length "$work/bpf-progs-before") programs, $(jq length "$work/bpf-links-before") links)"
}

t0=$SECONDS
check "images: imprint from IMPRINT_BIN, nginx and redis, imported" images
check "Alertmanager and Prometheus (Debian's) started for the suite" start_monitoring
check "helm lint; chart and install.yaml accepted by a server-side dry run" lint_and_server_dry_run
check "helm install: agent DaemonSet and controller (2 replicas, one leads) Ready" install
check "a second install in the same cluster is refused, naming the first" second_install_is_refused
check "the agent runs with exactly the chart's capabilities, under seccomp" agent_runs_confined
check "nginx (2 replicas) and redis deployed" deploy_workloads
check "real load: wrk + curl against nginx, redis-benchmark against redis" workloads_serve_load
check "one ContainerBehaviorReport per pod container: pod, container, node" reports_one_per_pod_container
check "each workload's BehaviorProfile reaches Stable" profiles_become_stable
check "SeccompProfiles exist, validated by SPO's CRD (and a ProfileBinding for one)" seccomp_profiles_exist
check "a NetworkPolicy is proposed per workload: its own selector, taken by the API server" network_policies_are_proposed
check "two nodes: a Deployment spread over both, a client on one and its server on the other" deploy_on_two_nodes
check "two nodes: every report names its pod's node, whose agent alone may write it" every_report_is_its_nodes
check "two nodes: the spread Deployment is one profile over 2 nodes, holding what one replica did" a_workload_on_two_nodes_is_one_profile
check "two nodes: a client and its server on different nodes name each other" peers_across_nodes_are_named
check "two nodes: each agent leaves the other node's containers out (counted), alerts only on its own" each_agent_leaves_the_other_nodes_containers_alone
check "an intruder in a guarded pod: alerts in 10s (log, Events, Alertmanager), allow-list unchanged; an accepted item alerts no more" an_intruder_in_a_guarded_pod_is_alerted
check "a flood in a guarded pod (10,000 execs of a dropped program, busybox as /tmp/true): one alert; the agent's CPU and memory over it" a_flood_in_a_guarded_pod_is_one_alert
check "enforced: localhost profiles + recommended securityContext, same load, zero errors" enforced_workloads_serve_without_errors
check "new behavior after enforcement: denied, and an anomaly of the guarding profile" new_behavior_is_denied_and_an_anomaly
check "forged reports refused: another node's token, an archive, no node claim, a take-over; the node's own accepted" forged_reports_are_refused
check "no 403 in the agent's and controller's logs (the chart's RBAC suffices)" no_forbidden_in_logs
check "metrics served; a real Prometheus answers every dashboard query with data" metrics_are_served
check "helm upgrade rolls the agent (its BPF objects go with it) and keeps the Lease" upgrade_rolls_the_agent_and_keeps_the_lease
check "helm uninstall removes everything but the CRDs (and the cleanup hook's objects)" uninstall_leaves_only_the_crds
check "after the uninstall no report is held: a pod deleted now takes its report" uninstall_releases_the_reports
check "imprint cleanup by hand releases a held report and names pods that outlast its wait" cleanup_by_hand_names_pods_left
check "a helm install beside a kubectl-applied install.yaml is refused, naming it" kubectl_install_is_recognised
check "no BPF program or link left attached" no_bpf_left
note "helm suite: $((SECONDS - t0))s"
cat "$work/notes" 2> /dev/null
finish helm
