"""CHANGELOG.md names the releases the upgrade run deploys, and the version being prepared."""

from __future__ import annotations

import re
import tomllib

from tools.repo import ROOT
from tools.upgrade_test.release import CHANGELOG, previous_release


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def test_the_previous_release_names_a_commit_of_this_clone() -> None:
    release = previous_release()
    assert re.fullmatch(r"[0-9a-f]{40}", release.commit)


def test_the_version_being_prepared_is_newer_and_named_under_unreleased() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert version_tuple(version) > version_tuple(previous_release().version)
    text = CHANGELOG.read_text()
    unreleased = text[text.index("## [Unreleased]") : text.index("\n## [", text.index("## [Unreleased]") + 1)]
    assert version in unreleased
