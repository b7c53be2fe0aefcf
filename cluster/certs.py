"""Self-signed TLS certificates for a test's Ingress host, made with openssl (standard library only)."""

from __future__ import annotations

from pathlib import Path


def certificate_paths(directory: Path) -> tuple[Path, Path]:
    """Where a certificate and its key go: ``tls.crt`` and ``tls.key`` in ``directory``."""
    return directory / "tls.crt", directory / "tls.key"


def self_signed_command(host: str, cert: Path, key: Path, days: int) -> list[str]:
    """openssl writing a certificate for ``host`` (its subject and its only
    name) valid for ``days``, and its unencrypted key."""
    return [
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        str(days),
        "-subj",
        f"/CN={host}",
        "-addext",
        f"subjectAltName=DNS:{host}",
        "-keyout",
        str(key),
        "-out",
        str(cert),
    ]
