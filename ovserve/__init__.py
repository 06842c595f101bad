"""ovserve: an LLM serving runtime on OpenVINO, shaped like OVMS MediaPipe graphs."""

__version__ = "0.1.0"
__all__ = ["__version__"]
