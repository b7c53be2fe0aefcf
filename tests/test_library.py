"""DataPlatform as a library: arguments, the caller's providers, several
platforms in one program, bad arguments refused before anything is declared."""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import pulumi_docker as docker
import pulumi_kubernetes as k8s
import pytest
import yaml
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from dataplatform import DataPlatform, DataPlatformArgs
from dataplatform.config import SettingsError
from dataplatform.naming import Names
from tools.defaults import host_port_keys
from tools.harness import Recorder

PROD: dict[str, Any] = {"target": "kubernetes", "imageRegistry": "registry.example.com/dataplatform"}


def declare(program: Callable[[], None], stack: str = "lib") -> Recorder:
    """Runs ``program`` under mocks in a project of its own; what it declared."""
    recorder = Recorder()
    pulumi.runtime.set_mocks(recorder, project="platform-team", stack=stack, preview=False)
    pulumi.runtime.set_all_config({})
    _sync_await(run_pulumi_func(program))
    return recorder


def full_names(recorder: Recorder, typ: str) -> list[str]:
    return [r.full_name for r in recorder.of_type(typ)]


def test_a_minimal_call_declares_the_dev_tier() -> None:
    recorder = declare(lambda: DataPlatform("dataplatform", DataPlatformArgs(config={"buildImages": False})))
    containers = recorder.of_type("docker:index/container:Container")
    assert containers
    assert all(c.inputs["name"].startswith("dataplatform-lib-") for c in containers)


def test_two_platforms_share_one_program_and_one_engine() -> None:
    def program() -> None:
        for name, offset in (("analytics", 0), ("research", 100)):
            ports = {key: 20000 + offset + i for i, key in enumerate(host_port_keys())}
            DataPlatform(name, DataPlatformArgs(config={"buildImages": False, "hostPorts": ports}))

    recorder = declare(program)
    urns = Counter((r.typ, r.full_name) for r in recorder.resources)
    assert [key for key, count in urns.items() if count > 1] == []
    names = [c.inputs["name"] for c in recorder.of_type("docker:index/container:Container")]
    assert len(names) == len(set(names))
    assert {n.split("-lib-")[0] for n in names} == {"analytics", "research"}
    networks = [n.inputs["name"] for n in recorder.of_type("docker:index/network:Network")]
    assert sorted(networks) == ["analytics-lib", "research-lib"]


def test_two_platforms_on_one_cluster_in_two_namespaces_with_one_operator() -> None:
    def program() -> None:
        provider = k8s.Provider("cluster", context="team")
        for index, name in enumerate(("analytics", "research")):
            DataPlatform(
                name,
                DataPlatformArgs(
                    config={
                        **PROD,
                        "sparkOperator": {"jobNamespaces": ["research-jobs"]} if index == 0 else {},
                    },
                    namespace=name,
                    spark_operator="install" if index == 0 else "existing",
                ),
                opts=pulumi.ResourceOptions(providers={"kubernetes": provider}),
            )

    recorder = declare(program)
    urns = Counter((r.typ, r.full_name) for r in recorder.resources)
    assert [key for key, count in urns.items() if count > 1] == []
    # The caller's provider is the only one: the platforms make none.
    assert full_names(recorder, "pulumi:providers:kubernetes") == ["cluster"]
    namespaces = {r.inputs["metadata"]["name"] for r in recorder.of_type("kubernetes:core/v1:Namespace")}
    assert {"analytics", "research", "analytics-jobs", "research-jobs"} <= namespaces
    charts = recorder.of_type("kubernetes:helm.sh/v4:Chart")
    assert len(charts) == 1
    assert charts[0].inputs["values"]["spark"]["jobNamespaces"] == ["analytics-jobs", "research-jobs"]
    deployments = recorder.of_type("kubernetes:apps/v1:Deployment")
    assert {d.inputs["metadata"]["namespace"] for d in deployments} == {"analytics", "research"}


def test_a_namespace_the_caller_owns_is_not_declared() -> None:
    def program() -> None:
        DataPlatform("analytics", DataPlatformArgs(config=PROD, namespace="team-a", create_namespace=False))

    recorder = declare(program)
    namespaces = recorder.of_type("kubernetes:core/v1:Namespace")
    # Only the operator's own namespace is declared; team-a and its jobs
    # namespace are read (lookups by ID, no inputs), so a missing one fails
    # the preview.
    assert [r.inputs["metadata"]["name"] for r in namespaces if r.inputs] == ["spark-operator"]
    assert [r.full_name for r in namespaces if not r.inputs] == [
        "analytics-namespace",
        "analytics-jobs-namespace",
    ]


def test_the_stack_outputs_record_where_the_platform_runs() -> None:
    seen: dict[str, Any] = {}

    def program() -> None:
        platform = DataPlatform(
            "analytics",
            DataPlatformArgs(
                config={**PROD, "kubernetes": {"kubeconfigContext": "team"}}, namespace="team-a"
            ),
        )
        seen.update(platform.outputs)

    declare(program)
    record = seen["kubernetes"]
    assert (record["namespace"], record["context"]) == ("team-a", "team")


def test_docker_host_makes_a_provider_for_that_engine() -> None:
    recorder = declare(
        lambda: DataPlatform(
            "analytics", DataPlatformArgs(config={"buildImages": False}, docker_host="ssh://build@10.0.0.5")
        )
    )
    providers = recorder.of_type("pulumi:providers:docker")
    assert [(p.full_name, p.inputs["host"]) for p in providers] == [
        ("analytics-docker", "ssh://build@10.0.0.5")
    ]


def test_only_the_platform_named_like_release_0_1_0_keeps_its_names_as_aliases(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[str] = []
    original = Names.legacy_aliases

    def recording(self: Names) -> pulumi.ResourceTransform:
        asked.append(self.platform)
        return original(self)

    monkeypatch.setattr(Names, "legacy_aliases", recording)
    for name in ("dataplatform", "analytics"):
        declare(lambda name=name: DataPlatform(name, DataPlatformArgs(config={"buildImages": False})))
    assert asked == ["dataplatform"]


def test_the_alias_is_the_name_under_release_0_1_0() -> None:
    transform = Names("dataplatform").legacy_aliases()
    args = pulumi.ResourceTransformArgs(
        custom=True,
        type_="random:index/randomPassword:RandomPassword",
        name="dataplatform-redis-admin-password",
        props={},
        opts=pulumi.ResourceOptions(),
    )
    result = transform(args)
    assert isinstance(result, pulumi.ResourceTransformResult)
    assert [a.name for a in result.opts.aliases or []] == ["redis-admin-password"]  # type: ignore[union-attr]
    assert transform(pulumi.ResourceTransformArgs(True, "t", "other", {}, pulumi.ResourceOptions())) is None


@pytest.mark.parametrize(
    ("platform", "release"), [("dataplatform", "spark-operator"), ("analytics", "analytics-spark-operator")]
)
def test_the_operator_chart_keeps_release_0_1_0s_release_name_only_on_its_platform(
    platform: str, release: str
) -> None:
    # The release name names the chart's objects, its cluster roles and
    # webhooks among them: a new one on a 0.1.0 stack would reinstall the
    # operator under other names instead of updating it.
    recorder = declare(lambda: DataPlatform(platform, DataPlatformArgs(config=PROD)))
    charts = recorder.of_type("kubernetes:helm.sh/v4:Chart")
    assert [(c.full_name, c.inputs["name"]) for c in charts] == [(f"{platform}-spark-operator", release)]


@pytest.mark.parametrize(
    ("name", "args", "opts", "message"),
    [
        ("Analytics", {}, None, "DataPlatform argument name: 'Analytics' is not a DNS label"),
        (
            "analytics",
            {"namespace": "Team_A"},
            None,
            "DataPlatform argument namespace: 'Team_A' is not a DNS label",
        ),
        (
            "analytics",
            {"spark_operator": "maybe"},
            None,
            "DataPlatform argument spark_operator: 'maybe' is not one of",
        ),
        ("analytics", {"config": {"gateway": {"replicas": 0}}}, None, "dataplatform:gateway.replicas"),
        ("analytics", {"config": {"targett": "docker"}}, None, "targett"),
        (
            "analytics",
            {"docker_host": "unix:///run/docker.sock"},
            "docker",
            "DataPlatform argument docker_host: given together with a Docker provider",
        ),
    ],
)
def test_bad_arguments_fail_with_one_message_before_anything_is_declared(
    name: str, args: dict[str, Any], opts: str | None, message: str
) -> None:
    def program() -> None:
        options = None
        if opts == "docker":
            options = pulumi.ResourceOptions(providers={"docker": docker.Provider("mine")})
        DataPlatform(name, DataPlatformArgs(**args), opts=options)  # type: ignore[typeddict-item]

    recorder = Recorder()
    pulumi.runtime.set_mocks(recorder, project="platform-team", stack="lib", preview=False)
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        _sync_await(run_pulumi_func(program))
    assert [r for r in recorder.resources if not r.typ.startswith("pulumi:providers:")] == []


def test_a_namespace_the_program_creates_is_waited_for_not_read() -> None:
    def program() -> None:
        provider = k8s.Provider("cluster")
        namespace = k8s.core.v1.Namespace(
            "team-a", metadata={"name": "team-a"}, opts=pulumi.ResourceOptions(provider=provider)
        )
        DataPlatform(
            "analytics",
            DataPlatformArgs(config=PROD, namespace="team-a", create_namespace=False),
            opts=pulumi.ResourceOptions(providers={"kubernetes": provider}, depends_on=[namespace]),
        )

    recorder = declare(program)
    # A read in preview would not find a namespace the same update creates.
    assert [r.full_name for r in recorder.of_type("kubernetes:core/v1:Namespace") if not r.inputs] == []


def kubeconfig(path: Path, server: str, context: str = "team") -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": context,
                "contexts": [{"name": context, "context": {"cluster": "c", "user": "u"}}],
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {}}],
            }
        )
    )
    return path


@pytest.mark.parametrize(
    ("context", "listening", "message"),
    [
        ("elsewhere", True, r"kubeconfigContext: no context 'elsewhere' in .*; its contexts: team"),
        (
            "team",
            False,
            r"kubeconfigContext: the API server of context 'team' \(https://127.0.0.1:\d+\) does not answer",
        ),
    ],
)
def test_a_cluster_the_platform_cannot_reach_fails_before_anything_is_declared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, context: str, listening: bool, message: str
) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        if listening:
            server.listen()
        port = server.getsockname()[1]
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "config", f"https://127.0.0.1:{port}")))
        config = {**PROD, "kubernetes": {"kubeconfigContext": context}}
        recorder = Recorder()
        pulumi.runtime.set_mocks(recorder, project="platform-team", stack="lib", preview=False)
        with pytest.raises(SettingsError, match=message):
            _sync_await(run_pulumi_func(lambda: DataPlatform("analytics", DataPlatformArgs(config=config))))
    assert [r for r in recorder.resources if r.custom] == []


def test_a_cluster_that_answers_passes_and_its_context_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        path = kubeconfig(tmp_path / "config", f"https://127.0.0.1:{server.getsockname()[1]}")
        monkeypatch.setenv("KUBECONFIG", str(path))
        declare(lambda: seen.update(DataPlatform("analytics", DataPlatformArgs(config=PROD)).outputs))
    assert seen["kubernetes"]["context"] == "team"
    assert seen["kubernetes"]["kubeconfig"] == str(path)
