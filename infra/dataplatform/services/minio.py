"""MinIO: the S3 object store holding raw data, the lake, models and Spark logs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pulumi

from dataplatform.config import Buckets, Resources
from dataplatform.project import DEFAULT_VERSION
from dataplatform.services.base import Context, Deploy, Service, ServiceSpec
from dataplatform.services.common import generated_secret, secret_path
from dataplatform.targets import Target
from dataplatform.workload import File, Metrics, Port, ProjectImage, Workload, http_check

API_PORT = 9000
CONSOLE_PORT = 9001
NAME = "minio"
POLICY_DIR = "/etc/minio-init"
DEPLOY = Deploy(
    ProjectImage(NAME, "images/minio", "images/minio/Dockerfile", DEFAULT_VERSION),
    Resources.of("250m", "512Mi", "1Gi"),
    host_port=API_PORT,
    storage_size="20Gi",
)
INIT_RESOURCES = Resources.of("50m", "64Mi", "256Mi")


@dataclass(frozen=True)
class S3Credentials:
    access_key: pulumi.Output[str]
    secret_key: pulumi.Output[str]


@dataclass(frozen=True)
class MinioArgs:
    """What MinIO is built from; the defaults make a minimal call work.
    ``users``: a service user each, name -> {bucket: "read" | "readwrite"}."""

    users: dict[str, dict[str, str]]
    buckets: Buckets = field(default_factory=Buckets)
    deploy: Deploy = DEPLOY
    console_host_port: int = CONSOLE_PORT
    init_resources: Resources = INIT_RESOURCES


def _policy(grants: dict[str, str]) -> str:
    """An IAM policy giving each bucket exactly the access asked for."""
    statements = []
    for bucket, access in sorted(grants.items()):
        actions = ["s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation"]
        if access == "readwrite":
            actions += [
                "s3:PutObject",
                "s3:DeleteObject",
                "s3:AbortMultipartUpload",
                "s3:ListMultipartUploadParts",
                "s3:ListBucketMultipartUploads",
            ]
        statements.append(
            {
                "Effect": "Allow",
                "Action": sorted(actions),
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            }
        )
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, indent=2)


def _env_key(user: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in user.upper())


class Minio(Service):
    """A single-node MinIO server, its buckets and least-privilege users.

    Defaults: root credentials generated (never ``minioadmin``) and used only
    by the init task; every service gets its own user whose policy names
    its buckets and nothing else; data on a persistent volume; metrics open
    to the platform network without a token (prod: the network policy lets
    only Prometheus reach them).
    """

    endpoint: str
    credentials: dict[str, S3Credentials]
    root_user: pulumi.Output[str]
    root_password: pulumi.Output[str]

    def __init__(
        self, name: str, args: MinioArgs, target: Target, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dataplatform:index:Minio", name, None, opts)
        self.root_user = generated_secret(target.names.of("minio-root-user"), self, length=20)
        self.root_password = generated_secret(target.names.of("minio-root-password"), self, length=40)
        root_files = (
            File(secret_path("root-user"), self.root_user, secret=True),
            File(secret_path("root-password"), self.root_password, secret=True),
        )
        deploy = args.deploy
        image = deploy.image
        server = Workload(
            name=NAME,
            image=image,
            user=1000,
            group=1000,
            command=("minio",),
            args=("server", "/data", "--address", f":{API_PORT}", "--console-address", f":{CONSOLE_PORT}"),
            env={
                "MINIO_ROOT_USER_FILE": secret_path("root-user"),
                "MINIO_ROOT_PASSWORD_FILE": secret_path("root-password"),
                "MINIO_PROMETHEUS_AUTH_TYPE": "public",
                "MINIO_BROWSER_REDIRECT": "off",
                "HOME": "/tmp",
            },
            files=root_files,
            ports=(
                Port("s3", API_PORT, host_port=deploy.host_port),
                Port("console", CONSOLE_PORT, host_port=args.console_host_port),
            ),
            volumes=(deploy.volume("/data"),),
            health=http_check(API_PORT, "/minio/health/live", via="bash"),
            # Ready once its drives are online and it can serve requests.
            readiness=http_check(API_PORT, "/minio/health/ready", via="bash"),
            metrics=Metrics(API_PORT, "/minio/v2/metrics/cluster"),
            resources=deploy.resources,
        )
        self.deployment = target.deploy(server, self)
        self.endpoint = f"http://{self.deployment.host}:{API_PORT}"
        self.server = server
        self.scraped = [server]

        self.credentials = {}
        files: list[File] = list(root_files)
        env: dict[str, pulumi.Input[str]] = {
            "MINIO_INIT_URL": self.endpoint,
            "MINIO_ROOT_USER_FILE": secret_path("root-user"),
            "MINIO_ROOT_PASSWORD_FILE": secret_path("root-password"),
            "MINIO_BUCKETS": ",".join(args.buckets.model_dump().values()),
            "MINIO_INIT_USERS": ",".join(sorted(args.users)),
            "MC_CONFIG_DIR": "/tmp/.mc",
        }
        for user, grants in sorted(args.users.items()):
            creds = S3Credentials(
                access_key=generated_secret(target.names.of(f"minio-{user}-access-key"), self, length=20),
                secret_key=generated_secret(target.names.of(f"minio-{user}-secret-key"), self, length=40),
            )
            self.credentials[user] = creds
            key = _env_key(user)
            files += [
                File(secret_path(f"{user}-access-key"), creds.access_key, secret=True),
                File(secret_path(f"{user}-secret-key"), creds.secret_key, secret=True),
                File(f"{POLICY_DIR}/{user}.json", _policy(grants)),
            ]
            env[f"MINIO_USER_{key}_ACCESS_KEY_FILE"] = secret_path(f"{user}-access-key")
            env[f"MINIO_USER_{key}_SECRET_KEY_FILE"] = secret_path(f"{user}-secret-key")
            env[f"MINIO_USER_{key}_POLICY"] = f"{POLICY_DIR}/{user}.json"
        init = Workload(
            name="minio-init",
            image=image,
            user=1000,
            group=1000,
            command=("minio-init",),
            env=env,
            files=tuple(files),
            health=None,
            one_shot=True,
            depends_on=(NAME,),
            talks_to=(f"{NAME}:s3",),
            resources=args.init_resources,
        )
        self.init = target.deploy(init, self)
        self.console_url = target.published_url(server, "console")
        self.s3_url = target.published_url(server, "s3")
        self.register_outputs({"endpoint": self.endpoint})

    def outputs(self) -> dict[str, Any]:
        return {
            "minio_endpoint": self.s3_url,
            "minio_console_url": self.console_url,
            "minio_root_user": self.root_user,
            "minio_root_password": self.root_password,
        }


def build(ctx: Context) -> Minio:
    """MinIO, with a user for each service that asks for bucket access."""
    settings = ctx.settings
    buckets = settings.buckets
    users = {
        spec.name: {getattr(buckets, role): access for role, access in spec.s3_access.items()}
        for spec in ctx.specs
        if spec.s3_access
    }
    args = MinioArgs(
        users=users,
        buckets=buckets,
        deploy=ctx.deploy(NAME, DEPLOY, host_port="minio_api"),
        console_host_port=settings.host_port("minio_console"),
        # An override of minio's resources sizes its init task too.
        init_resources=settings.resources_for(NAME, INIT_RESOURCES),
    )
    return Minio(ctx.target.names.of(NAME), args, ctx.target, ctx.opts)


SPEC = ServiceSpec(
    name=NAME,
    build=build,
    host_ports={"minio_api": API_PORT, "minio_console": CONSOLE_PORT},
    images={NAME: None},
    storage={NAME: str(DEPLOY.storage_size)},
    workloads=(NAME,),
)
