# shellcheck shell=bash
# shellcheck source-path=SCRIPTDIR
# Settings shared by the kind scripts. With --own-dockerd they start a dockerd
# of their own (Debian's docker.io) with roots, socket, cgroup parent and
# network of their own, so that down.sh removes exactly what up.sh made.
# shellcheck disable=SC2034 # sourced by the other scripts
kind_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The cluster's common.sh gives log, die, the versions and the helpers that
# find, empty and remove the suite's cgroups, mounts and directories
# ($CGROUP_ROOT, $STATE, $RUN); point them at the kind suite's own.
IMPRINT_E2E_STATE=${IMPRINT_KIND_STATE:-/var/lib/imprint-kind}  # dockerd's data root, logs, kubeconfig
IMPRINT_E2E_RUN=${IMPRINT_KIND_RUN:-/run/imprint-kind}          # dockerd's exec root, socket, pid file
# shellcheck source=SCRIPTDIR/../cluster/common.sh
. "$kind_here/../cluster/common.sh"
KIND_STATE=$STATE
KIND_RUN=$RUN
CGROUP_ROOT=imprint-kind            # the own dockerd's --cgroup-parent
KIND_CLUSTER=imprint-e2e
KIND_BIN=$CACHE/kind-$KIND_VERSION-k8s-$KUBERNETES_VERSION/bin
KIND_KUBECONFIG=$KIND_STATE/kubeconfig
# The own dockerd: no default bridge, no iptables rules (kind's network gets
# no masquerading: its nodes reach nothing outside it), published ports (the
# API server's) through docker-proxy.
KIND_DOCKER_SOCK=$KIND_RUN/docker.sock
KIND_RUNTIME=$KIND_RUN/runc-host-caps
# kind's network, and the nftables table that drops whatever its nodes would
# forward out of it.
KIND_NETWORK=kind
KIND_BRIDGE=imprint-kind0
KIND_SUBNET=10.249.0.0/24
KIND_GATEWAY=10.249.0.1
KIND_NFT_TABLE=imprint_kind

# write_runtime_wrapper: a runc for dockerd that gives containers the
# capabilities of this host's bounding set, no more and no fewer:
#   - a privileged container (a kind node) gets all of them: Docker 20.10's
#     "all capabilities" stop at CAP_AUDIT_READ, without CAP_PERFMON and
#     CAP_BPF, which the agent's pod asks for inside the node;
#   - any other loses those the host lacks: runc fails ("unable to apply
#     caps") where root itself lacks one (CAP_SYS_RESOURCE in some sandboxed
#     machines).
write_runtime_wrapper() {
  local bnd
  bnd=$(sed -n 's/^CapBnd:[[:space:]]*//p' /proc/self/status)
  capsh --decode="$bnd" | sed 's/.*=//' | tr '[:lower:]' '[:upper:]' | jq -R 'split(",")' > "$KIND_RUN/runc-caps.json"
  cat > "$KIND_RUNTIME" <<'SH'
#!/usr/bin/env bash
# runc, with the container's (create) or the exec'd process's (exec)
# capabilities made those of the host's bounding set (runc-caps.json beside
# this script): all of them for a privileged container, else the asked ones
# the host has.
host=$(cat "$(dirname "$0")/runc-caps.json")
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[i]} in
    --bundle|-b) f=${args[i+1]}/config.json; q=.process.capabilities ;;
    --process|-p) f=${args[i+1]}; q=.capabilities ;;
    *) continue ;;
  esac
  [[ -f $f ]] || continue
  jq --argjson host "$host" "($q // {}) |= (
      if ((.bounding // []) | index(\"CAP_SYS_MODULE\")) and ((.bounding // []) | index(\"CAP_AUDIT_READ\"))
      then with_entries(if .key == \"ambient\" then . else .value = \$host end)
      else with_entries(.value |= map(select(. as \$c | \$host | index(\$c))))
      end)" "$f" > "$f.tmp" && mv "$f.tmp" "$f"
done
exec /usr/sbin/runc "$@"
SH
  chmod 0755 "$KIND_RUNTIME"
}

kdocker() { "$DOCKER" -H "unix://$KIND_DOCKER_SOCK" "$@"; }

# start_own_dockerd: the suite's dockerd (run_dockerd) with the runtime
# wrapper as its default runtime; published ports (the API server's) go
# through docker-proxy.
start_own_dockerd() {
  mkdir -p "$KIND_RUN"
  write_runtime_wrapper
  run_dockerd "$KIND_DOCKER_SOCK" --bridge=none --iptables=false --ip6tables=false --ip-masq=false \
    --add-runtime "host-caps=$KIND_RUNTIME" --default-runtime host-caps
}
