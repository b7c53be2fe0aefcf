#!/usr/bin/env bash
# Checks that the cluster leaves the host as it found it.
#
#   hostcheck.sh snapshot FILE   record the host state the cluster touches
#   hostcheck.sh compare FILE    fail, with a diff, if the host state differs
#   hostcheck.sh leftovers       fail, naming them, if any of the cluster's
#                                processes, mounts, network namespaces,
#                                iptables chains, ipsets, interfaces,
#                                cgroups or state directories remain
#
# The snapshot covers iptables and ip6tables rules (all tables, counters
# dropped), ipsets, network interfaces and their addresses, mounts, network
# namespaces, top-level cgroups, the sysctls the components may change, and
# host paths they may create. Rules, interfaces, mounts and cgroups of the
# Docker engine's own containers are left out: other work on the machine
# may start and stop containers meanwhile. cluster/up.sh takes the snapshot
# before a fresh start and cluster/down.sh compares after the teardown.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Host paths the kubelet, containerd or the CNI plugins may create.
host_paths=(/var/lib/cni /var/log/containers /var/log/pods /run/netns /etc/cni /opt/cni
  /opt/containerd /var/lib/kubelet /etc/kubernetes /var/lib/kube-router /var/run/kube-router /run/containerd/runc/k8s.io /var/lib/containerd/io.containerd.grpc.v1.cri)

# Lines that belong to the Docker engine's networking: its chains and
# bridges, and the private ranges its networks are allocated from (172.16/12,
# 192.168/16; a published port adds masquerade rules that name only the
# container's address). The cluster's own ranges are 10.x, so its leftovers
# still show.
docker_noise='DOCKER|docker0|br-[0-9a-f]{12}|docker_gwbridge|172\.(1[6-9]|2[0-9]|3[01])\.|192\.168\.'

snapshot() {
  local tool table
  for tool in iptables ip6tables; do
    for table in filter nat mangle raw; do
      printf '## %s -t %s\n' "$tool" "$table"
      # Counters and comments of the save format change on their own.
      "$tool-save" -t "$table" 2>/dev/null | grep -v -e '^#' -e '^COMMIT' |
        sed -E 's/ \[[0-9]+:[0-9]+\]$//' | grep -Ev "$docker_noise" | sort || true
    done
  done
  printf '## ipsets\n'
  ipset list -n 2>/dev/null | sort || true
  printf '## links\n'
  ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' |
    while read -r link; do
      # Interfaces of Docker's containers come and go with other work.
      if ip -o link show dev "$link" 2>/dev/null | grep -Eq "master ($docker_noise)"; then continue; fi
      printf '%s\n' "$link"
    done | grep -Ev "^($docker_noise)$" | sort
  printf '## addresses\n'
  # Container veths (Docker's) come and go; a veth of ours left behind
  # shows up under links, unattached.
  ip -o addr show | awk '{print $2, $3, $4}' | grep -Ev "$docker_noise|^veth" | sort
  printf '## routes\n'
  ip -o route show table all 2>/dev/null | grep -Ev "$docker_noise| dev veth" | sort
  printf '## mounts\n'
  findmnt -rn -o TARGET,FSTYPE | grep -Ev '^/(var/lib/docker|run/docker)' | sort
  printf '## netns\n'
  find /run/netns -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort || true
  printf '## cgroups\n'
  find /sys/fs/cgroup -mindepth 1 -maxdepth 2 -type d 2>/dev/null | grep -v '/docker$' | sort
  printf '## sysctls\n'
  local key
  for key in "${CLUSTER_SYSCTLS[@]}"; do
    printf '%s=%s\n' "$key" "$(sysctl -n "$key" 2>/dev/null || echo '-')"
  done
  printf '## paths\n'
  local path
  for path in "${host_paths[@]}"; do
    if [[ -e $path ]]; then printf '%s exists\n' "$path"; else printf '%s absent\n' "$path"; fi
  done
}

leftovers() {
  local problems=() pid cmd exe
  # Processes: ours run from the cache's bin or name the cluster's dirs.
  for pid in /proc/[0-9]*; do
    pid=${pid#/proc/}
    [[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || continue
    cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || continue
    if [[ $exe == "$CLUSTER_BIN"/* || $cmd == *"$CLUSTER_RUN_DIR/"* || $cmd == *"$CLUSTER_STATE_DIR/"* ]]; then
      [[ $cmd == *hostcheck.sh* ]] && continue
      problems+=("process $pid: $cmd")
    fi
  done
  local cgroup
  for cgroup in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [[ -d $cgroup ]] && problems+=("cgroup $cgroup")
  done
  local target
  while read -r target; do
    problems+=("mount $target")
  done < <(findmnt -rn -o TARGET | grep -E "^($CLUSTER_STATE_DIR|$CLUSTER_RUN_DIR)(/|$)" || true)
  local ns
  for ns in /run/netns/cni-*; do
    [[ -e $ns ]] && problems+=("network namespace $ns")
  done
  local tool table chain
  for tool in iptables ip6tables; do
    for table in filter nat mangle raw; do
      while read -r chain; do
        problems+=("$tool -t $table chain $chain")
      done < <("$tool-save" -t "$table" 2>/dev/null | sed -n 's/^:\([^ ]*\) .*/\1/p' | grep -E "$CLUSTER_CHAIN_PATTERN" || true)
    done
  done
  local set
  while read -r set; do
    problems+=("ipset $set")
  done < <(ipset list -n 2>/dev/null | grep -E "$CLUSTER_IPSET_PATTERN" || true)
  local link
  for link in "$CLUSTER_BRIDGE" "$CLUSTER_NODE_LINK"; do
    if ip link show "$link" >/dev/null 2>&1; then problems+=("interface $link"); fi
  done
  [[ -e $CLUSTER_RUN_DIR ]] && problems+=("directory $CLUSTER_RUN_DIR")
  if [[ -e $CLUSTER_STATE_DIR ]]; then
    local extra
    extra=$(find "$CLUSTER_STATE_DIR" -mindepth 1 -maxdepth 1 ! -name data 2>/dev/null | head -n 5)
    if [[ -n $extra ]]; then
      problems+=("state outside the data directory: $(tr '\n' ' ' <<<"$extra")")
    elif [[ ${KEEP_DATA:-0} != 1 ]]; then
      problems+=("directory $CLUSTER_STATE_DIR (not asked to keep data)")
    fi
  fi
  if ((${#problems[@]})); then
    printf 'left behind by the cluster:\n' >&2
    printf '  %s\n' "${problems[@]}" >&2
    return 1
  fi
}

case "${1:-}" in
  snapshot)
    [[ -n ${2:-} ]] || die "usage: hostcheck.sh snapshot FILE"
    snapshot >"$2"
    ;;
  compare)
    [[ -f ${2:-} ]] || die "usage: hostcheck.sh compare FILE (an existing snapshot)"
    # Both sides through the same filter, so a snapshot taken with an older
    # filter still compares.
    if ! diff -u --label before --label after <(grep -Ev "$docker_noise" "$2") <(snapshot | grep -Ev "$docker_noise") >&2; then
      die "the host differs from before the cluster started (diff above)"
    fi
    ;;
  leftovers) leftovers ;;
  -h | --help | "") sed -n '2,18s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" ;;
  *) die "unknown command: $1 (see --help)" ;;
esac
