# syntax=docker/dockerfile:1
# hubspot-token-operator image.
#   docker build -t hubspot-token-operator:0.1.0 .        (or: make image; podman works the same)
# Both stages use the same base (the venv's interpreter symlinks into it): by default the pinned python slim
# image; BASE_IMAGE swaps it for any Debian-like image with python3 (>= 3.11) and python3-venv, which is how
# the tests build it with no registry (a Debian base from mmdebstrap: devcluster/images.py). For
# reproducible builds, CI may additionally pin the digest: python:3.11.14-slim-bookworm@sha256:<digest>.
# tests/unit/test_dockerfile.py checks the structure of this file and replays the install steps in a venv.
ARG BASE_IMAGE=python:3.11.14-slim-bookworm

# ---- builder: build the wheel and install it with its dependencies into /opt/venv ------------------
FROM ${BASE_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# /opt/build holds the pip that builds; /opt/venv gets no pip/setuptools of its own (the build pip installs
# into it with --python), so the runtime image carries neither.
RUN python3 -m venv /opt/build \
 && python3 -m venv --without-pip /opt/venv
# README*/LICENSE* are optional (globs may match nothing as long as pyproject.toml matches).
COPY pyproject.toml README* LICENSE* ./
COPY operator/ operator/
RUN /opt/build/bin/pip wheel --no-deps -w /dist . \
 && /opt/build/bin/pip --python /opt/venv/bin/python install /dist/*.whl \
 && /opt/venv/bin/hubspot-token-operator --version

# ---- runtime: only the venv on top of the slim base -------------------------------------------------
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="hubspot-token-operator" \
      org.opencontainers.image.description="Refreshes HubSpot OAuth tokens and rotates private-app tokens into Kubernetes Secrets" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# 65532 = "nonroot" by convention (distroless); numeric so runAsNonRoot can verify it without /etc/passwd.
USER 65532:65532
# 8080: Prometheus /metrics, 8081: /healthz
EXPOSE 8080 8081
ENTRYPOINT ["hubspot-token-operator", "run"]
