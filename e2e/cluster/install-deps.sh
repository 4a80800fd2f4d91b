#!/usr/bin/env bash
# Debian packages the e2e cluster needs on a fresh machine (run as root).
#   nftables        `nft`, used by kube-proxy (nftables mode) and the CNI plugins
#   libseccomp-dev  runc is built with seccomp support (cgo)
#   busybox-static  the busybox image's only binary
#   gcc, libc6-dev  builds the static pause binary
#   iptables, ipset  kube-router's network policy controller (the test cluster's enforcer)
#   conntrack        the NetworkPolicy suite forgets its pods' flows (a firewall keeps established ones)
#   iproute2, util-linux, openssl, jq, procps, kmod  network, mounts, certificates, JSON, process tools
#   (and the linter: shellcheck) for the e2e shell scripts
# Go comes with the machine (/usr/local/go); every Go component is built
# from the Go module proxy by build.sh.
set -euo pipefail
pkgs=(nftables iptables ipset conntrack libseccomp-dev busybox-static gcc libc6-dev iproute2 util-linux openssl jq procps shellcheck)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
