#!/usr/bin/env bash
# Start a dockerd of the suite's own (Debian's docker.io): its own data and
# exec roots, socket, pid file and containerd namespace, containers under
# the cgroup /imprint-docker (cgroupfs driver), no bridge, no iptables
# rules: containers run with --network none. Stopped by down.sh.
# Usage: e2e/docker/up.sh    (as root)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[[ $(id -u) == 0 ]] || die "run as root"
[[ -x $DOCKERD ]] || die "no $DOCKERD: run $dk_here/install-deps.sh"
[[ ! -e $DK_RUN && ! -e $DK_STATE ]] || die "$DK_RUN or $DK_STATE exists: run $dk_here/down.sh first"
mkdir -p "$DK_RUN" "$DK_STATE/data" "$DK_STATE/logs"
setsid "$DOCKERD" --data-root "$DK_STATE/data" --exec-root "$DK_RUN/exec" --pidfile "$DK_PIDFILE" \
  -H "unix://$DK_SOCK" --containerd-namespace "$DK_NAMESPACE" --containerd-plugins-namespace "$DK_NAMESPACE-plugins" \
  --bridge=none --iptables=false --ip6tables=false --ip-masq=false --userland-proxy=false \
  --cgroup-parent "/$DK_CGROUP" --exec-opt native.cgroupdriver=cgroupfs \
  > "$DK_STATE/logs/dockerd.log" 2>&1 < /dev/null &
echo $! > "$DK_RUN/dockerd.started"
for ((i = 0; i < 120; i++)); do
  dk version > /dev/null 2>&1 && break
  kill -0 "$(cat "$DK_RUN/dockerd.started")" 2>/dev/null || { tail -20 "$DK_STATE/logs/dockerd.log" >&2; die "dockerd exited"; }
  sleep 0.5
done
dk version > /dev/null 2>&1 || die "dockerd did not answer on $DK_SOCK"
log "dockerd $(dk version -f '{{.Server.Version}}') on $DK_SOCK (API $(dk version -f '{{.Server.APIVersion}}'))"
