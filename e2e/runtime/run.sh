#!/usr/bin/env bash
# The runtime suite: imprint against a real container runtime (the one of
# e2e/runtime/up.sh: containerd 2 + runc + CNI, pods started through CRI with
# crictl, kubelet-style labels and cgroup parents). What it checks:
#   identity    one report per container of a two-container pod (one also
#               exec'd into), each with its pod/namespace/uid/container/id/
#               image and only its own behavior; also without the kubelet's
#               labels (containerd's CRI annotations); no report for empty
#               cgroups; --namespace/--exclude-namespace/--no-host
#   quiet       a container running before the recording, with no runtime
#               event during it, is named
#   short-lived a container that exits within 100 ms still gets a complete
#               report, runc init's syscalls inside its cgroup included; it
#               runs again under its own recommended profile, not without
#               runc init's syscalls
#   restart     containerd killed and restarted while recording: containers
#               started before, while down and after are all attributed
#   bad socket  runtime socket missing: warned, reports under cgroup paths;
#               socket appearing late: resolution resumes
#   fidelity    nginx and redis recorded under load; the recommended OCI
#               seccomp profile and capability set, applied through CRI, serve
#               the same load with zero errors; one needed syscall removed,
#               they fail; a raw socket exec'd into them is refused, by
#               the argument rules (not only the missing CAP_NET_RAW)
# Needs: the runtime up (up.sh), the imprint binary (IMPRINT_BIN or on PATH),
# curl, wrk, redis-benchmark/redis-cli, jq, gcc and libc6-dev (a static
# raw-socket program). Sends traffic only to the pods it
# starts on the runtime's own bridge.
# Prints one line per test and closes with "runtime: N passed, N failed".
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=SCRIPTDIR/../suite.sh
. "$rt_here/../suite.sh"
# shellcheck source=SCRIPTDIR/../load.sh
. "$rt_here/../load.sh"
# suite.sh's check, renamed, so that check below can wrap it.
eval "suite_$(declare -f check)"
[[ $(id -u) == 0 ]] || die "run as root"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH

IMPRINT=${IMPRINT_BIN:-$(command -v imprint || true)}
if [[ -z $IMPRINT || ! -x $IMPRINT ]]; then
  echo "runtime: skipped (no imprint binary: set IMPRINT_BIN)"
  exit 0
fi
[[ -f $STATE/up ]] || die "the runtime is not up: run $rt_here/up.sh first"
# shellcheck disable=SC1091
. "$STATE/env"
SOCK=$IMPRINT_RT_SOCK
BUSYBOX=$IMPRINT_RT_BUSYBOX_IMAGE
NGINX=$IMPRINT_RT_NGINX_IMAGE
REDIS=$IMPRINT_RT_REDIS_IMAGE
# containers-common's default seccomp profile (the one podman/CRI-O apply) allows 410 syscalls.
DEFAULT_PROFILE_SYSCALLS=410

work=$(mktemp -d /tmp/imprint-runtime-suite.XXXXXX)
cleanup() {
  local rc=$? d
  set +e
  stop_recorders
  # containerd may have been stopped by a test that failed half-way.
  containerd_pid > /dev/null || (start_containerd) > /dev/null 2>&1
  for d in "$work"/pods/*/; do
    if [[ -f $d/id ]] && ! crictl rmp -f "$(cat "$d/id")" > /dev/null 2>&1; then
      echo "could not remove pod $(basename "$d") ($(cat "$d/id")): down.sh will" >&2
    fi
    [[ -f $d/logdir ]] && rm -rf "$(cat "$d/logdir")"
  done
  if [[ ${IMPRINT_RT_KEEP:-0} == 1 || $rc != 0 ]]; then echo "runtime suite files kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
mkdir -p "$work/pods" "$work/rec"
gcc -static -Os -s -o "$work/raw-socket" "$rt_here/raw-socket.c" || die "cannot build raw-socket.c"
# note TEXT: a figure worth showing after the results (tests run in subshells).
note() { echo "$*" >> "$work/notes"; }

# --- CRI helpers ------------------------------------------------------------------

# pod NS NAME [bare]: run a pod sandbox through CRI the way the kubelet does
# (metadata, io.kubernetes.pod.* labels, the cgroupfs driver's cgroup parent
# /imprint-rt/kubepods/besteffort/pod<uid>); prints its id. bare: without
# any label, for the pod and its containers (as other CRI clients do).
pod() {
  local ns=$1 name=$2 dir=$work/pods/$1_$2 uid
  uid=$(cat /proc/sys/kernel/random/uuid)
  mkdir -p "$dir"
  if [[ ${3:-} == bare ]]; then touch "$dir/bare"; else rm -f "$dir/bare"; fi
  echo "$uid" > "$dir/uid"
  echo "$STATE/pod-logs/${ns}_${name}_$uid" > "$dir/logdir"
  jq -n --arg ns "$ns" --arg name "$name" --arg uid "$uid" --arg logs "$(cat "$dir/logdir")" \
    --arg parent "/$CGROUP_ROOT/kubepods/besteffort/pod$uid" '{
      metadata: {name: $name, namespace: $ns, uid: $uid, attempt: 0},
      hostname: $name,
      labels: {"io.kubernetes.pod.name": $name, "io.kubernetes.pod.namespace": $ns, "io.kubernetes.pod.uid": $uid},
      annotations: {"kubernetes.io/config.source": "api"},
      log_directory: $logs,
      linux: {cgroup_parent: $parent}
    } | if $bare then del(.labels, .annotations) else . end' --argjson bare "$([[ -f $dir/bare ]] && echo true || echo false)" > "$dir/pod.json"
  crictl runp "$dir/pod.json" > "$dir/id" || return 1
  cat "$dir/id"
}

# container NS POD NAME IMAGE [JSON]: create and start a container in the pod,
# with the kubelet's labels; JSON is merged into the container config
# (command, mounts, linux.security_context, ...). Prints its id.
container() {
  local ns=$1 pod=$2 name=$3 image=$4 extra=${5:-'{}'} dir=$work/pods/$1_$2 id
  jq -n --arg ns "$ns" --arg pod "$pod" --arg uid "$(cat "$dir/uid")" --arg name "$name" \
    --arg image "$image" --argjson extra "$extra" '{
      metadata: {name: $name, attempt: 0},
      image: {image: $image},
      labels: {"io.kubernetes.container.name": $name, "io.kubernetes.pod.name": $pod,
               "io.kubernetes.pod.namespace": $ns, "io.kubernetes.pod.uid": $uid},
      annotations: {"io.kubernetes.container.restartCount": "0"},
      log_path: ($name + ".log")
    } | (if $bare then del(.labels, .annotations) else . end) * $extra' \
    --argjson bare "$([[ -f $dir/bare ]] && echo true || echo false)" > "$dir/$name.json"
  id=$(crictl create "$(cat "$dir/id")" "$dir/$name.json" "$dir/pod.json") || return 1
  echo "$id" > "$dir/$name.id"
  crictl start "$id" > /dev/null || return 1
  echo "$id"
}

# wait_log NS POD NAME TEXT [SECONDS]: until the container's log has TEXT.
wait_log() {
  local dir=$work/pods/$1_$2 name=$3 text=$4 limit=${5:-20} t0=$SECONDS
  until grep -q -- "$text" "$(cat "$dir/logdir")/$name.log" 2>/dev/null; do
    if (( SECONDS - t0 > limit )); then echo "container $1/$2/$name: no \"$text\" in its log after ${limit}s"; return 1; fi
    sleep 0.2
  done
}

# pod_ip NS POD
pod_ip() { crictl inspectp "$(cat "$work/pods/$1_$2/id")" | jq -r .status.network.ip; }
# container_pid ID: the container's first process on the host.
container_pid() { crictl inspect "$1" | jq -r .info.pid; }

# --- recording helpers --------------------------------------------------------------

# record_start NAME ARGS...: `imprint record --duration 10m` of every cgroup in
# the background (info logs on, ARGS added), until record_stop NAME; waits
# until its probes are attached.
record_start() {
  local name=$1 dir=$work/rec/$1 t0=$SECONDS; shift
  mkdir -p "$dir"
  IMPRINT_LOG=imprint=info "$IMPRINT" record --duration 10m --output "$dir/reports" "$@" \
    > "$dir/stdout" 2> "$dir/stderr" &
  echo $! > "$dir/pid"
  until grep -q "recording every cgroup" "$dir/stderr"; do
    if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then echo "imprint record exited early:"; cat "$dir/stderr"; return 1; fi
    if (( SECONDS - t0 > 60 )); then echo "imprint record not recording after 60s"; return 1; fi
    sleep 0.2
  done
}

# stop_recorders: Ctrl-C to every recorder a failed test left running.
stop_recorders() {
  local f pid i
  for f in "$work"/rec/*/pid; do
    [[ -f $f ]] || continue
    pid=$(cat "$f")
    # Ours: its command line names this run's report folder.
    if tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$work/rec/"; then
      kill -INT "$pid" 2>/dev/null
      for ((i = 0; i < 100; i++)); do [[ -e /proc/$pid ]] || break; sleep 0.1; done
    fi
    rm -f "$f"
  done
}

# record_stop NAME: Ctrl-C, wait for the reports; fails if imprint failed.
record_stop() {
  local dir=$work/rec/$1 pid rc=0
  pid=$(cat "$dir/pid")
  kill -INT "$pid"
  wait "$pid" || rc=$?
  rm -f "$dir/pid"
  echo "$rc" > "$dir/rc"
  if [[ $rc != 0 ]]; then echo "imprint record exited with $rc:"; tail -20 "$dir/stderr"; return 1; fi
}

# warned NAME SOCKET: the recorder printed a warning naming SOCKET.
warned() { grep -E 'WARN|warn' "$work/rec/$1/stderr" | grep -qF -- "$2"; }
# wait_warned NAME SOCKET SECONDS: until it has.
wait_warned() {
  local t0=$SECONDS
  until warned "$1" "$2"; do
    (( SECONDS - t0 < $3 )) || { echo "no warning naming $2 from imprint after $3 s:"; head -5 "$work/rec/$1/stderr"; return 1; }
    sleep 0.2
  done
}
# wait_following NAME COUNT: give the recorder time to (re)connect to the
# runtime: until its info log says so for the COUNTth time, at most 15 s
# (its back-off tops at 5 s). Never fails: the reports decide.
wait_following() {
  local t0=$SECONDS
  until (( $(grep -c "following the container runtime" "$work/rec/$1/stderr") >= $2 )); do
    (( SECONDS - t0 < 15 )) || return 0
    sleep 0.2
  done
}

# report REC NS POD CONTAINER: path of the container's report, named
# <namespace>_<pod>_<container>.json.
report() {
  local f=$work/rec/$1/reports/$2_$3_$4.json
  [[ -f $f ]] || { echo "no report $2_$3_$4.json; reports: $(reports_in "$1")" >&2; return 1; }
  echo "$f"
}

# reports_in REC: the report files' names, on one line.
reports_in() { find "$work/rec/$1/reports" -name '*.json' -printf '%f ' 2>/dev/null; }

# expect FILE JQ-FILTER WHAT: the filter holds on the report.
expect() {
  if ! jq -e "$2" "$1" > /dev/null; then
    echo "$(basename "$1"): expected $3"
    return 1
  fi
}

# identity FILE NS POD UID CONTAINER ID IMAGE: the report's subject names them all.
identity() {
  local f=$1 got
  got=$(jq -c '.spec.subject | {namespace, pod, podUid, container, containerId, image}' "$f")
  local want
  want=$(jq -cn --arg ns "$2" --arg pod "$3" --arg uid "$4" --arg c "$5" --arg id "$6" --arg image "$7" \
    '{namespace: $ns, pod: $pod, podUid: $uid, container: $c, containerId: $id, image: $image}')
  [[ $got == "$want" ]] || { echo "$(basename "$f"): subject $got, expected $want"; return 1; }
  expect "$f" '.spec.subject.imageDigest | test("^sha256:[0-9a-f]{64}$")' "an image digest"
}

# execs FILE: executed paths; files FILE: file paths; listens FILE: listening TCP ports.
execs() { jq -r '.spec.executables[]?.path' "$1"; }
files() { jq -r '.spec.files[]?.path' "$1"; }
listens() { jq -r '.spec.network[]? | select(.direction == "listening" and .protocol == "tcp") | .port' "$1"; }
has_line() { grep -qxF -- "$2" <<< "$1"; }

# A busybox shell command that does something only this container does: runs
# a copy of busybox at a path of its own (named after an applet, so busybox
# runs it as `true`) and writes a file of its own.
unique_act() { echo "mkdir -p /var/www/$1-bin && cp /bin/busybox /var/www/$1-bin/true && /var/www/$1-bin/true && echo $1 > /var/www/$1-file"; }
# did_act FILE TAG: the report has TAG's program and file; didnt_act: has neither.
did_act() {
  has_line "$(execs "$1")" "/var/www/$2-bin/true" || { echo "$(basename "$1"): no exec of /var/www/$2-bin/true: $(execs "$1" | tr '\n' ' ')"; return 1; }
  has_line "$(files "$1")" "/var/www/$2-file" || { echo "$(basename "$1"): no file /var/www/$2-file"; return 1; }
}
didnt_act() {
  if grep -q -- "/var/www/$2-" <<< "$(execs "$1"; files "$1")"; then
    echo "$(basename "$1"): has $2's behavior (another container's)"; return 1
  fi
}

# --- a. identity ----------------------------------------------------------------------

test_identity() {
  local ns=rt-identity p uid writer listener fw fl
  record_start identity --runtime-socket "$SOCK" || return 1
  p=twins
  pod "$ns" "$p" > /dev/null || return 1
  uid=$(cat "$work/pods/${ns}_$p/uid")
  # The writer also connects to the listener through the pod's shared
  # loopback: the connection is the writer's (outbound), the accepted end the
  # listener's (inbound), though both live in one network namespace.
  listener=$(container "$ns" "$p" listener "$BUSYBOX" \
    '{"command": ["/bin/sh", "-c", "nc -l -p 7071 > /dev/null & sleep 1; echo ready; wait; exec sleep 3600"]}') || return 1
  wait_log "$ns" "$p" listener ready || return 1
  writer=$(container "$ns" "$p" writer "$BUSYBOX" \
    "$(jq -cn --arg c "$(unique_act writer) && echo hello | nc -w 2 127.0.0.1 7071; echo ready; exec sleep 3600" '{command: ["/bin/sh", "-c", $c]}')") || return 1
  wait_log "$ns" "$p" writer ready && wait_log "$ns" "$p" listener ready || return 1
  # A process started in the listener through CRI's exec belongs to it too.
  crictl exec -s "$listener" /bin/sh -c "$(unique_act exec)" > /dev/null || return 1
  sleep 1
  record_stop identity || return 1
  fw=$(report identity "$ns" "$p" writer) && fl=$(report identity "$ns" "$p" listener) || return 1
  identity "$fw" "$ns" "$p" "$uid" writer "$writer" "$BUSYBOX" || return 1
  identity "$fl" "$ns" "$p" "$uid" listener "$listener" "$BUSYBOX" || return 1
  did_act "$fw" writer || return 1
  expect "$fw" '.spec.files[] | select(.path == "/var/www/writer-file") | .access | index("create") != null' \
    "/var/www/writer-file created" || return 1
  has_line "$(listens "$fl")" 7071 || { echo "listener: no TCP listen on 7071: $(jq -c .spec.network "$fl")"; return 1; }
  didnt_act "$fl" writer || return 1
  did_act "$fl" exec || return 1
  didnt_act "$fw" exec || return 1
  if has_line "$(listens "$fw")" 7071; then echo "writer: has the listener's port 7071"; return 1; fi
  expect "$fw" '.spec.network | any(.direction == "outbound" and .protocol == "tcp" and .address == "127.0.0.1" and .port == 7071)' \
    "an outbound TCP connection to 127.0.0.1:7071" || return 1
  expect "$fw" '.spec.network | all(.direction != "inbound")' "no inbound connection (the listener accepted it)" || return 1
  expect "$fl" '.spec.network | any(.direction == "inbound" and .protocol == "tcp" and .address == "127.0.0.1" and .port == 7071)' \
    "an inbound TCP connection on 7071 from 127.0.0.1" || return 1
  expect "$fl" '.spec.network | all(.direction != "outbound")' "no outbound connection (the writer made it)" || return 1
  # The pod sandbox (pause) gets no report: exactly the two containers.
  local n
  n=$(jq -s --arg uid "$uid" '[.[] | select(.spec.subject.podUid == $uid)] | length' "$work"/rec/identity/reports/*.json)
  [[ $n == 2 ]] || { echo "$n reports for pod $uid, expected 2 (the sandbox gets none)"; return 1; }
}

# Without the kubelet's labels (another CRI client), the identity comes from
# the annotations containerd's CRI plugin always writes.
test_identity_bare() {
  local ns=rt-bare p=unlabelled uid id f
  record_start bare --runtime-socket "$SOCK" || return 1
  pod "$ns" "$p" bare > /dev/null || return 1
  uid=$(cat "$work/pods/${ns}_$p/uid")
  id=$(container "$ns" "$p" solo "$BUSYBOX" \
    "$(jq -cn --arg c "$(unique_act bare) && echo ready && exec sleep 3600" '{command: ["/bin/sh", "-c", $c]}')") || return 1
  jq -e '.labels == null' "$work/pods/${ns}_$p/solo.json" > /dev/null || { echo "the container config has labels"; return 1; }
  wait_log "$ns" "$p" solo ready || return 1
  sleep 1
  record_stop bare || return 1
  f=$(report bare "$ns" "$p" solo) || return 1
  identity "$f" "$ns" "$p" "$uid" solo "$id" "$BUSYBOX" || return 1
  did_act "$f" bare
}

# Through the Kubernetes CRI instead of containerd's API (what CRI-O
# serves; containerd's CRI plugin serves the same on its socket): the pod
# from its sandbox, the container from its metadata.
test_identity_cri() {
  local ns=rt-cri p=through-cri uid id f
  record_start cri --runtime-socket "$SOCK" --runtime-api cri || return 1
  grep -q "through CRI" "$work/rec/cri/stderr" || sleep 2
  pod "$ns" "$p" > /dev/null || return 1
  uid=$(cat "$work/pods/${ns}_$p/uid")
  id=$(container "$ns" "$p" app "$BUSYBOX" \
    "$(jq -cn --arg c "$(unique_act cri) && echo ready && exec sleep 3600" '{command: ["/bin/sh", "-c", $c]}')") || return 1
  wait_log "$ns" "$p" app ready || return 1
  sleep 2
  record_stop cri || return 1
  grep -q "following the container runtime through CRI" "$work/rec/cri/stderr" || { echo "not following through CRI"; return 1; }
  f=$(report cri "$ns" "$p" app) || return 1
  identity "$f" "$ns" "$p" "$uid" app "$id" "$BUSYBOX" || return 1
  did_act "$f" cri
}

# Only cgroups in which something ran get a report: the pod's own cgroup
# (kubepods/besteffort/pod<uid>, which holds only its containers' cgroups)
# and the QoS cgroups runc makes do not, nor any other empty cgroup.
test_no_empty_reports() {
  local empty
  [[ -d $work/rec/identity/reports ]] || { echo "no reports from the identity test"; return 1; }
  empty=$(jq -r 'select((.spec.syscalls.names | length) == 0) | .spec.subject.cgroup' "$work"/rec/identity/reports/*.json)
  [[ -z $empty ]] || { echo "reports with no syscall at all: $(echo "$empty" | tr '\n' ' ')"; return 1; }
}

# --namespace and --no-host choose what is reported: only containers of the
# pods in that namespace, no host cgroup; --exclude-namespace leaves one out.
test_filters() {
  local id_in id_out names
  pod rt-filter-in p > /dev/null && pod rt-filter-out p > /dev/null || return 1
  record_start only --runtime-socket "$SOCK" --namespace rt-filter-in --no-host || return 1
  record_start except --runtime-socket "$SOCK" --exclude-namespace rt-filter-in || return 1
  id_in=$(container rt-filter-in p c "$BUSYBOX" '{"command": ["/bin/sh", "-c", "echo ready; exec sleep 3600"]}') || return 1
  id_out=$(container rt-filter-out p c "$BUSYBOX" '{"command": ["/bin/sh", "-c", "echo ready; exec sleep 3600"]}') || return 1
  wait_log rt-filter-in p c ready && wait_log rt-filter-out p c ready || return 1
  sleep 1
  record_stop only && record_stop except || return 1
  names=$(reports_in only)
  [[ $names == "rt-filter-in_p_c.json " ]] || { echo "--namespace rt-filter-in --no-host wrote: $names"; return 1; }
  jq -e --arg id "$id_in" '.spec.subject.containerId == $id' "$work/rec/only/reports/rt-filter-in_p_c.json" > /dev/null || return 1
  names=$(reports_in except)
  [[ $names != *rt-filter-in_* && $names == *rt-filter-out_p_c.json* ]] ||
    { echo "--exclude-namespace rt-filter-in wrote: $names"; return 1; }
  jq -e --arg id "$id_out" '.spec.subject.containerId == $id' "$work/rec/except/reports/rt-filter-out_p_c.json" > /dev/null
}

# A container already running when the recording starts, with no runtime
# event at all during the recording (no container created, started or
# stopped anywhere), is still named after its pod.
test_quiet() {
  local ns=rt-quiet p=steady uid id f
  pod "$ns" "$p" > /dev/null || return 1
  uid=$(cat "$work/pods/${ns}_$p/uid")
  id=$(container "$ns" "$p" loop "$BUSYBOX" \
    "$(jq -cn --arg c "echo ready; while :; do $(unique_act steady); sleep 0.3; done" '{command: ["/bin/sh", "-c", $c]}')") || return 1
  wait_log "$ns" "$p" loop ready || return 1
  sleep 1
  record_start quiet --runtime-socket "$SOCK" || return 1
  sleep 4
  record_stop quiet || return 1
  f=$(report quiet "$ns" "$p" loop) || return 1
  identity "$f" "$ns" "$p" "$uid" loop "$id" "$BUSYBOX" || return 1
  did_act "$f" steady
}

# --- b. a container that exits within 100 ms -------------------------------------------

# exited_within ID MS: the container exited 0, at most MS after it started.
exited_within() {
  local id=$1 ms=$2 name=$3 t0=$SECONDS st started finished
  while :; do
    st=$(crictl inspect "$id" | jq -c '.status | {state, exitCode, startedAt, finishedAt}')
    [[ $(jq -r .state <<< "$st") == CONTAINER_EXITED ]] && break
    (( SECONDS - t0 < 20 )) || { echo "container $id did not exit: $st"; return 1; }
    sleep 0.1
  done
  [[ $(jq -r .exitCode <<< "$st") == 0 ]] || { echo "container $id: $st"; return 1; }
  started=$(date -d "$(jq -r .startedAt <<< "$st")" +%s%N)
  finished=$(date -d "$(jq -r .finishedAt <<< "$st")" +%s%N)
  note "short-lived: container $name ran $(( (finished - started) / 1000000 )) ms (CRI startedAt..finishedAt; the exit can be stamped before the start)"
  (( (finished - started) / 1000000 <= ms )) || { echo "container $id ran longer than $ms ms: $st"; return 1; }
}

# What runc init does in the container's cgroup before it executes the
# container's program (it sets the credentials and capabilities, then execve),
# and what the program itself does.
RUNC_INIT_SYSCALLS=(capset prctl setgroups setuid setgid execve)

test_short_lived() {
  local ns=rt-short p=quick uid kept gone f name s
  record_start short --runtime-socket "$SOCK" || return 1
  pod "$ns" "$p" > /dev/null || return 1
  uid=$(cat "$work/pods/${ns}_$p/uid")
  kept=$(container "$ns" "$p" kept "$BUSYBOX" '{"command": ["/bin/true"]}') || return 1
  exited_within "$kept" 100 kept || return 1
  # The second one is removed from containerd as soon as it has exited.
  gone=$(container "$ns" "$p" gone "$BUSYBOX" '{"command": ["/bin/true"]}') || return 1
  exited_within "$gone" 100 gone || return 1
  crictl rm "$gone" > /dev/null || return 1
  sleep 1
  record_stop short || return 1
  for name in kept gone; do
    f=$(report short "$ns" "$p" "$name") || return 1
    if [[ $name == kept ]]; then identity "$f" "$ns" "$p" "$uid" kept "$kept" "$BUSYBOX" || return 1
    else identity "$f" "$ns" "$p" "$uid" gone "$gone" "$BUSYBOX" || return 1; fi
    for s in "${RUNC_INIT_SYSCALLS[@]}" exit_group; do
      expect "$f" ".spec.syscalls.names | index(\"$s\") != null" "syscall $s (runc init or the program)" || return 1
    done
    expect "$f" '.spec.executables | any(.path == "/bin/busybox" and .args == ["/bin/true"])' \
      "the exec of /bin/true (busybox)" || return 1
    expect "$f" '.spec.stats.drops.total == 0' "no drops" || return 1
  done
}

# The profile and capabilities recommended from the short-lived container's
# own report are enough to run it again: runc init's work after it loads the
# filter (it loads it before dropping privileges) was recorded too.
test_short_lived_enforced() {
  local f id
  f=$(report short rt-short quick kept) || { echo "no report from the short-lived test"; return 1; }
  "$IMPRINT" recommend --format oci "$f" > "$STATE/profiles/true.json" || return 1
  "$IMPRINT" recommend --format caps "$f" > "$work/true.caps" || return 1
  pod rt-short-enforced quick > /dev/null || return 1
  id=$(container rt-short-enforced quick kept "$BUSYBOX" \
    "$(security "$STATE/profiles/true.json" "$work/true.caps" | jq -c '. * {command: ["/bin/true"]}')") ||
    { echo "the container did not start under its own profile"; return 1; }
  exited_within "$id" 1000 enforced
}

# And they are needed: without one of runc init's syscalls (capset,
# setgroups: made after runc loads the filter, before the program runs) the
# container does not start.
test_short_lived_needs_runc_init() {
  local s id st
  [[ -f $STATE/profiles/true.json ]] || { echo "no profile from the short-lived test"; return 1; }
  pod rt-short-broken quick > /dev/null || return 1
  for s in capset setgroups; do
    jq --arg s "$s" '.syscalls |= map(.names -= [$s])' "$STATE/profiles/true.json" > "$STATE/profiles/true-without-$s.json"
    if id=$(container rt-short-broken quick "without-$s" "$BUSYBOX" \
      "$(security "$STATE/profiles/true-without-$s.json" "$work/true.caps" | jq -c '. * {command: ["/bin/true"]}')" 2> /dev/null); then
      sleep 0.5
      st=$(crictl inspect "$id" | jq -c '.status | {state, exitCode, reason}')
      [[ $(jq -r .exitCode <<< "$st") != 0 ]] || { echo "without $s: the container ran and exited 0: $st"; return 1; }
    fi
  done
}

# runc 1.2+ reads /proc/<pid>/... through a procfs instance of its own that it
# never attaches to the tree (fsopen/fsmount): the kernel path of such a file
# starts at that detached mount's root. Reports must still name it as procfs
# (/proc/*/...), not as /<pid>/..., a path that exists nowhere and differs
# per container.
test_detached_proc_paths() {
  local f bad
  f=$(report short rt-short quick kept) || { echo "no report from the short-lived test"; return 1; }
  bad=$(files "$f" | grep -E '^/[0-9]+(/|$)' || true)
  [[ -z $bad ]] || { echo "$(basename "$f"): paths of a detached procfs: $(echo "$bad" | tr '\n' ' ')"; return 1; }
}

# --- c. containerd restarted while recording ---------------------------------------------

# A container that waits for /trigger/TAG (a host directory mounted
# read-only) before doing what only it does, then says so in /signal/TAG (a
# host directory): its log cannot say it while containerd, which writes the
# logs, is down.
triggered() {
  jq -cn --arg c "until [ -e /trigger/$1 ]; do sleep 0.1; done; $(unique_act "$1") && touch /signal/$1 && exec sleep 3600" \
    --arg t "$work/trigger" --arg s "$work/signal" '{command: ["/bin/sh", "-c", $c],
      mounts: [{container_path: "/trigger", host_path: $t, readonly: true}, {container_path: "/signal", host_path: $s}]}'
}
# wait_signal TAG: until the triggered container TAG has acted.
wait_signal() {
  local t0=$SECONDS
  until [[ -e $work/signal/$1 ]]; do
    (( SECONDS - t0 < 20 )) || { echo "container $1 did not act within 20 s"; return 1; }
    sleep 0.1
  done
}

test_restart() {
  local ns=rt-restart p=survivor uid tag f other
  mkdir -p "$work/trigger" "$work/signal"
  pod "$ns" "$p" > /dev/null || return 1
  uid=$(cat "$work/pods/${ns}_$p/uid")
  container "$ns" "$p" before "$BUSYBOX" "$(triggered before)" > /dev/null || return 1
  record_start restart --runtime-socket "$SOCK" || return 1
  wait_following restart 1
  touch "$work/trigger/before"
  container "$ns" "$p" during "$BUSYBOX" "$(triggered during)" > /dev/null || return 1
  wait_signal before || return 1
  # containerd crashes (SIGKILL): the containers and their shims live on.
  stop_containerd KILL
  touch "$work/trigger/during"
  wait_signal during || return 1
  start_containerd
  container "$ns" "$p" after "$BUSYBOX" "$(triggered after)" > /dev/null || return 1
  touch "$work/trigger/after"
  wait_signal after || return 1
  wait_following restart 2
  sleep 1
  record_stop restart || return 1
  warned restart "$SOCK" || { echo "imprint did not warn that containerd went away"; return 1; }
  for tag in before during after; do
    f=$(report restart "$ns" "$p" "$tag") || return 1
    identity "$f" "$ns" "$p" "$uid" "$tag" "$(cat "$work/pods/${ns}_$p/$tag.id")" "$BUSYBOX" || return 1
    did_act "$f" "$tag" || return 1
    for other in before during after; do
      [[ $other == "$tag" ]] || didnt_act "$f" "$other" || return 1
    done
  done
}

# --- d. bad input: the runtime socket -------------------------------------------------------

test_socket_missing() {
  local ns=rt-nosocket p=orphan uid id f missing=$work/no-such-dir/containerd.sock
  record_start nosocket --runtime-socket "$missing" || return 1
  pod "$ns" "$p" > /dev/null || return 1
  uid=$(cat "$work/pods/${ns}_$p/uid")
  id=$(container "$ns" "$p" worker "$BUSYBOX" \
    "$(jq -cn --arg c "$(unique_act orphan) && echo ready && exec sleep 3600" '{command: ["/bin/sh", "-c", $c]}')") || return 1
  wait_log "$ns" "$p" worker ready || return 1
  sleep 1
  record_stop nosocket || return 1
  # A clear warning on stderr, naming the socket.
  warned nosocket "$missing" || { echo "no warning naming $missing on stderr:"; head -5 "$work/rec/nosocket/stderr"; return 1; }
  # The container is reported under its cgroup path, with what the path says.
  f=$(jq -r --arg id "$id" 'select(.spec.subject.containerId == $id) | input_filename' "$work"/rec/nosocket/reports/*.json | head -1)
  [[ -n $f ]] || { echo "no report with containerId $id; reports: $(reports_in nosocket)"; return 1; }
  expect "$f" ".spec.subject.cgroup == \"/$CGROUP_ROOT/kubepods/besteffort/pod$uid/$id\"" "the container's cgroup path" || return 1
  expect "$f" ".spec.subject.podUid == \"$uid\"" "the pod UID read from the cgroup path" || return 1
  did_act "$f" orphan
}

test_socket_late() {
  local ns=rt-latesocket p=late uid early id f
  # A container that runs before, and acts while imprint cannot reach containerd.
  mkdir -p "$work/trigger" "$work/signal"
  pod "$ns" "$p" > /dev/null || return 1
  uid=$(cat "$work/pods/${ns}_$p/uid")
  early=$(container "$ns" "$p" early "$BUSYBOX" "$(triggered early)") || return 1
  # containerd stops cleanly: its socket file goes away.
  stop_containerd TERM
  [[ ! -e $SOCK ]] || { echo "$SOCK still exists after containerd stopped"; return 1; }
  record_start latesocket --runtime-socket "$SOCK" || return 1
  wait_warned latesocket "$SOCK" 10 || return 1
  touch "$work/trigger/early"
  wait_signal early || return 1
  sleep 1
  start_containerd
  id=$(container "$ns" "$p" worker "$BUSYBOX" \
    "$(jq -cn --arg c "$(unique_act late) && echo ready && exec sleep 3600" '{command: ["/bin/sh", "-c", $c]}')") || return 1
  wait_log "$ns" "$p" worker ready || return 1
  wait_following latesocket 1
  sleep 1
  record_stop latesocket || return 1
  f=$(report latesocket "$ns" "$p" worker) || return 1
  identity "$f" "$ns" "$p" "$uid" worker "$id" "$BUSYBOX" || return 1
  did_act "$f" late || return 1
  f=$(report latesocket "$ns" "$p" early) || return 1
  identity "$f" "$ns" "$p" "$uid" early "$early" "$BUSYBOX" || return 1
  did_act "$f" early
}

# --- e. profile fidelity on real servers ----------------------------------------------------

# security PROFILE CAPS [CAP...]: JSON for a container: the localhost
# seccomp profile PROFILE and only the capabilities in CAPS (imprint's caps
# YAML: drop ALL, add ...).
# Further arguments are capabilities added to those.
security() {
  local add
  add=$( (caps_add "$2"; printf '%s\n' "${@:3}") | jq -R 'select(. != "")' | jq -cs .)
  jq -cn --arg p "$1" --argjson add "$add" \
    '{linux: {security_context: {seccomp: {profile_type: 2, localhost_ref: $p},
      capabilities: {drop_capabilities: ["ALL"], add_capabilities: $add}}}}'
}

# enforced ID CAPS: the container's process runs under a seccomp filter
# and with exactly the capabilities CAPS adds (confined).
enforced() { confined "$(container_pid "$1")" "$2"; }

# raw_socket ID: copies the suite's raw-socket program (raw-socket.c) into
# the container and runs it through CRI's exec, under the container's
# seccomp filter and capabilities; prints its answer ("opened", or why not).
raw_socket() {
  local pid
  pid=$(container_pid "$1") || return 1
  install -m 0755 "$work/raw-socket" "/proc/$pid/root/raw-socket" || return 1
  crictl exec -s "$1" /raw-socket 2>&1 || true
}

# refused_raw_socket ID SERVER: the raw-socket program exec'd into the
# container fails with EPERM (its exit status 1, which crictl names when it
# drops the output of a failed command, or its message where it does not).
refused_raw_socket() {
  local out
  out=$(raw_socket "$1")
  [[ $out == *"exited with 1:"* || $out == *"Operation not permitted"* ]] ||
    { echo "$2: a raw socket exec'd into it under its profile: $out"; return 1; }
}

fidelity_dir=$work/fidelity
test_record_servers() {
  local ns=rt-servers nginx redis ip_web ip_cache
  mkdir -p "$fidelity_dir"
  record_start servers --runtime-socket "$SOCK" || return 1
  pod "$ns" web > /dev/null && pod "$ns" cache > /dev/null || return 1
  nginx=$(container "$ns" web nginx "$NGINX") && redis=$(container "$ns" cache redis "$REDIS") || return 1
  ip_web=$(pod_ip "$ns" web) && ip_cache=$(pod_ip "$ns" cache) || return 1
  wait_http "$ip_web" || { echo "nginx at $ip_web does not answer"; return 1; }
  wait_redis "$ip_cache" || { echo "redis at $ip_cache does not answer"; return 1; }
  # What the containers may use at all (their bounding sets), for the capability check.
  cap_names "$(awk '/^CapBnd:/ { print $2 }' "/proc/$(container_pid "$nginx")/status")" > "$fidelity_dir/nginx.bounding"
  cap_names "$(awk '/^CapBnd:/ { print $2 }' "/proc/$(container_pid "$redis")/status")" > "$fidelity_dir/redis.bounding"
  nginx_load "$ip_web" recorded 50 || return 1
  redis_load "$ip_cache" recorded || return 1
  # A graceful stop belongs to the workload too.
  crictl stop -t 10 "$nginx" > /dev/null && crictl stop -t 10 "$redis" > /dev/null || return 1
  sleep 1
  record_stop servers || return 1
  local server f n
  for server in nginx redis; do
    if [[ $server == nginx ]]; then f=$(report servers "$ns" web nginx) || return 1
    else f=$(report servers "$ns" cache redis) || return 1; fi
    "$IMPRINT" recommend --format oci "$f" > "$STATE/profiles/$server.json" || return 1
    "$IMPRINT" recommend --format caps "$f" > "$fidelity_dir/$server.caps" || return 1
    "$IMPRINT" recommend --format oci --names-only "$f" > "$STATE/profiles/$server-names-only.json" || return 1
    n=$(jq '[.syscalls[] | select(.action == "SCMP_ACT_ALLOW") | .names[]] | unique | length' "$STATE/profiles/$server.json")
    echo "$server: the profile allows $n syscalls (containers-common's default: $DEFAULT_PROFILE_SYSCALLS);" \
      "argument rules: $(argument_rules "$STATE/profiles/$server.json");" \
      "capabilities: $(caps_add "$fidelity_dir/$server.caps" | tr '\n' ' ')" | while read -r line; do note "$line"; done
  done
}

test_nginx_enforced() {
  local ns=rt-enforced id ip
  [[ -f $STATE/profiles/nginx.json ]] || { echo "no nginx profile (recording failed)"; return 1; }
  pod "$ns" web > /dev/null || return 1
  id=$(container "$ns" web nginx "$NGINX" "$(security "$STATE/profiles/nginx.json" "$fidelity_dir/nginx.caps")") || return 1
  ip=$(pod_ip "$ns" web)
  wait_http "$ip" || { echo "nginx under its profile does not answer; log:"; tail -5 "$(cat "$work/pods/${ns}_web/logdir")/nginx.log"; return 1; }
  enforced "$id" "$fidelity_dir/nginx.caps" || return 1
  nginx_load "$ip" enforced 50 || return 1
  refused_raw_socket "$id" nginx || return 1
  graceful_stop "$id"
}

test_redis_enforced() {
  local ns=rt-enforced id ip
  [[ -f $STATE/profiles/redis.json ]] || { echo "no redis profile (recording failed)"; return 1; }
  pod "$ns" cache > /dev/null || return 1
  id=$(container "$ns" cache redis "$REDIS" "$(security "$STATE/profiles/redis.json" "$fidelity_dir/redis.caps")") || return 1
  ip=$(pod_ip "$ns" cache)
  wait_redis "$ip" || { echo "redis under its profile does not answer; log:"; tail -5 "$(cat "$work/pods/${ns}_cache/logdir")/redis.log"; return 1; }
  enforced "$id" "$fidelity_dir/redis.caps" || return 1
  redis_load "$ip" enforced || return 1
  refused_raw_socket "$id" redis || return 1
  graceful_stop "$id"
}

# The argument rules, not the missing CAP_NET_RAW, refuse the raw socket:
# nginx given CAP_NET_RAW on top of its recommended capabilities still cannot
# open one under its profile, and can under the same profile without
# argument rules (`recommend --names-only`).
test_raw_socket_refused_by_rules() {
  local ns=rt-rules id out
  [[ -f $STATE/profiles/nginx.json ]] || { echo "no nginx profile (recording failed)"; return 1; }
  pod "$ns" ruled > /dev/null && pod "$ns" named > /dev/null || return 1
  id=$(container "$ns" ruled nginx "$NGINX" "$(security "$STATE/profiles/nginx.json" "$fidelity_dir/nginx.caps" NET_RAW)") || return 1
  wait_http "$(pod_ip "$ns" ruled)" || { echo "nginx with CAP_NET_RAW under its profile does not answer"; return 1; }
  refused_raw_socket "$id" "nginx with CAP_NET_RAW" || return 1
  id=$(container "$ns" named nginx "$NGINX" "$(security "$STATE/profiles/nginx-names-only.json" "$fidelity_dir/nginx.caps" NET_RAW)") || return 1
  wait_http "$(pod_ip "$ns" named)" || { echo "nginx under its names-only profile does not answer"; return 1; }
  out=$(raw_socket "$id")
  [[ $out == opened ]] || { echo "nginx with CAP_NET_RAW under its names-only profile: $out"; return 1; }
}

# graceful_stop ID: stopped through CRI (the image's stop signal), the server
# shuts down by itself with status 0 (its shutdown is in the profile too),
# well before the kill timeout.
graceful_stop() {
  local t0=$SECONDS st
  crictl stop -t 20 "$1" > /dev/null || return 1
  st=$(crictl inspect "$1" | jq -c '.status | {state, exitCode, reason}')
  if [[ $(jq -r .exitCode <<< "$st") != 0 ]] || (( SECONDS - t0 >= 15 )); then
    echo "stop under the profile: $st after $((SECONDS - t0)) s"; return 1
  fi
}

# without SERVER: the server's profile minus a syscall it certainly makes
# (without_syscall), as $STATE/profiles/SERVER-without-SYSCALL.json.
without() { without_syscall "$STATE/profiles/$1.json" "$STATE/profiles/$1-without-%s.json"; }

# broken NS POD ID CHECK IP: the container died, or CHECK fails against it.
broken() {
  local id=$3 check=$4 ip=$5 state
  sleep 2
  state=$(crictl inspect "$id" 2>/dev/null | jq -r .status.state)
  if [[ $state != CONTAINER_RUNNING ]]; then note "  -> container $state"; return 0; fi
  if [[ -z $ip || $ip == null ]]; then return 0; fi
  if "$check" "$ip" > /dev/null 2>&1; then echo "it still serves"; return 1; fi
  note "  -> requests fail"
}


test_nginx_without() {
  local ns=rt-broken s id
  [[ -f $STATE/profiles/nginx.json ]] || { echo "no nginx profile (recording failed)"; return 1; }
  s=$(without nginx) || return 1
  note "nginx: profile without $s"
  pod "$ns" web > /dev/null || return 1
  # Creating or starting may already fail: that is the expected outcome too.
  id=$(container "$ns" web nginx "$NGINX" "$(security "$STATE/profiles/nginx-without-$s.json" "$fidelity_dir/nginx.caps")") ||
    { note "nginx without $s: the container did not start"; return 0; }
  broken "$ns" web "$id" nginx_answers "$(pod_ip "$ns" web)"
}

test_redis_without() {
  local ns=rt-broken s id
  [[ -f $STATE/profiles/redis.json ]] || { echo "no redis profile (recording failed)"; return 1; }
  s=$(without redis) || return 1
  note "redis: profile without $s"
  pod "$ns" cache > /dev/null || return 1
  id=$(container "$ns" cache redis "$REDIS" "$(security "$STATE/profiles/redis-without-$s.json" "$fidelity_dir/redis.caps")") ||
    { note "redis without $s: the container did not start"; return 0; }
  broken "$ns" cache "$id" redis_answers "$(pod_ip "$ns" cache)"
}

# The recommended capabilities must be ones the container could use: runc
# init's own checks (mounts, devices, before it drops to the container's
# set) must not turn into capabilities the workload is given.
test_caps_within_bounding() {
  local server extra ok=0
  for server in nginx redis; do
    [[ -f $fidelity_dir/$server.caps ]] || { echo "no $server capability set (recording failed)"; return 1; }
    extra=$(comm -23 <(caps_add "$fidelity_dir/$server.caps" | sort) <(sort "$fidelity_dir/$server.bounding"))
    if [[ -n $extra ]]; then
      echo "$server: recommended capabilities it never had (not in its bounding set while recorded): $(echo "$extra" | tr '\n' ' ')"
      ok=1
    fi
  done
  return "$ok"
}

# IMPRINT_RT_ONLY=REGEX runs only the tests whose description matches.
# After each test containerd runs again, whatever the test did to it.
check() {
  [[ -z ${IMPRINT_RT_ONLY:-} || $1 =~ $IMPRINT_RT_ONLY ]] || return 0
  suite_check "$@"
  stop_recorders
  containerd_pid > /dev/null || start_containerd
}
t0=$SECONDS
check "identity: two containers of one CRI pod (one also exec'd into), one report each, with pod, namespace, uid, container, id and image, only their own behavior" test_identity
check "identity: a pod and container without the kubelet's labels are named from containerd's CRI annotations" test_identity_bare
check "identity through the CRI API (as on CRI-O): pod from its sandbox, container from its metadata" test_identity_cri
check "identity: no report for cgroups in which nothing ran (the pod's own cgroup)" test_no_empty_reports
check "filters: --namespace with --no-host, and --exclude-namespace, choose the reported containers" test_filters
check "quiet runtime: a container running before the recording, with no runtime event during it, is reported with its pod" test_quiet
check "short-lived: containers exiting within 100 ms (one removed at once) get complete reports, runc init's syscalls included" test_short_lived
check "short-lived: the container runs again under the profile and capabilities recommended from its report" test_short_lived_enforced
check "short-lived: without runc init's capset or setgroups in that profile, the container does not start" test_short_lived_needs_runc_init
check "short-lived: runc init's files in its private procfs are reported as /proc/*/..., not /<pid>/..." test_detached_proc_paths
check "restart: containerd killed and restarted while recording: containers started before, while down and after all attributed" test_restart
check "socket missing: a warning naming it, recording goes on, the container reported under its cgroup path" test_socket_missing
check "socket appears late: resolution resumes; containers that acted before and after it appeared are reported with their pod" test_socket_late
check "fidelity: nginx and redis recorded under load through CRI, OCI profile and capabilities recommended" test_record_servers
check "fidelity: nginx under its recommended profile and capabilities serves the same load, zero errors; a raw socket exec'd into it is refused" test_nginx_enforced
check "fidelity: redis under its recommended profile and capabilities serves the same load, zero errors; a raw socket exec'd into it is refused" test_redis_enforced
check "argument rules: a raw socket exec'd into nginx with CAP_NET_RAW is refused by its profile, opened under the same profile by names only" test_raw_socket_refused_by_rules
check "fidelity: nginx fails with one syscall it needs removed from its profile" test_nginx_without
check "fidelity: redis fails with one syscall it needs removed from its profile" test_redis_without
check "fidelity: recommended capabilities stay within what the containers had (no runtime-only capabilities)" test_caps_within_bounding
[[ -f $work/notes ]] && sed 's/^/# /' "$work/notes"
echo "# runtime suite took $((SECONDS - t0)) s"
finish runtime
