"""The Redis configuration the stack generates, on a real redis-server
(Debian's, on loopback): each client's user may do what its client does
and nothing else."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
import redis

from infra.services.redis import USERS, maxmemory, redis_conf

PASSWORDS = {user: f"{user}-password-0123456789" for user in USERS}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (scripts/test-deps.sh installs Debian's)")
    work = tmp_path_factory.mktemp("redis")
    port = free_port()
    conf = redis_conf(PASSWORDS, maxmemory("512Mi", 0.45), "volatile-lru")
    # Same file as the container's, pointed at loopback and a temporary dir.
    conf = conf.replace("port 6379", f"port {port}").replace("bind * -::*", "bind 127.0.0.1")
    conf = conf.replace("dir /data", f"dir {work}")
    # Redis refuses DEBUG to everyone by default; enabled here so that the
    # tests see the users' ACL, not that switch, deny it.
    conf += "enable-debug-command yes\n"
    (work / "redis.conf").write_text(conf)
    process = subprocess.Popen(
        [binary, str(work / "redis.conf")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            client(port, "health").ping()
            break
        except redis.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"redis-server did not start:\n{output}")
            time.sleep(0.05)
    yield port
    process.terminate()
    process.wait(10)


def client(port: int, user: str | None, db: int = 0, password: str | None = None) -> redis.Redis:
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        db=db,
        username=user,
        password=password if password is not None else PASSWORDS.get(user or "", "x"),
        socket_timeout=5,
    )


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
    # What jobs/online.py sends: DEL + HSET + EXPIRE per entity in MULTI/EXEC.
    pipe = spark.pipeline(transaction=True)
    pipe.delete("features:e1").hset("features:e1", mapping={"a": "1"}).expire("features:e1", 60)
    pipe.execute()
    assert spark.ping()
    assert denied(lambda: spark.hgetall("features:e1"))
    assert denied(lambda: spark.set("gateway:ratelimit:k", "1"))
    assert denied(lambda: spark.hset("other:e1", mapping={"a": "1"}))
    assert denied(lambda: spark.scan())


def test_inference_reads_features_and_writes_nothing(server: int) -> None:
    client(server, "spark").hset("features:e2", mapping={"a": "2"})
    inference = client(server, "inference")
    inference.client_setname("inference")
    pipe = inference.pipeline(transaction=False)
    pipe.hgetall("features:e2")
    assert pipe.execute() == [{b"a": b"2"}]
    assert denied(lambda: inference.hset("features:e2", mapping={"a": "3"}))
    assert denied(lambda: inference.delete("features:e2"))
    assert denied(lambda: inference.get("gateway:ratelimit:k"))
    assert denied(lambda: inference.eval("return 1", 0))


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
    assert denied(lambda: gateway.evalsha(sha, 1, "features:e1"))
    assert denied(lambda: gateway.hgetall("features:e1"))
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
    assert admin.hgetall("features:e1") == {b"a": b"1"}


def test_the_config_holds_digests_never_passwords() -> None:
    conf = redis_conf(PASSWORDS, 1, "noeviction")
    assert not any(password in conf for password in PASSWORDS.values())
    with pytest.raises(KeyError, match="admin"):
        redis_conf({k: v for k, v in PASSWORDS.items() if k != "admin"}, 1, "noeviction")


def test_maxmemory_is_a_share_of_the_limit() -> None:
    assert maxmemory("512Mi", 0.45) == int(0.45 * 512 * 1024 * 1024)
    assert maxmemory("1Gi", 0.5) == 512 * 1024 * 1024
