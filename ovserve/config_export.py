"""OVMS's config management mode: ``--list_models``, ``--add_to_config`` and
``--remove_from_config`` (src/config_export_module and src/servables_config_manager_module at
7e4df0c), editing config.json in place without starting a server."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: the files that make a version folder a model, as OVMS's modelextensions.cpp lists them
MODEL_FILE_SETS = ((".xml", ".bin"), (".onnx",), (".pdmodel", ".pdiparams"), (".pb",),
                   (".tflite",))
#: the optional keys --add_to_config writes, in OVMS's order
OPTIONAL_KEYS = ("batch_size", "shape", "layout", "mean", "scale", "color_format", "precision",
                 "model_version_policy", "nireq", "target_device", "plugin_config")
#: keys OVMS writes as JSON when their text parses as JSON, else as a string
JSON_OR_STRING = frozenset({"shape", "layout", "model_version_policy", "plugin_config"})


class ConfigEditError(ValueError):
    """config.json cannot be changed as asked (the message says why)."""


def _is_version_dir(path: Path) -> bool:
    return path.is_dir() and path.name.isdigit() and not path.name.startswith("0")


def _has_model_files(folder: Path) -> bool:
    suffixes = {p.suffix for p in folder.iterdir() if p.is_file()}
    return any(all(s in suffixes for s in files) for files in MODEL_FILE_SETS)


def list_models(repository: Path) -> list[str]:
    """Servables under ``repository``, as OVMS's --list_models finds them: a folder with a
    graph.pbtxt is a graph, a folder with a numbered version folder holding model files is a
    model; other folders are searched below. Paths relative to ``repository``, sorted."""
    found: list[str] = []

    def walk(folder: Path) -> None:
        if (folder / "graph.pbtxt").is_file():
            found.append(folder.relative_to(repository).as_posix())
            return
        children = sorted(p for p in folder.iterdir() if p.is_dir())
        if any(_is_version_dir(c) and _has_model_files(c) for c in children):
            found.append(folder.relative_to(repository).as_posix())
            return
        for child in children:
            walk(child)

    if not repository.is_dir():
        raise ConfigEditError(f"--model_repository_path {repository}: not a folder")
    for child in sorted(p for p in repository.iterdir() if p.is_dir()):
        walk(child)
    return sorted(found)


def config_file(path: Path) -> Path:
    """``--config_path``: a file, or a folder holding config.json."""
    return path / "config.json" if path.is_dir() else path


def _json_or_string(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def model_config(name: str, base_path: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The ``config`` object --add_to_config writes: name, base_path, then the optional keys
    given (nireq 0 and empty values left out, as OVMS does)."""
    config: dict[str, Any] = {"name": name, "base_path": base_path}
    for key in OPTIONAL_KEYS:
        value = fields.get(key)
        if value is None or value == "" or (key == "nireq" and value == 0):
            continue
        if key == "nireq":
            config[key] = int(value)
        elif key in JSON_OR_STRING:
            config[key] = _json_or_string(str(value))
        else:
            config[key] = str(value)
    return config


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ConfigEditError(f"cannot read {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigEditError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}"
                              ) from None
    if not isinstance(data, dict):
        raise ConfigEditError(f"{path}: the top level must be a JSON object")
    for key in ("model_config_list", "mediapipe_config_list"):
        if key in data and not isinstance(data[key], list):
            raise ConfigEditError(f"{path}: '{key}' must be a list")
    return data


def _write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=4) + "\n")


def _names(data: dict[str, Any]) -> list[str]:
    names = [item["config"].get("name") for item in data.get("model_config_list", [])
             if isinstance(item, dict) and isinstance(item.get("config"), dict)]
    names += [item.get("name") for item in data.get("mediapipe_config_list", [])
              if isinstance(item, dict)]
    return [n for n in names if isinstance(n, str)]


def add_to_config(path: Path, name: str, base_path: str, fields: Mapping[str, Any]) -> None:
    """Add a ``model_config_list`` entry (the file is created when missing). A name already
    served (in either list) is refused, as OVMS refuses one in model_config_list."""
    config = model_config(name, base_path, fields)
    if not path.exists():
        _write(path, {"model_config_list": [{"config": config}]})
        return
    data = _read(path)
    if name in _names(data):
        raise ConfigEditError(f"{path}: a servable named {name!r} is already there")
    data.setdefault("model_config_list", []).append({"config": config})
    _write(path, data)


def remove_from_config(path: Path, name: str) -> None:
    """Remove the entry named ``name`` (model_config_list first, as OVMS, then
    mediapipe_config_list); a name not there is an error."""
    if not path.exists():
        raise ConfigEditError(f"{path}: no such config file")
    data = _read(path)
    models = data.get("model_config_list", [])
    for i, item in enumerate(models):
        if isinstance(item, dict) and isinstance(item.get("config"), dict) and \
                item["config"].get("name") == name:
            del models[i]
            _write(path, data)
            return
    graphs = data.get("mediapipe_config_list", [])
    for i, item in enumerate(graphs):
        if isinstance(item, dict) and item.get("name") == name:
            del graphs[i]
            _write(path, data)
            return
    raise ConfigEditError(f"{path}: no servable named {name!r}")
