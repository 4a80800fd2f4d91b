#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# The e2e flow on a two-node kind cluster: create it (up.sh), load the
# imprint image and the test images without a registry, run the same e2e
# suites as on the local cluster (the helm suite installs charts/imprint with
# the loaded image and runs its two-node checks across the control plane and
# the worker), delete the cluster (down.sh).
# Usage: e2e/kind/run.sh [--own-dockerd] [--node-image IMAGE]   (see up.sh)
# The imprint image: from IMPRINT_BIN (e2e/images/imprint.sh, no Docker
# build) when set, else the repository's Dockerfile (`docker build`, which
# pulls its base images).
# Needs: docker, kubectl, helm, jq, curl, wrk, redis-benchmark, bpftool
# (e2e/runtime/install-deps.sh), debootstrap (the node image), and go, gcc,
# busybox-static for the test images. Run as root (the helm suite reads the
# kernel's BPF objects). kind itself is built here (e2e/cluster/build.sh kind).
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
root=$(cd "$kind_here/../.." && pwd)
down_args=()
[[ " $* " == *" --own-dockerd "* ]] && down_args=(--own-dockerd)
images=$(mktemp -d)
cleanup() {
  local rc=$?
  "$kind_here/down.sh" "${down_args[@]}" || { [[ $rc != 0 ]] || rc=1; }
  rm -rf "$images"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

env_lines=$("$kind_here/up.sh" "$@")
eval "$env_lines"
export PATH=$KIND_BIN:$K8S_BIN:$HELM_BIN:$PATH

# The imprint image.
if [[ -n ${IMPRINT_BIN:-} ]]; then
  "$root/e2e/images/imprint.sh" "$IMPRINT_BIN" "$images"
  # shellcheck disable=SC1091
  . "$images/imprint.env"
  kind load image-archive --name "$KIND_CLUSTER" "$images/imprint.tar"
else
  export IMPRINT_IMAGE_REPOSITORY=localhost/imprint/imprint IMPRINT_IMAGE_TAG=e2e
  docker build -t "$IMPRINT_IMAGE_REPOSITORY:$IMPRINT_IMAGE_TAG" "$root"
  kind load docker-image --name "$KIND_CLUSTER" "$IMPRINT_IMAGE_REPOSITORY:$IMPRINT_IMAGE_TAG"
fi
export IMPRINT_IMAGE_REPOSITORY IMPRINT_IMAGE_TAG
# Test images as OCI tarballs: busybox, apiclient, nginx and redis.
"$root/e2e/images/build.sh" "$images"
servers=$("$root/e2e/images/servers.sh" --cached "$CACHE")
for tar in "$images"/{busybox,apiclient}.tar "$servers"/{nginx,redis}.tar; do
  kind load image-archive --name "$KIND_CLUSTER" "$tar"
done
# shellcheck disable=SC1091
. "$images/images.env"
# shellcheck disable=SC1091
. "$servers/servers.env"
export IMPRINT_E2E_BUSYBOX_IMAGE=$BUSYBOX_IMAGE IMPRINT_E2E_APICLIENT_IMAGE=$APICLIENT_IMAGE
export NGINX_IMAGE REDIS_IMAGE
# kubeadm's API server takes anonymous requests (RBAC refuses them: 403).
export IMPRINT_E2E_ANONYMOUS_STATUS=403
# The helm suite (e2e/helm/run.sh) installs and uninstalls the chart itself;
# localhost profiles reach the node through a pod mounting its
# /var/lib/kubelet/seccomp.
"$root/e2e/run.sh"
