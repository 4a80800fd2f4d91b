#!/usr/bin/env bash
# Debian packages the runtime suite needs on a fresh machine (run as root):
# the cluster's (e2e/cluster/install-deps.sh: nft, ip, jq, the image tools)
# and the load generators the suite points at the servers it starts:
#   curl         HTTP requests against nginx
#   wrk          HTTP load against nginx
#   redis-tools  redis-benchmark and redis-cli against redis (client tools only, no server)
#   prometheus, prometheus-alertmanager
#                the helm suite starts its own, with its own configuration, to
#                scrape the agents and the controller and to receive alerts;
#                their packaged services are kept from starting
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
"$here/../cluster/install-deps.sh"
pkgs=(curl wrk redis-tools prometheus prometheus-alertmanager)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  # No package's service starts at install (invoke-rc.d's policy), unless
  # the machine already has a policy of its own.
  policy=/usr/sbin/policy-rc.d made_policy=
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && made_policy=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  [[ -z $made_policy ]] || rm -f "$policy"
fi
