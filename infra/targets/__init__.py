"""Renderers that turn target-neutral workloads into resources."""

from infra.targets.base import ChartSpec, Deployment, PodFlows, Target

__all__ = ["ChartSpec", "Deployment", "PodFlows", "Target"]
