#!/bin/sh
# A small backup job, the bundled example for `imprint record`: it reads its
# settings, archives a folder, checksums the archive and hands it to another
# user, so the report shows files, programs and a capability (CAP_CHOWN).
set -eu
work="${1:-/var/tmp/imprint-demo}"
mkdir -p "$work/data"
printf 'retention=7\n' > "$work/settings.conf"
for i in 1 2 3; do echo "record $i" > "$work/data/part-$i.txt"; done
# shellcheck source=/dev/null
. "$work/settings.conf"
: "${retention:?settings.conf sets retention}"
tar -cf "$work/backup.tar" -C "$work" data
sha256sum "$work/backup.tar" > "$work/backup.tar.sha256"
chown 65534:65534 "$work/backup.tar"
echo "archived $(tar -tf "$work/backup.tar" | wc -l) entries, keeping $retention days"
