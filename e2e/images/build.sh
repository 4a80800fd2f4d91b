#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Build the e2e images as OCI tarballs, without any registry:
#   busybox  the static busybox of Debian's busybox-static, one link per applet
#   pause    the pod sandbox process, pause.c built with gcc -static
#   apiclient  kube-api-get (Go, static): an in-cluster client of the API
# Usage: e2e/images/build.sh OUT_DIR
# Writes OUT_DIR/{busybox,pause,apiclient}.tar and OUT_DIR/images.env (the
# image names). Reproducible: fixed mtimes and owners, sorted tar entries.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/oci-image.sh
. "$here/oci-image.sh"
out=${1:?usage: build.sh OUT_DIR}
mkdir -p "$out"

BUSYBOX_BIN=${BUSYBOX_BIN:-/bin/busybox}
bb_version=$("$BUSYBOX_BIN" 2>&1 | sed -n '1s/^BusyBox v\([0-9.]*\).*/\1/p')
BUSYBOX_IMAGE=localhost/imprint-e2e/busybox:$bb_version
PAUSE_IMAGE=localhost/imprint-e2e/pause:1.0
APICLIENT_IMAGE=localhost/imprint-e2e/apiclient:1.0

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# busybox
root=$work/busybox
mkdir -p "$root"/{bin,etc,tmp,root,proc,sys,dev,var/www}
chmod 1777 "$root/tmp"
install -m 0755 "$BUSYBOX_BIN" "$root/bin/busybox"
for applet in $("$BUSYBOX_BIN" --list); do
  [[ $applet == busybox ]] || ln -sf busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$root/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' > "$root/etc/group"
oci_image "$root" "$BUSYBOX_IMAGE" \
  '{"Cmd":["/bin/sh"],"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}' \
  "$out/busybox.tar"

# pause
root=$work/pause
mkdir -p "$root"
gcc -static -Os -s -o "$root/pause" "$here/pause.c"
oci_image "$root" "$PAUSE_IMAGE" '{"Entrypoint":["/pause"],"User":"65535:65535"}' "$out/pause.tar"

# apiclient
root=$work/apiclient
mkdir -p "$root"
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
(cd "$here/kube-api-get" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local \
  "$GO" build -trimpath -ldflags "-s -w" -o "$root/kube-api-get" .)
oci_image "$root" "$APICLIENT_IMAGE" '{"Entrypoint":["/kube-api-get"],"User":"65534:65534"}' "$out/apiclient.tar"

printf 'BUSYBOX_IMAGE=%s\nPAUSE_IMAGE=%s\nAPICLIENT_IMAGE=%s\n' \
  "$BUSYBOX_IMAGE" "$PAUSE_IMAGE" "$APICLIENT_IMAGE" > "$out/images.env"
echo "images in $out: $BUSYBOX_IMAGE $PAUSE_IMAGE $APICLIENT_IMAGE" >&2
