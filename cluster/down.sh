#!/usr/bin/env bash
# Stops the local cluster and removes what it put on the host: its
# processes (by the pids recorded at start), pod sandboxes (through the CRI,
# so the CNI plugins remove the pods' interfaces and rules), mounts, network
# namespaces, the pod bridge, iptables/ip6tables chains and rules (KUBE-*,
# CNI-*, kube-router's, the cluster's own), kube-router's ipsets, the
# kubelet's cgroups and log links, containerd's state, and the kernel
# settings the components changed. Then it checks that nothing is left and
# that the host matches the snapshot taken before the cluster started.
#
# Usage: cluster/down.sh [--keep-data]
#   --keep-data (or KEEP_DATA=1)  keep $CLUSTER_STATE_DIR/data: etcd, the
#       PKI, volumes and the registry's images; the next start reuses them
set -euo pipefail

# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KEEP_DATA=${KEEP_DATA:-0}
case "${1:-}" in
  --keep-data) KEEP_DATA=1 ;;
  "") ;;
  -h | --help)
    sed -n '2,13s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
    exit 0
    ;;
  *) die "unknown argument: $1 (see --help)" ;;
esac
export KEEP_DATA

snapshot_file=$CLUSTER_CACHE/host-before.snapshot

# Pod sandboxes go through the CRI while containerd still runs: StopPodSandbox
# runs the CNI DEL that removes each pod's veth, IP and masquerade rules.
remove_pods() {
  running containerd || return 0
  [[ -x $CLUSTER_BIN/crireset ]] || { warn "no crireset binary; pods are removed the hard way"; return 0; }
  "$CLUSTER_BIN/crireset" -endpoint "$CONTAINERD_SOCKET" -timeout 90s >"$CLUSTER_LOGS/crireset.log" 2>&1 ||
    { warn "some pod sandboxes could not be removed through the CRI:"; tail -n 5 "$CLUSTER_LOGS/crireset.log" >&2; }
}

# Processes this cluster started that are not in a pid file: containerd's
# shims (which name its socket) and, if a shim died, pod processes, all in
# the kubelet's cgroup tree.
kill_strays() {
  local pid cmd pids=()
  for pid in /proc/[0-9]*; do
    pid=${pid#/proc/}
    cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || continue
    [[ $cmd == *"-address $CONTAINERD_SOCKET "* ]] && pids+=("$pid")
  done
  local procs
  for procs in /sys/fs/cgroup/pids/kubepods /sys/fs/cgroup/memory/kubepods /sys/fs/cgroup/kubepods; do
    [[ -d $procs ]] || continue
    while read -r pid; do pids+=("$pid"); done < <(find "$procs" -name cgroup.procs -exec cat {} + 2>/dev/null)
  done
  ((${#pids[@]})) || return 0
  info "killing ${#pids[@]} leftover shim/pod processes"
  kill -KILL "${pids[@]}" 2>/dev/null || true
  sleep 0.5
}

unmount_all() {
  local target
  # Deepest first, so a mount under another comes off before it.
  while read -r target; do
    umount "$target" 2>/dev/null || umount -l "$target" 2>/dev/null || warn "could not unmount $target"
  done < <(findmnt -rn -o TARGET | grep -E "^($CLUSTER_STATE_DIR|$CLUSTER_RUN_DIR)(/|$)" | awk '{ print length, $0 }' | sort -rn | cut -d' ' -f2-)
  # Network namespaces the CRI could not remove: empty ones made after this
  # cluster's containerd started (containerd names them cni-<uuid>).
  local ns since=$CLUSTER_RUN_DIR/started
  [[ -e $since ]] || return 0
  for ns in /run/netns/cni-*; do
    [[ -e $ns && $ns -nt $since ]] || continue
    [[ -z $(ip netns pids "${ns##*/}" 2>/dev/null) ]] || continue
    ip netns delete "${ns##*/}" 2>/dev/null || { umount -l "$ns" 2>/dev/null; rm -f "$ns"; }
  done
}

remove_network() {
  local link
  if ip link show "$CLUSTER_BRIDGE" >/dev/null 2>&1; then
    while read -r link; do
      ip link delete "$link" 2>/dev/null || true
    done < <(ip -o link show master "$CLUSTER_BRIDGE" | awk -F': ' '{print $2}' | sed 's/@.*//')
    ip link delete "$CLUSTER_BRIDGE"
  fi
  if ip link show "$CLUSTER_NODE_LINK" >/dev/null 2>&1; then
    ip link delete "$CLUSTER_NODE_LINK"
  fi

  local tool table chain builtin num
  for tool in iptables ip6tables; do
    for table in filter nat mangle raw; do
      local chains
      chains=$("$tool-save" -t "$table" 2>/dev/null | sed -n 's/^:\([^ ]*\) .*/\1/p' | grep -E "$CLUSTER_CHAIN_PATTERN" || true)
      [[ -n $chains ]] || continue
      # Jumps to them from the built-in chains, by rule number, last first
      # so the numbers stay valid.
      for builtin in $("$tool-save" -t "$table" | sed -n 's/^:\([A-Z]*\) [A-Z].*/\1/p'); do
        grep -qxF "$builtin" <<<"$chains" && continue
        for num in $("$tool" -w -t "$table" -L "$builtin" --line-numbers -n 2>/dev/null |
          awk -v pat="$CLUSTER_CHAIN_PATTERN" 'NR > 2 && $2 ~ pat { print $1 }' | sort -rn); do
          "$tool" -w -t "$table" -D "$builtin" "$num"
        done
      done
      # Flush all before deleting any: they jump to each other.
      for chain in $chains; do "$tool" -w -t "$table" -F "$chain"; done
      for chain in $chains; do "$tool" -w -t "$table" -X "$chain"; done
    done
  done

  local set
  for set in $(ipset list -n 2>/dev/null | grep -E "$CLUSTER_IPSET_PATTERN" || true); do
    ipset destroy "$set" 2>/dev/null || warn "could not destroy ipset $set"
  done
}

remove_cgroups() {
  local root
  for root in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [[ -d $root ]] || continue
    find "$root" -depth -type d -exec rmdir {} + 2>/dev/null || warn "could not remove cgroup $root"
  done
}

restore_host() {
  local saved=$CLUSTER_RUN_DIR/sysctl.saved line
  if [[ -f $saved ]]; then
    while read -r line; do
      sysctl -qw "$line" 2>/dev/null || warn "could not restore $line"
    done <"$saved"
  fi
  # The kubelet links container logs into /var/log/containers.
  local link
  for link in /var/log/containers/*; do
    if [[ -L $link && $(readlink "$link") == "$CLUSTER_STATE_DIR/"* ]]; then rm -f "$link"; fi
  done
  # Host directories the components created (absent in the snapshot), if
  # they hold nothing now.
  if [[ -f $snapshot_file ]]; then
    local path
    # (Stale sockets too: the kubelet's device-plugin socket sits in
    # /var/lib/kubelet whatever its root directory.)
    while read -r path; do
      if [[ -d $path ]]; then
        find "$path" -depth \( -type s -o -type d -empty \) -delete 2>/dev/null || true
      fi
    done < <(sed -n 's/^\(\/[^ ]*\) absent$/\1/p' "$snapshot_file")
  fi
}

main() {
  require_root
  local t0
  t0=$(_dp_now)
  mkdir -p "$(dirname "$CLUSTER_LOCK")"
  exec 9>"$CLUSTER_LOCK"
  flock -w 600 9 || die "another cluster start or stop holds $CLUSTER_LOCK"

  # The kubelet first, so it does not restart what is being removed.
  stop_components 30 kubelet
  step "pod sandboxes (CRI)" remove_pods
  # The rest side by side, except etcd: the API server's graceful shutdown
  # needs it.
  local others=() name
  for name in "${CLUSTER_COMPONENTS[@]}"; do
    [[ $name == kubelet || $name == etcd ]] || others+=("$name")
  done
  stop_components 20 "${others[@]}"
  stop_components 20 etcd
  kill_strays
  unmount_all
  step "network (links, iptables, ipsets)" remove_network
  remove_cgroups
  restore_host

  rm -rf "$CLUSTER_RUN_DIR"
  if [[ $KEEP_DATA == 1 ]]; then
    find "$CLUSTER_STATE_DIR" -mindepth 1 -maxdepth 1 ! -name data -exec rm -rf {} + 2>/dev/null || true
    info "kept $CLUSTER_DATA_DIR (etcd, PKI, volumes, registry)"
  else
    rm -rf "$CLUSTER_STATE_DIR"
  fi

  step "check: nothing left" bash "$CLUSTER_DIR/hostcheck.sh" leftovers
  if [[ -f $snapshot_file ]]; then
    step "check: host as before the start" bash "$CLUSTER_DIR/hostcheck.sh" compare "$snapshot_file"
    rm -f "$snapshot_file"
    info "host matches its state from before the cluster started"
  fi
  rm -f "$CLUSTER_LOCK"
  log "cluster stopped and removed in $(_dp_elapsed "$t0")"
}

main
