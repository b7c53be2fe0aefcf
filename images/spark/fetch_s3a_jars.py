"""Fetch the S3A connector that matches the Hadoop inside a Spark jars/ dir.

Run in the image's build stage:

    python3 fetch_s3a_jars.py SPARK_JARS_DIR OUT_DIR

The Hadoop version is read from ``hadoop-client-api-<version>.jar``; the AWS
SDK v2 version from hadoop-aws's parent POM (``hadoop-project``), so both
always follow the pyspark release. Every download is checked against Maven
Central's published SHA-1 before use.

The SDK ships as a single shaded "bundle" of every AWS service (over 500 MB).
S3A only loads S3 and the credential services (STS for assumed roles and web
identity, SSO/SSO-OIDC for profiles), so the bundle is rewritten without the
other service packages; the shared runtime is kept whole. The bundle also
carries an unshaded SLF4J 1.x API; where it comes first on a classpath it
shadows Spark's SLF4J 2 and that JVM logs nothing, so it is left out too (the
SDK's SLF4J calls work against Spark's API).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sys
import urllib.request
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

MAVEN = "https://repo1.maven.org/maven2"
POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}
SERVICES_PREFIX = "software/amazon/awssdk/services/"
KEPT_SERVICES = frozenset({"s3", "sts", "sso", "ssooidc"})
DROPPED_PREFIXES = ("org/slf4j/",)


def artifact_url(group: str, artifact: str, version: str, ext: str) -> str:
    return f"{MAVEN}/{group.replace('.', '/')}/{artifact}/{version}/{artifact}-{version}.{ext}"


def fetch(url: str, dest: Path) -> Path:
    """Download ``url`` to ``dest`` and verify it against ``url + '.sha1'``."""
    with urllib.request.urlopen(url + ".sha1", timeout=60) as response:
        # Some .sha1 files carry the file name after the digest.
        expected = response.read().decode().split()[0].lower()
    digest = hashlib.sha1(usedforsecurity=False)
    with urllib.request.urlopen(url, timeout=600) as response, dest.open("wb") as out:
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != expected:
        dest.unlink()
        raise SystemExit(f"checksum mismatch for {url}: {digest.hexdigest()} != {expected}")
    print(f"fetched {url} (sha1 {expected})", flush=True)
    return dest


def hadoop_version(jars: Path) -> str:
    found = sorted(
        m.group(1)
        for p in jars.glob("hadoop-client-api-*.jar")
        if (m := re.fullmatch(r"hadoop-client-api-(.+)\.jar", p.name))
    )
    if len(found) != 1:
        raise SystemExit(f"expected one hadoop-client-api jar in {jars}, found {found}")
    return found[0]


def sdk_version(hadoop: str, workdir: Path) -> str:
    pom = fetch(
        artifact_url("org.apache.hadoop", "hadoop-project", hadoop, "pom"),
        workdir / "hadoop-project.pom",
    )
    node = ET.parse(pom).getroot().find("m:properties/m:aws-java-sdk-v2.version", POM_NS)
    if node is None or not (node.text or "").strip():
        raise SystemExit(f"hadoop-project {hadoop} does not name an AWS SDK v2 version")
    return (node.text or "").strip()


def keep_entry(name: str) -> bool:
    if name.startswith(DROPPED_PREFIXES):
        return False
    if not name.startswith(SERVICES_PREFIX):
        return True
    service = name[len(SERVICES_PREFIX) :].split("/", 1)[0]
    return service == "" or service in KEPT_SERVICES


def trim_bundle(source: Path, dest: Path) -> None:
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            if keep_entry(info.filename):
                with src.open(info) as data, out.open(info, "w") as target:
                    shutil.copyfileobj(data, target, 1 << 20)
    before, after = source.stat().st_size, dest.stat().st_size
    print(f"trimmed {source.name}: {before >> 20} MiB -> {after >> 20} MiB", flush=True)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    jars, out = Path(argv[0]), Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    work = out / ".download"
    work.mkdir(exist_ok=True)

    hadoop = hadoop_version(jars)
    sdk = sdk_version(hadoop, work)
    print(f"hadoop {hadoop}, AWS SDK v2 {sdk}", flush=True)
    fetch(
        artifact_url("org.apache.hadoop", "hadoop-aws", hadoop, "jar"),
        out / f"hadoop-aws-{hadoop}.jar",
    )
    bundle = fetch(
        artifact_url("software.amazon.awssdk", "bundle", sdk, "jar"),
        work / f"bundle-{sdk}.jar",
    )
    trim_bundle(bundle, out / f"awssdk-bundle-{sdk}-s3.jar")
    shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
