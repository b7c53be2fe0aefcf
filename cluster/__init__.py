"""The local Kubernetes cluster's Python helpers, shared by its smoke test and the prod end-to-end run."""
