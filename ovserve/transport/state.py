"""What both transports share about the server itself."""

from __future__ import annotations

EXTENSIONS = ["model_repository", "binary_tensor_data", "parameters", "streaming"]


class ServerState:
    """Readiness shared by both transports: false while shutting down."""

    def __init__(self) -> None:
        self.ready = True
