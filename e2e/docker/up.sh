#!/usr/bin/env bash
# Start a dockerd of the suite's own (Debian's docker.io): its own data and
# exec roots, socket, pid file and containerd, containers under the cgroup
# /imprint-docker (cgroupfs driver), no default bridge and no iptables rules
# (containers run with --network none, the servers on the suite's own
# bridge network); --live-restore keeps containers running while dockerd
# restarts. Loads the nginx and redis images the other suites use (built
# from Debian's packages, e2e/images/servers.sh). Also Podman's service
# (`podman system service`) with its own storage and socket. Stopped by
# down.sh.
# Usage: e2e/docker/up.sh    (as root)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=e2e/images/oci-image.sh
. "$dk_here/../images/oci-image.sh"
[[ $(id -u) == 0 ]] || die "run as root"
[[ -x $DOCKERD ]] || die "no $DOCKERD: run $dk_here/install-deps.sh"
[[ ! -e $DK_RUN && ! -e $DK_STATE ]] || die "$DK_RUN or $DK_STATE exists: run $dk_here/down.sh first"
start_dockerd || die "dockerd did not answer on $DK_SOCK (see $DK_STATE/logs/dockerd.log)"
log "dockerd $(dk version -f '{{.Server.Version}}') on $DK_SOCK (API $(dk version -f '{{.Server.APIVersion}}'))"

# The servers' images: dockerd 20.10 loads Docker archives, not OCI layouts.
servers=$("$dk_here/../images/servers.sh" --cached "$CACHE")
# shellcheck disable=SC1091
. "$servers/servers.env"
for image in nginx redis; do
  docker_archive "$servers/$image.tar" "$DK_STATE/$image-docker.tar"
  dk load -q -i "$DK_STATE/$image-docker.tar" > /dev/null
  rm -f "$DK_STATE/$image-docker.tar"
done

# The servers' network and its fence.
dk network create --driver bridge --subnet "$DK_SUBNET" --gateway "$DK_GATEWAY" \
  -o com.docker.network.bridge.name="$DK_BRIDGE" "$DK_NETWORK" > /dev/null
nft -f - <<NFT
table inet $DK_NFT_TABLE {
  chain forward {
    type filter hook forward priority -10; policy accept;
    iifname "$DK_BRIDGE" oifname != "$DK_BRIDGE" drop
  }
}
NFT
printf 'DK_NGINX_IMAGE=%s\nDK_REDIS_IMAGE=%s\n' "$NGINX_IMAGE" "$REDIS_IMAGE" > "$DK_STATE/env"
log "images $NGINX_IMAGE $REDIS_IMAGE; network $DK_NETWORK on $DK_BRIDGE ($DK_SUBNET)"

# Podman's service beside it.
for p in "${PM_HOST_PATHS[@]}"; do [[ -e $p ]] && echo "$p"; done > "$DK_RUN/podman-host-paths" || true
start_podman || die "podman did not answer on $PM_SOCK (see $DK_STATE/logs/podman.log)"
log "podman $(pm version -f '{{.Server.Version}}') on $PM_SOCK"
