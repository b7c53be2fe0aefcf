#!/usr/bin/env bash
# Provide the base images the project's Dockerfiles start from.
#
# Each base keeps its official name and tag, so the Dockerfiles are the same
# on a machine with a container registry and on one without. A base already
# present in the engine is left alone. A missing one is pulled when the
# registry answers, and otherwise made locally:
#
#   debian:bookworm-slim        debootstrap --variant=minbase from the
#                               host's configured Debian mirror, imported
#   python:3.11-slim-bookworm   Debian's python3 (3.11) + venv on that base
#   golang:<ver>-bookworm       that base + the host's Go toolchain
#   rust:<ver>-slim-bookworm    that base + the host's Rust toolchain
#
# The debootstrap result is cached as a tarball so later runs take seconds.
#
# Usage: base-images.sh [--refresh] [IMAGE...]   (default: all of the above)
#   --refresh   make (or pull) the images again, debootstrap included
#
# Environment:
#   DATAPLATFORM_CACHE        cache dir (default ~/.cache/dataplatform)
#   DATAPLATFORM_BASE_IMAGES  auto (default): pull, make locally on failure;
#                             pull: pull only; local: never contact a registry
#   DATAPLATFORM_PULL_TIMEOUT seconds a pull may take in auto mode (default 30)
#   GOROOT_SRC                Go toolchain to copy (default: `go env GOROOT`)
#   RUST_TOOLCHAIN_DIR        Rust toolchain to copy (default: rustup's
#                             toolchain for RUST_VERSION)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT
readonly CACHE_DIR="${DATAPLATFORM_CACHE:-$HOME/.cache/dataplatform}/base-images"
readonly MODE="${DATAPLATFORM_BASE_IMAGES:-auto}"
readonly PULL_TIMEOUT="${DATAPLATFORM_PULL_TIMEOUT:-30}"
readonly SUITE=bookworm

readonly DEBIAN_IMAGE="debian:${SUITE}-slim"
readonly PYTHON_IMAGE="python:3.11-slim-${SUITE}"
# The Go and Rust tags follow the host toolchains that go into them; the
# Dockerfiles pin the same tags.
readonly GO_VERSION="${GO_VERSION:-1.26.8}"
readonly RUST_VERSION="${RUST_VERSION:-1.95.0}"
readonly GOLANG_IMAGE="golang:${GO_VERSION}-${SUITE}"
readonly RUST_IMAGE="rust:${RUST_VERSION%.*}-slim-${SUITE}"

log() { printf 'base-images: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

registry_down=0
try_pull() {
  local image=$1
  case $MODE in
    local) return 1 ;;
    pull) docker pull -q "$image" >/dev/null && return 0
          die "could not pull $image" ;;
    auto) ((registry_down)) && return 1
          if timeout "$PULL_TIMEOUT" docker pull -q "$image" >/dev/null 2>&1; then
            log "pulled $image"
            return 0
          fi
          # One failed pull is enough to know; don't wait again per image.
          registry_down=1
          log "no registry answered; making bases locally"
          return 1 ;;
    *) die "DATAPLATFORM_BASE_IMAGES must be auto, pull or local (got $MODE)" ;;
  esac
}

# URI of the host's configured Debian source for a suite (e.g. bookworm,
# bookworm-security), so the image uses the same mirror as the host.
mirror_for() {
  # shellcheck disable=SC2016  # $(...) here is apt's field syntax, not the shell's
  apt-get indextargets --format '$(RELEASE) $(REPO_URI)' 'Identifier: Packages' \
    | awk -v suite="$1" '$1 == suite { print $2; exit }'
}

write_rootfs_config() {
  local root=$1 main security
  main="$(mirror_for "$SUITE")"
  security="$(mirror_for "$SUITE-security")"
  [[ -n $main ]] || die "no '$SUITE' source configured in apt on this host"

  rm -f "$root/etc/apt/sources.list"
  {
    printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\n' "$main" "$SUITE" "$SUITE"
    printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
    if [[ -n $security ]]; then
      printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\n' "$security" "$SUITE"
      printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
    fi
  } >"$root/etc/apt/sources.list.d/debian.sources"

  # Container-oriented defaults, as in Debian's slim images: no docs, man
  # pages or translations (copyright files stay), no cached .debs, no
  # translated package descriptions, and no binary package caches (apt
  # rebuilds them in memory; on disk they would add ~70 MB to every layer
  # that runs apt-get update).
  cat >"$root/etc/dpkg/dpkg.cfg.d/slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/groff/*
path-exclude /usr/share/lintian/*
CFG
  cat >"$root/etc/apt/apt.conf.d/slim" <<'CFG'
APT::Keep-Downloaded-Packages "false";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
Acquire::GzipIndexes "true";
Acquire::CompressionTypes::Order:: "gz";
CFG
}

make_rootfs_tarball() {
  local tarball=$1 root
  command -v debootstrap >/dev/null || {
    log "installing debootstrap"
    # Another install may hold dpkg's lock (CI builds images beside the toolchain).
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
      --no-install-recommends debootstrap >/dev/null
  }
  root="$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")"
  # apt inside the chroot drops privileges to _apt, which must reach the tree.
  chmod 755 "$root"
  # shellcheck disable=SC2064  # expand now: the trap must remove this dir
  trap "rm -rf '$root'" RETURN
  log "debootstrap $SUITE (minbase) from $(mirror_for "$SUITE")"
  debootstrap --variant=minbase \
    --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
    "$SUITE" "$root" "$(mirror_for "$SUITE")" >"$CACHE_DIR/debootstrap.log" 2>&1 \
    || { tail -n 20 "$CACHE_DIR/debootstrap.log" >&2; die "debootstrap failed"; }

  write_rootfs_config "$root"
  # Bring in point-release and security updates, as the official image has.
  chroot "$root" /bin/sh -c '
    set -e
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get -y -qq dist-upgrade >/dev/null
    apt-get clean
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/*.log /var/log/apt/*
  ' >>"$CACHE_DIR/debootstrap.log" 2>&1 || { tail -n 20 "$CACHE_DIR/debootstrap.log" >&2; die "updating the root filesystem failed"; }
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  rm -rf "$root"/usr/share/{man,info,groff,lintian}/* "$root"/tmp/* "$root"/var/tmp/*
  # The engine provides these at run time; the host's values must not leak in.
  : >"$root/etc/resolv.conf"
  : >"$root/etc/hostname"

  tar --numeric-owner --xattrs -C "$root" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
}

make_debian() {
  local tarball="$CACHE_DIR/debian-$SUITE-minbase.tar"
  if ((refresh)) || [[ ! -s $tarball ]]; then
    make_rootfs_tarball "$tarball"
  else
    log "using cached root filesystem $tarball"
  fi
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' \
    --message "debootstrap --variant=minbase $SUITE" \
    "$tarball" "$DEBIAN_IMAGE" >/dev/null
}

# Build a derived base from a tar stream (context on stdin), so toolchains
# outside the repository can be sent without copying them first.
build_from_stream() {
  local image=$1; shift
  docker build -q -t "$image" "$@" - >/dev/null
}

make_python() {
  docker build -q -t "$PYTHON_IMAGE" "$REPO_ROOT/images/base/python" >/dev/null
}

make_golang() {
  local goroot="${GOROOT_SRC:-}"
  if [[ -z $goroot ]]; then
    command -v go >/dev/null || PATH="/usr/local/go/bin:$PATH"
    goroot="$(go env GOROOT)"
  fi
  local have
  have="$("$goroot/bin/go" env GOVERSION)"
  [[ $have == "go$GO_VERSION" ]] || die "$goroot holds $have, expected go$GO_VERSION (set GO_VERSION)"
  tar -C "$goroot/.." -c "$(basename "$goroot")" \
      --transform "s,^$(basename "$goroot"),go," \
      -C "$REPO_ROOT/images/base/golang" Dockerfile \
    | build_from_stream "$GOLANG_IMAGE" --build-arg "GOLANG_VERSION=$GO_VERSION"
}

make_rust() {
  local dir="${RUST_TOOLCHAIN_DIR:-${RUSTUP_HOME:-$HOME/.rustup}/toolchains/$RUST_VERSION-x86_64-unknown-linux-gnu}"
  [[ -x $dir/bin/rustc ]] || die "no Rust $RUST_VERSION toolchain at $dir (set RUST_TOOLCHAIN_DIR)"
  dir="$(readlink -f "$dir")"
  # Documentation is most of a rustup toolchain's size and no build needs it.
  tar -C "$dir" -c --exclude=./share/doc --transform 's,^\.,toolchain,' . \
      -C "$REPO_ROOT/images/base/rust" Dockerfile \
    | build_from_stream "$RUST_IMAGE" --build-arg "RUST_VERSION=$RUST_VERSION"
}

declare -A handled=()
ensure() {
  local image=$1 maker=$2 start=$SECONDS
  [[ -n ${handled[$image]:-} ]] && return 0
  handled[$image]=1
  if ((!refresh)) && have_image "$image"; then
    log "$image present"
    return 0
  fi
  try_pull "$image" && return 0
  # Derived bases need the Debian base first.
  [[ $image == "$DEBIAN_IMAGE" ]] || ensure "$DEBIAN_IMAGE" make_debian
  log "making $image locally"
  "$maker"
  log "made $image in $((SECONDS - start))s"
}

refresh=0
main() {
  local targets=()
  while (($#)); do
    case $1 in
      --refresh) refresh=1 ;;
      -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; return 0 ;;
      *) targets+=("$1") ;;
    esac
    shift
  done
  ((${#targets[@]})) || targets=("$DEBIAN_IMAGE" "$PYTHON_IMAGE" "$GOLANG_IMAGE" "$RUST_IMAGE")

  docker info >/dev/null 2>&1 || die "no Docker engine answers (run scripts/docker-engine.sh)"
  mkdir -p "$CACHE_DIR"
  if ((refresh)); then
    rm -f "$CACHE_DIR/debian-$SUITE-minbase.tar"
  fi

  local image
  for image in "${targets[@]}"; do
    case $image in
      "$DEBIAN_IMAGE") ensure "$image" make_debian ;;
      "$PYTHON_IMAGE") ensure "$image" make_python ;;
      "$GOLANG_IMAGE") ensure "$image" make_golang ;;
      "$RUST_IMAGE") ensure "$image" make_rust ;;
      *) die "unknown base image $image" ;;
    esac
  done
}

main "$@"
