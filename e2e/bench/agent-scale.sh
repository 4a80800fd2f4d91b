#!/usr/bin/env bash
# The node agent's memory and CPU with many containers on the node:
# `imprint agent` on the host, naming containers through the e2e runtime's
# containerd (e2e/runtime/up.sh: pods started through CRI with kubelet-style
# labels and cgroups) and writing its reports to the API server of the local
# cluster (e2e/cluster/up.sh). Measures the agent's resident memory (VmRSS)
# and CPU time (utime + stime) over a steady window, first with no
# container (the baseline, same run), then with N pods of one busybox
# container each (a shell that wakes every 10 s: an exec each time).
# Prints figures and compares them with the targets (<= 48 MiB, < 1% of a
# core at steady state); it never fails on them.
# Each pod also has a Pod object in the API server, bound to a node of the
# bench's own (a Node object without a kubelet: the pods never run twice),
# so the agent (named after that node) finds their workloads, and
# `imprint controller`, started on the host too, merges their reports into
# BehaviorProfiles that guard once Stable. Once the agent checks all N
# containers against their guarding profiles (imprint_agent_guarded_containers),
# it is measured again; then, with the same pods, the agent with
# --no-detection, then with detection again: detection's share (process
# tracking, the built-in rules, the profiles) of memory (the larger of the
# two runs with it) and CPU (their mean), in the same run.
# Usage (as root, both up; IMPRINT_BIN set): e2e/bench/agent-scale.sh [N]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
N=${1:-200}
WINDOW=${IMPRINT_BENCH_WINDOW:-60}
IMPRINT=${IMPRINT_BIN:?set IMPRINT_BIN}
# The runtime's paths and its crictl.
# shellcheck source=e2e/runtime/common.sh
. "$here/../runtime/common.sh"
[[ -f $STATE/up ]] || die "the runtime is not up: run e2e/runtime/up.sh first"
# shellcheck disable=SC1091
. "$STATE/env"
SOCK=$IMPRINT_RT_SOCK
BUSYBOX=$IMPRINT_RT_BUSYBOX_IMAGE
# The cluster's API server, for the reports.
eval "$("$here/../cluster/env.sh")"
NS=imprint-bench-$(date +%s)
NODE=$NS-node
PORT=19390
CONTROLLER_PORT=19391
work=$(mktemp -d /tmp/imprint-agent-bench.XXXXXX)

cleanup() {
  set +e
  [[ -f $work/agent.pid ]] && kill -TERM "$(cat "$work/agent.pid")" 2> /dev/null && sleep 1
  [[ -f $work/controller.pid ]] && kill -TERM "$(cat "$work/controller.pid")" 2> /dev/null
  cat "$work"/pods/*.id 2> /dev/null | while read -r id; do crictl rmp -f "$id" > /dev/null 2>&1; done
  for r in $(kubectl -n "$NS" get cbr -o name 2> /dev/null); do
    kubectl -n "$NS" patch "$r" --type merge -p '{"metadata":{"finalizers":null}}' > /dev/null 2>&1
  done
  for r in $(kubectl -n "$NS" get bp -o name 2> /dev/null); do
    kubectl -n "$NS" patch "$r" --type merge -p '{"metadata":{"finalizers":null}}' > /dev/null 2>&1
  done
  kubectl -n "$NS" delete pods --all --grace-period=0 --force --wait=false > /dev/null 2>&1
  kubectl delete namespace "$NS" --wait=false > /dev/null 2>&1
  kubectl delete node "$NODE" --wait=false > /dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

# sample PID: "rss_kib cpu_ticks"
sample() {
  local pid=$1 rss ticks
  rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")
  ticks=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
  echo "$rss $ticks"
}

# measure LABEL: RSS at the end and CPU share over WINDOW seconds.
measure() {
  local pid a b hz
  hz=$(getconf CLK_TCK)
  pid=$(cat "$work/agent.pid")
  a=$(sample "$pid")
  sleep "$WINDOW"
  b=$(sample "$pid")
  awk -v a="$a" -v b="$b" -v hz="$hz" -v w="$WINDOW" -v label="$1" 'BEGIN {
    split(a, x, " "); split(b, y, " ")
    printf "%-32s rss %6.1f MiB   cpu %6.3f%% of a core over %ds\n", label, y[1] / 1024, 100 * (y[2] - x[2]) / hz / w, w
  }' | tee -a "$work/figures"
}

kubectl apply --server-side -f "$here/../../manifests/crds/" > /dev/null
kubectl create namespace "$NS" > /dev/null
# The bench's node: an object only (no kubelet), so the Pod objects bound to
# it are neither run nor collected as orphans; they tolerate its taints.
kubectl create -f - > /dev/null <<YAML
apiVersion: v1
kind: Node
metadata: {name: $NODE, labels: {imprint.dev/bench: "true"}}
YAML
mkdir -p "$work/pods"
# start_agent [ARGS...]: the agent on the host, until it is ready.
start_agent() {
  IMPRINT_LOG=warn "$IMPRINT" agent --node-name "$NODE" --runtime-socket "$SOCK" \
    --listen "127.0.0.1:$PORT" "$@" >> "$work/agent.log" 2>&1 &
  echo $! > "$work/agent.pid"
  until curl -fsS "http://127.0.0.1:$PORT/readyz" > /dev/null 2>&1; do sleep 0.5; done
}
start_agent
sleep 10
measure "no container (baseline)"

echo "creating $N Pod objects on $NODE, then their pods through CRI..."
t0=$SECONDS
jq -n --arg ns "$NS" --arg node "$NODE" --arg image "$BUSYBOX" --argjson n "$N" '{apiVersion: "v1", kind: "List",
  items: [range($n) | {apiVersion: "v1", kind: "Pod", metadata: {name: "bench-\(.)", namespace: $ns},
    spec: {nodeName: $node, tolerations: [{operator: "Exists"}],
      containers: [{name: "app", image: $image, command: ["/bin/sh", "-c", "while true; do sleep 10; done"]}]}}]}' |
  kubectl create -f - > /dev/null
kubectl -n "$NS" get pods -o json | jq -r '.items[] | "\(.metadata.name) \(.metadata.uid)"' > "$work/uids"
for ((i = 0; i < N; i++)); do
  uid=$(awk -v n="bench-$i" '$1 == n { print $2 }' "$work/uids")
  jq -n --arg ns "$NS" --arg name "bench-$i" --arg uid "$uid" \
    --arg parent "/$CGROUP_ROOT/kubepods/besteffort/pod$uid" '{
      metadata: {name: $name, namespace: $ns, uid: $uid, attempt: 0},
      labels: {"io.kubernetes.pod.name": $name, "io.kubernetes.pod.namespace": $ns, "io.kubernetes.pod.uid": $uid},
      linux: {cgroup_parent: $parent}}' > "$work/pods/$i.pod.json"
  jq -n --arg ns "$NS" --arg pod "bench-$i" --arg uid "$uid" --arg image "$BUSYBOX" '{
      metadata: {name: "app", attempt: 0}, image: {image: $image},
      command: ["/bin/sh", "-c", "while true; do sleep 10; done"],
      labels: {"io.kubernetes.container.name": "app", "io.kubernetes.pod.name": $pod,
               "io.kubernetes.pod.namespace": $ns, "io.kubernetes.pod.uid": $uid}}' > "$work/pods/$i.app.json"
  crictl runp "$work/pods/$i.pod.json" > "$work/pods/$i.id"
  cid=$(crictl create "$(cat "$work/pods/$i.id")" "$work/pods/$i.app.json" "$work/pods/$i.pod.json")
  crictl start "$cid" > /dev/null
done
echo "$N pods started in $((SECONDS - t0)) s; waiting for their reports"
until [[ $(kubectl -n "$NS" get cbr --no-headers 2> /dev/null | wc -l) -ge $N ]]; do
  (( SECONDS - t0 > 600 )) && { echo "only $(kubectl -n "$NS" get cbr --no-headers | wc -l) reports after 600 s"; break; }
  sleep 5
done
echo "$(kubectl -n "$NS" get cbr --no-headers | wc -l) reports after $((SECONDS - t0)) s"
# Let the first writes and the runtime's start-up settle.
sleep 40
measure "$N containers (steady state)"
writes=$(curl -fsS "http://127.0.0.1:$PORT/metrics" | awk '/^imprint_agent_report_writes_total/ { print }')
echo "report writes so far: $(tr '\n' ' ' <<< "$writes")"
awk -v n="$N" '
  NR == 1 { split($0, f, "rss "); split(f[2], r, " "); rss0 = r[1]; split($0, g, "cpu "); split(g[2], c, "%"); cpu0 = c[1] }
  NR == 2 { split($0, f, "rss "); split(f[2], r, " "); rss = r[1]; split($0, g, "cpu "); split(g[2], c, "%"); cpu = c[1] }
  END {
    printf "against the targets: rss %.1f MiB (goal <= 48 MiB: %s; +%.1f MiB over the baseline, %.0f KiB per container); cpu %.2f%% of a core (goal < 1%%: %s; baseline %.2f%%)\n",
      rss, (rss <= 48 ? "met" : "NOT met"), rss - rss0, (rss - rss0) * 1024 / n, cpu, (cpu < 1 ? "met" : "NOT met"), cpu0
  }' "$work/figures"

# The controller merges the reports; each pod's profile guards once Stable,
# and the agent follows them.
IMPRINT_LOG=warn "$IMPRINT" controller --stability-window 20s --resync 3s --no-leader-election \
  --listen "127.0.0.1:$CONTROLLER_PORT" >> "$work/controller.log" 2>&1 &
echo $! > "$work/controller.pid"
t1=$SECONDS
guarded() { curl -fsS "http://127.0.0.1:$PORT/metrics" | awk '$1 == "imprint_agent_guarded_containers" { print $2 }'; }
until [[ $(guarded) -ge $N ]]; do
  (( SECONDS - t1 > 600 )) && { echo "only $(guarded) containers guarded after 600 s"; break; }
  sleep 5
done
echo "$(guarded) containers checked against guarding profiles $((SECONDS - t1)) s after the controller started"
sleep 20
measure "$N guarded containers"
alerts() { curl -fsS "http://127.0.0.1:$PORT/metrics" | awk '/^imprint_agent_alerts_total/ { n += $NF } END { print n + 0 }'; }
echo "alerts raised by the agent so far: $(alerts) (the pods do what they were learnt doing)"

# The same pods, the agent without detection, then with it again: the two
# runs with detection on either side of the one without (the VM drifts).
kill -TERM "$(cat "$work/agent.pid")"
while kill -0 "$(cat "$work/agent.pid")" 2> /dev/null; do sleep 0.5; done
start_agent --no-detection
sleep 40
measure "$N containers, detection off"
kill -TERM "$(cat "$work/agent.pid")"
while kill -0 "$(cat "$work/agent.pid")" 2> /dev/null; do sleep 0.5; done
start_agent
t2=$SECONDS
until [[ $(guarded) -ge $N ]]; do
  (( SECONDS - t2 > 300 )) && { echo "only $(guarded) containers guarded after 300 s"; break; }
  sleep 5
done
sleep 20
measure "$N guarded containers, again"
cpu_of() { awk -v n="$1" 'NR == n { split($0, g, "cpu "); split(g[2], c, "%"); print c[1] }' "$work/figures"; }
rss_of() { awk -v n="$1" 'NR == n { split($0, f, "rss "); split(f[2], r, " "); print r[1] }' "$work/figures"; }
awk -v on1="$(cpu_of 3)" -v off="$(cpu_of 4)" -v on2="$(cpu_of 5)" -v rss1="$(rss_of 3)" -v rss2="$(rss_of 5)" -v rss_off="$(rss_of 4)" 'BEGIN {
    on = (on1 + on2) / 2; rss_on = rss1 > rss2 ? rss1 : rss2
    printf "guarded, detection on against off: rss %.1f vs %.1f MiB (goal <= 64 MiB with it: %s), cpu %.3f%% (mean of %.3f%% and %.3f%%) vs %.3f%% of a core: %+.0f%% (goal <= 10%% more: %s)\n",
      rss_on, rss_off, (rss_on <= 64 ? "met" : "NOT met"), on, on1, on2, off, 100 * (on - off) / off, (on <= off * 1.1 ? "met" : "NOT met")
  }'
