#!/usr/bin/env bash
# Rebuilds probes/imprint.bpf.o from probes/bpf/*.bpf.c with clang-19 and the
# BPF static linker (bpftool gen object). The output is deterministic: CI
# rebuilds it and fails when it differs from the committed object.
#   probes/build.sh           rebuild the committed object
#   probes/build.sh --check   rebuild into a temporary folder and compare
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
clang="${CLANG:-clang-19}"
bpftool="${BPFTOOL:-bpftool}"
arch="${IMPRINT_BPF_ARCH:-x86}"
out="$here/imprint.bpf.o"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Compile from the probes folder so the recorded compile directory is fixed.
cd "$here"
objects=()
for src in bpf/*.bpf.c; do
    name="$(basename "$src" .c)"
    "$clang" -target bpf -g -O2 -Wall -Werror -Wno-unused-function \
        -D__TARGET_ARCH_"$arch" -Ibpf \
        -fdebug-prefix-map="$here"=. -ffile-prefix-map="$here"=. \
        -c "$src" -o "$work/$name.o"
    objects+=("$work/$name.o")
done
"$bpftool" gen object "$work/imprint.bpf.o" "${objects[@]}"

if [[ "${1:-}" == "--check" ]]; then
    if ! cmp -s "$work/imprint.bpf.o" "$out"; then
        echo "probes/imprint.bpf.o is stale: run probes/build.sh and commit it" >&2
        exit 1
    fi
    echo "probes/imprint.bpf.o matches its sources"
else
    cp "$work/imprint.bpf.o" "$out"
    echo "wrote $out ($(stat -c %s "$out") bytes)"
fi
