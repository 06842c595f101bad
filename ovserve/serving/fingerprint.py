"""What a servable's files look like now, for the config reload to see what changed.

A graph: its graph file, its subconfig and its Python handler files, by content (OVMS compares
the graph file's MD5). A plain model: the version folders under its base_path and the files in
each (OVMS polls the folders for new and removed versions); a version folder still being copied
looks different once the copy ends, so a load that failed on it is tried again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ovserve.errors import GraphConfigError
from ovserve.graph.config import node_options, parse_graph_file
from ovserve.graph.proto.python_executor_pb2 import PythonExecutorCalculatorOptions
from ovserve.serving.server_config import GraphEntry, ModelEntry, ServableEntry

Fingerprint = tuple[Any, ...]


def digest(path: Path | None) -> str | None:
    """The file's SHA-256, or None when there is no such file (or it cannot be read)."""
    if path is None:
        return None
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def handler_files(graph_path: Path, base_path: Path) -> tuple[Path, ...]:
    """The Python handler files a graph's nodes name (none when the graph does not parse)."""
    try:
        config = parse_graph_file(graph_path)
    except GraphConfigError:
        return ()
    found = []
    for node in config.node:
        options = node_options(node, PythonExecutorCalculatorOptions)
        if isinstance(options, PythonExecutorCalculatorOptions) and options.handler_path:
            path = Path(options.handler_path)
            found.append(path if path.is_absolute() else base_path / path)
    return tuple(found)


def _folder(folder: Path) -> tuple[tuple[str, int, int], ...]:
    try:
        return tuple(sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns)
                            for f in folder.iterdir() if f.is_file()))
    except OSError:
        return ()


def model_versions(entry: ModelEntry) -> Fingerprint:
    """The version folders (number, files) under a plain model's base_path."""
    base = entry.base_path
    try:
        if base.is_file():
            stat = base.stat()
            return (("file", str(base), stat.st_size, stat.st_mtime_ns),)
        if not base.is_dir():
            return ("missing",)
        return tuple(sorted((int(f.name), _folder(f)) for f in base.iterdir()
                            if f.is_dir() and f.name.isdigit() and int(f.name) > 0))
    except OSError:
        return ("missing",)


class Fingerprints:
    """Fingerprints of servables' files; a graph's handler files are read from the graph
    file again only when it changed."""

    def __init__(self) -> None:
        self._handlers: dict[tuple[Path, str | None], tuple[Path, ...]] = {}

    def of(self, entry: ServableEntry) -> Fingerprint:
        if isinstance(entry, ModelEntry):
            return ("model", model_versions(entry))
        return self._graph(entry)

    def _graph(self, entry: GraphEntry) -> Fingerprint:
        graph = digest(entry.graph_path)
        key = (entry.graph_path, graph)
        handlers = self._handlers.get(key)
        if handlers is None:
            handlers = self._handlers[key] = handler_files(entry.graph_path, entry.base_path)
        return ("graph", graph, digest(entry.subconfig),
                tuple((str(p), digest(p)) for p in handlers))
