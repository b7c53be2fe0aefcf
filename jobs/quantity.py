"""Memory and CPU quantities, parsed in one place for the stack and the jobs CLI.

Kubernetes writes ``512Mi``, ``2Gi``, ``1G``, ``500m`` (CPU); Spark writes
``768m``, ``2g`` and takes a bare number as MiB. Stdlib only, so the stack,
the jobs CLI and the tools can all import it.
"""

from __future__ import annotations

import re

MIB = 1024 * 1024

_K8S_MEMORY_FACTORS = {
    "": 1,
    "k": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "T": 1000**4,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
}

# Spark's units are binary whatever their spelling; Kubernetes' binary
# units are accepted too, so one setting may be written either way.
_ANY_MEMORY_MIB = {
    "k": 1 / 1024,
    "kb": 1 / 1024,
    "m": 1,
    "mb": 1,
    "g": 1024,
    "gb": 1024,
    "t": 1024 * 1024,
    "tb": 1024 * 1024,
    "ki": 1 / 1024,
    "mi": 1,
    "gi": 1024,
    "ti": 1024 * 1024,
}

CPU_RE = re.compile(r"^(\d+(\.\d{1,3})?|\d+m)$")
MEMORY_RE = re.compile(r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$")


def memory_bytes(quantity: str) -> int:
    """Bytes in a Kubernetes memory quantity such as ``512Mi`` or ``1G``."""
    match = re.match(r"^(\d+(?:\.\d+)?)([A-Za-z]*)$", quantity)
    if not match or match.group(2) not in _K8S_MEMORY_FACTORS:
        raise ValueError(f"not a memory quantity: {quantity!r}")
    return int(float(match.group(1)) * _K8S_MEMORY_FACTORS[match.group(2)])


def cpu_millis(quantity: str) -> int:
    """Millicores in a Kubernetes CPU quantity such as ``500m`` or ``1.5``."""
    if quantity.endswith("m"):
        return int(quantity[:-1])
    return int(float(quantity) * 1000)


def memory_mib(quantity: str) -> int:
    """Whole MiB in a memory size, in Spark's (``768m``, ``2g``) or Kubernetes'
    (``768Mi``, ``2Gi``) notation; a bare number is MiB, as in Spark."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", quantity)
    unit = match.group(2).lower() if match else ""
    if not match or (unit and unit not in _ANY_MEMORY_MIB):
        raise ValueError(f"not a memory size: {quantity!r} (use e.g. 768m, 2g, 768Mi or 2Gi)")
    mib = int(float(match.group(1)) * _ANY_MEMORY_MIB.get(unit, 1))
    if mib < 1:
        raise ValueError(f"memory size {quantity!r} is below 1 MiB")
    return mib


def spark_memory(mib: int) -> str:
    """MiB in Spark's notation (``4096m``)."""
    return f"{mib}m"


def kubernetes_memory(mib: int) -> str:
    """MiB as a Kubernetes quantity (``4096Mi``)."""
    return f"{mib}Mi"


def mib(quantity: str) -> int:
    """Whole MiB in a Kubernetes memory quantity (``1Gi`` is 1024)."""
    return memory_bytes(quantity) // MIB
