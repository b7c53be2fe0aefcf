"""The dataplatform policy pack; the rules live in dataplatform_policies."""

from dataplatform_policies import PACK_NAME, build_policies
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(
    name=PACK_NAME,
    policies=build_policies(),
    # Each policy sets its own level; this applies only to one that does not.
    enforcement_level=EnforcementLevel.ADVISORY,
)
