#!/usr/bin/env bash
# SeccompProfile suite: the profiles imprint generates are accepted by a
# real API server that validates them with security-profiles-operator's own
# CRD schema (the CRDs are applied from the shared fixtures), and a broken
# profile is refused.
# Needs: kubectl, KUBECONFIG, the imprint binary (IMPRINT_BIN or on PATH,
# run as root: it records a command), and the SPO CRDs
# (IMPRINT_SPO_CRDS, default: ../shared/fixtures/security-profiles-operator
# beside the repository).
# Prints one line per test and closes with "spo: N passed, N failed".
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=e2e/suite.sh
. "$here/../suite.sh"
IMPRINT=${IMPRINT_BIN:-imprint}
CRDS=${IMPRINT_SPO_CRDS:-$here/../../../shared/fixtures/security-profiles-operator}
NAME=imprint-e2e-$(date +%s)-$$
work=$(mktemp -d)

cleanup() {
  kubectl delete seccompprofiles.security-profiles-operator.x-k8s.io "$NAME" --ignore-not-found > /dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

spo_crds_installed() {
  kubectl apply --server-side -f "$CRDS/seccompprofile.crd.yaml" -f "$CRDS/profilebinding.crd.yaml" \
    -f "$CRDS/profilerecording.crd.yaml" &&
    kubectl wait --for condition=Established --timeout=60s \
      crd/seccompprofiles.security-profiles-operator.x-k8s.io
}

generated_profile_accepted() {
  "$IMPRINT" record --output "$work/reports" -- /bin/sh -c 'cat /etc/hostname > /dev/null' &&
    "$IMPRINT" recommend --format spo --name "$NAME" "$work"/reports/*.json > "$work/profile.yaml" &&
    kubectl apply --server-side -f "$work/profile.yaml" &&
    kubectl get seccompprofiles.security-profiles-operator.x-k8s.io "$NAME" -o jsonpath='{.spec.defaultAction}' |
    grep -qx SCMP_ACT_ERRNO
}

broken_profile_refused() {
  sed 's/SCMP_ACT_ERRNO/SCMP_ACT_SOMETIMES/' "$work/profile.yaml" | sed "s/name: $NAME/name: $NAME-broken/" > "$work/broken.yaml"
  if kubectl apply --server-side -f "$work/broken.yaml" > "$work/broken.out" 2>&1; then
    kubectl delete -f "$work/broken.yaml" > /dev/null 2>&1
    echo "the API server accepted defaultAction SCMP_ACT_SOMETIMES"
    return 1
  fi
  grep -q "Unsupported value" "$work/broken.out" || { cat "$work/broken.out"; return 1; }
}

check "security-profiles-operator CRDs installed from the shared fixtures" spo_crds_installed
check "a generated SeccompProfile is accepted by the API server" generated_profile_accepted
check "a broken SeccompProfile is refused by SPO's schema" broken_profile_refused

finish spo
