"""Read an OVMS ``config.json``: which graphs and models to serve and where their files are.

- ``mediapipe_config_list`` entries: ``name`` (required), ``base_path`` (default
  ``<config dir>/<name>``; relative to the config's directory), ``graph_path`` (default
  ``<base_path>/graph.pbtxt``; relative to base_path), ``subconfig`` (default
  ``<base_path>/subconfig.json`` when that file exists; relative to base_path).
- ``model_config_list`` entries ``{"config": {...}}`` are graphs when they give a
  ``graph_path`` or their base_path holds a ``graph.pbtxt`` (newer OVMS), else plain models
  (``ModelEntry``: version folders ``1/``, ``2/`` under base_path, or base_path a model file).
- A subconfig holds a ``model_config_list`` of plain models only; its relative base_paths
  resolve against the subconfig's directory (``load_subconfig``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ovserve.errors import GraphConfigError

GRAPH_FILE = "graph.pbtxt"
SUBCONFIG_FILE = "subconfig.json"
#: Plain-model keys ovserve honours (OVMS docs/parameters.md); any other key makes that model
#: fail to load with the key named (layout, mean, scale, color_format, precision, stateful...)
MODEL_KEYS = frozenset({"name", "base_path", "model_version_policy", "target_device",
                        "plugin_config", "nireq", "shape", "batch_size"})


@dataclass(frozen=True)
class GraphEntry:
    """One servable graph as the config describes it."""

    name: str
    base_path: Path
    graph_path: Path
    subconfig: Path | None = None


@dataclass(frozen=True)
class VersionPolicy:
    """OVMS's ``model_version_policy``: ``latest`` (the ``count`` highest versions),
    ``specific`` (``versions``) or ``all``. Default: the latest one."""

    kind: str = "latest"
    count: int = 1
    versions: tuple[int, ...] = ()

    def choose(self, found: list[int]) -> list[int]:
        """The versions to serve among those ``found`` on disk, ascending."""
        found = sorted(found)
        if self.kind == "all":
            return found
        if self.kind == "specific":
            return [v for v in found if v in self.versions]
        return found[-self.count:]


@dataclass(frozen=True)
class ModelEntry:
    """One plain model (OpenVINO IR, ONNX, ...) as a config describes it."""

    name: str
    base_path: Path
    policy: VersionPolicy = VersionPolicy()
    device: str = "CPU"
    plugin_config: tuple[tuple[str, Any], ...] = ()
    nireq: int = 0
    #: (input name, shape text) pairs; name "": the model's only input
    shape: tuple[tuple[str, str], ...] = ()
    batch_size: int | str | None = None
    #: keys given that ovserve cannot honour: the model fails to load naming them
    unsupported: tuple[str, ...] = ()
    #: the file that declared it (a config.json or a graph's subconfig.json)
    source: Path | None = None


ServableEntry = GraphEntry | ModelEntry


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
    subconfig = (Path(sub) if Path(sub).is_absolute() else base / sub) if sub else \
        _default_subconfig(base)
    return GraphEntry(name=name, base_path=base, graph_path=graph, subconfig=subconfig)


def _default_subconfig(base: Path) -> Path | None:
    """OVMS's default ``<base_path>/subconfig.json``; a missing one is no error."""
    path = base / SUBCONFIG_FILE
    return path if path.is_file() else None


def _json_value(value: Any, key: str, where: str, problems: list[str]) -> Any:
    """OVMS takes object-valued keys as JSON or as a string holding JSON."""
    if isinstance(value, str) and value.strip().startswith(("{", "[")):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            problems.append(f"{where}: '{key}' is not valid JSON: {exc.msg}")
            return None
    return value


def _int(value: Any, key: str, where: str, problems: list[str], *, allow_auto: bool = False
         ) -> int | str | None:
    if allow_auto and isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    problems.append(f"{where}: '{key}' must be a non-negative integer"
                    + (" or \"auto\"" if allow_auto else "") + f", got {value!r}")
    return None


def _policy(value: Any, where: str, problems: list[str]) -> VersionPolicy:
    value = _json_value(value, "model_version_policy", where, problems)
    if value is None:
        return VersionPolicy()
    wrong = (f"{where}: 'model_version_policy' must be one of {{\"latest\": "
             "{\"num_versions\": N}}, {\"specific\": {\"versions\": [...]}}, {\"all\": {}}")
    if not isinstance(value, dict) or len(value) != 1:
        problems.append(f"{wrong}, got {value!r}")
        return VersionPolicy()
    kind, body = next(iter(value.items()))
    if not isinstance(body, dict):
        problems.append(f"{wrong}, got {value!r}")
        return VersionPolicy()
    if kind == "all":
        return VersionPolicy("all")
    if kind == "latest":
        count = body.get("num_versions", 1)
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            problems.append(f"{where}: 'num_versions' must be a positive integer, got {count!r}")
            return VersionPolicy()
        return VersionPolicy("latest", count)
    if kind == "specific":
        versions = body.get("versions")
        if not isinstance(versions, list) or not versions or not all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in versions):
            problems.append(f"{where}: 'specific' needs 'versions', a list of positive "
                            f"integers, got {versions!r}")
            return VersionPolicy()
        return VersionPolicy("specific", versions=tuple(sorted(set(versions))))
    problems.append(f"{wrong}, got {value!r}")
    return VersionPolicy()


def _shape(value: Any, where: str, problems: list[str]) -> tuple[tuple[str, str], ...]:
    """OVMS's ``shape``: "auto", "(1,3,224,224)", [1,3,224,224], or input name -> either."""
    value = _json_value(value, "shape", where, problems)

    def text(item: Any) -> str | None:
        if isinstance(item, str) and item.strip():
            return item.strip()
        if isinstance(item, list) and all(isinstance(d, int) and not isinstance(d, bool)
                                          for d in item):
            return "(" + ",".join(map(str, item)) + ")"
        return None

    if isinstance(value, dict):
        pairs = []
        for name, item in value.items():
            shape = text(item)
            if shape is None:
                problems.append(f"{where}: shape of input {name!r} must be a shape like "
                                f"\"(1,3,224,224)\" or \"auto\", got {item!r}")
                continue
            pairs.append((str(name), shape))
        return tuple(pairs)
    shape = text(value)
    if shape is None:
        problems.append(f"{where}: 'shape' must be a shape like \"(1,3,224,224)\", \"auto\" "
                        f"or an object of them by input name, got {value!r}")
        return ()
    return (("", shape),)


def _model_entry(raw: dict[str, Any], where: str, config_dir: Path, source: Path,
                 problems: list[str]) -> ModelEntry | None:
    """A plain model's ``config`` object (its name already checked)."""
    name = raw["name"]
    where = f"{where} ({name})"
    count = len(problems)
    base = raw.get("base_path")
    if not isinstance(base, str) or not base:
        problems.append(f"{where}: 'base_path' (the model's folder) is required")
        return None
    base_path = Path(base)
    base_path = (base_path if base_path.is_absolute() else config_dir / base_path).resolve()
    policy = _policy(raw["model_version_policy"], where, problems) if \
        "model_version_policy" in raw else VersionPolicy()
    device = raw.get("target_device") or "CPU"
    if not isinstance(device, str):
        problems.append(f"{where}: 'target_device' must be a string")
    plugin = _json_value(raw.get("plugin_config") or {}, "plugin_config", where, problems)
    if not isinstance(plugin, dict):
        problems.append(f"{where}: 'plugin_config' must be an object of OpenVINO properties")
        plugin = {}
    nireq = _int(raw.get("nireq", 0), "nireq", where, problems)
    batch = None
    if raw.get("batch_size") not in (None, ""):
        batch = _int(raw["batch_size"], "batch_size", where, problems, allow_auto=True)
    shape = _shape(raw["shape"], where, problems) if raw.get("shape") not in (None, "") else ()
    if len(problems) > count:
        return None
    return ModelEntry(
        name=name, base_path=base_path, policy=policy, device=str(device),
        plugin_config=tuple(plugin.items()), nireq=int(nireq or 0), shape=shape,
        batch_size=batch, unsupported=tuple(sorted(k for k in raw if k not in MODEL_KEYS)),
        source=source)


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise GraphConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise GraphConfigError(
            f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}"
        ) from exc


def load_subconfig(path: Path) -> list[ModelEntry]:
    """A graph's ``subconfig.json``: the plain models its session nodes use (OVMS allows only
    ``model_config_list`` there); raise ``GraphConfigError`` listing every problem."""
    data = _read_json(path, "subconfig")
    if not isinstance(data, dict):
        raise GraphConfigError(f"{path}: the top level must be a JSON object")
    problems: list[str] = []
    entries: list[ModelEntry] = []
    other = [k for k in data if k != "model_config_list"]
    if other:
        problems.append(f"{path}: a subconfig holds only model_config_list, not "
                        f"{', '.join(map(repr, other))}")
    items = data.get("model_config_list") or []
    if not isinstance(items, list):
        problems.append(f"{path}: 'model_config_list' must be a list")
        items = []
    config_dir = path.resolve().parent
    for i, raw in enumerate(items):
        where = f"{path.name}: model_config_list[{i}]"
        inner = raw.get("config") if isinstance(raw, dict) else None
        if not isinstance(inner, dict):
            problems.append(f"{where}: expected {{\"config\": {{...}}}}")
            continue
        if not isinstance(inner.get("name"), str) or not inner["name"]:
            problems.append(f"{where}: 'name' is required and must be a non-empty string")
            continue
        entry = _model_entry(inner, where, config_dir, path, problems)
        if entry is not None:
            entries.append(entry)
    if problems:
        raise GraphConfigError(f"subconfig {path} is invalid:\n  " + "\n  ".join(problems),
                               problems)
    return entries


def load_server_config(path: Path) -> list[ServableEntry]:
    """Parse ``path``; raise ``GraphConfigError`` listing every problem found."""
    data = _read_json(path, "config")
    if not isinstance(data, dict):
        raise GraphConfigError(f"{path}: the top level must be a JSON object")
    config_dir = path.resolve().parent
    problems: list[str] = []
    entries: list[ServableEntry] = []
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
            model = _model_entry(inner, where, config_dir, path.resolve(), problems)
            if model is not None:
                entries.append(model)
    seen: set[str] = set()
    for item in entries:
        if item.name in seen:
            problems.append(f"servable name {item.name!r} is used twice")
        seen.add(item.name)
    if not entries and not problems:
        problems.append(f"{path}: nothing to serve in mediapipe_config_list or "
                        "model_config_list")
    if problems:
        raise GraphConfigError(
            f"config {path} is invalid:\n  " + "\n  ".join(problems), problems
        )
    return entries


def single_graph_entry(model_path: Path, model_name: str) -> GraphEntry:
    """``--model_path DIR --model_name NAME``: serve ``DIR/graph.pbtxt`` without a config."""
    base = model_path.resolve()
    return GraphEntry(name=model_name, base_path=base, graph_path=base / GRAPH_FILE,
                      subconfig=_default_subconfig(base))


def single_model_entry(model_path: Path, model_name: str,
                       options: dict[str, Any] | None = None) -> ModelEntry:
    """``--model_path DIR --model_name NAME`` on a plain model (version folders, or a model
    file): ``options`` are OVMS's single-model flags (``shape``, ``batch_size``, ``nireq``,
    ``model_version_policy``, ``layout`` ...) read as the config's keys are."""
    problems: list[str] = []
    raw = {**(options or {}), "name": model_name, "base_path": str(model_path.resolve())}
    entry = _model_entry(raw, "--model_path", Path.cwd(), model_path.resolve(), problems)
    if entry is None or problems:
        raise GraphConfigError(f"--model_path {model_path}: " + "; ".join(problems), problems)
    return entry
