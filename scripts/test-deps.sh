#!/usr/bin/env bash
# Installs what the test suite needs on a fresh machine: Debian's redis-server
# (the gateway, inference and jobs tests start their own on loopback) and the
# project's virtualenv. Idempotent; a warm run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v java >/dev/null || need_apt+=(openjdk-17-jre-headless)
if ((${#need_apt[@]})); then
  echo "==> apt: ${need_apt[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

stamp=.venv/.requirements.sha256
want=$(cat requirements*.txt jobs/requirements*.txt services/inference/requirements*.txt | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "==> python: .venv from requirements-dev.txt"
  python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r requirements-dev.txt
  echo "$want" > "$stamp"
fi
