#!/usr/bin/env bash
# Debian's docker.io (dockerd 20.10 with its containerd and runc), installed
# without starting a daemon: there is no init system, and the suite starts
# its own dockerd (up.sh). A policy-rc.d that forbids service starts is put
# in place for the install when the machine has none.
set -euo pipefail
dpkg-query -W -f='${Status}' docker.io 2>/dev/null | grep -q 'install ok installed' && exit 0
guard=/usr/sbin/policy-rc.d
made=''
if [[ ! -e $guard ]]; then
  printf '#!/bin/sh\n# no service starts while imprint installs its test packages\nexit 101\n' > "$guard"
  chmod 755 "$guard"; made=1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io
[[ -z $made ]] || rm -f "$guard"
