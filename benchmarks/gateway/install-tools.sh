#!/usr/bin/env bash
# Puts Debian's nginx and wrk (with the LuaJIT library wrk needs) into a
# cache directory, without installing anything into the system: the packages
# are fetched with `apt-get download` and unpacked with `dpkg -x`.
#
# Usage: benchmarks/gateway/install-tools.sh [DIR]
#   DIR defaults to $DATAPLATFORM_CACHE/bench-tools (~/.cache/dataplatform/bench-tools)
#
# Prints DIR. Afterwards DIR/usr/sbin/nginx and DIR/usr/bin/wrk run with
# LD_LIBRARY_PATH=DIR/usr/lib/x86_64-linux-gnu (see benchmarks/loadgen.py).
set -euo pipefail
# shellcheck source=unpack-debs.sh
source "$(dirname "${BASH_SOURCE[0]}")/unpack-debs.sh"

dir=${1:-${DATAPLATFORM_CACHE:-$HOME/.cache/dataplatform}/bench-tools}
packages=(nginx wrk libluajit-5.1-2 libluajit-5.1-common)

if [[ -x $dir/usr/sbin/nginx && -x $dir/usr/bin/wrk && -f $dir/.complete ]]; then
  echo "$dir"
  exit 0
fi
unpack_debs "$dir" "${packages[@]}"
LD_LIBRARY_PATH="$dir/usr/lib/x86_64-linux-gnu" "$dir/usr/bin/wrk" --version >/dev/null 2>&1 || true
"$dir/usr/sbin/nginx" -v >&2
touch "$dir/.complete"
echo "$dir"
