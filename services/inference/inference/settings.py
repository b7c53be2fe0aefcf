"""Configuration read from ``INFERENCE_*`` environment variables (see docs/contracts.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def read_secret_file(path: Path) -> SecretStr:
    """Read a credential file, dropping the single trailing newline editors and tools append."""
    text = path.read_text(encoding="utf-8")
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    return SecretStr(text)


class Settings(BaseSettings):
    """Service settings; credentials are referenced by file path, never passed as values."""

    model_config = SettingsConfigDict(env_prefix="INFERENCE_", extra="ignore", frozen=True)

    host: str = "0.0.0.0"  # noqa: S104 - a container must accept traffic from its network
    port: Annotated[int, Field(ge=1, le=65535)] = 3000
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    redis_url: str
    # Redis ACL user; without one the connection authenticates as "default".
    redis_username: Annotated[str, Field(min_length=1, pattern=r"^\S+$")] | None = None
    redis_password_file: Path | None = None
    # Kept short so a Redis outage turns into a fast 503 instead of a hung request.
    redis_timeout_seconds: Annotated[float, Field(gt=0, le=30)] = 1.0

    s3_endpoint: str
    s3_access_key_file: Path
    s3_secret_key_file: Path
    s3_region: str = "us-east-1"
    models_bucket: Annotated[str, Field(min_length=3, max_length=63)] = "models"
    model_name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")] = (
        "churn"
    )

    poll_seconds: Annotated[float, Field(gt=0)] = 15.0
    max_batch: Annotated[int, Field(ge=1, le=100_000)] = 256

    @field_validator("redis_url")
    @classmethod
    def _redis_url_has_no_password(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://")):
            raise ValueError("must be a redis:// or rediss:// URL")
        if "@" in value.split("//", 1)[1].split("/", 1)[0]:
            raise ValueError("must not carry credentials; use INFERENCE_REDIS_PASSWORD_FILE")
        return value

    @field_validator("s3_endpoint")
    @classmethod
    def _s3_endpoint_is_http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    def redis_password(self) -> SecretStr | None:
        if self.redis_password_file is None:
            return None
        return read_secret_file(self.redis_password_file)

    def s3_credentials(self) -> tuple[SecretStr, SecretStr]:
        return read_secret_file(self.s3_access_key_file), read_secret_file(self.s3_secret_key_file)
