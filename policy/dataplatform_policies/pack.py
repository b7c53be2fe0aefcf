"""The rules as CrossGuard policies, and a way to run them without the engine.

``build_policies()`` is what ``__main__.py`` hands to ``PolicyPack``.
``evaluate()`` runs those same policy objects over plain resources (a type,
a name and inputs), as the engine would during a preview: every resource
through every resource policy, then the whole list through every stack
policy. Tests feed it what the Pulumi program declares under mocks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from . import docker, kubernetes
from .common import Enforcement, ResourceRule, Rule, StackResource, StackRule

PACK_NAME = "dataplatform"

RULES: list[Rule] = [*kubernetes.RESOURCE_RULES, *kubernetes.STACK_RULES, *docker.RESOURCE_RULES]


def _schema(rule: Rule) -> PolicyConfigSchema | None:
    if not rule.config:
        return None
    return PolicyConfigSchema(properties={k: dict(v) for k, v in rule.config.items()})


def _resource_policy(rule: ResourceRule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for message in rule.validate(args.resource_type, args.props, args.get_config()):
            report_violation(message, None)

    return ResourceValidationPolicy(
        name=rule.name,
        description=rule.description,
        validate=validate,
        enforcement_level=EnforcementLevel(rule.enforcement.value),
        config_schema=_schema(rule),
    )


def _stack_policy(rule: StackRule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = [StackResource(r.resource_type, r.name, r.props, r.urn) for r in args.resources]
        for finding in rule.validate(resources, args.get_config()):
            report_violation(finding.message, finding.urn)

    return StackValidationPolicy(
        name=rule.name,
        description=rule.description,
        validate=validate,
        enforcement_level=EnforcementLevel(rule.enforcement.value),
        config_schema=_schema(rule),
    )


def build_policies() -> list[Policy]:
    """Every rule as a policy, in a stable order."""
    return [_resource_policy(r) if isinstance(r, ResourceRule) else _stack_policy(r) for r in RULES]


# -- running the pack without the engine ---------------------------------


@dataclass(frozen=True)
class Violation:
    policy: str
    enforcement: Enforcement
    resource: str  # the resource's name, or "" for the stack as a whole
    message: str


def _options() -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=False,
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
    )


def _collector(
    found: list[Violation], policy: str, level: Enforcement, by_urn: Mapping[str, str], default: str
) -> ReportViolation:
    def report(message: str, urn: str | None) -> None:
        found.append(Violation(policy, level, by_urn.get(urn or "", default), message))

    return report


def evaluate(
    resources: Sequence[StackResource],
    config: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Violation]:
    """Every violation the pack reports on ``resources``. ``config`` maps a
    policy name to its settings, as a policy pack config file does."""
    config = config or {}
    levels = {r.name: r.enforcement for r in RULES}
    by_urn = {r.urn: r.name for r in resources if r.urn}
    stack = [
        PolicyResource(r.type, r.props, r.urn, r.name, _options(), None, None, [], {}) for r in resources
    ]
    found: list[Violation] = []
    for policy in build_policies():
        level = levels[policy.name]
        settings = dict(config.get(policy.name, {}))
        if isinstance(policy, ResourceValidationPolicy):
            for r in resources:
                args = ResourceValidationArgs(r.type, r.props, r.urn, r.name, _options(), None, settings)
                policy.validate(args, _collector(found, policy.name, level, by_urn, r.name))
        elif isinstance(policy, StackValidationPolicy):
            policy.validate(
                StackValidationArgs(stack, settings), _collector(found, policy.name, level, by_urn, "")
            )
    return found
