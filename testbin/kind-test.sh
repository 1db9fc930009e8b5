#!/usr/bin/env bash
# `make kind-test`: the project on kind, for people with Docker (CI does not need it; these machines have no
# Docker engine, so this script is not run here: see docs/real-node.md).
#   1. creates a kind cluster (KIND_CLUSTER, default hto-test) unless it exists;
#   2. builds the image from the Dockerfile (docker build) and loads it into kind (kind load docker-image);
#   3. installs the chart with that image (pullPolicy Never) and waits until the operator pod is Ready:
#      the chart's ServiceAccount, RBAC, securityContext and probes on a real kubelet;
#   4. runs the cluster tests that need only a kubeconfig (--existing-kubeconfig): CRD validation, OAuth
#      refresh, private-app rotation, tenancy. (The real-node tests build their own node and read the host's
#      /proc; the fault and HA tests stop and start local processes: they run in `make test`.)
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in kind docker kubectl helm; do
  command -v "$tool" >/dev/null || { echo "kind-test needs $tool on PATH" >&2; exit 1; }
done
cluster=${KIND_CLUSTER:-hto-test}
image=${IMAGE:-hubspot-token-operator:kind}
state=${KIND_STATE_DIR:-.kind}
mkdir -p "$state"
kubeconfig="$state/kubeconfig"
if ! kind get clusters | grep -qx "$cluster"; then
  kind create cluster --name "$cluster" --kubeconfig "$kubeconfig" --wait 120s
else
  kind get kubeconfig --name "$cluster" > "$kubeconfig"
fi
export KUBECONFIG=$PWD/$kubeconfig
docker build -t "$image" .
kind load docker-image "$image" --name "$cluster"
kubectl apply --server-side -f crds/
helm upgrade --install hto charts/hubspot-token-operator -n hto-system --create-namespace \
  --set image.repository="${image%:*}" --set image.tag="${image##*:}" --set image.pullPolicy=Never \
  --set replicaCount=1 --wait --timeout 180s
kubectl -n hto-system rollout status deployment/hto-hubspot-token-operator --timeout=180s
kubectl -n hto-system get pods -o wide
# The chart's operator serves every namespace; the tests run their own (host-process) operator against the
# local simulator, so scale the in-cluster one down before they start (two operators would serve one token).
kubectl -n hto-system scale deployment/hto-hubspot-token-operator --replicas=0
.venv/bin/pytest --existing-kubeconfig "$KUBECONFIG" \
  tests/cluster/test_crd_validation.py tests/cluster/test_oauth_refresh.py \
  tests/cluster/test_private_app_rotation.py tests/cluster/test_tenancy.py "$@"
echo "kind-test passed; delete the cluster with: kind delete cluster --name $cluster"
