#!/usr/bin/env bash
# Container health check for every Spark role: healthy when a Spark web UI in
# this container answers HTTP with 2xx/3xx. The master UI (8080), a worker UI
# (8081) and a driver UI (4040) are tried in turn, so one check fits all roles
# without knowing which one runs here.
#   SPARK_HEALTHCHECK_PORT  probe only this port
set -uo pipefail

probe() {
  local port=$1 status
  exec 3<>"/dev/tcp/127.0.0.1/${port}" || return 1
  printf 'GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
  read -r -t 4 _ status _ <&3 || return 1
  exec 3>&-
  [[ $status == [23]?? ]]
}

if [[ -n ${SPARK_HEALTHCHECK_PORT:-} ]]; then
  probe "$SPARK_HEALTHCHECK_PORT"
  exit
fi
for port in "${SPARK_MASTER_WEBUI_PORT:-8080}" "${SPARK_WORKER_WEBUI_PORT:-8081}" 4040; do
  probe "$port" 2>/dev/null && exit 0
done
exit 1
