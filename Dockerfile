# First draft: one image with the toolchain and the built-in model prepared at build time.
# The serving-only image (no torch/transformers, ~300 MB of Python packages) comes with the server.
FROM python:3.11-slim

RUN apt-get update && apt-get install -y --no-install-recommends make && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/ovserve
COPY requirements/ requirements/
COPY pyproject.toml README.md Makefile ./
COPY ovserve/ ovserve/
COPY scripts/ scripts/
RUN make install PYTHON=python3.11
RUN make model
ENV PATH=/opt/ovserve/.venv/bin:$PATH
EXPOSE 9000 8000
CMD ["make", "serve"]
