"""A Docker Compose file generated from the platform's own declarations.

Runs the Pulumi program for a stack (``dev`` by default) under mocks, as the
tests do (``tools/harness.py``), and translates every ``docker.Container`` it
declares into a Compose service with the same settings: image, hostname,
entrypoint and command, environment, published ports, named volumes, the
network with its aliases, user, read-only root, tmpfs, dropped capabilities,
security options, memory limit, init, health check, restart policy, logging,
labels and stop grace period. Uploaded files become Compose ``configs`` with
inline ``content`` (Compose >= 2.23), which Compose copies into the
container before it starts, as the Pulumi provider does with uploads.

The start order is Pulumi's own: the resource dependencies the program
sends to the engine (explicit ``depends_on`` and those implied by inputs)
are captured from the mock monitor, and every container another container
waits on becomes a ``depends_on`` entry: ``service_healthy`` for a
container Pulumi waits healthy, ``service_completed_successfully`` for a
one-shot (``attach``) container.

Images: a container's ``image`` input is an image ID, fake under mocks; it
is mapped back to the tag the ``RemoteImage`` it came from names (for the
project's images, ``dataplatform/<name>:<version>``, the tag the build
produced).

Credentials are generated values of the mocks: each generated secret has
one deterministic value, so every service that shares it gets the same
string and the stack is consistent, but the file holds them in plain text.
It is written with mode 0600, by default to ``benchmarks/compose/out/``,
which git ignores.

    .venv/bin/python -m benchmarks.compose.generate --standins --no-grafana --free-ports
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tools.e2e.machine import PORT_KEYS, STANDINS, free_ports
from tools.harness import Recorder, merge_config, run_stack, stack_config, unwrap

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE / "out" / "compose.yaml"
DEFAULT_PROJECT = "dp-compose-bench"
CONTAINER = "docker:index/container:Container"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
VOLUME = "docker:index/volume:Volume"
NETWORK = "docker:index/network:Network"
# Mode of uploaded files with the Pulumi docker provider (root-owned, 0644).
UPLOAD_MODE = 0o644
# Beside the Compose file: the files of read-only services' configs.
CONFIG_DIR = "configs"


# -- the declarations -----------------------------------------------------


@contextmanager
def dependencies_recorded() -> Iterator[dict[str, tuple[str, str, list[str]]]]:
    """URN -> (type, name, URNs it depends on), as the program sends them."""
    from pulumi.runtime import mocks

    seen: dict[str, tuple[str, str, list[str]]] = {}
    original = mocks.MockMonitor.RegisterResource

    def register(self: Any, request: Any) -> Any:
        response = original(self, request)  # type: ignore[no-untyped-call]
        deps = set(request.dependencies)
        for urns in request.propertyDependencies.values():
            deps.update(urns.urns)
        seen[response.urn] = (request.type, request.name, sorted(deps))
        return response

    mocks.MockMonitor.RegisterResource = register  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        mocks.MockMonitor.RegisterResource = original  # type: ignore[method-assign]


def declare(stack: str, overrides: dict[str, Any]) -> tuple[Recorder, dict[str, set[str]]]:
    """The resources the program declares, and for each container the
    containers it waits on (through any chain of other resources)."""
    with dependencies_recorded() as seen:
        recorder, _ = run_stack(stack, overrides)
    containers = {urn for urn, (typ, _, _) in seen.items() if typ == CONTAINER}

    def upstream(urn: str, visited: set[str]) -> set[str]:
        found: set[str] = set()
        for dep in seen.get(urn, ("", "", []))[2]:
            if dep in visited:
                continue
            visited.add(dep)
            if dep in containers:
                found.add(seen[dep][1])
            else:
                found |= upstream(dep, visited)
        return found

    waits = {seen[urn][1]: upstream(urn, set()) for urn in containers}
    # By the names the recorder gives, without the platform's prefix.
    relative = {r.full_name: r.name for r in recorder.of_type(CONTAINER)}
    return recorder, {relative[n]: {relative[d] for d in deps} for n, deps in waits.items()}


def image_tags(recorder: Recorder) -> dict[str, str]:
    """Mock image ID -> the tag it stands for. The harness gives a
    RemoteImage the ID ``sha256:<sha256 of its Pulumi name>``."""
    tags = {}
    for r in recorder.of_type(REMOTE_IMAGE):
        tags[f"sha256:{hashlib.sha256(r.full_name.encode()).hexdigest()}"] = unwrap(r.inputs)["name"]
    return tags


# -- the translation ------------------------------------------------------


def escape(value: Any) -> Any:
    """Compose interpolates ``$``: keep every string literal."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, list):
        return [escape(v) for v in value]
    if isinstance(value, dict):
        return {k: escape(v) for k, v in value.items()}
    return value


def config_name(service: str, path: str) -> str:
    slug = path.strip("/").replace("/", "-").replace(".", "-").replace("_", "-")
    return f"{service}--{slug}"


def volume_key(volume_name: str, prefix: str) -> str:
    """``dataplatform-dev-redis-data`` -> ``redis-data`` (Compose scopes it
    to the project, so it cannot meet the dev stack's volume)."""
    return volume_name[len(prefix) :] if volume_name.startswith(prefix) else volume_name


@dataclass(frozen=True)
class ConfigFile:
    """A file a read-only service reads: written beside the Compose file
    (``CONFIG_DIR``) with the owner and mode the upload declares, and
    bind-mounted by Compose, which allows no other kind of config on a
    read-only root."""

    content: str
    mode: int
    uid: int | None
    gid: int | None


def translate(
    recorder: Recorder, waits: dict[str, set[str]], project: str
) -> tuple[dict[str, Any], list[str], dict[str, ConfigFile]]:
    tags = image_tags(recorder)
    networks = [unwrap(r.inputs) for r in recorder.of_type(NETWORK)]
    if len(networks) != 1:
        raise SystemExit(f"expected one docker network, found {len(networks)}")
    network_name = networks[0]["name"]
    prefix = network_name + "-"
    declared = {r.name: unwrap(r.inputs) for r in recorder.of_type(CONTAINER)}
    # Carriers (created, never started) fill the volumes a workload's files
    # live on; Compose mounts those files as configs instead.
    carriers = {n: c for n, c in declared.items() if c.get("start") is False}
    declared = {n: c for n, c in declared.items() if n not in carriers}
    file_volumes = {
        volume_key(v["volumeName"], prefix) for c in carriers.values() for v in c.get("volumes") or []
    }
    notes: list[str] = []

    services: dict[str, Any] = {}
    configs: dict[str, Any] = {}
    files: dict[str, ConfigFile] = {}
    volumes: dict[str, Any] = {}
    for volume in recorder.of_type(VOLUME):
        inputs = unwrap(volume.inputs)
        if volume_key(inputs["name"], prefix) in file_volumes:
            continue
        volumes[volume_key(inputs["name"], prefix)] = {
            "labels": {lab["label"]: lab["value"] for lab in inputs.get("labels") or []}
        }
    dependents = {dep for deps in waits.values() for dep in deps}

    for name, c in declared.items():
        image = tags.get(c["image"])
        if image is None:
            raise SystemExit(f"container {name}: image {c['image']} comes from no RemoteImage")
        service: dict[str, Any] = {"image": image, "pull_policy": "never", "hostname": c["hostname"]}
        if c.get("entrypoints"):
            service["entrypoint"] = list(c["entrypoints"])
        if c.get("command"):
            service["command"] = list(c["command"])
        envs = c.get("envs") or []
        if envs:
            service["environment"] = dict(e.split("=", 1) for e in envs)
        ports = []
        for p in c.get("ports") or []:
            ip = p.get("ip") or "0.0.0.0"
            external = int(p["external"]) if p.get("external") else ""
            ports.append(f"{ip}:{external}:{int(p['internal'])}/{p.get('protocol') or 'tcp'}")
        if ports:
            service["ports"] = ports
        mounts = []
        for v in c.get("volumes") or []:
            key = volume_key(v["volumeName"], prefix)
            if key in file_volumes:
                continue
            if key not in volumes:
                volumes[key] = {}
            mounts.append(
                {
                    "type": "volume",
                    "source": key,
                    "target": v["containerPath"],
                    "read_only": bool(v.get("readOnly")),
                }
            )
        if mounts:
            service["volumes"] = mounts
        nets = c.get("networksAdvanced") or []
        if [n["name"] for n in nets] not in ([], [network_name]):
            raise SystemExit(f"container {name}: networks {nets} other than {network_name}")
        service["networks"] = {"platform": {"aliases": sorted(nets[0].get("aliases") or [])}} if nets else {}
        if c.get("user"):
            service["user"] = c["user"]
        service["read_only"] = bool(c.get("readOnly"))
        if c.get("tmpfs"):
            service["tmpfs"] = [f"{path}:{opts}" if opts else path for path, opts in c["tmpfs"].items()]
        caps = c.get("capabilities") or {}
        if caps.get("drops"):
            service["cap_drop"] = list(caps["drops"])
        if caps.get("adds"):
            service["cap_add"] = list(caps["adds"])
        if c.get("securityOpts"):
            service["security_opt"] = list(c["securityOpts"])
        if c.get("memory"):
            service["mem_limit"] = f"{int(c['memory'])}m"
        if c.get("init"):
            service["init"] = True
        health = c.get("healthcheck")
        if health:
            service["healthcheck"] = {
                "test": list(health["tests"]),
                "interval": health.get("interval"),
                "timeout": health.get("timeout"),
                "retries": int(health.get("retries") or 0),
                "start_period": health.get("startPeriod"),
            }
            service["healthcheck"] = {k: v for k, v in service["healthcheck"].items() if v is not None}
        restart = c.get("restart") or "no"
        if restart == "on-failure" and c.get("maxRetryCount"):
            restart = f"on-failure:{int(c['maxRetryCount'])}"
        service["restart"] = restart
        if c.get("logDriver"):
            service["logging"] = {"driver": c["logDriver"], "options": dict(c.get("logOpts") or {})}
        if c.get("labels"):
            service["labels"] = {lab["label"]: lab["value"] for lab in c["labels"]}
        if c.get("destroyGraceSeconds"):
            service["stop_grace_period"] = f"{int(c['destroyGraceSeconds'])}s"
        labels = {lab["label"]: lab["value"] for lab in c.get("labels") or []}
        carrier = carriers.get(f"{labels.get('dataplatform.workload', name)}-files", {})
        uploads = (c.get("uploads") or []) + (carrier.get("uploads") or [])
        if uploads:
            if c.get("uploads") and service["read_only"]:
                raise SystemExit(f"container {name}: Compose cannot copy files into a read-only root")
            service["configs"] = []
            for upload in uploads:
                key = config_name(name, upload["file"])
                mode = upload.get("permissions") or f"0{UPLOAD_MODE:o}"
                config = {"source": key, "target": upload["file"]}
                if service["read_only"]:
                    # A bind mount: the host file's own owner and mode apply.
                    configs[key] = {"file": f"./{CONFIG_DIR}/{key}"}
                    files[key] = ConfigFile(
                        upload.get("content") or "",
                        int(mode, 8),
                        int(upload["owner"]) if upload.get("owner") else None,
                        int(upload["group"]) if upload.get("group") else None,
                    )
                else:
                    configs[key] = {"content": upload.get("content") or ""}
                    config["mode"] = mode
                    if upload.get("owner"):
                        config["uid"] = upload["owner"]
                    if upload.get("group"):
                        config["gid"] = upload["group"]
                service["configs"].append(config)
        depends = {}
        for dep in sorted(waits.get(name, ())):
            if dep in carriers:
                continue
            d = declared[dep]
            if d.get("attach"):
                condition = "service_completed_successfully"
            elif d.get("healthcheck") and d.get("wait"):
                condition = "service_healthy"
            else:
                condition = "service_started"
            depends[dep] = {"condition": condition}
        if depends:
            service["depends_on"] = depends
        if c.get("attach") and name not in dependents:
            notes.append(
                f"{name}: one-shot container nothing waits on; `up --wait` treats it as a running "
                "service, Pulumi waits for it to exit"
            )
        services[name] = service

    compose = {
        "name": project,
        "services": dict(sorted(services.items())),
        "networks": {"platform": {"driver": networks[0].get("driver") or "bridge"}},
        "volumes": dict(sorted(volumes.items())),
    }
    if configs:
        compose["configs"] = dict(sorted(configs.items()))
    return escape(compose), notes, files


# -- output ---------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value and not value.endswith((" ", "\t")) and "\r" not in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)


def render(compose: dict[str, Any], header: str) -> str:
    body = yaml.dump(compose, Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True)
    return header + body


def write_config_files(directory: Path, files: dict[str, ConfigFile]) -> None:
    """Each file with its declared mode and owner, in a directory only root
    can enter (they hold credentials). A bind-mounted file is reached at its
    mount point, so the container's user needs no access to the directory.
    Without root, a file that cannot be given to its owner is made readable
    by all instead, so the service can still read it."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(mode=0o700, parents=True)
    for key, spec in files.items():
        path = directory / key
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(spec.content)
        mode = spec.mode
        if spec.uid is not None or spec.gid is not None:
            try:
                os.chown(path, -1 if spec.uid is None else spec.uid, -1 if spec.gid is None else spec.gid)
            except PermissionError:
                mode |= 0o444
        os.chmod(path, mode)


def write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Generate a Docker Compose file from the platform's Pulumi declarations.",
    )
    parser.add_argument(
        "--stack", default="dev", help="stack whose Pulumi.<stack>.yaml is the base (default: dev)"
    )
    parser.add_argument(
        "--project", default=DEFAULT_PROJECT, help=f"Compose project name (default: {DEFAULT_PROJECT})"
    )
    parser.add_argument(
        "-o", "--output", type=Path, default=DEFAULT_OUTPUT, help="where to write (mode 0600)"
    )
    parser.add_argument(
        "--standins",
        action="store_true",
        help="use the stand-in Redis, Prometheus and Alertmanager images ("
        + ", ".join(STANDINS.values())
        + ")",
    )
    parser.add_argument("--no-grafana", action="store_true", help="leave Grafana out (grafana.enabled false)")
    parser.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="SERVICE=REF",
        help="image override (config key images.SERVICE)",
    )
    parser.add_argument(
        "--host-port",
        action="append",
        default=[],
        metavar="KEY=PORT",
        help="host port (config key hostPorts.KEY: " + ", ".join(PORT_KEYS) + ")",
    )
    parser.add_argument("--free-ports", action="store_true", help="publish every port on a free host port")
    parser.add_argument(
        "--config", metavar="JSON", help="more config overrides, a JSON object of config keys"
    )
    return parser.parse_args(argv)


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    images = dict(STANDINS) if args.standins else {}
    for item in args.image:
        key, _, ref = item.partition("=")
        if not ref:
            raise SystemExit(f"--image {item!r}: expected SERVICE=REF")
        images[key] = ref
    if images:
        overrides["images"] = images
    if args.no_grafana:
        overrides["grafana"] = {"enabled": False}
    ports: dict[str, int] = {}
    if args.free_ports:
        ports.update(zip(PORT_KEYS, free_ports(len(PORT_KEYS)), strict=True))
    for item in args.host_port:
        key, _, port = item.partition("=")
        if key not in PORT_KEYS or not port.isdigit():
            raise SystemExit(
                f"--host-port {item!r}: expected KEY=PORT with KEY one of {', '.join(PORT_KEYS)}"
            )
        ports[key] = int(port)
    if ports:
        overrides["hostPorts"] = ports
    if args.config:
        overrides = merge_config(overrides, json.loads(args.config))
    return overrides


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    overrides = overrides_from(args)
    config = merge_config(stack_config(args.stack), overrides)
    recorder, waits = declare(args.stack, config)
    compose, notes, files = translate(recorder, waits, args.project)
    header = (
        f"# Generated by benchmarks/compose/generate.py from the `{args.stack}` stack's declarations\n"
        f"# (config overrides: {json.dumps(overrides, sort_keys=True)}).\n"
        "# Holds generated credentials in plain text: do not commit.\n"
    )
    write_private(args.output, render(compose, header))
    write_config_files(args.output.parent / CONFIG_DIR, files)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    services = compose["services"]
    print(
        f"wrote {args.output}: {len(services)} services ({', '.join(services)}), "
        f"{len(compose['volumes'])} volumes, {len(compose.get('configs', {}))} configs",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
