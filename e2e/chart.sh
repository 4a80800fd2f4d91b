# shellcheck shell=bash
# shellcheck disable=SC2154 # root, work, CACHE, SOCKET: the caller's
# What the suites that install the chart share (sourced; the caller sets
# root, work, CACHE and SOCKET and defines `note TEXT`): the images, and
# the node's cgroup v2 root for the chart's values.

# --- images ------------------------------------------------------------------
images() {
  # The load generators (curl, wrk, redis-benchmark), Prometheus and
  # Alertmanager, when missing.
  if ! command -v wrk > /dev/null || ! command -v redis-benchmark > /dev/null ||
    ! command -v prometheus > /dev/null || ! command -v prometheus-alertmanager > /dev/null; then
    "$root/e2e/runtime/install-deps.sh" || return 1
  fi
  if [[ -z $SOCKET ]]; then
    : "${IMPRINT_IMAGE_REPOSITORY:?load the imprint image and set IMPRINT_IMAGE_REPOSITORY and IMPRINT_IMAGE_TAG}"
    : "${IMPRINT_IMAGE_TAG:?}" "${NGINX_IMAGE:?}" "${REDIS_IMAGE:?}"
    return 0
  fi
  local ctrs=("$CACHE"/containerd-*/bin/ctr) ctr servers t0=$SECONDS
  ctr=${ctrs[0]}
  [[ -x $ctr ]] || { echo "no ctr in $CACHE"; return 1; }
  local bin=${IMPRINT_BIN:-$(command -v imprint)}
  "$root/e2e/images/imprint.sh" "$bin" "$work/images" 2>&1 || return 1
  servers=$("$root/e2e/images/servers.sh" --cached "$CACHE") || return 1
  echo "$servers" > "$work/servers-dir"
  local tar socket
  # Into every node's containerd (IMPRINT_E2E_RUNTIME_SOCKETS: the local
  # cluster's two nodes), else into $SOCKET's.
  for socket in ${IMPRINT_E2E_RUNTIME_SOCKETS:-$SOCKET}; do
    for tar in "$work/images/imprint.tar" "$servers/nginx.tar" "$servers/redis.tar"; do
      "$ctr" --address "$socket" -n k8s.io images import --platform linux/amd64 "$tar" > /dev/null 2>&1 ||
        { echo "ctr import $tar into $socket failed"; return 1; }
    done
  done
  note "images built and imported in $((SECONDS - t0))s"
}
# The images' names, for the tests (exported from a subshell through files).
load_image_names() {
  if [[ -f $work/images/imprint.env ]]; then
    # shellcheck disable=SC1091
    . "$work/images/imprint.env"
    # shellcheck disable=SC1091
    . "$(cat "$work/servers-dir")/servers.env"
  fi
}

# runtime_socket: the chart's agent.runtimeSocket. On the local cluster
# each node's containerd socket is named after its node, in one directory.
runtime_socket() {
  if [[ -n $SOCKET ]]; then echo "$(dirname "$SOCKET")/\$(NODE_NAME).sock"; else echo /run/containerd/containerd.sock; fi
}

cgroup_root() {
  if [[ $(stat -f -c %T /sys/fs/cgroup) == cgroup2fs ]]; then echo /sys/fs/cgroup; else echo /sys/fs/cgroup/unified; fi
}
