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
