"""The servables of a server: loaded from config entries, looked up by name, and brought in line
with a new config (``apply``: what a config reload calls).

Plain models load first (the config's, then each graph's subconfig models, which OVMS serves by
name too), then graphs, whose session nodes find those models in the engine registry.

``apply`` compares the entries and their files (``fingerprint``) with what is loaded: added
servables load; removed ones stop taking requests, finish those in flight (streams included)
and unload; changed ones load again beside the one serving, which keeps serving until the new
one has loaded, then finishes its own requests and unloads. The new one acquires its engines
before the old one releases them, so an engine whose options did not change is shared and
never restarts (the old one's ownership is renamed first: the new one acquires under the
servable's name). An engine whose options changed must restart: the old one then stops taking
requests, drains and unloads, and the new one loads after it. A new configuration of a
servable that does not load leaves the one serving as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ovserve.engine.registry import EngineRegistry
from ovserve.errors import (
    EngineConflict,
    GraphConfigError,
    OvserveError,
    ServableNotFound,
    ServableNotReady,
    Unsupported,
)
from ovserve.graph.calculator import Calculator
from ovserve.serving.fingerprint import Fingerprint, Fingerprints, model_versions
from ovserve.serving.model import ModelServable
from ovserve.serving.servable import Servable
from ovserve.serving.server_config import GraphEntry, ModelEntry, ServableEntry, load_subconfig

log = logging.getLogger(__name__)

AnyServable = Servable | ModelServable

# OVMS's version states and error codes (src/modelversionstatus.cpp), as /v1/config shows them
LOADING, AVAILABLE, UNLOADING, END = "LOADING", "AVAILABLE", "UNLOADING", "END"
OK, UNKNOWN, FAILED_PRECONDITION = "OK", "UNKNOWN", "FAILED_PRECONDITION"
GRAPH_VERSION = 1  # a graph has one version, as in OVMS


@dataclass
class ServableState:
    entry: ServableEntry
    servable: AnyServable | None = None
    error: str | None = None  # why it is not available (for the log: it may name files)
    error_id: str = ""  # what clients get instead, to find the reason in the log
    loading: bool = False
    #: the entry and its files at the last load attempt: a reload loads again when either differs
    attempt: tuple[ServableEntry, Fingerprint] | None = None
    #: why a reload's new version of it did not load (``servable`` goes on serving)
    reload_error: str | None = None
    #: a plain model's versions no longer served: UNLOADING while they drain, then END
    retired_versions: dict[int, str] = field(default_factory=dict)


@dataclass
class RetiredServable:
    """A servable removed from the config, as /v1/config reports it."""

    versions: list[int]
    state: str = UNLOADING  # requests in flight drain, then END


@dataclass
class ApplyResult:
    """What ``Registry.apply`` did: whether anything loaded or unloaded, and what failed."""

    changed: bool = False
    errors: list[str] = field(default_factory=list)


def _version(number: int, state: str, code: str) -> dict[str, Any]:
    return {"version": str(number), "state": state,
            "status": {"error_code": code, "error_message": code}}


class Registry:
    """Loads every servable independently: one that fails does not stop the others."""

    def __init__(self, calculator_types: Mapping[str, type[Calculator]],
                 engines: EngineRegistry | None = None) -> None:
        self.calculator_types = calculator_types
        self.engines = engines if engines is not None else EngineRegistry()
        self.states: dict[str, ServableState] = {}
        self.retired: dict[str, RetiredServable] = {}
        self.fingerprints = Fingerprints()
        #: the config reload the server runs (``serving.reload.ConfigReloader``), for its routes
        self.reloader: Any = None
        self._outgoing: dict[int, AnyServable] = {}  # retired, still finishing requests
        self._tasks: set[asyncio.Task[None]] = set()
        self._generations = itertools.count(1)
        self._lock = asyncio.Lock()  # one apply at a time

    async def load(self, entries: Iterable[ServableEntry]) -> None:
        await self.apply(entries)

    # -- bringing the servables in line with a config ----------------------------------------

    async def apply(self, entries: Iterable[ServableEntry], *, retry_failed: bool = False
                    ) -> ApplyResult:
        """Load what is new or changed, retire what is gone. ``retry_failed``: also load again
        what failed last time though nothing changed (OVMS's reload endpoint does)."""
        async with self._lock:
            return await self._apply(list(entries), retry_failed)

    async def _apply(self, given: list[ServableEntry], retry_failed: bool) -> ApplyResult:
        result = ApplyResult()
        wanted: dict[str, ServableEntry] = {}
        for entry in [e for e in given if isinstance(e, ModelEntry)] + [
                e for e in given if isinstance(e, GraphEntry)]:
            if entry.name in wanted:
                message = f"servable name {entry.name!r} is used twice"
                log.error("servable %s is not available: %s", entry.name, message)
                result.errors.append(message)
                continue
            wanted[entry.name] = entry
        subconfig_models: dict[str, list[str]] = {}
        problems: dict[str, OvserveError] = {}
        for graph in [e for e in wanted.values() if isinstance(e, GraphEntry)]:
            if graph.subconfig is None or not graph.subconfig.is_file():
                continue
            try:
                models = load_subconfig(graph.subconfig)
                taken = [m.name for m in models if m.name in wanted]
                if taken:
                    raise GraphConfigError(f"subconfig {graph.subconfig}: model name "
                                           f"{taken[0]!r} is already served; names must be "
                                           "unique")
            except GraphConfigError as exc:
                problems[graph.name] = exc
                continue
            subconfig_models[graph.name] = [m.name for m in models]
            wanted.update((m.name, m) for m in models)
        announced: set[str] = set()

        # graphs first: they use the models
        for name in sorted((n for n in self.states if n not in wanted),
                           key=lambda n: isinstance(self.states[n].entry, ModelEntry)):
            self._remove(name)
            result.changed = True

        replaced: set[str] = set()
        for entry in sorted(wanted.values(), key=lambda e: isinstance(e, GraphEntry)):
            state = self.states.get(entry.name)
            if state is not None and state.loading:
                continue  # restarting in the background (its engine options changed)
            attempt = (entry, self.fingerprints.of(entry))
            due = (state is None or state.attempt != attempt
                   or any(m in replaced for m in subconfig_models.get(entry.name, ()))
                   or (retry_failed and (state.servable is None
                                         or state.reload_error is not None)))
            if not due:
                continue
            result.changed = True
            owner = next((g for g, names in subconfig_models.items() if entry.name in names), "")
            if owner and owner not in announced and isinstance(entry, ModelEntry):
                announced.add(owner)
                log.info("graph %s: loading %d model(s) from subconfig %s", owner,
                         len(subconfig_models[owner]), entry.source)
            had = state is not None and state.servable is not None
            error = await self._bring_up(entry, attempt, problems.get(entry.name))
            if error is not None:
                result.errors.append(error)
            elif had:
                replaced.add(entry.name)
        return result

    async def _load_one(self, entry: ServableEntry) -> AnyServable:
        try:
            if isinstance(entry, ModelEntry):
                return await ModelServable.load(entry, self.engines)
            if entry.subconfig is not None and not entry.subconfig.is_file():
                log.warning("graph %s: subconfig %s does not exist; no models loaded from it",
                            entry.name, entry.subconfig)
            return await Servable.load(entry, self.calculator_types, engines=self.engines)
        except OvserveError:
            raise
        except Exception as exc:  # a handler's bug must not take the reload down
            log.exception("servable %s: loading failed", entry.name)
            raise GraphConfigError(f"servable {entry.name}: loading failed: {exc}") from exc

    async def _bring_up(self, entry: ServableEntry, attempt: tuple[ServableEntry, Fingerprint],
                        problem: OvserveError | None) -> str | None:
        """Load ``entry`` (in place of what serves under its name); the error, if it failed."""
        old = self.states.get(entry.name)
        if old is not None and old.servable is not None:
            return await self._replace(old, old.servable, entry, attempt, problem)
        state = ServableState(entry, loading=True, attempt=attempt)
        self.states[entry.name] = state
        self.retired.pop(entry.name, None)
        try:
            if problem is not None:
                raise problem
            state.servable = await self._load_one(entry)
        except OvserveError as exc:
            self._failed(state, exc)
            return f"servable {entry.name} (error id {state.error_id})"
        finally:
            state.loading = False
        return None

    async def _replace(self, old: ServableState, outgoing: AnyServable, entry: ServableEntry,
                       attempt: tuple[ServableEntry, Fingerprint], problem: OvserveError | None
                       ) -> str | None:
        name = entry.name
        if problem is not None:
            return self._keep(old, attempt, problem)
        retiring = f"{name}#{next(self._generations)}"
        self.engines.rename_owner(name, retiring)
        outgoing.owner = retiring
        try:
            incoming = await self._load_one(entry)
        except EngineConflict as exc:
            if retiring in exc.owners:  # its engine options changed: the engine restarts
                self._restart(entry, attempt, outgoing)
                return None
            self.engines.rename_owner(retiring, name)
            outgoing.owner = name
            return self._keep(old, attempt, exc)
        except OvserveError as exc:
            self.engines.rename_owner(retiring, name)
            outgoing.owner = name
            return self._keep(old, attempt, exc)
        state = ServableState(entry, incoming, attempt=attempt)
        if isinstance(incoming, ModelServable) and isinstance(outgoing, ModelServable):
            state.retired_versions = {v: s for v, s in old.retired_versions.items()
                                      if v not in incoming.versions}
            state.retired_versions.update((v, UNLOADING) for v in outgoing.versions
                                          if v not in incoming.versions)
        self.states[name] = state
        log.info("servable %s: reloaded; new requests go to the new one, the previous one "
                 "finishes its %d request(s) in flight and unloads", name,
                 outgoing.inflight.count)

        def ended() -> None:
            for version, status in state.retired_versions.items():
                if status == UNLOADING and isinstance(outgoing, ModelServable) and \
                        version in outgoing.versions:
                    state.retired_versions[version] = END

        self._retire(outgoing, incoming, ended)
        return None

    def _keep(self, old: ServableState, attempt: tuple[ServableEntry, Fingerprint],
              exc: OvserveError) -> str:
        """A new configuration of ``old`` did not load: the one loaded goes on serving."""
        old.attempt, old.reload_error = attempt, str(exc)
        error_id = uuid.uuid4().hex[:12]
        log.error("servable %s: its new configuration does not load, the loaded one goes on "
                  "serving (error id %s): %s", old.entry.name, error_id, exc)
        return f"servable {old.entry.name} (error id {error_id})"

    def _retire(self, outgoing: AnyServable, successor: Any,
                ended: Callable[[], None] | None = None) -> None:
        """``outgoing`` takes no new requests (they go to ``successor``, or are refused), and
        unloads once those in flight are done."""
        outgoing.inflight.retire(successor)
        self._outgoing[id(outgoing)] = outgoing
        self._spawn(self._drain(outgoing, ended))

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self, outgoing: AnyServable, ended: Callable[[], None] | None) -> None:
        await outgoing.inflight.drained()
        self._outgoing.pop(id(outgoing), None)
        try:
            await outgoing.unload()
        except Exception:
            log.exception("servable %s: unloading its previous version failed", outgoing.name)
        log.info("servable %s: previous version unloaded", outgoing.name)
        if ended is not None:
            ended()

    def _remove(self, name: str) -> None:
        state = self.states.pop(name)
        servable = state.servable
        versions = self._versions(state)
        if servable is None:
            self.retired[name] = RetiredServable(versions, END)
            log.info("servable %s: removed from the config", name)
            return
        record = self.retired[name] = RetiredServable(versions)
        log.info("servable %s: removed from the config; it finishes its %d request(s) in "
                 "flight and unloads", name, servable.inflight.count)
        self._retire(servable, None, lambda: setattr(record, "state", END))

    def _restart(self, entry: ServableEntry, attempt: tuple[ServableEntry, Fingerprint],
                 outgoing: AnyServable) -> None:
        name = entry.name
        state = self.states[name] = ServableState(entry, loading=True, attempt=attempt)
        log.info("servable %s: its engine options changed; the engine restarts once its %d "
                 "request(s) in flight are done", name, outgoing.inflight.count)
        outgoing.inflight.retire(None, lambda: ServableNotReady(
            f"servable {name!r} is loading again (a config reload changed its engine)"))
        self._outgoing[id(outgoing)] = outgoing

        async def restart() -> None:
            try:
                await self._drain(outgoing, None)
                async with self._lock:
                    if self.states.get(name) is not state:
                        return  # removed or changed again meanwhile
                    state.servable = await self._load_one(entry)
            except OvserveError as exc:
                self._failed(state, exc)
            finally:
                state.loading = False

        self._spawn(restart())

    def _failed(self, state: ServableState, exc: OvserveError) -> None:
        state.error, state.error_id = str(exc), uuid.uuid4().hex[:12]
        self.states.setdefault(state.entry.name, state)
        log.error("servable %s is not available (error id %s): %s", state.entry.name,
                  state.error_id, exc)

    # -- OVMS's status document (GET /v1/config) ---------------------------------------------

    @staticmethod
    def _versions(state: ServableState) -> list[int]:
        if isinstance(state.entry, GraphEntry):
            return [GRAPH_VERSION]
        if isinstance(state.servable, ModelServable):
            return sorted({*state.servable.versions, *state.retired_versions})
        found = model_versions(state.entry)
        if found and found[0] == "missing":
            return []
        if found and isinstance(found[0], tuple) and found[0][0] == "file":
            return [1]
        return state.entry.policy.choose([number for number, _ in found])

    def status(self) -> dict[str, Any]:
        """Each servable's versions with OVMS's state and error code (src/
        config_status_utils.cpp): AVAILABLE, LOADING (with FAILED_PRECONDITION for a graph
        that failed, UNKNOWN for a model), UNLOADING while a removed one drains, END."""
        doc: dict[str, Any] = {}
        for name, record in self.retired.items():
            doc[name] = [_version(v, record.state, OK) for v in record.versions]
        for name, state in self.states.items():
            versions = []
            for number in self._versions(state):
                if state.loading:
                    versions.append(_version(number, LOADING, OK))
                elif state.servable is None:
                    versions.append(_version(number, LOADING, FAILED_PRECONDITION if isinstance(
                        state.entry, GraphEntry) else UNKNOWN))
                elif number in state.retired_versions:
                    versions.append(_version(number, state.retired_versions[number], OK))
                else:
                    versions.append(_version(number, AVAILABLE, OK))
            doc[name] = versions
        return {name: {"model_version_status": doc[name]} for name in sorted(doc)}

    # -- lookups -----------------------------------------------------------------------------

    @staticmethod
    def _unavailable(name: str, state: ServableState) -> ServableNotReady:
        if state.loading:
            return ServableNotReady(f"servable {name!r} is loading")
        # the reason stays in the server's log: it may hold paths and file contents
        return ServableNotReady(f"servable {name!r} is not available (error id "
                                f"{state.error_id}: the server log has the reason)")

    def _not_found(self, name: str) -> ServableNotFound:
        return ServableNotFound(
            f"servable {name!r} not found (serving: {', '.join(self.states) or 'none'})")

    def kserve(self, name: str) -> AnyServable:
        """The graph or plain model ``name`` names (KServe v2 serves both)."""
        state = self.states.get(name)
        if state is None:
            raise self._not_found(name)
        if state.servable is None:
            raise self._unavailable(name, state)
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
            raise self._not_found(name)
        if state.servable is None:
            raise self._unavailable(name, state)
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
                        servable.owner)):
                return servable, name
        return self.get(name), None  # raises ServableNotFound

    def ready(self) -> bool:
        """Every configured servable is loaded and its engines can take requests: KServe v2's
        server readiness (all models ready), so a servable that failed to load keeps the
        server not ready while the others serve."""
        return (all(s.servable is not None for s in self.states.values())
                and self.engines.ready())

    async def unload(self) -> None:
        for task in list(self._tasks):  # drains and restarts: the server is going away
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        outgoing = list(self._outgoing.values())
        self._outgoing.clear()
        # graphs first: they use the models
        current = [s.servable for s in self.states.values() if s.servable is not None]
        for servable in sorted([*outgoing, *current],
                               key=lambda s: isinstance(s, ModelServable)):
            try:
                await servable.unload()
            except Exception:
                log.exception("servable %s: unloading failed", servable.name)
        for state in self.states.values():
            state.servable = None
        self.engines.close()
