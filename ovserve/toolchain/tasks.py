"""Small labelled tasks whose data a script generates (no hub), for fine-tuning and evaluating
LoRA adapters: JSONL of ``{"prompt", "completion"}`` pairs, the shape NeMo and NIM use.

``parity``: "Is 4127 even or odd?" -> "odd". The built-in model does not answer in the
label's form (or gets it wrong); a LoRA adapter trained for two minutes does.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable
from pathlib import Path


def _parity(rng: random.Random) -> dict[str, str]:
    number = rng.randrange(10, 100000)
    return {"prompt": f"Is {number} even or odd?\nAnswer:",
            "completion": " even" if number % 2 == 0 else " odd"}


TASKS: dict[str, Callable[[random.Random], dict[str, str]]] = {"parity": _parity}


def generate(task: str, count: int, seed: int) -> list[dict[str, str]]:
    """``count`` distinct examples of ``task``."""
    rng, seen = random.Random(seed), set()
    rows: list[dict[str, str]] = []
    while len(rows) < count:
        row = TASKS[task](rng)
        if row["prompt"] not in seen:
            seen.add(row["prompt"])
            rows.append(row)
    return rows


def write_task(task: str, output: Path, train: int = 400, test: int = 200,
               seed: int = 0) -> tuple[Path, Path]:
    """Write ``train.jsonl`` and ``test.jsonl`` (no prompt in both) into ``output``."""
    rows = generate(task, train + test, seed)
    output.mkdir(parents=True, exist_ok=True)
    paths = output / "train.jsonl", output / "test.jsonl"
    for path, part in zip(paths, (rows[:train], rows[train:]), strict=True):
        path.write_text("".join(json.dumps(row) + "\n" for row in part))
    return paths


def read_jsonl(path: Path) -> list[dict[str, str]]:
    """Prompt/completion rows of a JSONL file; says which line is wrong."""
    return parse_rows(path.read_text().splitlines(), str(path))


def parse_rows(lines: Iterable[str], source: str) -> list[dict[str, str]]:
    """Prompt/completion rows from JSON lines (a file's, or a pipe's that a database query
    fills); errors name ``source`` and the line."""
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{source}:{number}: not JSON: {exc}") from exc
        if not (isinstance(row, dict) and isinstance(row.get("prompt"), str)
                and isinstance(row.get("completion"), str)):
            raise ValueError(f"{source}:{number}: needs string fields prompt and completion")
        rows.append(row)
    if not rows:
        raise ValueError(f"{source} has no examples")
    return rows
