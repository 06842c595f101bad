"""The rerank node (OVMS's ``RerankCalculatorOV``) in a graph on the built-in reranker: its
options as ``node_options`` or as OVMS's ``ext`` extension, validation naming the node and the
option, and what it answers (a score per document) and refuses (embedding requests, tensors)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ovserve.errors import GraphConfigError, InvalidInput
from ovserve.nodes import BUILTIN_CALCULATORS
from ovserve.protocol.embeddings import EmbeddingRequest
from ovserve.protocol.rerank import RerankRequest, RerankResult
from ovserve.protocol.tensor import bytes_tensor
from ovserve.serving.servable import Servable
from ovserve.serving.server_config import GraphEntry
from ovserve.toolchain.servable_graph import RERANK
from tests.conftest import RERANKER_DIR, engine_registry

#: The graph the toolchain writes into a reranker's folder, up to its options (each test gives
#: its own, in either of OVMS's two option forms).
HEADER = RERANK[RERANK.index("input_stream"):RERANK.index("  node_options")]
NODE_OPTIONS = """\
  node_options: {
    [type.googleapis.com / mediapipe.RerankCalculatorOVOptions]: { %s }
  }
}
"""
EXT = """\
  options { [mediapipe.RerankCalculatorOVOptions.ext] { %s } }
}
"""


def entry(folder: Path, options: str, form: str = NODE_OPTIONS) -> GraphEntry:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "graph.pbtxt"
    path.write_text(HEADER + form % options)
    return GraphEntry(name="reranker", base_path=folder, graph_path=path)


@pytest.mark.parametrize("form", [NODE_OPTIONS, EXT])
async def test_scores_through_the_graph(tmp_path: Path, form: str,
                                        reranker_model_dir: Path) -> None:
    servable = await Servable.load(
        entry(tmp_path, f'models_path: "{reranker_model_dir}" max_allowed_chunks: 3', form),
        BUILTIN_CALCULATORS, engines=engine_registry())
    try:
        out = await servable.infer({"input": RerankRequest("q", ["a", "b", "c"])})
        result = out["output"]
        assert isinstance(result, RerankResult) and len(result.scores) == 3
        with pytest.raises(InvalidInput, match="max_allowed_chunks"):
            await servable.infer({"input": RerankRequest("q", ["a"] * 4)})
        with pytest.raises(InvalidInput, match="is a rerank model") as wrong:
            await servable.infer({"input": EmbeddingRequest(["a"])})
        assert wrong.value.param == "model"
        with pytest.raises(InvalidInput, match="/v3/rerank"):
            await servable.infer({"input": bytes_tensor("input", ["a"])})
    finally:
        await servable.unload()


@pytest.mark.parametrize(("options", "message"), [
    ("", "RerankCalculatorOVOptions] with a models_path"),
    ('models_path: "nowhere"', "holds no openvino_model.xml (prepare it with "
                               "scripts/make_reranker.py)"),
    (f'models_path: "{RERANKER_DIR}" max_allowed_chunks: 0', "max_allowed_chunks must be"),
    (f'models_path: "{RERANKER_DIR}" plugin_config: "[1]"', "plugin_config"),
])
def test_validation_names_node_and_option(tmp_path: Path, options: str, message: str) -> None:
    with pytest.raises(GraphConfigError) as raised:
        Servable.build(entry(tmp_path, options), BUILTIN_CALCULATORS)
    assert "RerankExecutor" in str(raised.value) and message in str(raised.value)
