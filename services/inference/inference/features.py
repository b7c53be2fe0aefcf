"""Online feature lookups in the version the ``features`` job made live.

``features:current`` names the live version; each entity's features are
the hash ``features:v:<version>:<entity_id>``. Reading the pointer first
means a lookup sees one version whole, even while a new one is written or
switched to (the job keeps the replaced version for such readers).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

if TYPE_CHECKING:
    from inference.settings import Settings

POINTER_KEY = "features:current"
VERSIONS_PREFIX = "features:v:"
# Connections to Redis at most; more concurrent lookups wait for one.
MAX_CONNECTIONS = 64


def connect(settings: Settings) -> Redis:
    """A client whose failures surface within about a second, for fast 503s."""
    password = settings.redis_password()
    timeout = settings.redis_timeout_seconds
    # A bounded pool that makes a request wait (up to the timeout) for a free
    # connection: redis-py's default pool refuses the 101st concurrent
    # request outright, which turned a burst of lookups into 503s.
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=MAX_CONNECTIONS,
        timeout=timeout,
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
    return Redis.from_pool(pool)


class FeatureStore:
    """Reads entity feature hashes written by the ``features`` job."""

    def __init__(self, client: Redis) -> None:
        self._client = client

    async def fetch(self, entity_ids: Sequence[str]) -> list[dict[str, str]]:
        """Each entity's hash, ``{}`` for entities without one, in request order."""
        pointer = await self._client.get(POINTER_KEY)
        if pointer is None:
            return [{} for _ in entity_ids]
        # Replies are decoded (``decode_responses``); bytes only satisfy the type.
        version = pointer.decode() if isinstance(pointer, bytes) else pointer
        prefix = f"{VERSIONS_PREFIX}{version}:"
        # One more round trip for the whole batch; no MULTI: each hash is
        # written whole (by a features run before it goes live, or by the
        # stream), so every entity is read consistently on its own.
        async with self._client.pipeline(transaction=False) as pipe:
            for entity_id in entity_ids:
                pipe.hgetall(prefix + entity_id)
            results: list[dict[str, str]] = await pipe.execute()
        return results

    async def ping(self) -> bool:
        return bool(await self._client.ping())

    async def close(self) -> None:
        await self._client.aclose()
