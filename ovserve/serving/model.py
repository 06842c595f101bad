"""``ModelServable``: a plain model's loaded versions, what KServe v2 serves by name and version.

    model = await ModelServable.load(entry, engines)
    version = model.version("2")                    # None / "": the latest loaded version
    outputs = await model.infer({"a": tensor}, version)   # name -> Tensor, the model's names
    await model.unload()

Each version is a ``ModelEngine`` from the engine registry (``engine.model``), also named
there so graphs' ``OpenVINOModelServerSessionCalculator`` nodes find it by servable name.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path

from ovserve.engine.model import MODEL_SUFFIXES, ModelEngine, TensorInfo, model_file
from ovserve.engine.registry import EngineRegistry
from ovserve.errors import GraphConfigError, OvserveError, ServableNotFound, Unsupported
from ovserve.protocol.tensor import Tensor
from ovserve.serving.inflight import InFlight
from ovserve.serving.server_config import ModelEntry

log = logging.getLogger(__name__)


def find_versions(entry: ModelEntry) -> dict[int, Path]:
    """The model file of each version the policy serves: version folders ``1/``, ``2/`` ...
    under base_path, or base_path itself a model file (version 1, as OVMS does)."""
    base = entry.base_path
    if base.is_file():
        if base.suffix not in MODEL_SUFFIXES:
            raise GraphConfigError(f"model {entry.name}: {base} is not a model file "
                                   f"({', '.join(MODEL_SUFFIXES)})")
        return {1: base}
    if not base.is_dir():
        raise GraphConfigError(f"model {entry.name}: base_path {base} does not exist")
    found: dict[int, Path] = {}
    for folder in base.iterdir():
        if folder.is_dir() and folder.name.isdigit() and int(folder.name) > 0:
            path = model_file(folder)
            if path is not None:
                found[int(folder.name)] = path
            else:
                log.warning("model %s: version folder %s holds no model file (%s); skipped",
                            entry.name, folder, ", ".join(MODEL_SUFFIXES))
    chosen = entry.policy.choose(list(found))
    if entry.policy.kind == "specific":
        missing = [v for v in entry.policy.versions if v not in found]
        if missing:
            log.warning("model %s: version(s) %s of its policy are not in %s", entry.name,
                        ", ".join(map(str, missing)), base)
    if not chosen:
        raise GraphConfigError(
            f"model {entry.name}: no version to serve in {base} (version folders 1/, 2/ ... "
            f"holding a model file; found {sorted(found) or 'none'}, policy "
            f"{entry.policy.kind})")
    return {v: found[v] for v in chosen}


class ModelServable:
    """A plain model: its versions, metadata and inference. Not a graph: it has no streams,
    side packets or OpenAI front end."""

    generation_input = None  # the OpenAI front ends look for these; a model has neither
    embedding_input = None

    def __init__(self, entry: ModelEntry, engines: EngineRegistry,
                 versions: dict[int, ModelEngine]) -> None:
        self.entry = entry
        self.engines = engines
        self.versions = dict(sorted(versions.items()))
        #: whose engines these are in the engine registry (see ``Servable.owner``)
        self.owner = entry.name
        self.inflight: InFlight[ModelServable] = InFlight(entry.name)

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def ready(self) -> bool:
        return all(engine.ready for engine in self.versions.values())

    @classmethod
    async def load(cls, entry: ModelEntry, engines: EngineRegistry) -> ModelServable:
        """Find the versions the policy serves and compile each (``OvserveError`` if any
        fails: a model is served whole or not at all)."""
        if entry.unsupported:
            raise Unsupported(f"model {entry.name}: ovserve does not support the key(s) "
                              f"{', '.join(map(repr, entry.unsupported))} (supported: name, "
                              "base_path, model_version_policy, target_device, plugin_config, "
                              "nireq, shape, batch_size)")
        paths = find_versions(entry)
        options = {"device": entry.device, "plugin_config": dict(entry.plugin_config),
                   "nireq": entry.nireq, "shape": entry.shape, "batch_size": entry.batch_size}
        versions: dict[int, ModelEngine] = {}
        try:
            for version, path in paths.items():
                versions[version] = await asyncio.to_thread(
                    engines.acquire_model, entry.name, path, **options)
        except OvserveError:
            engines.release(entry.name)
            raise
        engines.unname_model(entry.name)  # a reload's new generation: exactly its versions
        for version, engine in versions.items():
            engines.name_model(entry.name, version, engine)
        log.info("model %s: serving version(s) %s from %s%s", entry.name,
                 ", ".join(map(str, versions)), entry.base_path,
                 f" (declared in {entry.source})" if entry.source else "")
        return cls(entry, engines, versions)

    def version(self, version: str | int | None) -> tuple[int, ModelEngine]:
        """The version a request names (None or "": the latest); ``ServableNotFound`` for
        one that is not served, as KServe answers."""
        if version in (None, ""):
            number = max(self.versions)
        else:
            text = str(version)
            number = int(text) if text.isdigit() else -1
        engine = self.versions.get(number)
        if engine is None:
            raise ServableNotFound(f"model {self.name!r} has no version {version!r} "
                                   f"(versions: {', '.join(map(str, self.versions))})")
        return number, engine

    def inputs(self, version: str | None = None) -> list[TensorInfo]:
        return self.version(version)[1].inputs

    def outputs(self, version: str | None = None) -> list[TensorInfo]:
        return self.version(version)[1].outputs

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.outputs()]

    async def infer(self, inputs: Mapping[str, Tensor], version: str | None = None
                    ) -> dict[str, Tensor]:
        """Run one version on KServe tensors (checked: ``InvalidInput`` names the input);
        the outputs as tensors by the model's output names."""
        if self.inflight.retired:  # replaced by a config reload: its successor serves
            return await self.inflight.next().infer(inputs, version)
        _, engine = self.version(version)
        arrays = engine.check_inputs(inputs, self.name)
        with self.inflight.held():
            results = await engine.infer(arrays)
        return {info.name: Tensor(info.name, results[info.name], shape=results[info.name].shape,
                                  datatype=info.datatype) for info in engine.outputs}

    async def unload(self) -> None:
        self.engines.unname_model(self.name, self.versions)
        self.engines.release(self.owner)
