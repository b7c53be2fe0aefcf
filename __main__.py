"""The dataplatform stack: settings in, platform out, outputs exported."""

import pulumi

from dataplatform.platform import Platform
from stack_config import load_settings

platform = Platform("dataplatform", load_settings(), pulumi.get_stack())
# Each service declares its own outputs; the platform adds target, buckets
# and platform_credentials.
for key, value in platform.outputs.items():
    pulumi.export(key, value)
