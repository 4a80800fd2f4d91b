#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Build every component of the e2e cluster from source (Go module proxy) into a
# cache outside the repository, one directory per component and version:
#   $IMPRINT_E2E_CACHE/<component>-<version>/bin/...
# A component whose directory carries a `.done` stamp is not rebuilt. Heavy
# builds take a machine-wide lock and run at lower priority so that two heavy
# builds never run at once.
#
# Usage: e2e/cluster/build.sh [component...]
#   components: kubernetes etcd containerd runc cni-plugins helm cri-tools
#   kube-router (its network policy controller enforces NetworkPolicies in
#   the test cluster) coredns (cluster DNS)      (default: all of these)
#   kind (kind and kubeadm, for e2e/kind; only when asked for)
# After a build the Go module and build caches (several GB) are removed; only
# the binaries are kept. IMPRINT_E2E_KEEP_GO_CACHES=1 keeps them.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/versions.sh
. "$here/versions.sh"

CACHE=${IMPRINT_E2E_CACHE:-/var/cache/imprint/e2e}
LOCK=${IMPRINT_BUILD_LOCK:-/tmp/imprint-heavy-build.lock}
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
export GOMODCACHE=$CACHE/go/mod GOCACHE=$CACHE/go/build GOTOOLCHAIN=local
export GOFLAGS="-buildvcs=false -trimpath"

log() { printf '[build] %s\n' "$*" >&2; }
heavy() { flock "$LOCK" nice -n 10 "$@"; }

# run_build NAME VERSION FUNCTION: build into $CACHE/NAME-VERSION unless done.
run_build() {
  local name=$1 version=$2 fn=$3 dir=$CACHE/$1-$2
  if [[ -f $dir/.done ]]; then log "$name $version: cached"; return 0; fi
  rm -rf "$dir"; mkdir -p "$dir/bin" "$GOMODCACHE" "$GOCACHE"
  log "$name $version: building"
  local t0=$SECONDS
  "$fn" "$dir" "$version"
  echo $((SECONDS - t0)) > "$dir/build-seconds"
  touch "$dir/.done"
  built=1
  log "$name $version: built in $((SECONDS - t0)) s"
}
built=0

# kube_module SRC VERSION: a module in SRC that requires k8s.io/kubernetes at
# VERSION. k8s.io/kubernetes replaces its staging modules with local paths, so
# it cannot be built with `go install pkg@version`: this module points every
# staging module at its published v0.X.Y twin instead.
kube_module() {
  local src=$1 v=$2 gomod
  mkdir -p "$src"
  gomod=$(cd "$src" && "$GO" mod download -json "k8s.io/kubernetes@$v" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
  {
    echo "module imprint.dev/e2e/kubernetes-build"
    echo
    echo "go 1.26"
    echo
    echo "require k8s.io/kubernetes $v"
    echo
    echo "replace ("
    sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\t\1 => \1 v0.'"${v#v1.}"'#p' "$gomod"
    echo ")"
  } > "$src/go.mod"
}

# kube_build SRC VERSION OUT_DIR CMD...: builds k8s.io/kubernetes/cmd/CMD at
# VERSION (kube_module in SRC), stamped with the version the way a release is.
kube_build() {
  local src=$1 v=$2 out=$3 minor p; shift 3
  minor=${v#v1.}; minor=${minor%%.*}
  kube_module "$src" "$v"
  local ver_pkgs=(k8s.io/component-base/version k8s.io/client-go/pkg/version)
  local ldflags="-s -w"
  for p in "${ver_pkgs[@]}"; do
    ldflags+=" -X $p.gitVersion=$v -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  local pkgs=()
  for p in "$@"; do pkgs+=("k8s.io/kubernetes/cmd/$p"); done
  (cd "$src" && GOFLAGS="$GOFLAGS -mod=mod" "$GO" mod download && \
    CGO_ENABLED=0 GOFLAGS="$GOFLAGS -mod=mod" heavy "$GO" build -ldflags "$ldflags" -o "$out/" "${pkgs[@]}")
}

build_kubernetes() {
  kube_build "$1/src" "$2" "$1/bin" \
    kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl
}

# kind and, for its node image (e2e/kind/node-image.sh), kubeadm of the
# cluster's Kubernetes version and CoreDNS with the plugins kubeadm's Corefile
# uses; the kind module's own files (its node image's
# base files) are kept in src/kind.
build_kind() {
  local dir=$1 v=$KIND_VERSION moddir
  CGO_ENABLED=0 GOBIN=$dir/bin heavy "$GO" install -ldflags "-s -w" "sigs.k8s.io/kind@$v"
  moddir=$("$GO" mod download -json "sigs.k8s.io/kind@$v" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p')
  mkdir -p "$dir/src"
  cp -r "$moddir" "$dir/src/kind"
  chmod -R u+w "$dir/src/kind"
  kube_build "$dir/src/kubeadm" "$KUBERNETES_VERSION" "$dir/bin" kubeadm
  # The cluster DNS with the plugins of kubeadm's Corefile.
  coredns_build "$dir/src/coredns" "$COREDNS_VERSION" "$dir/bin/coredns" \
    reload health ready prometheus errors log cache loadbalance kubernetes loop forward
}

build_etcd() {
  local dir=$1 v=$2 src=$1/src
  mkdir -p "$src"
  # The etcd binary's main package lives in the repository root module, which
  # uses local replaces; its body is one call into the server module.
  cat > "$src/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  printf 'module imprint.dev/e2e/etcd-build\n\ngo 1.26\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$v" > "$src/go.mod"
  (cd "$src" && GOFLAGS="$GOFLAGS -mod=mod" "$GO" mod tidy && \
    CGO_ENABLED=0 heavy "$GO" build -ldflags "-s -w" -o "$dir/bin/etcd" .)
}

build_containerd() {
  local dir=$1 v=$2 m=github.com/containerd/containerd/v2
  local ld="-s -w -X $m/version.Version=$v -X $m/version.Revision=release"
  CGO_ENABLED=0 GOBIN=$dir/bin heavy "$GO" install -tags "no_btrfs,no_devmapper,no_zfs" \
    -ldflags "$ld" "$m/cmd/containerd@$v" "$m/cmd/ctr@$v" "$m/cmd/containerd-shim-runc-v2@$v"
}

build_runc() {
  local dir=$1 v=$2
  # cgo for libseccomp (Debian libseccomp-dev).
  CGO_ENABLED=1 GOBIN=$dir/bin heavy "$GO" install -tags seccomp \
    -ldflags "-s -w -X main.version=${v#v}" "github.com/opencontainers/runc@$v"
}

build_cni_plugins() {
  local dir=$1 v=$2 m=github.com/containernetworking/plugins
  CGO_ENABLED=0 GOBIN=$dir/bin heavy "$GO" install -ldflags "-s -w" \
    "$m/plugins/main/bridge@$v" "$m/plugins/main/loopback@$v" \
    "$m/plugins/ipam/host-local@$v" "$m/plugins/meta/portmap@$v"
}

build_helm() {
  local dir=$1 v=$2
  CGO_ENABLED=0 GOBIN=$dir/bin heavy "$GO" install \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$v" "helm.sh/helm/v3/cmd/helm@$v"
}

build_cri_tools() {
  local dir=$1 v=$2
  CGO_ENABLED=0 GOBIN=$dir/bin heavy "$GO" install \
    -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=${v#v}" "sigs.k8s.io/cri-tools/cmd/crictl@$v"
}

build_kube_router() {
  local dir=$1 v=$2 m=github.com/cloudnativelabs/kube-router/v2
  CGO_ENABLED=0 GOBIN=$dir/bin heavy "$GO" install \
    -ldflags "-s -w -X $m/pkg/version.Version=$v -X $m/pkg/version.BuildDate=1970-01-01T00:00:00Z" "$m/cmd/kube-router@$v"
}

# coredns_build SRC VERSION OUT DIRECTIVE...: CoreDNS with only the plugins
# named (its full set pulls in every cloud SDK); the Corefile decides which of
# them run.
coredns_build() {
  local src=$1 v=$2 out=$3; shift 3
  local directives
  directives=$(printf '"%s", ' "$@")
  mkdir -p "$src"
  cat > "$src/main.go" <<GO
package main

import (
	_ "github.com/coredns/coredns/core/plugin"

	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"
)

var directives = []string{${directives%, }}

func init() { dnsserver.Directives = directives }

func main() { coremain.Run() }
GO
  printf 'module imprint.dev/e2e/coredns-build\n\ngo 1.26\n\nrequire github.com/coredns/coredns %s\n' "$v" > "$src/go.mod"
  (cd "$src" && gofmt -w main.go && GOFLAGS="$GOFLAGS -mod=mod" "$GO" mod tidy && \
    CGO_ENABLED=0 heavy "$GO" build -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$v" -o "$out" .)
}

build_coredns() {
  coredns_build "$1/src" "$2" "$1/bin/coredns" \
    reload health ready prometheus errors log cache loadbalance kubernetes
}

all=(etcd runc cni-plugins containerd helm kubernetes cri-tools kube-router coredns)
# Not built by default: kind (only e2e/kind needs it).
want=("$@"); [[ ${#want[@]} -gt 0 ]] || want=("${all[@]}")
for c in "${want[@]}"; do
  case $c in
    kubernetes) run_build kubernetes "$KUBERNETES_VERSION" build_kubernetes ;;
    etcd) run_build etcd "$ETCD_VERSION" build_etcd ;;
    containerd) run_build containerd "$CONTAINERD_VERSION" build_containerd ;;
    runc) run_build runc "$RUNC_VERSION" build_runc ;;
    cni-plugins) run_build cni-plugins "$CNI_PLUGINS_VERSION" build_cni_plugins ;;
    helm) run_build helm "$HELM_VERSION" build_helm ;;
    cri-tools) run_build cri-tools "$CRI_TOOLS_VERSION" build_cri_tools ;;
    kube-router) run_build kube-router "$KUBE_ROUTER_VERSION" build_kube_router ;;
    coredns) run_build coredns "$COREDNS_VERSION" build_coredns ;;
    kind) run_build kind "$KIND_VERSION-k8s-$KUBERNETES_VERSION" build_kind ;;
    *) echo "unknown component: $c" >&2; exit 2 ;;
  esac
done
if [[ $built == 1 && ${IMPRINT_E2E_KEEP_GO_CACHES:-0} != 1 ]]; then
  log "removing the Go caches of the build ($(du -sh "$CACHE/go" | cut -f1))"
  "$GO" clean -cache -modcache
  rm -rf "$CACHE/go"
fi
