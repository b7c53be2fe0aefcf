"""The prod stack rendered by the real engine, then checked offline.

Run with ``make render-prod`` (or ``python -m tools.render``). It:

1. creates an ephemeral stack (``render-<pid>``) in a throwaway local state
   backend with a throwaway passphrase, configured as ``Pulumi.prod.yaml``
   plus ``dataplatform:kubernetes.renderDir`` (a temporary directory outside
   the work tree) and, unless ``--operator`` is given,
   ``dataplatform:sparkOperator.install false`` (the Spark Operator's Helm
   chart is fetched from its chart repository, which machines without
   internet access cannot reach);
2. runs ``pulumi up``: in render mode pulumi-kubernetes writes every object
   as YAML instead of applying it (``pulumi preview`` writes nothing);
3. validates every manifest against the official Kubernetes JSON schemas of
   ``dataplatform:kubernetes.version`` in strict mode (``kubernetes-validate``:
   unknown fields fail), and the Spark Operator's custom resources against
   the operator's v1beta2 API models (PyPI ``kubeflow-spark-api``, generated
   from the operator's OpenAPI spec: unknown fields, types, required fields);
4. runs ``promtool check config``, ``promtool check rules`` and ``promtool
   test rules`` (the alert unit tests in ``tests/prometheus``) on the
   Prometheus configuration and rules found in the rendered ConfigMap, and
   ``amtool check-config`` on Alertmanager's;
5. removes the stack, its ``Pulumi.<stack>.yaml``, the state and the
   manifests (Secrets are written there in plain text).

``--keep DIR`` writes the manifests to DIR and keeps them; keep DIR out of
git. The exit status is non-zero when any check fails.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dataplatform.images import Reference, placed
from dataplatform.project import PROJECT
from dataplatform.services.catalog import SERVICES
from dataplatform.settings import parse_settings, stack_images
from tools.harness import ROOT, merge_config, render_to
from tools.harness import stack_config as harness_stack_config

CACHE = Path(os.environ.get("DATAPLATFORM_CACHE", Path.home() / ".cache" / "dataplatform"))
TOOLS = CACHE / "tools"
# The Spark Operator's API as Python models generated from its OpenAPI spec.
SPARK_API = ("kubeflow-spark-api", "2.4.0")
SPARK_GROUP = "sparkoperator.k8s.io"
# Where Prometheus reads its files in the pod (infra/dataplatform/services/prometheus.py).
PROMETHEUS_FILES = ("prometheus.yml", "rules.yml")
ALERTMANAGER_FILE = "alertmanager.yml"
# promtool unit tests of the alert rules; they name the rule file rules.yml.
RULE_TESTS = ROOT / "tests" / "prometheus" / "rules_test.yml"
PLUGINS = ("pulumi-language-python", "pulumi-resource-kubernetes", "pulumi-resource-random")


def log(message: str) -> None:
    print(f"[render {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- toolchain ------------------------------------------------------------


@functools.cache
def toolchain_env() -> dict[str, str]:
    """This environment plus what scripts/bootstrap.sh's env.sh exports."""
    env = dict(os.environ)
    env_sh = CACHE / "env.sh"
    if env_sh.is_file():
        out = subprocess.run(
            ["bash", "-c", '. "$1" >/dev/null && env -0', "env.sh", str(env_sh)],
            env=env,
            capture_output=True,
            check=True,
        ).stdout.decode()
        env = dict(item.split("=", 1) for item in out.split("\0") if "=" in item)
    elif (CACHE / "bin" / "pulumi").is_file():
        # A toolchain built by bootstrap.sh, before it wrote env.sh.
        env["PATH"] = f"{CACHE / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env.setdefault("PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION", "true")
    env["PULUMI_SKIP_UPDATE_CHECK"] = "true"
    return env


def _installed_plugins(pulumi: str, env: dict[str, str]) -> set[str]:
    try:
        out = subprocess.run(
            [pulumi, "plugin", "ls", "--json"], env=env, capture_output=True, text=True, timeout=60
        ).stdout
        return {f"pulumi-{p['kind']}-{p['name']}" for p in json.loads(out or "[]")}
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return set()


def missing_toolchain(allow_download: bool = False) -> str | None:
    """Why a render cannot run here, or None when it can. ``allow_download``
    accepts resource plugins the engine would download on first use (unless
    automatic plugin acquisition is disabled, as on offline machines)."""
    env = toolchain_env()
    pulumi = shutil.which("pulumi", path=env.get("PATH"))
    if pulumi is None:
        return "no pulumi CLI on PATH or in ~/.cache/dataplatform/bin (run scripts/bootstrap.sh)"
    on_path = {p for p in PLUGINS if shutil.which(p, path=env.get("PATH"))}
    missing = [p for p in PLUGINS if p not in on_path]
    if missing:
        installed = _installed_plugins(pulumi, env)
        missing = [p for p in missing if p not in installed]
    offline = env.get("PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION", "").lower() in ("1", "true")
    if allow_download and not offline:
        missing = [p for p in missing if not p.startswith("pulumi-resource-")]
    if missing:
        return f"the Pulumi toolchain lacks {', '.join(missing)} (run scripts/bootstrap.sh)"
    if not (ROOT / ".venv" / "bin" / "python").exists():
        return "no .venv for the Pulumi program (run scripts/test-deps.sh)"
    return None


# -- rendering ------------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    path: Path
    obj: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind"))

    @property
    def api_version(self) -> str:
        return str(self.obj.get("apiVersion"))

    @property
    def name(self) -> str:
        return str((self.obj.get("metadata") or {}).get("name"))

    @property
    def namespace(self) -> str | None:
        return (self.obj.get("metadata") or {}).get("namespace")

    @property
    def ref(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"

    @property
    def is_spark(self) -> bool:
        return self.api_version.split("/")[0] == SPARK_GROUP


@dataclass
class Rendered:
    stack: str
    directory: Path
    manifests: list[Manifest]
    seconds: float
    version: str  # dataplatform:kubernetes.version
    operator: bool  # the Spark Operator's chart rendered too
    # Image keys pinned to a placeholder digest (no registry is reached).
    placeholders: list[str] = field(default_factory=list)

    def kinds(self) -> collections.Counter[str]:
        return collections.Counter(m.kind for m in self.manifests)


def placeholder(reference: str) -> str:
    """A digest standing in for the one a registry would give ``reference``."""
    return "sha256:" + hashlib.sha256(f"placeholder {reference}".encode()).hexdigest()


def placeholder_digests(config: dict[str, Any]) -> dict[str, Any]:
    """Config pinning every prod image of ``config`` (keys without the
    prefix) that has no digest to a placeholder one: a render reaches no
    registry (a deploy resolves the real digest). Nothing for dev."""
    settings = parse_settings(config, SERVICES)
    pinned: dict[str, Any] = {}
    if settings.is_docker:
        return pinned
    for key, reference in stack_images(settings, SERVICES).items():
        full = Reference.parse(placed(reference, settings.image_registry))
        if full.digest is None:
            section, name = key.split(".", 1)
            pinned.setdefault(section, {})[name] = str(full.pinned(placeholder(str(full))))
    return pinned


def stack_config(
    render_dir: Path, install_operator: bool, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Pulumi.prod.yaml's config with ``extra`` on top, rendering to
    ``render_dir``, every image pinned (to a placeholder digest where none
    is given)."""
    overrides: dict[str, Any] = render_to(str(render_dir))
    if not install_operator:
        overrides["sparkOperator"] = {"install": False}
    config = merge_config(merge_config(harness_stack_config("prod"), extra or {}), overrides)
    config = merge_config(config, placeholder_digests(config))
    return {f"{PROJECT}:{key}": value for key, value in config.items()}


def placeholder_images(config: dict[str, Any]) -> list[str]:
    """The image keys of a render's config (prefixed keys) pinned to a placeholder digest."""
    found = []
    for section in ("images", "sparkOperator"):
        for name, value in (config.get(f"{PROJECT}:{section}") or {}).items():
            reference, _, digest = str(value).rpartition("@")
            if reference and digest == placeholder(reference):
                found.append(f"{section}.{name}")
    return sorted(found)


def load_manifests(directory: Path) -> list[Manifest]:
    manifests = []
    for path in sorted(directory.rglob("*.y*ml")):
        for obj in yaml.safe_load_all(path.read_text()):
            if obj:
                manifests.append(Manifest(path, obj))
    return manifests


Runner = Callable[..., tuple[int, list[str]]]


@contextlib.contextmanager
def ephemeral_stack(stack: str, config: dict[str, Any]) -> Iterator[Runner]:
    """A stack of this project in a throwaway local backend with a throwaway
    passphrase, configured with ``config`` (prefixed keys). Yields
    ``run(*pulumi_args, on_output=None, timeout=None, command=None)``, which
    returns the exit code and the output lines; ``command``, when given, is
    run instead of ``pulumi``, in the same environment (backend, passphrase).
    The stack, its ``Pulumi.<stack>.yaml`` and the backend are gone
    afterwards."""
    stack_file = ROOT / f"Pulumi.{stack}.yaml"
    if stack_file.exists():
        raise FileExistsError(f"{stack_file} exists: another run may be using stack {stack}")
    state = Path(tempfile.mkdtemp(prefix="dataplatform-stack-state-"))
    env = dict(toolchain_env())
    env.update(PULUMI_BACKEND_URL=f"file://{state}", PULUMI_CONFIG_PASSPHRASE=secrets.token_urlsafe(24))
    # KUBECONFIG becomes the provider's kubeconfig argument, which render
    # mode refuses ("not compatible with renderYamlToDirectory").
    for name in ("PULUMI_CONFIG_PASSPHRASE_FILE", "PULUMI_ACCESS_TOKEN", "PULUMI_STACK", "KUBECONFIG"):
        env.pop(name, None)

    def run(
        *args: str,
        on_output: Callable[[str], None] | None = None,
        timeout: float | None = None,
        command: list[str] | None = None,
    ) -> tuple[int, list[str]]:
        if command is None:
            command = ["pulumi", *args, "--stack", stack, "--non-interactive", "--color", "never"]
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        watchdog = threading.Timer(timeout, proc.kill) if timeout else None
        if watchdog:
            watchdog.start()
        assert proc.stdout is not None
        lines = []
        try:
            for line in proc.stdout:
                lines.append(line.rstrip())
                if on_output:
                    on_output(line.rstrip())
            return proc.wait(), lines
        finally:
            if watchdog:
                watchdog.cancel()

    try:
        code, lines = run("stack", "init", "--secrets-provider", "passphrase")
        if code != 0:
            raise RuntimeError(f"pulumi stack init failed ({code}):\n" + "\n".join(lines[-40:]))
        settings = yaml.safe_load(stack_file.read_text()) or {}
        settings["config"] = config
        stack_file.write_text(yaml.safe_dump(settings, sort_keys=False))
        yield run
    finally:
        run("stack", "rm", "--yes", "--force")
        stack_file.unlink(missing_ok=True)
        shutil.rmtree(state, ignore_errors=True)


def render(
    out_dir: Path,
    *,
    stack: str | None = None,
    install_operator: bool = False,
    overrides: dict[str, Any] | None = None,
    on_output: Callable[[str], None] = log,
) -> Rendered:
    """``pulumi up`` of an ephemeral stack in render mode; the manifests land
    in ``out_dir`` (which must be outside the work tree) and are returned.
    The stack, its config file and its state are gone when this returns."""
    out_dir = out_dir.resolve()
    if out_dir.is_relative_to(ROOT):
        raise ValueError(f"{out_dir} is inside the work tree; Secrets are rendered in plain text")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty; the render would mix with what is there")
    stack = stack or f"render-{os.getpid()}"
    config = stack_config(out_dir, install_operator, overrides)
    version = str((config.get(f"{PROJECT}:kubernetes") or {}).get("version", "1.33"))
    start = time.monotonic()
    with ephemeral_stack(stack, config) as run:
        code, lines = run("up", "--yes", "--skip-preview", "--suppress-progress", on_output=on_output)
        if code != 0:
            raise RuntimeError(f"pulumi up failed ({code}):\n" + "\n".join(lines[-40:]))
        seconds = time.monotonic() - start
        manifests = load_manifests(out_dir)
    return Rendered(stack, out_dir, manifests, seconds, version, install_operator, placeholder_images(config))


# -- Kubernetes schemas ---------------------------------------------------


@dataclass
class Findings:
    checked: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def validate_schemas(manifests: list[Manifest], version: str) -> Findings:
    """Every built-in object against the official JSON schemas of
    ``version``, strict: a field the schema does not know fails."""
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

    found = Findings()
    for m in manifests:
        if m.is_spark:
            continue
        try:
            kubernetes_validate.validate(m.obj, version, strict=True)
            found.checked.append(m.ref)
        except ValidationError as exc:
            path = ".".join(str(p) for p in exc.path) or "(root)"
            found.errors.append(f"{m.ref} ({m.path.name}): {path}: {exc.message}")
        except SchemaNotFoundError as exc:
            found.errors.append(f"{m.ref} ({m.path.name}): {exc.message}")
    return found


# -- Spark Operator custom resources -------------------------------------


def _spark_api() -> types.ModuleType:
    """kubeflow_spark_api's models, installed once into the cache (pinned,
    without dependencies: it needs only pydantic, which .venv has)."""
    name, version = SPARK_API
    target = TOOLS / f"{name}-{version}"
    if not (target / "kubeflow_spark_api").is_dir():
        log(f"installing {name}=={version} into {target}")
        TOOLS.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=TOOLS))
        try:
            pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(staging)]
            subprocess.run([*pip, f"{name}=={version}"], check=True)
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    if str(target) not in sys.path:
        sys.path.append(str(target))
    import kubeflow_spark_api.models as models

    return models


def _check_model(value: Any, model: Any, path: str, errors: list[str]) -> None:
    from pydantic import BaseModel

    assert issubclass(model, BaseModel)
    if "actual_instance" in model.model_fields:  # a oneOf wrapper (Quantity, IntOrString)
        try:
            model(value)
        except Exception as exc:  # any failure of the oneOf is a finding
            errors.append(f"{path}: {str(exc).splitlines()[0]}")
        return
    if not isinstance(value, dict):
        errors.append(f"{path}: expected an object, got {type(value).__name__}")
        return
    fields = {(f.alias or n): f for n, f in model.model_fields.items() if n != "additional_properties"}
    for key in value:
        if key not in fields:
            errors.append(f"{path}.{key}: unknown field (allowed: {', '.join(sorted(fields))})")
    for key, info in fields.items():
        if info.is_required() and key not in value:
            errors.append(f"{path}.{key}: required field missing")
    for key, item in value.items():
        if key in fields:
            _check_value(item, fields[key].annotation, f"{path}.{key}", errors)


def _check_value(value: Any, annotation: Any, path: str, errors: list[str]) -> None:
    from pydantic import BaseModel, TypeAdapter, ValidationError

    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            _check_value(value, options[0], path, errors)
            return
    elif origin is typing.Annotated and (
        typing.get_origin(args[0]) in (list, dict)
        or (isinstance(args[0], type) and issubclass(args[0], BaseModel))
    ):
        _check_value(value, args[0], path, errors)
        return
    elif origin is list:
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        for index, item in enumerate(value):
            _check_value(item, args[0], f"{path}[{index}]", errors)
        return
    elif origin is dict:
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a map, got {type(value).__name__}")
            return
        for key, item in value.items():
            _check_value(item, args[1], f"{path}.{key}", errors)
        return
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        _check_model(value, annotation, path, errors)
        return
    try:
        TypeAdapter(annotation).validate_python(value, strict=True)
    except ValidationError as exc:
        errors.append(f"{path}: {exc.errors()[0]['msg']} (got {value!r})")


def check_spark_resources(manifests: list[Manifest]) -> Findings:
    """SparkApplication and ScheduledSparkApplication objects against the
    operator's v1beta2 API: no unknown field, every required field, the
    right types all the way down (pod specs included)."""
    models = _spark_api()
    by_kind = {
        "SparkApplication": models.SparkV1beta2SparkApplication,
        "ScheduledSparkApplication": models.SparkV1beta2ScheduledSparkApplication,
    }
    found = Findings()
    for m in manifests:
        if not m.is_spark:
            continue
        errors: list[str] = []
        if m.api_version != f"{SPARK_GROUP}/v1beta2":
            errors.append(f"apiVersion {m.api_version}: the operator serves {SPARK_GROUP}/v1beta2")
        model = by_kind.get(m.kind)
        if model is None:
            errors.append(f"kind {m.kind} is not a Spark Operator v1beta2 kind")
        else:
            _check_model(m.obj, model, m.kind, errors)
            # The API models leave these optional; the CRD and the operator need them.
            if not m.namespace:
                errors.append("metadata.namespace: missing; the object would land in kubectl's default")
        if errors:
            found.errors += [f"{m.ref}: {e}" for e in errors]
        else:
            found.checked.append(m.ref)
    return found


# -- Prometheus -----------------------------------------------------------


def _apt_get(*args: str, cwd: Path) -> bool:
    sudo = [] if os.geteuid() == 0 or shutil.which("sudo") is None else ["sudo"]
    ok = subprocess.run(["apt-get", *args], cwd=cwd, capture_output=True).returncode == 0
    if not ok and args[0] == "download":
        subprocess.run([*sudo, "apt-get", "update", "-qq"], capture_output=True)
        ok = subprocess.run(["apt-get", *args], cwd=cwd, capture_output=True).returncode == 0
    return ok


def debian_tool(name: str, package: str) -> Path:
    """``$<NAME>``, ``name`` on PATH, or the binary from Debian's ``package``,
    extracted into the cache (``apt-get download`` + ``dpkg -x``: the
    package's service is never installed)."""
    variable = name.upper()
    if os.environ.get(variable):
        return Path(os.environ[variable])
    if found := shutil.which(name):
        return Path(found)
    cached = TOOLS / name
    if cached.is_file():
        return cached
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise FileNotFoundError(f"{name}: not on PATH and no apt-get/dpkg to fetch Debian's {package}")
    with tempfile.TemporaryDirectory(prefix=f"{name}-") as tmp:
        work = Path(tmp)
        log(f"fetching {name} from the {package} package")
        if not _apt_get("download", package, cwd=work):
            raise FileNotFoundError(f"{name}: apt-get download {package} failed")
        deb = next(work.glob(f"{package}_*.deb"))
        subprocess.run(["dpkg", "-x", str(deb), str(work / "root")], check=True)
        TOOLS.mkdir(parents=True, exist_ok=True)
        staged = TOOLS / f".{name}.{os.getpid()}"
        shutil.copy2(work / "root" / "usr" / "bin" / name, staged)
        staged.rename(cached)
    return cached


def promtool() -> Path:
    """promtool of Debian's prometheus package (2.42), unless given."""
    return debian_tool("promtool", "prometheus")


def amtool() -> Path:
    """amtool of Debian's prometheus-alertmanager package (0.25), unless given."""
    return debian_tool("amtool", "prometheus-alertmanager")


@dataclass(frozen=True)
class ToolRun:
    what: str
    ok: bool
    output: str


def prometheus_files(manifests: list[Manifest]) -> dict[str, str]:
    """prometheus.yml and rules.yml as rendered in Prometheus' ConfigMap."""
    for m in manifests:
        data = m.obj.get("data") or {}
        if m.kind == "ConfigMap" and all(name in data for name in PROMETHEUS_FILES):
            return {name: data[name] for name in PROMETHEUS_FILES}
    raise LookupError("no ConfigMap carries prometheus.yml and rules.yml")


def alertmanager_config(manifests: list[Manifest]) -> str:
    for m in manifests:
        data = m.obj.get("data") or {}
        if m.kind == "ConfigMap" and ALERTMANAGER_FILE in data:
            return str(data[ALERTMANAGER_FILE])
    raise LookupError(f"no ConfigMap carries {ALERTMANAGER_FILE}")


def run_rule_tests(rules_text: str, workdir: Path) -> ToolRun:
    """``promtool test rules``: the alert unit tests against ``rules_text``,
    but those of alerts it does not hold (a tier's own, such as prod's
    ``SparkApplicationFailed``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "rules.yml").write_text(rules_text)
    held = {r.get("alert") for g in yaml.safe_load(rules_text)["groups"] for r in g["rules"]}
    tests = yaml.safe_load(RULE_TESTS.read_text())
    for case in tests["tests"]:
        case["alert_rule_test"] = [c for c in case.get("alert_rule_test", []) if c["alertname"] in held]
    tests["tests"] = [case for case in tests["tests"] if case["alert_rule_test"]]
    (workdir / RULE_TESTS.name).write_text(yaml.safe_dump(tests, sort_keys=False))
    proc = subprocess.run(
        [str(promtool()), "test", "rules", RULE_TESTS.name], cwd=workdir, capture_output=True, text=True
    )
    return ToolRun("promtool test rules", proc.returncode == 0, (proc.stdout + proc.stderr).strip())


def check_alertmanager(config_text: str, workdir: Path) -> ToolRun:
    path = workdir / ALERTMANAGER_FILE
    path.write_text(config_text)
    proc = subprocess.run([str(amtool()), "check-config", str(path)], capture_output=True, text=True)
    return ToolRun("amtool check-config", proc.returncode == 0, (proc.stdout + proc.stderr).strip())


def check_prometheus(manifests: list[Manifest], workdir: Path) -> list[ToolRun]:
    """``promtool check config`` (which also loads the rule files it names),
    ``promtool check rules`` and ``promtool test rules`` on the rendered
    files, and ``amtool check-config`` on Alertmanager's."""
    files = prometheus_files(manifests)
    rules = workdir / "rules.yml"
    rules.write_text(files["rules.yml"])
    config = yaml.safe_load(files["prometheus.yml"])
    # In the pod the rules are at /etc/prometheus/rules.yml; point at the copy.
    config["rule_files"] = [
        str(workdir / Path(p).name) if Path(p).name in files else p for p in config.get("rule_files", [])
    ]
    prom = workdir / "prometheus.yml"
    prom.write_text(yaml.safe_dump(config, sort_keys=False))
    tool = str(promtool())
    runs = []
    for what, args in (("check config", [str(prom)]), ("check rules", [str(rules)])):
        proc = subprocess.run([tool, *what.split(), *args], capture_output=True, text=True)
        runs.append(ToolRun(f"promtool {what}", proc.returncode == 0, (proc.stdout + proc.stderr).strip()))
    runs.append(run_rule_tests(files["rules.yml"], workdir / "rule-tests"))
    runs.append(check_alertmanager(alertmanager_config(manifests), workdir))
    return runs


@functools.cache
def promtool_version() -> str:
    """``promtool 2.42.0+ds`` (Debian's) and the like."""
    out = subprocess.run([str(promtool()), "--version"], capture_output=True, text=True)
    words = (out.stdout + out.stderr).split()
    return f"promtool {words[words.index('version') + 1]}" if "version" in words else "promtool"


# -- the whole run --------------------------------------------------------


@dataclass
class Report:
    rendered: Rendered
    schemas: Findings
    spark: Findings
    prometheus: list[ToolRun]
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.schemas.errors and not self.spark.errors and all(r.ok for r in self.prometheus)

    def print(self) -> None:
        r = self.rendered
        print(f"rendered {len(r.manifests)} manifests (stack {r.stack}, {r.seconds:.0f} s):")
        for kind, count in sorted(r.kinds().items()):
            print(f"  {count:3d}  {kind}")
        if not r.operator:
            print("(Spark Operator chart not rendered: sparkOperator.install false; --operator renders it)")
        if r.placeholders:
            keys = ", ".join(r.placeholders)
            print(f"images pinned to placeholder digests (a render reaches no registry): {keys}")
        print(
            f"strict schema validation, Kubernetes {r.version}: "
            f"{len(self.schemas.checked)} passed, {len(self.schemas.errors)} failed"
        )
        for error in self.schemas.errors:
            print(f"  FAIL {error}")
        print(
            f"Spark Operator v1beta2 API ({SPARK_API[0]} {SPARK_API[1]}): "
            f"{len(self.spark.checked)} passed, {len(self.spark.errors)} failed"
        )
        for error in self.spark.errors:
            print(f"  FAIL {error}")
        for run in self.prometheus:
            tool = promtool_version() if run.what.startswith("promtool") else "amtool 0.25"
            print(f"{run.what} ({tool}): {'ok' if run.ok else 'FAILED'}")
            if not run.ok:
                print("  " + run.output.replace("\n", "\n  "))
        validated = len(self.schemas.checked) + len(self.spark.checked)
        print(
            f"{len(r.manifests)} manifests rendered, {validated} validated"
            f"{'' if self.ok else ' - CHECKS FAILED'}; render {r.seconds:.0f} s, "
            f"render + validate {self.seconds:.0f} s"
        )


def check(rendered: Rendered, workdir: Path) -> tuple[Findings, Findings, list[ToolRun]]:
    return (
        validate_schemas(rendered.manifests, rendered.version),
        check_spark_resources(rendered.manifests),
        check_prometheus(rendered.manifests, workdir),
    )


@contextlib.contextmanager
def scratch(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="dataplatform-render-") as tmp:
        yield Path(tmp)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.render", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", help="ephemeral stack name (default render-<pid>)")
    parser.add_argument(
        "--operator", action="store_true", help="render the Spark Operator's Helm chart too (needs its repo)"
    )
    parser.add_argument("--keep", type=Path, help="write the manifests here and keep them (not in git)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the engine's output")
    args = parser.parse_args(argv)
    reason = missing_toolchain(allow_download=True)
    if reason:
        print(f"cannot render: {reason}", file=sys.stderr)
        return 2
    start = time.monotonic()
    with scratch(args.keep) as base, tempfile.TemporaryDirectory(prefix="dataplatform-promtool-") as work:
        out = base / "manifests" if args.keep is None else base
        rendered = render(
            out,
            stack=args.stack,
            install_operator=args.operator,
            on_output=log if args.verbose else (lambda _line: None),
        )
        schemas, spark, prometheus = check(rendered, Path(work))
        report = Report(rendered, schemas, spark, prometheus, time.monotonic() - start)
    report.print()
    if args.keep is not None:
        print(f"manifests kept in {args.keep} (Secrets in plain text: keep it out of git, delete it after)")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
