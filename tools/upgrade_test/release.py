"""The previous release, as CHANGELOG.md names it, checked out beside the repository."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tools.e2e_common.report import Failure
from tools.repo import ROOT

CHANGELOG = ROOT / "CHANGELOG.md"

# "## [0.1.0] - 2026-12-03" opens a release's section; "## [Unreleased]" the
# one being prepared. Each released section names its commit as
# "Commit: `<hash>`".
RELEASE_HEADING = re.compile(r"^## \[(?P<version>[^\]]+)\]", re.MULTILINE)
COMMIT_LINE = re.compile(r"^Commit: `(?P<commit>[0-9a-f]{7,40})`", re.MULTILINE)


@dataclass(frozen=True)
class Release:
    version: str
    commit: str


def previous_release(changelog: Path = CHANGELOG) -> Release:
    """The newest released version in ``changelog`` and the commit it names."""
    text = changelog.read_text()
    headings = list(RELEASE_HEADING.finditer(text))
    for index, heading in enumerate(headings):
        version = heading.group("version")
        if version.lower() == "unreleased":
            continue
        end = headings[index + 1].start() if index + 1 < len(headings) else len(text)
        commit = COMMIT_LINE.search(text, heading.end(), end)
        if commit is None:
            raise Failure(f"{changelog.name}: release {version} names no commit (a 'Commit: `<hash>`' line)")
        return Release(version, resolve(commit.group("commit")))
    raise Failure(f"{changelog.name}: no released version")


def resolve(commit: str) -> str:
    """The full hash of ``commit``; fails if the clone does not have it."""
    done = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise Failure(f"commit {commit} is not in this clone (a shallow clone? fetch the tags)")
    return done.stdout.strip()


class Worktree:
    """A detached git worktree of ``commit`` at ``path``.

    The old program imports its own modules (``infra.*``, ``jobs``) from its
    checkout: the language host puts the program's directory first on
    ``sys.path``. Its third-party packages come from its ``.venv``: a link to
    the repository's when that release pinned the same ``requirements.txt``,
    else a virtualenv of its own with its pins.
    """

    def __init__(self, commit: str, path: Path) -> None:
        self.commit = commit
        self.path = path
        self.venv = ""

    def add(self) -> None:
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(self.path), self.commit],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        venv = self.path / ".venv"
        if (self.path / "requirements.txt").read_text() == (ROOT / "requirements.txt").read_text():
            venv.symlink_to(ROOT / ".venv")
            self.venv = "the repository's (same requirements.txt)"
            return
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "--quiet", "-r", str(self.path / "requirements.txt")],
            check=True,
        )
        self.venv = "its own, from its requirements.txt"

    def remove(self) -> None:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(self.path)],
            cwd=ROOT,
            check=False,
            capture_output=True,
        )
        shutil.rmtree(self.path, ignore_errors=True)
        subprocess.run(["git", "worktree", "prune"], cwd=ROOT, check=False, capture_output=True)
