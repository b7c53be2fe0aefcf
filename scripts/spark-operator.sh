#!/usr/bin/env bash
# The Kubeflow Spark Operator from source: its Go source and Helm chart at one
# pinned version, and the operator binary built from that source.
#
# Usage: scripts/spark-operator.sh [source|binary|chart]
#   source   unpack the source (default: print nothing else)
#   binary   also build bin/spark-operator; prints the binary's path
#   chart    unpack and print the chart's directory
#
# Where the source comes from, first that works:
#   1. $SPARK_OPERATOR_TARBALL, or ../shared/vendor/spark-operator-<ver>.tar.gz
#      beside the repository (an offline copy, checked against its sha256);
#   2. the Go module github.com/kubeflow/spark-operator/v2@v<ver> through the
#      machine's Go module proxy (the module carries the chart too).
#
# Everything lands in <cache>/spark-operator/<ver>/ and is reused.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=lib.sh
source "$REPO_ROOT/scripts/lib.sh"

VERSION=${SPARK_OPERATOR_VERSION:-2.5.2}
TARBALL_SHA256=8651cfe7d059c06063bf0f0e9edc27fd27b6ca773824720ec0a49b3186c1a4bd
MODULE=github.com/kubeflow/spark-operator/v2
# The tag's commit, stamped into the binary as upstream does.
COMMIT=43afb8bbd32463037d8fb6e414e252c69081882b
DIR="$(dataplatform_cache)/spark-operator/$VERSION"
SRC="$DIR/src"

unpack() {
  [[ -f $SRC/go.mod ]] && return 0
  local tarball=${SPARK_OPERATOR_TARBALL:-$REPO_ROOT/../shared/vendor/spark-operator-$VERSION.tar.gz}
  rm -rf "$SRC.tmp" && mkdir -p "$SRC.tmp"
  if [[ -f $tarball ]]; then
    if [[ $VERSION == 2.5.2 ]]; then
      echo "$TARBALL_SHA256  $tarball" | sha256sum -c --quiet - >&2 \
        || die "$tarball does not match the sha256 of spark-operator $VERSION"
    fi
    tar -xzf "$tarball" -C "$SRC.tmp" --strip-components=1
  else
    local moddir
    moddir=$(go mod download -json "$MODULE@v$VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
    cp -R "$moddir/." "$SRC.tmp/" && chmod -R u+w "$SRC.tmp"
  fi
  [[ -f $SRC.tmp/go.mod && -d $SRC.tmp/charts/spark-operator-chart ]] \
    || die "the spark-operator $VERSION source lacks go.mod or charts/spark-operator-chart"
  mv "$SRC.tmp" "$SRC"
}

binary() {
  local out="$DIR/bin/spark-operator"
  if [[ ! -x $out ]]; then
    mkdir -p "$DIR/bin"
    # Upstream's `make build-operator`, with its version stamp.
    (cd "$SRC" && CGO_ENABLED=0 GOOS=linux nice -n 10 go build -mod=readonly -trimpath \
      -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=v$VERSION -X k8s.io/component-base/version.gitCommit=$COMMIT" -o "$out.tmp" ./cmd/operator) >&2
    mv "$out.tmp" "$out"
  fi
  printf '%s\n' "$out"
}

unpack
case ${1:-source} in
  source) ;;
  binary) binary ;;
  chart) printf '%s\n' "$SRC/charts/spark-operator-chart" ;;
  *) die "unknown argument $1 (source, binary or chart)" ;;
esac
