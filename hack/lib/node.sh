# shellcheck shell=bash
# The cluster's node: a kubelet of the pinned release (built with the control plane) on a containerd
# instance of its own, so that pods made with `kubectl` run. The tests' crictl runtime
# (hack/lib/containerd.sh) stays apart: a kubelet kills every sandbox of its runtime that it did not
# make.
#
# Settings this machine needs (cgroup v1 only, swap allowed, no systemd): `cgroupDriver: cgroupfs`,
# `failCgroupV1: false` (said explicitly: 1.35 flips the default), `failSwapOn: false`. Pods'
# cgroups sit under one root, $NODE_CGROUP_ROOT, that `down` empties. The pod network is kubestack,
# the only CNI configuration: its daemon listens on $NODE_KUBESTACK_SOCKET when hack/devbox (or a
# test) runs it; until then a pod's ADD fails and the kubelet retries, as in any cluster whose CNI
# DaemonSet is not up yet. The kubelet authenticates and authorizes every request (webhook, no
# anonymous access); kube-apiserver reaches it over TLS with its client certificate.

NODE_DIR=$TESTENV_ROOT/node
NODE_NAME=${STACKUBE_NODE_NAME:-$(hostname | tr '[:upper:]' '[:lower:]')}
NODE_CONTAINERD_SOCK=/run/stackube-testenv/node/containerd.sock
NODE_CNI_CONF_DIR=$NODE_DIR/cni/net.d
# The kubelet's FlexVolume plugins (stackube-csi-node installs cinder~flexvolume_driver there).
NODE_FLEX_DIR=$NODE_DIR/volume-plugins
NODE_KUBESTACK_SOCKET=/run/stackube-testenv/node/kubestack.sock
NODE_CGROUP_ROOT=/stackube-testenv-node
# The cluster DNS Service's address (stackube-dns, once it runs).
NODE_CLUSTER_DNS=10.96.0.10
NODE_IP=""

# The address the node registers with: the source address of the host's default route (never
# loopback, which the kubelet refuses). STACKUBE_NODE_IP overrides it.
node_ip() {
  if [ -n "${STACKUBE_NODE_IP:-}" ]; then echo "$STACKUBE_NODE_IP"; return; fi
  ip -4 -o route get 192.0.2.255 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -1
}

# The kubelet's client certificate (user system:node:NAME in group system:nodes, which the Node
# authorizer serves) and its serving certificate (kube-apiserver's client certificate for it:
# k8s_pki_kubelet_client). The marker names the node and its address: a renamed or readdressed node gets new ones.
node_pki() {
  local id
  id=node-pki-$(printf '%s %s' "$NODE_NAME" "$NODE_IP" | sha256sum | cut -c1-12)
  marker "$id" && return 0
  k8s_cert kubelet-client "system:node:$NODE_NAME" system:nodes
  k8s_cert kubelet-serving "system:node:$NODE_NAME" "" "IP:$NODE_IP,DNS:$NODE_NAME"
  k8s_kubeconfig kubelet kubelet-client
  mark "$id"
}

# Pods' cgroups: one root in every v1 hierarchy (the kubelet requires it to exist), and beside
# the pods the containerd shims' (see containerd_config).
node_cgroups() {
  cgroups_make "$NODE_CGROUP_ROOT"
  cgroups_make "$NODE_CGROUP_ROOT/shims"
}

kubelet_config() {
  put_file "$NODE_DIR/kubelet.yaml" 644 root:root <<EOF || true
# Written by hack/testenv: the node's kubelet.
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
healthzBindAddress: 127.0.0.1
healthzPort: 10248
readOnlyPort: 0
tlsCertFile: $K8S_PKI/kubelet-serving.crt
tlsPrivateKeyFile: $K8S_PKI/kubelet-serving.key
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $K8S_PKI/ca.crt
authorization:
  mode: Webhook
containerRuntimeEndpoint: unix://$NODE_CONTAINERD_SOCK
cgroupDriver: cgroupfs
cgroupRoot: $NODE_CGROUP_ROOT
failCgroupV1: false
failSwapOn: false
clusterDNS:
- $NODE_CLUSTER_DNS
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
podLogsDir: $NODE_DIR/pod-logs
volumePluginDir: $NODE_FLEX_DIR
# A volume that needs attaching (stackube-csi's) is mounted only once the kubelet has reported it
# in use (node.status.volumesInUse), and the kubelet computes that status every
# nodeStatusUpdateFrequency: upstream's 10 s made a pod with a new volume wait up to 10 s for
# nothing (docs/csi.md). 1 s costs a status computation a second from the kubelet's cache; the
# status is still posted only when it changes, or every nodeStatusReportFrequency (upstream's 5 min,
# said explicitly: set alone, the update frequency would become the report frequency too).
nodeStatusUpdateFrequency: 1s
nodeStatusReportFrequency: 5m
staticPodPath: ""
# One small disk for everything: evict only when it is really full, never collect images (they
# would be pulled back from the local registry, but a test's pod would pay for it).
evictionHard:
  memory.available: 200Mi
  nodefs.available: 2%
  imagefs.available: 2%
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
rotateCertificates: false
serverTLSBootstrap: false
EOF
}

# Pods' network namespaces are mounted in /run/netns; kubestack's pod sees the ones made after it
# started only if that directory is a shared mount (its volume propagates HostToContainer), as
# `ip netns add` makes it. Nothing here may have made it one yet.
node_netns_shared() {
  mkdir -p /run/netns
  mountpoint -q /run/netns || mount --rbind /run/netns /run/netns
  [ "$(findmnt -no PROPAGATION /run/netns)" = shared ] || mount --make-rshared /run/netns
}

phase_node() {
  phase "node: kubelet and its containerd"
  NODE_IP=$(node_ip)
  [ -n "$NODE_IP" ] ||
    die "no address for the node: the host has no IPv4 default route; set STACKUBE_NODE_IP to one of its addresses"
  mkdir -p "$NODE_DIR/containerd" "$NODE_CNI_CONF_DIR" "$NODE_DIR/kubelet" "$NODE_DIR/pod-logs" "$NODE_FLEX_DIR" \
    "$(dirname "$NODE_CONTAINERD_SOCK")"
  node_pki
  node_cgroups
  node_netns_shared
  # gVisor, the handler of RuntimeClass gvisor (deploy/runtime-classes.yaml): runsc on the
  # systrap platform (no /dev/kvm needed), its sandboxes' state under the node's run directory.
  [ -n "${GVISOR_BUILD_PID:-}" ] && { wait "$GVISOR_BUILD_PID" || die "building gVisor failed: see $TESTENV_LOGS/gvisor-build.log"; }
  GVISOR_BIN=$("$HACK_DIR/lib/gvisor-build.sh" 2>>"$TESTENV_LOGS/gvisor-build.log") ||
    die "building gVisor failed: see $TESTENV_LOGS/gvisor-build.log"
  put_file "$NODE_DIR/runsc.toml" 644 root:root <<EOF || true
binary_name = "$GVISOR_BIN/runsc"
root = "/run/stackube-testenv/node/runsc"
[runsc_config]
  platform = "systrap"
EOF
  containerd_config "$NODE_DIR/containerd/config.toml" "$NODE_DIR/containerd/root" \
    /run/stackube-testenv/node/containerd "$NODE_CONTAINERD_SOCK" "$NODE_CNI_CONF_DIR" "$NODE_CGROUP_ROOT/shims" \
    "$GVISOR_BIN" "$NODE_DIR/runsc.toml"
  # kubestack is the node's only network. A test (or hack/devbox) that runs its own daemon puts
  # a configuration that sorts first beside it.
  put_file "$NODE_CNI_CONF_DIR/90-kubestack.conflist" 644 root:root <<EOF || true
{"cniVersion": "1.0.0", "name": "stackube", "plugins": [{"type": "kubestack", "daemonSocket": "$NODE_KUBESTACK_SOCKET"}]}
EOF
  containerd_start containerd-node "$NODE_DIR/containerd/config.toml" "$NODE_CONTAINERD_SOCK"
  kubelet_config
  svc_ensure kubelet --watch "$NODE_DIR/kubelet.yaml" --watch "$K8S_DIR/kubelet.kubeconfig" -- \
    "$K8S_BIN/kubelet" --config "$NODE_DIR/kubelet.yaml" --kubeconfig "$K8S_DIR/kubelet.kubeconfig" \
    --root-dir "$NODE_DIR/kubelet" --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" || true
  wait_until 120 "node $NODE_NAME Ready" "$TESTENV_LOGS/kubelet.log" -- node_ready
  phase_done "node $NODE_NAME ($NODE_IP), unix://$NODE_CONTAINERD_SOCK"
}

node_ready() {
  curl -sf --cacert "$K8S_PKI/ca.crt" --cert "$K8S_PKI/admin.crt" --key "$K8S_PKI/admin.key" \
    "$K8S_APISERVER/api/v1/nodes/$NODE_NAME" |
    jq -e 'any(.status.conditions[]?; .type == "Ready" and .status == "True")' >/dev/null
}

# After the kubelet stopped, before its containerd stops: every pod sandbox removed (their
# network torn down through CNI), then whatever still runs under the pods' cgroup root killed.
node_remove_pods() {
  if svc_running containerd-node && [ -n "$NODE_BIN" ]; then
    cri_ "$NODE_CONTAINERD_SOCK" rmp --all --force >/dev/null 2>&1 || true
  fi
  # The root goes too; `up` makes it again (node_cgroups).
  cgroup_empty "$NODE_CGROUP_ROOT"
}

# Stopped in this order by `down`: the kubelet first (or it would restart the pods), its runtime last.
NODE_SERVICES=(kubelet containerd-node)
