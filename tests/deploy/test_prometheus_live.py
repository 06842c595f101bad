"""A real Prometheus (Debian's package, as `make test` installs it) scraping a server on loopback
(fake engine, both admission limits on) with deploy/prometheus/prometheus.yml, its target
pointed at the server: the target is up, PromQL over vLLM's and ovserve's names gives the
counts of the requests sent, and the client's X-Request-Id comes back from Prometheus' exemplar
API on the e2e latency histogram."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml  # type: ignore[import-untyped]

from tests.conftest import REPO
from tests.transport.fake_server import LLM, fake_server
from tests.transport.server import free_port

CONFIG = REPO / "deploy/prometheus/prometheus.yml"


@pytest.fixture
def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    assert found, "Prometheus is not installed: `make prometheus` (apt-get install prometheus)"
    return found


def start_prometheus(binary: str, root: Path, target: str) -> tuple[subprocess.Popen[bytes], str]:
    """Prometheus on the repository's config with its one target replaced by ``target``."""
    config = yaml.safe_load(CONFIG.read_text())
    (job,) = config["scrape_configs"]
    job["static_configs"] = [{"targets": [target]}]
    config["global"]["scrape_interval"] = "1s"  # the test's patience, not the config's
    (root / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    with (root / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(
            [binary, f"--config.file={root / 'prometheus.yml'}",
             f"--storage.tsdb.path={root / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
             "--enable-feature=exemplar-storage"], stdout=subprocess.DEVNULL, stderr=log)
    return process, f"http://127.0.0.1:{port}"


@pytest.fixture
def stopped() -> Iterator[list[subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        process.terminate()
        assert process.wait(30) == 0


async def until(check: Any, what: str, seconds: float = 60) -> Any:
    """``check()``'s first truthy answer (asked every 0.2 s)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not (answer := await check()):
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.2)
    return answer


async def test_prometheus_scrapes_counts_and_exemplars(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prometheus_binary: str,
        stopped: list[subprocess.Popen[bytes]]) -> None:
    settings = {"max_concurrent_requests": 8, "max_queued_requests": 16}
    async with fake_server(tmp_path, monkeypatch, settings) as server, \
            openai.AsyncOpenAI(base_url=server.rest_url + "/v1", api_key="none") as ai, \
            httpx.AsyncClient(timeout=30) as http:
        process, url = start_prometheus(prometheus_binary, tmp_path,
                                        f"127.0.0.1:{server.rest_port}")
        stopped.append(process)
        for n in range(3):
            reply = await ai.completions.create(
                model=LLM, prompt="a b", max_tokens=4, extra_body={"ignore_eos": True},
                extra_headers={"X-Request-Id": f"prom-{n}"})
            assert reply.usage is not None and reply.usage.completion_tokens == 4

        async def query(expr: str) -> float | None:
            try:
                got = (await http.get(f"{url}/api/v1/query", params={"query": expr})).json()
            except httpx.TransportError:
                return None  # not listening yet
            result = got["data"]["result"]
            return float(result[0]["value"][1]) if result else None

        async def finished() -> bool:
            return await query(f'sum(vllm:request_success_total{{model_name="{LLM}"}})') == 3

        await until(finished, "Prometheus never saw the 3 requests")
        assert await query(f'sum(vllm:generation_tokens_total{{model_name="{LLM}"}})') == 12
        assert await query('up{job="ovserve"}') == 1
        assert await query('ovserve_admission_limit{limit="max_queued_requests"}') == 16
        assert await query('sum(ovserve_requests_total{interface="openai"})') == 3

        async def exemplars() -> set[str]:
            got = (await http.get(f"{url}/api/v1/query_exemplars", params={
                "query": "vllm:e2e_request_latency_seconds_bucket",
                "start": "0", "end": "4000000000"})).json()
            return {e["labels"].get("request_id") for series in got["data"]
                    for e in series["exemplars"]}

        seen = await until(exemplars, "no exemplars stored")
        assert seen <= {"prom-0", "prom-1", "prom-2"} and "prom-2" in seen
