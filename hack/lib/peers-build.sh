#!/usr/bin/env bash
# Builds a peer that a benchmark compares Stackube with, from the Go module proxy, once per
# machine: the binary is kept in /var/cache/stackube/peers and its path printed.
#
#   hack/lib/peers-build.sh k8s-keystone-auth     cloud-provider-openstack's Keystone webhook
#   hack/lib/peers-build.sh kube-proxy            kube-proxy of the test environment's Kubernetes
#   hack/lib/peers-build.sh coredns               CoreDNS (the cluster DNS stackube-dns replaces)
#   hack/lib/peers-build.sh dnsperf               not a peer: DNS-OARC's load generator, which the
#                                                 DNS benchmark drives both servers with; Debian's
#                                                 package, installed with apt-get when missing
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
#
# CoreDNS's main package is its module's root; it is built as its Makefile builds releases
# (CGO_ENABLED=0, -trimpath, -s -w), with every plugin of its plugin.cfg (those of the release's
# `coredns` binary, `kubernetes` and `cache` among them).
set -euo pipefail
name=${1:?usage: peers-build.sh k8s-keystone-auth|kube-proxy|coredns|dnsperf}
staging=false
ldflags="" # set: built static, -trimpath, with these ldflags, as the peer's releases are
case $name in
dnsperf)
  # A Debian package, not built: the test environment's packages (hack/lib/openstack.sh) are the
  # services it runs, this is a benchmark's tool only, installed the first time one asks for it.
  if ! command -v dnsperf >/dev/null; then
    echo "peers-build.sh: installing dnsperf (Debian package)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends dnsperf >&2 ||
      { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends dnsperf >&2; }
  fi
  command -v dnsperf
  exit 0
  ;;
coredns)
  module=github.com/coredns/coredns
  version=${STACKUBE_COREDNS_VERSION:-v1.14.3}
  package=$module
  ldflags="-s -w -X $module/coremain.GitCommit=$version"
  ;;
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
  fi
  if [ -n "$ldflags" ]; then
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
