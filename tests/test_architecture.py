"""Layering: no module imports a layer above it; generated protos match their sources."""

from __future__ import annotations

import ast
import filecmp
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

# Higher layers first; a module may import its own layer and those after it.
LAYERS = ["transport", "serving", "graph", "nodes", "chat", "engine"]
# The calculator contract lives in graph; nodes implement it (graph never imports nodes).
ALLOWED = {("nodes", "graph")}
LEAVES = {"errors", "protocol"}  # importable from everywhere, import no other layer


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m.startswith("ovserve.")}


def layer_of(module: str) -> str:
    return module.split(".")[1]


def test_no_module_imports_a_layer_above_it() -> None:
    bad = []
    for path in (REPO / "ovserve").rglob("*.py"):
        if "proto" in path.parts:
            continue
        own = path.relative_to(REPO / "ovserve").parts[0].removesuffix(".py")
        for module in imports(path):
            other = layer_of(module)
            if own in LEAVES and other not in LEAVES:
                bad.append(f"{path}: leaf {own} imports {module}")
            if own in LAYERS and other in LAYERS and (own, other) not in ALLOWED and (
                LAYERS.index(other) < LAYERS.index(own)
            ):
                bad.append(f"{path}: {own} imports higher layer {module}")
    assert bad == []


def test_generated_protos_are_up_to_date(tmp_path: Path) -> None:
    protos = sorted((REPO / "ovserve/graph/proto").glob("*.proto"))
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{REPO}", f"--python_out={tmp_path}",
         f"--pyi_out={tmp_path}", *map(str, protos)], check=True,
    )
    for generated in (tmp_path / "ovserve/graph/proto").iterdir():
        committed = REPO / "ovserve/graph/proto" / generated.name
        assert filecmp.cmp(generated, committed, shallow=False), f"run `make protos`: {committed}"
