#!/usr/bin/env bash
# Installs what the test suite needs on a fresh machine: Debian's redis-server
# (the gateway, inference and jobs tests start their own on loopback), Java
# (Spark) and the project's virtualenvs. Idempotent; a warm run takes seconds.
#
# Usage: scripts/test-deps.sh [program|jobs|inference|lint ...]   (default: all)
#   jobs alone is what the jobs CLI needs (bootstrap installs it for users).
set -euo pipefail
cd "$(dirname "$0")/.."
wanted=("$@")
((${#wanted[@]})) || wanted=(program jobs inference lint)
wants() { [[ " ${wanted[*]} " == *" $1 "* ]]; }

need_apt=()
if wants program || wants inference; then
  command -v redis-server >/dev/null || need_apt+=(redis-server)
fi
command -v java >/dev/null || need_apt+=(openjdk-17-jre-headless)
if ((${#need_apt[@]})); then
  echo "==> apt: ${need_apt[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

# venv DIR REQUIREMENTS...: (re)creates DIR when its requirements changed.
venv() {
  local dir=$1; shift
  local stamp=$dir/.requirements.sha256 want
  want=$(cat "$@" | sha256sum | cut -d' ' -f1)
  if [ ! -x "$dir/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "==> python: $dir"
    python3.11 -m venv "$dir" 2>/dev/null || python3 -m venv "$dir"
    "$dir/bin/pip" install -q --upgrade pip
    local args=() file
    for file in "$@"; do args+=(-r "$file"); done
    "$dir/bin/pip" install -q "${args[@]}"
    echo "$want" > "$stamp"
  fi
}

# editable DIR: the project (infra/dataplatform and jobs) installed into DIR
# in place, re-installed when pyproject.toml changes.
editable() {
  local dir=$1 stamp=$1/.project.sha256 want
  want=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$dir/bin/pip" install -q --no-deps -e .
    echo "$want" > "$stamp"
  fi
}

if wants program; then
  venv .venv requirements.txt requirements-dev.txt
  # The library itself, editable from this checkout, as the stacks use it.
  editable .venv
fi
# The jobs and the services pin what goes into their images; each gets a
# virtualenv of its own so those pins never fight the program's.
if wants jobs; then venv jobs/.venv jobs/requirements.txt jobs/requirements-test.txt; fi
if wants inference; then
  venv services/inference/.venv services/inference/requirements.txt services/inference/requirements-test.txt
fi
# checkov, the linter of the rendered prod manifests (tests/test_manifest_lint.py),
# pins dependencies of its own: a virtualenv of its own too.
if wants lint; then venv .venv-checkov requirements-lint.txt; fi
