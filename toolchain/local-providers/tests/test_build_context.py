"""Ignore files and context digests behave as Docker's build context does."""

from __future__ import annotations

from pathlib import Path

from local_providers.build_context import BuildContext, _may_reinclude, excluded, parse_ignore


def _tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


SPARK_LIKE = """\
# only two folders are sent
*
!images/spark/
!jobs/
jobs/tests/
**/__pycache__/
**/.venv/
"""


def test_exclusions_and_exceptions_last_match_wins() -> None:
    patterns = parse_ignore(SPARK_LIKE)
    assert excluded(patterns, "README.md")
    assert excluded(patterns, "infra/platform.py")
    assert not excluded(patterns, "images/spark/Dockerfile")
    assert excluded(patterns, "images/minio/Dockerfile")
    assert not excluded(patterns, "jobs/features.py")
    assert excluded(patterns, "jobs/tests/test_x.py")
    assert excluded(patterns, "jobs/__pycache__/x.pyc")
    assert excluded(patterns, "jobs/.venv/bin/python")


def test_a_folder_excluded_after_the_last_exception_is_not_walked() -> None:
    patterns = parse_ignore(SPARK_LIKE)
    assert _may_reinclude(patterns, "jobs")
    assert not _may_reinclude(patterns, "jobs/.venv")
    assert not _may_reinclude(patterns, "jobs/tests")
    later = parse_ignore(SPARK_LIKE + "!jobs/.venv/keep.txt\n")
    assert _may_reinclude(later, "jobs/.venv")


def test_an_exception_after_the_folder_exclusion_brings_a_file_back(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        {
            "Dockerfile": "FROM x\n",
            ".dockerignore": "*\n!app/\napp/cache/\n!app/cache/keep.txt\n",
            "app/main.py": "",
            "app/cache/big": "x",
            "app/cache/keep.txt": "",
        },
    )
    context = BuildContext.load(str(tmp_path), None)
    assert context.files == ["Dockerfile", "app/cache/keep.txt", "app/main.py"]


def test_single_star_stays_in_one_segment_and_double_star_crosses() -> None:
    patterns = parse_ignore("target/\n*.log\ndocs/**/*.tmp\n")
    assert excluded(patterns, "target/release/gateway")
    assert not excluded(patterns, "src/target/x")
    assert excluded(patterns, "build.log")
    assert not excluded(patterns, "logs/build.log")
    assert excluded(patterns, "docs/a/b/c.tmp")
    assert excluded(patterns, "docs/c.tmp")


def test_context_lists_sent_files_and_prefers_the_dockerfile_ignore(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        {
            "images/spark/Dockerfile": "FROM x\n",
            "images/spark/Dockerfile.dockerignore": SPARK_LIKE,
            "images/minio/Dockerfile": "FROM y\n",
            "jobs/features.py": "print(1)\n",
            "jobs/tests/test_a.py": "",
            "jobs/.venv/lib/big": "x" * 100,
            ".dockerignore": "nothing-here\n",
            "README.md": "",
        },
    )
    context = BuildContext.load(str(tmp_path), str(tmp_path / "images/spark/Dockerfile"))
    assert context.files == [
        "images/spark/Dockerfile",
        "images/spark/Dockerfile.dockerignore",
        "jobs/features.py",
    ]
    assert context.dockerfile_in_context == "images/spark/Dockerfile"


def test_digest_follows_sent_content_only(tmp_path: Path) -> None:
    _tree(tmp_path, {"Dockerfile": "FROM x\n", "app.py": "a", ".dockerignore": "*.log\n", "x.log": "1"})
    first = BuildContext.load(str(tmp_path), None).digest()
    (tmp_path / "x.log").write_text("2")
    assert BuildContext.load(str(tmp_path), None).digest() == first
    assert BuildContext.load(str(tmp_path), None).digest("ARG=1") != first
    (tmp_path / "app.py").write_text("b")
    assert BuildContext.load(str(tmp_path), None).digest() != first


def test_tar_holds_exactly_the_sent_files(tmp_path: Path) -> None:
    import tarfile

    _tree(
        tmp_path,
        {
            "Dockerfile": "FROM x\n",
            "src/main.rs": "fn main(){}",
            ".dockerignore": "target/\n",
            "target/big": "x",
        },
    )
    context = BuildContext.load(str(tmp_path), None)
    with tarfile.open(fileobj=context.tar()) as archive:
        names = sorted(m.name for m in archive.getmembers())
    assert names == [".dockerignore", "Dockerfile", "src/main.rs"]
