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


def _sleeper(name: str, **extra: object) -> dict[str, object]:
    return {
        "name": name,
        "image": BASE,
        "command": ["sleep", "300"],
        "restart": "no",
        "mustRun": True,
        "destroyGraceSeconds": 1,
        **extra,
    }


def test_a_container_removed_outside_pulumi_is_gone_from_the_state(engine: docker.DockerClient) -> None:
    inputs = _sleeper(f"lp-test-{uuid.uuid4().hex[:8]}")
    id_, outputs = Container().create(inputs, 60)
    assert Container().read(id_, outputs, inputs) == (id_, outputs)
    engine.api.remove_container(id_, force=True)
    assert Container().read(id_, outputs, inputs) is None


def test_a_container_that_must_run_but_died_is_removed_and_gone(engine: docker.DockerClient) -> None:
    inputs = _sleeper(f"lp-test-{uuid.uuid4().hex[:8]}")
    id_, outputs = Container().create(inputs, 60)
    engine.api.kill(id_)
    engine.api.wait(id_, timeout=30)
    assert Container().read(id_, outputs, inputs) is None
    # As upstream, the dead container is removed, so a new one can take its name.
    assert not engine.containers.list(all=True, filters={"id": id_})


def test_a_stopped_container_that_need_not_run_stays(engine: docker.DockerClient) -> None:
    inputs = _sleeper(f"lp-test-{uuid.uuid4().hex[:8]}", mustRun=False)
    id_, outputs = Container().create(inputs, 60)
    try:
        engine.api.kill(id_)
        engine.api.wait(id_, timeout=30)
        found = Container().read(id_, outputs, inputs)
        assert found is not None and found[1]["exitCode"] == 137
    finally:
        Container().delete(id_, inputs, 10)


def test_a_label_change_keeps_a_purgeable_volumes_data(engine: docker.DockerClient) -> None:
    """With purgeOnDestroy the volume is not retained, so a replacement would
    delete it; a label change is an update that leaves the data alone."""
    from local_providers.docker_provider import Volume

    name = f"lp-test-{uuid.uuid4().hex[:8]}"
    old = {"name": name, "labels": [{"label": "dataplatform.data", "value": "true"}]}
    vol_id, state = Volume().create(old, 60)
    try:
        engine.containers.run(
            BASE, ["sh", "-c", "echo kept > /data/file"], volumes={name: {"bind": "/data"}}, remove=True
        )
        new = {**old, "labels": [*old["labels"], {"label": "dataplatform.stack", "value": "t"}]}
        diff = Volume().diff(vol_id, old, new)
        assert not diff.replaces
        updated = Volume().update(vol_id, state, new, 60)
        assert updated["labels"] == new["labels"]
        mount = {name: {"bind": "/data"}}
        assert engine.containers.run(BASE, ["cat", "/data/file"], volumes=mount, remove=True) == b"kept\n"
    finally:
        Volume().delete(vol_id, state, 60)


def test_files_reach_a_read_only_container_through_a_never_started_carrier(
    engine: docker.DockerClient,
) -> None:
    """The dev target's pattern: the engine copies uploads only where it can
    write, so a carrier that never starts fills a volume, and the workload
    mounts it read-only under a read-only root."""
    name = f"lp-test-{uuid.uuid4().hex[:8]}"
    vol_id, vol = Volume().create({"name": name}, 60)
    carrier = {
        "name": f"{name}-files",
        "image": BASE,
        "user": "1234:1234",
        "start": False,
        "mustRun": False,
        "restart": "no",
        "volumes": [{"volumeName": vol_id, "containerPath": "/run/secrets"}],
        "uploads": [
            {
                "file": "/run/secrets/token",
                "content": "s3cret",
                "owner": "1234",
                "group": "1234",
                "permissions": "0400",
            }
        ],
    }
    carrier_id, carrier_out = Container().create(carrier, 60)
    assert engine.api.inspect_container(carrier_id)["State"]["Status"] == "created"
    assert Container().read(carrier_id, carrier_out, carrier) is not None, "a carrier is not a dead container"
    workload = _sleeper(
        name,
        user="1234:1234",
        readOnly=True,
        volumes=[{"volumeName": vol_id, "containerPath": "/run/secrets", "readOnly": True}],
    )
    id_, _ = Container().create(workload, 60)
    try:
        box = engine.containers.get(id_)
        assert box.exec_run(["cat", "/run/secrets/token"]).output == b"s3cret"
        assert box.exec_run(["stat", "-c", "%a %u:%g", "/run/secrets/token"]).output == b"400 1234:1234\n"
        assert box.exec_run(["cat", "/run/secrets/token"], user="4321").exit_code != 0
        assert box.exec_run(["touch", "/run/secrets/new"]).exit_code != 0
        assert box.exec_run(["touch", "/etc/new"]).exit_code != 0
    finally:
        Container().delete(id_, workload, 10)
        Container().delete(carrier_id, carrier, 10)
        Volume().delete(vol_id, vol, 60)


def test_a_rebuilt_tag_is_read_as_the_new_image(engine: docker.DockerClient) -> None:
    """Refresh sees what the name refers to now, as upstream does, so a
    stand-in rebuilt under the same tag rolls the containers made from it."""
    tag = f"dataplatform/lp-test:{uuid.uuid4().hex[:8]}"
    engine.images.get(BASE).tag(tag)
    try:
        id_, first = RemoteImage().create({"name": tag, "keepLocally": True}, 60)
        rebuilt = engine.containers.run(BASE, ["true"], detach=True)
        rebuilt.wait()
        rebuilt.commit(repository=tag.split(":")[0], tag=tag.split(":")[1])
        rebuilt.remove()
        read = RemoteImage().read(id_, first, {"name": tag})
        assert read is not None
        assert read[1]["imageId"] == engine.images.get(tag).id != first["imageId"]
        engine.images.remove(tag)
        assert RemoteImage().read(id_, first, {"name": tag}) is None
    finally:
        for image in engine.images.list(name=tag.split(":")[0]):
            engine.images.remove(image.id, force=True)
