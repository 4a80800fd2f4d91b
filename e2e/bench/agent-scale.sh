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
# core at steady state); it never fails on them. Then, with the same pods,
# the agent again with --no-detection: detection's share (process tracking,
# the built-in rules) of memory and CPU, in the same run. (The pods are
# started through the CRI, with no Pod objects: no profile guards them, so
# the profile lookups are not part of it.)
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
PORT=19390
work=$(mktemp -d /tmp/imprint-agent-bench.XXXXXX)

cleanup() {
  set +e
  [[ -f $work/agent.pid ]] && kill -TERM "$(cat "$work/agent.pid")" 2> /dev/null && sleep 1
  cat "$work"/pods/*.id 2> /dev/null | while read -r id; do crictl rmp -f "$id" > /dev/null 2>&1; done
  for r in $(kubectl -n "$NS" get cbr -o name 2> /dev/null); do
    kubectl -n "$NS" patch "$r" --type merge -p '{"metadata":{"finalizers":null}}' > /dev/null 2>&1
  done
  kubectl delete namespace "$NS" --wait=false > /dev/null 2>&1
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
    printf "%-32s rss %6.1f MiB   cpu %5.2f%% of a core over %ds\n", label, y[1] / 1024, 100 * (y[2] - x[2]) / hz / w, w
  }' | tee -a "$work/figures"
}

kubectl apply --server-side -f "$here/../../manifests/crds/" > /dev/null
kubectl create namespace "$NS" > /dev/null
mkdir -p "$work/pods"
# start_agent [ARGS...]: the agent on the host, until it is ready.
start_agent() {
  IMPRINT_LOG=warn "$IMPRINT" agent --node-name "$IMPRINT_E2E_NODE_NAME" --runtime-socket "$SOCK" \
    --listen "127.0.0.1:$PORT" "$@" >> "$work/agent.log" 2>&1 &
  echo $! > "$work/agent.pid"
  until curl -fsS "http://127.0.0.1:$PORT/readyz" > /dev/null 2>&1; do sleep 0.5; done
}
start_agent
sleep 10
measure "no container (baseline)"

echo "starting $N pods through CRI..."
t0=$SECONDS
for ((i = 0; i < N; i++)); do
  uid=$(cat /proc/sys/kernel/random/uuid)
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

# The same pods, the agent without detection.
kill -TERM "$(cat "$work/agent.pid")"
while kill -0 "$(cat "$work/agent.pid")" 2> /dev/null; do sleep 0.5; done
start_agent --no-detection
sleep 40
measure "$N containers, detection off"
awk 'NR == 2 { split($0, f, "rss "); split(f[2], r, " "); on = r[1]; split($0, g, "cpu "); split(g[2], c, "%"); con = c[1] }
  NR == 3 { split($0, f, "rss "); split(f[2], r, " "); off = r[1]; split($0, g, "cpu "); split(g[2], c, "%"); coff = c[1] }
  END {
    printf "detection on against off: rss %.1f vs %.1f MiB (goal <= 64 MiB with it: %s), cpu %.2f%% vs %.2f%% of a core\n",
      on, off, (on <= 64 ? "met" : "NOT met"), con, coff
  }' "$work/figures"
