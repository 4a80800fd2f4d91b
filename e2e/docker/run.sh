#!/usr/bin/env bash
# shellcheck disable=SC2015,SC2317 # A && B || fail is meant; helpers are called through eventually
# The Docker suite: imprint beside a real dockerd (Debian's docker.io, the
# one of e2e/docker/up.sh), naming containers through Docker's Engine API
# as their users name them. What it checks:
#   names       two `docker run --name` containers and a Compose-style
#               service of two replicas (Compose's labels): `imprint record
#               --runtime-socket <docker.sock>` (the Docker API chosen from
#               the socket's name) writes web.json, db.json and
#               <project>_<service>_<name>.json, each with its name, image,
#               image digest, labels and workload (ComposeService), and only
#               its own behavior
#   short-lived a container whose program lives about 50 ms gets a complete
#               report under its name
#   restart     dockerd restarted while recording (--live-restore): the
#               containers from before and after are named
#   recommend   `imprint recommend` takes the Docker reports as it takes the
#               others (the two replicas of the service merge into one
#               profile)
#   two sockets dockerd's containerd and dockerd both followed: containerd
#               alone knows the containers by id only; with both, Docker's
#               names win
#   kubelet labels  containers labelled as cri-dockerd labels those it
#               makes for a kubelet (by hand here): named as their pod's
#   podman      Podman's service (its Docker-compatible API, its own for
#               pods): a pod's container is <pod>_<name>.json, a lone one
#               <name>.json
#   fidelity    nginx and redis (Debian's, e2e/images/servers.sh) recorded
#               under load, then run again with `docker run --security-opt
#               seccomp=<recommended profile> --cap-drop ALL --cap-add
#               <recommended>`: the same load, zero errors, a graceful stop;
#               without one syscall they need, they fail; every rule at
#               least as strict as containers-common's default rule for the
#               same syscall
# Needs: the suite's dockerd up (up.sh), the imprint binary (IMPRINT_BIN or
# on PATH), jq, curl, wrk, redis-tools. Containers run with --network none,
# the servers on the suite's own bridge network.
# Prints one line per test and closes with "docker: N passed, N failed".
set -uo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=e2e/suite.sh
. "$dk_here/../suite.sh"
# shellcheck source=e2e/load.sh
. "$dk_here/../load.sh"
note() { echo "# $*"; }
[[ $(id -u) == 0 ]] || die "run as root"
IMPRINT=${IMPRINT_BIN:-$(command -v imprint || true)}
[[ -x $IMPRINT ]] || die "no imprint binary: set IMPRINT_BIN"
dk version > /dev/null 2>&1 || die "no dockerd on $DK_SOCK: run $dk_here/up.sh"
# shellcheck disable=SC1091
. "$DK_STATE/env"
work=$(mktemp -d)
IMAGE=localhost/imprint-docker/busybox:1
RECORDER=''
cleanup() {
  [[ -z $RECORDER ]] || kill "$RECORDER" 2> /dev/null
  dk ps -aq | xargs -r "$DOCKER" -H "unix://$DK_SOCK" rm -f > /dev/null 2>&1
  pm pod rm -fa > /dev/null 2>&1
  pm rm -fa -t 0 > /dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

# An image without a registry: dockerd 20.10 loads Docker archives, not OCI
# layouts, so a root file system (the static busybox and its applets) is
# imported as one.
image() {
  local root=$work/rootfs applet
  mkdir -p "$root"/{bin,etc,tmp}
  install -m 0755 /bin/busybox "$root/bin/busybox"
  for applet in $(/bin/busybox --list); do [[ $applet == busybox ]] || ln -sf busybox "$root/bin/$applet"; done
  echo 'root:x:0:0:root:/:/bin/sh' > "$root/etc/passwd"
  # A file for each test container to read: its report shows it alone.
  for applet in web db api flash; do echo "$applet" > "$root/etc/$applet.conf"; done
  tar -C "$root" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$work/rootfs.tar" . &&
    dk import --change 'ENV PATH=/bin' "$work/rootfs.tar" "$IMAGE" > /dev/null &&
    pm import --quiet --change 'ENV PATH=/bin' "$work/rootfs.tar" "$IMAGE" > /dev/null
}

# record_start: `imprint record` of every container (no host processes)
# into $work/reports until record_stop (at most 2 minutes, should a failed
# test leave it running); waits until it records and follows dockerd.
# SOCKET...: the runtime sockets to follow (default: dockerd's).
record_start() {
  # A recorder a failed test left running would write into the next one's reports.
  [[ -z $RECORDER ]] || record_stop > /dev/null 2>&1
  rm -rf "$work/reports"
  local sockets=("${@:-$DK_SOCK}") args=() s
  for s in "${sockets[@]}"; do args+=(--runtime-socket "$s"); done
  IMPRINT_LOG=imprint=info "$IMPRINT" record --duration 2m --no-host "${args[@]}" \
    --output "$work/reports" > "$work/record.out" 2> "$work/record.err" &
  RECORDER=$!
  recording() {
    grep -q "recording every cgroup" "$work/record.err" &&
      [[ $(grep -c "following the container runtime" "$work/record.err") -ge ${#sockets[@]} ]]
  }
  eventually 30 recording > /dev/null || { cat "$work/record.err"; return 1; }
}
record_stop() {
  kill -INT "$RECORDER" && wait "$RECORDER"
  local rc=$?
  RECORDER=''
  [[ $rc == 0 || $rc == 130 ]] || { echo "imprint record exited $rc"; tail "$work/record.err"; return 1; }
}
subject() { jq -c '.spec.subject | {container, namespace, workload, image, imageDigest, labels}' "$work/reports/$1.json"; }
# read REPORT NAME: the report's container read /etc/NAME.conf.
read_conf() { jq -e --arg p "/etc/$2.conf" '[.spec.files[].path] | index($p)' "$work/reports/$1.json" > /dev/null; }
files_of() { jq -c '[.spec.files[].path]' "$work/reports/$1.json"; }

names() {
  record_start || return 1
  # Each runs a program of its own, so each report shows only its own.
  dk run -d --network none --name web "$IMAGE" sh -c 'while true; do cat /etc/web.conf > /dev/null; sleep 1; done' > /dev/null &&
    dk run -d --network none --name db "$IMAGE" sh -c 'while true; do cat /etc/db.conf > /dev/null; sleep 1; done' > /dev/null || return 1
  local i
  for i in 1 2; do
    dk run -d --network none --name "shop-api-$i" --label com.docker.compose.project=shop \
      --label com.docker.compose.service=api "$IMAGE" sh -c 'while true; do cat /etc/api.conf > /dev/null; sleep 1; done' > /dev/null || return 1
  done
  sleep 4
  record_stop || return 1
  local digest
  digest=$(dk image inspect -f '{{.Id}}' "$IMAGE")
  for f in web db shop_api_shop-api-1 shop_api_shop-api-2; do
    [[ -f $work/reports/$f.json ]] || { echo "no report $f.json: $(ls "$work/reports")"; return 1; }
  done
  jq -e --arg d "$digest" --arg i "$IMAGE" '.spec.subject | .container == "web" and .image == $i and .imageDigest == $d and
    .workload == null and .namespace == null' "$work/reports/web.json" > /dev/null || { subject web; return 1; }
  jq -e '.spec.subject | .container == "shop-api-2" and .namespace == "shop" and
    .workload == {kind: "ComposeService", name: "api"} and .labels["com.docker.compose.service"] == "api"' \
    "$work/reports/shop_api_shop-api-2.json" > /dev/null ||
    { subject shop_api_shop-api-2; return 1; }
  read_conf web web && ! read_conf web db && ! read_conf web api || { echo "web: $(files_of web)"; return 1; }
  read_conf db db && ! read_conf db web || { echo "db: $(files_of db)"; return 1; }
  read_conf shop_api_shop-api-1 api && ! read_conf shop_api_shop-api-1 web || { echo "api-1: $(files_of shop_api_shop-api-1)"; return 1; }
  note_subjects=$(for f in web shop_api_shop-api-1; do echo -n "$f.json: $(subject "$f"); "; done)
  echo "# $note_subjects"
}

short_lived() {
  record_start || return 1
  local t0 t1
  t0=$(date +%s%N)
  dk run --network none --name flash "$IMAGE" sh -c 'cat /etc/flash.conf > /dev/null' > /dev/null || return 1
  t1=$(date +%s%N)
  sleep 3
  record_stop || return 1
  [[ -f $work/reports/flash.json ]] || { echo "no flash.json: $(ls "$work/reports")"; return 1; }
  read_conf flash flash || { echo "flash: $(files_of flash)"; return 1; }
  jq -e '.spec.syscalls.names | index("execve") and index("exit_group")' "$work/reports/flash.json" > /dev/null ||
    { echo "flash: $(jq -c .spec.syscalls.names "$work/reports/flash.json")"; return 1; }
  echo "# flash: docker run to exit in $(( (t1 - t0) / 1000000 )) ms, its program about 50 ms or less; report complete ($(jq '.spec.syscalls.names | length' "$work/reports/flash.json") syscalls)"
}

recommend() {
  # The reports of the last recording (flash) and of the names test are gone
  # with each record_start: record the service again.
  record_start || return 1
  sleep 3
  record_stop || return 1
  "$IMPRINT" recommend --format oci "$work/reports/shop_api_shop-api-1.json" "$work/reports/shop_api_shop-api-2.json" \
    > "$work/api.json" || return 1
  jq -e '.defaultAction == "SCMP_ACT_ERRNO" and ([.syscalls[].names[]] | index("nanosleep") or index("clock_nanosleep"))' "$work/api.json" > /dev/null ||
    { head -c 400 "$work/api.json"; return 1; }
  echo "# recommend --format oci of the two api replicas: $(jq '[.syscalls[] | select(.action == "SCMP_ACT_ALLOW") | .names[]] | unique | length' "$work/api.json") syscalls allowed"
}

check "an image imported into the suite's dockerd and Podman" image
check "docker run --name and a Compose service: reports named as the user named them, each with its own behavior" names
check "a container of about 50 ms gets a complete report under its name" short_lived
# dockerd restarted while recording (its containers live on): a container
# from before and one started after are both named; the recorder says it
# lost dockerd and found it again.
restart() {
  record_start || return 1
  dk run -d --network none --name before "$IMAGE" sh -c 'while true; do cat /etc/web.conf > /dev/null; sleep 1; done' > /dev/null || return 1
  sleep 2
  local t0=$SECONDS
  stop_dockerd && start_dockerd || return 1
  local down=$((SECONDS - t0))
  dk run -d --network none --name after "$IMAGE" sh -c 'while true; do cat /etc/db.conf > /dev/null; sleep 1; done' > /dev/null || return 1
  sleep 4
  record_stop || return 1
  [[ -f $work/reports/before.json && -f $work/reports/after.json ]] || { echo "reports: $(ls "$work/reports")"; return 1; }
  read_conf before web && ! read_conf before db && read_conf after db && ! read_conf after web ||
    { echo "before: $(files_of before); after: $(files_of after)"; return 1; }
  grep -q "container runtime unreachable" "$work/record.err" || { echo "the recorder never lost dockerd"; return 1; }
  [[ $(grep -c "Docker API" "$work/record.err") -ge 2 ]] || { echo "the recorder did not follow dockerd again"; return 1; }
  echo "# dockerd restarted in ${down}s while recording: the container from before and the one after named, each with its own reads"
}

# A Docker host's containerd and dockerd, both followed (as by default on
# such a host): containerd's moby namespace knows the container by id only,
# Docker's API by its name, which wins.
two_sockets() {
  [[ -S $DK_CONTAINERD_SOCK ]] || { echo "no containerd socket at $DK_CONTAINERD_SOCK"; return 1; }
  record_start "$DK_CONTAINERD_SOCK" || return 1
  local id
  id=$(dk run -d --network none --name alone "$IMAGE" sh -c 'while true; do cat /etc/web.conf > /dev/null; sleep 1; done') || return 1
  sleep 3
  record_stop || return 1
  [[ ! -f $work/reports/alone.json ]] || { echo "containerd alone named it: $(subject alone)"; return 1; }
  local by_id
  by_id=$(grep -l "\"containerId\": *\"$id\"" "$work/reports"/*.json | head -1)
  [[ -n $by_id ]] || { echo "no report of $id: $(ls "$work/reports")"; return 1; }
  jq -e '.spec.subject.container == null' "$by_id" > /dev/null || { jq -c .spec.subject "$by_id"; return 1; }

  record_start "$DK_CONTAINERD_SOCK" "$DK_SOCK" || return 1
  dk run -d --network none --name both "$IMAGE" sh -c 'while true; do cat /etc/db.conf > /dev/null; sleep 1; done' > /dev/null || return 1
  sleep 3
  record_stop || return 1
  grep -q "following the container runtime.*$DK_CONTAINERD_SOCK" "$work/record.err" ||
    { grep "following" "$work/record.err"; return 1; }
  [[ -f $work/reports/both.json && -f $work/reports/alone.json ]] || { echo "reports: $(ls "$work/reports")"; return 1; }
  read_conf both db && read_conf alone web || { echo "both: $(files_of both); alone: $(files_of alone)"; return 1; }
  dk rm -f alone both > /dev/null
  echo "# containerd alone: $(basename "$by_id") (by id); containerd and dockerd: both.json, alone.json (by name)"
}

# --- fidelity: nginx and redis under their recommended profiles -------------------------
fidelity=$work/fidelity
# server NAME IMAGE [DOCKER RUN OPTIONS...]: a server on the suite's network; prints its address.
server() {
  local name=$1 image=$2
  shift 2
  dk run -d --network "$DK_NETWORK" --name "$name" "$@" "$image" > /dev/null || return 1
  dk inspect -f "{{(index .NetworkSettings.Networks \"$DK_NETWORK\").IPAddress}}" "$name"
}
pid_of() { dk inspect -f '{{.State.Pid}}' "$1"; }
# stopped NAME: `docker stop` (the image's stop signal), the server shuts
# down by itself with status 0, well before the kill timeout.
stopped() {
  local t0=$SECONDS code
  dk stop -t 20 "$1" > /dev/null || return 1
  code=$(dk inspect -f '{{.State.ExitCode}}' "$1")
  [[ $code == 0 ]] && (( SECONDS - t0 < 15 )) || { echo "$1 stopped with status $code after $((SECONDS - t0)) s"; return 1; }
}
# confinement CAPS PROFILE: docker run options for the seccomp profile and
# only the capabilities of imprint's caps YAML.
confinement() {
  local c
  echo --security-opt "seccomp=$2" --cap-drop ALL
  for c in $(caps_add "$1"); do echo --cap-add "$c"; done
}

record_servers() {
  mkdir -p "$fidelity"
  record_start || return 1
  local web cache
  web=$(server nginx "$DK_NGINX_IMAGE") && cache=$(server redis "$DK_REDIS_IMAGE") || return 1
  wait_http "$web" || { echo "nginx at $web does not answer"; dk logs nginx 2>&1 | tail -5; return 1; }
  wait_redis "$cache" || { echo "redis at $cache does not answer"; dk logs redis 2>&1 | tail -5; return 1; }
  cap_names "$(awk '/^CapBnd:/ { print $2 }' "/proc/$(pid_of nginx)/status")" > "$fidelity/nginx.bounding"
  cap_names "$(awk '/^CapBnd:/ { print $2 }' "/proc/$(pid_of redis)/status")" > "$fidelity/redis.bounding"
  nginx_load "$web" recorded 50 || return 1
  redis_load "$cache" recorded || return 1
  # A graceful stop belongs to the workload too.
  stopped nginx && stopped redis || return 1
  sleep 1
  record_stop || return 1
  local server report n extra
  for server in nginx redis; do
    report=$work/reports/$server.json
    [[ -f $report ]] || { echo "no $report: $(ls "$work/reports")"; return 1; }
    "$IMPRINT" recommend --format oci "$report" > "$fidelity/$server.json" &&
      "$IMPRINT" recommend --format caps "$report" > "$fidelity/$server.caps" || return 1
    n=$(jq '[.syscalls[] | select(.action == "SCMP_ACT_ALLOW") | .names[]] | unique | length' "$fidelity/$server.json")
    note "$server: the profile allows $n syscalls; argument rules: $(argument_rules "$fidelity/$server.json");" \
      "capabilities: $(caps_add "$fidelity/$server.caps" | tr '\n' ' ')"
    # Only capabilities it could use (runc's own checks are not the workload's).
    extra=$(comm -23 <(caps_add "$fidelity/$server.caps" | sort) <(sort "$fidelity/$server.bounding"))
    [[ -z $extra ]] || { echo "$server: recommended capabilities outside its bounding set: $extra"; return 1; }
  done
  dk rm nginx redis > /dev/null
}

# enforced SERVER NAME IMAGE WAIT LOAD: the server under its profile and
# capabilities serves the same load with zero errors and stops gracefully.
enforced() {
  local server=$1 name=$2 image=$3 wait=$4 load=$5 ip
  [[ -f $fidelity/$server.json ]] || { echo "no $server profile (recording failed)"; return 1; }
  # shellcheck disable=SC2046 # one option per word
  ip=$(server "$name" "$image" $(confinement "$fidelity/$server.caps" "$fidelity/$server.json")) || return 1
  "$wait" "$ip" || { echo "$server under its profile does not answer:"; dk logs "$name" 2>&1 | tail -5; return 1; }
  confined "$(pid_of "$name")" "$fidelity/$server.caps" || return 1
  if [[ $server == nginx ]]; then "$load" "$ip" enforced 50 || return 1; else "$load" "$ip" enforced || return 1; fi
  stopped "$name" || return 1
  dk rm "$name" > /dev/null
}

# broken SERVER NAME IMAGE ANSWERS: without one syscall it makes while
# serving, the server does not start, dies, or its requests fail.
broken() {
  local server=$1 name=$2 image=$3 answers=$4 s ip state
  [[ -f $fidelity/$server.json ]] || { echo "no $server profile (recording failed)"; return 1; }
  s=$(without_syscall "$fidelity/$server.json" "$fidelity/$server-without-%s.json") || return 1
  # shellcheck disable=SC2046 # one option per word
  if ! ip=$(server "$name" "$image" $(confinement "$fidelity/$server.caps" "$fidelity/$server-without-$s.json") 2>&1); then
    note "$server without $s: the container did not start"; return 0
  fi
  sleep 2
  state=$(dk inspect -f '{{.State.Status}}' "$name")
  if [[ $state != running ]]; then note "$server without $s: the container $state"; return 0; fi
  if "$answers" "$ip" > /dev/null 2>&1; then echo "$server without $s still serves"; return 1; fi
  note "$server without $s: requests fail"
  dk rm -f "$name" > /dev/null
}

check "dockerd restarted while recording: containers before and after named, nothing misattributed" restart
check "imprint recommend takes the Docker reports (two replicas of a service merged)" recommend
check "dockerd's containerd and dockerd both followed: Docker's names win over containerd's ids" two_sockets
# Podman's service: a container of a pod is <pod>_<name>.json (the pod
# from Podman's own API), a container on its own <name>.json.
podman_pods() {
  record_start "$PM_SOCK" || return 1
  grep -q 'engine="Podman"' "$work/record.err" || { grep following "$work/record.err"; return 1; }
  # Without an infra container: Podman gives it rlimits (nproc) above the
  # hard limits of a machine whose root lacks CAP_SYS_RESOURCE, and it does
  # not start there.
  pm pod create --name shop --cgroup-parent "$PM_CGROUP" --infra=false > /dev/null &&
    pm run -d --pod shop --name shop-api --network none "$IMAGE" \
      sh -c 'while true; do cat /etc/api.conf > /dev/null; sleep 1; done' > /dev/null &&
    pm run -d --name solo --cgroup-parent "$PM_CGROUP" --network none "$IMAGE" \
      sh -c 'while true; do cat /etc/web.conf > /dev/null; sleep 1; done' > /dev/null || return 1
  local pod_id
  pod_id=$(pm pod inspect -f '{{.ID}}' shop) || return 1
  sleep 4
  record_stop || return 1
  [[ -f $work/reports/shop_shop-api.json && -f $work/reports/solo.json ]] || { echo "reports: $(ls "$work/reports")"; return 1; }
  jq -e --arg i "$IMAGE" --arg p "$pod_id" '.spec.subject | .pod == "shop" and .podUid == $p and .container == "shop-api" and
    (.image | endswith($i))' "$work/reports/shop_shop-api.json" > /dev/null || { subject shop_shop-api; return 1; }
  jq -e '.spec.subject | .pod == null and .container == "solo"' "$work/reports/solo.json" > /dev/null || { subject solo; return 1; }
  read_conf shop_shop-api api && ! read_conf shop_shop-api web && read_conf solo web && ! read_conf solo api ||
    { echo "shop-api: $(files_of shop_shop-api); solo: $(files_of solo)"; return 1; }
  echo "# podman $(pm version -f '{{.Server.Version}}'): shop_shop-api.json (pod shop), solo.json"
}

# The containers cri-dockerd makes for a kubelet carry the kubelet's labels
# (and cri-dockerd's container type): made here with those labels by hand
# (no kubelet), they are named as their pod's, and the sandbox gets no report.
kubelet_labels() {
  local uid=8a7c4a3e-1b2c-4d5e-9f00-112233445566 sandbox
  local pod=(--label io.kubernetes.pod.name=web-1 --label io.kubernetes.pod.namespace=shop --label "io.kubernetes.pod.uid=$uid")
  record_start || return 1
  sandbox=$(dk run -d --network none --name "k8s_POD_web-1_shop_${uid}_0" "${pod[@]}" --label io.kubernetes.docker.type=podsandbox \
    "$IMAGE" sh -c 'while true; do cat /etc/db.conf > /dev/null; sleep 1; done') &&
    dk run -d --network none --name "k8s_nginx_web-1_shop_${uid}_0" "${pod[@]}" --label io.kubernetes.container.name=nginx \
      --label io.kubernetes.docker.type=container "$IMAGE" sh -c 'while true; do cat /etc/web.conf > /dev/null; sleep 1; done' > /dev/null ||
    return 1
  sleep 3
  record_stop || return 1
  [[ -f $work/reports/shop_web-1_nginx.json ]] || { echo "reports: $(ls "$work/reports")"; return 1; }
  jq -e --arg u "$uid" '.spec.subject | .namespace == "shop" and .pod == "web-1" and .podUid == $u and .container == "nginx"' \
    "$work/reports/shop_web-1_nginx.json" > /dev/null || { subject shop_web-1_nginx; return 1; }
  read_conf shop_web-1_nginx web && ! read_conf shop_web-1_nginx db || { echo "nginx: $(files_of shop_web-1_nginx)"; return 1; }
  ! grep -l "\"containerId\": *\"$sandbox\"" "$work/reports"/*.json || { echo "the sandbox got a report"; return 1; }
  dk rm -f "k8s_POD_web-1_shop_${uid}_0" "k8s_nginx_web-1_shop_${uid}_0" > /dev/null
}

check "containers labelled as cri-dockerd labels them: named as their pod's (shop_web-1_nginx.json), no report of the sandbox" kubelet_labels
check "Podman: a pod's container named <pod>_<name> from Podman's API, a lone container by its name" podman_pods
check "nginx and redis recorded under load; profiles and capabilities recommended" record_servers
# containers-common's default seccomp profile (the one Podman and CRI-O
# apply), read from the installed package.
DEFAULT_PROFILE=/usr/share/containers/seccomp.json
# Every rule of the recommended profiles is at least as strict as the
# default's rule for the same syscall (where the default restricts
# arguments, so do they, to calls its rules allow).
as_strict_as_the_default() {
  [[ -f $DEFAULT_PROFILE ]] || { echo "no $DEFAULT_PROFILE (package golang-github-containers-common)"; return 1; }
  local server looser beyond
  for server in nginx redis; do
    [[ -f $fidelity/$server.json ]] || { echo "no $server profile (recording failed)"; return 1; }
    looser=$(looser_than_default "$fidelity/$server.json" "$DEFAULT_PROFILE") || return 1
    [[ -z $looser ]] || { echo "$server: $looser"; return 1; }
    # Syscalls the default allows to no container without a capability.
    beyond=$(jq -r --slurpfile d "$DEFAULT_PROFILE" '[$d[0].syscalls[] | select(.action == "SCMP_ACT_ALLOW"
      and ((.includes.caps // []) | length) == 0) | .names[]] as $def
      | [.syscalls[] | select(.action == "SCMP_ACT_ALLOW") | .names[]] | unique | map(select(. as $n | $def | index($n) | not)) | join(" ")' \
      "$fidelity/$server.json")
    note "$server: no rule looser than the default's for the same syscall; allowed beyond the default (without a capability): ${beyond:-none}"
  done
}

check "the profiles' rules are at least as strict as containers-common's default rules for the same syscalls" as_strict_as_the_default
check "nginx under docker run --security-opt seccomp=<profile> --cap-drop ALL --cap-add <recommended>: same load, zero errors" \
  enforced nginx nginx-enforced "$DK_NGINX_IMAGE" wait_http nginx_load
check "redis under its profile and capabilities: same load, zero errors" enforced redis redis-enforced "$DK_REDIS_IMAGE" wait_redis redis_load
check "nginx without one syscall it needs fails" broken nginx nginx-broken "$DK_NGINX_IMAGE" nginx_answers
check "redis without one syscall it needs fails" broken redis redis-broken "$DK_REDIS_IMAGE" redis_answers
finish docker
