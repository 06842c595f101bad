"""The servables of a server: loaded from config entries, looked up by name.

Plain models load first (the config's, then each graph's subconfig models, which OVMS serves by
name too), then graphs, whose session nodes find those models in the engine registry."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ovserve.engine.registry import EngineRegistry
from ovserve.errors import (
    GraphConfigError,
    OvserveError,
    ServableNotFound,
    ServableNotReady,
    Unsupported,
)
from ovserve.graph.calculator import Calculator
from ovserve.serving.model import ModelServable
from ovserve.serving.servable import Servable
from ovserve.serving.server_config import GraphEntry, ModelEntry, ServableEntry, load_subconfig

log = logging.getLogger(__name__)


@dataclass
class ServableState:
    entry: ServableEntry
    servable: Servable | ModelServable | None = None
    error: str | None = None  # why it is not available (for the log: it may name files)
    error_id: str = ""  # what clients get instead, to find the reason in the log


class Registry:
    """Loads every servable independently: one that fails does not stop the others."""

    def __init__(self, calculator_types: Mapping[str, type[Calculator]],
                 engines: EngineRegistry | None = None) -> None:
        self.calculator_types = calculator_types
        self.engines = engines if engines is not None else EngineRegistry()
        self.states: dict[str, ServableState] = {}

    async def load(self, entries: Iterable[ServableEntry]) -> None:
        entries = list(entries)
        for entry in entries:
            if isinstance(entry, ModelEntry):
                await self._load(entry)
        for entry in entries:
            if isinstance(entry, GraphEntry):
                await self._load_subconfig(entry)
        for entry in entries:
            if isinstance(entry, GraphEntry):
                await self._load(entry)

    async def _load_subconfig(self, graph: GraphEntry) -> None:
        """The models of a graph's subconfig, served by name as the config's are; a
        subconfig that does not parse makes its graph unavailable."""
        if graph.subconfig is None:
            return
        if not graph.subconfig.is_file():
            log.warning("graph %s: subconfig %s does not exist; no models loaded from it",
                        graph.name, graph.subconfig)
            return
        try:
            models = load_subconfig(graph.subconfig)
            taken = [m.name for m in models if m.name in self.states]
            if taken:
                raise GraphConfigError(f"subconfig {graph.subconfig}: model name {taken[0]!r} "
                                       "is already served; names must be unique")
        except GraphConfigError as exc:
            self._failed(ServableState(graph), exc)
            return
        log.info("graph %s: loading %d model(s) from subconfig %s", graph.name, len(models),
                 graph.subconfig)
        for model in models:
            await self._load(model)

    async def _load(self, entry: ServableEntry) -> None:
        if entry.name in self.states:
            if self.states[entry.name].error is None:
                self._failed(ServableState(entry), GraphConfigError(
                    f"servable name {entry.name!r} is used twice"))
            return
        state = ServableState(entry)
        self.states[entry.name] = state
        try:
            if isinstance(entry, ModelEntry):
                state.servable = await ModelServable.load(entry, self.engines)
            else:
                state.servable = await Servable.load(entry, self.calculator_types,
                                                     engines=self.engines)
        except OvserveError as exc:
            self._failed(state, exc)

    def _failed(self, state: ServableState, exc: OvserveError) -> None:
        state.error, state.error_id = str(exc), uuid.uuid4().hex[:12]
        self.states.setdefault(state.entry.name, state)
        log.error("servable %s is not available (error id %s): %s", state.entry.name,
                  state.error_id, exc)

    def kserve(self, name: str) -> Servable | ModelServable:
        """The graph or plain model ``name`` names (KServe v2 serves both)."""
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

    def model(self, name: str) -> ModelServable | None:
        """The plain model ``name``, if it is one (loaded or not: None for graphs)."""
        state = self.states.get(name)
        if state is None or not isinstance(state.entry, ModelEntry):
            return None
        servable = self.kserve(name)
        assert isinstance(servable, ModelServable)
        return servable

    def get(self, name: str) -> Servable:
        """The graph ``name`` (a plain model is refused: it has no graph to run)."""
        state = self.states.get(name)
        if state is None:
            raise ServableNotFound(
                f"servable {name!r} not found (serving: {', '.join(self.states) or 'none'})"
            )
        if state.servable is None:
            # the reason stays in the server's log: it may hold paths and file contents
            raise ServableNotReady(f"servable {name!r} is not available (error id "
                                   f"{state.error_id}: the server log has the reason)")
        if isinstance(state.servable, ModelServable):
            raise Unsupported(f"servable {name!r} is a plain model: it answers KServe v2 "
                              "requests (/v2/models/..., ModelInfer) only")
        return state.servable

    def servables(self) -> list[Servable]:
        """The loaded graphs (plain models are not among them)."""
        return [s.servable for s in self.states.values() if isinstance(s.servable, Servable)]

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
        # graphs first: they use the models
        for state in sorted(self.states.values(),
                            key=lambda s: isinstance(s.servable, ModelServable)):
            if state.servable is not None:
                await state.servable.unload()
                state.servable = None
        self.engines.close()
