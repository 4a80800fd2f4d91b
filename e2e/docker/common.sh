# shellcheck shell=bash
# Settings shared by the Docker suite's scripts: everything its dockerd
# makes lives in these paths and names, so that down.sh removes exactly that.
# shellcheck disable=SC2034 # sourced by the other scripts
dk_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The cluster's common.sh gives log, die and the helpers that find, empty and
# remove the suite's cgroups, mounts and directories ($CGROUP_ROOT, $STATE,
# $RUN); point them at the suite's own.
IMPRINT_E2E_STATE=${IMPRINT_DOCKER_STATE:-/var/lib/imprint-docker}  # data root, logs
IMPRINT_E2E_RUN=${IMPRINT_DOCKER_RUN:-/run/imprint-docker}          # exec root, socket, pid file
# shellcheck source=SCRIPTDIR/../cluster/common.sh
. "$dk_here/../cluster/common.sh"
DK_STATE=$STATE
DK_RUN=$RUN
DK_SOCK=$DK_RUN/docker.sock
DK_PIDFILE=$DK_RUN/dockerd.pid
CGROUP_ROOT=imprint-docker          # --cgroup-parent: /imprint-docker in every hierarchy
DK_NAMESPACE=imprint-docker         # dockerd's containerd namespace
DOCKERD=/usr/sbin/dockerd           # Debian's docker.io
DOCKER=/usr/bin/docker

dk() { "$DOCKER" -H "unix://$DK_SOCK" "$@"; }

# start_dockerd: the suite's dockerd in its own session, logging to
# $DK_STATE/logs/dockerd.log; waits until it answers. --live-restore keeps
# its containers running while it restarts.
start_dockerd() {
  local i pid
  setsid "$DOCKERD" --data-root "$DK_STATE/data" --exec-root "$DK_RUN/exec" --pidfile "$DK_PIDFILE" \
    -H "unix://$DK_SOCK" --containerd-namespace "$DK_NAMESPACE" --containerd-plugins-namespace "$DK_NAMESPACE-plugins" \
    --bridge=none --iptables=false --ip6tables=false --ip-masq=false --userland-proxy=false --live-restore \
    --cgroup-parent "/$CGROUP_ROOT" --exec-opt native.cgroupdriver=cgroupfs \
    >> "$DK_STATE/logs/dockerd.log" 2>&1 < /dev/null &
  pid=$!
  echo "$pid" > "$DK_RUN/dockerd.started"
  for ((i = 0; i < 120; i++)); do
    dk version > /dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || [[ -s $DK_PIDFILE ]] || { tail -20 "$DK_STATE/logs/dockerd.log" >&2; return 1; }
    sleep 0.5
  done
  return 1
}

# stop_dockerd: SIGTERM to the suite's dockerd (its pid file, else the PID
# start_dockerd recorded), SIGKILL after 20 s; its containers stay with
# --live-restore.
stop_dockerd() {
  local pid i
  pid=$(cat "$DK_PIDFILE" 2>/dev/null || cat "$DK_RUN/dockerd.started" 2>/dev/null)
  [[ -n $pid && $(readlink "/proc/$pid/exe" 2>/dev/null) == "$DOCKERD" ]] || return 0
  kill -TERM "$pid"
  for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  log "dockerd did not stop: SIGKILL"; kill -KILL "$pid"
}
