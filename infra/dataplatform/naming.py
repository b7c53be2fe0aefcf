"""Resource names of one platform, unique in a program that declares several.

Pulumi identifies a resource by its type, its parents' types and its name,
not by its parents' names, so two platforms in one program would collide on
every child named only after its workload. Every resource a platform
declares is named ``<platform>-<name>``.

Release 0.1.0 was this repository's own program, whose one platform was
named ``dataplatform`` and whose children carried the bare names; a platform
of that name keeps an alias to each bare name, so stacks deployed with 0.1.0
update in place.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

# The name of the one platform release 0.1.0 declared, and its type token.
LEGACY_PLATFORM = "dataplatform"
LEGACY_TYPE = "dataplatform:index:Platform"


@dataclass(frozen=True)
class Names:
    """How a platform names what it declares."""

    platform: str

    def of(self, name: str) -> str:
        return f"{self.platform}-{name}"

    @property
    def keeps_legacy_names(self) -> bool:
        return self.platform == LEGACY_PLATFORM

    def release(self, name: str) -> str:
        """The Helm release name of chart ``name``: it names the chart's
        objects, cluster-wide ones included, so it is ``<platform>-<name>``,
        except on the platform that keeps release 0.1.0's names, whose
        release was ``name`` (renaming it would reinstall the chart)."""
        return name if self.keeps_legacy_names else self.of(name)

    def legacy_aliases(self) -> pulumi.ResourceTransform:
        """A transform giving each resource named ``<platform>-<x>`` an alias
        to ``x``: its name under release 0.1.0."""
        prefix = f"{self.platform}-"

        def alias(args: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
            if not args.name.startswith(prefix):
                return None
            opts = pulumi.ResourceOptions.merge(
                args.opts, pulumi.ResourceOptions(aliases=[pulumi.Alias(name=args.name[len(prefix) :])])
            )
            return pulumi.ResourceTransformResult(props=args.props, opts=opts)

        return alias
