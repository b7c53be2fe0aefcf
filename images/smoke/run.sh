#!/usr/bin/env bash
# Smoke test of the built images on the local engine, hardened as the stack
# runs them (read-only root, tmpfs /tmp, all capabilities dropped):
#   1. MinIO server + minio-init: buckets and a least-privilege Spark user
#   2. Spark master + worker on a user-defined network; the worker must show
#      up ALIVE in the master's /json
#   3. spark-submit of s3a_roundtrip.py against the master: a Parquet write to
#      and read from s3a://lake/ through the Spark user
#   4. both images' HEALTHCHECKs report healthy
# Everything it creates is named dp-smoke-* and removed on exit.
#
# Usage: images/smoke/run.sh [SPARK_IMAGE] [MINIO_IMAGE]
#   (default: dataplatform/spark:0.1.0 dataplatform/minio:0.1.0)
set -euo pipefail

readonly SPARK_IMAGE="${1:-dataplatform/spark:0.1.0}"
readonly MINIO_IMAGE="${2:-dataplatform/minio:0.1.0}"
readonly NET=dp-smoke-net
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly HERE
WORK="$(mktemp -d /tmp/dp-smoke.XXXXXX)"
readonly WORK
readonly SECRETS="$WORK/secrets"

log() { printf 'smoke: %s\n' "$*" >&2; }

cleanup() {
  local rc=$?
  if ((rc != 0)); then
    for c in dp-smoke-master dp-smoke-worker dp-smoke-minio; do
      log "--- last log lines of $c"
      docker logs --tail 30 "$c" 2>&1 | sed 's/^/  /' >&2 || true
    done
  fi
  docker rm -f dp-smoke-master dp-smoke-worker dp-smoke-minio dp-smoke-submit >/dev/null 2>&1 || true
  docker network rm "$NET" >/dev/null 2>&1 || true
  docker volume rm dp-smoke-minio-data >/dev/null 2>&1 || true
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT

# Hardening every container gets; /tmp is noexec, as Docker mounts tmpfs by
# default.
# shellcheck disable=SC2054  # the commas are tmpfs mount options
HARDENED=(--read-only --tmpfs /tmp:rw,nosuid,nodev,size=512m --cap-drop ALL
          --security-opt no-new-privileges --network "$NET")

random() { head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c "$1"; }

wait_for() {
  local what=$1 tries=$2; shift 2
  local i
  for ((i = 0; i < tries; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 2
  done
  log "timed out waiting for $what"
  return 1
}

mkdir -p "$SECRETS"
random 16 >"$SECRETS/root-user"
random 32 >"$SECRETS/root-password"
random 16 >"$SECRETS/spark-access-key"
random 32 >"$SECRETS/spark-secret-key"
cat >"$SECRETS/spark-policy.json" <<'POLICY'
{"Version": "2012-10-17", "Statement": [
  {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
   "Resource": ["arn:aws:s3:::lake"]},
  {"Effect": "Allow",
   "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject",
              "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
   "Resource": ["arn:aws:s3:::lake/*"]}]}
POLICY
cp "$HERE/s3a_roundtrip.py" "$WORK/"
# The containers' users (1000, 185) read these through a bind mount.
chmod 755 "$WORK" "$SECRETS"
chmod 644 "$SECRETS"/* "$WORK/s3a_roundtrip.py"

docker network create "$NET" >/dev/null

log "starting MinIO ($MINIO_IMAGE)"
docker run -d --name dp-smoke-minio "${HARDENED[@]}" \
  -v dp-smoke-minio-data:/data -v "$SECRETS:/run/secrets:ro" \
  -e MINIO_ROOT_USER_FILE=/run/secrets/root-user \
  -e MINIO_ROOT_PASSWORD_FILE=/run/secrets/root-password \
  "$MINIO_IMAGE" >/dev/null

log "minio-init: buckets and the spark user"
docker run --rm "${HARDENED[@]}" -v "$SECRETS:/run/secrets:ro" \
  -e MINIO_INIT_URL=http://dp-smoke-minio:9000 \
  -e MINIO_ROOT_USER_FILE=/run/secrets/root-user \
  -e MINIO_ROOT_PASSWORD_FILE=/run/secrets/root-password \
  -e MINIO_BUCKETS=raw,lake,models,spark-events \
  -e MINIO_INIT_USERS=spark \
  -e MINIO_USER_SPARK_ACCESS_KEY_FILE=/run/secrets/spark-access-key \
  -e MINIO_USER_SPARK_SECRET_KEY_FILE=/run/secrets/spark-secret-key \
  -e MINIO_USER_SPARK_POLICY=/run/secrets/spark-policy.json \
  "$MINIO_IMAGE" minio-init

log "starting Spark master and worker ($SPARK_IMAGE)"
docker run -d --name dp-smoke-master --hostname dp-smoke-master "${HARDENED[@]}" \
  "$SPARK_IMAGE" spark-class org.apache.spark.deploy.master.Master \
  --host dp-smoke-master --port 7077 --webui-port 8080 >/dev/null
docker run -d --name dp-smoke-worker --hostname dp-smoke-worker "${HARDENED[@]}" \
  "$SPARK_IMAGE" spark-class org.apache.spark.deploy.worker.Worker \
  --cores 2 --memory 1g --webui-port 8081 spark://dp-smoke-master:7077 >/dev/null

master_json() {
  docker exec dp-smoke-master python3 -c \
    'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:8080/json/", timeout=4).read().decode())'
}
worker_alive() { master_json | grep -q '"state" *: *"ALIVE"'; }
wait_for "the worker to register" 60 worker_alive
log "worker registered: $(master_json | python3 -c 'import json,sys; d=json.load(sys.stdin); print([(w["host"], w["state"], w["cores"]) for w in d["workers"]])')"

log "spark-submit s3a round trip"
if ! docker run --rm --name dp-smoke-submit --hostname dp-smoke-submit "${HARDENED[@]}" \
  -v "$SECRETS:/run/secrets:ro" -v "$WORK/s3a_roundtrip.py:/opt/smoke/s3a_roundtrip.py:ro" \
  -e DP_S3_ENDPOINT=http://dp-smoke-minio:9000 \
  -e DP_S3_ACCESS_KEY_FILE=/run/secrets/spark-access-key \
  -e DP_S3_SECRET_KEY_FILE=/run/secrets/spark-secret-key \
  "$SPARK_IMAGE" spark-submit --master spark://dp-smoke-master:7077 \
  --conf spark.driver.host=dp-smoke-submit --conf spark.executor.memory=512m \
  /opt/smoke/s3a_roundtrip.py lake >"$WORK/submit.log" 2>&1; then
  tail -n 40 "$WORK/submit.log" >&2
  log "spark-submit failed"
  exit 1
fi
grep -E '^(path=|smoke test)' "$WORK/submit.log" >&2

app_done() { master_json | grep -q '"completedapps" *: *\[ *{'; }
wait_for "the application to be listed as completed" 10 app_done

healthy() { [[ $(docker inspect -f '{{.State.Health.Status}}' "$1") == healthy ]]; }
for c in dp-smoke-minio dp-smoke-master dp-smoke-worker; do
  wait_for "$c to be healthy" 30 healthy "$c"
done
log "health: minio, master and worker report healthy"
log "passed"
