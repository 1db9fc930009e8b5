# hubspot-token-operator developer entry points. `make test` and `make demo` work on a fresh machine.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help venv testbin node-deps image kind-test test unit cluster-test cluster-up cluster-down demo demo-down bench scan clean

help:
	@echo "make test          unit + cluster tests (builds the control plane into the cache on first run)"
	@echo "make unit          unit tests only (no servers)"
	@echo "make cluster-up    start a local control plane; prints 'export KUBECONFIG=...'"
	@echo "make cluster-down  stop it and remove its state"
	@echo "make demo          run the operator end to end against the local cluster and the HubSpot simulator"
	@echo "make demo-down     stop the demo and remove its state"
	@echo "make image         build the operator image from the Dockerfile (docker or podman)"
	@echo "make kind-test     for Docker users: kind cluster, image, chart, cluster tests (not needed by CI)"
	@echo "make scan          render the chart and run kube-score, checkov and trivy on it (docs/security-scan.md)"

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

# Kubernetes security scanners on the rendered chart, on demand (not CI): docs/security-scan.md lists the findings
# that remain and why. The scanners are built/installed into the cache on first use (Go module proxy, PyPI), never
# into the repository; reports land in build/scan/<value set>/.
SCANNERS := $(HOME)/.cache/hubspot-token-operator/scanners
KUBE_SCORE_VERSION := v1.20.0
CHECKOV_VERSION := 3.3.30
TRIVY_VERSION := v0.74.0
KUBE_SCORE := $(SCANNERS)/kube-score-$(KUBE_SCORE_VERSION)/kube-score
CHECKOV := $(SCANNERS)/checkov-$(CHECKOV_VERSION)/bin/checkov
TRIVY := $(SCANNERS)/trivy-$(TRIVY_VERSION)/trivy
SCAN_OUT := build/scan
SCAN_SETS := default single full namespaces
SCAN_VALUES_default :=
SCAN_VALUES_single := --set replicaCount=1 --set leaderElection.enabled=false
SCAN_VALUES_full := --set networkPolicy.enabled=true --set serviceMonitor.enabled=true \
  --set prometheusRule.enabled=true --set grafana.dashboard.enabled=true \
  --set image.digest=sha256:0000000000000000000000000000000000000000000000000000000000000000
SCAN_VALUES_namespaces := --set watch.mode=namespaces --set 'watch.namespaces={team-a,team-b}'

$(KUBE_SCORE):
	GOBIN=$(dir $@) go install github.com/zegl/kube-score/cmd/kube-score@$(KUBE_SCORE_VERSION)

$(CHECKOV):
	$(PY) -m venv $(SCANNERS)/checkov-$(CHECKOV_VERSION)
	$(SCANNERS)/checkov-$(CHECKOV_VERSION)/bin/pip install -q checkov==$(CHECKOV_VERSION)

# trivy needs Go's encoding/json/v2 experiment to build; its checks are compiled in (--skip-check-update).
$(TRIVY):
	GOEXPERIMENT=jsonv2 GOBIN=$(dir $@) go install github.com/aquasecurity/trivy/cmd/trivy@$(TRIVY_VERSION)

scan: testbin $(KUBE_SCORE) $(CHECKOV) $(TRIVY)
	@rm -rf $(SCAN_OUT)
	@helm="$$($(BIN)/python -c "from hubspot_token_operator.devcluster import find_assets; print(find_assets().paths['helm'])")"; \
	$(foreach s,$(SCAN_SETS),mkdir -p $(SCAN_OUT)/$(s) && "$$helm" template hto charts/hubspot-token-operator \
	  -n hubspot-system $(SCAN_VALUES_$(s)) > $(SCAN_OUT)/$(s)/manifests.yaml || exit 1;) true
	@for s in $(SCAN_SETS); do d=$(SCAN_OUT)/$$s; \
	  echo "=== $$s: kube-score $(KUBE_SCORE_VERSION) (not OK, not skipped)"; \
	  $(KUBE_SCORE) score --output-format ci --enable-optional-test container-seccomp-profile \
	    --enable-optional-test container-ports-check $$d/manifests.yaml > $$d/kube-score.txt; \
	  grep -Ev '^\[(OK|SKIPPED)\]' $$d/kube-score.txt | sort; \
	  echo "=== $$s: checkov $(CHECKOV_VERSION) (failed checks)"; \
	  $(CHECKOV) -f $$d/manifests.yaml --framework kubernetes --skip-download --compact --quiet -o cli \
	    > $$d/checkov.txt 2>/dev/null; \
	  grep -E '^Passed checks|^Check:' $$d/checkov.txt; \
	  echo "=== $$s: trivy $(TRIVY_VERSION) config (failures)"; \
	  $(TRIVY) config --skip-check-update --quiet --format table $$d/manifests.yaml > $$d/trivy.txt 2>&1 \
	    || { cat $$d/trivy.txt; exit 1; }; \
	  grep -E '^Failures:|^[A-Z]+-[0-9]+ \(' $$d/trivy.txt; \
	done; echo "reports: $(SCAN_OUT)/<value set>/{kube-score,checkov,trivy}.txt; accepted findings: docs/security-scan.md"

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
