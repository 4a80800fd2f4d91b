#!/usr/bin/env bash
# Shared by the e2e suites (sourced): run tests one by one, count them, and
# close with one "NAME: N passed, N failed" line.
passed=0 failed=0

# check NAME CMD...: run one test, report, count.
check() {
  local name=$1 out; shift
  if out=$("$@" 2>&1); then
    echo "ok - $name"; passed=$((passed + 1))
    # Figures a test prints ("# ...") are kept.
    grep '^# ' <<< "$out" | sed 's/^/    /' || true
  else
    echo "not ok - $name"; printf '%s\n' "$out" | tail -20 | sed 's/^/    /'; failed=$((failed + 1))
  fi
}

# eventually SECONDS CMD...: poll CMD until it succeeds.
eventually() {
  local limit=$1 t0=$SECONDS; shift
  until "$@"; do
    (( SECONDS - t0 > limit )) && { echo "still failing after ${limit}s: $*"; return 1; }
    sleep 1
  done
}

# finish NAME: the closing line; fails when any test failed.
finish() {
  echo "$1: $passed passed, $failed failed"
  [[ $failed -eq 0 ]]
}
