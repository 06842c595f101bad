# The two set-up commands: `make serve` and `make test`. Both are idempotent: the venv and the
# prepared model are reused until requirements/ or pyproject.toml change.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
DEFAULT_MODEL := smollm2-135m-instruct
MODEL_DIR := models/$(DEFAULT_MODEL)
EMBEDDING_MODEL := all-minilm-l6-v2
EMBEDDING_DIR := models/$(EMBEDDING_MODEL)
# the built-in reranker: a cross-encoder made here from the embedding model's checkpoint
RERANK_MODEL := minilm-l6-reranker
RERANK_DIR := models/$(RERANK_MODEL)
RERANK_STEPS ?= 0
INSTALLED := $(VENV)/.installed
# guidellm and superduper for the example tests, in a venv of their own
CLIENTS_VENV := .venv-clients
REQS := requirements/constraints.txt requirements/serve.txt requirements/export.txt requirements/ray.txt \
        requirements/export-nodeps.txt requirements/dev.txt pyproject.toml setup.py \
        ovserve/protocol/_buffer.c

.PHONY: serve test test-kernels check install model protos bench clean-venv browser prometheus docker image \
        namespaces

# python_model (the seed streaming servable: both seed clients and curl work) and the OpenAI API
# on the built-in model as smollm2-135m-instruct, sharing one engine. Both ports are passed: as in
# OVMS, gRPC listens only with --port and REST only with --rest_port.
SERVE_CONFIG ?= servables/config.json
GRPC_PORT ?= 9000
REST_PORT ?= 8000

# LoRA adapters, NIM-style: one folder per adapter in $(LORA_DIR), the folder name is the model
# id. `make serve` trains `parity` (about 2 minutes, once) on a task a script generates.
LORA_DIR ?= adapters
TASK_DIR := data/parity

serve: $(MODEL_DIR)/ovserve_model.json $(EMBEDDING_DIR)/ovserve_model.json \
       $(RERANK_DIR)/ovserve_model.json $(LORA_DIR)/parity/adapter_config.json
	$(BIN)/python scripts/ingest.py  # the project's docs into the RAG store (only what changed)
	@echo "Serving $(SERVE_CONFIG) on the model in $(MODEL_DIR) with the LoRA adapters in $(LORA_DIR): gRPC :$(GRPC_PORT), REST :$(REST_PORT), web page http://localhost:$(REST_PORT)/"
	$(BIN)/ovserve --config_path $(SERVE_CONFIG) --port $(GRPC_PORT) --rest_port $(REST_PORT) \
	    --lora_dir $(LORA_DIR)

$(TASK_DIR)/train.jsonl: | $(INSTALLED)
	$(BIN)/python scripts/make_task_data.py --task parity --output $(TASK_DIR)

$(LORA_DIR)/parity/adapter_config.json: $(TASK_DIR)/train.jsonl | $(MODEL_DIR)/ovserve_model.json
	$(BIN)/python scripts/finetune_lora.py --data $(TASK_DIR)/train.jsonl --lora_dir $(LORA_DIR) \
	    --name parity

test: $(MODEL_DIR)/ovserve_model.json $(EMBEDDING_DIR)/ovserve_model.json \
      $(RERANK_DIR)/ovserve_model.json check browser prometheus \
      docker namespaces $(CLIENTS_VENV)/.installed
	$(BIN)/pytest

# The model-dependent tests under other kernels and numerics (f32, bf16, oneDNN capped at AVX2)
# and with sampled generation defaults: no verdict may depend on them (scripts/test_kernels.sh;
# SETTINGS="f32 avx2" and ROUNDS=3 choose; about 10 minutes per setting here).
test-kernels: $(MODEL_DIR)/ovserve_model.json $(EMBEDDING_DIR)/ovserve_model.json \
              $(RERANK_DIR)/ovserve_model.json check browser namespaces \
              $(CLIENTS_VENV)/.installed
	bash scripts/test_kernels.sh

# The image test builds and runs the serving image: Debian's docker.io and debootstrap
# (installed when we are root) and a running daemon (started when none answers).
docker:
	bash deploy/docker/ensure_docker.sh

# The serving image (Dockerfile); BASE= another base image, TARGET=serve for one
# without models (mount them)
IMAGE ?= ovserve:latest
image: $(MODEL_DIR)/ovserve_model.json $(EMBEDDING_DIR)/ovserve_model.json \
       $(RERANK_DIR)/ovserve_model.json docker
	bash deploy/docker/build_image.sh --tag $(IMAGE) --target $(or $(TARGET),baked) \
	    $(if $(BASE),--base $(BASE))

# Third-party clients the example tests run (guidellm, superduper), in a venv of their own.
$(CLIENTS_VENV)/.installed: requirements/clients.txt
	test -x $(CLIENTS_VENV)/bin/python || $(PYTHON) -m venv $(CLIENTS_VENV)
	$(CLIENTS_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements/clients.txt
	touch $@

# The web page's test needs a Chromium: Debian's package (installed here when we are root).
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	        apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	    else echo "error: the web page's test needs chromium (sudo apt-get install chromium)"; \
	        exit 1; fi; }

# A live Prometheus scrapes a server with deploy/prometheus/prometheus.yml in the tests
# (tests/deploy/test_prometheus_live.py): Debian's package, about 100 MB.
prometheus:
	@command -v prometheus >/dev/null || { \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	        apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	            --no-install-recommends prometheus; \
	    else echo "error: the scrape test needs Prometheus (sudo apt-get install prometheus)"; \
	        exit 1; fi; }

# OVMS's demos run as their READMEs say (tests/examples/ovms_demos.py): their `docker run -v`
# mounts and fixed ports in a mount and network namespace of their own (util-linux, iproute2).
namespaces:
	@command -v unshare >/dev/null && command -v ip >/dev/null || { \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	        apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	            util-linux iproute2; \
	    else echo "error: OVMS's demo tests need unshare and ip (sudo apt-get install " \
	        "util-linux iproute2)"; exit 1; fi; }

check: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/mypy

install: $(INSTALLED)

model: $(MODEL_DIR)/ovserve_model.json $(EMBEDDING_DIR)/ovserve_model.json \
       $(RERANK_DIR)/ovserve_model.json

# torch is pinned and installed in the same pip run as everything else so pip takes the local
# CPU wheel; optimum-intel goes in with --no-deps because it declares torchvision (see
# requirements/export.txt). The constraints file pins every transitive dependency.
$(INSTALLED): $(REQS)
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (ovserve needs Python 3.11; set PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c requirements/constraints.txt \
	    -r requirements/export.txt -r requirements/serve.txt -r requirements/dev.txt \
	    -r requirements/ray.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -r requirements/export-nodeps.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@! $(BIN)/pip show --quiet torchvision 2>/dev/null || { echo "error: torchvision got installed; it breaks transformers here"; exit 1; }
	touch $@

$(MODEL_DIR)/ovserve_model.json: | $(INSTALLED)
	$(BIN)/python scripts/download_model.py --model $(DEFAULT_MODEL) --output $(MODEL_DIR)

$(EMBEDDING_DIR)/ovserve_model.json: | $(INSTALLED)
	$(BIN)/python scripts/download_model.py --model $(EMBEDDING_MODEL) --output $(EMBEDDING_DIR)

# untrained by default (random scores, about 20 s): RERANK_STEPS=150 trains it on pairs made from
# README.md and docs/ (about 8 minutes here), which is still no better than the embedding
# retrieval alone (README, "Reranking")
$(RERANK_DIR)/ovserve_model.json: | $(INSTALLED)
	$(BIN)/python scripts/make_reranker.py --output $(RERANK_DIR) --steps $(RERANK_STEPS)

# Side-by-side benchmark: ovserve (OpenAI SSE, gRPC stream) vs the raw engine, llama.cpp's
# server and the seed's approach. llama-cpp-python gets a venv of its own (it compiles llama.cpp,
# about 5 minutes once) so its pins never touch ovserve's.
LLAMACPP_VENV := .venv-llamacpp
BENCH_ARGS ?=

$(LLAMACPP_VENV)/.installed: requirements/llamacpp.txt
	$(PYTHON) -m venv $(LLAMACPP_VENV)
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(LLAMACPP_VENV)/bin/pip install \
	    --disable-pip-version-check -r requirements/llamacpp.txt
	touch $@

XLLAMACPP_VENV := .venv-xllamacpp
$(XLLAMACPP_VENV)/.installed: requirements/xllamacpp.txt
	$(PYTHON) -m venv $(XLLAMACPP_VENV)
	$(XLLAMACPP_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements/xllamacpp.txt
	touch $@

bench: $(MODEL_DIR)/ovserve_model.json $(LLAMACPP_VENV)/.installed $(XLLAMACPP_VENV)/.installed
	$(BIN)/pip install --quiet --disable-pip-version-check -c requirements/constraints.txt \
	    -r requirements/bench.txt
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

# The graph .proto subset -> Python (the generated files are committed).
protos: $(INSTALLED)
	$(BIN)/python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. ovserve/graph/proto/*.proto

clean-venv:
	rm -rf $(VENV) $(CLIENTS_VENV)
