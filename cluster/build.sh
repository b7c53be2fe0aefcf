#!/usr/bin/env bash
# Builds everything the local cluster runs, into $CLUSTER_CACHE (default
# ~/.cache/dataplatform/cluster), outside the clone:
#
#   bin/     Kubernetes v1.33 (apiserver, controller-manager, scheduler,
#            kubelet, kube-proxy, kubectl, kubeadm), metrics-server,
#            kube-router, etcd, CoreDNS, Traefik, the image registry,
#            local-path-provisioner, pause, and two helpers of ours
#            (crireset for teardown, smoke for the smoke test)
#   images/  the add-on images (CLUSTER_IMAGES=local), saved for containerd
#
# Every Go module is pinned by the go.mod/go.sum under cluster/go/. Each
# piece has a stamp of its inputs (go.mod, go.sum, sources, versions, Go
# version); a warm run checks stamps and builds nothing.
#
# Usage: cluster/build.sh [--force]
# Environment: CLUSTER_CACHE, CLUSTER_IMAGES (local|upstream), GOMODCACHE,
# GOCACHE (the Go caches; empty ones give a cold build).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BUILD_FORCE=false
case "${1:-}" in
  --force) BUILD_FORCE=true ;;
  "") ;;
  -h | --help)
    sed -n '2,18s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
    exit 0
    ;;
  *) die "unknown argument: $1 (see --help)" ;;
esac

command -v go >/dev/null || PATH="/usr/local/go/bin:$PATH"
command -v go >/dev/null || die "Go 1.26 or later is required to build the cluster (https://go.dev/doc/install; the project's toolchain build uses the same Go)"
# The pause binary is C, linked statically.
ensure_packages gcc=gcc libc6-dev=/usr/include/stdio.h

go_src=$CLUSTER_DIR/go
mkdir -p "$CLUSTER_BIN" "$CLUSTER_STAMPS" "$CLUSTER_LOGS" "$CLUSTER_IMAGE_DIR"
# Stamps and build logs for fresh, stamp and run_logged (scripts/lib.sh); the
# prefix keeps build logs apart from the components' own in the same place.
BUILD_STAMPS=$CLUSTER_STAMPS BUILD_LOGS=$CLUSTER_LOGS BUILD_LOG_PREFIX=build-

# Static binaries (no cgo), paths trimmed, and go.sum as the only source of
# module checksums: a module missing from it is an error, never a download
# of something unpinned.
export CGO_ENABLED=0 GOFLAGS="-mod=readonly -trimpath"
go_version=$(go env GOVERSION)
# The builds share two cores with whatever else the machine runs.
nice_go() { nice -n 10 go "$@"; }

# The version strings stamped into binaries and image tags come from
# versions.env; make sure go.mod agrees, so the two cannot drift apart.
check_pins() {
  local dir module want have
  while read -r dir module want; do
    have=$(module_version "$go_src/$dir" "$module")
    [[ $have == "$want" ]] || die "cluster/go/$dir pins $module $have but versions.env says $want"
  done <<EOF
kubernetes k8s.io/kubernetes $KUBERNETES_VERSION
kubernetes sigs.k8s.io/metrics-server $METRICS_SERVER_VERSION
kubernetes github.com/cloudnativelabs/kube-router/v2 $KUBE_ROUTER_VERSION
addons go.etcd.io/etcd/server/v3 $ETCD_VERSION
addons github.com/coredns/coredns $COREDNS_VERSION
addons github.com/traefik/traefik/v3 $TRAEFIK_VERSION
registry github.com/distribution/distribution/v3 $REGISTRY_VERSION
local-path-provisioner github.com/rancher/local-path-provisioner $LOCAL_PATH_PROVISIONER_VERSION
EOF
}

kubernetes_binaries=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl kubeadm)

build_kubernetes() {
  local dir=$go_src/kubernetes key outputs=() name
  key=$(content_key "$dir/go.mod" "$dir/go.sum" "$dir/crireset/main.go" "$KUBERNETES_VERSION" \
    "$METRICS_SERVER_VERSION" "$KUBE_ROUTER_VERSION" "$go_version")
  for name in "${kubernetes_binaries[@]}" crireset metrics-server kube-router; do outputs+=("$CLUSTER_BIN/$name"); done
  if up_to_date kubernetes "$key" "Kubernetes $KUBERNETES_VERSION, metrics-server, kube-router" "${outputs[@]}"; then
    return
  fi
  info "Kubernetes $KUBERNETES_VERSION: building (about half an hour on a cold cache)"
  local minor=${KUBERNETES_VERSION#v1.}
  minor=${minor%%.*}
  # What the release's own build stamps (hack/lib/version.sh): without it the
  # binaries say v0.0.0-master and clients misjudge the server.
  local ldflags="-s -w" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  local packages=()
  for name in "${kubernetes_binaries[@]}"; do packages+=("k8s.io/kubernetes/cmd/$name"); done
  # One invocation for all of them: the compiler runs over the shared
  # packages once and the links run side by side.
  run_logged kubernetes nice_go -C "$dir" build -ldflags "$ldflags" -o "$CLUSTER_BIN/" "${packages[@]}" ./crireset
  # The add-ons of this module report their own versions; -X is applied at
  # link time, so these reuse every package compiled above.
  run_logged metrics-server nice_go -C "$dir" build \
    -ldflags "-s -w -X k8s.io/client-go/pkg/version.gitVersion=$METRICS_SERVER_VERSION" \
    -o "$CLUSTER_BIN/metrics-server" sigs.k8s.io/metrics-server/cmd/metrics-server
  run_logged kube-router nice_go -C "$dir" build \
    -ldflags "-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$KUBE_ROUTER_VERSION" \
    -o "$CLUSTER_BIN/kube-router" github.com/cloudnativelabs/kube-router/v2/cmd/kube-router
  stamp kubernetes "$key"
}

build_addons() {
  local dir=$go_src/addons key outputs=() name
  key=$(content_key "$dir/go.mod" "$dir/go.sum" "$dir/coredns/main.go" "$dir/smoke/main.go" \
    "$ETCD_VERSION" "$TRAEFIK_VERSION" "$go_version")
  for name in etcd coredns traefik smoke; do outputs+=("$CLUSTER_BIN/$name"); done
  if up_to_date addons "$key" "etcd, CoreDNS, Traefik" "${outputs[@]}"; then return; fi
  info "etcd $ETCD_VERSION, CoreDNS $COREDNS_VERSION, Traefik $TRAEFIK_VERSION: building"
  run_logged addons nice_go -C "$dir" build \
    -ldflags "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION" \
    -o "$CLUSTER_BIN/" ./coredns ./smoke github.com/traefik/traefik/v3/cmd/traefik
  # etcd's main package is the module root, which `go build` would name
  # after the module's last path element.
  run_logged etcd nice_go -C "$dir" build -ldflags "-s -w" -o "$CLUSTER_BIN/etcd" go.etcd.io/etcd/server/v3
  stamp addons "$key"
}

build_registry() {
  local dir=$go_src/registry key out=$CLUSTER_BIN/registry
  key=$(content_key "$dir/go.mod" "$dir/go.sum" "$REGISTRY_VERSION" "$go_version")
  if up_to_date registry "$key" registry "$out"; then return; fi
  run_logged registry nice_go -C "$dir" build \
    -ldflags "-s -w -X github.com/distribution/distribution/v3/version.version=$REGISTRY_VERSION" \
    -o "$out" github.com/distribution/distribution/v3/cmd/registry
  stamp registry "$key"
}

build_local_path_provisioner() {
  local dir=$go_src/local-path-provisioner key out=$CLUSTER_BIN/local-path-provisioner
  key=$(content_key "$dir/go.mod" "$dir/go.sum" "$LOCAL_PATH_PROVISIONER_VERSION" "$go_version")
  if up_to_date local-path-provisioner "$key" local-path-provisioner "$out"; then return; fi
  run_logged local-path-provisioner nice_go -C "$dir" build \
    -ldflags "-s -w -X main.VERSION=$LOCAL_PATH_PROVISIONER_VERSION" -o "$out" github.com/rancher/local-path-provisioner
  stamp local-path-provisioner "$key"
}

# The pod sandbox's init process, from the same Kubernetes module.
build_pause() {
  local dir src key out=$CLUSTER_BIN/pause
  dir=$(GOFLAGS=-mod=readonly go -C "$go_src/kubernetes" list -m -f '{{.Dir}}' k8s.io/kubernetes)
  [[ -n $dir ]] || dir=$(go -C "$go_src/kubernetes" mod download -json k8s.io/kubernetes | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  src=$dir/build/pause/linux/pause.c
  [[ -f $src ]] || die "pause.c not found in the k8s.io/kubernetes module ($src)"
  key=$(content_key "$src" "$PAUSE_VERSION" "$(gcc --version | head -n 1)")
  if up_to_date pause "$key" "pause $PAUSE_VERSION" "$out"; then return; fi
  # The flags of build/pause/Makefile.
  run_logged pause gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION-dataplatform" -o "$out" "$src"
  stamp pause "$key"
}

# --- images -----------------------------------------------------------------

# image name -> binary it runs. The names are this cluster's own; the
# manifests refer to them through the same table (cluster/up.sh).
declare -A image_binary=(
  [coredns]=coredns
  [metrics-server]=metrics-server
  [local-path-provisioner]=local-path-provisioner
  [traefik]=traefik
  [smoke]=smoke
)
declare -A image_version=(
  [coredns]=$COREDNS_VERSION
  [metrics-server]=$METRICS_SERVER_VERSION
  [local-path-provisioner]=$LOCAL_PATH_PROVISIONER_VERSION
  [traefik]=$TRAEFIK_VERSION
  [smoke]=1
)

build_images() {
  local base=debian:bookworm-slim archive=$CLUSTER_IMAGE_DIR/images.tar key name tag refs=() ctx
  # Keyed on what goes into the images; checked before anything touches the
  # Docker engine, so a warm start needs no engine at all. (The base is the
  # locally seeded one; after refreshing it, run with --force.)
  key=$(content_key "$CLUSTER_BIN/pause" "$CLUSTER_DIR/build.sh" \
    "$(for name in "${!image_binary[@]}"; do sha256sum <"$CLUSTER_BIN/${image_binary[$name]}"; done | sort)")
  if up_to_date images "$key" images "$archive"; then return; fi
  if ! command -v docker >/dev/null || ! docker info >/dev/null 2>&1; then
    bash "$REPO_ROOT/scripts/docker-engine.sh"
  fi
  bash "$REPO_ROOT/scripts/base-images.sh" "$base"
  info "images: building on $base"
  refs=("dataplatform-cluster/pause:$PAUSE_VERSION" "dataplatform-cluster/helper:bookworm")
  for name in "${!image_binary[@]}"; do refs+=("dataplatform-cluster/$name:${image_version[$name]}"); done
  ctx=$(mktemp -d)
  : >"$CLUSTER_LOGS/build-images.log"
  # shellcheck disable=SC2064  # expand now: the trap must remove this dir
  trap "rm -rf '$ctx'" RETURN

  # pause: the binary alone, as upstream's image is.
  tar -C "$CLUSTER_BIN" --owner=0 --group=0 -c pause |
    docker import -c 'ENTRYPOINT ["/pause"]' -c 'USER 65535:65535' - "dataplatform-cluster/pause:$PAUSE_VERSION" >/dev/null
  # The local-path provisioner's helper pods run its shell scripts.
  docker tag "$base" dataplatform-cluster/helper:bookworm

  for name in "${!image_binary[@]}"; do
    tag=dataplatform-cluster/$name:${image_version[$name]}
    mkdir -p "$ctx/$name"
    cp "$CLUSTER_BIN/${image_binary[$name]}" "$ctx/$name/"
    # Non-root by default; the manifests add what a component needs.
    docker build -t "$tag" -f - "$ctx/$name" >>"$CLUSTER_LOGS/build-images.log" 2>&1 <<EOF ||
FROM $base
COPY ${image_binary[$name]} /usr/local/bin/${image_binary[$name]}
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/${image_binary[$name]}"]
EOF
      { tail -n 20 "$CLUSTER_LOGS/build-images.log" >&2; die "building image $tag failed"; }
  done
  # One archive, so layers shared by the images (the base) are stored and
  # imported once.
  docker save -o "$archive.tmp" "${refs[@]}"
  mv "$archive.tmp" "$archive"
  stamp images "$key"
  info "images: $(du -h "$archive" | cut -f1) in $archive"
}

main() {
  local start
  start=$(_dp_now)
  check_pins
  # The two large builds side by side: a link (single-threaded) of one
  # overlaps the other's compiles.
  build_kubernetes &
  local k8s_pid=$!
  local status=0
  { build_addons && build_registry && build_local_path_provisioner; } || status=$?
  wait "$k8s_pid" || status=$?
  ((status == 0)) || die "the cluster build failed (logs in $CLUSTER_LOGS)"
  build_pause
  if [[ $CLUSTER_IMAGES == local ]]; then
    build_images
  fi
  info "cluster binaries in $CLUSTER_BIN ($(_dp_elapsed "$start"))"
}

main
