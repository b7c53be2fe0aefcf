"""What cluster/lib.sh computes (paths, ports, addresses), read by sourcing it; standard library only."""

from __future__ import annotations

import subprocess
from pathlib import Path

LIB = Path(__file__).resolve().parent / "lib.sh"


def cluster_settings(*names: str) -> dict[str, str]:
    """The values of the shell variables ``names`` once cluster/lib.sh is
    sourced, so the scripts and their Python callers agree on them."""
    script = f"source {LIB}; " + "; ".join(f'printf "%s\\n" "${name}"' for name in names)
    out = subprocess.run(["bash", "-c", script], check=True, capture_output=True, text=True).stdout
    return dict(zip(names, out.splitlines(), strict=True))
