"""OVMS's other modes on ovserve's command line (issue 27): ``--task`` graphs for a local model
folder (as OVMS's graph export writes them), ``--configure``, ``--pull`` / ``--source_model``
with no model hub, ``--list_models``, ``--add_to_config``, ``--remove_from_config``, and
``--model_path`` on a plain model with the single-model flags."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import openai
import tritonclient.http as httpclient

from ovserve import cli
from ovserve.app import start
from ovserve.engine import EngineConfig, EngineRegistry
from ovserve.engine.fake import FakeEngine
from ovserve.graph.config import parse_graph_file
from ovserve.graph.validation import build_graph
from ovserve.graph_export import TaskRequest, export_graph
from ovserve.nodes import BUILTIN_CALCULATORS
from ovserve.serving.server_config import GraphEntry, load_server_config
from tests.engine.model_files import save, unary
from tests.ovms_server import launch
from tests.transport.server import free_port, write_config


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ovserve", *args], capture_output=True,
                          text=True, timeout=120, check=False, env={**os.environ, **(env or {})})


def llm_folder(root: Path) -> Path:
    """A Hugging Face-style LLM folder (its config.json says so) the fake engine serves."""
    folder = root / "TinyLlama"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    (folder / "openvino_model.xml").write_text("<net/>")
    return folder


def without_graph(model_dir: Path, folder: Path) -> Path:
    """``model_dir``'s files linked into ``folder``, its graph.pbtxt left out (as a model folder
    OVMS users bring has none)."""
    folder.mkdir()
    for item in model_dir.iterdir():
        if item.name != "graph.pbtxt":
            (folder / item.name).symlink_to(item)
    return folder


def graph_of(text: str, tmp_path: Path, base: Path) -> None:
    """The graph parses and validates with ovserve's own parser, as a loaded graph would."""
    path = tmp_path / "graph.pbtxt"
    path.write_text(text)
    build_graph(parse_graph_file(path), name="g", path=path, base_path=base,
                calculators=BUILTIN_CALCULATORS)


def test_text_generation_graph_is_ovms_graph_export(tmp_path: Path) -> None:
    folder = llm_folder(tmp_path)
    plain = export_graph(TaskRequest("text_generation", folder))
    assert plain.startswith("# File created with: ovserve ")
    assert "# OVMS_GRAPH_QUEUE_MAX_SIZE: AUTO" in plain
    for line in ('calculator: "HttpLLMCalculator"', "max_num_seqs:256,",
                 f'models_path: "{folder.resolve()}",', "enable_prefix_caching: true,",
                 "cache_size: 0,", 'input_side_packet: "LLM_NODE_EXECUTION_CONTEXTS:llm_ctx"'):
        assert line in plain, line
    assert "device:" not in plain and "plugin_config" not in plain
    graph_of(plain, tmp_path, folder)
    tuned = export_graph(TaskRequest(
        "text_generation", folder, device="GPU", plugin_config={"NUM_STREAMS": "1"},
        cache_dir="/cache", options={
            "max_num_seqs": 8, "enable_prefix_caching": False, "cache_size": 2,
            "pipeline_type": "LM_CB", "max_num_batched_tokens": 256, "tool_parser": "hermes3",
            "reasoning_parser": "qwen3", "enable_tool_guided_generation": True,
            "cache_interval_multiplier": 2, "dynamic_split_fuse": False,
            "kv_cache_precision": "u8", "max_prompt_len": 512}))
    for line in ("max_num_seqs:8,", 'device: "GPU",', "enable_prefix_caching: false,",
                 "cache_size: 2,", "pipeline_type: LM_CB,", "max_num_batched_tokens: 256,",
                 'tool_parser: "hermes3",', 'reasoning_parser: "qwen3",',
                 "enable_tool_guided_generation: true,", "cache_interval_multiplier: 2,",
                 "dynamic_split_fuse: false,",
                 """plugin_config: '{"NUM_STREAMS":"1","KV_CACHE_PRECISION":"u8","""
                 """"MAX_PROMPT_LEN":512,"CACHE_DIR":"/cache"}',"""):
        assert line in tuned, line
    graph_of(tuned, tmp_path, folder)


def test_embeddings_graph_is_ovms_graph_export(tmp_path: Path) -> None:
    folder = llm_folder(tmp_path)
    text = export_graph(TaskRequest("embeddings", folder, options={
        "normalize": False, "pooling": "MEAN", "num_streams": 2}))
    for line in ('calculator: "EmbeddingsCalculatorOV"', "normalize_embeddings: false,",
                 "truncate: false,", "pooling: MEAN,", """plugin_config: '{"NUM_STREAMS":"2"}'"""):
        assert line in text, line
    graph_of(text, tmp_path, folder)


def test_rerank_graph_is_ovms_graph_export(tmp_path: Path) -> None:
    folder = llm_folder(tmp_path)
    plain = export_graph(TaskRequest("rerank", folder))
    for line in ('calculator: "RerankCalculatorOV"', 'models_path: "',
                 "max_allowed_chunks: 10000,", """plugin_config: '{"NUM_STREAMS":"1"}'"""):
        assert line in plain, line
    graph_of(plain, tmp_path, folder)
    tuned = export_graph(TaskRequest("rerank", folder, device="CPU", options={
        "max_allowed_chunks": 50, "num_streams": 2}))
    for line in ("max_allowed_chunks: 50,", 'target_device: "CPU",',
                 """plugin_config: '{"NUM_STREAMS":"2"}'"""):
        assert line in tuned, line
    graph_of(tuned, tmp_path, folder)


def test_a_property_given_twice_and_bad_task_values_are_refused(tmp_path: Path) -> None:
    folder = llm_folder(tmp_path)
    for task, args, message in (
        ("text_generation", ["--kv_cache_precision", "u8", "--plugin_config",
                             '{"KV_CACHE_PRECISION": "u8"}'], "KV_CACHE_PRECISION is given twice"),
        ("embeddings", ["--pooling", "FIRST"], "--pooling must be one of CLS, LAST, MEAN"),
        ("text_generation", ["--pipeline_type", "FAST"], "--pipeline_type must be one of"),
        ("text_generation", ["--draft_source_model", "org/draft"], "no model hub here"),
        ("rerank", ["--max_allowed_chunks", "0"], "--max_allowed_chunks must be at least 1"),
        ("image_generation", [], "--task image_generation: ovserve has no"),
        ("speech2text", [], "--task speech2text: ovserve has no"),
    ):
        result = run("--model_path", str(folder), "--model_name", "m", "--task", task,
                     "--rest_port", str(free_port()), *args)
        assert result.returncode == 1, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_task_text_generation_serves_the_openai_api(tmp_path: Path) -> None:
    """--task text_generation --model_path DIR: OVMS's graph, its flags reaching the engine,
    /v3/chat/completions answering the openai SDK (a fake engine in the real server)."""
    folder = llm_folder(tmp_path)
    parser = cli.build_parser()
    argv = ["--model_path", str(folder), "--model_name", "tiny", "--task", "text_generation",
            "--max_num_seqs", "8", "--enable_prefix_caching", "false", "--cache_size", "2",
            "--rest_port", str(free_port()), "--host", "127.0.0.1"]
    args = parser.parse_args(argv)
    args.command_line, args.graph_task = argv, None
    entries, _ = cli.entries_from_args(parser, args)
    (entry,) = entries
    assert isinstance(entry, GraphEntry) and entry.base_path == folder.resolve()
    assert entry.graph_path.parent != folder  # kept out of the model folder, as OVMS does
    assert not (folder / "graph.pbtxt").exists()
    settings = cli.server_settings(parser, args, entries)
    made: list[EngineConfig] = []

    def factory(config: EngineConfig) -> FakeEngine:
        made.append(config)
        return FakeEngine("tiny")

    async def chat() -> str:
        running = await start(settings, EngineRegistry(factory, devices=settings.devices))
        try:
            async with openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{settings.rest_port}/v3",
                                          api_key="unused") as client:
                answer = await client.chat.completions.create(
                    model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=4)
                return answer.model
        finally:
            await running.stop()

    assert asyncio.run(chat()) == "tiny"
    (config,) = made
    assert (config.max_num_seqs, config.enable_prefix_caching, config.cache_size_gb) == (
        8, False, 2)


def test_task_is_inferred_for_a_model_folder_without_a_graph(tmp_path: Path) -> None:
    folder = llm_folder(tmp_path)
    parser = cli.build_parser()
    args = parser.parse_args(["--model_path", str(folder), "--model_name", "tiny"])
    (entry,), _ = cli.entries_from_args(parser, args)
    assert isinstance(entry, GraphEntry)
    assert 'calculator: "HttpLLMCalculator"' in entry.graph_path.read_text()
    (folder / "config.json").write_text(json.dumps({"architectures": ["Mystery"]}))
    result = run("--model_path", str(folder), "--model_name", "m", "--rest_port", "1")
    assert result.returncode == 2 and "give --task" in result.stderr


def test_task_embeddings_serves_a_real_model(embedding_model_dir: Path, tmp_path: Path) -> None:
    """The OVMS command line for an embeddings model, with the openai SDK on /v3; --cache_dir
    reaches OpenVINO."""
    folder = without_graph(embedding_model_dir, tmp_path / "minilm")
    cache = tmp_path / "cache"
    server = launch("--model_path", str(folder), "--model_name", "minilm", "--task",
                    "embeddings", "--pooling", "MEAN", "--num_streams", "1", "--host",
                    "127.0.0.1", "--cache_dir", str(cache))
    try:
        with openai.OpenAI(base_url=f"{server.rest_url}/v3", api_key="unused") as client:
            vectors = client.embeddings.create(model="minilm", input=["a", "b"]).data
        assert len(vectors) == 2 and len(vectors[0].embedding) == 384
        assert abs(float(np.linalg.norm(vectors[0].embedding)) - 1) < 1e-3  # normalized
    finally:
        assert server.terminate() == 0
    assert not (folder / "graph.pbtxt").exists()
    assert any(cache.iterdir())  # --cache_dir: OpenVINO's model cache (CACHE_DIR) was written


def test_task_rerank_serves_a_real_model(reranker_model_dir: Path, tmp_path: Path) -> None:
    """OVMS's command line for a rerank model (the task inferred from its config.json, as OVMS
    does; then given): Cohere's /v3/rerank answers with every document scored and sorted, and
    max_allowed_chunks holds."""
    folder = without_graph(reranker_model_dir, tmp_path / "reranker")
    for task in ([], ["--task", "rerank", "--max_allowed_chunks", "3"]):
        server = launch("--model_path", str(folder), "--model_name", "rr", "--host",
                        "127.0.0.1", *task)
        try:
            docs = ["The cat sat on the mat.", "Paris is the capital of France.", "Bananas."]
            reply = httpx.post(f"{server.rest_url}/v3/rerank", timeout=60, json={
                "model": "rr", "query": "What is the capital of France?", "documents": docs})
            assert reply.status_code == 200, reply.text
            results = reply.json()["results"]
            assert sorted(r["index"] for r in results) == [0, 1, 2]
            scores = [r["relevance_score"] for r in results]
            assert scores == sorted(scores, reverse=True)
            too_many = httpx.post(f"{server.rest_url}/v3/rerank", timeout=60, json={
                "model": "rr", "query": "q", "documents": ["a", "b", "c", "d"]})
            assert too_many.status_code == (400 if task else 200), too_many.text
        finally:
            assert server.terminate() == 0
    assert not (folder / "graph.pbtxt").exists()


def test_configure_writes_the_graph_into_the_folder(tmp_path: Path) -> None:
    folder = llm_folder(tmp_path)
    result = run("--configure", "--model_path", str(folder), "--task", "embeddings",
                 "--normalize", "false", "--max_num_seqs", "4")
    assert result.returncode == 0, result.stderr
    text = (folder / "graph.pbtxt").read_text()
    assert "normalize_embeddings: false," in text
    # an option of another task: one warning naming it
    assert result.stderr.count("--max_num_seqs is ignored: it is an option of --task "
                               "text_generation, not embeddings") == 1
    usage = run("--configure", "--task", "embeddings")
    assert usage.returncode == 2 and "--task needs --model_path" in usage.stderr
    usage = run("--configure")
    assert usage.returncode == 2 and "--configure requires --model_path" in usage.stderr
    usage = run("--config_path", str(tmp_path), "--task", "embeddings", "--rest_port", "1")
    assert usage.returncode == 2 and "--task needs --model_path" in usage.stderr


def test_pull_without_a_model_hub(tmp_path: Path) -> None:
    """--pull / --source_model download nothing: a clear error unless the folder is there;
    when it is, --pull writes its graph (as OVMS's pull does) and exits 0."""
    missing = run("--pull", "--source_model", "OpenVINO/Qwen3-8B-int4-ov",
                  "--model_repository_path", str(tmp_path), "--task", "text_generation")
    assert missing.returncode == 1
    assert "there is no model hub here" in missing.stderr
    assert str(tmp_path / "OpenVINO/Qwen3-8B-int4-ov") in missing.stderr
    folder = llm_folder(tmp_path / "OpenVINO")
    pulled = run("--pull", "--source_model", "OpenVINO/TinyLlama", "--model_repository_path",
                 str(tmp_path), "--max_num_seqs", "16")
    assert pulled.returncode == 0, pulled.stderr
    assert "max_num_seqs:16," in (folder / "graph.pbtxt").read_text()
    again = run("--pull", "--source_model", "OpenVINO/TinyLlama", "--model_repository_path",
                str(tmp_path), "--overwrite_models")
    assert again.returncode == 1 and "no model hub here" in again.stderr


def test_list_models(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "graph_one").mkdir(parents=True)
    (repo / "graph_one" / "graph.pbtxt").write_text("")
    save(unary("x", "y", [1], 1.0), repo / "plus" / "1")
    (repo / "org" / "onnx_model" / "2").mkdir(parents=True)
    (repo / "org" / "onnx_model" / "2" / "model.onnx").write_text("")
    (repo / "empty" / "1").mkdir(parents=True)  # a version folder without a model
    (repo / "zero" / "01").mkdir(parents=True)
    (repo / "zero" / "01" / "model.onnx").write_text("")
    result = run("--list_models", "--model_repository_path", str(repo))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["graph_one", "org/onnx_model", "plus"]
    from_env = run("--list_models", env={"OVMS_MODEL_REPOSITORY_PATH": str(repo)})
    assert from_env.stdout == result.stdout
    for args, message in ((["--list_models"], "--list_models needs --model_repository_path"),
                          (["--list_models", "--task", "embeddings"],
                           "--list_models cannot be used with"),
                          (["--list_models", "--add_to_config"], "cannot be used with")):
        usage = run(*args, env={"OVMS_MODEL_REPOSITORY_PATH": ""})
        assert usage.returncode == 2 and message in usage.stderr, (args, usage.stderr)


def test_add_to_and_remove_from_config(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    created = run("--add_to_config", "--config_path", str(config), "--model_name", "resnet",
                  "--model_path", "/models/resnet", "--shape", "(1,3,224,224)", "--nireq", "2",
                  "--model_version_policy", '{"latest": {"num_versions": 2}}',
                  "--target_device", "CPU", "--plugin_config", '{"NUM_STREAMS": "1"}',
                  "--batch_size", "4")
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == f"Config updated: {config}"
    assert json.loads(config.read_text()) == {"model_config_list": [{"config": {
        "name": "resnet", "base_path": "/models/resnet", "batch_size": "4",
        "shape": "(1,3,224,224)", "model_version_policy": {"latest": {"num_versions": 2}},
        "nireq": 2, "target_device": "CPU", "plugin_config": {"NUM_STREAMS": "1"}}}]}
    config.write_text(json.dumps({**json.loads(config.read_text()), "mediapipe_config_list": [
        {"name": "python_model"}]}))
    second = run("--add_to_config", "--config_path", str(tmp_path), "--model_name", "bert",
                 "--model_repository_path", "/repo")  # a folder: its config.json
    assert second.returncode == 0, second.stderr
    data = json.loads(config.read_text())
    assert data["model_config_list"][1] == {"config": {"name": "bert",
                                                       "base_path": "/repo/bert"}}
    for name in ("bert", "python_model"):
        twice = run("--add_to_config", "--config_path", str(config), "--model_name", name,
                    "--model_path", "/x")
        assert twice.returncode == 1 and f"a servable named {name!r} is already there" in \
            twice.stderr
    assert run("--remove_from_config", "--config_path", str(config), "--model_name",
               "resnet").returncode == 0
    assert run("--remove_from_config", "--config_path", str(config), "--model_name",
               "python_model").returncode == 0
    assert json.loads(config.read_text()) == {"model_config_list": [
        {"config": {"name": "bert", "base_path": "/repo/bert"}}], "mediapipe_config_list": []}
    gone = run("--remove_from_config", "--config_path", str(config), "--model_name", "resnet")
    assert gone.returncode == 1 and "no servable named 'resnet'" in gone.stderr
    usage = run("--remove_from_config", "--config_path", str(config), "--model_name", "bert",
                "--model_path", "/x")
    assert usage.returncode == 2 and "--model_path cannot be used with --remove_from_config" \
        in usage.stderr
    from_env = run("--remove_from_config", "--model_name", "bert",
                   env={"OVMS_MODEL_REPOSITORY_PATH": str(tmp_path)})
    assert from_env.returncode == 0 and json.loads(config.read_text())[
        "model_config_list"] == []


def test_model_path_on_a_plain_model_with_the_single_model_flags(tmp_path: Path) -> None:
    """OVMS's `--model_name resnet --model_path /models/resnet50`: version folders served as a
    plain model; --model_version_policy and --nireq act, --layout makes it fail naming it."""
    for number in (1, 2):
        save(unary("x", "y", [2], float(number)), tmp_path / "plus" / str(number))
    server = launch("--model_path", str(tmp_path / "plus"), "--model_name", "plus",
                    "--model_version_policy", '{"all": {}}', "--nireq", "2")
    try:
        client = httpclient.InferenceServerClient(server.rest_url.removeprefix("http://"))
        for version in ("1", "2"):
            tensor = httpclient.InferInput("x", [2], "FP32")
            tensor.set_data_from_numpy(np.array([1, 2], dtype=np.float32))
            result = client.infer("plus", [tensor], model_version=version)
            assert result.as_numpy("y").tolist() == [1 + int(version), 2 + int(version)]
    finally:
        assert server.terminate() == 0
    refused = launch("--model_path", str(tmp_path / "plus"), "--model_name", "plus",
                     "--layout", "NHWC")
    try:
        reply = httpx.get(f"{refused.rest_url}/v2/models/plus/ready")
        assert reply.status_code == 503
    finally:
        assert refused.terminate() == 0
    assert "layout" in refused.log


def test_config_path_may_be_a_folder(tmp_path: Path) -> None:
    assert load_server_config(write_config(tmp_path))
    server = launch("--config_path", str(tmp_path))
    try:
        assert httpx.get(f"{server.rest_url}/v2/models/echo/ready").status_code == 200
    finally:
        assert server.terminate() == 0
