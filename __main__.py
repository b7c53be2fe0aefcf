"""The repository's stacks: stack config in, one DataPlatform out, its outputs exported.

This program is the library's first consumer; ``stack_config`` is the one
place that reads ``pulumi.Config``.
"""

import pulumi

from dataplatform import DataPlatform
from stack_config import load_settings

platform = DataPlatform("dataplatform", settings=load_settings())
# Each service declares its own outputs; the platform adds target, buckets,
# where it was deployed (kubernetes or docker) and platform_credentials.
for key, value in platform.outputs.items():
    pulumi.export(key, value)
