"""Which embedding model made a store's vectors: ``NAME@DIGEST``, the model folder's name (as
its ``ovserve_model.json`` records it) and the start of a SHA-256 of its OpenVINO model files.
Two folders with the same weights have one id; a fine-tuned model written over the stock
folder gets a new one, so the store knows to re-embed."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path

MODEL_FILES = ("openvino_model.xml", "openvino_model.bin")
DIGEST_CHARS = 12

_cache: dict[tuple[str, tuple[tuple[int, int], ...]], str] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class EmbeddingModelInfo:
    id: str  # NAME@DIGEST
    name: str
    source: str  # where the folder came from (ovserve_model.json's source), or ""

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "source": self.source}


def _record(models_path: Path) -> dict[str, object]:
    try:
        data = json.loads((models_path / "ovserve_model.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def weights_digest(models_path: Path) -> str:
    """SHA-256 (first characters) of the folder's model files, computed once per version of
    them (path, sizes and modification times) in this process."""
    files = [models_path / name for name in MODEL_FILES if (models_path / name).is_file()]
    stats = tuple((f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    key = (str(models_path.resolve()), stats)
    with _lock:
        if key in _cache:
            return _cache[key]
    digest = hashlib.sha256()
    for file in files:
        with open(file, "rb") as stream:
            while block := stream.read(1 << 20):
                digest.update(block)
    value = digest.hexdigest()[:DIGEST_CHARS]
    with _lock:
        _cache[key] = value
    return value


def embedding_model_info(models_path: Path) -> EmbeddingModelInfo:
    """The id, name and source of the embedding model in ``models_path``."""
    record = _record(models_path)
    name = str(record.get("name") or models_path.resolve().name)
    return EmbeddingModelInfo(f"{name}@{weights_digest(models_path)}", name,
                              str(record.get("source") or ""))
