#!/usr/bin/env bash
# Builds the upstream Kubernetes end-to-end tooling for the pinned release from the Go module proxy
# into a machine-level cache, once, for hack/conformance:
#   e2e.test   the e2e suite (`go test -c k8s.io/kubernetes/test/e2e`), which runs on its own:
#              no ginkgo CLI is needed for a serial run
#   ginkgo     the ginkgo CLI at the version Kubernetes pins, for parallel runs (--parallel)
# (agnhost, the suite's test server, is built with the control plane by hack/lib/k8s-build.sh: the
# integration tests use it too.)
#
# How: a throwaway module of its own, next to hack/lib/k8s-build.sh's (whose go.mod this leaves
# alone), made the same way: it requires k8s.io/kubernetes at the pinned release and replaces every
# k8s.io/<staging> module with its v0.Y.Z release. The Go module and build caches are shared, so
# after k8s-build.sh only the test code is new.
#
# Usage: e2e-build.sh            builds what is missing, prints the bin directory
#        e2e-build.sh --cached   prints the bin directory if everything is built, else fails
set -euo pipefail

K8S_VERSION=${STACKUBE_K8S_VERSION:-v1.34.4}
CACHE=${STACKUBE_CACHE:-/var/cache/stackube}
BUILD="$CACHE/k8s/$K8S_VERSION/e2e"
BIN="$BUILD/bin"
BINARIES=(e2e.test ginkgo)

missing=()
for b in "${BINARIES[@]}"; do [ -x "$BIN/$b" ] || missing+=("$b"); done
if [ ${#missing[@]} -eq 0 ]; then echo "$BIN"; exit 0; fi
[ "${1:-}" != --cached ] || exit 1

command -v go >/dev/null || { echo "e2e-build: go is not installed (Go 1.24+ is needed)" >&2; exit 1; }
mkdir -p "$BUILD/src" "$BIN"
# One build at a time (CI starts one in the background, hack/conformance asks again): the second
# waits, then finds the binaries built.
exec 8>"$BUILD/.lock"
flock 8
missing=()
for b in "${BINARIES[@]}"; do [ -x "$BIN/$b" ] || missing+=("$b"); done
if [ ${#missing[@]} -eq 0 ]; then echo "$BIN"; exit 0; fi
cd "$BUILD/src"

upstream_dir=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",\?$/\1/p')
upstream_mod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')
if [ ! -s "$upstream_mod" ] || [ ! -d "$upstream_dir/test/e2e" ]; then
  echo "e2e-build: could not fetch k8s.io/kubernetes@$K8S_VERSION" >&2
  exit 1
fi
if [ ! -s go.mod ]; then
  staging_version="v0.${K8S_VERSION#v1.}"
  ginkgo_version=$(awk '$1=="github.com/onsi/ginkgo/v2"{print $2; exit}' "$upstream_mod")
  {
    echo "module stackube.local/e2e-build"
    echo
    echo "go 1.24.0"
    echo
    echo "require ("
    echo "	k8s.io/kubernetes $K8S_VERSION"
    echo "	github.com/onsi/ginkgo/v2 $ginkgo_version"
    echo ")"
    echo
    echo "replace ("
    sed -n 's#^\s*\(k8s\.io/[a-z0-9-]*\) => \./staging/.*#\1#p' "$upstream_mod" |
      while read -r m; do printf '\t%s => %s %s\n' "$m" "$m" "$staging_version"; done
    echo ")"
  } >go.mod.new
  cat >tools.go <<'GO'
//go:build tools

// Package tools pins the end-to-end commands this module builds; e2e.test itself is the test
// binary of k8s.io/kubernetes/test/e2e, built with `go test -c`.
package tools

import (
	_ "github.com/onsi/ginkgo/v2/ginkgo"
	_ "k8s.io/kubernetes/test/e2e"
	_ "k8s.io/kubernetes/test/e2e/network"
)
GO
  mv go.mod.new go.mod
fi

export GOFLAGS=-mod=mod
echo "e2e-build: resolving modules for the Kubernetes $K8S_VERSION e2e suite" >&2
go mod tidy >&2
minor=$(echo "$K8S_VERSION" | cut -d. -f2)
# As k8s-build.sh: small binaries, and a truthful version (the suite prints and compares it).
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION"
ldflags="$ldflags -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
ldflags="$ldflags -X k8s.io/component-base/version.gitTreeState=clean"
rm -rf "$BUILD/bin.partial"
mkdir -p "$BUILD/bin.partial"
for b in "${missing[@]}"; do
  echo "e2e-build: building $b (cached in $BIN)" >&2
  case $b in
  e2e.test)
    # The test binary's own dependencies (tests of a dependency are outside `go mod tidy`'s
    # reach) are added by -mod=mod.
    CGO_ENABLED=0 go test -c -trimpath -ldflags "$ldflags" -o "$BUILD/bin.partial/e2e.test" \
      k8s.io/kubernetes/test/e2e >&2
    ;;
  ginkgo)
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$BUILD/bin.partial/ginkgo" \
      github.com/onsi/ginkgo/v2/ginkgo >&2
    ;;
  esac
done
# Moved into place only once built, so an interrupted build never leaves a half-written binary.
for b in "${missing[@]}"; do mv -f "$BUILD/bin.partial/$b" "$BIN/$b"; done
rm -rf "$BUILD/bin.partial"
echo "$BIN"
