"""The dataplatform policy pack's rules, importable without the engine."""

from .common import Enforcement, Finding, ResourceRule, StackResource, StackRule
from .pack import PACK_NAME, RULES, Violation, build_policies, evaluate

__all__ = [
    "PACK_NAME",
    "RULES",
    "Enforcement",
    "Finding",
    "ResourceRule",
    "StackResource",
    "StackRule",
    "Violation",
    "build_policies",
    "evaluate",
]
