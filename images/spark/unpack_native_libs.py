"""Unpack the JNI libraries of Spark's compression codecs into a directory.

snappy-java and zstd-jni extract their native library to java.io.tmpdir at
first use and load it from there, which fails when /tmp is mounted noexec
(and zstd is used on every shuffle, for map statuses). Unpacked once into the
image, they load from a read-only, executable path instead:

    python3 unpack_native_libs.py SPARK_JARS_DIR OUT_DIR

zstd-jni tries ``System.loadLibrary`` before extracting, so OUT_DIR goes on
LD_LIBRARY_PATH; snappy-java is pointed at its file by system properties
(``org.xerial.snappy.lib.path`` / ``org.xerial.snappy.lib.name``).
"""

from __future__ import annotations

import platform
import sys
import zipfile
from pathlib import Path

# The jars name CPU architectures differently.
SNAPPY_ARCH = {"x86_64": "x86_64", "aarch64": "aarch64"}
ZSTD_ARCH = {"x86_64": "amd64", "aarch64": "aarch64"}


def single_jar(jars: Path, pattern: str) -> Path:
    found = sorted(jars.glob(pattern))
    if len(found) != 1:
        raise SystemExit(f"expected one {pattern} in {jars}, found {[p.name for p in found]}")
    return found[0]


def unpack(jar: Path, member: str, dest: Path) -> None:
    with zipfile.ZipFile(jar) as archive:
        dest.write_bytes(archive.read(member))
    print(f"{jar.name}: {member} -> {dest}", flush=True)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    jars, out = Path(argv[0]), Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    machine = platform.machine()

    snappy = single_jar(jars, "snappy-java-*.jar")
    unpack(
        snappy,
        f"org/xerial/snappy/native/Linux/{SNAPPY_ARCH[machine]}/libsnappyjava.so",
        out / "libsnappyjava.so",
    )

    zstd = single_jar(jars, "zstd-jni-*.jar")
    # zstd-jni-1.5.6-9.jar loads "zstd-jni-1.5.6-9", i.e. libzstd-jni-1.5.6-9.so.
    library = f"lib{zstd.stem}.so"
    unpack(zstd, f"linux/{ZSTD_ARCH[machine]}/{library}", out / library)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
