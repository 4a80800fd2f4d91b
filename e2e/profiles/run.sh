#!/usr/bin/env bash
# shellcheck disable=SC2016 # the $ in single quotes expand inside the pods
# Cluster-mode suite: `imprint agent` and `imprint controller` against the
# real API server, kubelet and containerd of the local e2e cluster.
#   - one ContainerBehaviorReport per pod container, with the right pod,
#     container, node and owning workload
#   - a Deployment of 2 replicas, each doing something of its own, merges
#     into one BehaviorProfile holding the union
#   - traffic from one workload to another's Service names the peer (the
#     Service and its workload, the client pod and its workload) in both
#   - a pod of the cluster's second node (same kernel, another containerd):
#     this node's agent leaves it out (counted), no report, no alert
#   - SeccompProfiles are accepted by SPO's CRD; the profile reaches Stable,
#     and guards: new behavior is an anomaly (status, condition), not
#     learnt, the SeccompProfile unchanged; accepted, it is allowed
#   - enforcement: the generated profile as a kubelet localhost profile with
#     the recommended securityContext serves with zero errors; a copy
#     without one needed syscall fails; a container that writes its root
#     only through a symbolic link and a FIFO keeps a writable root and
#     runs (read-only, it fails)
#   - a pod making 200,000 directories: the agent stays under 128 MiB and
#     the report bounded, its writes kept
#   - a deleted pod's report is folded into the workload's archive, also
#     when force-deleted, and 10 pods deleted at once 5 times over are all
#     in it; a report naming no workload is released when its
#     pod goes; deleting a namespace with learning workloads completes
#     (no finalizer is ever stripped by hand)
#   - a restarted container's report keeps its first run
#   - the agent restarted reads its reports back: nothing lost, the time it
#     was down is in the reports; a workload started while it was down says
#     its start was not observed and stays Learning until a start is
#     recorded (a rollout restart)
#   - a hand-edited report with unknown names, garbage paths and a huge
#     list: entries skipped, a condition and an Event, other workloads served
#   - the API server stopped for 2 minutes: the agent keeps recording and
#     publishes afterwards
#   - /metrics, /healthz, /readyz of both
#   - a privileged pod's child cgroups (one named after another pod's
#     container) are its own: one report, the other pod charged nothing
#   - a namespace being deleted, whose reports can never be written, holds
#     up no other report; 5,000 pods on another node leave the agent's
#     memory where it was; names never collide across namespaces, and an
#     earlier release's objects are adopted
#   - host processes are not recorded (no report takes them); 8 pods in a
#     fork/exec loop lose nothing and a victim beside them goes Stable; 100
#     pods start behind an API server slowed to 300 ms a call: nothing lost
# Needs: root, the local cluster (eval "$(e2e/cluster/env.sh)": it names the
# runtime socket, the kubelet root and the API server's pid file), kubectl,
# jq, curl, IMPRINT_BIN, SPO's CRDs (IMPRINT_SPO_CRDS).
# Prints one line per test and closes with "profiles: N passed, N failed".
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=e2e/suite.sh
. "$here/../suite.sh"
# shellcheck source=e2e/kube.sh
. "$here/../kube.sh"
IMPRINT=${IMPRINT_BIN:-imprint}
NODE=${IMPRINT_E2E_NODE_NAME:?run against the local cluster: eval \"\$(e2e/cluster/env.sh)\"}
SOCKET=${IMPRINT_E2E_RUNTIME_SOCKET:?}
KUBELET_ROOT=${IMPRINT_E2E_KUBELET_ROOT:?}
PIDS=${IMPRINT_E2E_PIDS:?}
API_DOWN=${IMPRINT_E2E_API_DOWN_SECONDS:-120}
# The local cluster's second node (tainted): no agent of this suite runs there.
NODE2=${IMPRINT_E2E_NODE2_NAME:-}
NODE2_TAINT=${IMPRINT_E2E_NODE2_TAINT:-}
NS=imprint-profiles-$(date +%s)
# The controllers' Lease lives apart from the workloads (as the chart's does),
# so a controller still leads while the workloads' namespace is deleted.
LEASE_NS=$NS-lease
AGENT_PORT=19290
CONTROLLER_PORT=19291
work=$(mktemp -d)

start_agent() { # start_agent [KUBECONFIG]
  KUBECONFIG=${1:-$KUBECONFIG} IMPRINT_LOG=info "$IMPRINT" agent --node-name "$NODE" --runtime-socket "$SOCKET" \
    --interval 3s --listen "127.0.0.1:$AGENT_PORT" >> "$work/agent.log" 2>&1 &
  echo $! > "$work/agent.pid"
}

# start_controller [NAME PORT [ARGS...]]: a controller replica (default:
# "controller" on $CONTROLLER_PORT), with its own log and pid file.
start_controller() {
  local name=${1:-controller} port=${2:-$CONTROLLER_PORT}
  shift 2 2> /dev/null || shift $#
  IMPRINT_LOG=info "$IMPRINT" controller --lease-namespace "$LEASE_NS" --stability-window 20s \
    --resync 3s --listen "127.0.0.1:$port" --identity "$name" "$@" >> "$work/$name.log" 2>&1 &
  echo $! > "$work/$name.pid"
}

# The tests run in subshells (see suite.sh): PIDs are kept in files.
stop() { # stop NAME: SIGTERM the process started as NAME, wait until it is gone
  local pid
  pid=$(cat "$work/$1.pid" 2> /dev/null) || return 0
  kill -TERM "$pid" 2> /dev/null
  while kill -0 "$pid" 2> /dev/null; do sleep 0.2; done
  rm -f "$work/$1.pid"
}

cleanup() {
  if [[ -z ${IMPRINT_E2E_KEEP_NAMESPACE:-} ]]; then
    # With a controller running: it releases the reports' finalizers.
    if [[ ! -f $work/controller.pid && ! -f $work/standby.pid ]]; then
      start_controller
      eventually 60 curl -fsS "http://127.0.0.1:$CONTROLLER_PORT/readyz" > /dev/null
    fi
    kubectl delete node imprint-ghost-node --ignore-not-found > /dev/null 2>&1
    kubectl delete --raw "/api/v1/namespaces/$NS-ghost/pods?gracePeriodSeconds=0" > /dev/null 2>&1
    release_held "$NS-stuck"
    if ! kubectl delete namespace "$NS" "$NS-gone" "$NS-x" "$NS-ghost" "$NS-stuck" --ignore-not-found --timeout=90s > /dev/null 2>&1; then
      echo "namespace $NS not deleted within 90s; the controller said:"
      tail -n 20 "$work"/controller.log "$work"/standby.log 2> /dev/null
    fi
  fi
  stop agent
  stop controller
  stop standby
  stop v1beta1
  stop proxy
  if [[ -n ${IMPRINT_E2E_KEEP_LOGS:-} ]]; then cp "$work"/*.log "$IMPRINT_E2E_KEEP_LOGS/" 2> /dev/null; fi
  [[ -n ${IMPRINT_E2E_KEEP_NAMESPACE:-} ]] && { echo "kept namespace $NS"; rm -rf "$work"; return; }
  kubectl delete namespace "$LEASE_NS" --wait=false > /dev/null 2>&1
  delete_profiles
  NS=$NS-x delete_profiles
  rm -rf "$work"
}
trap cleanup EXIT

cbr() { k get containerbehaviorreports "$@"; }
bp() { k get behaviorprofiles "$@"; }
pods_of() { k get pods -l "app=$1" -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}'; }
live_pods() { # live_pods APP: its pods that run and are not being deleted
  k get pods -l "app=$1" -o json |
    jq -r '.items[] | select(.metadata.deletionTimestamp == null and .status.phase == "Running") | .metadata.name'
}
live() { [[ $(live_pods "$1" | wc -l) -eq $2 ]]; } # live APP N: N pods of APP run

# --- workloads ---------------------------------------------------------------
# mixed: each replica writes and executes a copy of busybox named after its
# own pod, then serves HTTP. client: fetches from mixed's Service.
# web NAME SCRIPT [OPTION=VALUE...]: a Deployment of one busybox container,
# web, running SCRIPT (kube.sh's deploy).
web() { deploy "$1" container=web script="$2" "${@:3}"; }

MIXED='mkdir -p /tmp/www && echo hi > /tmp/www/index.html; cp /bin/busybox /tmp/x-$(hostname); /tmp/x-$(hostname) true; exec httpd -f -p 8080 -h /tmp/www'

setup() {
  kubectl apply --server-side -f "$here/../../manifests/crds/" &&
    kubectl apply --server-side -f "$CRDS/seccompprofile.crd.yaml" &&
    kubectl wait --for condition=Established --timeout=60s \
      crd/containerbehaviorreports.imprint.dev crd/behaviorprofiles.imprint.dev \
      "crd/$SP" &&
    kubectl create namespace "$NS" && kubectl create namespace "$LEASE_NS" || return 1
  start_agent
  start_controller
  # Workloads start once the probes are attached: a profile must hold
  # everything from the first syscall.
  eventually 60 curl -fsS "http://127.0.0.1:$AGENT_PORT/readyz" > /dev/null &&
    eventually 60 curl -fsS "http://127.0.0.1:$CONTROLLER_PORT/readyz" > /dev/null || return 1
  web mixed "$MIXED" replicas=2 || return 1
  k expose deployment mixed --port 80 --target-port 8080 || return 1
  local ip
  ip=$(k get service mixed -o jsonpath='{.spec.clusterIP}')
  web client "while true; do timeout 3 wget -q -O /dev/null http://$ip/; sleep 2; done" || return 1
  k rollout status deployment/mixed --timeout=120s && k rollout status deployment/client --timeout=120s
}

reports_name_pod_container_node_and_workload() {
  local pod
  for pod in $(pods_of mixed); do
    eventually 60 holds_report "$pod" web true || return 1
    cbr "$(report_of "$pod" web)" -o json | jq -e --arg pod "$pod" --arg node "$NODE" '
      .spec.subject.pod == $pod and .spec.subject.container == "web" and
      .spec.subject.node == $node and .spec.subject.workload == {kind: "Deployment", name: "mixed"} and
      .metadata.ownerReferences[0].kind == "Pod" and
      .metadata.labels["imprint.dev/workload-name"] == "mixed" and
      (.spec.syscalls.names | length) > 20' > /dev/null || { cbr "$(report_of "$pod" web)" -o yaml; return 1; }
  done
  [[ $(pods_of mixed | wc -l) -eq 2 ]]
}

profile_has_executables() { # profile_has_executables PROFILE PATH...
  local profile=$1 path json; shift
  json=$(bp "$profile" -o json 2> /dev/null) || return 1
  for path in "$@"; do
    jq -e --arg p "$path" '.status.containers[] | select(.name == "web") | .executables | index($p)' \
      <<< "$json" > /dev/null || return 1
  done
}

replicas_merge_into_one_profile() {
  local args=() pod
  for pod in $(pods_of mixed); do args+=("/tmp/x-$pod"); done
  eventually 60 profile_has_executables deployment-mixed "${args[@]}" || { bp deployment-mixed -o yaml; return 1; }
  bp deployment-mixed -o json | jq -e '.status.replicas == 2 and .status.nodes == 1' > /dev/null
}

peer_named() { # peer_named POD DIRECTION KIND WORKLOAD: the report of POD's web container names it
  local name
  name=$(report_of "$1" web) && [[ -n $name ]] || return 1
  cbr "$name" -o json | jq -e --arg d "$2" --arg k "$3" --arg w "$4" \
    '[.spec.network[] | select(.direction == $d and .peer.kind == $k and .peer.workload.name == $w)] | length > 0' > /dev/null
}

peers_are_named_in_both_reports() {
  local client server
  client=$(pods_of client | head -1)
  server=$(pods_of mixed | head -1)
  eventually 60 peer_named "$client" outbound Service mixed || { cbr "$(report_of "$client" web)" -o jsonpath='{.spec.network}'; return 1; }
  # Either replica may have served; at least one names the client pod.
  eventually 60 a_server_names_the_client || { cbr "$(report_of "$server" web)" -o jsonpath='{.spec.network}'; return 1; }
}

a_server_names_the_client() {
  local pod
  for pod in $(pods_of mixed); do
    holds_report "$pod" web '[.spec.network[] | select(.direction == "inbound" and .peer.kind == "Pod" and .peer.workload.name == "client")] | length > 0' &&
      return 0
  done
  return 1
}

# Another node's pod, on the same kernel: this node's agent sees its cgroup
# but its runtime does not know it. The agent leaves it out once its runtime
# listed everything without it (imprint_agent_foreign_cgroups): no report,
# no alert, nothing in the agent's log. Its first act, 2 s after it starts
# (before the agent can know whose it is), is a shell on its terminal: that
# alert waits until the container is found another node's, and is dropped.
# The same pod on this node: an alert, with its pod's name; and a shell
# exec'd into the other node's pod later is none either.
agent_metric_value() { curl -fsS "http://127.0.0.1:$AGENT_PORT/metrics" | awk -v n="$1" '$1 == n { print $2 }'; }
foreign_above() { [[ $(agent_metric_value imprint_agent_foreign_cgroups_total) -gt $1 ]]; }
terminal_shell() { # terminal_shell POD: `kubectl exec -it POD -- sh`, on a terminal
  timeout 60 script -qec "kubectl -n $NS exec -it $1 -c web -- sh -c 'exit 0'" /dev/null < /dev/null > /dev/null 2>&1
}
agent_alerts() { grep '^{"schema":"imprint.dev/alert/v1"' "$work/agent.log"; }
shell_alerted() { # shell_alerted POD: a terminal-shell alert about POD in the agent's log
  agent_alerts | jq -se --arg p "$1" '[.[] | select(.rule == "terminal-shell" and .subject.pod == $p)] | length > 0' > /dev/null
}
# A terminal shell 2 s after the start, then a loop.
EARLY_SHELL='sleep 2; sh -c "exit 0"; while true; do cat /etc/hostname > /dev/null; sleep 1; done'

another_nodes_pod_is_left_alone() {
  [[ -n $NODE2 ]] || { echo "no second node (IMPRINT_E2E_NODE2_NAME)"; return 1; }
  local before pod uid mine
  before=$(agent_metric_value imprint_agent_foreign_cgroups_total)
  web elsewhere "$EARLY_SHELL" tty=1 node="$NODE2" tolerate="$NODE2_TAINT" &&
    web nearby "$EARLY_SHELL" tty=1 node="$NODE" || return 1
  k rollout status deployment/elsewhere --timeout=120s && k rollout status deployment/nearby --timeout=120s || return 1
  pod=$(pods_of elsewhere) mine=$(pods_of nearby)
  uid=$(k get pod "$pod" -o jsonpath='{.metadata.uid}')
  eventually 30 shell_alerted "$mine" || { echo "no terminal-shell alert about $mine, a pod of this node"; agent_alerts | tail -3; return 1; }
  # Its sandbox and its container found another node's (this node's
  # runtime listed everything without them), then a shell exec'd into it.
  eventually 60 foreign_above "$((${before:-0} + 1))" ||
    { echo "not both cgroups counted foreign: $(agent_metric_value imprint_agent_foreign_cgroups_total) (before: ${before:-0})"; return 1; }
  terminal_shell "$pod" || { echo "kubectl exec failed"; return 1; }
  sleep 3
  if agent_alerts | grep -E "$pod|$uid|${uid//-/_}"; then echo "an alert about $pod, on $NODE2"; return 1; fi
  [[ -z $(report_of "$pod" web) ]] || { echo "a report of $pod, on $NODE2"; return 1; }
  if grep -E "$uid|${uid//-/_}" "$work/agent.log" | head -3 | grep .; then echo "the agent's log names $pod"; return 1; fi
  echo "# a pod on $NODE2: $(( $(agent_metric_value imprint_agent_foreign_cgroups_total) - ${before:-0} )) cgroups left out, no report, no alert (a terminal shell in a pod of $NODE: an alert)"
  k delete deployment elsewhere nearby --wait=false > /dev/null
}

# The first run of a container that restarts (it leaves a mark in an
# emptyDir, which outlives the restart) exec's a program of its own; the
# report still holds it once the second run is written.
RESTARTER='if [ ! -e /tools/ran ]; then touch /tools/ran; cp /bin/busybox /tmp/first-run; /tmp/first-run true; exit 1; fi; exec sleep 3600'

a_restarted_container_keeps_its_first_run() {
  web restarter "$RESTARTER" tools=1 || return 1
  local pod
  eventually 120 bash -c "[[ \$(kubectl -n $NS get pods -l app=restarter -o jsonpath='{.items[0].status.containerStatuses[0].restartCount}') -ge 1 ]]" ||
    { echo "the container did not restart"; return 1; }
  pod=$(pods_of restarter | head -1)
  # The second run is written (its sleep is in the report) ...
  eventually 90 holds_report "$pod" web '[.spec.executables[].args | join(" ")] | any(test("sleep 3600"))' ||
    { echo "the report of $pod without the second run:"; cbr "$(report_of "$pod" web)" -o yaml | head -60; restarter_log "$pod"; return 1; }
  # ... and the first run is still there.
  local executables
  executables=$(cbr "$(report_of "$pod" web)" -o json | jq -c '[.spec.executables[].path]')
  if ! jq -e 'index("/tmp/first-run")' <<< "$executables" > /dev/null; then
    echo "the report of $pod without the first run: $executables"; restarter_log "$pod"; return 1
  fi
}

restarter_log() { # what the agent said about POD, and the pod's statuses
  grep -E "$1|report not written|never named" "$work/agent.log" | tail -15
  k get pod "$1" -o jsonpath='{.status.containerStatuses}'; echo
}

seccomp_profiles_are_accepted() {
  local name
  eventually 60 bash -c "[[ -n \$(kubectl -n $NS get bp deployment-mixed -o jsonpath='{.status.containers[0].seccompProfile}' 2> /dev/null) ]]" || return 1
  name=$(seccomp_of deployment-mixed web)
  eventually 60 kubectl get "$SP" "$name" > /dev/null || return 1
  kubectl get "$SP" "$name" -o json | jq -e --arg ns "$NS" '
    .spec.defaultAction == "SCMP_ACT_ERRNO" and .spec.architectures == ["SCMP_ARCH_X86_64"] and
    (.spec.syscalls[0].names | index("execve")) and .metadata.labels["imprint.dev/profile-namespace"] == $ns' > /dev/null &&
    bp deployment-mixed -o json | jq -e --arg n "$name" '.status.containers[0].seccompProfile == $n' > /dev/null
}

has_event() { # has_event OBJECT-NAME REASON
  kubectl get events.events.k8s.io -n "$NS" -o json |
    jq -e --arg n "$1" --arg r "$2" '[.items[] | select(.regarding.name == $n and .reason == $r)] | length > 0' > /dev/null
}

profile_becomes_stable() {
  eventually 120 phase_is deployment-mixed Stable || { bp deployment-mixed -o yaml | head -30; return 1; }
  eventually 20 has_event deployment-mixed Stable
}

# Once Stable, a report holds only what its profile lacks: spec.covered names
# the profile (kubectl's Covered column), its counts stay whole, and the
# profile merged from the covered reports and itself is the one it was
# (still Stable, the same last change).
reports_are_covered_once_stable() {
  local pod last name
  last=$(bp deployment-mixed -o jsonpath='{.status.lastChange}')
  for pod in $(live_pods mixed); do
    eventually 30 holds_report "$pod" web '.spec.covered.profile == "deployment-mixed"' ||
      { cbr "$(report_of "$pod" web)" -o yaml | head -40; return 1; }
    name=$(report_of "$pod" web)
    holds cbr "$name" '(.spec.syscalls.names | length) < 5 and (.spec.files | length) < 5 and
      (.spec.executables | length) == 0 and .spec.stats.syscalls > 20' ||
      { cbr "$name" -o json | jq -c '.spec | {names: .syscalls.names, files: [.files[].path], execs: [.executables[].path], stats}'; return 1; }
    cbr "$name" | awk 'NR == 1 && /COVERED/ { h = 1 } NR == 2 && /deployment-mixed/ { r = 1 } END { exit !(h && r) }' ||
      { cbr "$name"; return 1; }
    echo "# covered report of $pod: $(cbr "$name" -o json | jq -c '.spec | del(.subject, .window, .stats, .covered)' | wc -c) bytes of lists, $(cbr "$name" -o json | jq -c .spec | wc -c) in all" >&2
  done
  # The controller merges the covered reports (a report interval, a
  # reconcile) and must find the profile it has.
  sleep 10
  if ! phase_is deployment-mixed Stable || [[ $(bp deployment-mixed -o jsonpath='{.status.lastChange}') != "$last" ]]; then
    echo "the profile changed as its reports were covered: $(bp deployment-mixed -o json | jq -c '.status | {phase, lastChange, conditions}')"
    return 1
  fi
}

# A profile deleted (the controller makes it again, with another uid)
# covers nothing: the agent writes the report whole again, from what it
# holds, and the new profile learns everything from it.
a_deleted_profile_covers_nothing() {
  local pod
  web renewed 'cp /bin/busybox /tmp/renewed-marker; /tmp/renewed-marker true; exec sleep 3600' || return 1
  k rollout status deployment/renewed --timeout=90s || return 1
  pod=$(pods_of renewed | head -1)
  eventually 120 phase_is deployment-renewed Stable || { bp deployment-renewed -o yaml | head -30; return 1; }
  eventually 30 holds_report "$pod" web '.spec.covered.profile == "deployment-renewed" and (.spec.executables | length) == 0' ||
    { cbr "$(report_of "$pod" web)" -o json | jq -c '.spec | {covered, execs: [.executables[].path]}'; return 1; }
  k delete bp deployment-renewed --wait=true > /dev/null || return 1
  eventually 60 holds_report "$pod" web '.spec.covered == null and ([.spec.executables[].path] | index("/tmp/renewed-marker"))' ||
    { cbr "$(report_of "$pod" web)" -o json | jq -c '.spec | {covered, execs: [.executables[].path]}'; return 1; }
  eventually 60 profile_has_executables deployment-renewed /tmp/renewed-marker ||
    { bp deployment-renewed -o json | jq -c '.status | {phase, conditions}'; return 1; }
  k delete deployment renewed --wait=false > /dev/null
}

# Once Stable, an Auto profile guards: a program never run before is an
# anomaly (status, condition), not learnt, and the SeccompProfile stays as
# it was; accepted in spec.accept, it is allowed and no longer an anomaly.
anomaly() { # anomaly PROFILE KIND VALUE: listed among the profile's anomalies
  holds bp "$1" "[.status.containers[].anomalies[]? | select(.kind == \"$2\" and .value == \"$3\")] | length > 0"
}

no_anomaly() { ! anomaly "$@"; }

new_behavior_is_an_anomaly_until_accepted() {
  local pod before after
  eventually 30 holds bp deployment-mixed '.status.guarding == true' || { bp deployment-mixed -o yaml | head -30; return 1; }
  before=$(kubectl get "$SP" "$(seccomp_of deployment-mixed web)" -o json | jq -c .spec)
  pod=$(pods_of mixed | head -1)
  k exec "$pod" -- /bin/sh -c 'cp /bin/busybox /tmp/brand-new; /tmp/brand-new; exit 0' || return 1
  eventually 60 anomaly deployment-mixed exec /tmp/brand-new || { bp deployment-mixed -o json | jq -c '.status.containers[].anomalies'; return 1; }
  holds bp deployment-mixed '[.status.conditions[] | select(.type == "Anomalies" and .status == "True")] | length == 1' || return 1
  phase_is deployment-mixed Stable || { echo "guarding, yet back to $(bp deployment-mixed -o jsonpath='{.status.phase}')"; return 1; }
  ! profile_has_executables deployment-mixed /tmp/brand-new || { echo "learnt while guarding"; return 1; }
  after=$(kubectl get "$SP" "$(seccomp_of deployment-mixed web)" -o json | jq -c .spec)
  [[ $before == "$after" ]] || { echo "the SeccompProfile changed while guarding"; return 1; }
  k patch bp deployment-mixed --type=merge \
    -p '{"spec":{"accept":[{"container":"web","kind":"exec","value":"/tmp/brand-new"}]}}' > /dev/null || return 1
  eventually 60 profile_has_executables deployment-mixed /tmp/brand-new || return 1
  eventually 30 no_anomaly deployment-mixed exec /tmp/brand-new || { echo "still an anomaly once accepted"; return 1; }
  echo "# guarding: /tmp/brand-new an anomaly, the SeccompProfile unchanged; accepted: allowed" >&2
}

# --- enforcement ---------------------------------------------------------------
# mixed's SeccompProfile as a kubelet localhost profile (what
# security-profiles-operator does on each node) and the recommended
# securityContext with it (kube.sh).

serves() { # serves APP REQUESTS: every request to every pod of APP answers
  local app=$1 n=$2 ip i
  for ip in $(k get pods -l "app=$app" -o jsonpath='{.items[*].status.podIP}'); do
    for ((i = 0; i < n; i++)); do
      [[ $(curl -fsS --max-time 3 "http://$ip:8080/") == hi ]] || { echo "request $i to $ip failed"; return 1; }
    done
  done
}

enforced_profile_serves_without_errors() {
  local name
  name=$(seccomp_of deployment-mixed web) && [[ -n $name ]] || return 1
  install_profile "$name" &&
    web enforced "$MIXED" sc="$(enforced_context deployment-mixed web "$name")" &&
    k rollout status deployment/enforced --timeout=90s &&
    serves enforced 50
}

profile_without_a_needed_syscall_fails() {
  install_profile "$(seccomp_of deployment-mixed web)" "$NS-broken" bind &&
    web broken "$MIXED" sc="$(enforced_context deployment-mixed web "$NS-broken")" || return 1
  # httpd cannot bind its port: the pod never becomes Ready.
  sleep 20
  [[ $(k get pods -l app=broken -o jsonpath='{.items[0].status.containerStatuses[0].ready}') != true ]] &&
    ! serves broken 1 > /dev/null 2>&1
}

# A container that writes to its root filesystem only by making a symbolic
# link and a FIFO (no open for writing, no mkdir): the recommendation keeps
# the root writable, and the container runs under it; forced read-only, the
# same container fails (EROFS), so the write is real.
LINKER='ln -s /etc/hostname /tmp/link && mkfifo /tmp/fifo && exec sleep 3600'

files_made_without_open_keep_the_root_writable() {
  web linker "$LINKER" || return 1
  eventually 60 holds bp deployment-linker \
    '.status.containers[0] | (.securityContext.readOnlyRootFilesystem == false) and (.rootWrites | length > 0)' ||
    { bp deployment-linker -o json | jq -c '.status.containers[0] | {securityContext, rootWrites}'; return 1; }
  local sc name
  name=$(seccomp_of deployment-linker web) && [[ -n $name ]] || return 1
  install_profile "$name" || return 1
  sc=$(enforced_context deployment-linker web "$name") || return 1
  web linker-enforced "$LINKER" sc="$sc" || return 1
  if ! k rollout status deployment/linker-enforced --timeout=60s > /dev/null; then
    echo "under its recommendation ($sc):"; k get pods -l app=linker-enforced; return 1
  fi
  web linker-read-only "$LINKER" sc="$(jq -c '.readOnlyRootFilesystem = true' <<< "$sc")" || return 1
  eventually 60 bash -c "[[ \$(kubectl -n $NS get pods -l app=linker-read-only -o jsonpath='{.items[0].status.containerStatuses[0].restartCount}') -ge 1 ]]" ||
    { echo "a read-only root did not stop it"; k get pods -l app=linker-read-only; return 1; }
}

# A container making 200,000 directories with 200-character names, each
# with a child (so each parent is a directory of its own): the agent's peak
# memory stays under 128 MiB (a debug build), it keeps running, and the
# report stays bounded, its files folded, its writes kept.
DIRS='mkdir -p /data && cd /data && n=$(printf "%0200d" 0) && i=0 &&
  while [ $i -lt 200000 ]; do mkdir -p "$n$i/$n"; i=$((i + 1)); done && touch /done && exec sleep 3600'

many_directories_keep_the_agent_bounded() {
  local pid pod peak bytes
  pid=$(cat "$work/agent.pid")
  web dirs "$DIRS" || return 1
  eventually 600 k exec deploy/dirs -- test -e /done 2> /dev/null || { echo "the pod did not finish"; return 1; }
  pod=$(pods_of dirs | head -1)
  eventually 60 holds_report "$pod" web '.spec.stats.truncated | index("files (folded to top-level directories)")' ||
    { cbr "$(report_of "$pod" web)" -o json | jq -c '.spec.stats'; return 1; }
  kill -0 "$pid" 2> /dev/null || { echo "the agent died"; return 1; }
  peak=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
  bytes=$(cbr "$(report_of "$pod" web)" -o json | jq -c .spec | wc -c)
  echo "# agent peak RSS $((peak / 1024)) MiB; report $((bytes / 1024)) KiB" >&2
  ((peak < 128 * 1024)) || { echo "agent peak RSS $((peak / 1024)) MiB"; return 1; }
  ((bytes < 512 * 1024)) || { echo "report of $bytes bytes"; return 1; }
  eventually 60 holds bp deployment-dirs '.status.containers[0].securityContext.readOnlyRootFilesystem == false'
}

# --- one noisy container cannot blind the node -------------------------------
agent_metric() { # agent_metric NAME: its value (0 when absent)
  curl -fsS "http://127.0.0.1:$AGENT_PORT/metrics" | awk -v m="$1" '$1 == m {v = $2} END {print v + 0}'
}

some_cgroup_not_recorded() { (($(agent_metric imprint_agent_cgroups_not_recorded_total) > 0)); }

# 8 pods in a fork/exec loop (100m CPU each) beside a victim: the kernel
# counts the loops' repeats instead of sending them (far fewer exec events
# than executions), nothing is lost, and the victim's profile goes Stable
# with no loss on it.
LOOP='i=0; while :; do /bin/true; i=$((i + 1)); echo $i > /tmp/n; done'

fork_loops_do_not_blind_the_node() {
  local before after execs_before execs iterations=0 pod n
  before=$(agent_metric imprint_agent_drops) || return 1
  execs_before=$(agent_metric 'imprint_agent_events_total{kind="exec"}')
  deploy forkloop container=loop replicas=8 script="$LOOP" cpu=100m || return 1
  web victim 'while :; do cat /etc/hostname > /dev/null; ls / > /dev/null; sleep 1; done' || return 1
  eventually 120 live forkloop 8 || { echo "the loops did not start"; return 1; }
  eventually 180 phase_is deployment-victim Stable || { bp deployment-victim -o yaml | head -60; return 1; }
  holds bp deployment-victim '[.status.conditions[]? | select(.type == "Drops")] | length == 0' ||
    { bp deployment-victim -o json | jq -c .status.conditions; return 1; }
  for pod in $(pods_of forkloop); do
    n=$(k exec "$pod" -- cat /tmp/n) || return 1
    iterations=$((iterations + n))
  done
  execs=$(($(agent_metric 'imprint_agent_events_total{kind="exec"}') - execs_before))
  after=$(agent_metric imprint_agent_drops)
  echo "# 8 fork/exec loops: $iterations executions, $execs exec events received, drops $before -> $after" >&2
  ((iterations >= 2000)) || { echo "the loops ran only $iterations times"; return 1; }
  ((execs * 10 < iterations)) || { echo "$execs exec events for $iterations executions"; return 1; }
  ((after <= before)) || { echo "imprint_agent_drops went from $before to $after"; return 1; }
  k delete deployment forkloop victim --wait=false > /dev/null
}

# The API server made slow (each call held 300 ms by a proxy) while 100
# pods start: the agent, restarted against the proxy, writes their reports
# in time and loses no event (the ring buffer is drained on a task of its
# own, never behind an API call).
DELAY_PROXY=${IMPRINT_DELAY_PROXY:-$(dirname "$(command -v "$IMPRINT")")/examples/delay_proxy}
crowd_reports() { [[ $(cbr -l imprint.dev/workload-name=crowd -o name | wc -l) -ge $1 ]]; }

a_slow_api_server_loses_nothing() {
  local server host ip proxied
  [[ -x $DELAY_PROXY ]] || { echo "no delay proxy at $DELAY_PROXY (cargo build --examples; IMPRINT_DELAY_PROXY)"; return 1; }
  server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
  host=${server#https://}
  ip=${host%:*}
  proxied=$ip:16443
  "$DELAY_PROXY" "$proxied" "$host" 300 >> "$work/proxy.log" 2>&1 &
  echo $! > "$work/proxy.pid"
  kubectl config view --raw --minify | sed "s|$server|https://$proxied|" > "$work/slow.kubeconfig"
  stop agent
  start_agent "$work/slow.kubeconfig"
  eventually 60 curl -fsS "http://127.0.0.1:$AGENT_PORT/readyz" > /dev/null || return 1
  deploy crowd replicas=100 script='cat /etc/hostname > /dev/null; exec sleep 3600' || return 1
  eventually 400 crowd_reports 100 ||
    { echo "$(cbr -l imprint.dev/workload-name=crowd -o name | wc -l) of 100 reports"; tail -5 "$work/agent.log"; return 1; }
  local drops
  drops=$(agent_metric imprint_agent_drops)
  echo "# 100 pods behind a 300 ms API server: $drops events lost" >&2
  ((drops == 0)) || { echo "$drops events lost"; return 1; }
  stop agent
  stop proxy
  start_agent
  eventually 60 curl -fsS "http://127.0.0.1:$AGENT_PORT/readyz" > /dev/null || return 1
  # The 100 reports are folded into one archive (one write, 100 releases)
  # and gone soon after their pods.
  k delete deployment crowd --wait=false > /dev/null
  eventually 180 crowd_reports_folded || { echo "$(cbr -l imprint.dev/workload-name=crowd -o name | wc -l) crowd reports left"; return 1; }
}
crowd_reports_folded() { [[ $(cbr -l imprint.dev/workload-name=crowd -o name | grep -vc archive) -eq 0 ]]; }

# A host process (this script's own cgroup) opening 10,000 new files adds
# no event: no report would take them, so the kernel was told to stop
# recording that cgroup (what once let the node's disk-usage walk of a pod
# flood the ring buffer).
host_processes_are_not_recorded() {
  local before after dir=$work/host-files i
  eventually 30 some_cgroup_not_recorded || { echo "no cgroup was ever left unrecorded"; return 1; }
  # This cgroup has had events for minutes: it is not recorded any more.
  before=$(agent_metric 'imprint_agent_events_total{kind="file"}')
  mkdir -p "$dir" && for ((i = 0; i < 10000; i++)); do : > "$dir/$i"; done
  cat "$dir"/* > /dev/null
  sleep 7
  after=$(agent_metric 'imprint_agent_events_total{kind="file"}')
  rm -rf "$dir"
  echo "# file events while the host opened 20,000 files: $((after - before))" >&2
  ((after - before < 5000)) || { echo "file events rose by $((after - before))"; return 1; }
}

# --- nested cgroups belong to their container ---------------------------------
container_id() { # container_id POD: the runtime's id of its first container
  k get pod "$1" -o jsonpath='{.status.containerStatuses[0].containerID}' | sed 's|.*://||'
}

# A privileged pod makes a child cgroup of its own, and one named after
# another pod's container (in the unified hierarchy, mounting it when the
# runtime did not): what runs in either is its own (one report), never the
# other pod's.
NESTED='root=/sys/fs/cgroup; [ -e $root/unified/cgroup.procs ] && root=$root/unified;
  [ -e $root/cgroup.procs ] || { mkdir -p /tmp/cg && mount -t cgroup2 none /tmp/cg && root=/tmp/cg; };
  cg=$root$(sed -n "s/^0:://p" /proc/self/cgroup);
  mkdir "$cg/nested" "$cg/$VICTIM" &&
  sh -c "echo \$\$ > $cg/nested/cgroup.procs && exec cat /etc/hostname" > /dev/null &&
  sh -c "echo \$\$ > $cg/$VICTIM/cgroup.procs && exec cat /etc/passwd" > /dev/null &&
  touch /nested-done; exec sleep 3600'

a_child_cgroup_is_its_container() {
  local victim nested id
  web quiet 'exec sleep 3600' || return 1
  eventually 60 live quiet 1 || return 1
  victim=$(pods_of quiet | head -1)
  id=$(container_id "$victim")
  [[ -n $id ]] || { echo "no container id for $victim"; return 1; }
  web nested "VICTIM=$id; $NESTED" sc='{privileged: true}' || return 1
  eventually 90 k exec deploy/nested -- test -e /nested-done 2> /dev/null ||
    { k logs deploy/nested; return 1; }
  nested=$(pods_of nested | head -1)
  eventually 60 holds_report "$nested" web 'any(.spec.executables[]; .args == ["cat", "/etc/hostname"]) and any(.spec.executables[]; .args == ["cat", "/etc/passwd"])' ||
    { cbr "$(report_of "$nested" web)" -o json | jq -c '.spec.executables'; return 1; }
  holds_report "$victim" web 'any(.spec.executables[]; .args == ["cat", "/etc/passwd"]) | not' ||
    { echo "the victim was charged with the other pod's child"; cbr "$(report_of "$victim" web)" -o json | jq -c '.spec.executables'; return 1; }
  # No report of their own for the children.
  [[ $(cbr -o json | jq --arg n "$nested" '[.items[] | select(.spec.subject.pod == $n)] | length') -eq 1 ]] ||
    { cbr -o json | jq -c --arg n "$nested" '[.items[] | select(.spec.subject.pod == $n) | .metadata.name]'; return 1; }
  k delete deployment quiet nested --wait=false > /dev/null
}

# --- names ---------------------------------------------------------------------
# Namespace $NS-x with Deployment w and namespace $NS with Deployment x-w:
# an earlier release named both SeccompProfiles $NS-x-w-web (the two
# controllers' writes flipped it, and deleting either profile deleted the
# other's). Now each has its own, labelled with its own profile's UID, and
# deleting one namespace collects only its profile.
names_never_collide_across_namespaces() {
  local other=$NS-x a b uid_a uid_b
  kubectl create namespace "$other" > /dev/null || return 1
  NS=$other web w 'while true; do cat /etc/hostname > /dev/null; sleep 2; done' || return 1
  web x-w 'while true; do cat /etc/hostname > /dev/null; sleep 2; done' || return 1
  eventually 90 bash -c "[[ -n \$(kubectl -n $other get bp deployment-w -o jsonpath='{.status.containers[0].seccompProfile}' 2> /dev/null) ]]" ||
    { kubectl -n "$other" get bp,cbr; return 1; }
  eventually 90 bash -c "[[ -n \$(kubectl -n $NS get bp deployment-x-w -o jsonpath='{.status.containers[0].seccompProfile}' 2> /dev/null) ]]" || return 1
  a=$(NS=$other seccomp_of deployment-w web)
  b=$(seccomp_of deployment-x-w web)
  echo "# $other/w: $a; $NS/x-w: $b" >&2
  [[ $a != "$b" ]] || { echo "both are $a"; return 1; }
  uid_a=$(kubectl -n "$other" get bp deployment-w -o jsonpath='{.metadata.uid}')
  uid_b=$(k get bp deployment-x-w -o jsonpath='{.metadata.uid}')
  eventually 30 bash -c "[[ \$(kubectl get $SP $a -o jsonpath='{.metadata.labels.imprint\.dev/profile-uid}') == $uid_a ]]" || return 1
  eventually 30 bash -c "[[ \$(kubectl get $SP $b -o jsonpath='{.metadata.labels.imprint\.dev/profile-uid}') == $uid_b ]]" || return 1
  kubectl delete namespace "$other" --timeout=60s > /dev/null || { echo "namespace $other not deleted"; return 1; }
  eventually 60 bash -c "! kubectl get $SP $a > /dev/null 2>&1" || { echo "$a not collected"; return 1; }
  kubectl get "$SP" "$b" -o json | jq -e --arg u "$uid_b" '.metadata.labels["imprint.dev/profile-uid"] == $u' > /dev/null ||
    { echo "$b went with the other namespace's profile"; return 1; }
  k delete deployment x-w --wait=false > /dev/null
}

# An upgrade: the objects an earlier release made for a workload (its
# SeccompProfile $NS-upgraded-web, which ProfileBindings and pods may name,
# and its archive deployment-upgraded-web-archive with what deleted pods
# did) are adopted under their names: what was learnt is kept and merged,
# the SeccompProfile goes on under its name with the profile's UID label,
# and the next fold goes into that archive; nothing is made beside them.
earlier_release_objects_are_adopted() {
  local uid sp=$NS-upgraded-web archive=deployment-upgraded-web-archive
  stop controller
  k apply --server-side -f - > /dev/null <<YAML || return 1
apiVersion: imprint.dev/v1alpha1
kind: BehaviorProfile
metadata:
  name: deployment-upgraded
  labels: {app.kubernetes.io/managed-by: imprint, imprint.dev/workload-kind: Deployment, imprint.dev/workload-name: upgraded}
spec:
  workload: {kind: Deployment, name: upgraded}
YAML
  uid=$(k get bp deployment-upgraded -o jsonpath='{.metadata.uid}')
  kubectl apply --server-side -f - > /dev/null <<YAML || return 1
apiVersion: security-profiles-operator.x-k8s.io/v1
kind: SeccompProfile
metadata:
  name: $sp
  labels: {app.kubernetes.io/managed-by: imprint, imprint.dev/profile-namespace: $NS, imprint.dev/profile-name: deployment-upgraded,
           imprint.dev/container: web, imprint.dev/workload-kind: Deployment, imprint.dev/workload-name: upgraded}
spec:
  defaultAction: SCMP_ACT_ERRNO
  architectures: [SCMP_ARCH_X86_64]
  syscalls: [{action: SCMP_ACT_ALLOW, names: [read, acct]}]
---
apiVersion: imprint.dev/v1alpha1
kind: ContainerBehaviorReport
metadata:
  name: $archive
  namespace: $NS
  labels: {imprint.dev/archive: "true", imprint.dev/container: web, imprint.dev/workload-kind: Deployment, imprint.dev/workload-name: upgraded}
  ownerReferences: [{apiVersion: imprint.dev/v1alpha1, kind: BehaviorProfile, name: deployment-upgraded, uid: $uid, controller: true}]
spec:
  subject: {namespace: $NS, container: web, workload: {kind: Deployment, name: upgraded}}
  syscalls: {arch: x86_64, names: [read, acct]}
  executables: [{path: /learnt/before/upgrade, args: [/learnt/before/upgrade], count: 1, euid: 0}]
YAML
  web upgraded 'cp /bin/busybox /tmp/after-upgrade; /tmp/after-upgrade true; while true; do cat /etc/hostname > /dev/null; sleep 2; done' || return 1
  start_controller
  eventually 90 holds bp deployment-upgraded ".status.containers[0].seccompProfile == \"$sp\"" ||
    { bp deployment-upgraded -o json | jq -c '.status.containers[0].seccompProfile'; return 1; }
  eventually 60 profile_has_executables deployment-upgraded /learnt/before/upgrade /tmp/after-upgrade || return 1
  eventually 60 bash -c "kubectl get $SP $sp -o json | jq -e --arg u $uid '.metadata.labels[\"imprint.dev/profile-uid\"] == \$u and
    ([.spec.syscalls[].names[]] | index(\"acct\") and index(\"execve\"))' > /dev/null" ||
    { kubectl get "$SP" "$sp" -o json | jq -c '{labels: .metadata.labels, names: [.spec.syscalls[].names[]]}'; return 1; }
  [[ $(kubectl get "$SP" -l "imprint.dev/profile-namespace=$NS,imprint.dev/profile-name=deployment-upgraded" -o name | wc -l) -eq 1 ]] ||
    { echo "a second SeccompProfile was made:"; kubectl get "$SP" -l "imprint.dev/profile-name=deployment-upgraded"; return 1; }
  local pod
  pod=$(pods_of upgraded | head -1)
  eventually 60 holds_report "$pod" web '[.spec.executables[].path] | index("/tmp/after-upgrade")' || return 1
  k delete pod "$pod" --wait=true --timeout=60s > /dev/null || return 1
  eventually 60 report_gone "$pod" web || return 1
  eventually 30 holds cbr "$archive" '(.spec.executables | map(.path) | index("/learnt/before/upgrade") and index("/tmp/after-upgrade"))' ||
    { cbr "$archive" -o json | jq -c '[.spec.executables[].path]'; return 1; }
  [[ $(cbr -l imprint.dev/archive=true,imprint.dev/workload-name=upgraded -o name | wc -l) -eq 1 ]] ||
    { echo "a second archive was made:"; cbr -l imprint.dev/archive=true; return 1; }
  k delete deployment upgraded --wait=false > /dev/null
}

# --- one namespace never holds up the others ----------------------------------
# 10 pods kept (a finalizer) in a namespace being deleted: their containers
# stop and their reports can never be written (the API server refuses new
# content there). Another pod's new behaviour is still written within two
# intervals (3 s each here): a refused write holds up no other report (it
# used to stop the whole tick, and the cgroups after it waited behind it at
# every tick: 14 s in one run, or never).
HOLD=imprint.dev/e2e-hold
release_held() { # release_held NAMESPACE: drop the e2e finalizer of its pods
  local pod
  for pod in $(kubectl -n "$1" get pods -o name 2> /dev/null); do
    kubectl -n "$1" patch "$pod" --type=json -p '[{"op": "remove", "path": "/metadata/finalizers"}]' > /dev/null 2>&1
  done
}

a_namespace_being_deleted_holds_up_no_report() {
  local stuck=$NS-stuck pod t0
  kubectl create namespace "$stuck" > /dev/null || return 1
  jq -n --arg image "$BUSYBOX" --arg hold "$HOLD" '{apiVersion: "v1", kind: "List", items: [range(10) as $i |
    {apiVersion: "v1", kind: "Pod", metadata: {name: "held-\($i)", finalizers: [$hold]},
     spec: {terminationGracePeriodSeconds: 1,
            containers: [{name: "web", image: $image, imagePullPolicy: "Never",
                          command: ["/bin/sh", "-c", "while true; do cat /etc/hostname > /dev/null; sleep 1; done"]}]}}]}' |
    kubectl -n "$stuck" create -f - > /dev/null || return 1
  eventually 90 bash -c "[[ \$(kubectl -n $stuck get pods --field-selector=status.phase=Running -o name | wc -l) -eq 10 ]]" ||
    { kubectl -n "$stuck" get pods; release_held "$stuck"; return 1; }
  kubectl delete namespace "$stuck" --wait=false > /dev/null
  # Their containers stop; every write for them is refused from now on.
  eventually 60 bash -c "[[ \$(kubectl -n $stuck get pods --field-selector=status.phase=Running -o name | wc -l) -eq 0 ]]"
  pod=$(live_pods mixed | head -1)
  t0=$SECONDS
  k exec "$pod" -- /bin/sh -c 'cp /bin/busybox /tmp/while-stuck; /tmp/while-stuck true; exit 0' || { release_held "$stuck"; return 1; }
  if ! eventually 8 holds_report "$pod" web '[.spec.executables[].path] | index("/tmp/while-stuck")'; then
    grep -c "report not written" "$work/agent.log" | sed 's/^/"report not written" lines: /'
    release_held "$stuck"; return 1
  fi
  echo "# another pod's new program written $((SECONDS - t0))s after it ran, beside 10 unwritable reports" >&2
  release_held "$stuck"
}

# --- what the agent keeps ------------------------------------------------------
# The agent keeps only its own node's pods: 5,000 pods bound to another
# node (a Node object without kubelet; the pods tolerate its taints) leave
# its memory where it was. Each pod carries a 2 KiB annotation, as real
# pods carry managed fields and annotations.
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$(cat "$work/agent.pid")/status"; }
ghost_pods() { kubectl -n "$1" get pods -o name 2> /dev/null | wc -l; }

other_nodes_pods_cost_the_agent_nothing() {
  local ghost=imprint-ghost-node gns=$NS-ghost before after bytes t0
  kubectl apply -f - > /dev/null <<YAML || return 1
apiVersion: v1
kind: Node
metadata: {name: $ghost, labels: {imprint.dev/e2e: ghost}}
YAML
  kubectl create namespace "$gns" > /dev/null || return 1
  sleep 5
  before=$(rss_kib)
  t0=$SECONDS
  jq -n --arg node "$ghost" --arg pad "$(head -c 2048 /dev/zero | tr '\0' x)" '{apiVersion: "v1", kind: "List", items: [range(5000) as $i |
    {apiVersion: "v1", kind: "Pod",
     metadata: {name: "ghost-\($i)", labels: {app: "ghost", n: "\($i)"}, annotations: {"imprint.dev/e2e-padding": $pad}},
     spec: {nodeName: $node, tolerations: [{operator: "Exists"}],
            containers: [{name: "c", image: "busybox", command: ["sleep", "3600"]}]}}]}' |
    kubectl -n "$gns" create -f - > /dev/null || { echo "pods not created"; return 1; }
  eventually 120 bash -c "[[ \$(kubectl -n $gns get pods -o name | wc -l) -ge 5000 ]]" || { echo "$(ghost_pods "$gns") pods"; return 1; }
  # Time for any watch of every pod to have taken them all in.
  sleep 20
  after=$(rss_kib)
  bytes=$(kubectl -n "$gns" get pods -o json | wc -c)
  echo "# agent RSS $((before / 1024)) MiB with no pod on another node, $((after / 1024)) MiB with 5,000 ($((bytes / 1048576)) MiB of pod JSON a watch of every pod would take in; created in $((SECONDS - t0))s)" >&2
  # One delete of the collection, at once (no kubelet will confirm them).
  kubectl delete --raw "/api/v1/namespaces/$gns/pods?gracePeriodSeconds=0" > /dev/null
  kubectl delete namespace "$gns" --wait=false > /dev/null
  kubectl delete node "$ghost" > /dev/null
  ((after - before < 8192)) || { echo "the agent grew by $(((after - before) / 1024)) MiB"; return 1; }
}

# --- lifecycle -------------------------------------------------------------
# events_of OBJECT: the events an archive or report counts (0 when absent).
events_of() { [[ -n $1 ]] && cbr "$1" -o jsonpath='{.spec.stats.events}' 2> /dev/null || echo 0; }

deleted_pod_is_folded_into_the_archive() {
  local pod report archived before
  pod=$(pods_of mixed | head -1)
  report=$(events_of "$(report_of "$pod" web)")
  before=$(events_of "$(archive_of mixed web)")
  k delete pod "$pod" --wait=true --timeout=60s || return 1
  eventually 60 report_gone "$pod" web || { cbr "$(report_of "$pod" web)" -o yaml | head -20; return 1; }
  # The report's events are in the archive; what the pod did is in the
  # archive, or in the profile that covers it (the profile is Stable, so
  # the report was covered before it was folded).
  archived=$(events_of "$(archive_of mixed web)")
  ((archived >= before + report)) || { echo "archive counts $archived events, $before before + $report of the report"; return 1; }
  cbr "$(archive_of mixed web)" -o json |
    jq -e --arg p "/tmp/x-$pod" '([.spec.executables[].path] | index($p)) or .spec.covered.profile == "deployment-mixed"' > /dev/null &&
    profile_has_executables deployment-mixed "/tmp/x-$pod"
}

# 10 pods of one Deployment, each running a program with its own name as
# its argument, deleted all at once, 5 times over: every deleted pod's own
# execution is in the archive afterwards (no fold overwrites another).
all_reported() { # all_reported APP N: N live pods, each with a report of its own execution
  local pods pod
  mapfile -t pods < <(live_pods "$1")
  ((${#pods[@]} == $2)) || return 1
  for pod in "${pods[@]}"; do
    holds_report "$pod" web "any(.spec.executables[]; .args == [\"/bin/true\", \"$pod\"])" || return 1
  done
}
none_left() {
  local left
  left=$(cbr -l '!imprint.dev/archive' -o json | jq -r '.items[].spec.subject.pod') || return 1
  local pod; for pod in "$@"; do ! grep -qx "$pod" <<< "$left" || return 1; done
}

folds_keep_every_deleted_pod() {
  local round pods=() current pod missing=() args
  web folds '/bin/true "$HOSTNAME"; exec sleep 3600' replicas=10 || return 1
  for ((round = 0; round < 5; round++)); do
    eventually 180 all_reported folds 10 || { echo "round $round: $(live_pods folds | wc -l) live pods"; return 1; }
    mapfile -t current < <(live_pods folds)
    pods+=("${current[@]}")
    k delete pods "${current[@]}" --wait=false > /dev/null || return 1
  done
  eventually 120 none_left "${pods[@]}" || { echo "reports of deleted pods are left"; return 1; }
  args=$(cbr "$(archive_of folds web)" -o json | jq -c '[.spec.executables[].args]') || return 1
  for pod in "${pods[@]}"; do
    jq -e --arg p "$pod" 'index([["/bin/true", $p]])' <<< "$args" > /dev/null || missing+=("$pod")
  done
  echo "# ${#pods[@]} pods deleted in 5 rounds of 10; ${#missing[@]} missing from the archive" >&2
  ((${#missing[@]} == 0)) || { echo "not in the archive: ${missing[*]}"; return 1; }
  k delete deployment folds --wait=false > /dev/null
}

# A namespace with learning workloads is deleted while the controller runs:
# the deletion completes (the fold finalizer never holds it; what was
# learnt there goes with it).
namespace_deletion_completes() {
  local gone=$NS-gone
  kubectl create namespace "$gone" > /dev/null || return 1
  NS=$gone web learner 'while true; do cat /etc/hostname > /dev/null; sleep 2; done' replicas=2 || return 1
  eventually 90 bash -c "[[ \$(kubectl -n $gone get cbr -o name | wc -l) -ge 2 ]]" ||
    { echo "no reports in $gone"; kubectl -n "$gone" get cbr,pods; return 1; }
  eventually 60 kubectl -n "$gone" get bp deployment-learner > /dev/null || return 1
  if ! kubectl delete namespace "$gone" --timeout=60s > /dev/null; then
    echo "namespace $gone still there after 60s:"
    kubectl -n "$gone" get cbr -o json | jq -c '.items[] | {name: .metadata.name, finalizers: .metadata.finalizers}'
    return 1
  fi
}

# A pod deleted at once (--grace-period=0 --force) still has its report
# folded; a report naming no workload, held by the finalizer, is released
# when its pod goes (a Warning Event says why).
force_deleted_and_broken_reports_go() {
  local pod uid
  pod=$(pods_of mixed | tail -1)
  k exec "$pod" -- /bin/sh -c 'cp /bin/busybox /tmp/forced; /tmp/forced; exit 0' || return 1
  eventually 60 holds_report "$pod" web '[.spec.executables[].path] | index("/tmp/forced")' || return 1
  k delete pod "$pod" --grace-period=0 --force > /dev/null 2>&1
  eventually 60 report_gone "$pod" web ||
    { echo "the force-deleted pod's report stayed"; return 1; }
  holds cbr "$(archive_of mixed web)" '[.spec.executables[].path] | index("/tmp/forced")' ||
    { echo "the force-deleted pod's behavior is not in the archive"; return 1; }
  # A bare pod and a report of it that names no workload.
  k run owner --image="$BUSYBOX" --image-pull-policy=Never --restart=Never -- sleep 3600 > /dev/null || return 1
  uid=$(k get pod owner -o jsonpath='{.metadata.uid}')
  k apply --server-side -f - > /dev/null <<YAML || return 1
apiVersion: imprint.dev/v1alpha1
kind: ContainerBehaviorReport
metadata:
  name: owner-broken
  finalizers: [imprint.dev/fold]
  ownerReferences: [{apiVersion: v1, kind: Pod, name: owner, uid: $uid}]
spec:
  subject: {namespace: $NS, pod: owner, container: broken, node: $NODE}
  syscalls: {arch: x86_64, names: [read]}
YAML
  k delete pod owner --wait=false > /dev/null
  eventually 60 bash -c "! kubectl -n $NS get cbr owner-broken > /dev/null 2>&1" ||
    { echo "the report of no workload is still held"; k get cbr owner-broken -o yaml | head -20; return 1; }
  eventually 20 has_event owner-broken ReleasedUnfolded
}

agent_restart_loses_nothing() {
  local pod before after
  # A pod the agent has written a report for already (the replacement of
  # the pod deleted above may have none yet).
  for pod in $(pods_of mixed); do
    [[ -n $(report_of "$pod" web) ]] &&
      before=$(cbr "$(report_of "$pod" web)" -o jsonpath='{.spec.stats.syscalls}' 2> /dev/null) && break
  done
  [[ -n $before ]] || { echo "no mixed pod has a report yet"; return 1; }
  stop agent
  # A workload that starts while no agent records (its start is missed).
  # (It keeps doing something: a container idle since before the agent
  # started has no report at all, since nothing of it was seen.)
  web early 'while true; do cat /etc/hostname > /dev/null; sleep 2; done' || return 1
  k rollout status deployment/early --timeout=60s > /dev/null || return 1
  start_agent
  eventually 60 curl -fsS "http://127.0.0.1:$AGENT_PORT/readyz" > /dev/null || return 1
  # New behavior after the restart, so the restarted agent writes again.
  k exec "$pod" -- /bin/sh -c 'cp /bin/busybox /tmp/after-restart; /tmp/after-restart; exit 0' || return 1
  eventually 60 holds_report "$pod" web '[.spec.executables[].path] | index("/tmp/after-restart")' || return 1
  after=$(cbr "$(report_of "$pod" web)" -o jsonpath='{.spec.stats.syscalls}')
  (( after >= before )) || { echo "syscalls before $before, after $after"; return 1; }
  # What the pod ran before is in its report, or in the profile that
  # covers the report (learnt before the profile was Stable).
  cbr "$(report_of "$pod" web)" -o json | jq -e --arg p "/tmp/x-$pod" '[.spec.executables[].path] | index($p)' > /dev/null ||
    { holds_report "$pod" web '.spec.covered.profile == "deployment-mixed"' && profile_has_executables deployment-mixed "/tmp/x-$pod"; } ||
    { echo "the run before the restart is gone"; return 1; }
  # The time nobody recorded is in the report; its start was seen before.
  cbr "$(report_of "$pod" web)" -o json | jq -e '.spec.stats | (.unrecorded | length == 1) and .startObserved == true' > /dev/null ||
    { echo "no unrecorded period, or start not observed:"; cbr "$(report_of "$pod" web)" -o json | jq -c .spec.stats; return 1; }
}

# The Deployment started while the agent was down (above): its report says
# its start was not observed, and its profile stays Learning with a
# condition saying why, however long nothing changes, until a replica is
# recorded from its start (a rollout restart).
a_start_never_seen_keeps_learning() {
  local pod
  pod=$(pods_of early | head -1)
  eventually 60 holds_report "$pod" web '.spec.stats.startObserved == false' ||
    { echo "the report of $pod does not say its start was missed"; cbr "$(report_of "$pod" web)" -o json | jq -c .spec.stats; return 1; }
  eventually 30 holds bp deployment-early '[.status.conditions[].type] | index("StartNotObserved")' ||
    { bp deployment-early -o yaml; return 1; }
  sleep 25 # past the stability window, with nothing new
  phase_is deployment-early Learning || { echo "Stable with a start never seen"; bp deployment-early -o yaml; return 1; }
  k rollout restart deployment/early > /dev/null && k rollout status deployment/early --timeout=60s > /dev/null || return 1
  eventually 60 holds bp deployment-early '[(.status.conditions // [])[].type] | index("StartNotObserved") | not' ||
    { echo "the condition stayed after a recorded start"; bp deployment-early -o yaml; return 1; }
  # The new replica's start is new behavior: a stability window after it
  # (20 s), on a busy machine a few report intervals more.
  eventually 90 phase_is deployment-early Stable ||
    { bp deployment-early -o json | jq -c '.status | {phase, lastChange, reports, conditions}'; date -u +%FT%TZ; return 1; }
}

bad_report_entries_are_skipped() {
  local junk
  junk=$(jq -nc '[range(0; 3000) | {path: ("garbage\u0001" + tostring), access: ["read"]}]')
  k apply --server-side -f - <<YAML || return 1
apiVersion: imprint.dev/v1alpha1
kind: ContainerBehaviorReport
metadata: {name: hand-edited}
spec:
  subject: {namespace: $NS, pod: hand-edited, container: app, node: $NODE, workload: {kind: Deployment, name: handmade}}
  syscalls: {arch: x86_64, names: [read, write, not_a_syscall, "../../etc/passwd"]}
  executables: [{path: "relative/path", args: [], count: 1}, {path: /bin/true, args: [], count: 1}]
  files: $junk
YAML
  eventually 60 holds bp deployment-handmade '
      (.status.conditions[] | select(.type == "SkippedEntries")) and
      (.status.containers[0].syscalls | index("read")) and
      ((.status.containers[0].syscalls | index("not_a_syscall")) | not) and
      (.status.containers[0].executables == ["/bin/true"])' || { bp deployment-handmade -o yaml | head -40; return 1; }
  eventually 20 has_event deployment-handmade SkippedEntries || return 1
  # Other workloads are still served: a new one gets its profile.
  web other 'cat /etc/hostname; exec sleep 3600' && eventually 60 bp deployment-other > /dev/null
}

api_server_down_loses_nothing() {
  local pidfile=$PIDS/kube-apiserver.pid pid cmd=()
  # A pod that does something new while the API server is away.
  web late 'sleep 30; cp /bin/busybox /tmp/late-marker; /tmp/late-marker true; exec sleep 3600' &&
    k rollout status deployment/late --timeout=60s || return 1
  local pod
  pod=$(pods_of late)
  pid=$(cat "$pidfile")
  mapfile -d '' cmd < "/proc/$pid/cmdline"
  local log
  log=$(readlink "/proc/$pid/fd/1")
  kill -TERM "$pid"
  while kill -0 "$pid" 2> /dev/null; do sleep 0.2; done
  echo "API server stopped for ${API_DOWN}s"
  sleep "$API_DOWN"
  setsid "${cmd[@]}" >> "$log" 2>&1 < /dev/null &
  echo $! > "$pidfile"
  eventually 120 kubectl get --raw /readyz > /dev/null || return 1
  kill -0 "$(cat "$work/agent.pid")" || { echo "the agent died"; return 1; }
  eventually 90 holds_report "$pod" web '[.spec.executables[].path] | index("/tmp/late-marker")' || {
    tail -20 "$work/agent.log"; return 1; }
  # Noticed: a write failed, the reports could not be read back, or a new
  # pod's owner could not be looked up (which of these depends on timing).
  grep -qE "report not written|cannot read|API server unreachable" "$work/agent.log" ||
    { echo "the outage was not noticed"; return 1; }
  # The leader could not renew its Lease: it paused before a standby could
  # take over, and went on once the API server answered again.
  if ! grep -q "paused until it is" "$work/controller.log" ||
    ! eventually 60 grep -q "renewed again: acting" "$work/controller.log"; then
    echo "the controller did not pause and resume"; grep -i lease "$work/controller.log" | tail -n 5; return 1
  fi
}

metrics_and_health_are_served() {
  local a c
  a=$(curl -fsS "http://127.0.0.1:$AGENT_PORT/metrics") &&
    c=$(curl -fsS "http://127.0.0.1:$CONTROLLER_PORT/metrics") &&
    curl -fsS "http://127.0.0.1:$AGENT_PORT/healthz" > /dev/null &&
    curl -fsS "http://127.0.0.1:$AGENT_PORT/readyz" > /dev/null &&
    curl -fsS "http://127.0.0.1:$CONTROLLER_PORT/readyz" > /dev/null || return 1
  grep -E '^imprint_agent_report_writes_total\{kind="applied"\} [1-9]' <<< "$a" &&
    grep -E '^imprint_agent_events_total\{kind="syscall"\} [1-9]' <<< "$a" &&
    grep -E '^imprint_agent_api_errors_total [1-9]' <<< "$a" &&
    grep -E '^imprint_controller_merges_total [1-9]' <<< "$c" &&
    grep -E '^imprint_controller_folded_reports_total [1-9]' <<< "$c" &&
    grep -E '^imprint_controller_profiles\{kind="Learning"\} [0-9]' <<< "$c" &&
    grep -E '^imprint_controller_reconcile_duration_seconds_count [1-9]' <<< "$c"
}

# The API server itself keeps a BehaviorProfile readable for the controller.
cel_rules_guard_the_profile() {
  local out
  out=$(k patch bp deployment-mixed --type merge -p '{"spec":{"workload":{"name":"other"}}}' 2>&1) &&
    { echo "a changed workload was accepted"; return 1; }
  grep -q "cannot change" <<< "$out" || { echo "$out"; return 1; }
  out=$(k patch bp deployment-mixed --type merge -p '{"spec":{"stabilityWindow":"ten minutes"}}' 2>&1) &&
    { echo "an unreadable window was accepted"; return 1; }
  grep -q "a duration" <<< "$out" || { echo "$out"; return 1; }
  k patch bp deployment-mixed --type merge -p '{"spec":{"stabilityWindow":"25s"}}' > /dev/null
}

# --- leader election and the v1beta1 API ----------------------------------------
standby_takes_over() {
  local standby_port=19292
  # The leader holds a fresh Lease (it renews again after the outage above).
  eventually 60 bash -c "curl -fsS http://127.0.0.1:$CONTROLLER_PORT/metrics | grep -qx 'imprint_controller_leader 1'" || return 1
  start_controller standby "$standby_port"
  sleep 8
  # The standby is ready (running) but does not lead while the leader holds
  # the Lease. On failure: the Lease and both logs, and the standby stopped
  # (it would take the Lease from whatever runs next).
  local standby_metrics leader_metrics
  standby_metrics=$(curl -fsS "http://127.0.0.1:$standby_port/metrics")
  leader_metrics=$(curl -fsS "http://127.0.0.1:$CONTROLLER_PORT/metrics")
  if ! grep -qx 'imprint_controller_leader 0' <<< "$standby_metrics" ||
    ! grep -qx 'imprint_controller_leader 1' <<< "$leader_metrics" ||
    ! grep -q "another replica leads" "$work/standby.log"; then
    echo "standby: $(grep '^imprint_controller_leader ' <<< "$standby_metrics"); leader: $(grep '^imprint_controller_leader ' <<< "$leader_metrics")"
    kubectl -n "$LEASE_NS" get lease imprint-controller -o jsonpath='{.spec}{"\n"}'
    tail -n 5 "$work/controller.log" "$work/standby.log"
    stop standby
    return 1
  fi
  [[ $(kubectl -n "$LEASE_NS" get lease imprint-controller -o jsonpath='{.spec.holderIdentity}') == controller ]] || { stop standby; return 1; }
  # The leader stops cleanly and gives the Lease up: the standby leads.
  stop controller
  eventually 30 bash -c "curl -fsS http://127.0.0.1:$standby_port/metrics | grep -qx 'imprint_controller_leader 1'" || return 1
  [[ $(kubectl -n "$LEASE_NS" get lease imprint-controller -o jsonpath='{.spec.holderIdentity}') == standby ]] || return 1
  web after-handover 'cat /etc/hostname; exec sleep 3600' || return 1
  if ! eventually 120 bp deployment-after-handover > /dev/null; then
    kubectl -n "$NS" get bp,cbr
    return 1
  fi
  stop standby
  start_controller
  eventually 30 curl -fsS "http://127.0.0.1:$CONTROLLER_PORT/readyz" > /dev/null
}

# security-profiles-operator <= 0.10 served SeccompProfile v1beta1 only, and
# namespaced: its CRD is SPO's with that one version and that scope.
seccomp_v1beta1_when_selected() {
  local crd=$SP
  stop controller
  kubectl delete crd "$crd" --wait=true --timeout=60s || return 1
  kubectl create --dry-run=client -o json -f "$CRDS/seccompprofile.crd.yaml" |
    jq '.spec.scope = "Namespaced" | .spec.versions |= map(select(.name == "v1beta1") | .storage = true)' |
    kubectl apply --server-side -f - || return 1
  kubectl wait --for condition=Established --timeout=60s "crd/$crd" || return 1
  start_controller v1beta1 "$CONTROLLER_PORT" --seccomp-api v1beta1
  local name
  name=$(seccomp_of deployment-mixed web) && [[ -n $name ]] || return 1
  eventually 60 k get "$crd" "$name" > /dev/null || { tail -5 "$work/v1beta1.log"; return 1; }
  k get "$crd" "$name" -o json | jq -e '
    .apiVersion == "security-profiles-operator.x-k8s.io/v1beta1" and
    .metadata.ownerReferences[0].kind == "BehaviorProfile" and .spec.defaultAction == "SCMP_ACT_ERRNO" and
    (.spec.syscalls[0].names | length) > 20' > /dev/null || return 1
  # Back to the current CRD (v1, cluster-scoped) for whatever runs next.
  stop v1beta1
  kubectl delete crd "$crd" --wait=true --timeout=60s &&
    kubectl apply --server-side -f "$CRDS/seccompprofile.crd.yaml" &&
    kubectl wait --for condition=Established --timeout=60s "crd/$crd"
}

check "setup: CRDs, agent, controller, workloads" setup
check "one report per pod container: pod, container, node, workload" reports_name_pod_container_node_and_workload
check "2 replicas doing different things merge into one profile" replicas_merge_into_one_profile
check "peers are named in both reports (Service and client pod)" peers_are_named_in_both_reports
check "a pod of the second node: left out by this node's agent (counted), no report, no alert" another_nodes_pod_is_left_alone
check "a restarted container's report keeps its first run" a_restarted_container_keeps_its_first_run
check "SeccompProfiles accepted by SPO's CRD" seccomp_profiles_are_accepted
check "CEL: a profile's workload cannot change, its window must be a duration" cel_rules_guard_the_profile
check "the profile becomes Stable" profile_becomes_stable
check "once Stable, reports hold only what the profile lacks; the profile stays as it was" reports_are_covered_once_stable
check "a deleted profile covers nothing: the report whole again, all of it learnt anew" a_deleted_profile_covers_nothing
check "guarding: new behavior is an anomaly, not learnt, until accepted" new_behavior_is_an_anomaly_until_accepted
check "enforced profile + recommended securityContext serve with zero errors" enforced_profile_serves_without_errors
check "the profile without one needed syscall fails" profile_without_a_needed_syscall_fails
check "a root written only by links and FIFOs stays writable, and the workload runs" files_made_without_open_keep_the_root_writable
check "a namespace being deleted (10 unwritable reports) holds up no other report" a_namespace_being_deleted_holds_up_no_report
check "5,000 pods on another node: the agent's memory stays where it was" other_nodes_pods_cost_the_agent_nothing
check "names never collide: namespace a-b + Deployment c, namespace a + Deployment b-c" names_never_collide_across_namespaces
check "an earlier release's SeccompProfile and archive are adopted, nothing learnt is lost" earlier_release_objects_are_adopted
check "a deleted pod's report is folded into the archive" deleted_pod_is_folded_into_the_archive
check "a force-deleted pod's report is folded; a report of no workload is released" force_deleted_and_broken_reports_go
check "10 pods deleted at once, 5 times over: every one is in the archive" folds_keep_every_deleted_pod
check "deleting a namespace with learning workloads completes within 60s" namespace_deletion_completes
check "the agent restarted reads its reports back; the time it was down is in them" agent_restart_loses_nothing
check "a workload started before the agent stays Learning until a start is recorded" a_start_never_seen_keeps_learning
check "bad report entries: skipped, condition, Event; others served" bad_report_entries_are_skipped
check "API server down ${API_DOWN}s: recording goes on, published after" api_server_down_loses_nothing
check "metrics, health and readiness" metrics_and_health_are_served
check "a host process's files are not recorded" host_processes_are_not_recorded
check "8 fork/exec loops: nothing lost, the victim goes Stable" fork_loops_do_not_blind_the_node
check "100 pods behind an API server slowed to 300 ms a call: nothing lost" a_slow_api_server_loses_nothing
check "a child cgroup, even one named after another pod's container, is its own container's" a_child_cgroup_is_its_container
# Late: the node walks those directories afterwards (the kubelet measures
# the pod's disk use), and the file events of that walk fill the ring
# buffer, which would charge drops to the workloads of the checks above.
check "200,000 directories: agent under 128 MiB, report bounded, writes kept" many_directories_keep_the_agent_bounded
check "leader election: a standby replica waits, then takes over" standby_takes_over
check "SeccompProfile v1beta1 (namespaced, SPO <= 0.10) when selected" seccomp_v1beta1_when_selected
finish profiles
