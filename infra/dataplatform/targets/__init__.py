"""Renderers that turn target-neutral workloads into resources."""

from dataplatform.targets.base import ChartSpec, ClusterTarget, Deployment, PodFlows, Target

__all__ = ["ChartSpec", "ClusterTarget", "Deployment", "PodFlows", "Target"]
