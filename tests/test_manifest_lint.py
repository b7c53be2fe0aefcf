"""checkov, a Kubernetes linter, on the rendered prod manifests.

The manifests are the session's one render (the ``rendered`` fixture in
``conftest.py``), linted where the engine wrote them: a temporary directory
that holds Secrets in plain text and is removed when the session ends.
checkov runs from its own virtualenv (``.venv-checkov``, pinned in
``requirements-lint.txt``, installed by ``scripts/test-deps.sh``) with
only its Kubernetes checks, offline: no platform API key, no download of
guidelines or policies, no version check, in a scratch home and working
directory so that no credentials or ``.checkov.yaml`` of the machine apply.

Every failed check is a finding. The test fails on a finding that
``policy/checkov-exceptions.yaml`` does not list, and on an entry there that
matches no finding any more. Findings are keyed by check id and the resource
as checkov names it, ``Kind.namespace.name``.

Without the Pulumi toolchain the render tests are skipped, and without
``.venv-checkov`` every test that runs checkov is; the file's format and
the comparison are always tested.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools import render
from tools.repo import ROOT

CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
REQUIREMENTS = ROOT / "requirements-lint.txt"
EXCEPTIONS = ROOT / "policy" / "checkov-exceptions.yaml"
CHECK_ID = re.compile(r"^CKV2?_K8S_\d+$")
# The rendered kinds that checkov has checks for; each object of these must be
# among the resources it reports, or it did not read them all.
LINTED_KINDS = {
    "ConfigMap",
    "Deployment",
    "Ingress",
    "Job",
    "Role",
    "RoleBinding",
    "Secret",
    "Service",
    "ServiceAccount",
}


@dataclasses.dataclass(frozen=True)
class Finding:
    check: str
    resource: str  # Kind.namespace.name, as checkov names it
    title: str = ""
    file: str = ""
    suppressed: bool = False  # skipped by an annotation in the manifest

    def __str__(self) -> str:
        how = "suppressed in the manifest" if self.suppressed else "failed"
        return f"{self.check} {self.resource}: {self.title} ({how}; {self.file})"


@dataclasses.dataclass(frozen=True)
class ExceptionEntry:
    check: str
    resource: str  # a name or an fnmatch pattern
    reason: str
    entry: int  # its entry in the file, from 1

    def matches(self, finding: Finding) -> bool:
        return finding.check == self.check and fnmatch.fnmatchcase(finding.resource, self.resource)

    def __str__(self) -> str:
        return f"{self.check} {self.resource} (entry {self.entry})"


@dataclasses.dataclass
class Report:
    findings: list[Finding]
    scanned: set[str]  # every resource checkov checked
    summary: dict[str, Any]


def load_exceptions(text: str) -> list[ExceptionEntry]:
    """The exceptions file's entries, one per (check, resource or pattern);
    ValueError naming the entry when one is malformed."""
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict) or set(data) != {"exceptions"} or not isinstance(data["exceptions"], list):
        raise ValueError("the file holds one key, exceptions, a list of entries")
    found: list[ExceptionEntry] = []
    for number, entry in enumerate(data["exceptions"], 1):
        where = f"entry {number}"
        if not isinstance(entry, dict) or set(entry) != {"check", "resources", "reason"}:
            raise ValueError(f"{where}: needs exactly check, resources and reason")
        check, resources, reason = entry["check"], entry["resources"], entry["reason"]
        if not isinstance(check, str) or not CHECK_ID.match(check):
            raise ValueError(f"{where}: check {check!r} is not a Kubernetes check id (CKV_K8S_n, CKV2_K8S_n)")
        if not isinstance(reason, str) or len(reason.split()) < 3:
            raise ValueError(f"{where} ({check}): the reason must say why, in words")
        if not isinstance(resources, list) or not resources:
            raise ValueError(f"{where} ({check}): resources must be a non-empty list")
        for resource in resources:
            if not isinstance(resource, str) or resource.count(".") < 2:
                raise ValueError(f"{where} ({check}): {resource!r} is not Kind.namespace.name")
            found.append(ExceptionEntry(check, resource, reason.strip(), number))
    keys = [(e.check, e.resource) for e in found]
    duplicates = sorted({f"{c} {r}" for c, r in keys if keys.count((c, r)) > 1})
    if duplicates:
        raise ValueError(f"listed more than once: {', '.join(duplicates)}")
    return found


def compare(
    findings: Iterable[Finding], exceptions: list[ExceptionEntry]
) -> tuple[list[Finding], list[ExceptionEntry]]:
    """The findings no exception covers, and the exceptions no finding matches."""
    findings = list(findings)
    new = sorted((f for f in findings if not any(e.matches(f) for e in exceptions)), key=str)
    stale = [e for e in exceptions if not any(e.matches(f) for f in findings)]
    return new, stale


def pinned_version() -> str:
    for line in REQUIREMENTS.read_text().splitlines():
        name, _, version = line.split("#")[0].strip().partition("==")
        if name == "checkov":
            return version
    raise LookupError(f"{REQUIREMENTS.name} pins no checkov")


def checkov_env(home: Path) -> dict[str, str]:
    """This environment without checkov's and its platform's settings (an API
    key, skipped checks...), offline, with ``home`` as HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "CKV_", "CHECKOV_", "PRISMA_"))}
    env.update(
        HOME=str(home),
        BC_SKIP_MAPPING="TRUE",  # no guidelines fetched from the platform
        CKV_SKIP_PACKAGE_UPDATE_CHECK="true",  # no version check on PyPI
        CHECKOV_RUN_SCA_PACKAGE_SCAN_V2="false",
    )
    return env


def run_checkov(directory: Path) -> Report:
    """checkov's Kubernetes checks on every manifest under ``directory``."""
    if not CHECKOV.exists():
        pytest.skip("no .venv-checkov with checkov (run scripts/test-deps.sh)")
    with tempfile.TemporaryDirectory(prefix="checkov-home-") as home:
        proc = subprocess.run(
            [
                str(CHECKOV),
                "--directory",
                str(directory),
                "--framework",
                "kubernetes",
                "--skip-download",
                "--output",
                "json",
                "--compact",  # no code blocks: Secrets' data stays out of the report
                "--soft-fail",  # failed checks exit 0; any other exit is checkov's own failure
            ],
            cwd=home,
            env=checkov_env(Path(home)),
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert proc.returncode == 0, f"checkov exited {proc.returncode}:\n{proc.stderr[-4000:]}"
    report = json.loads(proc.stdout)
    # One framework gives one report; with no resource, only the summary.
    if "results" not in report:
        return Report([], set(), report)
    results = report["results"]
    findings = [
        Finding(
            c["check_id"],
            c["resource"],
            c.get("check_name") or "",
            c.get("file_path", "").lstrip("/"),
            suppressed=status == "skipped_checks",
        )
        for status in ("failed_checks", "skipped_checks")
        for c in results.get(status, [])
    ]
    scanned = {
        c["resource"]
        for status in ("passed_checks", "failed_checks", "skipped_checks")
        for c in results[status]
    }
    return Report(findings, scanned, report["summary"])


@pytest.fixture(scope="module")
def linted(rendered: render.Rendered) -> Report:
    assert rendered.directory.is_dir(), "the render's directory is gone"
    return run_checkov(rendered.directory)


def resource_name(m: render.Manifest) -> str:
    return f"{m.kind}.{m.namespace or 'default'}.{m.name}"


# -- the rendered manifests -------------------------------------------------


def test_checkov_reads_every_rendered_object(rendered: render.Rendered, linted: Report) -> None:
    assert linted.summary["checkov_version"] == pinned_version(), "run scripts/test-deps.sh"
    assert linted.summary["parsing_errors"] == 0, linted.summary
    expected = {resource_name(m) for m in rendered.manifests if m.kind in LINTED_KINDS}
    assert expected, "nothing of the kinds checkov checks was rendered"
    missing = sorted(expected - linted.scanned)
    assert not missing, f"checkov did not check: {', '.join(missing)}"


def test_every_finding_is_an_exception(linted: Report) -> None:
    new, _ = compare(linted.findings, load_exceptions(EXCEPTIONS.read_text()))
    assert not new, (
        f"{len(new)} checkov finding(s) on the rendered prod manifests not in "
        f"{EXCEPTIONS.relative_to(ROOT)}; fix the object in infra/ or list it there with its reason:\n  "
        + "\n  ".join(map(str, new))
    )


def test_every_exception_matches_a_finding(linted: Report) -> None:
    _, stale = compare(linted.findings, load_exceptions(EXCEPTIONS.read_text()))
    assert not stale, (
        f"{len(stale)} exception(s) in {EXCEPTIONS.relative_to(ROOT)} match no checkov finding any more; "
        "remove them:\n  " + "\n  ".join(map(str, stale))
    )


# -- the file, the comparison and checkov itself (no engine needed) ---------


def test_exceptions_file_is_well_formed() -> None:
    exceptions = load_exceptions(EXCEPTIONS.read_text())
    assert exceptions
    assert all(e.reason for e in exceptions)


def test_load_exceptions_names_the_malformed_entry() -> None:
    good = {"check": "CKV_K8S_11", "resources": ["Deployment.ns.web"], "reason": "CPU limits are opt-in."}
    assert load_exceptions(yaml.safe_dump({"exceptions": [good]})) == [
        ExceptionEntry("CKV_K8S_11", "Deployment.ns.web", "CPU limits are opt-in.", 1)
    ]
    bad = {
        "no reason": {**good, "reason": ""},
        "not a check id": {**good, "check": "K8S_11"},
        "no resources": {**good, "resources": []},
        "not a resource": {**good, "resources": ["web"]},
        "unknown key": {**good, "note": "x"},
    }
    for what, entry in bad.items():
        with pytest.raises(ValueError, match="entry 2"):
            load_exceptions(yaml.safe_dump({"exceptions": [good, entry]}))
            pytest.fail(f"accepted an entry with {what}")
    with pytest.raises(ValueError, match=r"more than once: CKV_K8S_11 Deployment\.ns\.web"):
        load_exceptions(yaml.safe_dump({"exceptions": [good, good]}))


def test_compare_names_new_findings_and_stale_exceptions() -> None:
    findings = [
        Finding("CKV_K8S_11", "Deployment.ns.web"),
        Finding("CKV_K8S_11", "Job.ns.setup"),
        Finding("CKV_K8S_40", "Deployment.ns.db"),
    ]
    exceptions = [
        ExceptionEntry("CKV_K8S_11", "Deployment.ns.*", "opt-in", 1),
        ExceptionEntry("CKV_K8S_40", "Deployment.ns.cache", "image user", 2),
        ExceptionEntry("CKV_K8S_40", "Deployment.ns.db", "image user", 3),
    ]
    new, stale = compare(findings, exceptions)
    assert new == [Finding("CKV_K8S_11", "Job.ns.setup")]
    assert stale == [exceptions[1]]
    assert str(stale[0]) == "CKV_K8S_40 Deployment.ns.cache (entry 2)"
    # A pattern covers its own check only.
    other = Finding("CKV_K8S_40", "Deployment.ns.web")
    assert compare([other], exceptions[:1]) == ([other], [exceptions[0]])


def test_checkov_finds_a_bad_deployment(tmp_path: Path) -> None:
    """checkov as the test runs it: a privileged root container is found,
    and a check suppressed by an annotation is a finding too."""
    container = {
        "name": "web",
        "image": "web:latest",
        "securityContext": {"privileged": True, "runAsUser": 0},
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "ns",
            "annotations": {"checkov.io/skip1": "CKV_K8S_14=a latest tag"},
        },
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [container]}},
        },
    }
    (tmp_path / "web.yaml").write_text(yaml.safe_dump(deployment))
    report = run_checkov(tmp_path)
    by_check = {f.check: f for f in report.findings if f.resource == "Deployment.ns.web"}
    assert {"CKV_K8S_16", "CKV_K8S_20", "CKV_K8S_23"} <= set(by_check), sorted(by_check)
    assert by_check["CKV_K8S_16"].title == "Container should not be privileged"
    assert not by_check["CKV_K8S_16"].suppressed
    assert by_check["CKV_K8S_14"].suppressed
    assert "Deployment.ns.web" in report.scanned
    new, _ = compare(report.findings, [])
    assert "CKV_K8S_14 Deployment.ns.web" in "\n".join(map(str, new))
