# shellcheck shell=bash
# Kubernetes helpers shared by the suites that run imprint in the cluster
# (helm, profiles; sourced). The caller sets NS, the namespace of its
# workloads, before calling them; KUBELET_ROOT, when set, is the node's
# kubelet root directory on this host (the local cluster).
# shellcheck disable=SC2034 # BUSYBOX, CRDS and SP are the callers' too

BUSYBOX=${IMPRINT_E2E_BUSYBOX_IMAGE:-localhost/imprint-e2e/busybox:1.35.0}
# SPO's CRDs: the shared fixtures beside the repository.
CRDS=${IMPRINT_SPO_CRDS:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/../shared/fixtures/security-profiles-operator}
SP=seccompprofiles.security-profiles-operator.x-k8s.io

k() { kubectl -n "$NS" "$@"; }

# holds KIND NAME JQ: the object exists and the jq filter JQ holds for it.
# A missing object is false (jq 1.6's -e alone says true on no input, and a
# pipe into it hides kubectl's failure).
holds() { local json; json=$(k get "$1" "$2" -o json 2> /dev/null) && jq -e "$3" <<< "$json" > /dev/null; }

# Generated names end with a hash of what they name (README, "Names"): the
# tests find objects by what they are, never by spelling their names.
# seccomp_of PROFILE CONTAINER: the SeccompProfile the BehaviorProfile's
# status names for CONTAINER.
seccomp_of() {
  k get behaviorprofiles "$1" -o json 2> /dev/null |
    jq -r --arg c "$2" '.status.containers[]? | select(.name == $c) | .seccompProfile // empty'
}
# report_of POD CONTAINER: the name of that pod container's report (empty
# when there is none).
report_of() {
  k get containerbehaviorreports -l '!imprint.dev/archive' -o json 2> /dev/null |
    jq -r --arg p "$1" --arg c "$2" '.items[] | select(.spec.subject.pod == $p and .spec.subject.container == $c) | .metadata.name' | head -1
}
# holds_report POD CONTAINER JQ: that pod container's report exists and
# the jq filter JQ holds for it (looked up again at each call).
holds_report() { local name; name=$(report_of "$1" "$2") && [[ -n $name ]] && holds containerbehaviorreports "$name" "$3"; }
# report_gone POD CONTAINER: that pod container has no report (any more).
report_gone() { [[ -z $(report_of "$1" "$2") ]]; }
# archive_of WORKLOAD CONTAINER: the name of the archive of CONTAINER of
# WORKLOAD (the folded reports of its deleted pods).
archive_of() {
  k get containerbehaviorreports -l "imprint.dev/archive=true,imprint.dev/workload-name=$1,imprint.dev/container=$2" \
    -o jsonpath='{.items[0].metadata.name}' 2> /dev/null
}

# phase_is PROFILE PHASE: the BehaviorProfile PROFILE is in PHASE.
phase_is() { [[ $(k get behaviorprofiles "$1" -o jsonpath='{.status.phase}' 2> /dev/null) == "$2" ]]; }

# deploy NAME [OPTION=VALUE...]: apply a Deployment NAME (pods labelled
# app=NAME) of one container from a local image (imagePullPolicy: Never).
#   image=IMAGE      the container's image ($BUSYBOX)
#   container=NAME   the container's name (the Deployment's)
#   replicas=N       (1)
#   grace=SECONDS    terminationGracePeriodSeconds (1)
#   script=SH        run /bin/sh -c SH (no single quote in SH); else the image's command
#   port=PORT        a containerPort, with a TCP readiness probe on it
#   sc=MAP           the container's securityContext, a flow map (JSON)
#   cpu=LIMIT        a CPU limit (e.g. 100m)
#   tools=1          an init container copies busybox into /tools, an
#                    emptyDir the container mounts too (a shell to exec into
#                    an image that has none)
#   tolerate=KEY     tolerate the taint KEY (a node kept for some pods)
#   spread=1         at most one pod more on a node than on any other
#                    (topology spread over kubernetes.io/hostname)
#   node=NAME        only on node NAME
#   tty=1            the container's processes have a terminal (tty, stdin)
deploy() {
  local name=$1 image=$BUSYBOX container=$1 replicas=1 grace=1 script='' port='' sc='' tools='' cpu='' opt
  local tolerate='' spread='' node='' tty=''
  shift
  for opt in "$@"; do
    case $opt in
      image=*) image=${opt#*=} ;;
      container=*) container=${opt#*=} ;;
      replicas=*) replicas=${opt#*=} ;;
      grace=*) grace=${opt#*=} ;;
      script=*) script=${opt#*=} ;;
      port=*) port=${opt#*=} ;;
      sc=*) sc=${opt#*=} ;;
      tools=*) tools=${opt#*=} ;;
      cpu=*) cpu=${opt#*=} ;;
      tolerate=*) tolerate=${opt#*=} ;;
      spread=*) spread=${opt#*=} ;;
      node=*) node=${opt#*=} ;;
      tty=*) tty=${opt#*=} ;;
      *) echo "deploy: unknown option $opt" >&2; return 1 ;;
    esac
  done
  local init='' volumes='' mount='' command='' args='' ports='' probe='' resources=''
  if [[ -n $cpu ]]; then resources="resources: {limits: {cpu: $cpu}}"; fi
  local placement=()
  [[ -z $tolerate ]] || placement+=("tolerations: [{key: $tolerate, operator: Exists, effect: NoSchedule}]")
  [[ -z $spread ]] || placement+=("topologySpreadConstraints: [{maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: $name}}}]")
  [[ -z $node ]] || placement+=("nodeSelector: {kubernetes.io/hostname: $node}")
  if [[ -n $tools ]]; then
    init="initContainers: [{name: tools, image: $BUSYBOX, imagePullPolicy: Never, command: [/bin/cp, /bin/busybox, /tools/busybox], volumeMounts: [{name: tools, mountPath: /tools}]}]"
    volumes='volumes: [{name: tools, emptyDir: {}}]'
    mount='volumeMounts: [{name: tools, mountPath: /tools}]'
  fi
  if [[ -n $script ]]; then command='command: [/bin/sh, -c]'; args="args: ['$script']"; fi
  if [[ -n $port ]]; then
    ports="ports: [{containerPort: $port}]"
    probe="readinessProbe: {tcpSocket: {port: $port}, periodSeconds: 2}"
  fi
  k apply -f - <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: $name}
spec:
  replicas: $replicas
  selector: {matchLabels: {app: $name}}
  template:
    metadata: {labels: {app: $name}}
    spec:
      terminationGracePeriodSeconds: $grace
      enableServiceLinks: false
      ${placement[0]:-}
      ${placement[1]:-}
      ${placement[2]:-}
      $init
      $volumes
      containers:
      - name: $container
        image: $image
        imagePullPolicy: Never
        $command
        $args
        $ports
        $probe
        ${sc:+securityContext: $sc}
        ${tty:+tty: true}
        ${tty:+stdin: true}
        $resources
        $mount
YAML
}

# --- enforcement ---------------------------------------------------------------
# install_profile SECCOMPPROFILE [FILE [SYSCALL-TO-LEAVE-OUT]]: the
# SeccompProfile as the OCI profile the kubelet reads for seccompProfile
# {type: Localhost, localhostProfile: operator/FILE.json} (FILE: the
# SeccompProfile's name), what security-profiles-operator writes on every
# node; without SYSCALL-TO-LEAVE-OUT when one is named. Written into
# $KUBELET_ROOT on this host, else through a pod that mounts the node's
# localhost profile directory.
install_profile() {
  local file=${2:-$1} json
  json=$(kubectl get "$SP" "$1" -o json |
    jq -c --arg drop "${3:-}" '{defaultAction: .spec.defaultAction, defaultErrnoRet: 1, architectures: .spec.architectures,
      syscalls: [.spec.syscalls[] | .names -= [$drop]]}') || return 1
  if [[ -n ${KUBELET_ROOT:-} ]]; then
    mkdir -p "$KUBELET_ROOT/seccomp/operator" && printf '%s\n' "$json" > "$KUBELET_ROOT/seccomp/operator/$file.json"
  else
    # A ConfigMap holds it (piping it through `kubectl run -i` cut it
    # short) and a pod copies it into the node's directory.
    local name="install-$$-$RANDOM"
    k create configmap "$name" --from-file=profile.json=/dev/stdin <<< "$json" > /dev/null || return 1
    k apply -f - > /dev/null <<YAML || return 1
apiVersion: v1
kind: Pod
metadata: {name: $name}
spec:
  restartPolicy: Never
  volumes:
  - {name: p, hostPath: {path: /var/lib/kubelet/seccomp, type: DirectoryOrCreate}}
  - {name: profile, configMap: {name: $name}}
  containers:
  - name: c
    image: $BUSYBOX
    imagePullPolicy: Never
    command: [/bin/sh, -c, "mkdir -p /p/operator && cp /profile/profile.json /p/operator/$file.json"]
    volumeMounts: [{name: p, mountPath: /p}, {name: profile, mountPath: /profile}]
YAML
    k wait --for=jsonpath='{.status.phase}'=Succeeded "pod/$name" --timeout=60s > /dev/null
    local rc=$?
    k delete pod,configmap "$name" --wait=false > /dev/null 2>&1
    return "$rc"
  fi
}

# enforced_context PROFILE CONTAINER FILE: the securityContext the
# BehaviorProfile PROFILE recommends for CONTAINER, with the localhost
# profile operator/FILE.json (install_profile), as a flow map (JSON).
enforced_context() {
  k get behaviorprofiles "$1" -o json | jq -c --arg c "$2" --arg profile "operator/$3.json" '
    .status.containers[] | select(.name == $c) | .securityContext |
    {capabilities: {drop: ["ALL"], add: (.capabilitiesAdd // [])},
     allowPrivilegeEscalation: .allowPrivilegeEscalation,
     readOnlyRootFilesystem: .readOnlyRootFilesystem,
     seccompProfile: {type: "Localhost", localhostProfile: $profile}}'
}

# --- clean-up --------------------------------------------------------------------
# delete_profiles: the SeccompProfiles made for $NS (cluster-scoped), and
# their localhost copies in $KUBELET_ROOT.
delete_profiles() {
  kubectl delete "$SP" -l "imprint.dev/profile-namespace=$NS" > /dev/null 2>&1
  [[ -z ${KUBELET_ROOT:-} ]] || rm -f "$KUBELET_ROOT/seccomp/operator/$NS-"*.json
}
