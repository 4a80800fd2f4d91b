#!/usr/bin/env bash
# shellcheck disable=SC2016,SC2015 # $ in single quotes expand in nginx, jq or the pods; A && B || fail is meant
# The NetworkPolicy suite: imprint learns a three-tier application's traffic
# and applies the NetworkPolicies it derives, enforced for real by the
# cluster's NetworkPolicy controller (kube-router's firewall, e2e/cluster).
#   - helm install with controller.networkPolicy.apply=true
#   - frontend (nginx, 2 replicas) -> backend Service by its DNS name
#     (CoreDNS, the cluster DNS) -> backend (busybox httpd, a CGI script, 2
#     replicas) -> redis Service (the address the kubelet puts in the
#     backend's environment) -> redis; every answer is redis' counter,
#     checked; an idle workload listens and is never called
#   - under load, learnt until Stable; a policy is applied per workload
#     (the time from Stable to Applied is printed), none for the idle one,
#     whose condition names its unused listener
#   - imprint recommend --format networkpolicy on the reports saved as
#     files (covered by their Stable profiles, whose files are given too)
#     gives the same policies
#   - the same load with the policies in force: zero errors; again after a
#     restart of every tier (new pods, new addresses)
#   - a pod of another workload in the same namespace and one in another
#     namespace are refused on every port of every tier (pods and Services),
#     while the same probe reaches the cluster DNS
#   - each generated rule is necessary: removing any one of them breaks the
#     application (and putting it back mends it)
#   - a policy changed by hand is put back by the controller
# Needs the local cluster (IMPRINT_E2E_NETWORK_POLICIES=kube-router, from
# e2e/cluster/env.sh), IMPRINT_BIN, curl, jq, helm, kubectl.
# Prints one line per test and closes with "netpol: N passed, N failed".
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=e2e/suite.sh
. "$here/../suite.sh"
# shellcheck source=e2e/kube.sh
. "$here/../kube.sh"
# shellcheck source=e2e/chart.sh
. "$here/../chart.sh"
CACHE=${IMPRINT_E2E_CACHE:-/var/cache/imprint/e2e}
SOCKET=${IMPRINT_E2E_RUNTIME_SOCKET:-}
STAMP=$(date +%s)
NS=imprint-netpol-$STAMP            # the application
OTHER_NS=imprint-netpol-other-$STAMP # an intruder in another namespace
RELEASE_NS=imprint-netpol-system
RELEASE=imprint
work=$(mktemp -d)
note() { echo "# $*" | tee -a "$work/notes"; }
ks() { kubectl -n "$RELEASE_NS" "$@"; }
TIERS=(frontend backend redis)

cleanup() {
  if [[ -n ${IMPRINT_E2E_KEEP_NAMESPACE:-} ]]; then echo "kept namespaces $NS $OTHER_NS $RELEASE_NS"; rm -rf "$work"; return; fi
  kubectl delete namespace "$NS" "$OTHER_NS" --timeout=90s > /dev/null 2>&1 || echo "namespaces not deleted within 90s"
  helm uninstall "$RELEASE" -n "$RELEASE_NS" --wait > /dev/null 2>&1
  kubectl delete namespace "$RELEASE_NS" --wait=false > /dev/null 2>&1
  delete_profiles
  rm -rf "$work"
}
trap cleanup EXIT

# --- install -----------------------------------------------------------------------
install() {
  load_image_names
  kubectl apply --server-side -f "$CRDS/seccompprofile.crd.yaml" > /dev/null &&
    kubectl wait --for condition=Established --timeout=60s "crd/$SP" > /dev/null || return 1
  kubectl create namespace "$NS" > /dev/null && kubectl create namespace "$OTHER_NS" > /dev/null &&
    kubectl create namespace "$RELEASE_NS" > /dev/null &&
    kubectl label namespace "$RELEASE_NS" pod-security.kubernetes.io/enforce=privileged > /dev/null || return 1
  cat > "$work/values.yaml" <<YAML
image: {repository: $IMPRINT_IMAGE_REPOSITORY, tag: $IMPRINT_IMAGE_TAG, pullPolicy: Never}
agent:
  interval: 3s
  namespaces: [$NS]
  runtimeSocket: $(runtime_socket)
  cgroup: {root: $(cgroup_root)}
controller:
  replicas: 1
  stabilityWindow: 20s
  resync: 3s
  networkPolicy: {apply: true}
YAML
  local t0=$SECONDS
  helm install "$RELEASE" "$root/charts/imprint" -n "$RELEASE_NS" -f "$work/values.yaml" \
    --wait --timeout 180s > "$work/install" 2>&1 || { cat "$work/install"; ks get pods; return 1; }
  note "helm install --wait: $((SECONDS - t0))s"
  ks get deployment imprint-controller -o json |
    jq -e '.spec.template.spec.containers[0].args | index("--apply-network-policies")' > /dev/null ||
    { echo "the controller runs without --apply-network-policies"; return 1; }
}

# --- the application ------------------------------------------------------------
# app_manifest: redis and its Service, the backend (busybox httpd; its CGI
# script asks redis to count, through the redis Service's address from its
# environment), the frontend (nginx proxying to the backend Service by its
# DNS name, resolved through the cluster DNS on every request that finds
# its 1 s cache expired), and an idle listener nobody calls.
app_manifest() {
  local dns
  dns=$(kubectl -n kube-system get service kube-dns -o jsonpath='{.spec.clusterIP}') && [[ -n $dns ]] || return 1
  cat <<YAML
apiVersion: v1
kind: ConfigMap
metadata: {name: frontend}
data:
  nginx.conf: |
    user www-data;
    worker_processes 1;
    pid /run/nginx.pid;
    daemon off;
    error_log stderr warn;
    events { worker_connections 256; }
    http {
      access_log off;
      resolver $dns valid=1s ipv6=off;
      resolver_timeout 2s;
      server {
        listen 8080;
        location / {
          set \$backend "backend.$NS.svc.cluster.local";
          proxy_pass http://\$backend:8080;
          proxy_connect_timeout 2s;
          proxy_read_timeout 5s;
        }
      }
    }
---
apiVersion: v1
kind: ConfigMap
metadata: {name: backend}
data:
  count: |
    #!/bin/sh
    reply=\$(printf 'INCR hits\r\nQUIT\r\n' | nc -w 2 "\$REDIS_SERVICE_HOST" "\$REDIS_SERVICE_PORT" 2>/dev/null | head -1 | tr -d '\r')
    case \$reply in
      :[0-9]*) printf 'Content-Type: text/plain\r\n\r\n%s\n' "\${reply#:}" ;;
      *) printf 'Status: 502 Bad Gateway\r\nContent-Type: text/plain\r\n\r\nredis: %s\n' "\$reply" ;;
    esac
---
apiVersion: v1
kind: Service
metadata: {name: redis}
spec:
  selector: {app: redis}
  ports: [{name: redis, port: 6379, targetPort: 6379}]
---
apiVersion: v1
kind: Service
metadata: {name: backend}
spec:
  selector: {app: backend}
  ports: [{name: http, port: 8080, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: frontend}
spec:
  selector: {app: frontend}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: redis}
spec:
  replicas: 1
  selector: {matchLabels: {app: redis}}
  template:
    metadata: {labels: {app: redis, tier: data}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: redis
        image: $REDIS_IMAGE
        imagePullPolicy: Never
        ports: [{containerPort: 6379}]
        readinessProbe: {tcpSocket: {port: 6379}, periodSeconds: 2}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: backend}
spec:
  replicas: 2
  selector: {matchLabels: {app: backend}}
  template:
    metadata: {labels: {app: backend, tier: logic}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: backend
        image: $BUSYBOX
        imagePullPolicy: Never
        command: [/bin/httpd, -f, -p, "8080", -h, /www]
        ports: [{containerPort: 8080}]
        readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 2}
        volumeMounts: [{name: cgi, mountPath: /www/cgi-bin}]
      volumes: [{name: cgi, configMap: {name: backend, defaultMode: 0755}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: frontend}
spec:
  replicas: 2
  selector: {matchLabels: {app: frontend}}
  template:
    metadata: {labels: {app: frontend, tier: web}}
    spec:
      terminationGracePeriodSeconds: 1
      enableServiceLinks: false
      containers:
      - name: frontend
        image: $NGINX_IMAGE
        imagePullPolicy: Never
        command: [/usr/sbin/nginx, -c, /etc/nginx/conf/nginx.conf]
        ports: [{containerPort: 8080}]
        readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 2}
        volumeMounts: [{name: conf, mountPath: /etc/nginx/conf}]
      volumes: [{name: conf, configMap: {name: frontend}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: idle}
spec:
  replicas: 1
  selector: {matchLabels: {app: idle}}
  template:
    metadata: {labels: {app: idle}}
    spec:
      terminationGracePeriodSeconds: 1
      enableServiceLinks: false
      containers:
      - name: idle
        image: $BUSYBOX
        imagePullPolicy: Never
        command: [/bin/httpd, -f, -p, "9000", -h, /tmp]
YAML
}

deploy_application() {
  load_image_names
  app_manifest > "$work/app.yaml" && k apply -f "$work/app.yaml" > /dev/null || return 1
  local d
  for d in redis backend frontend idle; do
    k rollout status "deployment/$d" --timeout=120s > /dev/null || { k get pods; return 1; }
  done
}

frontend_url() { echo "http://$(k get service frontend -o jsonpath='{.spec.clusterIP}'):80/cgi-bin/count"; }

# drive SECONDS CLIENTS LABEL: CLIENTS loops of requests through the
# frontend Service for SECONDS; every answer must be redis' counter.
# Prints the figures; fails on any error.
drive() {
  local seconds=$1 clients=$2 url i
  url=$(frontend_url)
  for ((i = 0; i < clients; i++)); do
    (
      ok=0 bad=0 end=$((SECONDS + seconds))
      while (( SECONDS < end )); do
        answer=$(curl -sS --max-time 5 -w ' (HTTP %{http_code})' "$url" 2>&1)
        if [[ $answer =~ ^[0-9]+$'\n'?' (HTTP 200)'$ ]]; then ok=$((ok + 1)); else
          bad=$((bad + 1)); echo "$(date +%T.%N | cut -c1-12) ${answer//$'\n'/ }" >> "$work/errors-$i"
        fi
      done
      echo "$ok $bad"
    ) > "$work/client-$i" &
  done
  wait
  local ok=0 bad=0 a b
  for ((i = 0; i < clients; i++)); do read -r a b < "$work/client-$i"; ok=$((ok + a)); bad=$((bad + b)); done
  note "load ($3): $clients clients for ${seconds}s: $ok answers (frontend -> backend -> redis), $bad errors"
  (( ok > 0 && bad == 0 )) && return 0
  cat "$work"/errors-* 2> /dev/null | head -5
  return 1
}

# works: a few requests, every one answered with the counter.
works() {
  local url i
  url=$(frontend_url)
  for ((i = 0; i < 5; i++)); do
    [[ $(curl -sS --max-time 5 "$url" 2> /dev/null) =~ ^[0-9]+$ ]] || return 1
  done
}
# broken: a request fails (or is not the counter).
broken() { [[ ! $(curl -sS --max-time 5 "$(frontend_url)" 2> /dev/null) =~ ^[0-9]+$ ]]; }

# The load starts once the application answers (kube-proxy has the new
# Services' endpoints).
application_serves_load() {
  eventually 30 works || return 1
  drive 20 4 learning
}

# --- learning and applying -------------------------------------------------------------
policy_state() { k get behaviorprofiles "deployment-$1" -o jsonpath='{.status.networkPolicy.state}' 2> /dev/null; }

# Polls every half second until each tier's profile is Stable and its
# policy Applied; prints the time between the two per tier.
policies_are_applied_once_stable() {
  local t0=$SECONDS tier now
  local -A stable_at=() applied_at=()
  while (( SECONDS - t0 < 240 )); do
    now=$(date +%s.%N)
    for tier in "${TIERS[@]}"; do
      [[ -n ${stable_at[$tier]:-} ]] || ! phase_is "deployment-$tier" Stable || stable_at[$tier]=$now
      [[ -n ${applied_at[$tier]:-} ]] || [[ $(policy_state "$tier") != Applied ]] || applied_at[$tier]=$now
    done
    [[ ${#applied_at[@]} == "${#TIERS[@]}" ]] && break
    sleep 0.5
  done
  [[ ${#applied_at[@]} == "${#TIERS[@]}" ]] || { k get bp; return 1; }
  for tier in "${TIERS[@]}"; do
    # Applied before this poll saw Stable: the same reconcile did both.
    [[ -n ${stable_at[$tier]:-} ]] || stable_at[$tier]=${applied_at[$tier]}
    note "$tier: Stable -> Applied in $(awk -v a="${applied_at[$tier]}" -v s="${stable_at[$tier]}" 'BEGIN { printf "%.1f", a - s }') s (polled every 0.5 s)"
    # The object: imprint's, owned by the profile, holding the proposal.
    k get networkpolicy "deployment-$tier" -o json > "$work/np-$tier.json" || return 1
    k get behaviorprofiles "deployment-$tier" -o json > "$work/bp-$tier.json" || return 1
    # (The API server drops an empty rule list: the same policy.)
    jq -e --slurpfile bp "$work/bp-$tier.json" 'def n: with_entries(select(.value != []));
      .metadata.labels["app.kubernetes.io/managed-by"] == "imprint" and
      .metadata.ownerReferences[0].kind == "BehaviorProfile" and
      .metadata.ownerReferences[0].uid == $bp[0].metadata.uid and
      (.spec | n) == ($bp[0].status.networkPolicy.spec | n) and
      $bp[0].status.networkPolicy.name == .metadata.name' "$work/np-$tier.json" > /dev/null ||
      { jq '{metadata, spec}' "$work/np-$tier.json"; jq .status.networkPolicy "$work/bp-$tier.json"; return 1; }
    note "$tier: $(jq -c '.status.networkPolicy | {ingressRules, egressRules}' "$work/bp-$tier.json") $(jq -c .spec "$work/np-$tier.json")"
  done
  local line
  k get bp > "$work/bp.txt" && while IFS= read -r line; do note "$line"; done < "$work/bp.txt"
}

# The selectors are the Deployments', ports the pods' (after the Services'
# translation), DNS to the cluster DNS pods, nothing by address.
policies_name_workloads_and_target_ports() {
  jq -e '.spec.podSelector.matchLabels == {app: "frontend"} and (.spec.ingress // [] | length) == 0 and
    ([.spec.egress[] | select(.to[0].podSelector.matchLabels == {app: "backend"}) | .ports[] | "\(.port)/\(.protocol)"] == ["8080/TCP"]) and
    ([.spec.egress[] | select(.to[0].podSelector.matchLabels["k8s-app"] == "kube-dns" and
        .to[0].namespaceSelector.matchLabels["kubernetes.io/metadata.name"] == "kube-system") | .ports[] | "\(.port)/\(.protocol)"] | sort) == ["53/TCP", "53/UDP"]' \
    "$work/np-frontend.json" > /dev/null || { echo "frontend: $(jq -c .spec "$work/np-frontend.json")"; return 1; }
  jq -e '.spec.podSelector.matchLabels == {app: "backend"} and
    .spec.ingress == [{from: [{podSelector: {matchLabels: {app: "frontend"}}}], ports: [{port: 8080, protocol: "TCP"}]}] and
    .spec.egress == [{to: [{podSelector: {matchLabels: {app: "redis"}}}], ports: [{port: 6379, protocol: "TCP"}]}]' \
    "$work/np-backend.json" > /dev/null || { echo "backend: $(jq -c .spec "$work/np-backend.json")"; return 1; }
  jq -e '.spec.podSelector.matchLabels == {app: "redis"} and
    .spec.ingress == [{from: [{podSelector: {matchLabels: {app: "backend"}}}], ports: [{port: 6379, protocol: "TCP"}]}] and
    (.spec.egress // [] | length) == 0' "$work/np-redis.json" > /dev/null || { echo "redis: $(jq -c .spec "$work/np-redis.json")"; return 1; }
  # No ipBlock anywhere: every peer is named by its workload.
  ! grep -q ipBlock "$work"/np-*.json || { echo "an ipBlock: $(grep -l ipBlock "$work"/np-*.json)"; return 1; }
  note "rules per policy: $(for t in "${TIERS[@]}"; do printf '%s %s ingress + %s egress; ' "$t" \
    "$(jq '.spec.ingress // [] | length' "$work/np-$t.json")" "$(jq '.spec.egress // [] | length' "$work/np-$t.json")"; done)"
}

# The reports on file give the same policy (selectors and Services read
# from the cluster's API with the admin's KUBECONFIG).
recommend_from_files_matches() {
  local bin=${IMPRINT_BIN:-$(command -v imprint)} tier name files covered_file
  for tier in "${TIERS[@]}"; do
    files=()
    for name in $(k get cbr -l "!imprint.dev/archive,imprint.dev/workload-name=$tier" -o jsonpath='{.items[*].metadata.name}'); do
      k get cbr "$name" -o yaml > "$work/$name.yaml" && files+=("$work/$name.yaml") || return 1
    done
    [[ ${#files[@]} -ge 1 ]] || { echo "$tier: no report"; return 1; }
    # Reports covered by their Stable profile are whole again with it.
    for f in "${files[@]}"; do
      grep -q '^  covered:' "$f" && covered_file=$f
    done
    [[ -n $covered_file ]] || { echo "$tier: no report covered by its Stable profile"; return 1; }
    k get bp "deployment-$tier" -o yaml > "$work/bp-$tier.yaml" && files+=("$work/bp-$tier.yaml") || return 1
    "$bin" recommend --format networkpolicy "${files[@]}" > "$work/recommended-$tier.yaml" 2> "$work/recommend.err" ||
      { cat "$work/recommend.err"; return 1; }
    kubectl create --dry-run=client -o json -f "$work/recommended-$tier.yaml" > "$work/recommended-$tier.json" || return 1
    jq -e --slurpfile np "$work/np-$tier.json" --arg ns "$NS" 'def n: with_entries(select(.value != []));
      .kind == "NetworkPolicy" and .metadata.namespace == $ns and .metadata.name == $np[0].metadata.name and
      (.spec | n) == ($np[0].spec | n)' "$work/recommended-$tier.json" > /dev/null ||
      { echo "$tier: recommended $(jq -c .spec "$work/recommended-$tier.json"), applied $(jq -c .spec "$work/np-$tier.json")"; return 1; }
  done
  # Without a cluster to read selectors from, it says so.
  ! KUBECONFIG=/nonexistent "$bin" recommend --format networkpolicy "${files[@]}" > /dev/null 2> "$work/recommend.err" &&
    grep -q "reports do not carry those" "$work/recommend.err" || { cat "$work/recommend.err"; return 1; }
  # A covered report without its profile: refused, naming the profile.
  ! "$bin" recommend --format networkpolicy "$covered_file" > /dev/null 2> "$work/covered.err" &&
    grep -q "give that profile's file too" "$work/covered.err" || { cat "$work/covered.err"; return 1; }
  note "imprint recommend --format networkpolicy (reports on file): the applied policy, for each tier; without a cluster: $(head -c 120 "$work/recommend.err")..."
}

idle_listener_is_named_not_applied() {
  eventually 60 holds behaviorprofiles deployment-idle '.status.phase == "Stable" and .status.networkPolicy.state == "Held"' ||
    { k get bp deployment-idle -o json | jq .status; return 1; }
  holds behaviorprofiles deployment-idle '(.status.networkPolicy.unobservedListeners | index("9000/TCP")) and
    ([.status.conditions[] | select(.type == "NetworkPolicy" and .reason == "UnobservedListeners") | .message | test("9000/TCP")] | any)' ||
    { k get bp deployment-idle -o json | jq .status.conditions; return 1; }
  ! k get networkpolicy deployment-idle > /dev/null 2>&1 || { echo "a policy was applied for the idle workload"; return 1; }
  note "idle: $(k get bp deployment-idle -o json | jq -c '[.status.conditions[] | select(.type == "NetworkPolicy") | .reason]')"
}

enforced_application_serves_load() {
  # kube-router has the policies in its rules (one chain per policy).
  eventually 30 bash -c "iptables -S | grep -c '^-N KUBE-NWPLCY-' | awk '\$1 >= 4 { ok = 1 } END { exit !ok }'" ||
    { iptables -S | grep -c KUBE-NWPLCY; return 1; }
  drive 20 4 "policies in force"
}

# --- intruders -------------------------------------------------------------------------
intruder() { # intruder NAMESPACE: a busybox pod labelled as no tier
  kubectl -n "$1" run intruder --image="$BUSYBOX" --image-pull-policy=Never --restart=Never \
    --labels=app=intruder -- sleep 3600 > /dev/null &&
    kubectl -n "$1" wait --for=condition=Ready pod/intruder --timeout=60s > /dev/null
}
reaches() { # reaches NAMESPACE IP PORT: the intruder in NAMESPACE connects to IP:PORT
  kubectl -n "$1" exec intruder -- nc -w 2 "$2" "$3" < /dev/null > /dev/null 2>&1
}
intruders_are_refused_everywhere() {
  intruder "$NS" && intruder "$OTHER_NS" || return 1
  local dns targets=() t ns n=0
  dns=$(kubectl -n kube-system get service kube-dns -o jsonpath='{.spec.clusterIP}')
  local ip port tier
  for tier in "${TIERS[@]}"; do
    port=8080; [[ $tier == redis ]] && port=6379
    for ip in $(k get pods -l "app=$tier" -o jsonpath='{.items[*].status.podIP}'); do targets+=("$ip $port"); done
    targets+=("$(k get service "$tier" -o jsonpath='{.spec.clusterIP} {.spec.ports[0].port}')")
  done
  for ns in "$NS" "$OTHER_NS"; do
    # The probe itself works: the cluster DNS (no policy) answers it.
    reaches "$ns" "$dns" 53 || { echo "the intruder in $ns cannot reach the cluster DNS: the probe is broken"; return 1; }
    for t in "${targets[@]}"; do
      # shellcheck disable=SC2086 # "IP PORT"
      if reaches "$ns" $t; then echo "the intruder in $ns reached $t"; return 1; fi
      n=$((n + 1))
    done
  done
  note "intruders: $n connections tried (pods and Services of 3 tiers, from the same and another namespace), all refused; the cluster DNS reached"
  # The application still answers (the intruders changed nothing).
  works
}

# New pods (new addresses, a fresh start of every tier) under the policies:
# they select by labels, so the application comes back whole.
restarted_application_serves() {
  local d
  for d in redis backend frontend; do
    k rollout restart "deployment/$d" > /dev/null && k rollout status "deployment/$d" --timeout=120s > /dev/null || return 1
  done
  eventually 30 works || return 1
  drive 10 4 "after a restart of every tier"
}

# --- every rule is necessary ----------------------------------------------------------
# The controller would put a changed policy back: it is stopped first, and
# brought back at the end (which puts back the last one changed).
# A firewall lets flows it already accepted go on (nginx keeps one UDP
# socket to the DNS server): after each change the application's flows are
# forgotten (conntrack), so the next packets meet the rules as they are.
forget_flows() {
  local ip
  for ip in $(k get pods -o jsonpath='{.items[*].status.podIP}'); do
    conntrack -D -s "$ip" > /dev/null 2>&1
    conntrack -D -d "$ip" > /dev/null 2>&1
  done
  return 0
}
# broken_afresh: broken, for flows that start now.
broken_afresh() { forget_flows; broken; }
every_rule_is_necessary() {
  ks scale deployment imprint-controller --replicas=0 > /dev/null &&
    ks wait --for=delete pod -l app.kubernetes.io/component=controller --timeout=60s > /dev/null 2>&1
  local tier dir n i total=0 t0
  for tier in "${TIERS[@]}"; do
    for dir in ingress egress; do
      n=$(jq ".spec.$dir // [] | length" "$work/np-$tier.json")
      for ((i = 0; i < n; i++)); do
        t0=$SECONDS
        k patch networkpolicy "deployment-$tier" --type=json -p "[{\"op\": \"remove\", \"path\": \"/spec/$dir/$i\"}]" > /dev/null || return 1
        eventually 30 broken_afresh > /dev/null ||
          { echo "without $tier's $dir rule $i ($(jq -c ".spec.${dir}[$i]" "$work/np-$tier.json")) the application still works"; return 1; }
        local broke=$((SECONDS - t0))
        k patch networkpolicy "deployment-$tier" --type=json \
          -p "[{\"op\": \"replace\", \"path\": \"/spec\", \"value\": $(jq -c .spec "$work/np-$tier.json")}]" > /dev/null || return 1
        eventually 30 works > /dev/null || { echo "$tier's $dir rule $i put back: the application does not recover"; return 1; }
        note "without $tier's $dir rule $i ($(jq -c ".spec.${dir}[$i] | [.to // .from | .[] | (.podSelector.matchLabels // {} | to_entries | map(.value) | join(\",\"))] + [.ports[] | \"\(.port)/\(.protocol)\"]" "$work/np-$tier.json")): broken within ${broke}s, mended when put back"
        total=$((total + 1))
      done
    done
  done
  (( total >= 5 )) || { echo "only $total rules"; return 1; }
  note "$total rules, each necessary"
}

changed_policy_is_put_back() {
  # A rule removed by hand while the controller is away ...
  k patch networkpolicy deployment-redis --type=json -p '[{"op": "remove", "path": "/spec/ingress/0"}]' > /dev/null &&
    eventually 30 broken_afresh > /dev/null || return 1
  local t0=$SECONDS
  ks scale deployment imprint-controller --replicas=1 > /dev/null &&
    ks rollout status deployment/imprint-controller --timeout=120s > /dev/null || return 1
  # ... is back once it runs, and the application with it.
  eventually 60 bash -c "[[ \$(kubectl -n $NS get networkpolicy deployment-redis -o json | jq -c .spec) == '$(jq -c .spec "$work/np-redis.json")' ]]" ||
    { k get networkpolicy deployment-redis -o json | jq -c .spec; return 1; }
  eventually 30 works || return 1
  note "the changed policy put back $((SECONDS - t0))s after the controller was scaled up"
}

t0=$SECONDS
check "images: imprint from IMPRINT_BIN, nginx and redis, imported" images
check "helm install with controller.networkPolicy.apply=true" install
check "three tiers deployed: frontend (nginx) -> backend (httpd + CGI) -> redis, by Services and DNS; an idle listener" deploy_application
check "the application under load: every answer is redis' counter" application_serves_load
check "each tier's profile reaches Stable and its NetworkPolicy is applied, owned by the profile" policies_are_applied_once_stable
check "the policies select by the workloads' selectors, on the pods' ports, DNS to the cluster DNS, no ipBlock" policies_name_workloads_and_target_ports
check "imprint recommend --format networkpolicy on the reports as files: the same policies" recommend_from_files_matches
check "a workload with an unused listener: condition naming it, no policy applied" idle_listener_is_named_not_applied
check "the same load with the policies enforced (kube-router): zero errors" enforced_application_serves_load
check "pods of another workload (same namespace, another namespace) are refused on every port of every tier" intruders_are_refused_everywhere
check "every tier restarted under the policies (new pods, new addresses): zero errors" restarted_application_serves
check "every generated rule is necessary: without any one the application breaks" every_rule_is_necessary
check "a policy changed by hand is put back by the controller" changed_policy_is_put_back
note "netpol suite: $((SECONDS - t0))s"
cat "$work/notes" 2> /dev/null
finish netpol
