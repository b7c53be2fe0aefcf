#!/usr/bin/env bash
# Entry point of the Spark image.
#
#   driver ARGS...    Spark-on-Kubernetes driver pod (spark-submit in client
#                     mode inside the pod, bound to the pod's address)
#   executor          Spark-on-Kubernetes executor pod (KubernetesExecutorBackend,
#                     configured entirely through SPARK_* variables)
#   anything else     run as given: spark-class ..., spark-submit ..., bash
#
# The driver/executor contract is the one Spark's Kubernetes scheduler backend
# expects of an image (the spark-operator uses the same backend): the pod spec
# passes `driver`/`executor` as arguments and the settings as environment.
# tini runs as PID 1 so signals reach the JVM and zombies are reaped when the
# runtime does not provide an init process.
set -euo pipefail

usage() {
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 64
}

(($#)) || usage

# Local scratch, in case /tmp is an empty volume mounted at start.
mkdir -p "${SPARK_WORKER_DIR:-/tmp/spark-work}" /tmp/spark-local 2>/dev/null || true

# Spark's classpath for the two Kubernetes roles: configuration first, so a
# mounted spark.properties / log4j2.properties wins over the jars' defaults.
kubernetes_classpath() {
  local cp="${SPARK_CLASSPATH:-}${SPARK_CLASSPATH:+:}${SPARK_HOME}/jars/*"
  [[ -n ${HADOOP_CONF_DIR:-} ]] && cp="${HADOOP_CONF_DIR}:${cp}"
  cp="${SPARK_CONF_DIR:-${SPARK_HOME}/conf}:${cp}"
  [[ -n ${SPARK_DIST_CLASSPATH:-} ]] && cp="${cp}:${SPARK_DIST_CLASSPATH}"
  printf '%s' "$cp"
}

# JVM options for executors arrive as SPARK_JAVA_OPT_0, SPARK_JAVA_OPT_1, ...;
# their numeric order is significant.
executor_java_opts() {
  local -n opts=$1
  local name
  opts=()
  while IFS= read -r name; do
    opts+=("${!name}")
  done < <(compgen -e | grep -E '^SPARK_JAVA_OPT_[0-9]+$' | sort -t_ -k4 -n)
}

role=$1
case $role in
  driver)
    shift
    : "${SPARK_DRIVER_BIND_ADDRESS:?the driver pod must set SPARK_DRIVER_BIND_ADDRESS}"
    export SPARK_CLASSPATH
    SPARK_CLASSPATH="$(kubernetes_classpath)"
    cmd=(
      "${SPARK_HOME}/bin/spark-submit"
      --conf "spark.driver.bindAddress=${SPARK_DRIVER_BIND_ADDRESS}"
      --conf "spark.executorEnv.SPARK_DRIVER_POD_IP=${SPARK_DRIVER_BIND_ADDRESS}"
      --deploy-mode client
      "$@"
    )
    ;;
  executor)
    shift
    declare -a java_opts
    executor_java_opts java_opts
    cmd=(
      "${JAVA_HOME}/bin/java"
      "${java_opts[@]}"
      "-Xms${SPARK_EXECUTOR_MEMORY:?}"
      "-Xmx${SPARK_EXECUTOR_MEMORY}"
      -cp "$(kubernetes_classpath)"
      org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend
      --driver-url "${SPARK_DRIVER_URL:?}"
      --executor-id "${SPARK_EXECUTOR_ID:?}"
      --cores "${SPARK_EXECUTOR_CORES:?}"
      --app-id "${SPARK_APPLICATION_ID:?}"
      --hostname "${SPARK_EXECUTOR_POD_IP:?}"
      --resourceProfileId "${SPARK_RESOURCE_PROFILE_ID:-0}"
      --podName "${SPARK_EXECUTOR_POD_NAME:-$(hostname)}"
    )
    ;;
  *)
    cmd=("$@")
    ;;
esac

# Under an init process already (docker run --init), tini would only warn.
if [[ $$ == 1 ]]; then
  exec /usr/bin/tini -s -- "${cmd[@]}"
fi
exec "${cmd[@]}"
