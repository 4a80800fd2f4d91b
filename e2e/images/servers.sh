#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Build real server images from Debian's own binaries, without any registry:
#   nginx  /usr/sbin/nginx of Debian's nginx package, serving static files
#   redis  /usr/bin/redis-server of Debian's redis-server/redis-tools
# Each image holds the server binary, exactly the shared libraries its ELF
# loader resolves (taken from the .deb files, never from the host), the
# loader itself and a small configuration. The .debs come from the package
# registry through apt (`apt-get download`: nothing is installed on the host).
#
# Usage: e2e/images/servers.sh OUT_DIR
#        e2e/images/servers.sh --key     (print the cache key: package versions + sources)
#        e2e/images/servers.sh --cached CACHE_DIR
#          (build into CACHE_DIR/servers-<key> unless it is there, removing
#          other versions; print that directory)
# Writes OUT_DIR/{nginx,redis}.tar and OUT_DIR/servers.env (the image names).
# Reproducible: the same .deb versions give the same bytes (fixed mtimes and
# owners, sorted tar entries; see oci-image.sh).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/oci-image.sh
. "$here/oci-image.sh"

NGINX_PACKAGES=(nginx nginx-common)
REDIS_PACKAGES=(redis-server redis-tools)

# deb_closure PKG...: "name=version" of the packages and, recursively, of
# the shared-library packages (Section: libs) they depend on: every shared
# object the binaries load comes from one of them. One apt-cache call per
# level of the dependency tree; the versions are apt's candidates, which is
# what `apt-get download NAME=VERSION` fetches.
deb_closure() {
  local -A seen=()
  local level=("$@") next name version section deps d
  local roots=" $* "
  while [[ ${#level[@]} -gt 0 ]]; do
    next=()
    while IFS='|' read -r name version section deps; do
      [[ -n $name && -z ${seen[$name]:-} ]] || continue
      [[ $section == libs || $roots == *" $name "* ]] || continue
      seen[$name]=1
      echo "$name=$version"
      for d in $deps; do [[ -n ${seen[$d]:-} ]] || next+=("$d"); done
    done < <(apt-cache show --no-all-versions "${level[@]}" 2>/dev/null | awk '
      function flush() { if (name != "") print name "|" version "|" section "|" deps; name = version = section = deps = "" }
      /^Package: / { flush(); name = $2 }
      /^Version: / { version = $2 }
      /^Section: / { section = $2 }
      /^(Pre-)?Depends: / {
        line = $0; sub(/^[^:]*: /, "", line); n = split(line, alts, /[,|]/)
        for (i = 1; i <= n; i++) { a = alts[i]; gsub(/\([^)]*\)/, "", a); gsub(/[[:space:]]/, "", a); sub(/:any$/, "", a); deps = deps " " a }
      }
      END { flush() }')
    level=("${next[@]}")
  done | sort -u
}

all_packages() { deb_closure "${NGINX_PACKAGES[@]}" "${REDIS_PACKAGES[@]}"; }

cache_key() { { all_packages; cat "$here/servers.sh" "$here/oci-image.sh"; } | sha256sum | cut -c1-16; }
if [[ ${1:-} == --key ]]; then
  cache_key
  exit 0
fi
if [[ ${1:-} == --cached ]]; then
  cache=${2:?usage: servers.sh --cached CACHE_DIR}
  dir=$cache/servers-$(cache_key)
  if [[ ! -f $dir/servers.env ]]; then
    find "$cache" -maxdepth 1 -name 'servers-*' -exec rm -rf {} +
    "$here/servers.sh" "$dir" >&2
  fi
  echo "$dir"
  exit 0
fi
out=${1:?usage: servers.sh OUT_DIR | --key}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Download the exact versions named by the key, extract them side by side.
mapfile -t pkgs < <(all_packages)
mkdir -p "$work/debs" "$work/deb-root"
(cd "$work/debs" && apt-get download -q -o APT::Sandbox::User=root "${pkgs[@]}" > /dev/null)
for f in "$work"/debs/*.deb; do dpkg-deb -x "$f" "$work/deb-root"; done
DEB=$work/deb-root
LIBDIRS=$DEB/lib/x86_64-linux-gnu:$DEB/usr/lib/x86_64-linux-gnu
LOADER=$DEB/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
[[ -x $LOADER ]] || LOADER=$DEB/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2

# add_binary ROOT PATH: PATH (inside the .debs) into ROOT, with every shared
# object the loader resolves for it, the loader at its ELF path, and fail if
# any object would come from outside the .debs.
add_binary() {
  local root=$1 path=$2 line lib rel
  install -D -m 0755 "$DEB$path" "$root$path"
  while read -r line; do
    case $line in
      *"not found"*) echo "servers.sh: $path: $line" >&2; return 1 ;;
      *" => "*) lib=${line#* => }; lib=${lib%% (*} ;;
      /*) lib=${line%% (*} ;;
      *) continue ;;
    esac
    [[ $lib == "$DEB"/* ]] || { echo "servers.sh: $path loads $lib from outside the packages" >&2; return 1; }
    rel=${lib#"$DEB"}
    # Keep the soname path; copy the file it names.
    mkdir -p "$root$(dirname "$rel")"
    cp -L "$lib" "$root$rel"
  done < <("$LOADER" --library-path "$LIBDIRS" --list "$DEB$path")
  mkdir -p "$root/lib64"
  cp -L "$LOADER" "$root/lib64/ld-linux-x86-64.so.2"
}

base_root() {
  local root=$1
  mkdir -p "$root"/{etc,tmp,run,proc,sys,dev}
  chmod 1777 "$root/tmp"
  printf 'root:x:0:0:root:/root:/bin/false\nwww-data:x:33:33:www-data:/var/www:/bin/false\nredis:x:100:101::/data:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$root/etc/passwd"
  printf 'root:x:0:\nwww-data:x:33:\nredis:x:101:\nnobody:x:65534:\n' > "$root/etc/group"
  printf 'passwd: files\ngroup: files\nhosts: files\n' > "$root/etc/nsswitch.conf"
  printf '127.0.0.1 localhost\n' > "$root/etc/hosts"
}

nginx_version=$(dpkg-deb -f "$work"/debs/nginx_*.deb Version)
redis_version=$(dpkg-deb -f "$work"/debs/redis-server_*.deb Version)
NGINX_IMAGE=localhost/imprint-e2e/nginx:${nginx_version//[:~+]/_}
REDIS_IMAGE=localhost/imprint-e2e/redis:${redis_version//[:~+]/_}

# nginx: master as root (binds :80, starts workers as www-data), sendfile for
# static files, an access log written by the workers.
root=$work/nginx
base_root "$root"
add_binary "$root" /usr/sbin/nginx
install -D -m 0644 "$DEB/etc/nginx/mime.types" "$root/etc/nginx/mime.types"
mkdir -p "$root"/var/{lib/nginx,log/nginx} "$root/usr/share/nginx/html"
cat > "$root/etc/nginx/nginx.conf" <<'CONF'
user www-data;
worker_processes 2;
pid /run/nginx.pid;
daemon off;
error_log stderr notice;
events { worker_connections 512; }
http {
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  access_log /var/log/nginx/access.log;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 65;
  client_body_temp_path /var/lib/nginx/body;
  proxy_temp_path /var/lib/nginx/proxy;
  fastcgi_temp_path /var/lib/nginx/fastcgi;
  uwsgi_temp_path /var/lib/nginx/uwsgi;
  scgi_temp_path /var/lib/nginx/scgi;
  server {
    listen 80 default_server;
    root /usr/share/nginx/html;
    location / { }
  }
}
CONF
printf '<html><body>imprint e2e nginx</body></html>\n' > "$root/usr/share/nginx/html/index.html"
# 256 KiB of fixed bytes: large enough for sendfile over several writes.
head -c 262144 /dev/zero | tr '\0' 'x' > "$root/usr/share/nginx/html/big.txt"
oci_image "$root" "$NGINX_IMAGE" \
  '{"Entrypoint":["/usr/sbin/nginx"],"ExposedPorts":{"80/tcp":{}},"StopSignal":"SIGQUIT"}' "$out/nginx.tar"

# redis: no persistence, listens on every address of the pod.
root=$work/redis
base_root "$root"
add_binary "$root" /usr/bin/redis-check-rdb
ln -s redis-check-rdb "$root/usr/bin/redis-server"
mkdir -p "$root/data" "$root/etc/redis"
cat > "$root/etc/redis/redis.conf" <<'CONF'
bind 0.0.0.0
port 6379
protected-mode no
daemonize no
supervised no
save ""
appendonly no
dir /data
logfile ""
CONF
oci_image "$root" "$REDIS_IMAGE" \
  '{"Entrypoint":["/usr/bin/redis-server","/etc/redis/redis.conf"],"ExposedPorts":{"6379/tcp":{}}}' "$out/redis.tar"

printf 'NGINX_IMAGE=%s\nREDIS_IMAGE=%s\n' "$NGINX_IMAGE" "$REDIS_IMAGE" > "$out/servers.env"
echo "images in $out: $NGINX_IMAGE $REDIS_IMAGE" >&2
