#!/usr/bin/env bash
# Puts Debian's perf (the linux-perf package and the libraries it links)
# into a cache directory, as install-tools.sh does for nginx and wrk:
# fetched with `apt-get download`, unpacked with `dpkg -x`, nothing
# installed into the system. Used by `bench.py --profile`.
#
# Usage: benchmarks/gateway/install-perf.sh [DIR]
#   DIR defaults to $DATAPLATFORM_CACHE/bench-perf (~/.cache/dataplatform/bench-perf)
#
# Prints DIR. Afterwards DIR/usr/bin/perf runs with
# LD_LIBRARY_PATH=DIR/usr/lib/x86_64-linux-gnu:DIR/lib/x86_64-linux-gnu.
set -euo pipefail
# shellcheck source=unpack-debs.sh
source "$(dirname "${BASH_SOURCE[0]}")/unpack-debs.sh"

dir=${1:-${DATAPLATFORM_CACHE:-$HOME/.cache/dataplatform}/bench-perf}
# linux-perf's own dependencies that a slim Debian lacks; the rest (libc,
# zlib, liblzma, libzstd, libcap) are in every Debian.
packages=(linux-perf libbabeltrace1 libdw1 libelf1 libnuma1 libopencsd1 libperl5.36 libpython3.11 libslang2 libunwind8)
libs="$dir/usr/lib/x86_64-linux-gnu:$dir/lib/x86_64-linux-gnu"

if [[ -x $dir/usr/bin/perf && -f $dir/.complete ]]; then
  echo "$dir"
  exit 0
fi
unpack_debs "$dir" "${packages[@]}"
LD_LIBRARY_PATH=$libs "$dir/usr/bin/perf" --version >&2
touch "$dir/.complete"
echo "$dir"
