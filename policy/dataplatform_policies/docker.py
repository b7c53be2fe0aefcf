"""Docker rules: the CIS Docker Benchmark's container runtime checks, on
pulumi-docker 5.x resources.

A container is one-shot when Pulumi does not keep it running (``mustRun``
false) or waits for it to exit (``attach`` true); every other container is
long-running. A container created with ``start`` false never runs: it only
carries files (uploads) into volumes that running containers mount.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .common import (
    Config,
    Enforcement,
    Props,
    ResourceRule,
    default_credential_problem,
    dig,
    image_pin_problem,
    is_secret_name,
    items,
    mapping,
    strings,
    type_is,
    unique,
)

CONTAINER = "docker:index/container:Container"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
IMAGE = "docker:index/image:Image"

is_container = type_is(CONTAINER)

ALLOWED_ADDED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
ENGINE_SOCKETS = frozenset({"docker.sock", "containerd.sock", "podman.sock", "crio.sock"})
UNBOUNDED_RESTARTS = frozenset({"always", "unless-stopped"})


SECRETS_DIR = "/run/secrets/"


def never_started(props: Props) -> bool:
    return props.get("start") is False


def is_one_shot(props: Props) -> bool:
    return props.get("mustRun") is False or props.get("attach") is True or never_started(props)


def envs(props: Props) -> list[tuple[str, str]]:
    """``envs`` ("NAME=value" strings) as (name, value) pairs."""
    pairs: list[tuple[str, str]] = []
    for entry in strings(props.get("envs")):
        name, _, value = entry.partition("=")
        pairs.append((name, value))
    return pairs


def _port_label(port: Mapping[str, Any]) -> str:
    internal, external = port.get("internal"), port.get("external")
    inside = f"{int(internal)}" if isinstance(internal, (int, float)) else "?"
    return f"{int(external)}->{inside}" if isinstance(external, (int, float)) else inside


def check_ports_on_loopback(_: str, props: Props, config: Config) -> list[str]:
    allowed = strings(config.get("allowedAddresses"))
    found: list[str] = []
    for port in items(props.get("ports")):
        p = mapping(port)
        ip = str(p.get("ip") or "0.0.0.0")
        if ip not in allowed:
            found.append(
                f"port {_port_label(p)} is published on {ip}; bind it to one of {', '.join(allowed)}"
            )
    return found


def check_health_check(_: str, props: Props, config: Config) -> list[str]:
    if is_one_shot(props):
        return []
    tests = strings(dig(props, "healthcheck", "tests"))
    if not tests or tests[0].upper() == "NONE":
        return ["long-running container has no healthcheck; the engine cannot tell it is serving"]
    return []


def check_restart_policy(_: str, props: Props, config: Config) -> list[str]:
    restart = str(props.get("restart") or "no")
    retries = props.get("maxRetryCount") or 0
    if restart in UNBOUNDED_RESTARTS:
        return [f"restart policy {restart} restarts forever; use on-failure with maxRetryCount > 0"]
    if restart == "on-failure" and not (isinstance(retries, (int, float)) and retries > 0):
        return ["restart policy on-failure without maxRetryCount retries forever; set maxRetryCount > 0"]
    if restart == "no" and not is_one_shot(props):
        return ["long-running container has restart policy no; use on-failure with maxRetryCount > 0"]
    return []


def check_memory_limit(_: str, props: Props, config: Config) -> list[str]:
    memory = props.get("memory")
    if not (isinstance(memory, (int, float)) and memory > 0):
        return ["no memory limit; set memory (MB)"]
    return []


def check_non_root_user(_: str, props: Props, config: Config) -> list[str]:
    user = str(props.get("user") or "").strip()
    if not user:
        return ["no user set; the image's default user (often root) runs the process"]
    if user.split(":", 1)[0] in ("root", "0"):
        return [f"user {user} is root; run as a non-root user"]
    return []


def check_no_new_privileges(_: str, props: Props, config: Config) -> list[str]:
    options = {o.replace("=", ":").strip().lower() for o in strings(props.get("securityOpts"))}
    if not options & {"no-new-privileges", "no-new-privileges:true"}:
        return ["securityOpts lacks no-new-privileges:true"]
    return []


def _capability(name: str) -> str:
    return name.upper().removeprefix("CAP_")


def check_capabilities(_: str, props: Props, config: Config) -> list[str]:
    caps = mapping(props.get("capabilities"))
    found: list[str] = []
    if "ALL" not in {_capability(d) for d in strings(caps.get("drops"))}:
        found.append("capabilities.drops must include ALL")
    added = sorted({_capability(a) for a in strings(caps.get("adds"))} - ALLOWED_ADDED_CAPABILITIES)
    if added:
        found.append(f"adds capabilities {', '.join(added)}; only NET_BIND_SERVICE may be added")
    return found


def check_read_only_root(_: str, props: Props, config: Config) -> list[str]:
    if never_started(props):
        return []
    if props.get("readOnly") is not True:
        return [
            "root filesystem is writable; set readOnly (tmpfs for scratch paths, files on a volume "
            "filled before start)"
        ]
    return []


def _mode(value: Any) -> int | None:
    try:
        return int(str(value), 8)
    except ValueError:
        return None


def check_private_secret_files(_: str, props: Props, config: Config) -> list[str]:
    """Files under /run/secrets belong to the container's user, mode 0400 or
    0600: no other user, group or world may read them."""
    user, _sep, group = str(props.get("user") or "").partition(":")
    found: list[str] = []
    for upload in items(props.get("uploads")):
        u = mapping(upload)
        path = str(u.get("file") or "")
        if not path.startswith(SECRETS_DIR):
            continue
        mode = _mode(u.get("permissions")) if u.get("permissions") is not None else None
        if mode is None or mode & 0o077:
            shown = u.get("permissions") or ("0755" if u.get("executable") else "0644, the default")
            found.append(f"secret file {path} has mode {shown}; give permissions 0400 (or 0600)")
        owner = str(u.get("owner") or "0")
        if owner != user or owner in ("0", "root"):
            found.append(f"secret file {path} is owned by {owner}, not by the container's user {user or '?'}")
        if group and str(u.get("group") or "0") != group:
            found.append(f"secret file {path} has group {u.get('group') or '0'}, not the container's {group}")
    return found


def check_privileged_and_host(_: str, props: Props, config: Config) -> list[str]:
    found: list[str] = []
    if props.get("privileged") is True:
        found.append("runs privileged")
    for key in ("networkMode", "pidMode", "ipcMode", "usernsMode"):
        if str(props.get(key) or "").lower() == "host":
            found.append(f"{key} is host: the container shares the host's namespace")
    return found


def check_engine_socket(_: str, props: Props, config: Config) -> list[str]:
    sources = [mapping(v).get("hostPath") for v in items(props.get("volumes"))]
    sources += [mapping(m).get("source") for m in items(props.get("mounts"))]
    return [
        f"mounts the container engine's socket {source}, which is root on the host"
        for source in sources
        if isinstance(source, str) and source.rstrip("/").rsplit("/", 1)[-1] in ENGINE_SOCKETS
    ]


def check_default_credentials(_: str, props: Props, config: Config) -> list[str]:
    return unique(p for name, value in envs(props) if (p := default_credential_problem(name, value)))


def check_literal_secrets(_: str, props: Props, config: Config) -> list[str]:
    return unique(
        f"env {name} holds a credential in plain text (visible to docker inspect); "
        f"mount it as a file and pass {name}_FILE"
        for name, value in envs(props)
        if value and is_secret_name(name)
    )


def check_image_pinned(resource_type: str, props: Props, config: Config) -> list[str]:
    # Checked where images are named. A Container's ``image`` is the ID the
    # RemoteImage resolved, unknown during a preview, so reading it there
    # would only turn the policy into "can't run during preview" notices.
    key = {REMOTE_IMAGE: "name", IMAGE: "imageName"}[resource_type]
    problem = image_pin_problem(props.get(key))
    return [problem] if problem else []


LOOPBACK: Mapping[str, Mapping[str, Any]] = {
    "allowedAddresses": {
        "type": "array",
        "items": {"type": "string"},
        "default": ["127.0.0.1", "::1"],
        "description": "Host addresses published ports may be bound to.",
    }
}


def _container_rule(
    name: str,
    description: str,
    enforcement: Enforcement,
    check: Callable[[str, Props, Config], list[str]],
    config: Mapping[str, Mapping[str, Any]] | None = None,
) -> ResourceRule:
    return ResourceRule(name, description, enforcement, is_container, check, config or {})


RESOURCE_RULES: list[ResourceRule] = [
    _container_rule(
        "docker-ports-on-loopback",
        "Published ports are bound to a loopback address, never to every interface (CIS Docker).",
        Enforcement.MANDATORY,
        check_ports_on_loopback,
        LOOPBACK,
    ),
    _container_rule(
        "docker-health-check",
        "Long-running containers have a health check (CIS Docker).",
        Enforcement.ADVISORY,
        check_health_check,
    ),
    _container_rule(
        "docker-bounded-restart-policy",
        "Restarts are bounded: on-failure with maxRetryCount > 0, or no for one-shot containers "
        "(CIS Docker).",
        Enforcement.ADVISORY,
        check_restart_policy,
    ),
    _container_rule(
        "docker-memory-limit",
        "Every container has a memory limit (CIS Docker).",
        Enforcement.MANDATORY,
        check_memory_limit,
    ),
    _container_rule(
        "docker-non-root-user",
        "Containers run as a non-root user (CIS Docker).",
        Enforcement.MANDATORY,
        check_non_root_user,
    ),
    _container_rule(
        "docker-no-new-privileges",
        "Containers run with no-new-privileges (CIS Docker).",
        Enforcement.MANDATORY,
        check_no_new_privileges,
    ),
    _container_rule(
        "docker-drop-all-capabilities",
        "Containers drop ALL capabilities and add none but NET_BIND_SERVICE (CIS Docker).",
        Enforcement.MANDATORY,
        check_capabilities,
    ),
    _container_rule(
        "docker-read-only-root-filesystem",
        "Containers run with a read-only root filesystem (CIS Docker); files arrive on volumes.",
        Enforcement.MANDATORY,
        check_read_only_root,
    ),
    _container_rule(
        "docker-private-secret-files",
        "Files under /run/secrets are owned by the container's user and readable by it alone.",
        Enforcement.MANDATORY,
        check_private_secret_files,
    ),
    _container_rule(
        "docker-no-privileged-or-host-namespaces",
        "No container runs privileged or shares the host's network, PID, IPC or user namespace (CIS Docker).",
        Enforcement.MANDATORY,
        check_privileged_and_host,
    ),
    _container_rule(
        "docker-no-engine-socket",
        "No container mounts the container engine's socket (CIS Docker).",
        Enforcement.MANDATORY,
        check_engine_socket,
    ),
    _container_rule(
        "docker-no-default-credentials",
        "No environment variable sets an image's default credential (minioadmin, admin...), an empty "
        "password or an auth-off switch.",
        Enforcement.MANDATORY,
        check_default_credentials,
    ),
    _container_rule(
        "docker-no-literal-secrets-in-env",
        "No credential-named environment variable holds a literal value; pass a *_FILE path to an "
        "uploaded file instead.",
        Enforcement.MANDATORY,
        check_literal_secrets,
    ),
    ResourceRule(
        "docker-image-pinned",
        "Images are pinned to a version tag, a digest or an image ID: no latest, no untagged image.",
        Enforcement.MANDATORY,
        type_is(REMOTE_IMAGE, IMAGE),
        check_image_pinned,
    ),
]
