#!/usr/bin/env bash
# Builds the Pulumi engine from Go modules into $DATAPLATFORM_CACHE/bin: the
# CLI, the Python language host with the SDK's launcher scripts, the YAML
# language host, and the kubernetes resource provider; and the docker and
# random providers from local-providers/ (Python), whose Go modules no proxy
# here serves. For machines that reach the Go module proxy but not Pulumi's
# download hosts.
#
# Usage: toolchain/build.sh [--force]
#
# Each piece is rebuilt only when its pinned inputs (go.mod, go.sum, sources,
# versions.env, Go version) change; a stamp per piece records what was built.
set -euo pipefail

toolchain_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR
# shellcheck source=../scripts/lib.sh
source "$toolchain_dir/../scripts/lib.sh"
# shellcheck source=/dev/null
source "$toolchain_dir/versions.env"

BUILD_FORCE=false
case "${1:-}" in
  --force) BUILD_FORCE=true ;;
  "") ;;
  -h | --help)
    sed -n '2,12s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
    exit 0
    ;;
  *) die "unknown argument: $1" ;;
esac

command -v go >/dev/null || die "Go is required to build the Pulumi toolchain (https://go.dev/doc/install)"
command -v python3 >/dev/null || die "python3 is required to prepare the provider schema"

cache=$(dataplatform_cache)
bin="$cache/bin"
stamps="$cache/stamps"
logs="$cache/logs"
src="$cache/src"
mkdir -p "$bin" "$stamps" "$logs" "$src"
# For fresh, stamp and run_logged (scripts/lib.sh).
BUILD_STAMPS=$stamps BUILD_LOGS=$logs

# go.sum pins every module, so the checksum database is never needed, and a
# module missing from go.sum is an error rather than a silent download.
export GOFLAGS="-mod=readonly -trimpath"
go_version=$(go env GOVERSION)

# module_dir DIR MODULE: where MODULE's source sits in the module cache.
module_dir() {
  go -C "$1" mod download "$2"
  go -C "$1" list -m -f '{{.Dir}}' "$2"
}

build_cli() {
  local dir="$toolchain_dir/pulumi" version key
  version=$(module_version "$dir" github.com/pulumi/pulumi/pkg/v3)
  key=$(fingerprint "$dir/go.mod" "$dir/go.sum" "$go_version")
  if up_to_date pulumi "$key" "pulumi $version" "$bin/pulumi"; then return; fi
  info "pulumi $version: building (several minutes on a cold cache)"
  run_logged pulumi go -C "$dir" build \
    -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$version" \
    -o "$bin/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
  stamp pulumi "$key"
}

build_language_host() {
  local dir="$toolchain_dir/pulumi-language-python" sdk_version version key sdk_dir
  sdk_version=$(module_version "$dir" github.com/pulumi/pulumi/sdk/v3)
  version="${sdk_version#v}+dataplatform"
  key=$(fingerprint "$dir/go.mod" "$dir/go.sum" "$dir/main.go" "$PULUMI_PYTHON_SDK_VERSION" "$go_version")
  local outputs=("$bin/pulumi-language-python" "$bin/pulumi-language-python-exec" "$bin/pulumi-resource-pulumi-python")
  if up_to_date pulumi-language-python "$key" "pulumi-language-python $version" "${outputs[@]}"; then return; fi
  info "pulumi-language-python $version: building"
  run_logged pulumi-language-python go -C "$dir" build \
    -ldflags "-s -w -X main.version=$version" -o "$bin/pulumi-language-python" .

  # The launcher scripts ship in the SDK module of the Python SDK release the
  # program uses, so they match the `pulumi` package in its virtualenv.
  sdk_dir=$(GOFLAGS=-mod=mod go mod download -json "github.com/pulumi/pulumi/sdk/v3@v$PULUMI_PYTHON_SDK_VERSION" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  install -m 0755 "$sdk_dir/python/cmd/pulumi-language-python-exec" "$bin/"
  install -m 0755 "$sdk_dir/python/dist/pulumi-resource-pulumi-python" "$bin/"
  stamp pulumi-language-python "$key"
}

# The YAML language host, for programs written in Pulumi YAML (examples/yaml):
# pulumi-yaml's host with the one call it lacks added (main.go), at the
# versions its own go.mod selects.
build_yaml_language_host() {
  local dir="$toolchain_dir/pulumi-language-yaml" module=github.com/pulumi/pulumi-yaml version key
  version=$(module_version "$dir" "$module")
  [[ $version == "v$PULUMI_YAML_VERSION" ]] ||
    die "toolchain/pulumi-language-yaml/go.mod selects $module $version, versions.env says v$PULUMI_YAML_VERSION"
  key=$(fingerprint "$dir/go.mod" "$dir/go.sum" "$dir/main.go" "$PULUMI_YAML_VERSION" "$go_version")
  if up_to_date pulumi-language-yaml "$key" "pulumi-language-yaml $version" "$bin/pulumi-language-yaml"; then return; fi
  info "pulumi-language-yaml $version: building (minutes on a cold cache)"
  run_logged pulumi-language-yaml go -C "$dir" build \
    -ldflags "-s -w -X $module/pkg/version.Version=$version" -o "$bin/pulumi-language-yaml" .
  stamp pulumi-language-yaml "$key"
}

build_kubernetes() {
  local wrapper="$toolchain_dir/pulumi-resource-kubernetes" work="$src/pulumi-resource-kubernetes"
  local module=github.com/pulumi/pulumi-kubernetes/provider/v4 key module_src
  key=$(fingerprint "$wrapper/go.mod" "$wrapper/go.sum" "$wrapper/main.go" "$KUBERNETES_PROVIDER_VERSION" "$go_version")
  if up_to_date pulumi-resource-kubernetes "$key" "pulumi-resource-kubernetes $KUBERNETES_PROVIDER_VERSION" \
    "$bin/pulumi-resource-kubernetes"; then
    return
  fi
  info "pulumi-resource-kubernetes $KUBERNETES_PROVIDER_VERSION: building (several minutes on a cold cache)"

  # The provider embeds generated copies of its schema, which the module zip
  # does not carry; make them from the schema it does carry, stamped with the
  # version the provider reports, in a build directory outside the work tree.
  rm -rf "$work"
  mkdir -p "$work"
  cp "$wrapper/go.mod" "$wrapper/go.sum" "$wrapper/main.go" "$work/"
  module_src=$(module_dir "$work" "$module")
  python3 - "$module_src/cmd/pulumi-resource-kubernetes" "$work" "$KUBERNETES_PROVIDER_VERSION" <<'PY'
import json
import sys

source, target, version = sys.argv[1:]
with open(f"{source}/schema.json", encoding="utf-8") as f:
    schema = json.load(f)
schema["version"] = version
with open(f"{target}/schema-embed.json", "w", encoding="utf-8") as f:
    json.dump(schema, f, separators=(",", ":"))
with open(f"{source}/terraform-mapping.json", encoding="utf-8") as f:
    mapping = json.load(f)
with open(f"{target}/terraform-mapping-embed.json", "w", encoding="utf-8") as f:
    json.dump(mapping, f, separators=(",", ":"))
PY
  run_logged pulumi-resource-kubernetes go -C "$work" build \
    -ldflags "-s -w -X $module/pkg/version.Version=$KUBERNETES_PROVIDER_VERSION" \
    -o "$bin/pulumi-resource-kubernetes" .
  stamp pulumi-resource-kubernetes "$key"
}

# The docker and random providers: the Python package in local-providers/,
# in a virtualenv of its own, its entry points linked into bin.
install_local_providers() {
  local dir="$toolchain_dir/local-providers" venv="$cache/local-providers" key name
  key=$(fingerprint "$dir/pyproject.toml" "$dir/requirements.txt" "$dir"/local_providers/*.py "$(python3.11 --version)")
  if ! up_to_date local-providers "$key" "local docker and random providers" \
    "$venv/bin/pulumi-resource-docker" "$venv/bin/pulumi-resource-random"; then
    info "local docker and random providers: installing"
    rm -rf "$venv"
    python3.11 -m venv "$venv"
    run_logged local-providers bash -c '"$1/bin/pip" install --quiet -r "$2/requirements.txt" && "$1/bin/pip" install --quiet --no-deps "$2"' _ "$venv" "$dir"
    stamp local-providers "$key"
  fi
  for name in docker random; do
    ln -sf "$venv/bin/pulumi-resource-$name" "$bin/pulumi-resource-$name"
  done
}

# The CLI and the provider are the heavy builds; run them side by side (two
# compilers keep two cores busy), then the language hosts: the Python one is
# small, the YAML one compiles an older release of the engine's packages.
build_cli &
cli_pid=$!
build_kubernetes &
kubernetes_pid=$!
status=0
wait "$cli_pid" || status=$?
wait "$kubernetes_pid" || status=$?
build_language_host &
python_host_pid=$!
build_yaml_language_host &
yaml_host_pid=$!
wait "$python_host_pid" || status=$?
wait "$yaml_host_pid" || status=$?
install_local_providers || status=$?
((status == 0)) || die "the Pulumi toolchain build failed (logs in $logs)"

info "installed in $bin: $(cd "$bin" && echo pulumi*)"
