#!/usr/bin/env python3
"""Run the READMEs' commands exactly as written, as a new user would.

A fenced ``bash`` block right after a ``<!-- walkthrough -->`` line is part of
the walkthrough. The blocks of the given files run in order, verbatim, in one
bash shell started from the repository root with ``set -euo pipefail``, so a
``source`` in one block holds for the next, as in a user's terminal. Nothing
is added between them: a command that needs a flag the README does not show
fails here too.

Usage: python3 -m scripts.walkthrough [--list] FILE...   (default: README.md jobs/README.md)
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MARKER = "<!-- walkthrough -->"
FENCE = re.compile(r"^```bash\s*$")


def blocks(path: Path) -> list[tuple[int, str]]:
    """(line number, code) of each marked block in ``path``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[tuple[int, str]] = []
    for number, line in enumerate(lines):
        if line.strip() != MARKER:
            continue
        if number + 1 >= len(lines) or not FENCE.match(lines[number + 1]):
            raise SystemExit(f"{path}:{number + 1}: {MARKER} must be followed by a ```bash fence")
        end = next((i for i in range(number + 2, len(lines)) if lines[i].startswith("```")), None)
        if end is None:
            raise SystemExit(f"{path}:{number + 2}: the block is not closed")
        found.append((number + 3, "\n".join(lines[number + 2 : end])))
    return found


def script(files: list[Path]) -> tuple[str, int]:
    parts = ["set -euo pipefail", "PS4='$ '"]
    count = 0
    for path in files:
        for line, code in blocks(path):
            count += 1
            where = f"{path.relative_to(ROOT)}:{line}"
            parts += [
                f"printf '\\n==> %s\\n' {where!r}",
                "_started=$SECONDS",
                "set -x",
                code,
                "{ set +x; } 2>/dev/null",
                f"printf '<== %s: %ss\\n' {where!r} $((SECONDS - _started))",
            ]
    return "\n".join(parts) + "\n", count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", default=["README.md", "jobs/README.md"])
    parser.add_argument("--list", action="store_true", help="print the commands instead of running them")
    args = parser.parse_args()
    files = [(ROOT / f).resolve() for f in args.files]
    text, count = script(files)
    if count == 0:
        print("no walkthrough blocks found", file=sys.stderr)
        return 1
    if args.list:
        print(text, end="")
        return 0
    # A new user's shell: no virtualenv active, nothing of the project on PATH.
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as handle:
        handle.write(text)
    started = time.monotonic()
    try:
        code = subprocess.run(["bash", handle.name], cwd=ROOT, env=env, check=False).returncode
    finally:
        os.unlink(handle.name)
    verdict = "passed" if code == 0 else f"failed (exit {code})"
    print(f"\nwalkthrough of {count} blocks {verdict} in {time.monotonic() - started:.0f} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
