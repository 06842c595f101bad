"""A ``graph.pbtxt`` inside each prepared model folder, as OVMS's export_model.py writes one:
the folder is then a servable by itself (``ovserve --model_path models/<name> --model_name
<name>``), which is what a container or KServe's storage initializer mounts at /model or
/mnt/models. The graph's ``models_path: "./"`` is the folder itself."""

from __future__ import annotations

from pathlib import Path

GRAPH = "graph.pbtxt"

LLM = '''# Written by ovserve's model toolchain: this folder served as an LLM (OpenAI /v1, /v3).
input_stream: "HTTP_REQUEST_PAYLOAD:input"
output_stream: "HTTP_RESPONSE_PAYLOAD:output"
node: {
  name: "LLMExecutor"
  calculator: "HttpLLMCalculator"
  input_stream: "LOOPBACK:loopback"
  input_stream: "HTTP_REQUEST_PAYLOAD:input"
  input_side_packet: "LLM_NODE_RESOURCES:llm"
  output_stream: "LOOPBACK:loopback"
  output_stream: "HTTP_RESPONSE_PAYLOAD:output"
  input_stream_info: { tag_index: 'LOOPBACK:0', back_edge: true }
  node_options: {
    [type.googleapis.com / mediapipe.LLMCalculatorOptions]: {
      models_path: "./", device: "CPU", plugin_config: '{}', enable_prefix_caching: true,
      cache_size: 1, max_num_seqs: 256, max_num_batched_tokens: 2048, max_tokens_limit: 4096
    }
  }
  input_stream_handler {
    input_stream_handler: "SyncSetInputStreamHandler",
    options { [mediapipe.SyncSetInputStreamHandlerOptions.ext] {
      sync_set { tag_index: "LOOPBACK:0" } } }
  }
}
'''

EMBEDDING = '''# Written by ovserve's model toolchain: this folder served as an embedding model.
input_stream: "REQUEST_PAYLOAD:input"
output_stream: "RESPONSE_PAYLOAD:output"
node {
  name: "EmbeddingsExecutor"
  calculator: "EmbeddingsCalculatorOV"
  input_stream: "REQUEST_PAYLOAD:input"
  output_stream: "RESPONSE_PAYLOAD:output"
  node_options: {
    [type.googleapis.com / mediapipe.EmbeddingsCalculatorOVOptions]: {
      models_path: "./", normalize_embeddings: true, pooling: MEAN, target_device: "CPU"
    }
  }
}
'''

RERANK = '''# Written by ovserve's model toolchain: this folder served as a reranker (/v3/rerank).
input_stream: "REQUEST_PAYLOAD:input"
output_stream: "RESPONSE_PAYLOAD:output"
node {
  name: "RerankExecutor"
  calculator: "RerankCalculatorOV"
  input_side_packet: "RERANK_NODE_RESOURCES:rerank_servable"
  input_stream: "REQUEST_PAYLOAD:input"
  output_stream: "RESPONSE_PAYLOAD:output"
  node_options: {
    [type.googleapis.com / mediapipe.RerankCalculatorOVOptions]: {
      models_path: "./", max_allowed_chunks: 10000, target_device: "CPU"
    }
  }
}
'''

GRAPHS = {"llm": LLM, "embedding": EMBEDDING, "rerank": RERANK}


def write_graph(directory: Path, kind: str) -> Path | None:
    """Write the folder's graph unless it has one (a user's own is kept)."""
    text = GRAPHS.get(kind)
    path = directory / GRAPH
    if text is None or path.exists():
        return None
    path.write_text(text)
    return path
