#!/usr/bin/env bash
# Builds gVisor's runsc and its containerd shim (containerd-shim-runsc-v1) from the Go module
# proxy into a machine-level cache: the node's sandboxed runtime (RuntimeClass gvisor,
# docs/runtimes.md). Debian's runsc (a 2022 build) cannot serve here: it takes every network
# namespace for the host's on this kernel, and has no containerd shim of its own.
#
# How: a throwaway module requires gvisor.dev/gvisor at the pinned version (the module proxy serves
# the buildable `go` branch of gVisor as pseudo-versions) and builds both commands, static.
#
# Usage: gvisor-build.sh   builds what is missing, prints the bin directory
set -euo pipefail

GVISOR_VERSION=${STACKUBE_GVISOR_VERSION:-v0.0.0-20260905035102-160fafc42237}
CACHE=${STACKUBE_CACHE:-/var/cache/stackube}
BUILD="$CACHE/gvisor/$GVISOR_VERSION"
BIN="$BUILD/bin"
BINARIES=(runsc containerd-shim-runsc-v1)

missing=()
for b in "${BINARIES[@]}"; do [ -x "$BIN/$b" ] || missing+=("$b"); done
if [ ${#missing[@]} -eq 0 ]; then echo "$BIN"; exit 0; fi

command -v go >/dev/null || { echo "gvisor-build: go is not installed (Go 1.26+ is needed)" >&2; exit 1; }
mkdir -p "$BUILD/src" "$BIN"
cd "$BUILD/src"
if [ ! -s go.mod ]; then
  printf 'module stackube.local/gvisor-build\n\ngo 1.26.0\n\nrequire gvisor.dev/gvisor %s\n' "$GVISOR_VERSION" >go.mod
  cat >tools.go <<'GO'
//go:build tools

// Package tools pins the gVisor commands this module builds.
package tools

import (
	_ "gvisor.dev/gvisor/runsc"
	_ "gvisor.dev/gvisor/shim"
)
GO
fi
export GOFLAGS=-mod=mod
echo "gvisor-build: resolving modules for gVisor $GVISOR_VERSION" >&2
# The shim is built from a copy of the module (71 MB; a build overlay cannot replace a file of the
# module cache) with two changes to pkg/shim/v1/manager.go, for this node:
# - containerd 1.6 (Debian's) reads a shim's address from its output as a bare string, where
#   today's shims print containerd 2's JSON bootstrap parameters: this one prints the address;
# - this machine forbids lowering a process's oom_score_adj (root lacks CAP_SYS_RESOURCE; the
#   node's containerd clamps its sandboxes' for the same reason, restrict_oom_score_adj), and the
#   shim gives up when it cannot lower its own: it keeps containerd's instead.
if [ ! -d gvisor ]; then
  dir=$(go mod download -json "gvisor.dev/gvisor@$GVISOR_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",\?$/\1/p')
  rm -rf gvisor.partial && cp -r "$dir" gvisor.partial && chmod -R u+w gvisor.partial
  manager=gvisor.partial/pkg/shim/v1/manager.go
  bootstrap='return shim.BootstrapParams{Version: 2, Address: address, Protocol: "ttrpc"}, nil'
  oom='return shim.BootstrapParams{}, fmt.Errorf("failed to set OOM Score on shim: %w", err)'
  if [ "$(grep -cF "$bootstrap" "$manager")" != 2 ] || ! grep -qF "$oom" "$manager"; then
    echo "gvisor-build: $manager is not what this build patches" >&2
    exit 1
  fi
  sed -i -e "s|$bootstrap|fmt.Print(address); os.Exit(0); return shim.BootstrapParams{}, nil|" \
    -e "s|$oom|_ = err|" "$manager"
  mv gvisor.partial gvisor
fi
grep -q '^replace gvisor.dev/gvisor' go.mod || printf '\nreplace gvisor.dev/gvisor => ./gvisor\n' >>go.mod
go mod tidy >&2
rm -rf "$BUILD/bin.partial"; mkdir -p "$BUILD/bin.partial"
for b in "${missing[@]}"; do
  case $b in
  runsc) pkg=gvisor.dev/gvisor/runsc ;;
  containerd-shim-runsc-v1) pkg=gvisor.dev/gvisor/shim ;;
  esac
  echo "gvisor-build: building $b (cached in $BIN)" >&2
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$BUILD/bin.partial/$b" "$pkg" >&2
done
# Moved into place only once built: an interrupted build never leaves half a binary behind.
for b in "${missing[@]}"; do mv -f "$BUILD/bin.partial/$b" "$BIN/$b"; done
rm -rf "$BUILD/bin.partial"
echo "$BIN"
