# homelab: offline plan, tests and the real Pulumi flow.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STACK ?= home

.PHONY: help plan test lint typecheck unit schema validate bench kubeconfig talosconfig preview up clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

plan: $(VENV)/.installed ## offline plan of Pulumi.$(STACK).yaml under Pulumi's mocks (no CLI, no network)
	$(PY) -m plan --stack $(STACK)

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
