# ovserve's serving image: the serving stack only (openvino, openvino-genai, FastAPI, grpcio,
# chromadb; no torch, no transformers), a non-root user, the built-in graphs and servables.
#
#   deploy/docker/build_image.sh                 # wheels on the host, then this build offline
#   docker run --network host ovserve:latest     # serves /opt/ovserve/servables/config.json
#   docker run -p 9000:9000 -v $PWD/servable_unary:/workspace -v $PWD/model:/model \
#       ovserve:latest --config_path /workspace/config.json --port 9000   # OVMS's demo line
#
# Targets: `serve` (models mounted: -v $PWD/models:/opt/ovserve/models, or OVMS's layout
# -v $PWD/model:/model with --model_path /model --model_name NAME) and `baked` (the default:
# serve + the models the host's toolchain prepared, copied in).
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS python
# python:3.11-slim has Python 3.11; a bare Debian 12 base gets Debian's
RUN if ! command -v python3.11 >/dev/null; then \
        apt-get update && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
        ca-certificates && rm -rf /var/lib/apt/lists/*; fi

FROM python AS build
# build/wheels: every wheel the serving stack needs, made on the host by build_image.sh
# (pip wheel), so this stage needs no network; PIP_NO_INDEX=0 lets it reach an index instead.
ARG PIP_NO_INDEX=1
COPY build/wheels /wheels
COPY requirements/serve.txt requirements/constraints.txt /tmp/req/
RUN python3.11 -m venv /opt/venv && \
    PIP_NO_INDEX=${PIP_NO_INDEX} /opt/venv/bin/pip install --no-cache-dir \
        --disable-pip-version-check --find-links /wheels -c /tmp/req/constraints.txt \
        -r /tmp/req/serve.txt && \
    PIP_NO_INDEX=${PIP_NO_INDEX} /opt/venv/bin/pip install --no-cache-dir \
        --disable-pip-version-check --no-deps --find-links /wheels ovserve && \
    ! /opt/venv/bin/pip show --quiet torch 2>/dev/null

FROM python AS serve
RUN groupadd --gid 1000 ovserve && useradd --uid 1000 --gid 1000 --create-home \
        --home-dir /home/ovserve ovserve
COPY --from=build /opt/venv /opt/venv
WORKDIR /opt/ovserve
COPY --chown=ovserve:ovserve graphs/ graphs/
COPY --chown=ovserve:ovserve servables/ servables/
COPY --chown=ovserve:ovserve clients/ clients/
# models/ (mounted or baked), data/ (the RAG store), adapters/ (LoRA): writable by ovserve
RUN mkdir -p models data adapters /model /workspace && \
    chown ovserve:ovserve models data adapters /model /workspace
# without --config_path or --model_path: the image's servables (seed demo, LLM, embeddings, RAG)
# (PYTHONPATH: the seed servables' shared llm_common, for their folders mounted at /workspace
# as OVMS's demo mounts them)
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 OVSERVE_REST_PORT=8000 \
    OVSERVE_CONFIG_PATH=/opt/ovserve/servables/config.json PYTHONPATH=/opt/ovserve/servables
USER ovserve
EXPOSE 9000 8000
# docker stop sends SIGTERM: ovserve turns unready, lets in-flight requests and streams finish
# (--grace_period, 30 s; give docker stop -t 35) and exits 0
STOPSIGNAL SIGTERM
# (OVSERVE_REST_PORT: the port the health check asks, when --rest_port is another)
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 CMD \
    python3.11 -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('OVSERVE_REST_PORT', '8000') + '/v2/health/ready', timeout=2)"
ENTRYPOINT ["ovserve"]
# LoRA adapters: add --lora_dir /opt/ovserve/adapters (mount them there)
CMD ["--port", "9000", "--rest_port", "8000"]

FROM serve AS baked
COPY --chown=ovserve:ovserve models/ models/
