"""Third-party clients as their users run them, against a live server on the real model:
superduper's OpenAI models (examples/superduper_client.py), guidellm's default benchmark run,
and the calls of NVIDIA's multi-LoRA NIM notebook (examples/nim_notebook.py).

guidellm and superduper run from ``.venv-clients`` (``make test`` builds it): their pins
(transformers, pydantic, torch) are not ovserve's. Nothing here depends on what the model
says: the checks are on structure and counts, lengths only bounded by ``max_tokens``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.engine.lora_files import write_adapter
from tests.transport.server import Server, start_server

CLIENTS = REPO / ".venv-clients" / "bin" / "python"
MODEL = "smollm2-135m-instruct"
ADAPTER = "nim-math"


@pytest.fixture(scope="module")
def server(default_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Server]:
    assert CLIENTS.exists(), "the clients' venv is missing: `make test` builds .venv-clients"
    adapters = tmp_path_factory.mktemp("adapters")
    write_adapter(adapters / ADAPTER, seed=3)
    server = start_server(REPO / "servables/config.json", "--lora_dir", str(adapters))
    yield server
    assert server.terminate() == 0


def run(args: list[str], cwd: Path | None = None, timeout: float = 300
        ) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    assert result.returncode == 0, f"{args[:3]} failed:\n{result.stdout}\n{result.stderr}"
    return result


def test_superduper_openai_models(server: Server) -> None:
    result = run([str(CLIENTS), str(REPO / "examples/superduper_client.py"),
                  "--base_url", f"{server.rest_url}/v1", "--max_tokens", "16"])
    lines = result.stdout.splitlines()
    for label in ("chat: ", "with context: "):  # each answer printed as a JSON string
        answer = next(line for line in lines if line.startswith(label))
        assert isinstance(json.loads(answer[len(label):]), str)
    assert "embedding: 384 dimensions; a batch of 3 vectors" in lines


def test_nim_notebook_calls(server: Server) -> None:
    result = run([sys.executable, str(REPO / "examples/nim_notebook.py"),
                  "--url", server.rest_url, "--max_tokens", "16"])
    answers = [json.loads(block) for block in _json_blocks(result.stdout)]
    listing, completions = answers[0], answers[1:]
    assert {m["id"] for m in listing["data"]} >= {MODEL, ADAPTER}
    assert [c["model"] for c in completions] == [MODEL, ADAPTER]
    for completion in completions:
        assert 1 <= completion["usage"]["completion_tokens"] <= 16
        assert completion["choices"][0]["finish_reason"] in ("stop", "length")
        assert isinstance(completion["choices"][0]["text"], str)


def _json_blocks(text: str) -> list[str]:
    """The pretty-printed JSON documents of the notebook's ``print(json.dumps(..., indent=4))``."""
    blocks, current = [], []
    for line in text.splitlines():
        if line == "{":
            current = [line]
        elif current:
            current.append(line)
            if line == "}":
                blocks.append("\n".join(current))
                current = []
    return blocks


def test_guidellm_default_run(server: Server, default_model_dir: Path, tmp_path: Path) -> None:
    """guidellm as its README runs it, with defaults but for the target, a few requests of
    synthetic data, and the tokenizer from the model folder (no hub here). It checks the
    backend (GET /health, /v1/models) first, then benchmarks; every request must succeed."""
    report = tmp_path / "benchmarks.json"
    run([str(CLIENTS.parent / "guidellm"), "run",
         "--backend", f"kind=openai_http,target={server.rest_url}",
         "--profile", "kind=synchronous",
         "--constraint", "kind=max_requests,count=4",
         "--data", "kind=synthetic_text,prompt_tokens=32,output_tokens=8",
         "--tokenizer", f"kind=hf_auto,model={default_model_dir}",
         "--output", f"kind=json,path={report}",
         "--disable-console-interactive"], cwd=tmp_path, timeout=600)
    benchmarks = json.loads(report.read_text())["benchmarks"]
    totals = benchmarks[0]["metrics"]["request_totals"]
    assert totals["successful"] == 4 and totals["errored"] == 0
