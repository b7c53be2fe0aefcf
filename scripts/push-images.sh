#!/usr/bin/env bash
# Push images built here to a registry a cluster pulls from.
#
# Usage: push-images.sh REGISTRY IMAGE...
#   REGISTRY  a registry and path prefix, such as 127.0.0.1:5000/dataplatform
#   IMAGE     a local image, dataplatform/<name>:<tag>; it is pushed as
#             REGISTRY/<name>:<tag>
#
# Prints each pushed reference with its digest.
set -euo pipefail

(($# >= 2)) || { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
registry=${1%/}
shift
for image in "$@"; do
  [[ $image == dataplatform/*:* ]] || { echo "push-images: $image is not dataplatform/<name>:<tag>" >&2; exit 2; }
  target="$registry/${image#dataplatform/}"
  docker tag "$image" "$target"
  docker push --quiet "$target" >/dev/null
  printf '%s@%s\n' "$target" "$(docker image inspect -f '{{index .RepoDigests 0}}' "$target" | sed 's/.*@//')"
done
