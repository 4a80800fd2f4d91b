# shellcheck shell=bash
# oci_image ROOTFS_DIR NAME CONFIG_JSON OUT_TAR
#   Writes a single-layer OCI image layout as a tarball: an uncompressed
#   layer (the sorted rootfs with fixed owner and mtime), the image config
#   (CONFIG_JSON is the "config" object: Entrypoint, Cmd, Env, ...), a
#   manifest and index.json whose manifest carries the annotation
#   io.containerd.image.name=NAME, so `ctr images import` (and
#   `kind load image-archive`) names the image. Same inputs, same bytes.
oci_image() {
  local rootfs=$1 name=$2 config=$3 out=$4 work
  work=$(mktemp -d)
  local blobs=$work/layout/blobs/sha256
  mkdir -p "$blobs"
  # shellcheck disable=SC2054 # commas belong to the --pax-option value
  local tarflags=(--sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime --format=posix)
  tar -C "$rootfs" "${tarflags[@]}" -cf "$work/layer.tar" .
  local layer_digest layer_size
  layer_digest=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
  layer_size=$(stat -c %s "$work/layer.tar")
  mv "$work/layer.tar" "$blobs/$layer_digest"

  jq -cnS --argjson cfg "$config" --arg diff "sha256:$layer_digest" '{
      architecture: "amd64", os: "linux", created: "1970-01-01T00:00:00Z",
      config: $cfg, rootfs: {type: "layers", diff_ids: [$diff]}}' > "$work/config.json"
  local config_digest config_size
  config_digest=$(sha256sum "$work/config.json" | cut -d' ' -f1)
  config_size=$(stat -c %s "$work/config.json")
  mv "$work/config.json" "$blobs/$config_digest"

  jq -cnS --arg cd "sha256:$config_digest" --argjson cs "$config_size" \
    --arg ld "sha256:$layer_digest" --argjson ls "$layer_size" '{
      schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $cd, size: $cs},
      layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar", digest: $ld, size: $ls}]}' \
    > "$work/manifest.json"
  local manifest_digest manifest_size
  manifest_digest=$(sha256sum "$work/manifest.json" | cut -d' ' -f1)
  manifest_size=$(stat -c %s "$work/manifest.json")
  mv "$work/manifest.json" "$blobs/$manifest_digest"

  jq -cnS --arg md "sha256:$manifest_digest" --argjson ms "$manifest_size" --arg name "$name" '{
      schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json",
        digest: $md, size: $ms,
        platform: {architecture: "amd64", os: "linux"},
        annotations: {"io.containerd.image.name": $name,
                      "org.opencontainers.image.ref.name": ($name | sub("^.*:"; ""))}}]}' \
    > "$work/layout/index.json"
  printf '{"imageLayoutVersion":"1.0.0"}' > "$work/layout/oci-layout"
  find "$work/layout" -exec touch -h -d @0 {} +
  tar -C "$work/layout" "${tarflags[@]}" -cf "$out.tmp" .
  mv "$out.tmp" "$out"
  rm -rf "$work"
}

# docker_archive OCI_TAR OUT_TAR
#   The single-image OCI layout OCI_TAR (as oci_image writes it) as a Docker
#   archive, the format of `docker save`, which dockerd 20.10's `docker
#   load` takes (it does not take OCI layouts): a manifest.json naming the
#   same config and layer blobs, tagged with the layout's image name.
docker_archive() {
  local oci=$1 out=$2 work manifest name
  work=$(mktemp -d)
  tar -C "$work" -xf "$oci"
  manifest=$work/blobs/$(jq -r '.manifests[0].digest | sub(":"; "/")' "$work/index.json")
  name=$(jq -r '.manifests[0].annotations["io.containerd.image.name"]' "$work/index.json")
  jq -c --arg name "$name" '[{Config: (.config.digest | "blobs/" + sub(":"; "/")), RepoTags: [$name],
    Layers: [.layers[].digest | "blobs/" + sub(":"; "/")]}]' "$manifest" > "$work/manifest.json"
  tar -C "$work" -cf "$out.tmp" manifest.json blobs
  mv "$out.tmp" "$out"
  rm -rf "$work"
}
