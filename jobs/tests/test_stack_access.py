"""``submit`` reaches the stack where its outputs say it was deployed.

On prod every kubectl call (port-forward included) names the context, the
kubeconfig and the namespace the stack recorded, never the current context;
on dev the docker CLI talks to the stack's Docker host. The outputs come from
``pulumi stack output`` in the deploying program's directory, or from a file.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from jobs import cli, submit_dev, uploads
from jobs.errors import JobError
from jobs.stack_outputs import KubeAccess, StackTarget, read_target
from jobs.tests.conftest import fake_tool
from jobs.tests.test_submit import DEV_OUTPUTS, PROD_OUTPUTS

JOBS_NAMESPACE = PROD_OUTPUTS["spark_submit"]["namespace"]

# A kubectl that records each call and answers as a cluster would: apply,
# get (the application completes at once), logs, and port-forward (listens
# on the local port until it is stopped).
RECORDING_KUBECTL = """import json, os, socket, sys
args = sys.argv[1:]
with open({record!r}, "a") as handle:
    handle.write(json.dumps({{"args": args, "KUBECONFIG": os.environ.get("KUBECONFIG")}}) + "\\n")
command = args[args.index("-n") + 2:] if "-n" in args else args
if command[0] == "apply":
    sys.stdin.read()
elif command[0] == "get" and command[1] == "sparkapplication":
    seen = {record!r} + ".gets"
    first = not os.path.exists(seen)
    open(seen, "a").close()
    if not first:
        print(json.dumps({{"status": {{"submissionID": "new", "applicationState": {{"state": "COMPLETED"}},
                                     "driverInfo": {{"podName": "dp-event-counts-driver"}}}}}}))
elif command[0] == "get":
    print(json.dumps({{"items": []}}))
elif command[0] == "logs":
    print("k0\\t2")
elif command[0] == "port-forward":
    local = int(command[-1].split(":")[0])
    server = socket.socket()
    server.bind(("127.0.0.1", local))
    server.listen()
    while True:
        server.accept()[0].close()
"""

# Stands in for pulumi where it must not be run at all.
NO_PULUMI = "import sys\nprint('pulumi must not be run', file=sys.stderr)\nsys.exit(9)\n"


def kubectl_calls(record: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in record.read_text().splitlines()]


def write_outputs(path: Path, outputs: dict[str, Any]) -> str:
    path.write_text(json.dumps(outputs))
    return str(path)


def prod_outputs(context: str | None, kubeconfig: str | None) -> dict[str, Any]:
    outputs = copy.deepcopy(PROD_OUTPUTS)
    outputs["kubernetes"] = {"namespace": "dataplatform", "context": context, "kubeconfig": kubeconfig}
    return outputs


@pytest.fixture
def fake_upload(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Uploads recorded instead of made; returns the endpoints they were given."""
    endpoints: list[str] = []

    def upload(paths: Sequence[str], *, endpoint: str, bucket: str, **_: Any) -> dict[str, str]:
        endpoints.append(endpoint)
        return {path: f"s3a://{bucket}/uploads/x/{Path(path).name}" for path in paths}

    monkeypatch.setattr(uploads, "upload_inputs", upload)
    return endpoints


def test_every_kubectl_call_names_the_stack_s_context_kubeconfig_and_namespace(
    tmp_path: Path,
    fake_bin: Path,
    fake_upload: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    record = tmp_path / "kubectl.jsonl"
    fake_tool(fake_bin, "kubectl", RECORDING_KUBECTL.format(record=str(record)))
    fake_tool(fake_bin, "pulumi", NO_PULUMI)
    kubeconfig = tmp_path / "prod.kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    # The caller's own kubeconfig and its current context must play no part.
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "callers-own-kubeconfig"))
    outputs = write_outputs(tmp_path / "outputs.json", prod_outputs("prod-cluster", str(kubeconfig)))
    data = tmp_path / "data.csv"
    data.write_text("column1\nk0\nk0\n")

    code = cli.main(
        [
            "submit",
            "event_counts",
            "--outputs",
            outputs,
            "--poll-seconds",
            "0",
            str(data),
            "--column",
            "column1",
        ]
    )

    assert code == 0, capsys.readouterr().err
    calls = kubectl_calls(record)
    prefix = ["--context", "prod-cluster", "--kubeconfig", str(kubeconfig), "-n"]
    for call in calls:
        assert call["args"][:5] == prefix, call
    assert {call["args"][6] for call in calls} == {"port-forward", "get", "apply", "logs"}
    # MinIO's Service is where DP_S3_ENDPOINT (minio.dataplatform) puts it; the
    # application where the stack's own jobs run.
    (forward,) = [call["args"] for call in calls if call["args"][6] == "port-forward"]
    assert forward[5:] == ["dataplatform", "port-forward", "svc/minio", forward[8]]
    assert forward[8].endswith(":9000")
    assert fake_upload == [f"http://127.0.0.1:{forward[8].split(':')[0]}"]
    assert {call["args"][5] for call in calls if call["args"] != forward} == {JOBS_NAMESPACE}
    assert "k0\t2" in capsys.readouterr().out


def test_without_a_recorded_kubeconfig_kubectl_s_default_file_is_used_with_the_stack_s_context(
    tmp_path: Path, fake_bin: Path, fake_upload: list[str]
) -> None:
    record = tmp_path / "kubectl.jsonl"
    fake_tool(fake_bin, "kubectl", RECORDING_KUBECTL.format(record=str(record)))
    outputs = write_outputs(tmp_path / "outputs.json", prod_outputs("prod-cluster", None))
    data = tmp_path / "data.csv"
    data.write_text("column1\nk0\n")

    assert cli.main(["submit", "event_counts", "--outputs", outputs, "--poll-seconds", "0", str(data)]) == 0

    calls = kubectl_calls(record)
    assert {call["args"][4] for call in calls} == {"port-forward", "get", "apply", "logs"}
    for call in calls:
        assert call["args"][:3] == ["--context", "prod-cluster", "-n"]
        assert "--kubeconfig" not in call["args"]


def test_a_kubeconfig_list_goes_to_kubectl_as_kubeconfig(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.write_text("")
    listed = f"{first}:{second}"
    access = StackTarget.from_outputs(prod_outputs("ctx", listed), "prod").kube()
    assert access.kubectl("ns", "get", "pods") == ["kubectl", "--context", "ctx", "-n", "ns", "get", "pods"]
    assert access.environment({"KUBECONFIG": "/mine"})["KUBECONFIG"] == listed
    single = KubeAccess(context="ctx", kubeconfig=str(first), namespace="ns")
    assert single.environment({"KUBECONFIG": "/mine"}) == {"KUBECONFIG": "/mine"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda o: o.pop("kubernetes"), "no `kubernetes` output.*deploy the stack again"),
        (
            lambda o: o["kubernetes"].update(context=None),
            "recorded no kubeconfig context.*deploy the stack again",
        ),
        (lambda o: o["kubernetes"].update(kubeconfig="/nowhere/config"), "kubeconfig /nowhere/config"),
    ],
)
def test_a_prod_stack_that_does_not_say_where_it_runs_is_refused_before_kubectl_runs(
    tmp_path: Path,
    fake_bin: Path,
    capsys: pytest.CaptureFixture[str],
    change: Any,
    message: str,
) -> None:
    record = tmp_path / "kubectl.jsonl"
    fake_tool(fake_bin, "kubectl", RECORDING_KUBECTL.format(record=str(record)))
    outputs = prod_outputs("ctx", None)
    change(outputs)
    path = write_outputs(tmp_path / "outputs.json", outputs)

    assert cli.main(["submit", "train", "--outputs", path, "--stack", "prod"]) == 2

    err = capsys.readouterr().err
    assert err.startswith("error: stack prod")
    assert re.search(message, err), err
    assert not record.exists()


def test_a_dev_stack_without_its_docker_output_is_refused(
    tmp_path: Path, fake_bin: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_tool(fake_bin, "docker", "import sys\nsys.exit(9)\n")
    outputs = copy.deepcopy(DEV_OUTPUTS)
    del outputs["docker"]
    path = write_outputs(tmp_path / "outputs.json", outputs)
    assert cli.main(["submit", "features", "--outputs", path]) == 2
    assert "no `docker` output" in capsys.readouterr().err


def test_docker_runs_against_the_stack_s_docker_host_with_its_prefix(
    tmp_path: Path, fake_bin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "docker.jsonl"
    fake_tool(
        fake_bin,
        "docker",
        "import json, os, sys\n"
        f"open({str(record)!r}, 'a').write(json.dumps({{'args': sys.argv[1:], "
        "'DOCKER_HOST': os.environ.get('DOCKER_HOST'), 'DOCKER_CONTEXT': os.environ.get('DOCKER_CONTEXT')}) "
        "+ '\\n')\n",
    )
    monkeypatch.setenv("DOCKER_HOST", "unix:///var/run/docker.sock")
    monkeypatch.setenv("DOCKER_CONTEXT", "callers-own")
    outputs = copy.deepcopy(DEV_OUTPUTS)
    outputs["docker"] = {"host": "ssh://builder@10.0.0.5", "prefix": "analytics-dev"}
    path = write_outputs(tmp_path / "outputs.json", outputs)

    assert cli.main(["submit", "features", "--outputs", path, "--no-online"]) == 0

    (call,) = [json.loads(line) for line in record.read_text().splitlines()]
    assert call["DOCKER_HOST"] == "ssh://builder@10.0.0.5"
    assert call["DOCKER_CONTEXT"] is None
    assert call["args"][call["args"].index("--name") + 1].startswith("analytics-dev-job-features-")


def test_without_a_recorded_docker_host_the_caller_s_docker_settings_stay() -> None:
    access = StackTarget.from_outputs(DEV_OUTPUTS, "dev").docker()
    assert access.environment({"DOCKER_HOST": "tcp://h:2375"}) == {"DOCKER_HOST": "tcp://h:2375"}


def test_container_names_are_host_names() -> None:
    assert submit_dev.container_name("dataplatform-dev", "event_counts", "1a2b") == (
        "dataplatform-dev-job-event-counts-1a2b"
    )
    assert submit_dev.container_name("Team_A.dev", "train", "1a2b") == "team-a-dev-job-train-1a2b"
    long = submit_dev.container_name("p" * 80, "event_counts", "1a2b3c4d")
    assert len(long) == 63
    assert long.endswith("-job-event-counts-1a2b3c4d")


def test_outputs_of_a_stack_of_another_program_are_read_in_its_directory(
    tmp_path: Path, fake_bin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    program = tmp_path / "other-program"
    (program / "kube").mkdir(parents=True)
    (program / "Pulumi.yaml").write_text("name: other\nruntime: python\n")
    (program / "kube" / "config").write_text("")
    outputs = prod_outputs("other-ctx", "kube/config")
    seen = tmp_path / "pulumi.json"
    fake_tool(
        fake_bin,
        "pulumi",
        "import json, os, sys\n"
        f"json.dump({{'args': sys.argv[1:], 'cwd': os.getcwd()}}, open({str(seen)!r}, 'w'))\n"
        f"print(json.dumps({outputs!r}))\n",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    for option in ("--project-dir", "--cwd"):
        args = cli.build_parser().parse_known_args(
            ["submit", "train", "--stack", "org/other/prod", option, "../other-program"]
        )[0]
        target = read_target(args.stack, args.project_dir, args.outputs_file)
        called = json.loads(seen.read_text())
        assert called["args"] == ["stack", "output", "--json", "--show-secrets", "--stack", "org/other/prod"]
        assert Path(called["cwd"]) == program.resolve()
        # A relative kubeconfig the stack recorded is the program's, not the caller's.
        access = target.kube()
        assert access.kubeconfig == str(program.resolve() / "kube" / "config")
        assert access.kubectl("ns")[:4] == ["kubectl", "--context", "other-ctx", "--kubeconfig"]


def test_a_directory_without_a_pulumi_program_is_named(tmp_path: Path) -> None:
    with pytest.raises(JobError, match="not a Pulumi project directory"):
        read_target("prod", str(tmp_path))


def test_saved_outputs_are_read_without_pulumi(
    tmp_path: Path, fake_bin: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_tool(fake_bin, "pulumi", NO_PULUMI)
    path = write_outputs(tmp_path / "outputs.json", PROD_OUTPUTS)
    target = read_target(None, None, path)
    assert target.tier == "prod"
    assert target.kube().context == "prod-cluster"
    monkeypatch.setattr("sys.stdin", open(path))  # noqa: SIM115 - closed with the test
    assert read_target("prod", None, "-").kube().namespace == "dataplatform"

    hidden = {**PROD_OUTPUTS, "platform_credentials": "[secret]"}
    with pytest.raises(JobError, match="--show-secrets"):
        read_target(None, None, write_outputs(tmp_path / "hidden.json", hidden))
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(JobError, match=r"broken\.json is not valid JSON"):
        read_target(None, None, str(tmp_path / "broken.json"))
    with pytest.raises(JobError, match="cannot read outputs file"):
        read_target(None, None, str(tmp_path / "missing.json"))


def test_outputs_and_a_project_directory_exclude_each_other_and_one_source_is_needed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        cli.main(["submit", "train", "--outputs", str(tmp_path / "o.json"), "--project-dir", str(tmp_path)])
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["submit", "train"])
    assert "give --stack NAME" in capsys.readouterr().err


def test_job_options_are_not_taken_for_abbreviations_of_submit_s_own() -> None:
    args, job_argv = cli.build_parser().parse_known_args(
        [
            "submit",
            "event_counts",
            "x.csv",
            "--stack",
            "dev",
            "--output",
            "s3a://lake/c",
            "--output=s3a://l/d",
        ]
    )
    assert args.outputs_file is None
    assert job_argv == ["x.csv", "--output", "s3a://lake/c", "--output=s3a://l/d"]
