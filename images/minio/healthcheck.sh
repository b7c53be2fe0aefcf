#!/usr/bin/env bash
# Liveness probe for the MinIO server in this container, without curl: an
# HTTP/1.0 GET of /minio/health/live over bash's /dev/tcp. Exits 0 on 200.
#   MINIO_HEALTHCHECK_PORT  port the S3 API listens on (default 9000)
set -euo pipefail

port="${MINIO_HEALTHCHECK_PORT:-9000}"
exec 3<>"/dev/tcp/127.0.0.1/${port}"
printf 'GET /minio/health/live HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
read -r -t 4 _ status _ <&3
[[ $status == 200 ]]
