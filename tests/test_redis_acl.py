"""The Redis configuration the stack generates, on a real redis-server
(Debian's, on loopback): each client's user may do what its client does
and nothing else."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from dataplatform.config import SettingsError
from dataplatform.services.catalog import SERVICES
from dataplatform.services.redis import maxmemory, redis_conf
from dataplatform.settings import parse_settings
from tests.local_redis import PASSWORDS, client, stack_redis
from tools.harness import run_stack


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    # Redis refuses DEBUG to everyone by default; enabled here so that the
    # tests see the users' ACL, not that switch, deny it.
    with stack_redis(tmp_path_factory.mktemp("redis"), "enable-debug-command yes\n") as port:
        yield port


def denied(call: object) -> bool:
    try:
        assert callable(call)
        call()
    except redis.exceptions.NoPermissionError:
        return True
    return False


DANGEROUS = {
    "FLUSHALL": lambda c: c.flushall(),
    "FLUSHDB": lambda c: c.flushdb(),
    "CONFIG": lambda c: c.config_get("maxmemory"),
    "DEBUG": lambda c: c.execute_command("DEBUG", "SLEEP", "0"),
    "KEYS": lambda c: c.keys("*"),
    "SHUTDOWN": lambda c: c.execute_command("SHUTDOWN"),
    "ACL": lambda c: c.acl_list(),
}


@pytest.mark.parametrize("user", ["gateway", "inference", "spark", "health"])
@pytest.mark.parametrize("command", sorted(DANGEROUS))
def test_clients_cannot_run_dangerous_commands(server: int, user: str, command: str) -> None:
    assert denied(lambda: DANGEROUS[command](client(server, user)))


def test_the_default_user_is_off(server: int) -> None:
    with pytest.raises(redis.exceptions.AuthenticationError):
        client(server, None, password="").ping()
    with pytest.raises(redis.exceptions.AuthenticationError):
        client(server, "gateway", password="wrong").ping()


def test_spark_writes_features_and_reads_nothing(server: int) -> None:
    spark = client(server, "spark")
    # What jobs/online.py sends: HSET + EXPIRE per entity into a new version,
    # SET ... GET of the pointer, SCAN + UNLINK of a replaced version.
    pipe = spark.pipeline(transaction=False)
    pipe.hset("features:v:2:e1", mapping={"a": "1"}).expire("features:v:2:e1", 60)
    pipe.hset("features:v:1:e1", mapping={"a": "0"})
    pipe.execute()
    assert spark.set("features:current", "2", get=True) is None
    assert spark.get("features:current") == b"2"
    assert list(spark.scan_iter(match="features:v:1:*")) == [b"features:v:1:e1"]
    assert spark.unlink("features:v:1:e1") == 1
    assert spark.ping()
    assert denied(lambda: spark.hgetall("features:v:2:e1"))
    assert denied(lambda: spark.set("gateway:ratelimit:k", "1"))
    assert denied(lambda: spark.hset("other:e1", mapping={"a": "1"}))
    assert denied(lambda: spark.flushall())
    assert denied(lambda: spark.config_get("maxmemory"))


def test_inference_reads_features_and_writes_nothing(server: int) -> None:
    client(server, "spark").hset("features:v:2:e2", mapping={"a": "2"})
    inference = client(server, "inference")
    inference.client_setname("inference")
    assert inference.get("features:current") == b"2"
    pipe = inference.pipeline(transaction=False)
    pipe.hgetall("features:v:2:e2")
    assert pipe.execute() == [{b"a": b"2"}]
    assert denied(lambda: inference.hset("features:v:2:e2", mapping={"a": "3"}))
    assert denied(lambda: inference.set("features:current", "3"))
    assert denied(lambda: inference.delete("features:v:2:e2"))
    assert denied(lambda: inference.get("gateway:ratelimit:k"))
    assert denied(lambda: inference.eval("return 1", 0))
    assert denied(lambda: inference.scan())


def test_gateway_runs_its_rate_limit_script_on_its_keys_only(server: int) -> None:
    gateway = client(server, "gateway", db=1)
    # The commands the gateway's GCRA script calls.
    script = (
        "local t = redis.call('TIME'); redis.call('SET', KEYS[1], t[1], 'PX', 1000); "
        "return redis.call('GET', KEYS[1])"
    )
    sha = gateway.script_load(script)
    assert gateway.evalsha(sha, 1, "gateway:ratelimit:k1")
    # The script cannot reach other keys, nor can the user call commands directly.
    assert denied(lambda: gateway.evalsha(sha, 1, "features:v:2:e1"))
    assert denied(lambda: gateway.hgetall("features:v:2:e1"))
    assert denied(lambda: gateway.eval(script, 1, "gateway:ratelimit:k2"))
    assert denied(lambda: gateway.delete("gateway:ratelimit:k1"))


def test_health_can_only_ping(server: int) -> None:
    health = client(server, "health")
    assert health.ping()
    assert denied(lambda: health.get("gateway:ratelimit:k1"))
    assert denied(lambda: health.info())


def test_admin_can_do_everything(server: int) -> None:
    admin = client(server, "admin")
    assert admin.config_get("maxmemory") == {"maxmemory": str(int(512 * 1024 * 1024 * 0.45))}
    assert admin.config_get("maxmemory-policy") == {"maxmemory-policy": "volatile-lru"}
    assert admin.hgetall("features:v:2:e1") == {b"a": b"1"}


def test_the_config_holds_digests_never_passwords() -> None:
    conf = redis_conf(PASSWORDS, 1, "noeviction")
    assert not any(password in conf for password in PASSWORDS.values())
    with pytest.raises(KeyError, match="admin"):
        redis_conf({k: v for k, v in PASSWORDS.items() if k != "admin"}, 1, "noeviction")


def test_maxmemory_is_a_share_of_the_limit() -> None:
    assert maxmemory("512Mi", 0.45) == int(0.45 * 512 * 1024 * 1024)
    assert maxmemory("1Gi", 0.5) == 512 * 1024 * 1024


def test_maxmemory_follows_the_limit_and_the_settings() -> None:
    _, platform = run_stack(
        "dev",
        {
            "resources": {"redis": {"cpuRequest": "100m", "memoryRequest": "512Mi", "memoryLimit": "1Gi"}},
            "redis": {"maxmemoryRatio": 0.5, "maxmemoryPolicy": "noeviction"},
        },
    )
    assert platform.services["redis"].maxmemory == 512 * 1024 * 1024


@pytest.mark.parametrize(
    ("redis_settings", "key"),
    [
        ({"maxmemoryPolicy": "allkeys-random"}, "dataplatform:redis.maxmemoryPolicy"),
        ({"maxmemoryRatio": 0.9}, "dataplatform:redis.maxmemoryRatio"),
    ],
)
def test_bad_redis_settings_name_the_key(redis_settings: dict[str, object], key: str) -> None:
    with pytest.raises(SettingsError, match=key):
        parse_settings({"redis": redis_settings}, SERVICES)
