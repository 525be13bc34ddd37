# shellcheck shell=bash
# The images of the CSI sidecars stackube-csi runs beside (ADR 10), built without a container
# engine from the binaries of hack/lib/csi-build.sh, with hack/lib/images.sh's helpers (source
# images.sh first), and pushed under their upstream names, which containerd resolves to the local
# registry like every registry.k8s.io image, so upstream manifests run unchanged:
#
#   registry.k8s.io/sig-storage/csi-provisioner:v5.3.0
#   registry.k8s.io/sig-storage/csi-attacher:v4.13.0
#   registry.k8s.io/sig-storage/csi-resizer:v1.14.0
#   registry.k8s.io/sig-storage/csi-snapshotter:v8.3.0
#   registry.k8s.io/sig-storage/snapshot-controller:v8.3.0
#
# The tag is the version the binary reports (`--version`), so csi-build.sh's pins are the only
# place versions are written. Each image is what upstream's Dockerfile makes of
# gcr.io/distroless/static: one static binary at /<name>, the entrypoint, on a root with /tmp,
# the accounts root, nobody and nonroot (65532), and the CA certificates. As in images.sh, the
# root filesystem is assembled each time and committed and pushed only when its hash changed.

CSI_IMAGE_REPO=registry.k8s.io/sig-storage
CSI_SIDECARS=(csi-provisioner csi-attacher csi-resizer csi-snapshotter snapshot-controller)
# The pushed digest of each image, by binary name (image_build's IMAGE_DIGEST of each).
declare -A CSI_IMAGE_DIGEST=()

# image_csi_sidecars BIN_DIR: every image of CSI_SIDECARS from BIN_DIR/<name> (csi-build.sh's bin
# directory). Sets CSI_IMAGE_DIGEST.
image_csi_sidecars() {
  local bin_dir=$1 b version r
  for b in "${CSI_SIDECARS[@]}"; do
    # `<argv0> <version>`, set at build time by -X main.version.
    version=$("$bin_dir/$b" --version | awk '{print $NF}')
    case $version in
    v[0-9]*) ;;
    *) echo "image $b: $bin_dir/$b --version reports no version ('$version')"; return 1 ;;
    esac
    # Nothing but the binary goes in: it has to load no library. (ldd fails on a static
    # executable, hence no pipe: under pipefail its status would be the pipe's.)
    case $(ldd "$bin_dir/$b" 2>&1 || true) in
    *'not a dynamic executable'*) ;;
    *) echo "image $b: $bin_dir/$b is not a static executable"; return 1 ;;
    esac
    r=$IMAGES_CACHE/rootfs-sig-storage-$b
    rm -rf "$r"
    mkdir -p "$r"/{etc/ssl/certs,tmp,root,home/nonroot}
    chmod 1777 "$r/tmp"
    chmod 0700 "$r/root"
    chown 65532:65532 "$r/home/nonroot"
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$r/etc/passwd"
    printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"$r/etc/group"
    [ ! -f /etc/ssl/certs/ca-certificates.crt ] || cp /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/"
    install -m 0755 "$bin_dir/$b" "$r/$b"
    image_build "sig-storage-$b" "$CSI_IMAGE_REPO/$b:$version" "$r" \
      --config.entrypoint "/$b" \
      --config.label "org.opencontainers.image.version=$version"
    CSI_IMAGE_DIGEST[$b]=$IMAGE_DIGEST
  done
}
