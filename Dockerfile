# First draft (not built here: this machine has no Docker engine). One image with the toolchain,
# the built-in model prepared at build time, and `make serve` as the entry point.
# A serving-only image (no torch/transformers, ~300 MB of Python packages) is planned.
FROM python:3.11-slim

RUN apt-get update && apt-get install -y --no-install-recommends make gcc && \
    rm -rf /var/lib/apt/lists/*
WORKDIR /opt/ovserve
COPY . .
RUN make install PYTHON=python3.11 && make model PYTHON=python3.11
ENV PATH=/opt/ovserve/.venv/bin:$PATH
EXPOSE 9000 8000
CMD ["make", "serve", "PYTHON=python3.11"]
