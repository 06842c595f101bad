"""The servables of a server: loaded from config entries, looked up by name."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ovserve.engine.registry import EngineRegistry
from ovserve.errors import OvserveError, ServableNotFound, ServableNotReady
from ovserve.graph.calculator import Calculator
from ovserve.serving.servable import Servable
from ovserve.serving.server_config import GraphEntry

log = logging.getLogger(__name__)


@dataclass
class ServableState:
    entry: GraphEntry
    servable: Servable | None = None
    error: str | None = None  # why it is not available (for the log: it may name files)
    error_id: str = ""  # what clients get instead, to find the reason in the log


class Registry:
    """Loads every servable independently: one that fails does not stop the others."""

    def __init__(self, calculator_types: Mapping[str, type[Calculator]],
                 engines: EngineRegistry | None = None) -> None:
        self.calculator_types = calculator_types
        self.engines = engines if engines is not None else EngineRegistry()
        self.states: dict[str, ServableState] = {}

    async def load(self, entries: Iterable[GraphEntry]) -> None:
        for entry in entries:
            state = ServableState(entry)
            self.states[entry.name] = state
            try:
                state.servable = await Servable.load(entry, self.calculator_types,
                                                     engines=self.engines)
            except OvserveError as exc:
                state.error, state.error_id = str(exc), uuid.uuid4().hex[:12]
                log.error("servable %s is not available (error id %s): %s", entry.name,
                          state.error_id, exc)

    def get(self, name: str) -> Servable:
        state = self.states.get(name)
        if state is None:
            raise ServableNotFound(
                f"servable {name!r} not found (serving: {', '.join(self.states) or 'none'})"
            )
        if state.servable is None:
            # the reason stays in the server's log: it may hold paths and file contents
            raise ServableNotReady(f"servable {name!r} is not available (error id "
                                   f"{state.error_id}: the server log has the reason)")
        return state.servable

    def servables(self) -> list[Servable]:
        return [s.servable for s in self.states.values() if s.servable is not None]

    def resolve(self, name: str, *, llm: bool) -> tuple[Servable, str | None]:
        """The servable a model id names, and the LoRA adapter it names (None: the servable's
        own name). ``llm``: for generation requests (OpenAI), else for tensors (KServe)."""
        if name in self.states:
            return self.get(name), None
        for servable in self.servables():
            if (servable.generation_input is not None) == llm and any(
                    engine.find_adapter(name) for engine in servable.engines.engines(
                        servable.name)):
                return servable, name
        return self.get(name), None  # raises ServableNotFound

    def ready(self) -> bool:
        """Every configured servable is loaded and its engines can take requests: KServe v2's
        server readiness (all models ready), so a servable that failed to load keeps the
        server not ready while the others serve."""
        return (all(s.servable is not None for s in self.states.values())
                and self.engines.ready())

    async def unload(self) -> None:
        for state in self.states.values():
            if state.servable is not None:
                await state.servable.unload()
                state.servable = None
        self.engines.close()
