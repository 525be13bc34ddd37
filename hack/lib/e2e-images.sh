# shellcheck shell=bash
# The test images the upstream conformance tests hack/conformance runs need, built without a
# container engine the way hack/lib/images.sh builds the environment's own (whose helpers this
# file uses: source images.sh first), and pushed under the exact names Kubernetes' e2e suite
# uses (test/utils/image/manifest.go), which containerd resolves to the local registry like every
# registry.k8s.io image, so no KUBE_TEST_REPO_LIST is needed:
#
#   registry.k8s.io/e2e-test-images/agnhost:2.56
#       the real agnhost, built from source (hack/lib/e2e-build.sh), with what upstream's
#       Dockerfile adds to it (test/images/agnhost/Dockerfile): dig/nslookup/host, curl,
#       nc (netcat-openbsd), ss/ip, iperf, bash, the porter certificates, /uploads, the
#       agnhost-2 link, user 1000 and group 50000; plus getent, dash as sh, and busybox for the
#       rest (seq, sleep, wget...: upstream's base is Alpine, whose userland is busybox)
#   registry.k8s.io/e2e-test-images/jessie-dnsutils:1.7
#       the DNS tests' second querier: Debian's dnsutils (dig, nslookup, host), getent, dash as
#       sh (as in Debian) and busybox for the probe loop's seq and sleep. Upstream's image also
#       carries a CoreDNS binary, used only by tests outside the conformance set
#
# Differences from upstream worth knowing: both images are Debian bookworm's glibc and tools
# (upstream's agnhost is Alpine/musl: the DNS tests' two queriers are meant to differ in libc);
# sh is dash, because Debian's busybox sh runs its own applets (nc, ip, nslookup) before the real
# tools on PATH, which Alpine's busybox sh finds.
#
# As in images.sh, the root filesystem is assembled each time (from cached .debs) and committed
# and pushed only when its hash changed.

E2E_AGNHOST_IMAGE=registry.k8s.io/e2e-test-images/agnhost
E2E_DNSUTILS_IMAGE=registry.k8s.io/e2e-test-images/jessie-dnsutils:1.7

# deb_tools STAGE PACKAGE...: the PACKAGEs extracted into STAGE with the library packages they
# depend on that this machine lacks (the libraries it has are copied from it, as rootfs_libs
# does). Their files are then installed with deb_elf.
deb_tools() {
  local stage=$1 p
  shift
  local want=("$@") next=("$@") level closure
  # The closure is resolved once per package list and state of apt and dpkg (resolving it takes
  # seconds per level, on every `up`), then read from the image cache.
  closure=$IMAGES_CACHE/deb-closure-$({
    printf '%s\n' "$@"
    stat -c '%n %Y %s' /var/lib/dpkg/status /var/lib/apt/lists/*_Packages* 2>/dev/null
  } | sha256sum | cut -c1-16)
  if [ -s "$closure" ]; then
    mapfile -t want <"$closure"
    next=()
  fi
  # Breadth first, one apt-cache call per level (each takes seconds here), following only the
  # packages this machine lacks: an installed package's dependencies are installed too.
  while [ ${#next[@]} -gt 0 ]; do
    level=("${next[@]}")
    next=()
    while read -r p; do
      case $p in
      lib* | *-libs) ;;
      *) continue ;;
      esac
      case " ${want[*]} " in *" $p "*) continue ;; esac
      dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' && continue
      want+=("$p")
      next+=("$p")
    done < <(apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
      --no-replaces --no-enhances "${level[@]}" 2>/dev/null |
      awk '$1 ~ /^\|?(Pre)?Depends:$/ && $2 !~ /^</ {print $2}' | sort -u)
  done
  [ -s "$closure" ] || { mkdir -p "$IMAGES_CACHE" && printf '%s\n' "${want[@]}" >"$closure"; }
  rm -rf "$stage"
  deb_versions "${want[@]}"
  deb_extract "$stage" "${want[@]}"
}

# deb_elf ROOT STAGE PATH...: the files at PATH (absolute, as in the package) copied from STAGE into
# ROOT, with the shared libraries they load: from STAGE when a package brought them, else this
# machine's.
deb_elf() {
  local r=$1 stage=$2 f lib libpath
  shift 2
  libpath=$stage/usr/lib/x86_64-linux-gnu:$stage/lib/x86_64-linux-gnu
  for f in "$@"; do
    mkdir -p "$r$(dirname "$f")"
    cp -a "$stage$f" "$r$f"
    [ -L "$stage$f" ] && continue
    LD_LIBRARY_PATH=$libpath ldd "$stage$f" 2>/dev/null | grep -q 'not a dynamic executable' && continue
    if LD_LIBRARY_PATH=$libpath ldd "$stage$f" | grep -q 'not found'; then
      echo "$f needs libraries neither its packages nor this machine have:" \
        "$(LD_LIBRARY_PATH=$libpath ldd "$stage$f" | grep 'not found' | tr -s ' \n' ' ')"
      return 1
    fi
    for lib in $(LD_LIBRARY_PATH=$libpath ldd "$stage$f" | grep -oE '/[^ ]+'); do
      case $lib in
      "$stage"/*)
        mkdir -p "$r$(dirname "${lib#"$stage"}")"
        cp -L "$lib" "$r${lib#"$stage"}"
        ;;
      *) cp -L --parents --remove-destination "$lib" "$r" ;;
      esac
    done
  done
}

# busybox_unshadow ROOT NAME...: removes busybox's applet links named NAME, wherever they are on
# PATH, so that the real tool of that name (in another bin directory) is the one found.
busybox_unshadow() {
  local r=$1 name d
  shift
  for name in "$@"; do
    for d in usr/local/sbin usr/local/bin usr/sbin usr/bin; do
      [ "$(readlink "$r/$d/$name" 2>/dev/null)" != /usr/bin/busybox ] || rm "$r/$d/$name"
    done
  done
}

# image_e2e_agnhost BIN_DIR SRC_DIR: agnhost:<VERSION of the source> from BIN_DIR/agnhost and the
# source tree of k8s.io/kubernetes (for the porter certificates). Sets IMAGE_DIGEST.
image_e2e_agnhost() {
  local bin_dir=$1 src=$2 r=$IMAGES_CACHE/rootfs-e2e-agnhost x=$IMAGES_CACHE/debs-e2e-agnhost version
  version=$(cat "$src/test/images/agnhost/VERSION")
  rootfs_new "$r"
  deb_tools "$x" bind9-dnsutils bind9-host curl netcat-openbsd iproute2 iperf bash libc-bin dash
  deb_elf "$r" "$x" /usr/bin/dig /usr/bin/nslookup /usr/bin/host /usr/bin/curl /bin/nc.openbsd \
    /bin/ip /bin/ss /usr/bin/iperf /bin/bash /usr/bin/getent /bin/dash
  ln -s dash "$r/usr/bin/sh"
  ln -s /bin/nc.openbsd "$r/usr/bin/nc"
  ln -s /usr/bin/iperf "$r/usr/bin/iperf2"
  mkdir -p "$r/usr/local/bin" && ln -s /usr/bin/iperf "$r/usr/local/bin/iperf"
  rm -rf "$x"
  # busybox last: every applet that no Debian tool above provides. Not its sh: Debian's busybox
  # runs its own applets before anything on PATH (its nc, ip, nslookup instead of the real ones
  # the tests expect, which Alpine's busybox sh would find); dash is sh, as in Debian.
  busybox_into "$r"
  busybox_unshadow "$r" dig nslookup host curl nc ip ss iperf bash getent
  install -m 0755 "$bin_dir/agnhost" "$r/agnhost"
  ln -s agnhost "$r/agnhost-2"
  install -m 0644 "$src/test/images/agnhost/porter/localhost.crt" "$src/test/images/agnhost/porter/localhost.key" "$r/"
  mkdir -p "$r/uploads"
  # Upstream: adduser -u 1000 user-defined-in-image, addgroup -g 50000 group-defined-in-image.
  printf 'user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\n' >>"$r/etc/passwd"
  printf 'user-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n' >>"$r/etc/group"
  mkdir -p "$r/home/user-defined-in-image" && chown 1000:1000 "$r/home/user-defined-in-image"
  local port ports=()
  for port in 80 8080 8081 9376 5000; do ports+=(--config.exposedports "$port/tcp"); done
  image_build e2e-agnhost "$E2E_AGNHOST_IMAGE:$version" "$r" \
    --config.entrypoint /agnhost --config.cmd pause "${ports[@]}" \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --config.label "org.opencontainers.image.version=$version"
}

# image_e2e_dnsutils: jessie-dnsutils:1.7 from Debian's dnsutils. Sets IMAGE_DIGEST.
image_e2e_dnsutils() {
  local r=$IMAGES_CACHE/rootfs-e2e-dnsutils x=$IMAGES_CACHE/debs-e2e-dnsutils
  rootfs_new "$r"
  deb_tools "$x" bind9-dnsutils bind9-host libc-bin dash
  deb_elf "$r" "$x" /usr/bin/dig /usr/bin/nslookup /usr/bin/host /usr/bin/getent /bin/dash
  ln -s dash "$r/usr/bin/sh"
  rm -rf "$x"
  busybox_into "$r"
  busybox_unshadow "$r" dig nslookup host getent
  image_build e2e-jessie-dnsutils "$E2E_DNSUTILS_IMAGE" "$r" \
    --config.cmd sh --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
}
