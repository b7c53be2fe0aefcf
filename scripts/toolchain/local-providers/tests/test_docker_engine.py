"""The docker provider against a real Docker engine: a network, a volume, a
local image and a hardened container with uploads and a health check."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import docker
import pytest
from local_providers.docker_provider import Container, Network, RemoteImage, Volume
from local_providers.server import ProviderError

BASE = "debian:bookworm-slim"


@pytest.fixture(scope="module")
def engine() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env()
        client.ping()
        client.images.get(BASE)
    except Exception as exc:
        pytest.skip(f"needs a Docker engine with {BASE} (scripts/bootstrap.sh): {exc}")
    yield client


def test_container_lifecycle(engine: docker.DockerClient) -> None:
    name = f"lp-test-{uuid.uuid4().hex[:8]}"
    net_id, net = Network().create(
        {"name": name, "driver": "bridge", "labels": [{"label": "t", "value": "1"}]}, 60
    )
    vol_id, vol = Volume().create({"name": name, "labels": [{"label": "t", "value": "1"}]}, 60)
    _, image = RemoteImage().create({"name": BASE, "keepLocally": True}, 60)
    assert image["imageId"].startswith("sha256:")
    inputs = {
        "name": name,
        "hostname": "box",
        "image": image["imageId"],
        "command": ["sh", "-c", "cat /run/secrets/token > /data/copy; exec sleep 300"],
        "envs": ["A=1"],
        "uploads": [{"file": "/run/secrets/token", "content": "s3cret"}],
        "volumes": [{"volumeName": vol_id, "containerPath": "/data"}],
        "networksAdvanced": [{"name": name, "aliases": ["box", "alias"]}],
        "user": "0:0",
        "capabilities": {"drops": ["ALL"]},
        "securityOpts": ["no-new-privileges:true"],
        "memory": 64,
        "init": True,
        "tmpfs": {"/tmp": "rw,size=16m"},
        "healthcheck": {
            "tests": ["CMD", "test", "-s", "/data/copy"],
            "interval": "1s",
            "timeout": "1s",
            "retries": 3,
        },
        "restart": "on-failure",
        "maxRetryCount": 2,
        "wait": True,
        "waitTimeout": 60,
        "labels": [{"label": "dataplatform.test", "value": "1"}],
    }
    id_, _ = Container().create(inputs, 120)
    try:
        attrs = engine.api.inspect_container(id_)
        assert attrs["State"]["Health"]["Status"] == "healthy"
        host = attrs["HostConfig"]
        assert host["CapDrop"] == ["ALL"]
        assert host["SecurityOpt"] == ["no-new-privileges:true"]
        assert host["Memory"] == 64 * 1024 * 1024
        assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
        assert set(attrs["NetworkSettings"]["Networks"][name]["Aliases"]) >= {"box", "alias"}
        assert engine.containers.get(id_).exec_run(["cat", "/data/copy"]).output == b"s3cret"
    finally:
        Container().delete(id_, inputs, 30)
    assert not engine.containers.list(all=True, filters={"id": id_})
    # The volume outlives the container, and creating it again adopts it.
    assert Volume().create({"name": name}, 60)[0] == vol_id
    Volume().delete(vol_id, vol, 60)
    Network().delete(net_id, net, 60)


def test_a_failing_one_shot_container_reports_its_logs_and_is_removed(engine: docker.DockerClient) -> None:
    name = f"lp-test-{uuid.uuid4().hex[:8]}"
    inputs = {
        "name": name,
        "image": BASE,
        "command": ["sh", "-c", "echo bucket creation failed >&2; exit 3"],
        "attach": True,
        "logs": True,
        "mustRun": False,
        "restart": "no",
    }
    with pytest.raises(ProviderError, match=r"exited with status 3(.|\n)*bucket creation failed"):
        Container().create(inputs, 60)
    assert not engine.containers.list(all=True, filters={"name": name})


def test_a_missing_image_fails_with_a_clear_message(engine: docker.DockerClient) -> None:
    with pytest.raises(ProviderError, match="not on this Docker engine"):
        RemoteImage().create({"name": "dataplatform/nothing-here:0.0.0", "keepLocally": True}, 30)


def test_anonymous_volumes_go_with_the_container(engine: docker.DockerClient) -> None:
    import io

    image, _ = engine.images.build(
        fileobj=io.BytesIO(f"FROM {BASE}\nVOLUME /scratch\n".encode()), tag="lp-test-volume:1", rm=True
    )
    name = f"lp-test-{uuid.uuid4().hex[:8]}"
    inputs = {"name": name, "image": image.id, "command": ["sleep", "300"], "mustRun": True}
    id_, _ = Container().create(inputs, 60)
    mounts = engine.api.inspect_container(id_)["Mounts"]
    anonymous = [m["Name"] for m in mounts if m["Type"] == "volume"]
    assert len(anonymous) == 1
    Container().delete(id_, inputs, 10)
    assert anonymous[0] not in {v.name for v in engine.volumes.list()}
    engine.images.remove("lp-test-volume:1")
