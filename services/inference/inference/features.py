"""Online feature lookups: one Redis hash per entity, ``features:<entity_id>``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

if TYPE_CHECKING:
    from inference.settings import Settings

KEY_PREFIX = "features:"


def connect(settings: Settings) -> Redis:
    """A client whose failures surface within about a second, for fast 503s."""
    password = settings.redis_password()
    timeout = settings.redis_timeout_seconds
    return Redis.from_url(
        settings.redis_url,
        username=settings.redis_username,
        password=password.get_secret_value() if password is not None else None,
        decode_responses=True,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        # One quick retry covers a connection the server closed while idle;
        # more would only delay the answer during a real outage.
        retry=Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.05), retries=1),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=30,
        client_name="inference",
    )


class FeatureStore:
    """Reads entity feature hashes written by the ``features`` job."""

    def __init__(self, client: Redis) -> None:
        self._client = client

    async def fetch(self, entity_ids: Sequence[str]) -> list[dict[str, str]]:
        """Each entity's hash, ``{}`` for entities without one, in request order."""
        # One round trip for the whole batch; no MULTI, since reads need no atomicity.
        async with self._client.pipeline(transaction=False) as pipe:
            for entity_id in entity_ids:
                pipe.hgetall(KEY_PREFIX + entity_id)
            results: list[dict[str, str]] = await pipe.execute()
        return results

    async def ping(self) -> bool:
        return bool(await self._client.ping())

    async def close(self) -> None:
        await self._client.aclose()
