#!/usr/bin/env bash
# Times `docker compose up -d --wait` of the platform, from a Compose file
# generated from the same declarations as the dev stack (generate.py), on
# the images already built locally.
#
# Usage: benchmarks/compose/compare.sh [-n RUNS] [--against SECONDS] [--keep] [--smoke]
#
#   -n, --runs N         runs (default 3); each is `up -d --wait` timed,
#                        then `down -v`
#   --against SECONDS    a Pulumi time to healthy to compare with: prints the
#                        ratio and fails if it is above 1.2
#   --keep               keep the generated file (benchmarks/compose/out/,
#                        mode 0600, ignored by git); default: a temp file
#   --smoke              the short pass of `make bench-smoke`: one run
#   -h, --help           this help
#
# Redis and Prometheus run from their official images if those are present
# locally and from the stand-ins (scripts/build-images.sh --standins)
# otherwise; Grafana only if its image is present. Nothing is pulled: a
# missing image ends the run with status 2. The Compose project is
# dp-compose-bench (containers, network and volumes carry that prefix) and
# every port is published on a free host port, so a running dev stack is
# not touched. Whatever a run created is removed on exit, failure included.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source-path=SCRIPTDIR/../..
# shellcheck source=scripts/lib.sh
source "$repo/scripts/lib.sh"

project=dp-compose-bench
runs=3
against=''
keep=false
while (($#)); do
  case $1 in
    -n | --runs)
      runs=${2:?--runs needs a number}
      shift
      ;;
    --against)
      against=${2:?--against needs seconds}
      shift
      ;;
    --keep) keep=true ;;
    # One `up --wait` is already the whole path: generate, check, time,
    # milestones, down and the summary (benchmarks/modes.py SMOKE["compose"]).
    --smoke) runs=1 ;;
    -h | --help)
      sed -n '2,24s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
      exit 0
      ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
  shift
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "--runs: not a positive number: $runs"

python=$repo/.venv/bin/python
[[ -x $python ]] || python=python3

if ! docker compose version >/dev/null 2>&1; then
  printf 'docker compose is not installed: run benchmarks/compose/install-compose.sh\n' >&2
  exit 2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/dp-compose-bench.XXXXXX")
chmod 700 "$work"
if $keep; then
  file=$here/out/compose.yaml
else
  file=$work/compose.yaml
fi
compose() { docker compose -p "$project" -f "$file" "$@"; }

child=''
cleanup() {
  # A `compose up` still running (interrupted run) first.
  if [[ -n $child ]] && kill -0 "$child" 2>/dev/null; then
    kill -TERM "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  # The project's containers, network and volumes; images stay.
  if [[ -f $file ]]; then
    compose down -v --remove-orphans --timeout 10 >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap '_dp_on_exit; cleanup' EXIT
trap 'exit 130' INT TERM

image_present() { docker image inspect "$1" >/dev/null 2>&1; }

# The reference a stack that sets no images.NAME runs: the default its
# service's spec declares (tools/defaults.py).
official() {
  (cd "$repo" && "$python" -c 'import sys; from tools.defaults import default_image; print(default_image(sys.argv[1]))' "$1")
}

generate() {
  local args=(--project "$project" --free-ports -o "$file") ref
  for name in redis prometheus alertmanager; do
    ref=$(official "$name")
    if image_present "$ref"; then
      info "$name: $ref"
    else
      case $name in
        redis) args+=(--image redis=dataplatform/redis-standin:7.0) ;;
        prometheus) args+=(--image prometheus=dataplatform/prometheus-standin:2.42) ;;
        alertmanager) args+=(--image alertmanager=dataplatform/alertmanager-standin:0.25) ;;
      esac
      info "$name: $ref is not here, using the stand-in"
    fi
  done
  ref=$(official grafana)
  if image_present "$ref"; then
    info "grafana: $ref"
  else
    args+=(--no-grafana)
    info "grafana: $ref is not here, left out"
  fi
  (cd "$repo" && "$python" -m benchmarks.compose.generate "${args[@]}")
}

check_images() {
  local missing=() ref
  while read -r ref; do
    if image_present "$ref"; then info "present: $ref"; else missing+=("$ref"); fi
  done < <(compose config --images | sort -u)
  if ((${#missing[@]})); then
    printf 'missing images (build them with scripts/build-images.sh --standins):\n' >&2
    printf '  %s\n' "${missing[@]}" >&2
    exit 2
  fi
}

leftovers() {
  if [[ -n $(docker ps -aq --filter "label=com.docker.compose.project=$project") ]]; then
    info "removing a previous run's containers"
    compose down -v --remove-orphans --timeout 10 >/dev/null 2>&1
  fi
}

# When each container started and was first seen healthy (its health log
# keeps the last five probes), in seconds after `up` began.
milestones() {
  local since=$1
  # shellcheck disable=SC2046
  docker inspect $(compose ps -aq) | "$python" -c '
import datetime, json, sys
since = float(sys.argv[1])
def at(stamp):
    # RFC 3339 with nanoseconds; keep microseconds for fromisoformat.
    head, _, frac = stamp.rstrip("Z").partition(".")
    frac = (frac.split("+")[0].split("-")[0] + "000000")[:6]
    t = datetime.datetime.fromisoformat(f"{head}.{frac}+00:00")
    return t.timestamp() - since
rows = []
for c in json.load(sys.stdin):
    state = c["State"]
    name = c["Config"]["Labels"].get("com.docker.compose.service", c["Name"])
    started = at(state["StartedAt"])
    health = state.get("Health") or {}
    ok = [at(p["End"]) for p in health.get("Log") or [] if p.get("ExitCode") == 0]
    if ok:
        end = f"healthy {min(ok):6.1f}s"
    elif state["Status"] == "exited":
        finished, code = at(state["FinishedAt"]), state["ExitCode"]
        end = f"exited  {finished:6.1f}s (status {code})"
    else:
        end = health.get("Status", state["Status"])
    rows.append((started, f"    {name:<16} started {started:6.1f}s  {end}"))
for _, row in sorted(rows):
    print(row)
' "$since"
}

times=()
run_once() {
  local index=$1 start end log=$work/up-$1.log
  start=$(_dp_now)
  # In the background, so that a signal reaches the trap at once.
  compose up -d --wait --wait-timeout 600 >"$log" 2>&1 &
  child=$!
  if ! wait "$child"; then
    tail -n 40 "$log" >&2
    compose ps -a >&2 || true
    for service in $(compose ps -a --status exited --status restarting --format '{{.Service}}' 2>/dev/null); do
      printf -- '--- %s\n' "$service" >&2
      compose logs --tail 30 "$service" >&2 || true
    done
    die "run $index: docker compose up --wait failed"
  fi
  end=$(_dp_now)
  child=''
  local took
  took=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
  times+=("$took")
  info "run $index: up --wait ${took}s"
  milestones "$start"
  local down_start
  down_start=$(_dp_now)
  compose down -v --remove-orphans --timeout 30 >"$work/down-$index.log" 2>&1
  info "run $index: down -v $(_dp_elapsed "$down_start")"
}

step "generate the Compose file from the dev declarations" generate
step "check the images" check_images
step "clear leftovers of project $project" leftovers
for ((i = 1; i <= runs; i++)); do
  step "run $i of $runs: docker compose up -d --wait" run_once "$i"
done

median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
log ""
log "docker compose up -d --wait, $runs runs: ${times[*]} (seconds)"
log "median: ${median}s"
if [[ -n $against ]]; then
  ratio=$(awk -v p="$against" -v c="$median" 'BEGIN { printf "%.2f", p / c }')
  log "Pulumi ${against}s / compose ${median}s = ${ratio}x (target: at most 1.2x)"
  awk -v r="$ratio" 'BEGIN { exit !(r <= 1.2) }' || exit 1
fi
