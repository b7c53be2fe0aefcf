#!/usr/bin/env bash
# minio-init: one-shot, idempotent initialisation of a MinIO deployment.
#
# Waits for the server, creates buckets, and creates or updates service users,
# each with one policy of its own. Safe to run on every deployment: existing
# buckets are kept, policies are replaced with the given documents, and user
# secrets are reset to the given values (which is how a rotation is applied).
#
# Environment (credentials are files, never literal values):
#   MINIO_INIT_URL            server base URL                (default http://minio:9000)
#   MINIO_ROOT_USER_FILE      file holding the root user            (required)
#   MINIO_ROOT_PASSWORD_FILE  file holding the root password        (required)
#   MINIO_BUCKETS             comma-separated bucket names          (optional)
#   MINIO_INIT_USERS          comma-separated service user names    (optional)
#   For each NAME in MINIO_INIT_USERS, with KEY = NAME upper-cased and every
#   character other than A-Z and 0-9 replaced by "_" (spark-jobs -> SPARK_JOBS):
#     MINIO_USER_<KEY>_ACCESS_KEY_FILE  file holding the user's access key
#     MINIO_USER_<KEY>_SECRET_KEY_FILE  file holding the user's secret key
#     MINIO_USER_<KEY>_POLICY           path of an IAM policy JSON document;
#                                       it is stored as policy "svc-NAME" and
#                                       attached to that user only
#   MINIO_INIT_TIMEOUT        seconds to wait for the server        (default 120)
#   MC_CONFIG_DIR             mc state directory; must be writable  (default /tmp/.mc)
#
# A file's content is used with one trailing newline removed.
# Exit status: 0 when everything is in place, non-zero on the first failure.
set -euo pipefail

readonly ALIAS=target
readonly URL="${MINIO_INIT_URL:-http://minio:9000}"
readonly TIMEOUT="${MINIO_INIT_TIMEOUT:-120}"
export MC_CONFIG_DIR="${MC_CONFIG_DIR:-/tmp/.mc}"

log() { printf 'minio-init: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Reads a secret file named by the variable $1, dropping one trailing newline.
read_secret_file() {
  local var=$1 path value
  path="${!var:-}"
  [[ -n $path ]] || die "$var is not set"
  [[ -r $path ]] || die "$var: cannot read $path"
  value="$(<"$path")"$'\n'
  value="${value%$'\n'}"
  [[ -n $value ]] || die "$var: $path is empty"
  printf '%s' "$value"
}

# Splits a comma-separated list into the array named by $2, dropping blanks.
split_list() {
  local -n out=$2
  local item items
  out=()
  IFS=',' read -r -a items <<<"$1"
  for item in "${items[@]}"; do
    item="${item#"${item%%[![:space:]]*}"}"
    item="${item%"${item##*[![:space:]]}"}"
    [[ -n $item ]] && out+=("$item")
  done
  return 0
}

connect() {
  local root_user root_password deadline=$((SECONDS + TIMEOUT))
  root_user="$(read_secret_file MINIO_ROOT_USER_FILE)"
  root_password="$(read_secret_file MINIO_ROOT_PASSWORD_FILE)"
  mkdir -p "$MC_CONFIG_DIR"
  chmod 700 "$MC_CONFIG_DIR"
  log "waiting for $URL"
  # Keys go through stdin so they never appear in a process listing.
  until printf '%s\n%s\n' "$root_user" "$root_password" \
      | mc alias set "$ALIAS" "$URL" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "$URL did not accept the root credentials within ${TIMEOUT}s"
    sleep 2
  done
  until mc ready "$ALIAS" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "$URL did not become ready within ${TIMEOUT}s"
    sleep 2
  done
}

ensure_buckets() {
  local buckets=() bucket
  split_list "${MINIO_BUCKETS:-}" buckets
  for bucket in "${buckets[@]}"; do
    mc mb --ignore-existing "$ALIAS/$bucket" >/dev/null
    log "bucket $bucket ready"
  done
}

ensure_user() {
  local name=$1 key access_key secret_key policy_var policy_file policy
  key="$(printf '%s' "$name" | tr '[:lower:]' '[:upper:]' | tr -c 'A-Z0-9' '_')"
  access_key="$(read_secret_file "MINIO_USER_${key}_ACCESS_KEY_FILE")"
  secret_key="$(read_secret_file "MINIO_USER_${key}_SECRET_KEY_FILE")"
  policy_var="MINIO_USER_${key}_POLICY"
  policy_file="${!policy_var:-}"
  [[ -n $policy_file ]] || die "$policy_var is not set"
  [[ -r $policy_file ]] || die "$policy_var: cannot read $policy_file"
  policy="svc-$name"

  mc admin policy create "$ALIAS" "$policy" "$policy_file" >/dev/null
  printf '%s\n%s\n' "$access_key" "$secret_key" | mc admin user add "$ALIAS" >/dev/null
  # Attaching a policy that is already attached is reported as success.
  mc admin policy attach "$ALIAS" "$policy" --user "$access_key" >/dev/null
  log "user $name ready with policy $policy"
}

main() {
  command -v mc >/dev/null || die "mc not found on PATH"
  connect
  ensure_buckets
  local users=() user
  split_list "${MINIO_INIT_USERS:-}" users
  for user in "${users[@]}"; do
    ensure_user "$user"
  done
  log "done"
}

main "$@"
