#!/usr/bin/env bash
# What the kind suite needs on a fresh machine (run as root): the Docker
# suite's packages (e2e/docker/install-deps.sh: Debian's docker.io, installed
# without starting it), debootstrap for the node image's Debian root, and
# capsh (libcap2-bin), which names the capabilities the host's bounding set
# lacks (common.sh).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
"$here/../docker/install-deps.sh"
pkgs=(debootstrap libcap2-bin)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[[ ${#missing[@]} -gt 0 ]] || exit 0
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
