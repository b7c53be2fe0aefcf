"""Settings from the environment and credentials from files."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from inference.settings import Settings, read_secret_file

REQUIRED = {
    "redis_url": "redis://redis:6379/0",
    "s3_endpoint": "http://minio:9000/",
    "s3_access_key_file": Path("/run/secrets/s3_access_key"),
    "s3_secret_key_file": Path("/run/secrets/s3_secret_key"),
}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("s3cret\n", "s3cret"),
        ("s3cret", "s3cret"),
        ("s3cret\r\n", "s3cret"),
        ("s3cret\n\n", "s3cret\n"),
        (" spaced \n", " spaced "),
    ],
)
def test_secret_files_lose_one_trailing_newline(
    tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "secret"
    path.write_bytes(content.encode())
    assert read_secret_file(path).get_secret_value() == expected


def test_defaults_follow_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERENCE_REDIS_URL", "redis://redis:6379/0")
    monkeypatch.setenv("INFERENCE_S3_ENDPOINT", "http://minio:9000")
    monkeypatch.setenv("INFERENCE_S3_ACCESS_KEY_FILE", "/run/secrets/a")
    monkeypatch.setenv("INFERENCE_S3_SECRET_KEY_FILE", "/run/secrets/b")
    settings = Settings()
    assert settings.port == 3000
    assert settings.models_bucket == "models"
    assert settings.model_name == "churn"
    assert settings.poll_seconds == 15
    assert settings.max_batch == 256
    assert settings.redis_password() is None


def test_endpoint_loses_trailing_slash() -> None:
    assert Settings(**REQUIRED).s3_endpoint == "http://minio:9000"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("redis_url", "redis://:pw@redis:6379/0"),
        ("redis_url", "http://redis:6379"),
        ("s3_endpoint", "minio:9000"),
        ("max_batch", 0),
        ("poll_seconds", 0),
        ("model_name", "../etc"),
        ("port", 70000),
    ],
)
def test_invalid_values_are_rejected(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(**{**REQUIRED, field: value})  # type: ignore[arg-type]
    assert raised.value.errors()[0]["loc"] == (field,)
