"""ovserve as Ray Serve replicas, for real: a local Ray instance, two replicas of the built-in
LLM behind Serve's HTTP proxy, the openai SDK and KServe REST through the proxy, then one
replica killed: requests keep being answered and Serve brings the replica back. Each replica's
own metrics are listed for Prometheus' service discovery and scraped one by one."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import REPO
from tests.transport.metrics_text import value
from tests.transport.server import free_port

MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def proxy(default_model_dir: Path) -> Iterator[str]:
    import ray
    from ray import serve

    from ovserve.ray_serve import ovserve_app

    port = free_port()
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        serve.run(ovserve_app(REPO / "graphs/llm/config.json", num_replicas=2,
                              ray_actor_options={"num_cpus": 1}),
                  name="ovserve", route_prefix="/")
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()


def complete(url: str, tokens: int = 4) -> int:
    with openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as client:
        reply = client.completions.create(model=MODEL, prompt="The Moon is",
                                          max_tokens=tokens, extra_body={"ignore_eos": True})
    assert reply.usage is not None
    return reply.usage.completion_tokens


def replicas() -> list[str]:
    """The names of the running replica actors (Serve names them SERVE_REPLICA::app#dep#id)."""
    import ray
    from ray import serve

    states: dict[Any, int] = dict(
        serve.status().applications["ovserve"].deployments["ovserve"].replica_states)
    running = sum(n for state, n in states.items() if str(state).endswith("RUNNING"))
    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
             if a["name"].startswith("SERVE_REPLICA::ovserve#ovserve#")]
    return names if running == len(names) else []


def test_openai_and_kserve_through_the_proxy(proxy: str) -> None:
    assert len(replicas()) == 2
    with openai.OpenAI(base_url=f"{proxy}/v1", api_key="unused") as client:
        assert MODEL in {m.id for m in client.models.list()}
        chunks = list(client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=6,
            stream=True, stream_options={"include_usage": True},
            extra_body={"ignore_eos": True}))
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6
    assert httpx.get(f"{proxy}/v2/models/{MODEL}/ready").status_code == 200
    assert [complete(proxy) for _ in range(6)] == [4] * 6


def scrape(target: str) -> str:
    return httpx.get(f"http://{target}/metrics", timeout=30).text


def served(texts: list[str], metric: str, **labels: str) -> float:
    return sum(value(text, metric, **labels) for text in texts)


def test_every_replica_is_a_scrape_target_of_its_own(proxy: str) -> None:
    """/metrics/targets (Prometheus' http_sd format, through the proxy) lists each running
    replica's own metrics address; scraping them all counts every request exactly once."""
    running = replicas()
    listed = httpx.get(f"{proxy}/metrics/targets").json()
    assert len(listed) == 2
    assert {f"SERVE_REPLICA::ovserve#ovserve#{t['labels']['ray_replica']}" for t in listed} \
        == set(running)
    assert all(t["labels"]["ray_deployment"] == "ovserve" for t in listed)
    addresses = [t["targets"][0] for t in listed]
    assert len(set(addresses)) == 2
    before = [scrape(a) for a in addresses]
    assert [complete(proxy, tokens=3) for _ in range(6)] == [3] * 6
    after = [scrape(a) for a in addresses]
    done = {"model_name": MODEL, "finished_reason": "length"}
    assert served(after, "vllm:request_success_total", **done) - \
        served(before, "vllm:request_success_total", **done) == 6
    assert served(after, "vllm:generation_tokens_total", model_name=MODEL) - \
        served(before, "vllm:generation_tokens_total", model_name=MODEL) == 18
    reply = httpx.get(f"http://{addresses[0]}/metrics",
                      headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert reply.headers["content-type"].startswith("application/openmetrics-text")
    assert reply.text.endswith("# EOF\n")
    assert httpx.get(f"http://{addresses[0]}/v1/models").status_code == 404


def test_a_killed_replica_is_replaced_while_requests_are_answered(proxy: str) -> None:
    import ray

    before = replicas()
    ray.kill(ray.get_actor(before[0], namespace="serve"), no_restart=True)
    answered = [complete(proxy) for _ in range(8)]  # the other replica answers meanwhile
    assert answered == [4] * 8
    deadline = time.monotonic() + 180
    while len(after := replicas()) < 2 or set(after) == set(before):
        assert time.monotonic() < deadline, f"no replacement replica: {after}"
        time.sleep(1)
    assert before[0] not in after
    assert [complete(proxy) for _ in range(4)] == [4] * 4
    # the scrape targets follow: the dead replica's gone, its replacement's listed
    listed = httpx.get(f"{proxy}/metrics/targets").json()
    assert {f"SERVE_REPLICA::ovserve#ovserve#{t['labels']['ray_replica']}" for t in listed} \
        == set(after)


def test_the_serve_config_example_builds() -> None:
    """examples/ray_serve.yaml's application builds (serve run would deploy it)."""
    import yaml  # type: ignore[import-untyped]
    from ray.serve import Application

    from ovserve.ray_serve import app_builder

    config = yaml.safe_load((REPO / "examples/ray_serve.yaml").read_text())
    (app,) = config["applications"]
    assert app["import_path"] == "ovserve.ray_serve:app_builder"
    assert isinstance(app_builder(app["args"]), Application)
    with pytest.raises(ValueError, match="config_path"):
        app_builder({})
