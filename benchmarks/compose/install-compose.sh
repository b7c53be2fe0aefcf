#!/usr/bin/env bash
# Installs the Docker Compose v2 CLI plugin when `docker compose version`
# does not work, by building it from its Go module (no container or binary
# download host needed, only the Go module proxy).
#
# Usage: benchmarks/compose/install-compose.sh [--force]
#
#   --force      rebuild even if a working plugin is installed
#   -h, --help   this help
#
# The module's main package cannot be built with `go install module@version`
# when its go.mod has `replace` directives, so the build goes through a small
# wrapper module in $DATAPLATFORM_CACHE/src/compose (default cache:
# ~/.cache/dataplatform) that requires Compose at COMPOSE_VERSION and copies
# its non-local `replace` lines. The binary lands in
# ~/.docker/cli-plugins/docker-compose (or $DOCKER_CONFIG/cli-plugins).
# A cold build takes several minutes on two cores; a second run only checks.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source-path=SCRIPTDIR/../..
# shellcheck source=scripts/lib.sh
source "$repo/scripts/lib.sh"

COMPOSE_MODULE=github.com/docker/compose/v2
COMPOSE_VERSION=${COMPOSE_VERSION:-v2.40.3}

force=false
while (($#)); do
  case $1 in
    --force) force=true ;;
    -h | --help)
      sed -n '2,17s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
      exit 0
      ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
  shift
done

plugin_dir=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins
plugin=$plugin_dir/docker-compose
src=$(dataplatform_cache)/src/compose

check_installed() {
  local have
  if have=$(docker compose version --short 2>/dev/null); then
    info "docker compose $have works"
    installed=true
  else
    info "docker compose is not available"
    installed=false
  fi
}

write_wrapper() {
  command -v go >/dev/null || die "go is required to build docker compose"
  local dir upstream
  dir=$(go mod download -json "$COMPOSE_MODULE@$COMPOSE_VERSION" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  upstream=$dir/go.mod
  mkdir -p "$src"
  {
    printf 'module dataplatform.local/compose-plugin\n\n'
    printf 'go %s\n\n' "$(awk '$1 == "go" { print $2; exit }' "$upstream")"
    printf 'require %s %s\n' "$COMPOSE_MODULE" "$COMPOSE_VERSION"
    # Replace lines, single or in a block, that point at another module
    # version (a path starting with . or / is local to Compose's tree).
    awk '
      /^replace[ \t]*\($/ { block = 1; next }
      block && /^\)/ { block = 0; next }
      block { line = $0 }
      !block && /^replace[ \t]/ { line = $0; sub(/^replace[ \t]+/, "", line) }
      line != "" {
        split(line, side, "=>"); target = side[2]; gsub(/^[ \t]+/, "", target)
        if (target !~ /^[.\/]/) { gsub(/^[ \t]+/, "", line); print "replace " line }
        line = ""
      }
    ' "$upstream"
  } >"$src/go.mod.new"
  # The main package lives in the module's cmd/ directory.
  cat >"$src/tools.go" <<EOF
//go:build tools

package tools

import _ "$COMPOSE_MODULE/cmd"
EOF
  if ! cmp -s "$src/go.mod.new" "$src/go.mod.in" 2>/dev/null; then
    mv "$src/go.mod.new" "$src/go.mod.in"
    cp "$src/go.mod.in" "$src/go.mod"
    rm -f "$src/go.sum"
  else
    rm -f "$src/go.mod.new"
  fi
  info "wrapper module in $src ($(grep -c '^replace' "$src/go.mod.in" || true) replace lines copied)"
  (cd "$src" && GOFLAGS=-mod=mod go mod tidy)
}

build() {
  mkdir -p "$plugin_dir"
  local out=$src/docker-compose
  info "building $COMPOSE_MODULE/cmd $COMPOSE_VERSION (a cold build takes minutes)"
  (cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath \
    -ldflags "-s -w -X $COMPOSE_MODULE/internal.Version=$COMPOSE_VERSION" \
    -o "$out" "$COMPOSE_MODULE/cmd")
  install -m 0755 "$out" "$plugin"
  info "installed $plugin"
}

verify() {
  docker compose version || die "docker compose does not work after the install"
}

installed=false
step "check docker compose" check_installed
if $installed && ! $force; then
  exit 0
fi
step "write the wrapper module" write_wrapper
step "build docker compose $COMPOSE_VERSION" build
step "verify" verify
