"""The LoRA adapters one engine knows: from its folders (re-scanned), loaded at run time, their
weights in memory (least recently used dropped past ``max_cpu_loras``) and their recency, which
decides the slots of the engine (``max_loras``)."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

from ovserve.engine.adapters import AdapterSource, check_name, read_adapter, scan
from ovserve.engine.base import LoraOptions
from ovserve.engine.lora_graph import LoraWeights
from ovserve.errors import AdapterConflict, AdapterError, AdapterNotFound

log = logging.getLogger(__name__)


class AdapterCatalog:
    """Thread-safe. Adapters from folders come and go with the folders; adapters loaded at
    run time stay until unloaded."""

    def __init__(self, options: LoraOptions, shapes: Mapping[str, tuple[int, int]]) -> None:
        self.options = options
        self.shapes = dict(shapes)
        self._lock = threading.Lock()
        self._scanned: dict[str, AdapterSource] = {}
        self._loaded: dict[str, AdapterSource] = {}
        self._weights: OrderedDict[str, LoraWeights] = OrderedDict()
        # folder -> its mtime when it failed to load (logged once) or was unloaded
        self._rejected: dict[Path, float] = {}
        self._recency: OrderedDict[str, None] = OrderedDict()
        # name -> version of its weights: a new one when an adapter is (re)loaded or its files
        # change, so an engine slot holding older weights is replaced
        self._versions: dict[str, int] = {}
        self._mtimes: dict[str, float] = {}
        self._counter = itertools.count(1)
        self._scanned_at = 0.0
        for name, path in options.modules:
            try:
                self.load(name, path)
            except AdapterError as exc:  # the server serves everything else
                log.error("LoRA: --lora_modules %s=%s not loaded: %s", name, path, exc)

    def known(self) -> dict[str, AdapterSource]:
        with self._lock:
            return {**self._scanned, **self._loaded}

    def refresh(self) -> None:
        """Re-scan the adapter folders: add new valid adapters, forget removed ones."""
        found: dict[str, AdapterSource] = {}
        for folder in self.options.dirs:
            for source in scan(folder):
                if source.name in found:
                    log.warning("LoRA: adapter %r in %s ignored: %s has one of that name",
                                source.name, folder, found[source.name].path.parent)
                    continue
                found[source.name] = source
        with self._lock:
            previous = dict(self._scanned)
            loaded = set(self._loaded)
        added = {}
        for name, source in found.items():
            if name in loaded:
                continue
            old = previous.get(name)
            mtime = _mtime(source.path)
            if old is not None and old.path == source.path and self._mtimes.get(name) == mtime:
                added[name] = old
                continue
            if self._rejected.get(source.path) == mtime:
                continue
            try:
                weights = read_adapter(source, self.shapes, self.options.max_lora_rank)
            except AdapterError as exc:
                self._rejected[source.path] = mtime
                log.error("LoRA: skipping %s: %s", source.path, exc)
                continue
            self._rejected.pop(source.path, None)
            self._keep(name, weights, new_version=True)
            self._mtimes[name] = mtime
            added[name] = source
            log.info("LoRA: adapter %r from %s (rank %d, scale %g)", name, source.path,
                     weights.rank, weights.scale)
        with self._lock:
            for name in previous.keys() - added.keys():
                log.info("LoRA: adapter %r is gone from its folder", name)
                self._weights.pop(name, None)
            self._scanned = added
            self._scanned_at = time.monotonic()

    def refresh_if_due(self) -> None:
        due = self.options.refresh_seconds
        if due > 0 and time.monotonic() - self._scanned_at >= due:
            self.refresh()

    def load(self, name: str, path: Path) -> AdapterSource:
        """Add an adapter at run time (vLLM's /v1/load_lora_adapter)."""
        check_name(name)
        source = AdapterSource(name, path)
        if name in self.known():
            raise AdapterConflict(f"lora_name {name!r}: an adapter of that name is already "
                                  "loaded")
        if not path.is_dir():
            raise AdapterError(f"lora_path: no adapter folder at {path}")
        weights = read_adapter(source, self.shapes, self.options.max_lora_rank)
        with self._lock:
            if name in self._scanned or name in self._loaded:
                raise AdapterConflict(f"lora_name {name!r}: an adapter of that name is "
                                      "already loaded")
            self._loaded[name] = source
        self._keep(name, weights, new_version=True)
        log.info("LoRA: loaded adapter %r from %s (rank %d)", name, path, weights.rank)
        return source

    def unload(self, name: str) -> None:
        """Forget an adapter (vLLM's /v1/unload_lora_adapter); requests running on it finish."""
        with self._lock:
            source = self._loaded.pop(name, None)
            if source is None and (source := self._scanned.pop(name, None)) is not None:
                self._rejected[source.path] = _mtime(source.path)  # until its files change
            if source is None:
                raise AdapterNotFound(f"lora_name {name!r}: no adapter of that name is loaded")
            self._weights.pop(name, None)
            self._recency.pop(name, None)
        log.info("LoRA: unloaded adapter %r", name)

    def get(self, name: str) -> AdapterSource:
        """The adapter ``name``; a miss re-scans the folders once before it is a 404."""
        self.refresh_if_due()
        source = self.known().get(name)
        if source is None and self.options.dirs:
            self.refresh()
            source = self.known().get(name)
        if source is None:
            names = ", ".join(sorted(self.known())) or "none"
            raise AdapterNotFound(f"The model `{name}` does not exist (adapters: {names})")
        return source

    def weights(self, name: str) -> LoraWeights:
        source = self.get(name)
        with self._lock:
            cached = self._weights.get(name)
            if cached is not None:
                self._weights.move_to_end(name)
                return cached
        weights = read_adapter(source, self.shapes, self.options.max_lora_rank)
        self._keep(name, weights)
        return weights

    def version(self, name: str) -> int:
        """The version of adapter ``name``'s weights (0: unknown)."""
        with self._lock:
            return self._versions.get(name, 0)

    def _keep(self, name: str, weights: LoraWeights, new_version: bool = False) -> None:
        with self._lock:
            if new_version:
                self._versions[name] = next(self._counter)
            self._weights[name] = weights
            self._weights.move_to_end(name)
            while len(self._weights) > max(1, self.options.max_cpu_loras):
                self._weights.popitem(last=False)

    def touch(self, name: str) -> None:
        with self._lock:
            self._recency[name] = None
            self._recency.move_to_end(name)

    def slots_with(self, name: str, resident: list[str]) -> list[str]:
        """The slots after making ``name`` resident: the least recently used adapters (and
        the ones no longer known) give way past ``max_loras``."""
        known = self.known()
        with self._lock:
            rank = {n: i for i, n in enumerate(self._recency)}
        keep = [n for n in resident if n in known and n != name]
        keep.sort(key=lambda n: rank.get(n, -1), reverse=True)  # most recent first
        chosen = set(keep[:max(0, self.options.max_loras - 1)])
        return [n for n in resident if n in chosen] + [name]

    def initial_slots(self) -> list[str]:
        """Slots at start: the first ``max_loras`` adapters by name."""
        return sorted(self.known())[:self.options.max_loras]


def _mtime(path: Path) -> float:
    try:
        return max(p.stat().st_mtime for p in [path, *path.iterdir()])
    except OSError:
        return 0.0
