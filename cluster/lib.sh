# Settings and helpers shared by the cluster's scripts. Source it; do not run it.
# shellcheck shell=bash disable=SC2034  # settings used by the scripts that source this
# shellcheck source-path=SCRIPTDIR

CLUSTER_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$CLUSTER_DIR/.." && pwd)
# shellcheck source=../scripts/lib.sh
source "$REPO_ROOT/scripts/lib.sh"
# shellcheck source=versions.env
source "$CLUSTER_DIR/versions.env"

# --- settings (environment overrides) -------------------------------------

# Built binaries, images and logs: a cache, kept across cluster-down.
CLUSTER_CACHE=${CLUSTER_CACHE:-$(dataplatform_cache)/cluster}
# Runtime state (PKI, etcd, kubelet, containerd, volumes, registry).
# cluster-down removes it; with KEEP_DATA=1 it keeps $CLUSTER_DATA_DIR.
CLUSTER_STATE_DIR=${CLUSTER_STATE_DIR:-/var/lib/dataplatform-cluster}
CLUSTER_DATA_DIR=$CLUSTER_STATE_DIR/data
# Pid files, sockets and containerd's state: tmpfs, gone at reboot.
CLUSTER_RUN_DIR=${CLUSTER_RUN_DIR:-/run/dataplatform-cluster}
CLUSTER_LOCK=${CLUSTER_LOCK:-/run/lock/dataplatform-cluster.lock}
CLUSTER_IMAGES=${CLUSTER_IMAGES:-$CLUSTER_IMAGES_DEFAULT}

CLUSTER_NAME=dataplatform
CLUSTER_NODE_NAME=${CLUSTER_NODE_NAME:-dataplatform-node}
# The pods' bridge (made by the CNI bridge plugin).
CLUSTER_BRIDGE=${CLUSTER_BRIDGE:-dp-cni0}
# The node's address, on an interface of its own that this cluster creates
# and removes: every component and every pod reaches it without traffic
# leaving the machine, and nothing binds to the host's own interfaces. The
# interface is an empty bridge (a dummy interface would do, but not every
# kernel has that module; the pods' bridge cannot carry a second address,
# the CNI plugin refuses it).
CLUSTER_NODE_LINK=${CLUSTER_NODE_LINK:-dp-node0}
CLUSTER_NODE_IP=${CLUSTER_NODE_IP:-10.250.0.1}
CLUSTER_POD_CIDR=${CLUSTER_POD_CIDR:-10.244.0.0/16}
# The first /24 of the pod range: the controller-manager gives it to the
# first (only) node, and the bridge's host-local IPAM hands it out.
CLUSTER_NODE_POD_CIDR=${CLUSTER_NODE_POD_CIDR:-10.244.0.0/24}
CLUSTER_POD_GATEWAY=${CLUSTER_POD_GATEWAY:-10.244.0.1}
CLUSTER_SERVICE_CIDR=${CLUSTER_SERVICE_CIDR:-10.96.0.0/16}
CLUSTER_DNS_IP=${CLUSTER_DNS_IP:-10.96.0.10}
CLUSTER_DOMAIN=cluster.local
# Where CoreDNS sends names outside the cluster domain.
CLUSTER_DNS_UPSTREAM=${CLUSTER_DNS_UPSTREAM:-/etc/resolv.conf}

CLUSTER_APISERVER_PORT=${CLUSTER_APISERVER_PORT:-6443}
CLUSTER_REGISTRY_PORT=${CLUSTER_REGISTRY_PORT:-5000}
CLUSTER_REGISTRY=127.0.0.1:$CLUSTER_REGISTRY_PORT
CLUSTER_INGRESS_HTTP_PORT=${CLUSTER_INGRESS_HTTP_PORT:-80}
CLUSTER_INGRESS_HTTPS_PORT=${CLUSTER_INGRESS_HTTPS_PORT:-443}
# Traefik's own entry point (ping), on loopback.
CLUSTER_INGRESS_ADMIN_PORT=${CLUSTER_INGRESS_ADMIN_PORT:-9180}

# --- derived paths ---------------------------------------------------------

CLUSTER_BIN=$CLUSTER_CACHE/bin
CLUSTER_STAMPS=$CLUSTER_CACHE/stamps
CLUSTER_LOGS=$CLUSTER_CACHE/logs
CLUSTER_IMAGE_DIR=$CLUSTER_CACHE/images
PKI_DIR=$CLUSTER_DATA_DIR/pki
KUBECONFIG_DIR=$CLUSTER_DATA_DIR/kubeconfig
ADMIN_KUBECONFIG=$KUBECONFIG_DIR/admin.conf
CONFIG_DIR=$CLUSTER_STATE_DIR/config
PID_DIR=$CLUSTER_RUN_DIR/pids
CONTAINERD_SOCKET=$CLUSTER_RUN_DIR/containerd/containerd.sock
CNI_CONF_DIR=$CLUSTER_STATE_DIR/cni/net.d
CNI_BIN_DIR=/usr/lib/cni

# Every host process of the cluster, in start order; stopped in reverse.
CLUSTER_COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler
  containerd kubelet kube-proxy kube-router registry)

# Chains and sets the cluster's components create (kubelet, kube-proxy,
# kube-router, the CNI plugins, and this cluster's own forward rules).
CLUSTER_CHAIN_PATTERN='^(KUBE-|CNI-|DP-CLUSTER)'
CLUSTER_IPSET_PATTERN='^(inet6:)?(KUBE-|kube-router-)'
# Kernel settings the kubelet, kube-proxy and the CNI plugins may change;
# recorded before the first start and put back by cluster-down.
CLUSTER_SYSCTLS=(net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables
  net.bridge.bridge-nf-call-ip6tables vm.overcommit_memory vm.panic_on_oom
  kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys
  kernel.keys.root_maxbytes net.ipv4.conf.all.route_localnet)

# content_key ITEM...: a short hash of files' contents (not their paths, so
# a clone elsewhere hits the same stamps) and of plain strings.
content_key() {
  local item
  for item in "$@"; do
    if [[ -f $item ]]; then sha256sum <"$item"; else printf '%s\n' "$item"; fi
  done | sha256sum | cut -c1-16
}

# The kubectl of this release, on the admin kubeconfig.
kctl() { "$CLUSTER_BIN/kubectl" --kubeconfig "$ADMIN_KUBECONFIG" "$@"; }

# --- processes -------------------------------------------------------------

# Start time of a process in clock ticks since boot (field 22 of
# /proc/PID/stat): with the pid it names one process, even after the pid is
# reused by another.
proc_start_time() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  # The command name (field 2) may hold spaces; fields after it do not.
  stat=${stat##*) }
  # shellcheck disable=SC2086  # split into fields on purpose
  set -- $stat
  # An exited process waiting to be reaped (Z) is not running.
  [[ $1 != Z ]] || return 1
  printf '%s\n' "${20}"
}

# pid_of NAME: the pid of a running component, or nothing.
pid_of() {
  local file=$PID_DIR/$1.pid pid start
  [[ -f $file ]] || return 1
  read -r pid start <"$file" || return 1
  [[ -n $pid && $(proc_start_time "$pid" 2>/dev/null) == "$start" ]] || return 1
  printf '%s\n' "$pid"
}

running() { pid_of "$1" >/dev/null; }

# spawn NAME COMMAND...: starts COMMAND detached from this shell (its own
# session, so it outlives `make`), logging to $CLUSTER_LOGS/NAME.log, and
# records its pid with its start time.
spawn() {
  local name=$1
  shift
  mkdir -p "$PID_DIR" "$CLUSTER_LOGS"
  # Without job control a background job is not a process group leader, so
  # setsid(1) calls setsid() and execs: $! is the component's own pid.
  # fd 9 is the start lock: the daemons must not keep holding it.
  setsid "$@" >"$CLUSTER_LOGS/$name.log" 2>&1 </dev/null 9>&- &
  local pid=$! start
  start=$(proc_start_time "$pid") || die "$name exited at once; last lines of $CLUSTER_LOGS/$name.log:$(printf '\n'; tail -n 20 "$CLUSTER_LOGS/$name.log")"
  printf '%s %s\n' "$pid" "$start" >"$PID_DIR/$name.pid"
}

# fail_with_log NAME MESSAGE: the component's last log lines, then exit.
fail_with_log() {
  local name=$1 message=$2
  printf '%s: %s; last lines of %s:\n' "$name" "$message" "$CLUSTER_LOGS/$name.log" >&2
  tail -n 25 "$CLUSTER_LOGS/$name.log" 2>/dev/null | sed 's/^/    /' >&2 || true
  die "$name did not start (full log: $CLUSTER_LOGS/$name.log)"
}

# wait_until NAME SECONDS COMMAND...: polls COMMAND until it succeeds; fails
# with NAME's log when the time is up or NAME's process has died.
wait_until() {
  local name=$1 timeout=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [[ -f $PID_DIR/$name.pid ]] && ! running "$name"; then
      fail_with_log "$name" "exited"
    fi
    ((SECONDS < deadline)) || fail_with_log "$name" "not ready after ${timeout}s"
    sleep 0.5
  done
}

# stop_components SECONDS NAME...: SIGTERM to each by pid, all at once;
# SIGKILL to any still running after SECONDS.
stop_components() {
  local grace=$1 name pid t0 deadline
  shift
  t0=$(_dp_now)
  local -A stopping=()
  for name in "$@"; do
    if pid=$(pid_of "$name"); then
      stopping[$name]=$pid
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  deadline=$((SECONDS + grace))
  for name in "${!stopping[@]}"; do
    while running "$name" && ((SECONDS < deadline)); do sleep 0.1; done
  done
  for name in "${!stopping[@]}"; do
    if running "$name"; then
      warn "$name (pid ${stopping[$name]}) ignored SIGTERM for ${grace}s; killing it"
      kill -KILL "${stopping[$name]}" 2>/dev/null || true
      while running "$name"; do sleep 0.1; done
    fi
  done
  for name in "$@"; do rm -f "$PID_DIR/$name.pid"; done
  ((${#stopping[@]} == 0)) || info "stopped $(printf '%s ' "${!stopping[@]}")in $(_dp_elapsed "$t0")"
}

# --- prerequisites -----------------------------------------------------------

# ensure_packages PACKAGE=COMMAND...: installs, from the machine's Debian
# sources, each package whose command (or, for an absolute path, file) is
# missing.
ensure_packages() {
  local missing=() item pkg cmd
  for item in "$@"; do
    pkg=${item%%=*} cmd=${item#*=}
    if [[ $cmd == /* ]]; then
      [[ -e $cmd ]] || missing+=("$pkg")
    else
      command -v "$cmd" >/dev/null || missing+=("$pkg")
    fi
  done
  ((${#missing[@]})) || return 0
  command -v apt-get >/dev/null || die "missing ${missing[*]}: install them with your package manager"
  ((EUID == 0)) || die "missing ${missing[*]}: run as root to install them, or apt-get install ${missing[*]}"
  info "installing ${missing[*]}"
  # An index older than a day may name files the mirror no longer has.
  if [[ -z $(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -1440 2>/dev/null | head -n 1) ]]; then
    apt-get -o DPkg::Lock::Timeout=600 update -qq || die "apt-get update failed: check the machine's Debian sources"
  fi
  # Debian's containerd would start the system-wide daemon from its
  # maintainer script; this cluster runs an instance of its own.
  local policy=/usr/sbin/policy-rc.d created=false status=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    created=true
  fi
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null || status=$?
  if [[ $created == true ]]; then rm -f "$policy"; fi
  ((status == 0)) || die "apt-get install ${missing[*]} failed"
}

# --- one-line prerequisite errors ------------------------------------------

require_root() {
  ((EUID == 0)) || die "the cluster needs root (it runs the kubelet, containerd and iptables): run it as root, e.g. sudo make cluster"
}

# port_in_use PORT: something listens on TCP PORT, on any address (the
# cluster binds 127.0.0.1 or its node address, which a wildcard listener
# would also block).
port_in_use() {
  local port=$1
  ss -Hltn "sport = :$port" 2>/dev/null | grep -q .
}
