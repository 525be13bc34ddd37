#!/usr/bin/env bash
# Builds a peer that a benchmark compares Stackube with, from the Go module proxy, once per
# machine: the binary is kept in /var/cache/stackube/peers and its path printed.
#
#   hack/lib/peers-build.sh k8s-keystone-auth     cloud-provider-openstack's Keystone webhook
#   hack/lib/peers-build.sh kube-proxy            kube-proxy of the test environment's Kubernetes
#
# A throwaway module requires the peer's module and builds its command (`go install pkg@version`
# would need the proxy's version list, which it does not serve for every module).
#
# kube-proxy lives in k8s.io/kubernetes, whose go.mod points its k8s.io/<staging> modules at
# `./staging/...`: its module gets the same replace directives as hack/lib/k8s-build.sh's (each
# staging module at its v0.Y.Z release), in a module of its own, so that k8s-build.sh's module is
# left as it is; the Go module and build caches are shared, so after k8s-build.sh little is new.
# It is built as Kubernetes releases it: static (CGO_ENABLED=0), -trimpath, no DWARF, and the
# version ldflags that make `--version` truthful.
set -euo pipefail
name=${1:?usage: peers-build.sh k8s-keystone-auth|kube-proxy}
staging=false
case $name in
k8s-keystone-auth)
  module=k8s.io/cloud-provider-openstack
  version=v1.34.1
  package=$module/cmd/k8s-keystone-auth
  ;;
kube-proxy)
  module=k8s.io/kubernetes
  version=${STACKUBE_K8S_VERSION:-v1.34.4}
  package=$module/cmd/kube-proxy
  staging=true
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
  build=(go build -o "$out.tmp")
  {
    echo "module stackube.local/peers"
    echo
    echo "go 1.24"
    echo
    echo "require $module $version"
    if $staging; then
      upstream_mod=$(go mod download -json "$module@$version" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')
      [ -s "$upstream_mod" ] || { echo "peers-build.sh: could not fetch go.mod of $module@$version" >&2; exit 1; }
      staging_version="v0.${version#v1.}"
      echo
      echo "replace ("
      sed -n 's#^\s*\(k8s\.io/[a-z0-9-]*\) => \./staging/.*#\1#p' "$upstream_mod" |
        while read -r m; do printf '\t%s => %s %s\n' "$m" "$m" "$staging_version"; done
      echo ")"
    fi
  } >"$work/go.mod"
  if $staging; then
    minor=$(echo "$version" | cut -d. -f2)
    ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$version"
    ldflags="$ldflags -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
    ldflags="$ldflags -X k8s.io/component-base/version.gitTreeState=clean"
    build=(env CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out.tmp")
  fi
  cat >"$work/tools.go" <<GOSRC
//go:build tools

package tools

import _ "$package"
GOSRC
  echo "peers-build.sh: building $package@$version (Go module proxy)" >&2
  (cd "$work" && export GOFLAGS=-mod=mod && { ! $staging || go mod tidy >&2; } && "${build[@]}" "$package" >&2)
  mv "$out.tmp" "$out"
fi
echo "$out"
