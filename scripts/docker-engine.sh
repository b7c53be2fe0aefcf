#!/usr/bin/env bash
# Make a Docker engine answer on this machine.
#
# Idempotent: if `docker info` already works nothing happens. Otherwise the
# distribution's dockerd is installed (when missing) and started in the
# background; machines here have no init system that would supervise it.
# A docker CLI already on PATH is kept: a newer client negotiates the API
# version down to the daemon's.
#
# If dockerd cannot start, Debian's podman is started as a Docker-compatible
# API service on the same socket path, so `docker` and pulumi-docker work
# unchanged (image builds then go through podman's buildah backend).
#
# Environment:
#   DATAPLATFORM_CACHE        cache dir (default ~/.cache/dataplatform)
#   DOCKER_ENGINE_TIMEOUT     seconds to wait for the daemon (default 60)
#   DOCKER_ENGINE_LOG         daemon log file (default /var/log/dockerd.log)
#   DOCKER_ENGINE_NO_PODMAN   set to 1 to disable the podman fallback
set -euo pipefail

readonly SOCKET=/var/run/docker.sock
readonly TIMEOUT="${DOCKER_ENGINE_TIMEOUT:-60}"
readonly LOG="${DOCKER_ENGINE_LOG:-/var/log/dockerd.log}"

log() { printf 'docker-engine: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

engine_up() { docker info >/dev/null 2>&1; }

# Install packages without letting maintainer scripts start services.
apt_install() {
  local missing=()
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
  done
  ((${#missing[@]} == 0)) && return 0
  log "installing ${missing[*]}"
  local sudo=()
  ((EUID == 0)) || sudo=(sudo)
  # An apt index older than a day may point at files the mirror dropped.
  if [[ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -1440 2>/dev/null | head -1)" ]]; then
    "${sudo[@]}" apt-get update -qq
  fi
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 755 "$policy"
    created_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  ((created_policy)) && "${sudo[@]}" rm -f "$policy"
  return 0
}

wait_for_engine() {
  local pid=$1 deadline=$((SECONDS + TIMEOUT))
  while ((SECONDS < deadline)); do
    engine_up && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 1
  done
  return 1
}

start_dockerd() {
  apt_install docker.io iptables
  # The CLI from the package would shadow nothing (it installs to /usr/bin,
  # after /usr/local/bin on PATH), so a newer client stays in charge.
  local dockerd
  dockerd="$(command -v dockerd || true)"
  [[ -n $dockerd ]] || die "dockerd not found after installing docker.io"
  mkdir -p "$(dirname "$LOG")"
  log "starting $dockerd (log: $LOG)"
  # setsid detaches the daemon from this script's session so it outlives it.
  setsid "$dockerd" --host="unix://$SOCKET" >>"$LOG" 2>&1 </dev/null &
  local pid=$!
  if wait_for_engine "$pid"; then
    log "dockerd $(docker version -f '{{.Server.Version}}') is up (pid $pid)"
    return 0
  fi
  log "dockerd did not answer within ${TIMEOUT}s; last log lines:"
  tail -n 20 "$LOG" >&2 || true
  kill "$pid" 2>/dev/null || true
  return 1
}

start_podman() {
  apt_install podman
  local podman_log="${LOG%.log}-podman.log"
  log "starting podman API service on $SOCKET (log: $podman_log)"
  rm -f "$SOCKET"
  setsid podman system service --time=0 "unix://$SOCKET" >>"$podman_log" 2>&1 </dev/null &
  local pid=$!
  if wait_for_engine "$pid"; then
    log "podman API service is up (pid $pid)"
    return 0
  fi
  tail -n 20 "$podman_log" >&2 || true
  return 1
}

main() {
  if engine_up; then
    log "engine already running"
    return 0
  fi
  # A stale pid file from a killed daemon makes dockerd refuse to start.
  if [[ -f /var/run/docker.pid ]] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
    rm -f /var/run/docker.pid
  fi
  start_dockerd && return 0
  [[ ${DOCKER_ENGINE_NO_PODMAN:-0} == 1 ]] && die "dockerd failed to start (see $LOG)"
  log "falling back to podman"
  start_podman || die "neither dockerd nor podman could start (see $LOG)"
}

main "$@"
