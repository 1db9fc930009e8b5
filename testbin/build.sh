#!/usr/bin/env bash
# Builds the test control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl,
# kwok, helm; kubelet and pause for the real node) from the Go module proxy into a cache directory outside
# the repository, keyed by version.
# Prints the directory on its last line. A second run finds the binaries, checks their versions, and
# builds nothing.
#
# Honours KUBEBUILDER_ASSETS: if it names a directory that already has etcd, kube-apiserver and kubectl,
# that directory is used as it is (the other tools are still built into the cache when missing).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/versions.env"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
cache_root=${HTO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hubspot-token-operator}
out="$cache_root/testbin/k8s-v$K8S_VERSION-etcd-v$ETCD_VERSION-kwok-v$KWOK_VERSION-helm-v$HELM_VERSION"
mkdir -p "$out"
log() { echo "[testbin] $*" >&2; }

has_version() {  # has_version BINARY ARGS... -- EXPECTED
  local bin=$1; shift
  local expect=${*: -1}; set -- "${@:1:$#-1}"
  # grep without -q: with pipefail, -q exiting early can SIGPIPE the version command and fail the check
  [ -x "$bin" ] && "$bin" "$@" 2>/dev/null | grep -F "$expect" >/dev/null
}

minor=$(echo "$K8S_VERSION" | cut -d. -f2)
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION \
 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/client-go/pkg/version.gitVersion=v$K8S_VERSION \
 -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"

k8s_ok=true
for b in kube-apiserver kube-controller-manager kube-scheduler; do
  has_version "$out/$b" --version -- "v$K8S_VERSION" || k8s_ok=false
done
has_version "$out/kubectl" version --client -- "v$K8S_VERSION" || k8s_ok=false
if ! $k8s_ok; then
  log "building Kubernetes v$K8S_VERSION (first build takes a while; cached afterwards)"
  start=$(date +%s)
  (cd "$here" && go build -trimpath -ldflags "$ldflags" -o "$out/" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
  log "Kubernetes built in $(( $(date +%s) - start ))s"
fi
# kubelet runs the real node (devcluster/real_node.py); same module, built on its own so that a cache made
# before it existed only builds this one binary.
if ! has_version "$out/kubelet" --version -- "v$K8S_VERSION"; then
  log "building kubelet v$K8S_VERSION"
  start=$(date +%s)
  (cd "$here" && go build -trimpath -ldflags "$ldflags" -o "$out/" k8s.io/kubernetes/cmd/kubelet)
  log "kubelet built in $(( $(date +%s) - start ))s"
fi
# The real node's pod sandbox (containerd's sandbox_image), from testbin/pause (our own 20 lines of Go).
pause_src=$(sha256sum "$here/pause/main.go" | cut -c1-16)
if [ ! -x "$out/pause" ] || [ "$(cat "$out/pause.src" 2>/dev/null)" != "$pause_src" ]; then
  log "building pause"
  (cd "$here" && go build -trimpath -ldflags "-s -w" -o "$out/pause" ./pause)
  echo "$pause_src" > "$out/pause.src"
fi
if ! has_version "$out/etcd" --version -- "etcd Version: $ETCD_VERSION"; then
  log "building etcd v$ETCD_VERSION"
  (cd "$here" && go build -trimpath -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3)
fi
if ! has_version "$out/kwok" --version -- "$KWOK_VERSION"; then
  log "building kwok v$KWOK_VERSION"
  GOBIN="$out" GOFLAGS= go install -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=v$KWOK_VERSION" \
    "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION"
fi
if ! has_version "$out/helm" version -- "v4"; then
  log "building helm v$HELM_VERSION"
  GOBIN="$out" GOFLAGS= go install -trimpath -ldflags "-s -w" "helm.sh/helm/v4/cmd/helm@v$HELM_VERSION"
fi
# kwok v0.8 needs stage definitions; they are data files shipped in its module. Concatenate the fast ones.
if [ ! -s "$out/kwok-stages.yaml" ]; then
  moddir=$(GOFLAGS= go mod download -json "sigs.k8s.io/kwok@v$KWOK_VERSION" | python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])')
  : > "$out/kwok-stages.yaml.tmp"
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    echo "---" >> "$out/kwok-stages.yaml.tmp"
    cat "$moddir/kustomize/stage/$f" >> "$out/kwok-stages.yaml.tmp"
  done
  mv "$out/kwok-stages.yaml.tmp" "$out/kwok-stages.yaml"
fi
echo "$out"
