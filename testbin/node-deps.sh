#!/usr/bin/env bash
# Installs what the real node needs from Debian packages when it is missing (`make test` and .ci/run call
# this): containerd + runc (its CRI), podman (builds the operator image from the Dockerfile), mmdebstrap (the
# image's Debian base: no registry here), nsenter (util-linux) and the CNI plugins. A no-op when all are
# present. (Also lua5.4, for the Argo CD health check test.) Needs root and apt-get; otherwise it says what to install and fails.
set -euo pipefail
need=()
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
command -v podman >/dev/null || need+=(podman)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v nsenter >/dev/null || need+=(util-linux)
[ -x /usr/lib/cni/loopback ] || need+=(containernetworking-plugins)
command -v lua5.4 >/dev/null || need+=(lua5.4)  # not the node's: runs docs/interop.md's Argo CD health Lua
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "the real-node tests need: ${need[*]} (Debian packages) and root; install them, e.g." >&2
  echo "  sudo apt-get install --no-install-recommends ${need[*]}" >&2
  exit 1
fi
echo "[node-deps] apt-get install ${need[*]}" >&2
apt-get update -q >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >&2
