#!/usr/bin/env bash
# Debian packages the runtime suite needs on a fresh machine (run as root):
# the cluster's (e2e/cluster/install-deps.sh: nft, ip, jq, the image tools)
# and the load generators the suite points at the servers it starts:
#   curl         HTTP requests against nginx
#   wrk          HTTP load against nginx
#   redis-tools  redis-benchmark and redis-cli against redis (client tools only, no server)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
"$here/../cluster/install-deps.sh"
pkgs=(curl wrk redis-tools)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
