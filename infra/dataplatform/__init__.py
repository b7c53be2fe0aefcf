"""The Pulumi program's library: settings, workload model, targets, services."""
