"""The dataplatform stack: settings in, platform out, outputs exported."""

import pulumi

from infra.platform import Platform
from infra.settings import load_settings

settings = load_settings()
platform = Platform("dataplatform", settings, pulumi.get_stack())
target = platform.target

pulumi.export("target", settings.target.value)
pulumi.export("gateway_url", platform.gateway.url)
pulumi.export("spark_master_url", platform.spark.master_url)
pulumi.export("spark_ui_url", platform.spark.ui_url)
pulumi.export("minio_endpoint", target.published_url(platform.minio.server, "s3"))
pulumi.export("minio_console_url", target.published_url(platform.minio.server, "console"))
pulumi.export("buckets", settings.buckets.model_dump())
pulumi.export("prometheus_url", platform.prometheus.url)
pulumi.export("alertmanager_url", platform.alertmanager.url)
pulumi.export("spark_submit", platform.spark_submit)
pulumi.export("platform_credentials", platform.credentials)
if platform.grafana is not None:
    pulumi.export("grafana_url", platform.grafana.url)
    pulumi.export("grafana_admin_password", platform.grafana.admin_password)
pulumi.export("minio_root_user", platform.minio.root_user)
pulumi.export("minio_root_password", platform.minio.root_password)
pulumi.export("redis_admin_password", platform.redis.credentials["admin"].password)
