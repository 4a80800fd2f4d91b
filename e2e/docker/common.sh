# shellcheck shell=bash
# Settings shared by the Docker suite's scripts: everything its dockerd
# makes lives in these paths and names, so that down.sh removes exactly that.
# shellcheck disable=SC2034 # sourced by the other scripts
dk_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DK_STATE=${IMPRINT_DOCKER_STATE:-/var/lib/imprint-docker}  # data root, logs
DK_RUN=${IMPRINT_DOCKER_RUN:-/run/imprint-docker}          # exec root, socket, pid file
DK_SOCK=$DK_RUN/docker.sock
DK_PIDFILE=$DK_RUN/dockerd.pid
DK_CGROUP=imprint-docker            # --cgroup-parent: /imprint-docker in every hierarchy
DK_NAMESPACE=imprint-docker         # dockerd's containerd namespace
DOCKERD=/usr/sbin/dockerd           # Debian's docker.io
DOCKER=/usr/bin/docker

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
dk() { "$DOCKER" -H "unix://$DK_SOCK" "$@"; }

# dk_cgroups: the suite's cgroup directories, in every hierarchy.
dk_cgroups() {
  local m
  for m in /sys/fs/cgroup/*; do [[ -d $m/$DK_CGROUP ]] && echo "$m/$DK_CGROUP"; done
  [[ -d /sys/fs/cgroup/$DK_CGROUP ]] && echo "/sys/fs/cgroup/$DK_CGROUP"
  return 0
}
