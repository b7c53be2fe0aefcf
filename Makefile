# The project's entry points. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
CACHE ?= $(HOME)/.cache/dataplatform
VENV := .venv/bin
# The toolchain's environment (PATH to the Pulumi CLI and plugins, local
# state backend, passphrase) is written by scripts/bootstrap.sh.
PULUMI_ENV := if [ -f $(CACHE)/env.sh ]; then source $(CACHE)/env.sh; fi;

.PHONY: help bootstrap up preview-dev preview-prod destroy test test-infra test-jobs \
        test-inference test-gateway test-providers lint images e2e

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

bootstrap: ## Install the toolchain, the Docker engine and the base images
	bash scripts/bootstrap.sh

# `make up STACK=other` deploys another stack of this project the same way.
STACK ?= dev

# --skip-preview: with --yes nothing waits on the preview, and it would run
# the program a second time; `make preview-dev` shows the changes first.
up: bootstrap ## Bring the dev stack up on the local Docker engine
	$(PULUMI_ENV) pulumi stack select $(STACK) --create && pulumi up --refresh --skip-preview --stack $(STACK) --yes

preview-dev: ## Preview the dev stack
	$(PULUMI_ENV) pulumi preview --stack dev

preview-prod: ## Preview the prod stack (renders manifests when no cluster is configured)
	$(PULUMI_ENV) pulumi preview --stack prod

.PHONY: render-prod
render-prod: ## Render the prod stack with the real engine to a temp dir and validate the manifests offline
	$(PULUMI_ENV) $(VENV)/python -m tools.render

destroy: ## Destroy the dev stack; data volumes are kept unless purgeOnDestroy is set
	$(PULUMI_ENV) pulumi destroy --stack dev --yes

test: ## Run every test suite (installs what the tests need first)
	bash scripts/test-deps.sh
	$(MAKE) lint test-infra test-providers test-jobs test-inference test-gateway

lint:
	$(VENV)/ruff check infra stack_config.py tests tools benchmarks __main__.py toolchain/local-providers policy
	$(VENV)/mypy

test-infra:
	$(VENV)/python -m pytest tests

test-providers:
	$(VENV)/python -m pytest toolchain/local-providers/tests

test-jobs:
	jobs/.venv/bin/python -m pytest jobs/tests

test-inference:
	cd services/inference && .venv/bin/python -m pytest tests

test-gateway:
	cd services/gateway && cargo clippy --locked --all-targets -- -D warnings && cargo test --locked

images: ## Build every image of the project and print their sizes
	bash scripts/build-images.sh

e2e: bootstrap ## Deploy the dev stack for real on an ephemeral stack and test it end to end
	bash scripts/test-deps.sh
	$(PULUMI_ENV) $(VENV)/python -m tools.e2e

.PHONY: e2e-prod
e2e-prod: bootstrap ## Deploy the prod configuration on the local cluster (make cluster first) and test it end to end
	bash scripts/test-deps.sh
	$(PULUMI_ENV) $(VENV)/python -m tools.e2e_prod

.PHONY: examples
# docker, then kubernetes and yaml when the local cluster answers;
# EXAMPLES_TIER=docker, kubernetes (with yaml) or yaml runs those alone.
EXAMPLES_TIER ?= all
examples: bootstrap ## Deploy examples/ from the built wheel: two platforms side by side on Docker and on the local cluster (when up), a prediction through each, then destroy
	bash scripts/test-deps.sh
	$(PULUMI_ENV) $(VENV)/python -m tools.examples --tier $(EXAMPLES_TIER)

.PHONY: upgrade-test
# dev, then prod when the local cluster answers; UPGRADE_TIER=dev or prod runs one.
UPGRADE_TIER ?= all
upgrade-test: bootstrap ## Deploy the previous release (CHANGELOG.md) on a throwaway stack and update it in place with this checkout under load (dev; prod too when the cluster answers)
	bash scripts/test-deps.sh
	$(PULUMI_ENV) $(VENV)/python -m tools.upgrade_test --tier $(UPGRADE_TIER)

.PHONY: walkthrough
walkthrough: ## Run the READMEs' commands as written: set up, dev stack, jobs, purge
	python3 -m scripts.walkthrough README.md jobs/README.md

.PHONY: compose-bench
compose-bench: ## Time docker compose up --wait on the same images
	bash benchmarks/compose/install-compose.sh
	bash benchmarks/compose/compare.sh

.PHONY: bench-gateway bench-inference
bench-gateway: ## Gateway against nginx in front of the same inference container (wrk, loopback; ~8 min)
	DATAPLATFORM_VERSION=bench bash scripts/build-images.sh inference
	$(PULUMI_ENV) PYTHONPATH=. jobs/.venv/bin/python -m benchmarks.gateway.bench

bench-inference: ## Inference service against onnxruntime in-process, rows per second (wrk, loopback; ~10 min)
	DATAPLATFORM_VERSION=bench bash scripts/build-images.sh inference
	PYTHONPATH=. jobs/.venv/bin/python -m benchmarks.inference.bench

.PHONY: bench-engine
bench-engine: ## Time no-op `pulumi up` of a deployed dev stack and `pulumi preview` of prod (render), and their pieces
	$(PULUMI_ENV) DATAPLATFORM_CACHE=$(CACHE) $(VENV)/python -m benchmarks.engine.bench $(BENCH_ARGS)

.PHONY: bench-smoke
bench-smoke: bootstrap ## Every benchmark's short pass (--smoke), each report's shape checked (~5 min once images are built)
	bash scripts/test-deps.sh
	bash benchmarks/gateway/install-tools.sh
	bash benchmarks/compose/install-compose.sh
	bash scripts/build-images.sh --standins
	DATAPLATFORM_VERSION=bench bash scripts/build-images.sh inference gateway
	$(PULUMI_ENV) DATAPLATFORM_CACHE=$(CACHE) $(VENV)/python -m benchmarks.smoke $(BENCH_ARGS)

.PHONY: cluster cluster-build cluster-test cluster-down
cluster-build: ## Build the local Kubernetes cluster's binaries and images from pinned Go modules (cached)
	bash cluster/build.sh

cluster: ## Start a local Kubernetes cluster (or reuse the running one); prints its kubeconfig
	bash cluster/up.sh

cluster-test: ## Smoke-test the local cluster: DNS, Ingress TLS, registry, PVC, HPA, Pod Security, NetworkPolicy
	python3 cluster/smoke_test.py

cluster-down: ## Stop the local cluster and remove what it put on the host (KEEP_DATA=1 keeps its data)
	bash cluster/down.sh
