#!/usr/bin/env bash
# The e2e test command: runs the e2e suites against the cluster in
# $KUBECONFIG (kubectl on PATH). Works against any cluster: the one of
# e2e/cluster/up.sh here, kind (e2e/kind/run.sh), or another.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${KUBECONFIG:?set KUBECONFIG to the cluster under test}"
kubectl version > /dev/null || { echo "cannot reach the cluster in $KUBECONFIG" >&2; exit 1; }
status=0
"$here/smoke/run.sh" || status=1
# The SeccompProfile suite needs the imprint binary (IMPRINT_BIN or PATH).
if [[ -n "${IMPRINT_BIN:-}" ]] || command -v imprint > /dev/null; then
  "$here/spo/run.sh" || status=1
  # Cluster mode with the agent on the node's host: needs the local
  # cluster's runtime socket, kubelet root and API server pid file.
  if [[ -n "${IMPRINT_E2E_RUNTIME_SOCKET:-}" ]]; then
    "$here/profiles/run.sh" || status=1
  else
    echo "profiles: skipped (not the local cluster: eval \"\$(e2e/cluster/env.sh)\")"
  fi
else
  echo "spo: skipped (no imprint binary: set IMPRINT_BIN)"
fi
# The chart installed in the cluster, from helm install to enforced profiles.
# On the local cluster the suite builds the images (IMPRINT_BIN) and imports
# them; elsewhere (kind) they are loaded first and named in the environment.
if [[ -n "${IMPRINT_E2E_RUNTIME_SOCKET:-}" && ( -n "${IMPRINT_BIN:-}" || -n "$(command -v imprint)" ) ]] ||
  [[ -n "${IMPRINT_IMAGE_REPOSITORY:-}" ]]; then
  "$here/helm/run.sh" || status=1
else
  echo "helm: skipped (no imprint binary for the image, or no loaded image: IMPRINT_IMAGE_REPOSITORY)"
fi
# NetworkPolicies learnt, applied and enforced: needs an enforcer in the
# cluster (the local cluster runs kube-router's) and the local images.
if [[ -n "${IMPRINT_E2E_NETWORK_POLICIES:-}" && -n "${IMPRINT_E2E_RUNTIME_SOCKET:-}" &&
  ( -n "${IMPRINT_BIN:-}" || -n "$(command -v imprint)" ) ]]; then
  "$here/netpol/run.sh" || status=1
else
  echo "netpol: skipped (no NetworkPolicy enforcer named in IMPRINT_E2E_NETWORK_POLICIES, or not the local cluster)"
fi
exit "$status"
