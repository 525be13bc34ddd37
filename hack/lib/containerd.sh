# shellcheck shell=bash
# The node's container runtime: containerd and runc from Debian with containerd's CRI plugin,
# driven by crictl the way a kubelet drives it. Pod networks come from the CNI configuration in
# $CNI_CONF_DIR (kubestack's, once installed; nothing else is put there), plugins from
# $CNI_BIN_DIR. Images come from the local registry (hack/lib/images.sh), the sandbox image too.
#
# Everything is the environment's own: containerd listens on its own socket, keeps its state
# under $TESTENV_ROOT, and pods' cgroups sit under one parent that `down` empties.

CONTAINERD_DIR=$TESTENV_ROOT/containerd
CONTAINERD_SOCK=/run/stackube-testenv/containerd.sock
CNI_BIN_DIR=$TESTENV_ROOT/cni/bin
CNI_CONF_DIR=$TESTENV_ROOT/cni/net.d
# The cgroup parent tests give their pod sandboxes (crictl's pod config linux.cgroup_parent).
POD_CGROUP_PARENT=/stackube-testenv-pods
NODE_BIN=""

phase_node_build() {
  phase "node tools (Go module proxy, cached)"
  local log=$TESTENV_LOGS/node-build.log
  mkdir -p "$TESTENV_LOGS"
  if ! NODE_BIN=$("$HACK_DIR/lib/node-build.sh" 2>"$log"); then
    log "testenv: building the node tools failed"
    explain_failure "$log"
    exit 1
  fi
  phase_done "$NODE_BIN"
}

CRICTL_CONFIG=$TESTENV_ROOT/crictl.yaml
crictl_() { CRI_CONFIG_FILE=$CRICTL_CONFIG "$NODE_BIN/crictl" "$@"; }

# containerd_config FILE ROOT STATE SOCK CNI_CONF_DIR SHIM_CGROUP [GVISOR_BIN RUNSC_CONFIG]: the
# configuration of one
# containerd. Its shims move to SHIM_CGROUP (runc's ShimCgroup option; it must exist in every
# hierarchy: cgroups_make), out of containerd's own: stopping containerd (an outage, an upgrade)
# then leaves them, and their containers, running, and the restarted containerd takes them back.
# GVISOR_BIN and RUNSC_CONFIG, when given: gVisor's runsc and shim, behind a second runtime
# handler, `runsc`.
containerd_config() {
  local file=$1 root=$2 state=$3 sock=$4 conf_dir=$5 shim_cgroup=$6 runsc=${7:-} runsc_config=${8:-}
  local sandboxed=""
  if [ -n "$runsc" ]; then
    # gVisor, through its own shim (hack/lib/gvisor-build.sh), configured by RUNSC_CONFIG. containerd
    # 1.6 takes a shim's absolute path as its runtime type (it ignores runtime_path).
    sandboxed="
    [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runsc]
      runtime_type = \"$runsc/containerd-shim-runsc-v1\"
      [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runsc.options]
        TypeUrl = \"io.containerd.runsc.v1.options\"
        ConfigPath = \"$runsc_config\""
  fi
  put_file "$file" 644 root:root <<EOF || true
# Written by hack/testenv: one of the test environment's containerd instances.
version = 2
root = "$root"
state = "$state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$sock"

[ttrpc]
  address = "$sock.ttrpc"

[debug]
  address = "$sock.debug"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # Sandboxes ask for oom_score_adj -998, which this machine does not allow (not even root may
  # lower it): runc then dies ("can't get final child's PID from pipe"). Clamp it to ours.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        ShimCgroup = "$shim_cgroup"$sandboxed
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$REGISTRY_HOSTS_DIR"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$conf_dir"
    max_conf_num = 1
EOF
}

# cri_ SOCK ARGS...: crictl against the containerd listening on SOCK.
cri_() {
  local sock=$1
  shift
  "$NODE_BIN/crictl" --runtime-endpoint "unix://$sock" --image-endpoint "unix://$sock" "$@"
}

# containerd_start NAME CONFIG SOCK: starts (or keeps) one instance, waits for its CRI and pulls
# the sandbox image (from the local registry), so that the first pod does not wait for it.
containerd_start() {
  local name=$1 config=$2 sock=$3
  svc_ensure "$name" --watch "$config" -- /usr/bin/containerd --config "$config" || true
  wait_until 60 "$name's CRI" "$TESTENV_LOGS/$name.log" -- cri_ "$sock" info
  if ! cri_ "$sock" inspecti "$PAUSE_IMAGE" >/dev/null 2>&1; then
    run_logged "$TESTENV_LOGS/$name-pull.log" "$TESTENV_LOGS/$name.log" -- cri_ "$sock" pull "$PAUSE_IMAGE"
  fi
}

# The tests' runtime: pods made with crictl, as a kubelet would make them, with the CNI
# configuration a test puts in $CNI_CONF_DIR. No kubelet drives it (a kubelet kills the sandboxes
# it did not make): the node's kubelet has its own instance (hack/lib/node.sh).
phase_containerd() {
  phase "containerd (CRI) and runc"
  mkdir -p "$CONTAINERD_DIR" "$CNI_BIN_DIR" "$CNI_CONF_DIR" "$(dirname "$CONTAINERD_SOCK")"
  install -m 0755 "$NODE_BIN/loopback" "$CNI_BIN_DIR/loopback"
  cgroups_make "$POD_CGROUP_PARENT/shims"
  containerd_config "$CONTAINERD_DIR/config.toml" "$CONTAINERD_DIR/root" \
    /run/stackube-testenv/containerd "$CONTAINERD_SOCK" "$CNI_CONF_DIR" "$POD_CGROUP_PARENT/shims"
  put_file "$CRICTL_CONFIG" 644 root:root <<EOF || true
runtime-endpoint: unix://$CONTAINERD_SOCK
image-endpoint: unix://$CONTAINERD_SOCK
timeout: 60
EOF
  containerd_start containerd "$CONTAINERD_DIR/config.toml" "$CONTAINERD_SOCK"
  phase_done "unix://$CONTAINERD_SOCK"
}

# cgroups_make PATH: the cgroup PATH in every v1 hierarchy. A new cpuset cgroup has no CPUs and
# no memory nodes, and refuses processes (ENOSPC) until it has: each level of PATH gets its
# parent's.
cgroups_make() {
  local h dir parent level f
  for h in /sys/fs/cgroup/*/; do
    case $h in */unified/) continue ;; esac
    mkdir -p "$h${1#/}"
  done
  dir=/sys/fs/cgroup/cpuset
  [ -d "$dir" ] || return 0
  local IFS=/
  for level in ${1#/}; do
    parent=$dir
    dir=$dir/$level
    for f in cpuset.cpus cpuset.mems; do
      [ -n "$(cat "$dir/$f" 2>/dev/null)" ] || cat "$parent/$f" >"$dir/$f"
    done
  done
}

# cgroup_empty PARENT: kills whatever still runs under the pods' cgroup PARENT (their shims
# included) and removes its cgroups, in every v1 hierarchy (runc makes a pod's cgroups in all of
# them).
cgroup_empty() {
  local parent=${1#/} pids h
  if [ -d "/sys/fs/cgroup/pids/$parent" ]; then
    pids=$(find "/sys/fs/cgroup/pids/$parent" -name cgroup.procs -exec cat {} + 2>/dev/null || true)
    # shellcheck disable=SC2086 # one pid per word
    [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
  fi
  for h in /sys/fs/cgroup/*/; do
    [ -d "$h$parent" ] || continue
    find "$h$parent" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
}

# Before containerd stops: every pod sandbox removed (their network torn down through CNI) and
# whatever still runs in the pods' cgroup parent killed, so that nothing outlives `down`.
containerd_remove_pods() {
  if svc_running containerd && [ -n "$NODE_BIN" ]; then
    crictl_ rmp --all --force >/dev/null 2>&1 || true
  fi
  cgroup_empty "$POD_CGROUP_PARENT"
}

CONTAINERD_SERVICES=(containerd)
