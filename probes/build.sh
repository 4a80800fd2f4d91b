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
# The empty programs the overhead benchmark compares against.
"$clang" -target bpf -g -O2 -Wall -Werror -D__TARGET_ARCH_"$arch" \
    -fdebug-prefix-map="$here"=. -ffile-prefix-map="$here"=. \
    -c bench/empty.bpf.c -o "$work/empty.o"
"$bpftool" gen object "$work/empty.bpf.o" "$work/empty.o"

empty="$here/bench/empty.bpf.o"
if [[ "${1:-}" == "--check" ]]; then
    if ! cmp -s "$work/imprint.bpf.o" "$out" || ! cmp -s "$work/empty.bpf.o" "$empty"; then
        echo "probes/imprint.bpf.o or probes/bench/empty.bpf.o is stale: run probes/build.sh and commit it" >&2
        exit 1
    fi
    echo "probes/imprint.bpf.o and probes/bench/empty.bpf.o match their sources"
else
    cp "$work/imprint.bpf.o" "$out"
    cp "$work/empty.bpf.o" "$empty"
    echo "wrote $out ($(stat -c %s "$out") bytes) and $empty"
fi
