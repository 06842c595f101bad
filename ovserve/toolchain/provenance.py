"""``ovserve_model.json``: what a prepared model directory holds and where it came from."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

FILE_NAME = "ovserve_model.json"


def write(directory: Path, **fields: Any) -> None:
    import openvino

    record = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "openvino": openvino.__version__}
    record.update(fields)
    (directory / FILE_NAME).write_text(json.dumps(record, indent=2) + "\n")


def read(directory: Path) -> dict[str, Any]:
    """The record of ``directory``, or ``{}`` for a model prepared by something else."""
    path = directory / FILE_NAME
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    return data if isinstance(data, dict) else {}
