# shellcheck shell=bash
# Shared helpers of hack/testenv: phases with timings, files written only when they change,
# bounded waits that explain a failure, and services supervised through a cgroup each.
#
# Why cgroups: OpenStack services spawn helpers that leave their parent's process group and
# session (neutron agents start `sudo neutron-rootwrap-daemon` and privsep helpers; the rootwrap
# daemon starts dnsmasq and haproxy, which daemonize). A child always inherits its parent's
# cgroup, so `down` can stop exactly the processes a service started, and nothing else, by
# reading the service's `cgroup.procs`. The machine has cgroup v1; the `pids` hierarchy is used.

TESTENV_ROOT=${STACKUBE_TESTENV_ROOT:-/var/lib/stackube-testenv}
TESTENV_RUN=$TESTENV_ROOT/run       # pid files
TESTENV_LOGS=$TESTENV_ROOT/logs     # stdout/stderr of every service we start
TESTENV_STATE=$TESTENV_ROOT/state   # markers of one-time bootstrap steps, generated ids
TESTENV_CGROUP=${STACKUBE_TESTENV_CGROUP:-/sys/fs/cgroup/pids/stackube-testenv}
DEBIAN_PY=/usr/bin/python3           # Debian's python: pyenv's python3 cannot import OpenStack modules

_t0=$(date +%s.%N)
_phase_name=""
_phase_start=""

log() { printf '%s\n' "$*" >&2; }
die() {
  log "testenv: error: $*"
  exit 1
}

# phase NAME: starts timing a phase; the previous one (if any) is reported as done.
phase() {
  phase_done
  _phase_name=$1
  _phase_start=$(date +%s.%N)
  printf '==> %s\n' "$_phase_name" >&2
}

# phase_done [NOTE]: reports the running phase with its duration.
phase_done() {
  [ -n "$_phase_name" ] || return 0
  local now
  now=$(date +%s.%N)
  local line
  line=$(printf '    %-44s %6.1f s  (total %6.1f s)%s' "$_phase_name" \
    "$(echo "$now - $_phase_start" | bc)" "$(echo "$now - $_t0" | bc)" "${1:+  $1}")
  printf '%s\n' "$line" >&2
  [ -n "${TESTENV_TIMINGS:-}" ] && printf '%s\n' "$line" >>"$TESTENV_TIMINGS"
  _phase_name=""
}

# put_file PATH MODE OWNER: writes stdin to PATH only when the content differs, so that a second
# `up` changes nothing. Returns 0 when the file changed, 1 when it was already up to date.
put_file() {
  local path=$1 mode=$2 owner=$3 tmp
  tmp=$(mktemp)
  cat >"$tmp"
  if [ -f "$path" ] && cmp -s "$tmp" "$path"; then
    rm -f "$tmp"
    return 1
  fi
  install -D -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" "$tmp" "$path"
  rm -f "$tmp"
  return 0
}

# marker NAME: true when the one-time step NAME has completed before.
marker() { [ -e "$TESTENV_STATE/$1.done" ]; }
mark() { mkdir -p "$TESTENV_STATE" && touch "$TESTENV_STATE/$1.done"; }

# wait_until SECONDS WHAT LOGS... -- CMD...: polls CMD every 0.5 s until it succeeds; on timeout,
# prints the lines of LOGS that explain the failure and exits.
wait_until() {
  local secs=$1 what=$2
  shift 2
  local logs=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do
    logs+=("$1")
    shift
  done
  shift
  local deadline=$((SECONDS + secs))
  while [ $SECONDS -lt $deadline ]; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  log "testenv: timed out after ${secs}s waiting for: $what"
  explain_failure "${logs[@]}"
  exit 1
}

# explain_failure LOGS...: the error lines and the tail of each log, for a failed phase. The
# eventlet "getcurrent" tracebacks OpenStack's command-line tools print at exit are noise.
explain_failure() {
  local f
  for f in "$@"; do
    [ -f "$f" ] || continue
    log "---- $f: errors ----"
    grep -v -e getcurrent -e '^Exception ignored' -e '^Traceback' -e '^  File ' "$f" |
      grep -E 'ERROR|CRITICAL|Error:|error:|FATAL|fatal|refused|denied' | tail -n 15 >&2 || true
    log "---- $f: last lines ----"
    grep -v -e getcurrent -e '^Exception ignored' -e '^Traceback' -e '^  File ' "$f" | tail -n 15 >&2 || true
  done
}

# run_logged LOG [MORE_LOGS...] -- CMD...: runs a one-off command with its output in LOG; on
# failure shows LOG and MORE_LOGS (where the command logs on its own) and exits.
run_logged() {
  local logs=()
  while [ "$1" != -- ]; do
    logs+=("$1")
    shift
  done
  shift
  mkdir -p "$(dirname "${logs[0]}")"
  if ! "$@" >>"${logs[0]}" 2>&1; then
    log "testenv: command failed: $*"
    explain_failure "${logs[@]}"
    exit 1
  fi
}

cgroup_of() { printf '%s/%s' "$TESTENV_CGROUP" "$1"; }

# svc_pids NAME: every process in the service's cgroup.
svc_pids() {
  local cg
  cg=$(cgroup_of "$1")
  [ -f "$cg/cgroup.procs" ] && cat "$cg/cgroup.procs"
  return 0
}

# svc_running NAME: the service's main process is alive and still ours (in its cgroup).
svc_running() {
  local pidf=$TESTENV_RUN/$1.pid pid
  [ -s "$pidf" ] || return 1
  pid=$(cat "$pidf")
  kill -0 "$pid" 2>/dev/null || return 1
  svc_pids "$1" | grep -qx "$pid"
}

# svc_ensure NAME [--user U] [--env K=V]... [--watch FILE]... -- CMD...: makes sure the service
# runs CMD. A running service is left alone when its command line and its watched configuration
# files are unchanged (so a second `up` changes nothing) and restarted when they changed (so `up`
# converges on edits of hack/). A stopped one is started: in its own session and cgroup, as user
# U, with output appended to $TESTENV_LOGS/NAME.log. Helpers of a service whose main process died
# are cleaned up first, so a restart never doubles a helper. Returns 0 when it (re)started the
# service, 1 when it was already running as asked.
svc_ensure() {
  local name=$1 user="" envs=() watch=()
  shift
  while [ "$1" != -- ]; do
    case $1 in
    --user) user=$2; shift 2 ;;
    --env) envs+=("$2"); shift 2 ;;
    --watch) watch+=("$2"); shift 2 ;;
    *) die "svc_ensure: unknown option $1" ;;
    esac
  done
  shift
  local fp
  fp=$( {
    printf '%s\0' "$user" "${envs[@]}" "$@"
    [ ${#watch[@]} -eq 0 ] || cat "${watch[@]}" 2>/dev/null
  } | sha256sum | cut -d' ' -f1)
  if svc_running "$name"; then
    [ "$(cat "$TESTENV_RUN/$name.fp" 2>/dev/null)" = "$fp" ] && return 1
    log "    restarting $name: its command line or configuration changed"
  fi
  svc_stop "$name" 15 quiet
  local cg
  cg=$(cgroup_of "$name")
  mkdir -p "$cg" "$TESTENV_RUN" "$TESTENV_LOGS"
  local drop=()
  [ -n "$user" ] && drop=(setpriv --reuid="$user" --regid="$user" --init-groups --)
  (
    echo "$BASHPID" >"$cg/cgroup.procs"
    cd /
    # A service must not inherit our other open files: a lock our caller holds (flock), a CI
    # runner's pipe, would then live as long as the service.
    local fd
    for fd in "/proc/$BASHPID/fd"/*; do
      fd=${fd##*/}
      [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null
    done
    exec setsid env "${envs[@]}" "${drop[@]}" "$@" >>"$TESTENV_LOGS/$name.log" 2>&1 </dev/null
  ) &
  echo $! >"$TESTENV_RUN/$name.pid"
  echo "$fp" >"$TESTENV_RUN/$name.fp"
  return 0
}

# svc_stop NAME [TIMEOUT] [quiet]: SIGTERM to every process of the service, SIGKILL to what is
# left after TIMEOUT seconds, then removes its cgroup and pid file.
svc_stop() {
  local name=$1 timeout=${2:-15} quiet=${3:-}
  local cg pids
  cg=$(cgroup_of "$name")
  if [ -d "$cg" ]; then
    pids=$(svc_pids "$name")
    if [ -n "$pids" ]; then
      [ -z "$quiet" ] && log "    stopping $name ($(echo "$pids" | wc -w) processes)"
      # shellcheck disable=SC2086
      kill -TERM $pids 2>/dev/null || true
      local deadline=$((SECONDS + timeout))
      while [ -n "$(svc_pids "$name")" ] && [ $SECONDS -lt $deadline ]; do sleep 0.25; done
      # Helpers may fork while we kill: repeat until the cgroup is empty.
      local tries=0
      while pids=$(svc_pids "$name") && [ -n "$pids" ] && [ $tries -lt 40 ]; do
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null || true
        sleep 0.1
        tries=$((tries + 1))
      done
    fi
    rmdir "$cg" 2>/dev/null || true
  fi
  rm -f "$TESTENV_RUN/$name.pid" "$TESTENV_RUN/$name.fp"
}

# svc_status NAME: one line for `status`.
svc_status() {
  local name=$1
  if svc_running "$name"; then
    printf '  %-28s running   pid %-8s (%s processes)\n' "$name" "$(cat "$TESTENV_RUN/$name.pid")" "$(svc_pids "$name" | wc -l)"
  elif [ -n "$(svc_pids "$name")" ]; then
    printf '  %-28s degraded  main process gone, %s helpers left\n' "$name" "$(svc_pids "$name" | wc -l)"
  else
    printf '  %-28s stopped\n' "$name"
  fi
}
