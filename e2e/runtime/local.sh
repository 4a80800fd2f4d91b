#!/usr/bin/env bash
# Install what is missing, start the runtime (up.sh: builds are cached), run
# the runtime suite against it, and always tear it down (down.sh), also on
# failure or interruption. Exits non-zero if a test failed or down left
# anything behind.
# Usage (as root): IMPRINT_BIN=path/to/imprint e2e/runtime/local.sh
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec "$here/../up-run-down.sh" "$here"
