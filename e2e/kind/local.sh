#!/usr/bin/env bash
# The kind suite on a machine without a running Docker (the build machines):
# installs what is missing, then run.sh with a dockerd of the suite's own
# (--own-dockerd), which always deletes the cluster and stops that dockerd.
# Exits non-zero if a test failed or down left anything behind.
# Usage (as root): IMPRINT_BIN=path/to/imprint e2e/kind/local.sh
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
"$here/install-deps.sh"
exec "$here/run.sh" --own-dockerd
