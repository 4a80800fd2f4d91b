#!/usr/bin/env bash
# Quick start: builds imprint, records the bundled example workload, and
# shows its report and the profile and capabilities recommended from it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) -ne 0 ]]; then
    echo "imprint records with eBPF: run as root (sudo $0)" >&2
    exit 1
fi
scripts/install-deps.sh
cargo build --release -q -p imprint
imprint="${CARGO_TARGET_DIR:-target}/release/imprint"
out="${1:-imprint-demo}"
rm -rf "$out" /var/tmp/imprint-demo
mkdir -p "$out"

echo "== imprint record -- examples/demo/workload.sh"
"$imprint" record --output "$out/reports" -- examples/demo/workload.sh
report="$(ls "$out"/reports/*.json)"

echo
echo "== the report ($report), in short"
python3 - "$report" <<'PY' 2>/dev/null || cat "$report"
import json, sys
spec = json.load(open(sys.argv[1]))["spec"]
print("syscalls:", len(spec["syscalls"]["names"]), " ".join(spec["syscalls"]["names"][:12]), "...")
for e in spec["executables"]:
    print("exec:", e["path"], " ".join(e["args"][1:])[:60])
for f in spec["files"]:
    if not f["path"].startswith(("/usr/lib", "/etc/ld.so", "/usr/share/locale")):
        print("file:", f["path"], ",".join(f["access"]))
for c in spec["capabilities"]:
    print("capability:", c["name"], "needed" if c["needed"] else "not needed (probed or denied)")
PY

echo
echo "== imprint recommend --format caps"
"$imprint" recommend --format caps "$report" | tee "$out/capabilities.yaml"
echo "== imprint recommend --format oci  (written to $out/seccomp.json)"
"$imprint" recommend --format oci --output "$out/seccomp.json" "$report"
echo "== imprint recommend --format spo"
"$imprint" recommend --format spo --name demo-backup "$report" | tee "$out/seccompprofile.yaml" | head -20
echo "..."

echo
echo "== the workload again, enforced: imprint run --seccomp $out/seccomp.json --caps $out/capabilities.yaml"
rm -rf /var/tmp/imprint-demo
"$imprint" run --seccomp "$out/seccomp.json" --caps "$out/capabilities.yaml" -- examples/demo/workload.sh
