#!/usr/bin/env bash
# The e2e flow on kind, for users with Docker: create the cluster, build the
# imprint image, load it and the test images without a registry, install the
# chart with helm, run the same e2e suite as e2e/cluster, delete the cluster.
# Needs: docker, kind, kubectl, helm (and go, gcc, busybox-static for the
# test images).   Usage: e2e/kind/run.sh
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
name=imprint-e2e
export KUBECONFIG=${KUBECONFIG_KIND:-$(mktemp)}
images=$(mktemp -d)
cleanup() { kind delete cluster --name "$name" || true; rm -rf "$images"; }
trap cleanup EXIT

kind create cluster --name "$name" --config "$here/kind-config.yaml" --wait 120s
docker build -t imprint:e2e -f "$here/Dockerfile" "$root"
kind load docker-image --name "$name" imprint:e2e
"$root/e2e/images/build.sh" "$images"
kind load image-archive --name "$name" "$images/busybox.tar"
kind load image-archive --name "$name" "$images/apiclient.tar"
# shellcheck disable=SC1091
. "$images/images.env"
export IMPRINT_E2E_BUSYBOX_IMAGE=$BUSYBOX_IMAGE IMPRINT_E2E_APICLIENT_IMAGE=$APICLIENT_IMAGE

if [[ -d $root/charts/imprint ]]; then
  helm install imprint "$root/charts/imprint" --namespace imprint-system --create-namespace \
    --set image.repository=imprint --set image.tag=e2e --set image.pullPolicy=Never --wait
else
  echo "charts/imprint not present yet: skipping helm install" >&2
fi
"$root/e2e/run.sh"
