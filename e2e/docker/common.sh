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
CGROUP_ROOT=imprint-docker          # --cgroup-parent: /imprint-docker in every hierarchy
# dockerd starts a containerd of its own (no system one runs), with its
# socket below the exec root; its containers are in the namespace moby.
DK_CONTAINERD_SOCK=$DK_RUN/exec/containerd/containerd.sock
# The network of the servers' tests: a bridge dockerd makes (no iptables
# rules of its own), the host at its gateway; the nftables table fences it
# (nothing is forwarded out of it).
DK_NETWORK=imprint-docker
DK_BRIDGE=imprint-dk0
DK_SUBNET=10.246.0.0/24
DK_GATEWAY=10.246.0.1
DK_NFT_TABLE=imprint_dk

dk() { "$DOCKER" -H "unix://$DK_SOCK" "$@"; }

# start_dockerd: the suite's dockerd (run_dockerd); --live-restore keeps
# its containers running while it restarts.
start_dockerd() {
  run_dockerd "$DK_SOCK" --bridge=none --iptables=false --ip6tables=false --ip-masq=false \
    --userland-proxy=false --live-restore
}

# stop_dockerd: end_dockerd; its containers stay with --live-restore.
stop_dockerd() { end_dockerd; }

# --- Podman: `podman system service` (its Docker-compatible and its own API
# on one socket), with its own storage, run and temporary directories,
# network configuration and events log; its containers under
# /imprint-docker/podman (cgroupfs).
PODMAN=/usr/bin/podman
PM_SOCK=$DK_RUN/podman.sock
PM_CGROUP=/$CGROUP_ROOT/podman
PM_CONF=$DK_STATE/podman/containers.conf
# Paths Podman writes whatever its configuration says (its image blob cache):
# removed by down only when up found them absent.
PM_HOST_PATHS=(/var/lib/containers)

pm() { "$PODMAN" --remote --url "unix://$PM_SOCK" "$@"; }

# start_podman: the service in its own session, logging to
# $DK_STATE/logs/podman.log; waits until it answers.
start_podman() {
  local i pid
  mkdir -p "$DK_STATE/podman/cni" "$DK_RUN/podman-run" "$DK_RUN/podman-tmp"
  # Modest rlimits for the containers: Podman's defaults (nofile 1048576)
  # fail where root lacks CAP_SYS_RESOURCE and the hard limits are lower
  # (the service also lowers its own nproc limit as it starts).
  cat > "$PM_CONF" <<CONF
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$DK_RUN/podman-events.log"
tmp_dir = "$DK_RUN/podman-tmp"
[network]
network_config_dir = "$DK_STATE/podman/cni"
CONF
  CONTAINERS_CONF=$PM_CONF setsid "$PODMAN" --root "$DK_STATE/podman/storage" --runroot "$DK_RUN/podman-run" \
    --storage-driver overlay system service --time=0 "unix://$PM_SOCK" \
    >> "$DK_STATE/logs/podman.log" 2>&1 < /dev/null &
  pid=$!
  echo "$pid" > "$DK_RUN/podman.started"
  for ((i = 0; i < 60; i++)); do
    pm version > /dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || { tail -20 "$DK_STATE/logs/podman.log" >&2; return 1; }
    sleep 0.5
  done
  return 1
}

# stop_podman: its containers and pods removed, then SIGTERM to the service.
stop_podman() {
  local pid i
  pm pod rm -fa > /dev/null 2>&1
  pm rm -fa -t 0 > /dev/null 2>&1
  pid=$(cat "$DK_RUN/podman.started" 2>/dev/null)
  [[ -n $pid && $(readlink "/proc/$pid/exe" 2>/dev/null) == "$PODMAN" ]] || return 0
  kill -TERM "$pid"
  for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  log "podman did not stop: SIGKILL"; kill -KILL "$pid"
}
