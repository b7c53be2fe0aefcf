#!/usr/bin/env bash
# Prepares a machine to work on dataplatform.
#
# Usage: scripts/bootstrap.sh [--toolchain-only] [--no-docker] [--force-toolchain]
#
#   1. Python: .venv (python3.11) with requirements-dev.txt installed, and
#      jobs/.venv with the jobs CLI (python -m jobs) and Java for Spark.
#   2. Pulumi: a `pulumi` CLI already on PATH is used as it is; otherwise the
#      CLI, the Python and YAML language hosts and the resource providers are
#      built from Go modules into the cache (no access to Pulumi's download
#      hosts needed). Writes $DATAPLATFORM_CACHE/env.sh (default cache:
#      ~/.cache/dataplatform) for shells to source.
#   3. Docker: starts the engine and builds the base images, through
#      scripts/docker-engine.sh and scripts/base-images.sh.
#
# Options:
#   --toolchain-only   only step 2
#   --no-docker        skip step 3
#   --force-toolchain  rebuild the Pulumi toolchain even if it is up to date
#   -h, --help         this help
#
# Every step is idempotent: a second run only checks and takes seconds.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$repo/scripts/lib.sh"
# shellcheck source=/dev/null
source "$repo/toolchain/versions.env"

toolchain_only=false
with_docker=true
force_toolchain=false
while (($#)); do
  case $1 in
    --toolchain-only) toolchain_only=true ;;
    --no-docker) with_docker=false ;;
    --force-toolchain) force_toolchain=true ;;
    -h | --help)
      sed -n '2,22s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
      exit 0
      ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
  shift
done

cache=$(dataplatform_cache)
mkdir -p "$cache"

# The oldest CLI that runs the project's programs: an engine as new as the
# Python SDK they run on (requirements.txt's pulumi pin).
min_cli_version=$PULUMI_PYTHON_SDK_VERSION

version_at_least() { # version_at_least HAVE WANT
  [[ $(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1) == "$2" ]]
}

setup_python() {
  local requirements="$repo/requirements-dev.txt"
  local venv="$repo/.venv"
  if ! command -v python3.11 >/dev/null; then
    die "python3.11 is required for the project's virtualenv"
  fi
  if [[ ! -x $venv/bin/python ]]; then
    info "creating $venv"
    python3.11 -m venv "$venv"
  fi
  if [[ ! -f $requirements ]]; then
    info "no requirements-dev.txt yet; the virtualenv stays empty"
    return
  fi
  # Requirement files may include each other, so all of them key the stamp.
  local key stamp="$venv/.requirements-stamp"
  key=$(fingerprint "$repo"/requirements*.txt "$repo/pyproject.toml" "$(python3.11 --version)")
  if [[ -f $stamp && $(<"$stamp") == "$key" ]]; then
    info "requirements unchanged since the last install"
    return
  fi
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -r "$requirements"
  # The library itself, editable from this checkout, as the stacks use it.
  "$venv/bin/python" -m pip install --quiet --no-deps -e "$repo"
  printf '%s\n' "$key" >"$stamp"
  info "installed requirements-dev.txt into $venv"
}

# The jobs pin what goes into the Spark image (onnx's protobuf among them),
# so their CLI lives in a virtualenv of its own, the one their tests use.
setup_jobs_cli() {
  bash "$repo/scripts/test-deps.sh" jobs
}

offline_build=false

setup_pulumi() {
  local existing
  existing=$(command -v pulumi || true)
  if [[ -n $existing && $existing != "$cache/bin/pulumi" && $force_toolchain == false ]]; then
    local have
    have=$(pulumi version 2>/dev/null || true)
    have=${have#v}
    if [[ -n $have ]] && version_at_least "$have" "$min_cli_version"; then
      info "using $existing ($have); it installs provider plugins itself"
      return
    fi
    warn "ignoring $existing (${have:-unknown version}); need $min_cli_version or newer"
  fi
  offline_build=true
  local args=()
  [[ $force_toolchain == true ]] && args+=(--force)
  "$repo/toolchain/build.sh" "${args[@]}"
  "$cache/bin/pulumi" version >/dev/null || die "the built pulumi CLI does not run"
  check_plugin_pins
}

# Providers pinned in requirements.txt that the offline build does not match:
# the engine cannot fetch them here, so say so now rather than at `pulumi up`.
check_plugin_pins() {
  local requirements="$repo/requirements.txt" line name pinned
  [[ -f $requirements ]] || return 0
  while IFS= read -r line; do
    [[ $line =~ ^pulumi-([a-z0-9-]+)==([^[:space:]#]+) ]] || continue
    name=${BASH_REMATCH[1]}
    pinned=${BASH_REMATCH[2]}
    if [[ ! -x $cache/bin/pulumi-resource-$name ]]; then
      warn "requirements.txt pins pulumi-$name $pinned, but no pulumi-resource-$name could be built here (see toolchain/README.md)"
    elif [[ $name == kubernetes ]] && ! version_at_least "$KUBERNETES_PROVIDER_VERSION" "$pinned"; then
      warn "requirements.txt pins pulumi-kubernetes $pinned, newer than the built provider ($KUBERNETES_PROVIDER_VERSION); the engine will warn"
    fi
  done <"$requirements"
}

# The env file's expansions must happen when it is sourced, not now.
# shellcheck disable=SC2016
write_env_file() {
  local env_file="$cache/env.sh" passphrase="$cache/passphrase"
  if [[ ! -s $passphrase ]]; then
    (
      umask 077
      python3 -c 'import secrets; print(secrets.token_urlsafe(32))' >"$passphrase"
    )
    info "generated a stack passphrase in $passphrase (mode 0600)"
  fi
  chmod 0600 "$passphrase"
  mkdir -p "$cache/state"

  {
    printf '# Written by scripts/bootstrap.sh. Source it: . %q\n' "$env_file"
    if [[ $offline_build == true ]]; then
      printf 'case ":$PATH:" in *:%q:*) ;; *) export PATH=%q:"$PATH" ;; esac\n' "$cache/bin" "$cache/bin"
      # Plugins come from the cache's bin; a download attempt could only fail.
      printf 'export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true\n'
    fi
    printf 'export PULUMI_SKIP_UPDATE_CHECK=true\n'
    # Steps the engine runs at once. Its default, 4 per core, is 8 here, and
    # the kubernetes provider holds a step while it waits for a Deployment or
    # Job to be ready: a first up of prod spent its first 10 s with every
    # step waiting and the operator's chart queued behind them
    # (docs/prod.md, "Measured"). Waiting costs no CPU.
    printf 'export PULUMI_PARALLEL="${PULUMI_PARALLEL:-32}"\n'
    # The stack's image builds trust the machine's extra CAs (a TLS-inspecting
    # proxy) exactly as scripts/build-images.sh passes them: `$(cat ...)`,
    # trailing newlines dropped, so both share the engine's layer cache.
    local extra=(/usr/local/share/ca-certificates/*.crt)
    if [[ -e ${extra[0]} ]]; then
      printf '%s' "$(cat "${extra[@]}")" >"$cache/build-ca.pem"
      printf 'export DATAPLATFORM_BUILD_CA_FILE="${DATAPLATFORM_BUILD_CA_FILE:-%s}"\n' "$cache/build-ca.pem"
    fi
    printf 'export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-%s}"\n' "file://$cache/state"
    # The passphrase file keeps the secret out of the work tree; an explicit
    # passphrase (CI, a team secret) wins.
    printf 'if [ -z "${PULUMI_CONFIG_PASSPHRASE+x}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then\n'
    printf '  PULUMI_CONFIG_PASSPHRASE=$(cat %q)\n  export PULUMI_CONFIG_PASSPHRASE\nfi\n' "$passphrase"
  } >"$env_file.tmp"
  mv "$env_file.tmp" "$env_file"
  info "wrote $env_file"
}

setup_docker() {
  local script ran=false
  for script in docker-engine.sh base-images.sh; do
    if [[ -f $repo/scripts/$script ]]; then
      info "running scripts/$script"
      bash "$repo/scripts/$script"
      ran=true
    else
      info "scripts/$script is not in this checkout; skipped"
    fi
  done
  [[ $ran == true ]] || info "nothing to do for Docker"
}

total_start=$(_dp_now)
if [[ $toolchain_only == false ]]; then
  step "Python virtualenv (.venv)" setup_python
  step "Jobs CLI (jobs/.venv)" setup_jobs_cli
fi
step "Pulumi toolchain" setup_pulumi
step "Environment file" write_env_file
if [[ $toolchain_only == false && $with_docker == true ]]; then
  step "Docker engine and base images" setup_docker
fi

log ""
log "Bootstrap finished in $(_dp_elapsed "$total_start"). In each new shell run:"
log "  . $cache/env.sh"
if [[ $offline_build == true ]]; then
  log "(it puts the built toolchain on PATH: export PATH=$cache/bin:\$PATH)"
fi
