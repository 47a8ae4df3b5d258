# syntax=docker/dockerfile:1.7
# imggate's own image: `docker build -t imggate .` (add Trivy: --build-arg TRIVY_VERSION=…
# --build-arg TRIVY_SHA256=…, the checksum of the release tarball from Trivy's checksums file).
#
# The base is pinned by digest, as imggate asks of every image it gates; renew the digest with
# your dependency bot (or `docker buildx imagetools inspect python:3.11-slim`).
ARG PYTHON_IMAGE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

# --- build: the wheel, installed into a virtual environment that the final stage copies ------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m venv /opt/imggate \
 && python -m pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/imggate/bin/pip install /wheels/imggate-*.whl \
 && /opt/imggate/bin/pip uninstall -y pip setuptools wheel

# --- trivy (optional): a checked release binary, or nothing ------------------------------------
FROM ${PYTHON_IMAGE} AS trivy
ARG TRIVY_VERSION=""
ARG TRIVY_SHA256=""
RUN mkdir -p /out && if [ -n "$TRIVY_VERSION" ]; then \
      test -n "$TRIVY_SHA256" || { echo "TRIVY_SHA256 is required with TRIVY_VERSION" >&2; exit 1; }; \
      python -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], "/tmp/trivy.tgz")' \
        "https://github.com/aquasecurity/trivy/releases/download/v${TRIVY_VERSION}/trivy_${TRIVY_VERSION}_Linux-64bit.tar.gz" \
      && echo "${TRIVY_SHA256}  /tmp/trivy.tgz" | sha256sum -c - \
      && tar -xzf /tmp/trivy.tgz -C /out trivy; \
    fi

# --- final: the interpreter, the venv and (maybe) trivy; no compiler, no pip, not root --------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="imggate" \
      org.opencontainers.image.description="A supply-chain security gate for container images" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 imggate \
 && useradd --system --uid 10001 --gid imggate --home-dir /home/imggate --create-home imggate \
 && python -m pip uninstall -y pip setuptools wheel 2>/dev/null || true
COPY --from=build /opt/imggate /opt/imggate
COPY --from=trivy /out/ /usr/local/bin/
ENV PATH=/opt/imggate/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /work
USER 10001:10001
ENTRYPOINT ["imggate"]
CMD ["--help"]
