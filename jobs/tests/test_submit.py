from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from jobs import cli, submit_dev, submit_prod
from jobs.conventions import RUN_ID_ANNOTATION
from jobs.errors import JobError
from jobs.launch import SparkResources, spark_application
from jobs.stack_outputs import StackTarget, secret_values
from jobs.tests.conftest import fake_tool

DEV_OUTPUTS: dict[str, Any] = {
    "spark_submit": {
        "tier": "dev",
        "image": "dataplatform/spark:0.1.0",
        "master_url": "spark://spark-master:7077",
        "network": "dataplatform-dev",
        "env": {"DP_S3_ENDPOINT": "http://minio:9000", "DP_REDIS_HOST": "redis", "DP_REDIS_PORT": "6379"},
        "conf": {"spark.eventLog.enabled": "true", "spark.sql.session.timeZone": "UTC"},
        "resources": {
            "driverCores": 1,
            "driverMemoryMib": 768,
            "executorCores": 1,
            "executorMemoryMib": 768,
            "minExecutors": 1,
            "maxExecutors": 2,
        },
    },
    "platform_credentials": {
        "s3_access_key": "AK",
        "s3_secret_key": "SK",
        "redis_password": "RP",
        "gateway_api_key": "GK",
    },
    "docker": {"host": None, "prefix": "dataplatform-dev"},
}
PROD_OUTPUTS: dict[str, Any] = {
    "spark_submit": {
        "tier": "prod",
        "image": "registry.internal/dataplatform/spark:0.1.0",
        "namespace": "dataplatform-jobs",
        "service_account": "spark-driver",
        "env": {"DP_S3_ENDPOINT": "http://minio.dataplatform:9000", "DP_RAW_BUCKET": "raw"},
    },
    "platform_credentials": DEV_OUTPUTS["platform_credentials"],
    "kubernetes": {"namespace": "dataplatform", "context": "prod-cluster", "kubeconfig": None},
}


def test_docker_command() -> None:
    target = StackTarget.from_outputs(DEV_OUTPUTS, "dev")
    command = submit_dev.docker_command(
        "features", ["--ttl-seconds", "3"], target, secrets_dir="/tmp/s", container_name="dp-job-features-1"
    )
    assert command[:3] == ["docker", "run", "--rm"]
    joined = " ".join(command)
    for fragment in (
        "--network dataplatform-dev",
        "--user 185",
        "--read-only",
        "--tmpfs /tmp",
        "-v /tmp/s:/run/secrets:ro",
        "-e DP_REDIS_HOST=redis",
        "-e DP_S3_ACCESS_KEY_FILE=/run/secrets/s3_access_key",
        "-e DP_S3_SECRET_KEY_FILE=/run/secrets/s3_secret_key",
        "-e DP_REDIS_PASSWORD_FILE=/run/secrets/redis_password",
        "--conf spark.driver.host=dp-job-features-1",
        "--conf spark.executor.memory=768m",
        "--conf spark.driver.memory=768m",
        "--conf spark.dynamicAllocation.maxExecutors=2",
        "--conf spark.eventLog.enabled=true",
    ):
        assert fragment in joined
    image_at = command.index("dataplatform/spark:0.1.0")
    assert command[image_at + 1 : image_at + 4] == ["spark-submit", "--master", "spark://spark-master:7077"]
    assert command[-4:] == ["/opt/dataplatform/jobs/run.py", "features", "--ttl-seconds", "3"]
    assert not {"AK", "SK", "RP"} & set(command)


def test_spark_application() -> None:
    target = StackTarget.from_outputs(PROD_OUTPUTS, "prod")
    app = submit_prod.application("train", ["--name", "churn"], target, secret_name="creds", run_id="r1")
    assert app["apiVersion"] == "sparkoperator.k8s.io/v1beta2"
    assert app["kind"] == "SparkApplication"
    assert app["metadata"]["name"] == "dp-train"
    assert app["metadata"]["namespace"] == "dataplatform-jobs"
    spec = app["spec"]
    assert spec["mainApplicationFile"] == "local:///opt/dataplatform/jobs/run.py"
    assert spec["arguments"] == ["train", "--name", "churn"]
    assert spec["image"] == "registry.internal/dataplatform/spark:0.1.0"
    assert spec["volumes"][0] == {"name": "secrets", "secret": {"secretName": "creds", "defaultMode": 0o440}}
    assert spec["restartPolicy"] == {"type": "Never"}
    assert spec["driver"]["serviceAccount"] == "spark-driver"
    # Executors never call the API: an account without a token.
    assert spec["executor"]["serviceAccount"] == "spark-executor"
    assert spec["driver"]["annotations"] == {RUN_ID_ANNOTATION: "r1"}
    assert spec["executor"]["instances"] == 1
    # Prometheus finds drivers by a label of their own; the operator counts
    # failures per job by the application's.
    assert spec["driver"]["labels"]["dataplatform.io/spark-driver"] == "true"
    assert "dataplatform.io/spark-driver" not in spec["executor"]["labels"]
    assert app["metadata"]["labels"]["dataplatform-job"] == "train"
    for pod in (spec["driver"], spec["executor"]):
        env = {e["name"]: e["value"] for e in pod["env"]}
        assert env["DP_S3_SECRET_KEY_FILE"] == "/run/secrets/s3_secret_key"
        assert env["DP_RAW_BUCKET"] == "raw"
        # File by file, so the driver's service-account token can still be
        # mounted under /var/run/secrets.
        secret_mounts = [m for m in pod["volumeMounts"] if m["name"] == "secrets"]
        assert secret_mounts == [
            {"name": "secrets", "mountPath": f"/run/secrets/{f}", "subPath": f, "readOnly": True}
            for f in ("redis_password", "s3_access_key", "s3_secret_key")
        ]
        assert pod["podSecurityContext"] == {"fsGroup": 185}
        assert pod["labels"]["dataplatform.io/spark-app"] == "true"
        assert pod["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert "SK" not in json.dumps(app)
    secret = submit_prod.credentials_secret("ns", "creds", secret_values(target))
    assert secret["stringData"] == {"s3_access_key": "AK", "s3_secret_key": "SK", "redis_password": "RP"}


@pytest.mark.parametrize(
    "outputs",
    [
        {},
        {"spark_submit": {"tier": "dev"}, "platform_credentials": {}},
        {"spark_submit": {**PROD_OUTPUTS["spark_submit"], "namespace": ""}, "platform_credentials": {}},
    ],
)
def test_incomplete_outputs(outputs: dict[str, Any]) -> None:
    with pytest.raises(JobError, match="stack x"):
        StackTarget.from_outputs(outputs, "x")


def status(submission: str | None, state: str | None, error: str | None = None) -> submit_prod.AppStatus:
    return submit_prod.AppStatus(submission, state, error, "dp-train-driver")


def test_wait_ignores_the_previous_run_and_reports_transitions() -> None:
    statuses = iter(
        [
            status("old", "COMPLETED"),
            status("new", "SUBMITTED"),
            status("new", "RUNNING"),
            status("new", "RUNNING"),
            status("new", "FAILED", "boom"),
        ]
    )
    now = [0.0]
    reports: list[str] = []

    def sleep(seconds: float) -> None:
        now[0] += seconds

    final = submit_prod.wait_for_application(
        lambda: next(statuses),
        "old",
        timeout=60,
        poll_seconds=5,
        clock=lambda: now[0],
        sleep=sleep,
        report=reports.append,
    )
    assert final.state == "FAILED"
    assert final.error == "boom"
    assert [r.split("] ")[1] for r in reports] == ["SUBMITTED", "RUNNING", "FAILED"]
    assert reports[0].startswith("[    5.0s]")


def test_wait_times_out() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(JobError, match="timed out after 10s"):
        submit_prod.wait_for_application(
            lambda: status("s", "RUNNING"),
            None,
            timeout=10,
            poll_seconds=5,
            clock=lambda: now[0],
            sleep=sleep,
            report=lambda _: None,
        )


def test_submit_dev_streams_output_and_reports_failure(
    tmp_path: Path, fake_bin: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = tmp_path / "docker-args.json"
    fake_tool(
        fake_bin,
        "pulumi",
        f"import json, sys\n"
        f"assert sys.argv[1:] == ['stack', 'output', '--json', '--show-secrets', '--stack', 'dev']\n"
        f"print(json.dumps({DEV_OUTPUTS!r}))\n",
    )
    fake_tool(
        fake_bin,
        "docker",
        f"""import json, os, sys
args = sys.argv[1:]
mount = args[args.index("-v") + 1].split(":")[0]
secrets = {{name: open(os.path.join(mount, name)).read() for name in sorted(os.listdir(mount))}}
modes = {{name: oct(os.stat(os.path.join(mount, name)).st_mode & 0o777) for name in secrets}}
json.dump({{"args": args, "secrets": secrets, "modes": modes}}, open({str(record)!r}, "w"))
for i in range(60):
    print(f"driver line {{i}}")
print("Traceback: JobError raised", file=sys.stderr)
sys.exit(3)
""",
    )
    code = cli.main(["submit", "features", "--stack", "dev", "--no-online", "--ttl-seconds", "2"])
    assert code == 3
    seen = json.loads(record.read_text())
    assert seen["secrets"] == {"redis_password": "RP", "s3_access_key": "AK", "s3_secret_key": "SK"}
    expected_mode = "0o600" if os.geteuid() == 0 else "0o640"
    assert set(seen["modes"].values()) == {expected_mode}
    assert seen["args"][-4:] == ["features", "--no-online", "--ttl-seconds", "2"]
    assert seen["args"][seen["args"].index("--name") + 1].startswith("dataplatform-dev-job-features-")
    assert not Path(seen["args"][seen["args"].index("-v") + 1].split(":")[0]).exists()
    captured = capsys.readouterr()
    assert "driver line 0" in captured.out
    assert "container exited with code 3" in captured.err
    assert "Traceback: JobError raised" in captured.err
    assert "driver line 5\n" not in captured.err  # only the last lines are repeated


def test_submit_rejects_bad_job_arguments_before_contacting_the_stack(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        cli.main(["submit", "datagen", "--stack", "dev", "--rows", "many"])
    assert "invalid int value" in capsys.readouterr().err


def test_spark_submit_entry_rejects_unknown_jobs(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.spark_submit_main(["nope"]) == 64
    assert "usage: run.py" in capsys.readouterr().err


def test_submit_prod_applies_and_polls_until_failure(
    tmp_path: Path, fake_bin: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "kubectl-state.json"
    fake_tool(fake_bin, "pulumi", f"import json\nprint(json.dumps({PROD_OUTPUTS!r}))\n")
    fake_tool(
        fake_bin,
        "kubectl",
        f"""import json, os, sys
path = {str(state)!r}
log = json.load(open(path)) if os.path.exists(path) else {{"gets": 0, "applied": None}}
args = sys.argv[1:]
assert args[:4] == ["--context", "prod-cluster", "-n", "dataplatform-jobs"], args
args = args[4:]
if args[0] == "apply":
    log["applied"] = json.load(sys.stdin)
elif args[0] == "get":
    log["gets"] += 1
    phases = [("old", "COMPLETED", None), ("old", "COMPLETED", None), ("new", "RUNNING", None),
              ("new", "FAILED", "driver container failed with ExitCode: 2")]
    sid, st, err = phases[min(log["gets"] - 1, len(phases) - 1)]
    app_state = {{"state": st, "errorMessage": err}}
    print(json.dumps({{"status": {{"submissionID": sid, "applicationState": app_state,
                                 "driverInfo": {{"podName": "dp-train-driver"}}}}}}))
elif args[0] == "logs":
    print("error: train: AUC 0.51 is below --min-auc 0.6; not published")
json.dump(log, open(path, "w"))
""",
    )
    code = cli.main(["submit", "train", "--stack", "prod", "--poll-seconds", "0", "--name", "churn"])
    assert code == 1
    log = json.loads(state.read_text())
    kinds = [item["kind"] for item in log["applied"]["items"]]
    assert kinds == ["Secret", "SparkApplication"]
    app = log["applied"]["items"][1]
    assert app["spec"]["arguments"] == ["train", "--name", "churn"]
    assert app["spec"]["volumes"][0]["secret"]["secretName"] == submit_prod.DEFAULT_SECRET_NAME
    captured = capsys.readouterr()
    states = [line.split("] ")[1] for line in captured.out.splitlines() if line.startswith("[")]
    assert states == ["RUNNING", "FAILED"]
    assert "FAILED: driver container failed with ExitCode: 2" in captured.err
    assert "below --min-auc" in captured.err


def test_core_requests_below_the_cores_fit_small_clusters() -> None:
    sizes = SparkResources(driver_cores=1, executor_cores=2, executor_core_request_millis=500)
    app = spark_application(
        "dp-x", "datagen", [], image="i", env={}, secret_name="s", conf={}, resources=sizes
    )
    assert "coreRequest" not in app["spec"]["driver"]
    assert app["spec"]["executor"]["coreRequest"] == "500m"
    assert app["spec"]["executor"]["coreLimit"] == "2000m"
    assert SparkResources.from_output(sizes.to_output()) == sizes
    with pytest.raises(ValueError, match="executor core request 2500m"):
        SparkResources(executor_cores=2, executor_core_request_millis=2500)


def test_a_prod_job_prints_what_the_job_printed_and_not_spark_s_log() -> None:
    log = "\n".join(
        [
            "WARNING: Using incubator modules: jdk.incubator.vector",
            "2026-12-01T20:39:47.702Z INFO BlockManagerMasterEndpoint: Registering block manager",
            "SLF4J: Defaulting to no-operation (NOP) logger implementation",
            "column1\tcount",
            "k0\t429",
            "io.fabric8.kubernetes.client.KubernetesClientException: Failure executing: DELETE",
            "\tat io.fabric8.kubernetes.client.dsl.internal.OperationSupport.requestFailure(X.java:1)",
            "Caused by: java.io.IOException: boom",
            "\t... 12 more",
            "published churn 20261201T000000Z to s3a://models/churn/20261201T000000Z; LATEST updated",
        ]
    )
    assert submit_prod.job_output(log) == [
        "column1\tcount",
        "k0\t429",
        "published churn 20261201T000000Z to s3a://models/churn/20261201T000000Z; LATEST updated",
    ]
