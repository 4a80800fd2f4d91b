#!/usr/bin/env bash
# What imprint keeps in the cluster's store once its profiles are Stable,
# per 1,000 pods, and what it writes at steady state.
#
# WORKLOADS Deployments (half nginx, half redis) of REPLICAS pods each get
# one ContainerBehaviorReport per pod, written through the real API server as
# the agent writes them (server-side apply, its labels and fold finalizer);
# their specs are those of a real recording of nginx and redis under load
# (e2e/bench/reports/, from the runtime suite), each pod its own subject. The
# real controller (`imprint controller`, on this host) merges them until every
# BehaviorProfile is Stable. The reports are then written again as the
# agents write them once their profile is Stable: covered by it, holding only
# what it lacks (the agent's rule, through the `cover` example); no profile
# may change. Then it prints:
#   - the serialized size of every imprint object (reports, profiles,
#     SeccompProfiles), as etcd stores them (JSON, managedFields included),
#     per kind and per 1,000 pods, with the reports whole (as while
#     learning) and covered, and etcd's own database growth;
#   - the writes to imprint's resources (and SPO's) over STEADY seconds.
# No agent runs: the writes are the controller's alone.
#
# Usage: e2e/bench/etcd-footprint.sh [WORKLOADS [REPLICAS]]   (default 100 10)
# Needs: root, the local cluster (eval "$(e2e/cluster/env.sh)"), kubectl,
# jq, curl, IMPRINT_BIN, the cover example beside it (IMPRINT_COVER; cargo
# build -p imprint --examples), SPO's CRDs (IMPRINT_SPO_CRDS).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=e2e/kube.sh
. "$here/../kube.sh"
IMPRINT=${IMPRINT_BIN:-imprint}
# The agent's rule for covered reports (cargo build -p imprint --examples).
COVER=${IMPRINT_COVER:-$(dirname "$(command -v "$IMPRINT")")/examples/cover}
WORKLOADS=${1:-100}
REPLICAS=${2:-10}
STEADY=${IMPRINT_BENCH_STEADY_SECONDS:-60}
NS=imprint-etcd-bench
: "${KUBECONFIG:?run against the local cluster: eval \"\$(e2e/cluster/env.sh)\"}"
ETCD_METRICS=${IMPRINT_E2E_ETCD_METRICS:-http://127.0.0.1:2381/metrics}
PODS=$((WORKLOADS * REPLICAS))

work=$(mktemp -d /tmp/imprint-etcd-bench.XXXXXX)
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
cleanup() {
  set +e
  # The controller releases the reports' finalizers as the namespace goes.
  kubectl delete namespace "$NS" --wait=false > /dev/null 2>&1
  local t0=$SECONDS
  while kubectl get namespace "$NS" > /dev/null 2>&1 && ((SECONDS - t0 < 180)); do sleep 2; done
  if [[ -f $work/controller.pid ]]; then
    kill -TERM "$(cat "$work/controller.pid")" 2> /dev/null
    wait "$(cat "$work/controller.pid")" 2> /dev/null
  fi
  kubectl get namespace "$NS" > /dev/null 2>&1 && log "namespace $NS still there: the controller's log is in $work" && return
  rm -rf "$work"
}
trap cleanup EXIT

# etcd's database: bytes in use (what compaction and defragmentation would
# leave) and its file size.
etcd_bytes() { curl -fsS "$ETCD_METRICS" | awk -v m="$1" '$1 == m { printf "%.0f\n", $2 }'; }
# writes: creates, updates, patches and deletes the API server served for
# imprint's and SPO's resources since it started.
writes() {
  kubectl get --raw /metrics | awk '
    /^apiserver_request_total\{/ && /group="(imprint\.dev|security-profiles-operator\.x-k8s\.io)"/ &&
      /verb="(POST|PUT|PATCH|DELETE|APPLY|CREATE|UPDATE)"/ { n += $NF }
    END { printf "%d\n", n }'
}
# stored KIND [SELECTOR]: objects of KIND in the bench's namespace (SPO's v1
# SeccompProfiles are cluster-scoped: those SELECTOR picks) and the bytes of
# their JSON (as the API server keeps a custom resource in etcd).
stored() {
  kubectl -n "$NS" get "$1" ${2:+-l "$2"} -o json 2> /dev/null |
    jq -r '[.items | length, (map(tojson | length) | add // 0)] | @tsv' || echo "0 0"
}

kubectl apply --server-side -f "$here/../../manifests/crds/" > /dev/null
kubectl apply --server-side -f "$CRDS/seccompprofile.crd.yaml" > /dev/null
kubectl wait --for condition=established --timeout=60s \
  crd/containerbehaviorreports.imprint.dev crd/behaviorprofiles.imprint.dev "crd/$SP" > /dev/null
kubectl create namespace "$NS" > /dev/null
in_use_before=$(etcd_bytes etcd_mvcc_db_total_size_in_use_in_bytes)

IMPRINT_LOG=info "$IMPRINT" controller --no-leader-election --stability-window 20s \
  --listen 127.0.0.1:19097 > "$work/controller.log" 2>&1 &
echo $! > "$work/controller.pid"

log "writing $PODS reports ($WORKLOADS workloads x $REPLICAS replicas)"
t0=$SECONDS
for ((w = 0; w < WORKLOADS; w++)); do
  if ((w % 2 == 0)); then server=nginx; else server=redis; fi
  name=$server-$w
  for ((r = 0; r < REPLICAS; r++)); do
    pod=$name-$(printf '%05d' "$r")
    jq -c --arg ns "$NS" --arg pod "$pod" --arg c "$server" --arg wl "$name" --arg node "${IMPRINT_E2E_NODE_NAME:-node}" \
      --arg uid "$(cat /proc/sys/kernel/random/uuid)" '
      {apiVersion: "imprint.dev/v1alpha1", kind: "ContainerBehaviorReport",
       metadata: {name: "\($pod)-\($c)", namespace: $ns, finalizers: ["imprint.dev/fold"],
         labels: {"imprint.dev/workload-kind": "Deployment", "imprint.dev/workload-name": $wl,
                  "imprint.dev/container": $c, "imprint.dev/node": $node}},
       spec: (. + {subject: {node: $node, namespace: $ns, pod: $pod, podUid: $uid, container: $c,
         containerId: ($uid | gsub("-"; "")), image: "localhost/imprint-e2e/\($c):bench",
         workload: {kind: "Deployment", name: $wl}}})}' "$here/reports/$server.json"
  done > "$work/workload-$w.jsonl"
  # One apply per workload, as its replicas' agents would, one object each.
  jq -s '{apiVersion: "v1", kind: "List", items: .}' "$work/workload-$w.jsonl" |
    kubectl apply --server-side --field-manager imprint-agent -f - > /dev/null
done
log "reports written in $((SECONDS - t0)) s"

log "waiting for $WORKLOADS BehaviorProfiles to be Stable"
t0=$SECONDS
while :; do
  stable=$(kubectl -n "$NS" get behaviorprofiles -o json |
    jq '[.items[] | select(.status.phase == "Stable")] | length') || stable=0
  ((stable >= WORKLOADS)) && break
  if ((SECONDS - t0 > 900)); then
    log "only $stable of $WORKLOADS Stable after 900 s; controller log: $work/controller.log"
    exit 1
  fi
  sleep 5
done
log "all Stable after $((SECONDS - t0)) s"

# table TITLE: every imprint object in the store now, per kind and per
# 1,000 pods.
table() {
  echo "$1"
  printf '  %-44s %8s %12s %16s\n' kind objects bytes "per 1,000 pods"
  local total=0 kind selector count bytes
  for kind in containerbehaviorreports behaviorprofiles "$SP"; do
    selector=
    [[ $kind == "$SP" ]] && selector=imprint.dev/profile-namespace=$NS
    read -r count bytes < <(stored "$kind" "$selector")
    total=$((total + bytes))
    printf '  %-44s %8d %12d %13.2f MB\n' "${kind%%.*}" "$count" "$bytes" "$(jq -n "$bytes * 1000 / $PODS / 1e6")"
  done
  printf '  %-44s %8s %12d %13.2f MB\n' total "" "$total" "$(jq -n "$total * 1000 / $PODS / 1e6")"
}
# last_changes: every profile's name, phase and last change.
last_changes() {
  kubectl -n "$NS" get behaviorprofiles -o json |
    jq -r '.items[] | "\(.metadata.name) \(.status.phase) \(.status.lastChange)"' | sort
}

whole=$(table "imprint objects in the store, $WORKLOADS workloads x $REPLICAS replicas ($PODS pods), every profile Stable, reports whole (as written while learning)")

# What the agents do next: a report whose profile is Stable is written
# again covered by it, holding only what the profile lacks (the agent's own
# rule, through the cover example), one apply per workload.
log "writing the reports again as the agents do once their profiles are Stable (covered)"
changes_before=$(last_changes)
t0=$SECONDS
for ((w = 0; w < WORKLOADS; w++)); do
  if ((w % 2 == 0)); then server=nginx; else server=redis; fi
  kubectl -n "$NS" get behaviorprofile "deployment-$server-$w" -o json > "$work/profile.json"
  "$COVER" "$work/profile.json" < "$work/workload-$w.jsonl" |
    jq -s '{apiVersion: "v1", kind: "List", items: .}' |
    kubectl apply --server-side --field-manager imprint-agent -f - > /dev/null
done
log "covered reports written in $((SECONDS - t0)) s; the controller merges them"
# Every report's change is merged (the controller's queue drained) before
# the profiles are compared: none may have learnt or lost anything.
sleep 30
changes_after=$(last_changes)
if [[ $changes_before != "$changes_after" ]]; then
  log "profiles changed as their reports were covered:"
  diff <(echo "$changes_before") <(echo "$changes_after") | head -20 >&2
  exit 1
fi
covered=$(kubectl -n "$NS" get containerbehaviorreports -o json | jq '[.items[] | select(.spec.covered != null)] | length')

w0=$(writes)
sleep "$STEADY"
w1=$(writes)
in_use_after=$(etcd_bytes etcd_mvcc_db_total_size_in_use_in_bytes)

echo "$whole"
table "imprint objects in the store once the reports are covered ($covered of $PODS covered; every profile Stable, its last change unchanged)"
echo "  etcd database in use: +$(((in_use_after - in_use_before) / 1024)) KiB (revisions kept until compaction included)"
echo "writes to imprint's and SPO's resources over $STEADY s at steady state: $((w1 - w0))" \
  "($(jq -n "($w1 - $w0) / $WORKLOADS" ) per workload)"
