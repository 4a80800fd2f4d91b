#!/usr/bin/env bash
# What the Docker suite needs on a fresh machine (run as root): the runtime
# suite's packages (e2e/runtime/install-deps.sh: nft, ip, jq, curl, wrk,
# redis-tools) and Debian's docker.io (dockerd 20.10 with its containerd
# and runc) and podman (4.3, with conmon; catatonit for its pods' infra
# containers), installed without starting a daemon: there is no init
# system, and the suite starts its own (up.sh). A
# policy-rc.d that forbids service starts is put in place for the install
# when the machine has none.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
"$here/../runtime/install-deps.sh"
pkgs=(docker.io podman catatonit)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[[ ${#missing[@]} -gt 0 ]] || exit 0
guard=/usr/sbin/policy-rc.d
made=''
if [[ ! -e $guard ]]; then
  printf '#!/bin/sh\n# no service starts while imprint installs its test packages\nexit 101\n' > "$guard"
  chmod 755 "$guard"; made=1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
[[ -z $made ]] || rm -f "$guard"
