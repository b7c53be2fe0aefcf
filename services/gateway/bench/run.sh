#!/usr/bin/env bash
# Latency and throughput of POST /v1/predict, straight to the upstream and
# through the gateway, at several concurrencies. Loopback only; every run is
# bounded in time.
#
#   services/gateway/bench/run.sh                 # against the stub upstream
#   BENCH_UPSTREAM_URL=http://127.0.0.1:3000 services/gateway/bench/run.sh
#
# Settings (environment):
#   BENCH_UPSTREAM_URL   inference base URL (default: start the stub upstream)
#   BENCH_STUB_DELAY_MS  the stub's time per prediction (default 0: no work at all)
#   BENCH_CONCURRENCY    connections per run (default "1 8 32")
#   BENCH_DURATION       seconds measured per run (default 10)
#   BENCH_WARMUP         seconds of warm-up per run (default 2)
#   BENCH_GATEWAY_LOG    gateway log filter (default "info": one access line per request)
#   BENCH_SKIP_BUILD     set to skip `cargo build --release`
#   BENCH_GATEWAY_BIN    gateway binary to run (default: the release build)
# Needs: wrk, redis-server, cargo (Debian: apt-get install -y wrk redis-server).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
crate="$(dirname "$here")"
concurrency=${BENCH_CONCURRENCY:-"1 8 32"}
duration=${BENCH_DURATION:-10}
warmup=${BENCH_WARMUP:-2}

for tool in wrk redis-server cargo; do
  command -v "$tool" >/dev/null || { echo "bench: $tool not found" >&2; exit 1; }
done

if [[ -z "${BENCH_SKIP_BUILD:-}" ]]; then
  (cd "$crate" && cargo build --release --locked --bin gateway --example stub_upstream)
fi
target_dir="$(cd "$crate" && cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_http() {
  local url=$1
  for _ in $(seq 100); do
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$url" \
      2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench: $url did not come up" >&2
  exit 1
}

upstream=${BENCH_UPSTREAM_URL:-}
if [[ -z "$upstream" ]]; then
  port=$(free_port)
  "$target_dir/release/examples/stub_upstream" "127.0.0.1:$port" "${BENCH_STUB_DELAY_MS:-0}" \
    2>"$work/stub.log" &
  pids+=($!)
  upstream="http://127.0.0.1:$port"
fi
wait_http "$upstream/healthz"

redis_port=$(free_port)
redis_password="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  --requirepass "$redis_password" --dir "$work" >"$work/redis.log" 2>&1 &
pids+=($!)

api_key="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s\n' "$api_key" >"$work/api-keys"
printf '%s\n' "$redis_password" >"$work/redis-password"
gateway_port=$(free_port)
GATEWAY_LISTEN="127.0.0.1:$gateway_port" \
GATEWAY_UPSTREAM_URL="$upstream" \
GATEWAY_REDIS_URL="redis://127.0.0.1:$redis_port/1" \
GATEWAY_REDIS_PASSWORD_FILE="$work/redis-password" \
GATEWAY_API_KEYS_FILE="$work/api-keys" \
GATEWAY_RATE_LIMIT=1000000000 \
GATEWAY_RATE_WINDOW_SECONDS=1 \
GATEWAY_RATE_LIMIT_FAIL_MODE=closed \
GATEWAY_LOG="${BENCH_GATEWAY_LOG:-info}" \
  "${BENCH_GATEWAY_BIN:-$target_dir/release/gateway}" >"$work/gateway.log" 2>&1 &
pids+=($!)
gateway="http://127.0.0.1:$gateway_port"
wait_http "$gateway/readyz"

export BENCH_API_KEY="$api_key"

# Prints "p50_ms p99_ms requests_per_second" for one wrk run.
measure() {
  local url=$1 connections=$2 threads out
  threads=$(( connections < 2 ? 1 : 2 ))
  wrk -t"$threads" -c"$connections" -d"${warmup}s" -s "$here/post.lua" "$url/v1/predict" >/dev/null
  out="$(wrk -t"$threads" -c"$connections" -d"${duration}s" --latency -s "$here/post.lua" "$url/v1/predict")"
  if ! grep -q '^non_2xx_responses 0$' <<<"$out" || grep -q 'Socket errors' <<<"$out"; then
    echo "bench: failed requests against $url" >&2
    echo "$out" >&2
    echo "bench: gateway answers by status:" >&2
    grep -o '"status":[0-9]*' "$work/gateway.log" | sort | uniq -c >&2 || true
    grep -v '"message":"request"' "$work/gateway.log" | tail -5 >&2 || true
    exit 1
  fi
  awk '
    function ms(v) {
      if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
      if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
      if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
      return v
    }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    $1 == "Requests/sec:" { rps = $2 }
    END { printf "%.3f %.3f %.0f\n", p50, p99, rps }
  ' <<<"$out"
}

printf '| connections | direct p50 ms | gateway p50 ms | added p50 ms | direct p99 ms | gateway p99 ms | added p99 ms | direct req/s | gateway req/s | gateway/direct |\n'
printf '|---|---|---|---|---|---|---|---|---|---|\n'
for c in $concurrency; do
  read -r d50 d99 drps < <(measure "$upstream" "$c")
  read -r g50 g99 grps < <(measure "$gateway" "$c")
  awk -v c="$c" -v d50="$d50" -v g50="$g50" -v d99="$d99" -v g99="$g99" -v drps="$drps" -v grps="$grps" \
    'BEGIN { printf "| %d | %.3f | %.3f | %+.3f | %.3f | %.3f | %+.3f | %d | %d | %.1f%% |\n",
             c, d50, g50, g50 - d50, d99, g99, g99 - d99, drps, grps, 100 * grps / drps }'
done
