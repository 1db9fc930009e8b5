# syntax=docker/dockerfile:1
# hubspot-token-operator image.
#   docker build -t hubspot-token-operator:0.1.0 .
# Both stages use the same pinned base (the venv's interpreter symlinks into it). For reproducible builds,
# CI may additionally pin the digest: python:3.11.14-slim-bookworm@sha256:<digest>.
# tests/unit/test_dockerfile.py checks the structure of this file and replays the install steps in a venv.

# ---- builder: build the wheel and install it with its dependencies into /opt/venv ------------------
FROM python:3.11.14-slim-bookworm AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# The venv gets no pip/setuptools of its own: the builder's pip installs into it (--python), so the
# runtime image carries neither.
RUN python -m venv --without-pip /opt/venv
# README*/LICENSE* are optional (globs may match nothing as long as pyproject.toml matches).
COPY pyproject.toml README* LICENSE* ./
COPY operator/ operator/
RUN pip wheel --no-deps -w /dist . \
 && pip --python /opt/venv/bin/python install /dist/*.whl \
 && /opt/venv/bin/hubspot-token-operator --version

# ---- runtime: only the venv on top of the slim base -------------------------------------------------
FROM python:3.11.14-slim-bookworm
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
