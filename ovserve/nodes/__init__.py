"""Built-in calculators. ``BUILTIN_CALCULATORS`` maps the names graphs use to their classes."""

from __future__ import annotations

from ovserve.graph.calculator import Calculator
from ovserve.nodes.embeddings import EmbeddingsCalculator
from ovserve.nodes.llm import LLMCalculator
from ovserve.nodes.openvino_inference import (
    OpenVINOInferenceCalculator,
    OpenVINOModelServerSessionCalculator,
    PyTensorOvTensorConverterCalculator,
)
from ovserve.nodes.python_executor import PythonExecutorCalculator
from ovserve.nodes.rerank import RerankCalculator
from ovserve.nodes.retriever import RetrieverCalculator

BUILTIN_CALCULATORS: dict[str, type[Calculator]] = {
    PythonExecutorCalculator.name: PythonExecutorCalculator,
    LLMCalculator.name: LLMCalculator,  # OVMS's name, HttpLLMCalculator
    "LLMCalculator": LLMCalculator,
    EmbeddingsCalculator.name: EmbeddingsCalculator,  # OVMS's name, EmbeddingsCalculatorOV
    RetrieverCalculator.name: RetrieverCalculator,
    RerankCalculator.name: RerankCalculator,  # OVMS's name, RerankCalculatorOV
    OpenVINOModelServerSessionCalculator.name: OpenVINOModelServerSessionCalculator,
    OpenVINOInferenceCalculator.name: OpenVINOInferenceCalculator,
    PyTensorOvTensorConverterCalculator.name: PyTensorOvTensorConverterCalculator,
}

__all__ = ["BUILTIN_CALCULATORS"]
