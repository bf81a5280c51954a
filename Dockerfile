# pytest-rollout with `rollout serve` as the entrypoint and the dual-memory gates under /srv/gates.
# Build: docker build -t pytest-rollout:0.1.0 .   (not built in CI; see docs/integrations.md)
# Your own gates: build FROM this image and COPY them over /srv/gates.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # A writable home for matplotlib's cache and pytest's temporary files as a non-root user.
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib

WORKDIR /srv
COPY pyproject.toml README.md ./
COPY pytest_rollout ./pytest_rollout
# serve: the HTTP server; report: the HTML report each look writes.
RUN pip install ".[serve,report]"
COPY gates ./gates
# Runs write their records and reports under the working directory: one the user owns.
RUN mkdir -p /var/lib/pytest-rollout && chown 65532:65532 /var/lib/pytest-rollout
WORKDIR /var/lib/pytest-rollout

# Numeric, so Kubernetes can enforce runAsNonRoot.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["rollout", "serve"]
CMD ["--gates", "/srv/gates", "--host", "0.0.0.0", "--port", "8080"]
