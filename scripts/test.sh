#!/usr/bin/env bash
# The whole test suite, as root: installs what it needs, checks that the
# committed BPF object and CRDs match their sources, lints, then runs every
# test (unit tests and the integration tests that load the real probes).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
    echo "the tests load BPF programs and make cgroups: run as root (sudo $0)" >&2
    exit 1
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

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings

echo "== tests"
log="$(mktemp)"
trap 'rm -rf "$crds" "$log"' EXIT
set +e
cargo test --workspace 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole suite (cargo prints one per test binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
