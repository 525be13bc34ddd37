# shellcheck shell=bash
# Images, pulled as in any cluster: a local OCI registry on loopback (Debian's docker-registry) is
# the only host both containerd instances pull `docker.io` and `registry.k8s.io` images from
# (there is no other network), and the images users type are built here without a container
# engine, from Debian packages: a root filesystem put together in a directory, one layer added
# with umoci, pushed with skopeo.
#
#   nginx:latest              Debian's nginx, serving its default page on port 80
#   busybox:latest            Debian's static busybox (sh, wget, nslookup, ...)
#   registry.k8s.io/pause:3.10  the pause binary of hack/lib/node-build.sh (the sandbox image)
#   registry.k8s.io/e2e-test-images/agnhost:<its VERSION>  the e2e suite's test server, from
#                             hack/lib/k8s-build.sh's agnhost (hack/lib/e2e-images.sh): the
#                             integration tests' UDP and HTTP endpoints, as upstream's tests use it
#   stackube/stackube:<version>  every Stackube binary (built by hack/devbox, image_stackube)
#
# An image is rebuilt only when its root filesystem changes: the filesystem is assembled (cheap:
# extracting cached .debs), hashed, and only a new hash is committed and pushed. Built images are
# kept in $IMAGES_CACHE (machine cache), so a wiped registry is refilled without rebuilding.

REGISTRY_ADDR=127.0.0.1:5100
REGISTRY_DIR=$TESTENV_ROOT/registry
# containerd's per-registry host configuration (config_path of its CRI registry plugin).
REGISTRY_HOSTS_DIR=$TESTENV_ROOT/registry/hosts.d
IMAGES_CACHE=${STACKUBE_CACHE:-/var/cache/stackube}/images
PAUSE_IMAGE=registry.k8s.io/pause:3.10

phase_registry() {
  phase "image registry (docker-registry on $REGISTRY_ADDR)"
  mkdir -p "$REGISTRY_DIR/data"
  chown docker-registry: "$REGISTRY_DIR/data"
  put_file "$REGISTRY_DIR/config.yml" 644 root:root <<EOF || true
# Written by hack/testenv: the test environment's registry, on loopback only, no auth.
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $REGISTRY_DIR/data
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
EOF
  local reg
  for reg in docker.io registry.k8s.io; do
    # The local registry is the only host: a missing image fails at once as "not found" instead
    # of after a connection attempt to the real registry, which this machine cannot reach.
    put_file "$REGISTRY_HOSTS_DIR/$reg/hosts.toml" 644 root:root <<EOF || true
# Written by hack/testenv: $reg images come from the local registry.
server = "http://$REGISTRY_ADDR"

[host."http://$REGISTRY_ADDR"]
  capabilities = ["pull", "resolve"]
EOF
  done
  svc_ensure registry --user docker-registry --watch "$REGISTRY_DIR/config.yml" -- \
    /usr/bin/docker-registry serve "$REGISTRY_DIR/config.yml" || true
  wait_until 30 "the registry" "$TESTENV_LOGS/registry.log" -- curl -sf "http://$REGISTRY_ADDR/v2/"
  phase_done "http://$REGISTRY_ADDR"
}

phase_images() {
  phase "images (Debian packages, umoci, skopeo; cached)"
  local log=$TESTENV_LOGS/images.log
  : >"$log"
  deb_versions nginx nginx-common busybox-static
  # agnhost's porter certificates come from the source of the release built (a cached module).
  local k8s_src
  k8s_src=$(go mod download -json "k8s.io/kubernetes@$("$K8S_BIN/kube-apiserver" --version | awk '{print $2}')" | jq -r .Dir)
  if ! { image_nginx && image_busybox && image_pause && image_e2e_agnhost "$K8S_BIN" "$k8s_src"; } >>"$log" 2>&1; then
    log "testenv: building or pushing an image failed"
    explain_failure "$log"
    exit 1
  fi
  phase_done "nginx busybox pause agnhost"
}

# image_build NAME REF ROOTFS CONFIG_ARGS...: commits ROOTFS as the one layer of image NAME (a
# cache of its own) unless that filesystem was built before, and pushes it to the registry as REF
# (docker.io/library/nginx:latest → library/nginx:latest) unless the registry has it. CONFIG_ARGS
# are umoci config options (entrypoint, cmd, ports...).
image_build() {
  local name=$1 ref=$2 rootfs=$3
  shift 3
  local layout=$IMAGES_CACHE/$name hash
  hash=$( {
    printf '%s\0' "$@"
    tar -C "$rootfs" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - .
  } | sha256sum | cut -c1-16)
  if [ ! -f "$layout/index.json" ] || ! umoci stat --image "$layout:$hash" >/dev/null 2>&1; then
    echo "image $name: building $hash"
    rm -rf "$layout"
    mkdir -p "$IMAGES_CACHE"
    umoci init --layout "$layout"
    umoci new --image "$layout:$hash"
    umoci insert --image "$layout:$hash" "$rootfs" /
    umoci config --image "$layout:$hash" --author=stackube-testenv --os=linux --architecture=amd64 "$@"
  fi
  rm -rf "$rootfs"
  local path=${ref#*/}
  if [ "$(cat "$layout/pushed-$hash" 2>/dev/null)" != "$(registry_digest "$path")" ] ||
    [ ! -s "$layout/pushed-$hash" ]; then
    echo "image $name: pushing $hash as $ref"
    skopeo copy --insecure-policy --dest-tls-verify=false -q \
      "oci:$layout:$hash" "docker://$REGISTRY_ADDR/$path"
    registry_digest "$path" >"$layout/pushed-$hash"
  fi
  IMAGE_DIGEST=$(cat "$layout/pushed-$hash")
}

# registry_digest REPO:TAG: the digest of the manifest the registry serves for it (empty if none).
registry_digest() {
  local repo=${1%:*} tag=${1##*:}
  curl -sfI -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://$REGISTRY_ADDR/v2/$repo/manifests/$tag" |
    awk 'tolower($1) == "docker-content-digest:" { sub(/\r$/, "", $2); print $2 }'
}

# rootfs_new DIR: an empty merged-/usr Debian root with the files every image needs.
rootfs_new() {
  local r=$1
  rm -rf "$r"
  mkdir -p "$r"/usr/{bin,sbin,lib/x86_64-linux-gnu,lib64} "$r"/{etc,tmp,root,var/log,var/run,proc,sys,dev}
  ln -s usr/bin "$r/bin"
  ln -s usr/sbin "$r/sbin"
  ln -s usr/lib "$r/lib"
  ln -s usr/lib64 "$r/lib64"
  chmod 1777 "$r/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$r/etc/passwd"
  printf 'root:x:0:\nwww-data:x:33:\nnogroup:x:65534:\n' >"$r/etc/group"
  printf 'hosts: files dns\n' >"$r/etc/nsswitch.conf"
}

# deb_versions PACKAGE...: this machine's candidate versions of the packages, into DEB_VERSION
# (one apt-cache call: each takes seconds here).
declare -A DEB_VERSION=()
deb_versions() {
  local p v
  while read -r p v; do DEB_VERSION[$p]=$v; done < <(
    apt-cache show --no-all-versions "$@" 2>/dev/null |
      awk '/^Package:/ {p = $2} /^Version:/ {print p, $2}'
  )
}

# deb_extract DIR PACKAGE...: the packages' files (their candidate versions, downloaded once into
# the cache) extracted into DIR.
deb_extract() {
  local dir=$1 p ver deb
  shift
  mkdir -p "$IMAGES_CACHE/debs" "$dir"
  for p in "$@"; do
    [ -n "${DEB_VERSION[$p]:-}" ] || deb_versions "$p"
    ver=${DEB_VERSION[$p]:-}
    [ -n "$ver" ] || { echo "no Debian package $p"; return 1; }
    deb=$(find "$IMAGES_CACHE/debs" -name "${p}_*${ver#*:}_*.deb" | head -n1)
    if [ -z "$deb" ]; then
      (cd "$IMAGES_CACHE/debs" && apt-get download -q "$p=$ver")
      deb=$(find "$IMAGES_CACHE/debs" -name "${p}_*${ver#*:}_*.deb" | head -n1)
    fi
    dpkg-deb -x "$deb" "$dir"
  done
}

# rootfs_libs ROOT FILE...: the shared libraries each ELF FILE loads (this machine's, which are
# Debian's) copied into ROOT at their paths.
rootfs_libs() {
  local r=$1 f lib
  shift
  for f in "$@"; do
    ldd "$f" 2>/dev/null | grep -q 'not a dynamic executable' && continue
    if ldd "$f" | grep -q 'not found'; then
      echo "$f needs libraries this machine lacks: $(ldd "$f" | grep 'not found' | tr -s ' \n' ' ')"
      return 1
    fi
    for lib in $(ldd "$f" | grep -oE '/[^ ]+'); do cp -L --parents --remove-destination "$lib" "$r"; done
  done
}

# rootfs_elf ROOT FILE...: this machine's ELF FILEs copied into ROOT at the same paths, with
# their libraries. A path ROOT has already (a busybox applet's link, /usr/bin/busybox: absolute)
# is replaced, never written through: through such a link cp would write this machine's file.
rootfs_elf() {
  local r=$1 f
  shift
  for f in "$@"; do cp -L --parents --remove-destination "$f" "$r"; done
  rootfs_libs "$r" "$@"
}

image_nginx() {
  local r=$IMAGES_CACHE/rootfs-nginx x=$IMAGES_CACHE/debs-nginx
  rootfs_new "$r"
  rm -rf "$x"
  deb_extract "$x" nginx nginx-common
  mkdir -p "$r/etc/nginx" "$r/usr/share/nginx/html" "$r/var/lib/nginx" "$r/var/log/nginx"
  cp "$x/etc/nginx/mime.types" "$r/etc/nginx/"
  cp "$x/usr/share/nginx/html/index.html" "$r/usr/share/nginx/html/"
  cp "$x/usr/sbin/nginx" "$r/usr/sbin/nginx"
  rootfs_libs "$r" "$x/usr/sbin/nginx"
  rm -rf "$x"
  # As the official image: the default page on port 80, logs to the container's output.
  cat >"$r/etc/nginx/nginx.conf" <<'EOF'
user www-data;
worker_processes 1;
error_log /dev/stderr notice;
pid /var/run/nginx.pid;
events { worker_connections 1024; }
http {
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  access_log /dev/stdout;
  sendfile on;
  server {
    listen 80 default_server;
    server_name _;
    location / { root /usr/share/nginx/html; index index.html; }
  }
}
EOF
  image_build nginx docker.io/library/nginx:latest "$r" \
    --config.cmd nginx --config.cmd -g --config.cmd 'daemon off;' \
    --config.exposedports 80/tcp --config.stopsignal SIGQUIT --config.env PATH=/usr/sbin:/usr/bin:/sbin:/bin
}

# busybox_into ROOT: Debian's static busybox as /bin/busybox with every applet linked to it.
busybox_into() {
  local r=$1 x=$IMAGES_CACHE/debs-busybox applet
  rm -rf "$x"
  deb_extract "$x" busybox-static
  cp "$x/bin/busybox" "$r/usr/bin/busybox"
  for applet in $("$x/bin/busybox" --list-full); do
    case $applet in */busybox) continue ;; esac
    applet=${applet#/}
    applet=${applet/#bin\//usr/bin/}
    applet=${applet/#sbin\//usr/sbin/}
    [ -e "$r/$applet" ] || [ -L "$r/$applet" ] || ln -s /usr/bin/busybox "$r/$applet"
  done
  rm -rf "$x"
}

image_busybox() {
  local r=$IMAGES_CACHE/rootfs-busybox
  rootfs_new "$r"
  busybox_into "$r"
  image_build busybox docker.io/library/busybox:latest "$r" \
    --config.cmd sh --config.env PATH=/usr/sbin:/usr/bin:/sbin:/bin
}

image_pause() {
  local r=$IMAGES_CACHE/rootfs-pause
  rm -rf "$r"
  mkdir -p "$r"
  install -m 0755 "$NODE_BIN/pause" "$r/pause"
  image_build pause "$PAUSE_IMAGE" "$r" --config.entrypoint /pause
}

IMAGE_SERVICES=(registry)

# image_stackube BIN_DIR VERSION: stackube/stackube:VERSION from the Stackube binaries in BIN_DIR
# (debug information stripped), with busybox (the init containers' sh, cp, mv) and the host tools
# kubestack's daemon (ovs-vsctl, ethtool), stackube-proxy (nft, conntrack) and stackube-csi's
# node plugin (rbd-fuse, losetup, mkfs, mount) run. Sets
# IMAGE_DIGEST.
STACKUBE_BINARIES=(stackube-controller stackube-auth kubestack stackube stackube-proxy stackube-dns stackube-csi)
image_stackube() {
  local bin_dir=$1 version=$2 r=$IMAGES_CACHE/rootfs-stackube b
  rootfs_new "$r"
  busybox_into "$r"
  mkdir -p "$r/usr/local/bin" "$r/etc/ssl/certs"
  for b in "${STACKUBE_BINARIES[@]}"; do
    objcopy --strip-debug "$bin_dir/$b" "$r/usr/local/bin/$b"
    rootfs_libs "$r" "$bin_dir/$b"
  done
  rootfs_elf "$r" /usr/bin/ovs-vsctl /usr/sbin/ethtool /usr/sbin/nft /usr/sbin/conntrack
  # stackube-csi's node plugin: Ceph images through rbd-fuse (with librados' crypto plugins),
  # loop devices, filesystems made, grown and mounted with the real tools (not busybox's).
  rootfs_elf "$r" /usr/bin/bash /usr/bin/rbd-fuse /usr/sbin/losetup /usr/sbin/blkid \
    /usr/sbin/mkfs.ext4 /usr/sbin/mkfs.xfs /usr/sbin/xfs_growfs /usr/sbin/resize2fs /usr/sbin/e2fsck \
    /usr/sbin/dumpe2fs /usr/sbin/blockdev \
    /usr/bin/mount /usr/bin/umount /usr/bin/findmnt /usr/lib/x86_64-linux-gnu/ceph/crypto/*.so
  [ ! -f /etc/mke2fs.conf ] || cp /etc/mke2fs.conf "$r/etc/"
  [ ! -f /etc/ssl/certs/ca-certificates.crt ] || cp /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/"
  image_build stackube "docker.io/stackube/stackube:$version" "$r" \
    --config.env PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --config.user 0:0 \
    --config.label "org.opencontainers.image.version=$version"
}
