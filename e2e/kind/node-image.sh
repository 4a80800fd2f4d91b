#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Assemble a kind node image without any registry: kind's `build node-image`
# fetches etcd, CoreDNS, pause and its CNI's images from registries inside its
# build container, and its base image is pulled from Docker Hub. This script
# makes the same root file system from parts built here:
#   - a Debian bookworm root (debootstrap from the Debian mirror: systemd 252,
#     which still boots on a cgroup v1 host, unlike trixie's 257) with the
#     packages of kind's base image that a node uses;
#   - kind's base files (its entrypoint, units and containerd configuration),
#     read from the kind module that e2e/cluster/build.sh downloaded;
#   - containerd, runc, crictl and the CNI plugins, kubeadm, the kubelet and
#     kubectl (e2e/cluster/build.sh);
#   - the images kubeadm asks for (`kubeadm config images list`), under the
#     names it asks for, made from the same binaries (e2e/images/oci-image.sh)
#     and imported into the node's containerd (pinned, as kind does).
# The cluster's network is not kind's kindnetd (its module is not on the Go
# module proxy): kind-config.yaml sets `disableDefaultCNI` and up.sh gives
# each node the bridge plugin and routes.
# Prints the path of the root file system tarball, cached under
# $IMPRINT_E2E_CACHE/kind-node-<Kubernetes version>-<hash of the inputs>;
# `docker import` makes the image of it (up.sh).
# Usage: e2e/kind/node-image.sh      (as root; needs debootstrap, jq, gcc)
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
e2e=$(cd "$kind_here/.." && pwd)
# shellcheck source=../images/oci-image.sh
. "$e2e/images/oci-image.sh"
MIRROR=${IMPRINT_E2E_DEBIAN_MIRROR:-http://deb.debian.org/debian}
log() { printf '[kind-node] %s\n' "$*" >&2; }

key=$(cat "$kind_here/node-image.sh" "$e2e/cluster/versions.sh" "$e2e/images/oci-image.sh" "$e2e/images/pause.c" \
  | sha256sum | cut -c1-12)
out=$CACHE/kind-node-$KUBERNETES_VERSION-$key
if [[ -f $out/.done ]]; then echo "$out/rootfs.tar"; exit 0; fi

"$e2e/cluster/build.sh" kubernetes etcd containerd runc cni-plugins cri-tools kind >&2
files=$KIND_BIN/../src/kind/images/base/files

t0=$SECONDS
work=$(mktemp -d /var/tmp/imprint-kind-node.XXXXXX)
ctrd_pid=
cleanup() {
  [[ -z $ctrd_pid ]] || { kill "$ctrd_pid" 2>/dev/null; wait "$ctrd_pid" 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT
rootfs=$work/rootfs

# The Debian root: kind's base packages, less the storage and rootless ones
# (NFS, iSCSI, fuse-overlayfs) and curl.
packages=systemd,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,bash,ca-certificates,jq,procps
log "debootstrap bookworm from $MIRROR"
debootstrap --variant=minbase --include="$packages" bookworm "$rootfs" "$MIRROR" > "$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

# kube-proxy's image: the Debian root (iptables, nft, conntrack) and the binary.
proxy=$work/proxy
cp -a "$rootfs" "$proxy"
install -m 0755 "$K8S_BIN/kube-proxy" "$proxy/usr/local/bin/kube-proxy"

# kind's base files, with the modes its base image gives them.
install -m 0755 "$files"/usr/local/bin/* "$rootfs/usr/local/bin/"
mkdir -p "$rootfs/kind/bin" "$rootfs/etc/containerd" "$rootfs/etc/default" "$rootfs/etc/sysctl.d" \
  "$rootfs/etc/systemd/system/kubelet.service.d" "$rootfs/LICENSES"
install -m 0644 "$files"/kind/README.txt "$rootfs/kind/"
install -m 0755 "$files"/kind/bin/* "$rootfs/kind/bin/"
install -m 0644 "$files"/LICENSES/* "$rootfs/LICENSES/"
install -m 0644 "$files"/etc/crictl.yaml "$rootfs/etc/"
install -m 0644 "$files"/etc/containerd/* "$rootfs/etc/containerd/"
# runc must not lower a container's oom_score_adj where root lacks
# CAP_SYS_RESOURCE (as in some sandboxed machines): the kubelet asks -998 for
# pod sandboxes. containerd then keeps them at its own score or above.
sed -i 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' "$rootfs/etc/containerd/config.toml"
grep -q 'restrict_oom_score_adj = true' "$rootfs/etc/containerd/config.toml"
install -m 0644 "$files"/etc/default/* "$rootfs/etc/default/"
install -m 0644 "$files"/etc/sysctl.d/* "$rootfs/etc/sysctl.d/"
find "$files/etc/systemd/system" -maxdepth 1 -type f -exec install -m 0644 {} "$rootfs/etc/systemd/system/" \;
install -m 0644 "$files"/etc/systemd/system/kubelet.service.d/* "$rootfs/etc/systemd/system/kubelet.service.d/"
# systemd as a container's init, the way kind's base image sets it up.
find "$rootfs/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
rm -f "$rootfs"/lib/systemd/system/multi-user.target.wants/* "$rootfs"/etc/systemd/system/*.wants/* \
  "$rootfs"/lib/systemd/system/local-fs.target.wants/* "$rootfs"/lib/systemd/system/sockets.target.wants/*udev* \
  "$rootfs"/lib/systemd/system/sockets.target.wants/*initctl* "$rootfs"/lib/systemd/system/basic.target.wants/*
echo "ReadKMsg=no" >> "$rootfs/etc/systemd/journald.conf"
ln -sf /usr/lib/systemd/systemd "$rootfs/sbin/init"
chroot "$rootfs" systemctl enable kubelet.service containerd.service undo-mount-hacks.service > /dev/null 2>&1
chroot "$rootfs" systemctl mask systemd-binfmt.service > /dev/null 2>&1
mkdir -p "$rootfs/etc/kubernetes/manifests"

# The runtime, the CNI plugins and Kubernetes' node binaries.
install -m 0755 "$CONTAINERD_BIN"/{containerd,ctr,containerd-shim-runc-v2} "$rootfs/usr/local/bin/"
"$CONTAINERD_BIN/ctr" oci spec \
  | jq '.hooks.createContainer[.hooks.createContainer | length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \
  | jq 'del(.process.rlimits)' > "$rootfs/etc/containerd/cri-base.json"
install -m 0755 "$RUNC_BIN/runc" "$rootfs/usr/local/sbin/runc"
install -m 0755 "$CRICTL_BIN/crictl" "$rootfs/usr/local/bin/"
mkdir -p "$rootfs/opt/cni/bin"
install -m 0755 "$CNI_BIN"/* "$rootfs/opt/cni/bin/"
install -m 0755 "$K8S_BIN/kubelet" "$K8S_BIN/kubectl" "$KIND_BIN/kubeadm" "$rootfs/usr/bin/"
echo "$KUBERNETES_VERSION" > "$rootfs/kind/version"

# The images kubeadm asks for, under its names, and the sandbox image of
# kind's containerd configuration.
images=$work/images
mkdir -p "$images"
path_env='"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]'
static_image() { # static_image NAME BINARY DEST CONFIG
  local name=$1 bin=$2 dest=$3 config=$4 r
  r=$work/image-root; rm -rf "$r"; mkdir -p "$r$(dirname "$dest")" "$r/tmp" "$r/etc"
  chmod 1777 "$r/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$r/etc/passwd"
  install -m 0755 "$bin" "$r$dest"
  oci_image "$r" "$name" "$config" "$images/$(basename "${name%%:*}")-$(echo "$name" | sha256sum | cut -c1-8).tar"
}
sandbox=$(sed -n 's/^[[:space:]]*sandbox_image = "\(.*\)"/\1/p' "$rootfs/etc/containerd/config.toml")
gcc -static -Os -s -o "$work/pause" "$e2e/images/pause.c"
for name in $("$KIND_BIN/kubeadm" config images list --kubernetes-version "$KUBERNETES_VERSION" 2>/dev/null) "$sandbox"; do
  base=${name##*/}; base=${base%%:*}
  case $base in
    kube-apiserver|kube-controller-manager|kube-scheduler)
      static_image "$name" "$K8S_BIN/$base" "/usr/local/bin/$base" "{$path_env}" ;;
    kube-proxy)
      oci_image "$proxy" "$name" "{$path_env}" "$images/kube-proxy.tar" ;;
    etcd)
      static_image "$name" "$ETCD_BIN/etcd" /usr/local/bin/etcd "{$path_env}" ;;
    coredns)
      static_image "$name" "$KIND_BIN/coredns" /coredns "{\"Entrypoint\":[\"/coredns\"],$path_env}" ;;
    pause)
      static_image "$name" "$work/pause" /pause '{"Entrypoint":["/pause"],"User":"65535:65535"}' ;;
    *) log "kubeadm asks for an image this script does not make: $name"; exit 1 ;;
  esac
  log "image $name"
done

# Import them into the node's containerd store with a containerd of the same
# version on its own socket, content only: the node's containerd unpacks them
# when a pod first uses them.
mkdir -p "$work/ctrd"
cat > "$work/ctrd/config.toml" <<TOML
version = 3
root = "$rootfs/var/lib/containerd"
state = "$work/ctrd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime", "io.containerd.cri.v1.images"]
[grpc]
  address = "$work/ctrd/sock"
TOML
"$CONTAINERD_BIN/containerd" --config "$work/ctrd/config.toml" > "$work/ctrd/log" 2>&1 &
ctrd_pid=$!
for _ in $(seq 100); do [[ -S $work/ctrd/sock ]] && break; sleep 0.1; done
for tar in "$images"/*.tar; do
  "$CONTAINERD_BIN/ctr" --address "$work/ctrd/sock" -n k8s.io images import \
    --label=io.cri-containerd.pinned=pinned --no-unpack "$tar" > /dev/null
done
"$CONTAINERD_BIN/ctr" --address "$work/ctrd/sock" -n k8s.io images ls -q | sed 's/^/[kind-node] in the node: /' >&2
kill "$ctrd_pid"; wait "$ctrd_pid" 2>/dev/null || true; ctrd_pid=
rm -rf "$rootfs/var/lib/containerd/io.containerd.runtime.v2.task" "$rootfs"/var/lib/containerd/tmpmounts

mkdir -p "$out"
tar -C "$rootfs" --numeric-owner --xattrs -cf "$out/rootfs.tar.tmp" .
mv "$out/rootfs.tar.tmp" "$out/rootfs.tar"
echo $((SECONDS - t0)) > "$out/build-seconds"
touch "$out/.done"
# Root file systems of other inputs are not used again.
for old in "$CACHE"/kind-node-*; do [[ $old == "$out" ]] || rm -rf "$old"; done
log "node root file system: $out/rootfs.tar ($(du -h "$out/rootfs.tar" | cut -f1), $((SECONDS - t0)) s)"
echo "$out/rootfs.tar"
