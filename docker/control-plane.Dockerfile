# syntax=docker/dockerfile:1
# The cicfleet control plane: `cicfleet serve` (gateway + fleet manager) and `cicfleet db upgrade`.
#
#   docker build -f docker/control-plane.Dockerfile -t cicfleet/control-plane .
#   docker build -f docker/control-plane.Dockerfile --build-arg EXTRAS=skypilot \
#       -t cicfleet/control-plane:skypilot .        # with the SkyPilot provider (~160 MB more)
#
# Build context: the repository root (see .dockerignore).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: a virtualenv with the wheel and its dependencies --------------------------------
FROM ${PYTHON_IMAGE} AS build
ARG EXTRAS=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/cicfleet
WORKDIR /src
COPY pyproject.toml README.md ./
COPY fleet ./fleet
COPY api ./api
COPY agent ./agent
COPY sql ./sql
RUN /opt/cicfleet/bin/pip install --upgrade pip \
 && /opt/cicfleet/bin/pip install ".${EXTRAS:+[$EXTRAS]}" \
 && /opt/cicfleet/bin/python -m compileall -q /opt/cicfleet/lib

# ---- runtime: the virtualenv, the task files, an unprivileged user ---------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="cicfleet control plane" \
      org.opencontainers.image.source="https://github.com/cicfleet/cicfleet" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 cicfleet \
 && useradd --system --uid 10001 --gid cicfleet --home-dir /var/lib/cicfleet --shell /usr/sbin/nologin cicfleet \
 && install -d -o cicfleet -g cicfleet -m 0750 /var/lib/cicfleet /var/lib/cicfleet/usage-journal
COPY --from=build /opt/cicfleet /opt/cicfleet
COPY tasks /opt/cicfleet/tasks
ENV PATH=/opt/cicfleet/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CIC_HOME=/var/lib/cicfleet \
    CIC_HOST=0.0.0.0 \
    CIC_PORT=8080 \
    CIC_SKYPILOT_TASKS_DIR=/opt/cicfleet/tasks
USER 10001:10001
WORKDIR /var/lib/cicfleet
EXPOSE 8080
# Liveness only (no dependency): /ready is what the reverse proxy and compose gate on.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os,urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('CIC_PORT','8080')}/health\", timeout=2)"]
# Exec form: cicfleet is PID 1 and gets SIGTERM itself (graceful shutdown, docs/deployment.md).
STOPSIGNAL SIGTERM
ENTRYPOINT ["cicfleet"]
CMD ["serve"]
