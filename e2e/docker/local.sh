#!/usr/bin/env bash
# Install docker.io when missing, start the suite's dockerd (up.sh), run the
# Docker suite, and always stop it (down.sh). Exits non-zero if a test failed
# or down left anything behind.
# Usage (as root): IMPRINT_BIN=path/to/imprint e2e/docker/local.sh
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec "$here/../up-run-down.sh" "$here"
