#!/usr/bin/env bash
# Builds the pinned Kubernetes control-plane binaries and the kubelet (and etcd, kubectl) from the
# Go module proxy into a machine-level cache, so later runs (and later clones on the same machine)
# never rebuild.
#
# How: a throwaway module requires k8s.io/kubernetes at the pinned release and replaces every
# k8s.io/<staging> module (listed as `=> ./staging/...` in upstream's go.mod) with its v0.Y.Z
# release. etcd is built in the same module from go.etcd.io/etcd/server/v3/etcdmain at the version
# Kubernetes itself pins, so one dependency graph serves all binaries. agnhost, the e2e suite's test
# server (test/images/agnhost), is built here too: the integration tests run it as a pod
# (hack/lib/e2e-images.sh makes its image), and hack/conformance uses it.
#
# Usage: k8s-build.sh            builds what is missing, prints the bin directory
set -euo pipefail

K8S_VERSION=${STACKUBE_K8S_VERSION:-v1.34.4}
CACHE=${STACKUBE_CACHE:-/var/cache/stackube}
BUILD="$CACHE/k8s/$K8S_VERSION"
BIN="$BUILD/bin"
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet etcd agnhost)

missing=()
for b in "${BINARIES[@]}"; do [ -x "$BIN/$b" ] || missing+=("$b"); done
if [ ${#missing[@]} -eq 0 ]; then echo "$BIN"; exit 0; fi

command -v go >/dev/null || { echo "k8s-build: go is not installed (Go 1.24+ is needed)" >&2; exit 1; }
mkdir -p "$BUILD/src/cmd/etcd" "$BIN"
cd "$BUILD/src"

staging_version="v0.${K8S_VERSION#v1.}"
if [ ! -s go.mod ]; then
  upstream_mod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')
  [ -s "$upstream_mod" ] || { echo "k8s-build: could not fetch go.mod of k8s.io/kubernetes@$K8S_VERSION" >&2; exit 1; }
  etcd_version=$(awk '$1=="go.etcd.io/etcd/server/v3"{print $2; exit}' "$upstream_mod")
  {
    echo "module stackube.local/k8s-build"
    echo
    echo "go 1.24.0"
    echo
    echo "require ("
    echo "	k8s.io/kubernetes $K8S_VERSION"
    echo "	go.etcd.io/etcd/server/v3 $etcd_version"
    echo ")"
    echo
    echo "replace ("
    sed -n 's#^\s*\(k8s\.io/[a-z0-9-]*\) => \./staging/.*#\1#p' "$upstream_mod" |
      while read -r m; do printf '\t%s => %s %s\n' "$m" "$m" "$staging_version"; done
    echo ")"
  } > go.mod.new
  cat > cmd/etcd/main.go <<'GO'
// Command etcd is upstream etcd's server entry point, built at the version Kubernetes pins.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  cat > tools.go <<'GO'
//go:build tools

// Package tools pins the Kubernetes commands this module builds.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/test/images/agnhost"
)
GO
  mv go.mod.new go.mod
fi

# A module made before the kubelet was built here pins the commands without it.
grep -q 'cmd/kubelet"' tools.go || sed -i 's#^\t_ "k8s.io/kubernetes/cmd/kubectl"$#&\n\t_ "k8s.io/kubernetes/cmd/kubelet"#' tools.go
# And one made before agnhost was, without agnhost.
grep -q 'images/agnhost"' tools.go || sed -i 's#^\t_ "k8s.io/kubernetes/cmd/kubelet"$#&\n\t_ "k8s.io/kubernetes/test/images/agnhost"#' tools.go

export GOFLAGS=-mod=mod
echo "k8s-build: resolving modules for Kubernetes $K8S_VERSION" >&2
go mod tidy >&2
pkgs=()
for b in "${missing[@]}"; do
  case $b in
  etcd) pkgs+=(./cmd/etcd) ;;
  agnhost) pkgs+=(k8s.io/kubernetes/test/images/agnhost) ;;
  *) pkgs+=("k8s.io/kubernetes/cmd/$b") ;;
  esac
done
echo "k8s-build: building ${missing[*]} (cached in $BIN)" >&2
# -trimpath and no DWARF keep the binaries small; the version ldflags make `--version` truthful.
minor=$(echo "$K8S_VERSION" | cut -d. -f2)
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION"
ldflags="$ldflags -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
ldflags="$ldflags -X k8s.io/component-base/version.gitTreeState=clean"
# agnhost reports the version of the image the e2e suite names (main.Version; no other command
# here has that variable, and -X skips a variable a binary does not have).
upstream_dir=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",\?$/\1/p')
ldflags="$ldflags -X main.Version=$(cat "$upstream_dir/test/images/agnhost/VERSION")"
rm -rf "$BUILD/bin.partial"; mkdir -p "$BUILD/bin.partial"
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$BUILD/bin.partial/" "${pkgs[@]}" >&2
# Move into place only once built, so an interrupted build never leaves a half-written binary behind.
for b in "${missing[@]}"; do mv -f "$BUILD/bin.partial/$b" "$BIN/$b"; done
rm -rf "$BUILD/bin.partial"
echo "$BIN"
