#!/usr/bin/env bash
# The e2e flow on kind, for users with Docker: create the cluster, build the
# imprint image (the repository's Dockerfile) and the test images, load them
# without a registry, run the same e2e suites as e2e/cluster (the helm suite
# installs charts/imprint with the loaded image), delete the cluster.
# Needs: docker, kind, kubectl, helm, jq, curl, wrk, redis-benchmark, bpftool
# (e2e/runtime/install-deps.sh), and go, gcc, busybox-static for the test
# images. Run as root (the helm suite reads the kernel's BPF objects).
# Usage: e2e/kind/run.sh
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
name=imprint-e2e
export KUBECONFIG=${KUBECONFIG_KIND:-$(mktemp)}
images=$(mktemp -d)
cleanup() { kind delete cluster --name "$name" || true; rm -rf "$images"; }
trap cleanup EXIT

kind create cluster --name "$name" --config "$here/kind-config.yaml" --wait 120s
# The imprint image, as users build it.
export IMPRINT_IMAGE_REPOSITORY=localhost/imprint/imprint IMPRINT_IMAGE_TAG=e2e
docker build -t "$IMPRINT_IMAGE_REPOSITORY:$IMPRINT_IMAGE_TAG" "$root"
kind load docker-image --name "$name" "$IMPRINT_IMAGE_REPOSITORY:$IMPRINT_IMAGE_TAG"
# Test images as OCI tarballs: busybox, apiclient, nginx and redis.
"$root/e2e/images/build.sh" "$images"
"$root/e2e/images/servers.sh" "$images"
for img in busybox apiclient nginx redis; do
  kind load image-archive --name "$name" "$images/$img.tar"
done
# shellcheck disable=SC1091
. "$images/images.env"
# shellcheck disable=SC1091
. "$images/servers.env"
export IMPRINT_E2E_BUSYBOX_IMAGE=$BUSYBOX_IMAGE IMPRINT_E2E_APICLIENT_IMAGE=$APICLIENT_IMAGE
export NGINX_IMAGE REDIS_IMAGE
# The helm suite (e2e/helm/run.sh) installs and uninstalls the chart itself;
# localhost profiles reach the node through a pod mounting its
# /var/lib/kubelet/seccomp.
"$root/e2e/run.sh"
