#!/usr/bin/env bash
# Start a dockerd of the suite's own (Debian's docker.io): its own data and
# exec roots, socket, pid file and containerd namespace, containers under
# the cgroup /imprint-docker (cgroupfs driver), no bridge, no iptables
# rules: containers run with --network none; --live-restore keeps them
# running while dockerd restarts. Stopped by down.sh.
# Usage: e2e/docker/up.sh    (as root)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[[ $(id -u) == 0 ]] || die "run as root"
[[ -x $DOCKERD ]] || die "no $DOCKERD: run $dk_here/install-deps.sh"
[[ ! -e $DK_RUN && ! -e $DK_STATE ]] || die "$DK_RUN or $DK_STATE exists: run $dk_here/down.sh first"
mkdir -p "$DK_RUN" "$DK_STATE/data" "$DK_STATE/logs"
start_dockerd || die "dockerd did not answer on $DK_SOCK (see $DK_STATE/logs/dockerd.log)"
log "dockerd $(dk version -f '{{.Server.Version}}') on $DK_SOCK (API $(dk version -f '{{.Server.APIVersion}}'))"
