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
#               image digest and workload (ComposeService), and only its
#               own behavior
#   short-lived a container whose program lives about 50 ms gets a complete
#               report under its name
#   restart     dockerd restarted while recording (--live-restore): the
#               containers from before and after are named
#   recommend   `imprint recommend` takes the Docker reports as it takes the
#               others (the two replicas of the service merge into one
#               profile)
# Needs: the suite's dockerd up (up.sh), the imprint binary (IMPRINT_BIN or
# on PATH), jq. Containers run with --network none.
# Prints one line per test and closes with "docker: N passed, N failed".
set -uo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=e2e/suite.sh
. "$dk_here/../suite.sh"
[[ $(id -u) == 0 ]] || die "run as root"
IMPRINT=${IMPRINT_BIN:-$(command -v imprint || true)}
[[ -x $IMPRINT ]] || die "no imprint binary: set IMPRINT_BIN"
dk version > /dev/null 2>&1 || die "no dockerd on $DK_SOCK: run $dk_here/up.sh"
work=$(mktemp -d)
IMAGE=localhost/imprint-docker/busybox:1
RECORDER=''
cleanup() {
  [[ -z $RECORDER ]] || kill "$RECORDER" 2> /dev/null
  dk ps -aq | xargs -r "$DOCKER" -H "unix://$DK_SOCK" rm -f > /dev/null 2>&1
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
    dk import --change 'ENV PATH=/bin' "$work/rootfs.tar" "$IMAGE" > /dev/null
}

# record_start: `imprint record` of every container (no host processes)
# into $work/reports until record_stop (at most 2 minutes, should a failed
# test leave it running); waits until it records and follows dockerd.
record_start() {
  rm -rf "$work/reports"
  IMPRINT_LOG=imprint=info "$IMPRINT" record --duration 2m --no-host --runtime-socket "$DK_SOCK" \
    --output "$work/reports" > "$work/record.out" 2> "$work/record.err" &
  RECORDER=$!
  recording() { grep -q "recording every cgroup" "$work/record.err" && grep -q "Docker API" "$work/record.err"; }
  eventually 30 recording > /dev/null || { cat "$work/record.err"; return 1; }
}
record_stop() {
  kill -INT "$RECORDER" && wait "$RECORDER"
  local rc=$?
  RECORDER=''
  [[ $rc == 0 || $rc == 130 ]] || { echo "imprint record exited $rc"; tail "$work/record.err"; return 1; }
}
subject() { jq -c '.spec.subject | {container, namespace, workload, image, imageDigest}' "$work/reports/$1.json"; }
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
    .workload == {kind: "ComposeService", name: "api"}' "$work/reports/shop_api_shop-api-2.json" > /dev/null ||
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
  echo "# recommend --format oci of the two api replicas: $(jq '[.syscalls[] | select(.action == "SCMP_ACT_ALLOW") | .names[]] | length' "$work/api.json") syscalls allowed"
}

check "an image imported into the suite's dockerd" image
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

check "dockerd restarted while recording: containers before and after named, nothing misattributed" restart
check "imprint recommend takes the Docker reports (two replicas of a service merged)" recommend
finish docker
