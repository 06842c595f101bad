"""What both transports share about the server itself."""

from __future__ import annotations

from ovserve.serving.registry import Registry


class ServerState:
    """Readiness shared by both transports: false while shutting down, or while an engine
    cannot take requests (its process died and is being restarted)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.accepting = True

    @property
    def ready(self) -> bool:
        return self.accepting and self.registry.ready()
