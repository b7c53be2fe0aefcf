"""Build contexts as Docker sends them: the files of a directory minus what
its ignore file excludes, packed into a tar, and a digest of exactly that
content so an unchanged context is no diff.

Ignore files follow Docker's rules: one pattern a line, ``#`` comments,
``*``/``?``/``[...]`` within a path segment, ``**`` across segments, ``!``
re-includes, the last matching line wins, and a pattern that matches a
directory matches everything under it. ``<Dockerfile>.dockerignore`` beside
the Dockerfile takes precedence over the context's ``.dockerignore``, as
with BuildKit.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pattern:
    regex: re.Pattern[str]
    exclusion: bool
    text: str


def _compile(pattern: str) -> re.Pattern[str]:
    out = ["^"]
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            if pattern[i + 1 : i + 2] == "*":
                i += 1
                if pattern[i + 1 : i + 2] == "/":
                    i += 1
                    out.append("(?:.*/)?")
                else:
                    out.append(".*")
            else:
                out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    out.append("$")
    return re.compile("".join(out))


def parse_ignore(text: str) -> list[Pattern]:
    patterns = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclusion = line.startswith("!")
        if exclusion:
            line = line[1:].strip()
        line = os.path.normpath(line).lstrip("/")
        if line in ("", "."):
            continue
        patterns.append(Pattern(_compile(line), exclusion, line))
    return patterns


def _matches(pattern: Pattern, path: str) -> bool:
    # A pattern naming a directory covers everything beneath it.
    parts = path.split("/")
    return any(pattern.regex.match("/".join(parts[:n])) for n in range(len(parts), 0, -1))


def excluded(patterns: list[Pattern], path: str) -> bool:
    result = False
    for pattern in patterns:
        if _matches(pattern, path):
            result = not pattern.exclusion
    return result


def _may_reinclude(patterns: list[Pattern], directory: str) -> bool:
    """Whether an exception could bring back something under ``directory``.

    The last pattern that excludes ``directory`` matches everything beneath
    it too, so only exceptions after that one can bring a file back: an
    excluded ``.venv`` inside an included folder is not walked."""
    last = max(
        (i for i, p in enumerate(patterns) if not p.exclusion and _matches(p, directory)),
        default=-1,
    )
    for pattern in patterns[last + 1 :]:
        if not pattern.exclusion:
            continue
        if any(ch in pattern.text for ch in "*?[\\"):
            return True
        if pattern.text.startswith(directory + "/") or _matches(pattern, directory):
            return True
    return False


def ignore_patterns(context: Path, dockerfile: Path) -> list[Pattern]:
    beside = dockerfile.with_name(dockerfile.name + ".dockerignore")
    for candidate in (beside, context / ".dockerignore"):
        if candidate.is_file():
            return parse_ignore(candidate.read_text())
    return []


def context_files(context: Path, patterns: list[Pattern]) -> list[str]:
    """Paths (relative, '/'-separated, sorted) of the files sent to the builder."""
    found: list[str] = []
    for root, dirs, files in os.walk(context):
        rel_root = os.path.relpath(root, context)
        rel_root = "" if rel_root == "." else rel_root.replace(os.sep, "/")
        keep = []
        for d in sorted(dirs):
            rel = f"{rel_root}/{d}" if rel_root else d
            if os.path.islink(os.path.join(root, d)):
                if not excluded(patterns, rel):
                    found.append(rel)
                continue
            if excluded(patterns, rel) and not _may_reinclude(patterns, rel):
                continue
            keep.append(d)
        dirs[:] = keep
        for f in files:
            rel = f"{rel_root}/{f}" if rel_root else f
            if not excluded(patterns, rel):
                found.append(rel)
    return sorted(found)


DOCKERFILE_IN_TAR = ".dockerfile.local-providers"


@dataclass(frozen=True)
class BuildContext:
    context: Path
    dockerfile: Path
    files: list[str]

    @classmethod
    def load(cls, context: str, dockerfile: str | None) -> BuildContext:
        root = Path(context).resolve()
        if not root.is_dir():
            raise FileNotFoundError(f"build context {context} is not a directory")
        df = Path(dockerfile) if dockerfile else root / "Dockerfile"
        if not df.is_absolute():
            df = root / df
        if not df.is_file():
            raise FileNotFoundError(f"Dockerfile {df} does not exist")
        files = context_files(root, ignore_patterns(root, df))
        try:
            # The builder always gets the Dockerfile, ignored or not.
            rel = df.resolve().relative_to(root).as_posix()
            if rel not in files:
                files = sorted([*files, rel])
        except ValueError:
            pass
        return cls(root, df, files)

    @property
    def dockerfile_in_context(self) -> str:
        try:
            return self.dockerfile.resolve().relative_to(self.context).as_posix()
        except ValueError:
            return DOCKERFILE_IN_TAR

    def digest(self, extra: str = "") -> str:
        h = hashlib.sha256()
        h.update(self.dockerfile.read_bytes())
        h.update(b"\0" + extra.encode() + b"\0")
        for rel in self.files:
            path = self.context / rel
            h.update(rel.encode() + b"\0")
            if path.is_symlink():
                h.update(b"L" + os.readlink(path).encode())
            else:
                h.update(b"X" if os.access(path, os.X_OK) else b"F")
                h.update(hashlib.sha256(path.read_bytes()).digest())
        return "sha256:" + h.hexdigest()

    def tar(self) -> io.BytesIO:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            for rel in self.files:
                info = archive.gettarinfo(str(self.context / rel), arcname=rel)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                if info.isfile():
                    with open(self.context / rel, "rb") as handle:
                        archive.addfile(info, handle)
                else:
                    archive.addfile(info)
            if self.dockerfile_in_context == DOCKERFILE_IN_TAR:
                data = self.dockerfile.read_bytes()
                info = tarfile.TarInfo(DOCKERFILE_IN_TAR)
                info.size = len(data)
                info.mode = 0o644
                archive.addfile(info, io.BytesIO(data))
        buffer.seek(0)
        return buffer
