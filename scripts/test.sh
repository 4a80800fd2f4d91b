#!/usr/bin/env bash
# The whole test suite, as root: installs what it needs, checks that the
# committed BPF object and CRDs match their sources, lints, runs every test
# (unit tests and the integration tests that load the real probes), then the
# e2e suites: a real two-node cluster of upstream components, a real
# containerd, Docker and Podman, and a two-node kind cluster (e2e/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
    echo "the tests load BPF programs and make cgroups: run as root (sudo $0)" >&2
    exit 1
fi
# The e2e suites own machine-wide names (cluster and runtime directories,
# bridges, cgroups, ports): a second run on the same machine waits for the
# first instead of failing on its leftovers.
# The lock is held by flock itself (-o: not by the daemons the suites start).
if [[ -z "${IMPRINT_TEST_LOCKED:-}" ]]; then
    lock="${IMPRINT_TEST_LOCK:-/run/lock/imprint-test.lock}"
    mkdir -p "$(dirname "$lock")"
    flock -n "$lock" true || echo "another run of the tests holds $lock: waiting for it"
    IMPRINT_TEST_LOCKED=1 exec flock -o "$lock" "$PWD/scripts/test.sh" "$@"
fi
scripts/install-deps.sh

# Build outputs live outside the repository, keyed by the compiler version,
# so a second run only rebuilds what changed.
if [[ -z "${CARGO_TARGET_DIR:-}" ]]; then
    key="$(rustc --version | tr -c 'a-zA-Z0-9.\n' '-')"
    export CARGO_TARGET_DIR="${IMPRINT_CACHE:-/var/cache/imprint}/target-${key}"
fi
mkdir -p "$CARGO_TARGET_DIR"

echo "== BPF object matches its sources"
probes/build.sh --check

echo "== CRDs match the types"
crds="$(mktemp -d)"
trap 'rm -rf "$crds"' EXIT
cargo run -q -p imprint-crd --bin crdgen -- "$crds" >/dev/null
diff -r manifests/crds "$crds" || { echo "manifests/crds is stale: run cargo run -p imprint-crd --bin crdgen" >&2; exit 1; }

echo "== Helm chart: its CRDs are manifests/crds, install.yaml is rendered from it, helm lint"
diff -r manifests/crds charts/imprint/crds ||
    { echo "charts/imprint/crds differs from manifests/crds: cp manifests/crds/*.yaml charts/imprint/crds/" >&2; exit 1; }
# helm is one of the e2e cluster's components (built once, cached).
e2e/cluster/install-deps.sh
e2e/cluster/build.sh helm
e2e/helm/render.sh --check
"$(e2e/helm/render.sh --helm)" lint --strict --kube-version 1.33.0 charts/imprint

echo "== format and lints"
shellcheck -x scripts/*.sh probes/build.sh .ci/run examples/demo/*.sh e2e/*.sh e2e/*/*.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings

echo "== tests"
# The Alertmanager client's test runs Debian's prometheus-alertmanager (and curl).
e2e/runtime/install-deps.sh
log="$(mktemp)"
trap 'rm -rf "$crds" "$log"' EXIT
set +e
cargo test --workspace 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

echo "== e2e: single-node cluster from upstream components, smoke suite"
# Builds the cluster's components once (cached outside the repository),
# brings the cluster up, runs the e2e command and always tears it down.
export IMPRINT_BIN="$CARGO_TARGET_DIR/debug/imprint"
set +e
e2e/local.sh 2>&1 | tee -a "$log"
e2e_status=${PIPESTATUS[0]}
set -e

echo "== e2e: real container runtime (containerd, runc, CNI; pods through CRI), runtime suite"
# Its own containerd, bridge and cgroups (e2e/runtime/up.sh), always torn down.
set +e
e2e/runtime/local.sh 2>&1 | tee -a "$log"
runtime_status=${PIPESTATUS[0]}
set -e

echo "== e2e: Docker (Debian's dockerd), Docker suite"
# Its own dockerd, roots and cgroup parent (e2e/docker/up.sh), always stopped.
set +e
e2e/docker/local.sh 2>&1 | tee -a "$log"
docker_status=${PIPESTATUS[0]}
set -e

echo "== e2e: two-node kind cluster (kind's nodes in a dockerd of its own), smoke, spo and helm suites"
# A node image assembled from the local cluster's components (no registry),
# its own dockerd, roots, cgroup parent and network (e2e/kind), always
# deleted and stopped.
set +e
e2e/kind/local.sh 2>&1 | tee -a "$log"
kind_status=${PIPESTATUS[0]}
set -e

# One closing line for the whole suite: cargo prints one line per test
# binary, the e2e suite one of its own.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     /^(smoke|spo|profiles|helm|netpol|runtime|docker): [0-9]+ passed, [0-9]+ failed/ { p += $2; f += $4 }
     END { printf "all: %d passed, %d failed\n", p, f }' "$log"
if [[ $status -ne 0 || $e2e_status -ne 0 || $runtime_status -ne 0 || $docker_status -ne 0 || $kind_status -ne 0 ]]; then
    exit 1
fi
