#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# The imprint image as an OCI tarball, without Docker or a registry: the one
# `imprint` binary, exactly the shared libraries it loads (ldd: libseccomp,
# libgcc_s, libm, libc) and the ELF loader, an /etc/passwd, nothing else.
# What the Dockerfile at the repository root builds for users, assembled from
# a binary that is already built (release in CI, debug here).
#
# Usage: e2e/images/imprint.sh IMPRINT_BIN OUT_DIR
#        (IMPRINT_BIN may also come from the environment: imprint.sh "" OUT_DIR)
# Writes OUT_DIR/imprint.tar and OUT_DIR/imprint.env (IMPRINT_IMAGE, and its
# repository and tag for Helm's image.repository / image.tag).
# The binary is copied without its debug sections (objcopy --strip-debug;
# IMPRINT_IMAGE_STRIP=0 keeps them). The tag is the version plus the first
# 12 hex digits of the binary's digest; same binary and libraries, same bytes.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/oci-image.sh
. "$here/oci-image.sh"
bin=${1:-${IMPRINT_BIN:-}}
out=${2:?usage: imprint.sh IMPRINT_BIN OUT_DIR}
[[ -x $bin ]] || { echo "imprint.sh: no executable imprint binary at '$bin'" >&2; exit 1; }
REPOSITORY=${IMPRINT_IMAGE_REPOSITORY:-localhost/imprint/imprint}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

root=$work/rootfs
mkdir -p "$root"/{usr/local/bin,etc,tmp,proc,sys,dev,run}
chmod 1777 "$root/tmp"
# A copy first: the binary may be rebuilt while we read it.
cp "$bin" "$work/imprint"
if [[ ${IMPRINT_IMAGE_STRIP:-1} != 0 ]]; then
  objcopy --strip-debug "$work/imprint" "$root/usr/local/bin/imprint"
else
  cp "$work/imprint" "$root/usr/local/bin/imprint"
fi
chmod 0755 "$root/usr/local/bin/imprint"

# Every shared object the loader resolves, at the path it resolves it to,
# and the loader at the binary's ELF interpreter path.
interp=$(readelf -l "$work/imprint" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
while read -r line; do
  case $line in
    *"not found"*) echo "imprint.sh: $line" >&2; exit 1 ;;
    *" => "*) lib=${line#* => }; lib=${lib%% (*} ;;
    /*) lib=${line%% (*} ;;
    *) continue ;;
  esac
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done < <(ldd "$work/imprint")
if [[ -n $interp && ! -e $root$interp ]]; then
  mkdir -p "$root$(dirname "$interp")"
  cp -L "$interp" "$root$interp"
fi
printf 'root:x:0:0:root:/root:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$root/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' > "$root/etc/group"

version=$("$work/imprint" --version 2>/dev/null | awk '{print $2}')
digest=$(sha256sum "$root/usr/local/bin/imprint" | cut -c1-12)
TAG=${IMPRINT_IMAGE_TAG:-${version:-0.0.0}-$digest}
IMAGE=$REPOSITORY:$TAG
oci_image "$root" "$IMAGE" \
  '{"Entrypoint":["/usr/local/bin/imprint"],"Cmd":["--help"],"Env":["PATH=/usr/local/bin:/usr/bin:/bin"]}' \
  "$out/imprint.tar"
printf 'IMPRINT_IMAGE=%s\nIMPRINT_IMAGE_REPOSITORY=%s\nIMPRINT_IMAGE_TAG=%s\n' \
  "$IMAGE" "$REPOSITORY" "$TAG" > "$out/imprint.env"
echo "image in $out: $IMAGE ($(du -m "$out/imprint.tar" | cut -f1) MiB)" >&2
