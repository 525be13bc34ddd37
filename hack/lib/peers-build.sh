#!/usr/bin/env bash
# Builds a peer that a benchmark compares Stackube with, from the Go module proxy, once per
# machine: the binary is kept in /var/cache/stackube/peers and its path printed.
#
#   hack/lib/peers-build.sh k8s-keystone-auth     cloud-provider-openstack's Keystone webhook
#
# A throwaway module requires the peer's module and builds its command (`go install pkg@version`
# would need the proxy's version list, which it does not serve for every module).
set -euo pipefail
name=${1:?usage: peers-build.sh k8s-keystone-auth}
case $name in
k8s-keystone-auth)
  module=k8s.io/cloud-provider-openstack
  version=v1.34.1
  package=$module/cmd/k8s-keystone-auth
  ;;
*)
  echo "peers-build.sh: unknown peer $name" >&2
  exit 2
  ;;
esac
out=/var/cache/stackube/peers/$name-$version
if [ ! -x "$out" ]; then
  mkdir -p "$(dirname "$out")"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  cat >"$work/go.mod" <<GOMOD
module stackube.local/peers

go 1.24

require $module $version
GOMOD
  cat >"$work/tools.go" <<GOSRC
//go:build tools

package tools

import _ "$package"
GOSRC
  echo "peers-build.sh: building $package@$version (Go module proxy)" >&2
  (cd "$work" && GOFLAGS=-mod=mod go build -o "$out.tmp" "$package" >&2)
  mv "$out.tmp" "$out"
fi
echo "$out"
