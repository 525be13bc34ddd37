#!/usr/bin/env bash
# Builds the Kubernetes CSI sidecars stackube-csi runs beside (ADR 10) and csi-sanity, from the Go
# module proxy, into a machine-level cache, once:
#   csi-provisioner      external-provisioner v5.3.0
#   csi-attacher         external-attacher v4.13.0
#   csi-resizer          external-resizer v1.14.0
#   csi-snapshotter      external-snapshotter v8.3.0 (the sidecar)
#   snapshot-controller  external-snapshotter v8.3.0 (the cluster's VolumeSnapshot controller)
#   csi-sanity           csi-test v5.6.0 (the CSI conformance suite, run against the driver's socket)
# Each binary is kept as <name>-<version> in the bin directory, with <name> linked to it, so that
# a new pin is built beside the old one and the unversioned name is always the pinned build.
# hack/lib/csi-images.sh turns the sidecars into their upstream images.
#
# How: a throwaway module per upstream module (`go install pkg@version` would need the proxy's
# version list, which it does not serve for every module), kept in the cache so that a rebuild
# resolves nothing again. It requires the upstream module at its tag and copies the replace
# directives of upstream's go.mod that name a released module (a dependency's replaces are
# ignored by Go; copied, the dependency graph is upstream's own). external-snapshotter's
# `client/v8 => ./client` names its own subdirectory and is dropped: client/v8 comes at the
# v8.2.0 upstream requires (the tree of v8.3.0's client/ is the same as client/v8.2.0's, and
# there is no client/v8.3.0 tag, so the proxy has no such version).
# Built as upstream releases are, static (CGO_ENABLED=0), with the version its --version prints,
# plus -trimpath and no symbol tables or DWARF. One build after another: each takes both cores.
#
# Usage: csi-build.sh            builds what is missing, prints the bin directory
#        csi-build.sh --cached   prints the bin directory if everything is built, else fails
set -euo pipefail

CACHE=${STACKUBE_CACHE:-/var/cache/stackube}
BUILD="$CACHE/csi"
BIN="$BUILD/bin"
# name                module                                            tag      package              version variable
TOOLS=(
  "csi-provisioner     github.com/kubernetes-csi/external-provisioner/v5 v5.3.0   cmd/csi-provisioner     main.version"
  "csi-attacher        github.com/kubernetes-csi/external-attacher/v4    v4.13.0  cmd/csi-attacher        main.version"
  "csi-resizer         github.com/kubernetes-csi/external-resizer        v1.14.0  cmd/csi-resizer         main.version"
  "csi-snapshotter     github.com/kubernetes-csi/external-snapshotter/v8 v8.3.0   cmd/csi-snapshotter     main.version"
  "snapshot-controller github.com/kubernetes-csi/external-snapshotter/v8 v8.3.0   cmd/snapshot-controller main.version"
  "csi-sanity          github.com/kubernetes-csi/csi-test/v5             v5.6.0   cmd/csi-sanity          main.VERSION"
)

# built NAME VERSION: the pinned build is there and NAME points at it.
built() { [ -x "$BIN/$1-$2" ] && [ "$(readlink "$BIN/$1" 2>/dev/null)" = "$1-$2" ]; }

all_built() {
  local t name module version
  for t in "${TOOLS[@]}"; do
    read -r name module version _ <<<"$t"
    built "$name" "$version" || return 1
  done
}

if all_built; then echo "$BIN"; exit 0; fi
[ "${1:-}" != --cached ] || exit 1

command -v go >/dev/null || { echo "csi-build: go is not installed (Go 1.26+ is needed)" >&2; exit 1; }
mkdir -p "$BIN" "$BUILD/src"
# One build at a time (two callers at once: the second waits, then finds the binaries built).
exec 8>"$BUILD/.lock"
flock 8
if all_built; then echo "$BIN"; exit 0; fi

export GOFLAGS=-mod=mod
for t in "${TOOLS[@]}"; do
  read -r name module version package var <<<"$t"
  built "$name" "$version" && continue
  if [ ! -x "$BIN/$name-$version" ]; then
    # One module per upstream module and tag: external-snapshotter's two commands share one.
    src="$BUILD/src/$(basename "${module%/v[0-9]*}")-$version"
    if [ ! -s "$src/go.mod" ]; then
      upstream_mod=$(go mod download -json "$module@$version" | jq -r '.GoMod // empty')
      [ -s "$upstream_mod" ] || { echo "csi-build: could not fetch $module@$version" >&2; exit 1; }
      rm -rf "$src.new"
      mkdir -p "$src.new"
      (
        cd "$src.new"
        # go 1.26.0: the newest go line of the modules built (external-attacher v4.13.0's).
        printf 'module stackube.local/csi-build\n\ngo 1.26.0\n\nrequire %s %s\n' "$module" "$version" >go.mod
        go mod edit -json "$upstream_mod" |
          jq -r '.Replace[]? | select(.New.Version != null)
                 | "-replace=\(.Old.Path)\(if .Old.Version then "@" + .Old.Version else "" end)=\(.New.Path)@\(.New.Version)"' |
          xargs -r go mod edit
      )
      rm -rf "$src"
      mv "$src.new" "$src"
    fi
    echo "csi-build: building $name $version ($module/$package, cached in $BIN)" >&2
    # Written beside its final name and moved there only once built: an interrupted build never
    # leaves a half-written binary.
    (cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X $var=$version" \
      -o "$BIN/.$name-$version.partial" "$module/$package" >&2)
    mv -f "$BIN/.$name-$version.partial" "$BIN/$name-$version"
  fi
  ln -sfn "$name-$version" "$BIN/$name"
done
echo "$BIN"
