# hubspot-token-operator developer entry points. `make test` and `make demo` work on a fresh machine.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help venv testbin node-deps image kind-test test unit cluster-test cluster-up cluster-down demo demo-down bench clean

help:
	@echo "make test          unit + cluster tests (builds the control plane into the cache on first run)"
	@echo "make unit          unit tests only (no servers)"
	@echo "make cluster-up    start a local control plane; prints 'export KUBECONFIG=...'"
	@echo "make cluster-down  stop it and remove its state"
	@echo "make demo          run the operator end to end against the local cluster and the HubSpot simulator"
	@echo "make demo-down     stop the demo and remove its state"
	@echo "make image         build the operator image from the Dockerfile (docker or podman)"
	@echo "make kind-test     for Docker users: kind cluster, image, chart, cluster tests (not needed by CI)"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Builds etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok, helm, kubelet and pause from the Go
# module proxy into ~/.cache/hubspot-token-operator (skipped when cached, or when KUBEBUILDER_ASSETS has them).
testbin: $(STAMP)
	$(BIN)/python -c "from hubspot_token_operator.devcluster import find_assets; print(find_assets().bin_dirs[0])"

# The real node's Debian packages (containerd, runc, podman, mmdebstrap), installed when missing (root).
node-deps:
	@bash testbin/node-deps.sh

test: testbin node-deps
	$(BIN)/pytest tests

unit: $(STAMP)
	$(BIN)/pytest tests/unit

cluster-test: testbin node-deps
	$(BIN)/pytest tests/cluster

cluster-up: testbin
	@$(BIN)/hto-devcluster up

cluster-down: $(STAMP)
	@$(BIN)/hto-devcluster down

demo: testbin
	@$(BIN)/python -m hubspot_token_operator.demo up

demo-down: $(STAMP)
	@$(BIN)/python -m hubspot_token_operator.demo down

# The operator image from the Dockerfile, with Docker or podman. (The tests build theirs without a registry,
# on a Debian base: `hto-devcluster image`, devcluster/images.py.)
IMAGE ?= hubspot-token-operator:dev
image:
	@if command -v docker >/dev/null && docker info >/dev/null 2>&1; then docker build -t $(IMAGE) .; \
	elif command -v podman >/dev/null; then podman build -t $(IMAGE) .; \
	else echo "make image needs docker or podman" >&2; exit 1; fi

# For people with Docker: kind cluster + image + chart + the cluster tests that need only a kubeconfig.
kind-test: $(STAMP)
	@bash testbin/kind-test.sh

bench: testbin
	@echo "see bench/README.md for the scripts and what they measure"

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
