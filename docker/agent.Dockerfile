# syntax=docker/dockerfile:1
# The cicfleet node agent: runs beside vLLM on a GPU node, registers it with the control plane,
# heartbeats the engine's load, watches spot notices and drains on SIGTERM.
#
#   docker build -f docker/agent.Dockerfile -t cicfleet/agent .
#
# Configured by CIC_AGENT_* variables (CIC_AGENT_CONTROL_URL, CIC_AGENT_BOOTSTRAP_TOKEN,
# CIC_AGENT_CLUSTER, CIC_AGENT_MODEL, CIC_AGENT_ENGINE_URL, ...). vLLM itself is not in this
# image: it runs in its own container (or the node's task) and the agent reaches it over HTTP.
# With CIC_AGENT_GATE_PORT (8001) and the secret CIC_AGENT_ENGINE_KEY the agent is the node's
# only public door (agent/gate.py): publish 8001, keep vLLM's own port unpublished.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/cicfleet
WORKDIR /src
COPY pyproject.toml README.md ./
COPY fleet ./fleet
COPY api ./api
COPY agent ./agent
COPY sql ./sql
RUN /opt/cicfleet/bin/pip install --upgrade pip \
 && /opt/cicfleet/bin/pip install . \
 && /opt/cicfleet/bin/python -m compileall -q /opt/cicfleet/lib

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="cicfleet node agent" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 cicfleet \
 && useradd --system --uid 10001 --gid cicfleet --no-create-home --shell /usr/sbin/nologin cicfleet
COPY --from=build /opt/cicfleet /opt/cicfleet
ENV PATH=/opt/cicfleet/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
# Healthy while the engine it reports on answers: an agent beside a dead engine is useless.
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os,urllib.request; urllib.request.urlopen(os.environ.get('CIC_AGENT_ENGINE_URL','http://127.0.0.1:8000')+'/health', timeout=2)"]
EXPOSE 8001
STOPSIGNAL SIGTERM
ENTRYPOINT ["cicfleet"]
CMD ["agent"]
