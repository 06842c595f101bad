"""ovserve as Ray Serve replicas, for real: a local Ray instance, two replicas of the built-in
LLM behind Serve's HTTP proxy, the openai SDK and KServe REST through the proxy, then one
replica killed: requests keep being answered and Serve brings the replica back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import REPO
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
