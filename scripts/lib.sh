# Shared shell helpers for the project's scripts. Source it; do not run it.
# shellcheck shell=bash

if [[ -t 1 ]]; then
  _dp_bold=$'\033[1m' _dp_dim=$'\033[2m' _dp_red=$'\033[31m' _dp_green=$'\033[32m' _dp_reset=$'\033[0m'
else
  _dp_bold='' _dp_dim='' _dp_red='' _dp_green='' _dp_reset=''
fi

log() { printf '%s\n' "$*"; }
info() { printf '  %s\n' "$*"; }
warn() { printf '  %swarning:%s %s\n' "$_dp_red" "$_dp_reset" "$*" >&2; }
die() {
  printf '%serror:%s %s\n' "$_dp_red" "$_dp_reset" "$*" >&2
  exit 1
}

# Seconds since the epoch with sub-second precision, for step timings.
_dp_now() { date +%s.%N; }

_dp_elapsed() { awk -v a="$1" -v b="$(_dp_now)" 'BEGIN { printf "%.1fs", b - a }'; }

# step NAME COMMAND [ARGS...]: runs COMMAND under a heading and reports how
# long it took. COMMAND runs in this shell (so it may set variables) and under
# `set -e`; if it fails, the exit trap names the step that did.
_dp_step_name=''
_dp_step_start=''
step() {
  _dp_step_name=$1
  shift
  _dp_step_start=$(_dp_now)
  printf '%s==> %s%s\n' "$_dp_bold" "$_dp_step_name" "$_dp_reset"
  "$@"
  printf '%s    done: %s (%s)%s\n' "$_dp_green" "$_dp_step_name" "$(_dp_elapsed "$_dp_step_start")" "$_dp_reset"
  _dp_step_name=''
}

_dp_on_exit() {
  local rc=$?
  if ((rc != 0)) && [[ -n $_dp_step_name ]]; then
    printf '%s    failed: %s (%s, exit %d)%s\n' "$_dp_red" "$_dp_step_name" \
      "$(_dp_elapsed "$_dp_step_start")" "$rc" "$_dp_reset" >&2
  fi
}
trap _dp_on_exit EXIT

# The cache for everything built or downloaded outside the work tree.
dataplatform_cache() { printf '%s\n' "${DATAPLATFORM_CACHE:-$HOME/.cache/dataplatform}"; }

# sha256 of the given files and strings, to key build stamps.
fingerprint() {
  local item
  for item in "$@"; do
    if [[ -f $item ]]; then sha256sum "$item"; else printf '%s\n' "$item"; fi
  done | sha256sum | cut -c1-16
}

# --- builds keyed on their inputs -------------------------------------------

# A build script sets BUILD_STAMPS and BUILD_LOGS (directories), optionally
# BUILD_LOG_PREFIX, and BUILD_FORCE=true to rebuild everything. Each piece it
# builds leaves a stamp: the key of the inputs it was built from.

# fresh NAME KEY OUTPUTS...: NAME was built from inputs keyed KEY and each
# of its outputs is still there.
fresh() {
  local name=$1 key=$2
  shift 2
  [[ ${BUILD_FORCE:-false} == false && -f $BUILD_STAMPS/$name && $(<"$BUILD_STAMPS/$name") == "$key" ]] || return 1
  local out
  for out in "$@"; do [[ -s $out ]] || return 1; done
}

# up_to_date NAME KEY LABEL OUTPUTS...: fresh, and says so under LABEL.
up_to_date() {
  local name=$1 key=$2 label=$3
  shift 3
  fresh "$name" "$key" "$@" || return 1
  info "$label: up to date"
}

# module_version DIR MODULE: the version of MODULE that DIR's go.mod selects.
module_version() { go -C "$1" list -m -f '{{.Version}}' "$2"; }

# stamp NAME KEY: NAME is now built from inputs keyed KEY.
stamp() { printf '%s\n' "$2" >"$BUILD_STAMPS/$1"; }

# run_logged NAME COMMAND...: a build step with its output in
# $BUILD_LOGS/<BUILD_LOG_PREFIX>NAME.log, whose tail is printed if it fails.
run_logged() {
  local name=$1
  shift
  local log=$BUILD_LOGS/${BUILD_LOG_PREFIX:-}$name.log start
  start=$(_dp_now)
  if "$@" >"$log" 2>&1; then
    info "$name built in $(_dp_elapsed "$start") (log: $log)"
  else
    local rc=$?
    warn "$name failed after $(_dp_elapsed "$start"); last lines of $log:"
    tail -n 30 "$log" >&2
    return "$rc"
  fi
}
