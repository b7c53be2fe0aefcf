"""pulumi-docker's Network, Volume, RemoteImage, Image and Container on the
Docker Engine API (docker-py), with pulumi-docker 5's property names.

What is implemented is what the dataplatform program declares; an input
this provider does not know is rejected at check time rather than ignored,
so a program using more of pulumi-docker fails loudly here.

Behaviour kept from upstream: a Container's configuration changes replace
it (deleted first, its name being fixed), uploads are copied in before the
container starts, ``wait`` returns only once the health check passes,
``attach`` waits for the container to exit; volumes are created if missing
and reused if they exist; images are kept on delete when ``keepLocally``; a
refresh drops a container that was removed outside Pulumi, and removes and
drops one that should run (``mustRun``) but has stopped, so the next update
creates it again.
Where this provider departs from upstream on purpose: a volume's labels
change in place, because replacing a volume deletes its data.
Where this provider is stricter: a one-shot (``attach``) container that
exits non-zero fails the update with its last log lines, and a container
that does not become healthy is removed so the next update starts clean.
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import io
import json
import os
import re
import tarfile
import time
from types import ModuleType
from typing import TYPE_CHECKING, Any

from local_providers.build_context import BuildContext
from local_providers.server import UNKNOWN, Props, ProviderError, ResourceKind, contains_unknown

if TYPE_CHECKING:
    import docker
    from docker import errors as docker_errors
    from docker import types as docker_types
else:

    class _OnFirstUse:
        """A module imported when first used. docker-py (with requests) is a
        third of the provider's start, which the engine waits for before it
        checks a resource; checks and diffs, all a run without changes does,
        never call the engine's API."""

        def __init__(self, name: str) -> None:
            self._name = name

        def __getattr__(self, attr: str) -> Any:
            module: ModuleType = importlib.import_module(self._name)
            return getattr(module, attr)

    docker = _OnFirstUse("docker")
    docker_errors = _OnFirstUse("docker.errors")
    docker_types = _OnFirstUse("docker.types")

DOCKER_HOST = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
LOG_TAIL = 40

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}


def duration_ns(text: str | None) -> int:
    """Nanoseconds in a Go duration such as ``30s`` or ``1m30s``."""
    if not text:
        return 0
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ProviderError(f"not a duration: {text!r} (use Go durations such as 10s or 1m30s)")
    return int(sum(float(n) * _UNIT_NS[u] for n, u in parts))


def client(timeout: int = 600) -> docker.APIClient:
    return docker.APIClient(base_url=DOCKER_HOST, version="auto", timeout=timeout)


def _labels(items: list[dict[str, str]] | None) -> dict[str, str]:
    return {item["label"]: item["value"] for item in items or []}


def _unknown_keys(kind: str, props: Props, known: set[str]) -> list[tuple[str, str]]:
    return [
        (key, f"{kind}: {key} is not supported by the local docker provider")
        for key in sorted(k for k in props if not k.startswith("__") and k not in known)
        if props[key] not in (None, [], {}, "")
    ]


class Network(ResourceKind):
    token = "docker:index/network:Network"
    known = {"name", "driver", "labels", "internal", "attachable", "options"}

    def check(self, olds: Props, news: Props) -> tuple[Props, list[tuple[str, str]]]:
        return news, _unknown_keys("Network", news, self.known)

    def create(self, inputs: Props, timeout: float) -> tuple[str, Props]:
        api = client()
        name = inputs["name"]
        # The engine's name filter matches substrings; only an exact match clashes.
        if any(n["Name"] == name for n in api.networks(names=[name])):
            raise ProviderError(f"network {name} already exists; remove it or pick another stack name")
        created = api.create_network(
            name,
            driver=inputs.get("driver") or "bridge",
            labels=_labels(inputs.get("labels")),
            internal=bool(inputs.get("internal")),
            attachable=bool(inputs.get("attachable")),
            options=inputs.get("options") or None,
        )
        return created["Id"], {**inputs, "driver": inputs.get("driver") or "bridge"}

    def read(self, id_: str, state: Props, inputs: Props) -> tuple[str, Props] | None:
        try:
            client().inspect_network(id_)
        except docker_errors.NotFound:
            return None
        return id_, state

    def delete(self, id_: str, state: Props, timeout: float) -> None:
        with contextlib.suppress(docker_errors.NotFound):
            client().remove_network(id_)


class Volume(ResourceKind):
    """A named volume. Its labels are applied in place: the engine cannot
    relabel a volume, and replacing one (its name being fixed, delete
    first) would delete the data it holds whenever it is not retained.
    The state records the declared labels; the volume keeps those it was
    created with."""

    token = "docker:index/volume:Volume"
    known = {"name", "driver", "driverOpts", "labels"}
    updatable = frozenset({"labels"})

    def check(self, olds: Props, news: Props) -> tuple[Props, list[tuple[str, str]]]:
        return news, _unknown_keys("Volume", news, self.known)

    def create(self, inputs: Props, timeout: float) -> tuple[str, Props]:
        # An existing volume of that name is adopted: data kept by an
        # earlier `destroy` is attached again.
        created = client().create_volume(
            name=inputs["name"],
            driver=inputs.get("driver") or "local",
            driver_opts=inputs.get("driverOpts") or None,
            labels=_labels(inputs.get("labels")),
        )
        return created["Name"], {**inputs, "mountpoint": created.get("Mountpoint", "")}

    def read(self, id_: str, state: Props, inputs: Props) -> tuple[str, Props] | None:
        try:
            client().inspect_volume(id_)
        except docker_errors.NotFound:
            return None
        return id_, state

    def update(self, id_: str, olds: Props, news: Props, timeout: float) -> Props:
        return {**olds, **news}

    def delete(self, id_: str, state: Props, timeout: float) -> None:
        with contextlib.suppress(docker_errors.NotFound):
            client().remove_volume(id_)


class RemoteImage(ResourceKind):
    """An image by reference: the local one if present, else pulled."""

    token = "docker:index/remoteImage:RemoteImage"
    known = {"name", "keepLocally", "pullTriggers", "triggers", "forceRemove", "platform"}
    updatable = frozenset({"keepLocally", "forceRemove"})

    def check(self, olds: Props, news: Props) -> tuple[Props, list[tuple[str, str]]]:
        return news, _unknown_keys("RemoteImage", news, self.known)

    def create(self, inputs: Props, timeout: float) -> tuple[str, Props]:
        api = client()
        name = inputs["name"]
        try:
            image = api.inspect_image(name)
        except docker_errors.ImageNotFound:
            repository, _, tag = name.rpartition(":") if ":" in name.rsplit("/", 1)[-1] else (name, "", "")
            try:
                api.pull(repository, tag=tag or None, platform=inputs.get("platform") or None)
                image = api.inspect_image(name)
            except docker_errors.APIError as exc:
                raise ProviderError(
                    f"image {name} is not on this Docker engine and could not be pulled: "
                    f"{exc.explanation or exc}"
                ) from None
        digests = image.get("RepoDigests") or []
        outputs = {**inputs, "imageId": image["Id"], "repoDigest": digests[0] if digests else ""}
        return f"{image['Id']}{name}", outputs

    def read(self, id_: str, state: Props, inputs: Props) -> tuple[str, Props] | None:
        """The image the name refers to now, as upstream reads it: a tag
        rebuilt or re-pulled since gives a new ``imageId``, so the
        containers made from the old one are replaced at the next update."""
        try:
            image = client().inspect_image(state.get("name") or state.get("imageId", ""))
        except docker_errors.ImageNotFound:
            return None
        digests = image.get("RepoDigests") or []
        return id_, {**state, "imageId": image["Id"], "repoDigest": digests[0] if digests else ""}

    def delete(self, id_: str, state: Props, timeout: float) -> None:
        if state.get("keepLocally"):
            return
        try:
            client().remove_image(state["imageId"], force=bool(state.get("forceRemove")))
        except docker_errors.NotFound:
            pass
        except docker_errors.APIError as exc:
            raise ProviderError(
                f"could not remove image {state.get('name')}: {exc.explanation or exc}"
            ) from None


class Image(ResourceKind):
    """An image built from a local context, never pushed (``skipPush``).

    ``check`` adds ``contextDigest``, a digest of the Dockerfile, the build
    arguments and every file the context sends, so an unchanged context is
    no diff and any change rebuilds in place."""

    token = "docker:index/image:Image"
    known = {"build", "imageName", "skipPush", "buildOnPreview", "registry", "contextDigest"}
    known_build = {"context", "dockerfile", "args", "builderVersion", "platform", "target"}
    updatable = frozenset({"build", "imageName", "skipPush", "buildOnPreview", "registry", "contextDigest"})

    def check(self, olds: Props, news: Props) -> tuple[Props, list[tuple[str, str]]]:
        failures = _unknown_keys("Image", news, self.known - {"contextDigest"})
        build = news.get("build") or {}
        failures += [
            (f"build.{key}", message)
            for key, message in _unknown_keys("Image.build", build, self.known_build)
        ]
        if news.get("skipPush") is not True:
            failures.append(("skipPush", "the local docker provider builds only; set skipPush"))
        if failures or contains_unknown(build):
            return news, failures
        try:
            context = BuildContext.load(build.get("context") or ".", build.get("dockerfile"))
        except FileNotFoundError as exc:
            return news, [("build.context", str(exc))]
        args = json.dumps(build.get("args") or {}, sort_keys=True)
        return {**news, "contextDigest": context.digest(args + (build.get("target") or ""))}, []

    def _build(self, inputs: Props, timeout: float) -> Props:
        build = inputs["build"]
        context = BuildContext.load(build.get("context") or ".", build.get("dockerfile"))
        tag = inputs["imageName"]
        api = client(timeout=int(timeout))
        lines: list[str] = []
        for chunk in api.build(
            fileobj=context.tar(),
            custom_context=True,
            dockerfile=context.dockerfile_in_context,
            tag=tag,
            buildargs=build.get("args") or None,
            target=build.get("target") or None,
            rm=True,
            forcerm=True,
            decode=True,
        ):
            if "error" in chunk:
                tail = "".join(lines[-LOG_TAIL:])
                raise ProviderError(f"building {tag} failed: {chunk['error'].strip()}\n{tail}")
            if "stream" in chunk:
                lines.append(chunk["stream"])
        image = api.inspect_image(tag)
        return {
            **inputs,
            "imageName": tag,
            "repoDigest": image["Id"],
            "context": str(context.context),
            "dockerfile": str(context.dockerfile),
            "platform": build.get("platform") or "",
            "baseImageName": tag,
            "registryServer": "",
        }

    def create(self, inputs: Props, timeout: float) -> tuple[str, Props]:
        outputs = self._build(inputs, timeout)
        return outputs["imageName"], outputs

    def update(self, id_: str, olds: Props, news: Props, timeout: float) -> Props:
        return self._build(news, timeout)

    def read(self, id_: str, state: Props, inputs: Props) -> tuple[str, Props] | None:
        try:
            client().inspect_image(state.get("imageName") or id_)
        except docker_errors.ImageNotFound:
            return None
        return id_, state


class Container(ResourceKind):
    token = "docker:index/container:Container"
    known = {
        "name", "hostname", "image", "entrypoints", "command", "envs", "uploads", "ports",
        "volumes", "networksAdvanced", "user", "readOnly", "tmpfs", "capabilities",
        "securityOpts", "memory", "init", "healthcheck", "restart", "maxRetryCount",
        "mustRun", "wait", "waitTimeout", "attach", "logs", "logDriver", "logOpts", "labels",
        "destroyGraceSeconds", "cpuShares", "workingDir", "stopSignal", "stopTimeout",
        "removeVolumes", "rm", "start",
    }  # fmt: skip
    # How `up` waits and how `destroy` stops, not what runs: no replacement.
    updatable = frozenset(
        {"mustRun", "wait", "waitTimeout", "attach", "logs", "destroyGraceSeconds", "removeVolumes"}
    )

    def check(self, olds: Props, news: Props) -> tuple[Props, list[tuple[str, str]]]:
        failures = _unknown_keys("Container", news, self.known)
        for index, upload in enumerate(news.get("uploads") or []):
            if upload.get("source"):
                failures.append(
                    (f"uploads[{index}].source", "Container: upload sources are not supported; give content")
                )
        for index, volume in enumerate(news.get("volumes") or []):
            if volume.get("hostPath") or volume.get("fromContainer"):
                failures.append((f"volumes[{index}]", "Container: only named volumes are supported"))
        return news, failures

    # -- create ------------------------------------------------------------

    def _create_args(self, api: docker.APIClient, inputs: Props) -> dict[str, Any]:
        ports = inputs.get("ports") or []
        bindings: dict[str, list[tuple[str, int]] | list[int]] = {}
        exposed = []
        for port in ports:
            key = f"{int(port['internal'])}/{port.get('protocol') or 'tcp'}"
            exposed.append((int(port["internal"]), port.get("protocol") or "tcp"))
            external = port.get("external")
            ip = port.get("ip") or "0.0.0.0"
            bindings.setdefault(key, []).append((ip, int(external)) if external else (ip,))  # type: ignore[arg-type]
        networks = inputs.get("networksAdvanced") or []
        restart = inputs.get("restart") or "no"
        restart_policy: dict[str, Any] = {"Name": restart}
        if restart == "on-failure":
            restart_policy["MaximumRetryCount"] = int(inputs.get("maxRetryCount") or 0)
        capabilities = inputs.get("capabilities") or {}
        log_driver = inputs.get("logDriver")
        host_config = api.create_host_config(
            port_bindings=bindings or None,
            mounts=[
                docker_types.Mount(
                    target=v["containerPath"],
                    source=v["volumeName"],
                    type="volume",
                    read_only=bool(v.get("readOnly")),
                )
                for v in inputs.get("volumes") or []
            ]
            or None,
            read_only=bool(inputs.get("readOnly")),
            tmpfs=inputs.get("tmpfs") or None,
            cap_drop=capabilities.get("drops") or None,
            cap_add=capabilities.get("adds") or None,
            security_opt=inputs.get("securityOpts") or None,
            mem_limit=int(inputs["memory"]) * 1024 * 1024 if inputs.get("memory") else None,
            cpu_shares=int(inputs["cpuShares"]) if inputs.get("cpuShares") else None,
            init=bool(inputs.get("init")),
            restart_policy=restart_policy,
            log_config=(
                docker_types.LogConfig(type=log_driver, config=inputs.get("logOpts") or {})
                if log_driver
                else None
            ),
            network_mode=networks[0]["name"] if networks else None,
        )
        health = inputs.get("healthcheck")
        healthcheck = (
            {
                "test": health.get("tests"),
                "interval": duration_ns(health.get("interval")),
                "timeout": duration_ns(health.get("timeout")),
                "retries": int(health.get("retries") or 0),
                "start_period": duration_ns(health.get("startPeriod")),
            }
            if health
            else None
        )
        networking = (
            api.create_networking_config(
                {
                    networks[0]["name"]: docker_types.EndpointConfig(
                        api._version, aliases=networks[0].get("aliases") or None
                    )
                }
            )
            if networks
            else None
        )
        return {
            "image": inputs["image"],
            "name": inputs["name"],
            "hostname": inputs.get("hostname") or None,
            "entrypoint": inputs.get("entrypoints") or None,
            "command": inputs.get("command") or None,
            "environment": inputs.get("envs") or None,
            "user": inputs.get("user") or None,
            "labels": _labels(inputs.get("labels")),
            "ports": exposed or None,
            "healthcheck": healthcheck,
            "working_dir": inputs.get("workingDir") or None,
            "stop_signal": inputs.get("stopSignal") or None,
            "host_config": host_config,
            "networking_config": networking,
        }

    @staticmethod
    def _uploads_tar(uploads: list[dict[str, Any]]) -> bytes:
        buffer = io.BytesIO()
        directories: set[str] = set()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            for upload in uploads:
                path = upload["file"].lstrip("/")
                parent = os.path.dirname(path)
                while parent and parent not in directories:
                    directories.add(parent)
                    info = tarfile.TarInfo(parent)
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    archive.addfile(info)
                    parent = os.path.dirname(parent)
                if upload.get("contentBase64"):
                    data = base64.b64decode(upload["contentBase64"])
                else:
                    data = (upload.get("content") or "").encode()
                info = tarfile.TarInfo(path)
                info.size = len(data)
                permissions = upload.get("permissions")
                info.mode = (
                    int(permissions, 8) if permissions else (0o755 if upload.get("executable") else 0o644)
                )
                info.uid = int(upload.get("owner") or 0)
                info.gid = int(upload.get("group") or 0)
                info.mtime = int(time.time())
                archive.addfile(info, io.BytesIO(data))
        return buffer.getvalue()

    @staticmethod
    def _logs(api: docker.APIClient, id_: str, tail: int | str = LOG_TAIL) -> str:
        try:
            return api.logs(id_, stdout=True, stderr=True, tail=tail).decode(errors="replace")
        except docker_errors.APIError:
            return ""

    def _fail(self, api: docker.APIClient, id_: str, name: str, why: str) -> ProviderError:
        logs = self._logs(api, id_)
        with contextlib.suppress(docker_errors.APIError):
            api.remove_container(id_, force=True)
        return ProviderError(f"container {name} {why}; its last log lines:\n{logs}")

    def create(self, inputs: Props, timeout: float) -> tuple[str, Props]:
        api = client()
        name = inputs["name"]
        try:
            created = api.create_container(**self._create_args(api, inputs))
        except docker_errors.APIError as exc:
            raise ProviderError(f"could not create container {name}: {exc.explanation or exc}") from None
        id_ = created["Id"]
        outputs: Props = {**inputs}
        try:
            if inputs.get("uploads"):
                api.put_archive(id_, "/", self._uploads_tar(inputs["uploads"]))
            if inputs.get("start", True) is not False:
                api.start(id_)
        except docker_errors.APIError as exc:
            raise self._fail(api, id_, name, f"did not start: {exc.explanation or exc}") from None
        wait_timeout = float(inputs.get("waitTimeout") or 60)
        if inputs.get("attach"):
            try:
                result = client(timeout=int(timeout)).wait(id_, timeout=int(timeout))
            except Exception as exc:
                raise self._fail(api, id_, name, f"did not finish within {int(timeout)}s ({exc})") from None
            code = int(result.get("StatusCode", -1))
            outputs["exitCode"] = code
            if inputs.get("logs"):
                outputs["containerLogs"] = self._logs(api, id_, tail="all")
            if code != 0:
                raise self._fail(api, id_, name, f"exited with status {code}")
        elif inputs.get("wait"):
            self._wait_healthy(api, id_, name, wait_timeout)
        elif inputs.get("mustRun", True):
            time.sleep(1)
            state = api.inspect_container(id_)["State"]
            if not state.get("Running"):
                raise self._fail(api, id_, name, f"is not running (status {state.get('Status')})")
        return id_, outputs

    def _wait_healthy(self, api: docker.APIClient, id_: str, name: str, limit: float) -> None:
        deadline = time.monotonic() + limit
        while True:
            state = api.inspect_container(id_)["State"]
            health = (state.get("Health") or {}).get("Status")
            if health == "healthy":
                return
            if not state.get("Running") and state.get("Status") in ("exited", "dead"):
                raise self._fail(
                    api, id_, name, f"exited with status {state.get('ExitCode')} before it was healthy"
                )
            if time.monotonic() > deadline:
                raise self._fail(api, id_, name, f"was not healthy within {int(limit)}s (health: {health})")
            time.sleep(0.5)

    def read(self, id_: str, state: Props, inputs: Props) -> tuple[str, Props] | None:
        """As upstream: a container removed outside Pulumi is gone from the
        state, and one that should run (``mustRun``) but does not is removed
        and gone too, so the next update creates it again."""
        api = client()
        try:
            status = api.inspect_container(id_)["State"]
        except docker_errors.NotFound:
            return None
        must_run = (inputs or state).get("mustRun", True) is not False
        if must_run and not status.get("Running"):
            self.delete(id_, state, 30.0)
            return None
        outputs = dict(state)
        if not status.get("Running"):
            outputs["exitCode"] = int(status.get("ExitCode", 0))
        return id_, outputs

    def update(self, id_: str, olds: Props, news: Props, timeout: float) -> Props:
        return {**olds, **{k: v for k, v in news.items() if v is not UNKNOWN}}

    def delete(self, id_: str, state: Props, timeout: float) -> None:
        api = client()
        grace = int(state.get("destroyGraceSeconds") or 10)
        try:
            api.stop(id_, timeout=grace)
        except docker_errors.NotFound:
            return
        except docker_errors.APIError:
            pass
        with contextlib.suppress(docker_errors.NotFound):
            # As upstream: anonymous volumes (an image's VOLUME the container
            # did not mount a named volume on) go with it unless told otherwise.
            api.remove_container(id_, force=True, v=state.get("removeVolumes") is not False)


KINDS: list[ResourceKind] = [Network(), Volume(), RemoteImage(), Image(), Container()]
