# homelab: offline plan, tests and the real Pulumi flow.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STACK ?= home

.PHONY: help plan diff test lint typecheck unit schema talos-schema validate bench kubeconfig talosconfig preview up clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

plan: $(VENV)/.installed ## offline plan of Pulumi.$(STACK).yaml under Pulumi's mocks (no CLI, no network)
	$(PY) -m plan --stack $(STACK)

# BASE: the git ref to compare with; empty: the merge base with origin/main (HEAD without one).
BASE ?=
diff: $(VENV)/.installed ## what the working tree changes against BASE: Pulumi graph, nodes, Flux tree (build/diff/)
	$(PY) -m plan.diff --stack $(STACK) $(if $(BASE),--base $(BASE))

test: lint typecheck unit ## ruff, mypy and pytest

lint: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports --no-cache pyproject.toml

typecheck: $(VENV)/.installed
	$(PY) -m mypy .

unit: $(VENV)/.installed
	$(PY) -m pytest -q

validate: $(VENV)/.installed ## build and validate every Flux Kustomization in kubernetes/ (needs kubectl)
	$(PY) -m tools.validate_kubernetes

bench: $(VENV)/.installed ## time and peak memory of the offline plan: home and 3/30/300-node stacks
	$(PY) -m bench.plan_bench

schema: $(VENV)/.installed ## write the JSON schema of the stack config (editors validate Pulumi.*.yaml)
	$(PY) -m plan.schema

TALOS_SCHEMA := stacks/config/talos-v1.13.schema.json
talos-schema: $(VENV)/.installed ## download the Talos machine-config schema for Pulumi.$(STACK).yaml's talosVersion (needs the internet)
	@version=$$($(PY) -c 'import sys; from plan import yaml12; print(yaml12.load(open(sys.argv[1]).read())["config"]["homelab:cluster"]["talosVersion"])' Pulumi.$(STACK).yaml) && \
	url="https://raw.githubusercontent.com/siderolabs/talos/$$version/pkg/machinery/config/schemas/config.schema.json" && \
	curl -fsSL -o $(TALOS_SCHEMA).tmp "$$url" && \
	$(PY) -c 'import json, sys; json.load(open(sys.argv[1]))' $(TALOS_SCHEMA).tmp && \
	mv $(TALOS_SCHEMA).tmp $(TALOS_SCHEMA) && \
	sed -i "s|^Source: .*|Source: $$url|" $(TALOS_SCHEMA).license && \
	echo "$(TALOS_SCHEMA): Talos $$version"

kubeconfig: ## write ./kubeconfig from the stack output (real Pulumi CLI)
	pulumi stack output kubeconfig --show-secrets --stack $(STACK) > kubeconfig && chmod 600 kubeconfig

talosconfig: ## write ./talosconfig from the stack output (real Pulumi CLI)
	pulumi stack output talosconfig --show-secrets --stack $(STACK) > talosconfig && chmod 600 talosconfig

preview: ## real preview with the policy pack (Pulumi CLI)
	pulumi preview --stack $(STACK) --policy-pack policy

up: ## real deployment (Pulumi CLI)
	pulumi up --stack $(STACK) --policy-pack policy

clean:
	rm -rf build .mypy_cache .ruff_cache .pytest_cache
