#!/usr/bin/env bash
# Installs what building and testing imprint needs on Debian (12 or later),
# skipping what is already there. Needs root. Rust (cargo 1.95+) must be on PATH.
#   clang-19, llvm-19, libbpf-dev, bpftool: rebuild and check the BPF object
#   libseccomp-dev, pkg-config:              `imprint run` (libseccomp)
#   protobuf-compiler:                       containerd's API client (generated at build)
#   strace:                                  the test that compares with strace
#   libcap2-bin:                             setcap, for the file-capabilities test
#   the linter of the scripts:               package shellcheck
set -euo pipefail

packages=(clang-19 llvm-19 libbpf-dev bpftool libseccomp-dev pkg-config protobuf-compiler strace libcap2-bin shellcheck ca-certificates)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null; then
    echo "cargo is not on PATH: install Rust 1.95 or later (https://rustup.rs)" >&2
    exit 1
fi
