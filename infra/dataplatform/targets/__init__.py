"""Renderers that turn target-neutral workloads into resources."""

from dataplatform.targets.base import ChartSpec, ClusterTarget, Deployment, PodAdmission, PodFlows, Target

__all__ = ["ChartSpec", "ClusterTarget", "Deployment", "PodAdmission", "PodFlows", "Target"]
