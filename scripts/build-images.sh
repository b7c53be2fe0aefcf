#!/usr/bin/env bash
# Build the project's images and print their sizes.
#
# Usage: build-images.sh [--standins] [IMAGE...]
#   IMAGE      spark, minio, gateway, inference, redis-standin,
#              prometheus-standin, alertmanager-standin, spark-operator
#              (default: the first four, plus the stand-ins with --standins;
#              spark-operator is built from source for clusters that cannot
#              pull upstream's image, see scripts/spark-operator.sh)
#   --standins also build the local stand-ins for Redis, Prometheus and
#              Alertmanager, for machines that cannot pull the official images
#
# Tags follow docs/contracts.md: dataplatform/<name>:<version>, where version
# is the stack's `version` setting (Pulumi.yaml default, or DATAPLATFORM_VERSION).
# The stand-ins are tagged with the Debian versions they carry.
#
# Environment:
#   DATAPLATFORM_VERSION       tag of the project's images
#   DATAPLATFORM_BUILD_CA_FILE PEM file of extra CAs trusted while building
#                              (default: /usr/local/share/ca-certificates/*.crt)
#   DATAPLATFORM_CACHE         cache dir; build logs go to its logs/ folder
#   SPARK_OPERATOR_VERSION     the Spark Operator's version (default 2.5.2)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT
SPARK_OPERATOR_VERSION=${SPARK_OPERATOR_VERSION:-2.5.2}
readonly LOG_DIR="${DATAPLATFORM_CACHE:-$HOME/.cache/dataplatform}/logs"

log() { printf 'build-images: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# The `version` default declared in Pulumi.yaml's config block.
stack_version() {
  awk '
    /^config:/ { in_config = 1; next }
    in_config && /^[^ ]/ { in_config = 0 }
    in_config && /^  version:/ { in_version = 1; next }
    in_version && /^  [^ ]/ { in_version = 0 }
    in_version && /^ +default:/ { print $2; exit }
  ' "$REPO_ROOT/Pulumi.yaml"
}

extra_ca_certs() {
  if [[ -n ${DATAPLATFORM_BUILD_CA_FILE:-} ]]; then
    cat "$DATAPLATFORM_BUILD_CA_FILE"
  else
    cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true
  fi
}

# Per image: its tag, and its size goal in MB (0: none).
declare -A TAG GOAL
declare -a BUILT=() FAILED=() SKIPPED=()
declare -A SECONDS_TAKEN

# Runs one build with its output in a log file; records time or failure.
run_build() {
  local name=$1; shift
  local logfile="$LOG_DIR/$name.log" start=$SECONDS
  log "building $name as ${TAG[$name]} (log: $logfile)"
  if "$@" >"$logfile" 2>&1; then
    SECONDS_TAKEN[$name]=$((SECONDS - start))
    BUILT+=("$name")
  else
    tail -n 25 "$logfile" >&2
    log "$name failed after $((SECONDS - start))s"
    FAILED+=("$name")
  fi
}

docker_build() {
  local name=$1; shift
  docker build --build-arg "EXTRA_CA_CERTS=$CA" -t "${TAG[$name]}" "$@"
}

# The Spark Dockerfile reads only images/spark/ and jobs/ from the repository
# root. Streaming just those files (tracked or not ignored by git, so no
# virtualenvs or caches) keeps the context small for any builder.
spark_context() {
  local paths=(images/spark jobs)
  if git -C "$REPO_ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git -C "$REPO_ROOT" ls-files -z --cached --others --exclude-standard -- "${paths[@]}" \
      | while IFS= read -r -d '' f; do
          # Deleted but still tracked files are not sent.
          if [[ -e $REPO_ROOT/$f ]]; then printf '%s\0' "$f"; fi
        done \
      | tar -C "$REPO_ROOT" --null -T - -c
  else
    tar -C "$REPO_ROOT" -c --exclude=.venv --exclude=__pycache__ --exclude='*.pyc' \
      --exclude=.pytest_cache --exclude=.mypy_cache --exclude=.ruff_cache "${paths[@]}"
  fi
}

spark_build() {
  spark_context | docker_build spark -f images/spark/Dockerfile -
}

# The operator binary is built from source on the host (Go's caches make a
# rebuild quick); the image puts it on the project's Spark image.
spark_operator_build() {
  local binary context
  binary=$(bash "$REPO_ROOT/scripts/spark-operator.sh" binary)
  context=$(mktemp -d)
  install -m 0755 "$binary" "$context/spark-operator"
  cp "$REPO_ROOT/images/spark-operator/Dockerfile" "$context/"
  docker_build spark-operator --build-arg "SPARK_IMAGE=${TAG[spark]}" \
    --build-arg "OPERATOR_VERSION=$SPARK_OPERATOR_VERSION" "$context"
  local rc=$?
  rm -rf "$context"
  return $rc
}

build_dir() {
  local name=$1 dir=$2
  if [[ ! -f $REPO_ROOT/$dir/Dockerfile ]]; then
    log "skipping $name: $dir/Dockerfile does not exist yet"
    SKIPPED+=("$name")
    return 0
  fi
  run_build "$name" docker_build "$name" "$REPO_ROOT/$dir"
}

print_table() {
  local name size goal note
  printf '\n%-20s %-42s %9s %9s %8s\n' IMAGE TAG SIZE GOAL BUILD
  for name in "${BUILT[@]}"; do
    size=$(( $(docker image inspect -f '{{.Size}}' "${TAG[$name]}") / 1000000 ))
    goal=${GOAL[$name]}
    note=""
    ((goal > 0 && size >= goal)) && note="  over goal"
    printf '%-20s %-42s %6d MB %9s %7ss%s\n' "$name" "${TAG[$name]}" "$size" \
      "$( ((goal > 0)) && printf '< %d MB' "$goal" || printf -- '-')" "${SECONDS_TAKEN[$name]}" "$note"
  done
  for name in "${SKIPPED[@]}"; do printf '%-20s skipped\n' "$name"; done
  for name in "${FAILED[@]}"; do printf '%-20s FAILED (see %s)\n' "$name" "$LOG_DIR/$name.log"; done
}

main() {
  local standins=0 targets=() name
  while (($#)); do
    case $1 in
      --standins) standins=1 ;;
      -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; return 0 ;;
      -*) die "unknown option $1" ;;
      *) targets+=("$1") ;;
    esac
    shift
  done
  if ((${#targets[@]} == 0)); then
    targets=(spark minio gateway inference)
    ((standins)) && targets+=(redis-standin prometheus-standin alertmanager-standin)
  fi

  local version="${DATAPLATFORM_VERSION:-$(stack_version)}"
  [[ -n $version ]] || die "cannot read the image version from Pulumi.yaml; set DATAPLATFORM_VERSION"
  TAG=(
    [spark]="dataplatform/spark:$version" [minio]="dataplatform/minio:$version"
    [gateway]="dataplatform/gateway:$version" [inference]="dataplatform/inference:$version"
    [redis-standin]="dataplatform/redis-standin:7.0"
    [prometheus-standin]="dataplatform/prometheus-standin:2.42"
    [alertmanager-standin]="dataplatform/alertmanager-standin:0.25"
    [spark-operator]="dataplatform/spark-operator:$SPARK_OPERATOR_VERSION"
  )
  GOAL=([spark]=1500 [minio]=0 [gateway]=100 [inference]=500 [redis-standin]=0 [prometheus-standin]=0
        [alertmanager-standin]=0 [spark-operator]=0)
  for name in "${targets[@]}"; do
    [[ -n ${TAG[$name]:-} ]] || die "unknown image $name"
  done

  docker info >/dev/null 2>&1 || die "no Docker engine answers (run scripts/docker-engine.sh)"
  bash "$REPO_ROOT/scripts/base-images.sh"
  mkdir -p "$LOG_DIR"
  CA="$(extra_ca_certs)"

  for name in "${targets[@]}"; do
    case $name in
      spark) run_build spark spark_build ;;
      minio) build_dir minio images/minio ;;
      gateway) build_dir gateway services/gateway ;;
      inference) build_dir inference services/inference ;;
      redis-standin) build_dir redis-standin images/standins/redis ;;
      prometheus-standin) build_dir prometheus-standin images/standins/prometheus ;;
      alertmanager-standin) build_dir alertmanager-standin images/standins/alertmanager ;;
      spark-operator) run_build spark-operator spark_operator_build ;;
    esac
  done
  print_table
  ((${#FAILED[@]} == 0))
}

main "$@"
