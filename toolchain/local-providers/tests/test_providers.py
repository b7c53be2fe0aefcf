"""The providers' resource logic, and the gRPC protocol the engine speaks."""

from __future__ import annotations

import string
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2
from local_providers.docker_provider import Container, Image, RemoteImage, duration_ns
from local_providers.random_provider import RandomPassword, generate
from local_providers.server import UNKNOWN, ProviderError
from pulumi.runtime import proto, rpc
from pulumi.runtime.proto import provider_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]


def test_password_honours_length_classes_and_minimums() -> None:
    for _ in range(200):
        value = generate({"length": 12, "special": False, "minUpper": 2, "minLower": 2, "minNumeric": 2})
        assert len(value) == 12
        assert all(c in string.ascii_letters + string.digits for c in value)
        assert sum(c.isupper() for c in value) >= 2
        assert sum(c.islower() for c in value) >= 2
        assert sum(c.isdigit() for c in value) >= 2


def test_password_rejects_impossible_minimums() -> None:
    with pytest.raises(ProviderError, match="below the minimum"):
        generate({"length": 3, "minUpper": 2, "minLower": 2})


def test_password_is_kept_until_an_input_changes() -> None:
    kind = RandomPassword()
    inputs = {"length": 32, "special": False}
    assert not kind.diff("id", inputs, dict(inputs)).changed
    changed = kind.diff("id", inputs, {"length": 40, "special": False})
    assert changed.replaces == ["length"]


def test_container_changes_replace_it_name_first_and_waits_do_not() -> None:
    kind = Container()
    old = {"name": "dp-redis", "image": "sha256:a", "envs": ["A=1"], "wait": True, "ports": []}
    assert not kind.diff("id", old, {**old, "ports": None}).changed, "empty and absent are the same"
    new_image = kind.diff("id", old, {**old, "image": "sha256:b"})
    assert new_image.replaces == ["image"]
    assert new_image.delete_before_replace
    waits = kind.diff("id", old, {**old, "wait": False})
    assert waits.changed == ["wait"] and not waits.replaces


def test_unknown_inputs_in_preview_count_as_changes() -> None:
    kind = Container()
    old = {"name": "dp-x", "image": "sha256:a"}
    result = kind.diff("id", old, {**old, "image": UNKNOWN})
    assert result.replaces == ["image"]


def test_unsupported_inputs_fail_check_instead_of_being_ignored() -> None:
    _, failures = Container().check({}, {"name": "x", "image": "i", "privileged": True})
    assert failures == [("privileged", "Container: privileged is not supported by the local docker provider")]
    _, failures = RemoteImage().check({}, {"name": "redis:7", "keepLocally": True})
    assert failures == []


def test_image_check_adds_a_digest_of_the_context(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    news = {"build": {"context": str(tmp_path), "args": {"A": "1"}}, "imageName": "x:1", "skipPush": True}
    checked, failures = Image().check({}, news)
    assert failures == []
    assert checked["contextDigest"].startswith("sha256:")
    _, failures = Image().check({}, {**news, "skipPush": False})
    assert [f[0] for f in failures] == ["skipPush"]


def test_durations_are_go_durations() -> None:
    assert duration_ns("10s") == 10 * 10**9
    assert duration_ns("1m30s") == 90 * 10**9
    assert duration_ns("500ms") == 5 * 10**8
    with pytest.raises(ProviderError, match="not a duration"):
        duration_ns("10 seconds")


@pytest.fixture()
def random_plugin() -> Iterator[provider_pb2_grpc.ResourceProviderStub]:
    process = subprocess.Popen(
        [sys.executable, "-m", "local_providers", "random"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield provider_pb2_grpc.ResourceProviderStub(channel)
    finally:
        process.terminate()
        process.wait(10)


URN = (
    "urn:pulumi:dev::dataplatform::dataplatform:index:Platform"
    "$random:index/randomPassword:RandomPassword::redis-password"
)


async def _struct(props: dict[str, object]) -> object:
    return await rpc.serialize_properties(props, {})


def test_engine_protocol_round_trip(random_plugin: provider_pb2_grpc.ResourceProviderStub) -> None:
    import asyncio

    stub = random_plugin
    assert stub.GetPluginInfo(empty_pb2.Empty()).version == "4.21.4"
    configured = stub.Configure(proto.ConfigureRequest())
    assert configured.acceptSecrets is False
    inputs = asyncio.run(_struct({"length": 24, "special": False}))
    checked = stub.Check(proto.CheckRequest(urn=URN, news=inputs, olds=inputs))
    assert not checked.failures
    created = stub.Create(proto.CreateRequest(urn=URN, properties=checked.inputs))
    outputs = rpc.deserialize_properties(created.properties)
    assert len(outputs["result"]) == 24
    diff = stub.Diff(
        proto.DiffRequest(urn=URN, id=created.id, olds=created.properties, old_inputs=inputs, news=inputs)
    )
    assert diff.changes == proto.DiffResponse.DIFF_NONE
    bad = asyncio.run(_struct({"length": 0}))
    assert [f.property for f in stub.Check(proto.CheckRequest(urn=URN, news=bad)).failures] == ["length"]
    other = URN.replace("random:index/randomPassword:RandomPassword", "random:index/randomUuid:RandomUuid")
    with pytest.raises(grpc.RpcError, match="not implemented by this provider"):
        stub.Check(proto.CheckRequest(urn=other, news=inputs))


def test_diff_without_old_inputs_compares_only_what_the_program_sets(
    random_plugin: provider_pb2_grpc.ResourceProviderStub,
) -> None:
    """A state recorded without inputs must not turn computed outputs (the
    password itself) into changes that replace the resource."""
    import asyncio

    stub = random_plugin
    inputs = asyncio.run(_struct({"length": 24, "special": False}))
    created = stub.Create(proto.CreateRequest(urn=URN, properties=inputs))
    unchanged = stub.Diff(proto.DiffRequest(urn=URN, id=created.id, olds=created.properties, news=inputs))
    assert unchanged.changes == proto.DiffResponse.DIFF_NONE, list(unchanged.diffs)
    longer = asyncio.run(_struct({"length": 30, "special": False}))
    changed = stub.Diff(proto.DiffRequest(urn=URN, id=created.id, olds=created.properties, news=longer))
    assert list(changed.replaces) == ["length"]


def test_volume_labels_change_in_place_never_by_replacement() -> None:
    from local_providers.docker_provider import Volume

    old = {"name": "dp-data", "labels": [{"label": "dataplatform.data", "value": "true"}]}
    new = {**old, "labels": [*old["labels"], {"label": "dataplatform.stack", "value": "dev"}]}
    result = Volume().diff("dp-data", old, new)
    assert result.changed == ["labels"]
    assert not result.replaces and not result.delete_before_replace
    # What still needs a new volume does replace it.
    assert Volume().diff("dp-data", old, {**old, "driver": "other"}).replaces == ["driver"]


def test_docker_diff_without_old_inputs_ignores_computed_outputs() -> None:
    """A volume recorded without inputs must not be replaced (its data with
    it) because the state also holds its mountpoint."""
    import asyncio

    process = subprocess.Popen(
        [sys.executable, "-m", "local_providers", "docker"], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = provider_pb2_grpc.ResourceProviderStub(channel)
            urn = "urn:pulumi:dev::dataplatform::docker:index/volume:Volume::redis-data"
            inputs = {"name": "dp-redis-data", "labels": [{"label": "dataplatform.data", "value": "true"}]}
            outputs = {
                **inputs,
                "mountpoint": "/var/lib/docker/volumes/dp-redis-data/_data",
                "driver": "local",
            }
            news, olds = asyncio.run(_struct(inputs)), asyncio.run(_struct(outputs))
            same = stub.Diff(proto.DiffRequest(urn=urn, id="dp-redis-data", olds=olds, news=news))
            assert same.changes == proto.DiffResponse.DIFF_NONE, list(same.diffs)
            renamed = asyncio.run(_struct({**inputs, "name": "dp-other"}))
            moved = stub.Diff(proto.DiffRequest(urn=urn, id="dp-redis-data", olds=olds, news=renamed))
            assert list(moved.replaces) == ["name"]
    finally:
        process.terminate()
        process.wait(10)
