"""Read an OVMS ``config.json``: which graphs to serve and where their files are.

- ``mediapipe_config_list`` entries: ``name`` (required), ``base_path`` (default
  ``<config dir>/<name>``; relative to the config's directory), ``graph_path`` (default
  ``<base_path>/graph.pbtxt``; relative to base_path), ``subconfig`` (relative to base_path).
- ``model_config_list`` entries ``{"config": {...}}`` are graphs too when they give a
  ``graph_path`` or their base_path holds a ``graph.pbtxt`` (newer OVMS).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ovserve.errors import GraphConfigError

GRAPH_FILE = "graph.pbtxt"


@dataclass(frozen=True)
class GraphEntry:
    """One servable graph as the config describes it."""

    name: str
    base_path: Path
    graph_path: Path
    subconfig: Path | None = None


def _entry(raw: Any, where: str, config_dir: Path, problems: list[str]) -> GraphEntry | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: expected an object, got {type(raw).__name__}")
        return None
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        problems.append(f"{where}: 'name' is required and must be a non-empty string")
        return None
    for key in ("base_path", "graph_path", "subconfig"):
        if key in raw and not isinstance(raw[key], str):
            problems.append(f"{where} ({name}): '{key}' must be a string")
            return None
    base = Path(raw.get("base_path") or name)
    base = (base if base.is_absolute() else config_dir / base).resolve()
    graph = Path(raw.get("graph_path") or GRAPH_FILE)
    graph = graph if graph.is_absolute() else base / graph
    sub = raw.get("subconfig")
    subconfig = None if not sub else (Path(sub) if Path(sub).is_absolute() else base / sub)
    return GraphEntry(name=name, base_path=base, graph_path=graph, subconfig=subconfig)


def load_server_config(path: Path) -> list[GraphEntry]:
    """Parse ``path``; raise ``GraphConfigError`` listing every problem found."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise GraphConfigError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise GraphConfigError(
            f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}"
        ) from exc
    if not isinstance(data, dict):
        raise GraphConfigError(f"{path}: the top level must be a JSON object")
    config_dir = path.resolve().parent
    problems: list[str] = []
    entries: list[GraphEntry] = []
    for key in ("mediapipe_config_list", "model_config_list"):
        if key in data and not isinstance(data[key], list):
            problems.append(f"{path}: '{key}' must be a list")
    for i, raw in enumerate(data.get("mediapipe_config_list") or []):
        entry = _entry(raw, f"mediapipe_config_list[{i}]", config_dir, problems)
        if entry is not None:
            entries.append(entry)
    for i, raw in enumerate(data.get("model_config_list") or []):
        where = f"model_config_list[{i}]"
        inner = raw.get("config") if isinstance(raw, dict) else None
        if not isinstance(inner, dict):
            problems.append(f"{where}: expected {{\"config\": {{...}}}}")
            continue
        entry = _entry(inner, where, config_dir, problems)
        if entry is None:
            continue
        if "graph_path" in inner or entry.graph_path.is_file():
            entries.append(entry)
        else:
            problems.append(
                f"{where} ({entry.name}): a plain OpenVINO model (no {GRAPH_FILE} in "
                f"{entry.base_path}); ovserve serves graphs only"
            )
    seen: set[str] = set()
    for entry in entries:
        if entry.name in seen:
            problems.append(f"servable name {entry.name!r} is used twice")
        seen.add(entry.name)
    if not entries and not problems:
        problems.append(f"{path}: no graphs in mediapipe_config_list or model_config_list")
    if problems:
        raise GraphConfigError(
            f"config {path} is invalid:\n  " + "\n  ".join(problems), problems
        )
    return entries


def single_graph_entry(model_path: Path, model_name: str) -> GraphEntry:
    """``--model_path DIR --model_name NAME``: serve ``DIR/graph.pbtxt`` without a config."""
    base = model_path.resolve()
    return GraphEntry(name=model_name, base_path=base, graph_path=base / GRAPH_FILE)
