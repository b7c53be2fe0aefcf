# Sourced by install-tools.sh and install-perf.sh: Debian packages put into
# a directory without installing anything into the system.
#
# unpack_debs DIR PACKAGE...: fetches the packages into DIR/debs with
# `apt-get download` (after an `apt-get update` if the lists do not have
# them) and unpacks each into DIR with `dpkg -x`.
unpack_debs() {
  local dir=$1
  shift
  mkdir -p "$dir/debs"
  (
    cd "$dir/debs"
    # _apt cannot write into a root-owned cache; the download is the same.
    apt-get download "$@" >&2 2>/dev/null \
      || { apt-get update >&2 && apt-get download "$@" >&2; }
  )
  local deb
  for deb in "$dir"/debs/*.deb; do
    dpkg -x "$deb" "$dir"
  done
}
