"""Each prepared model folder carries a graph.pbtxt (as OVMS's export_model.py writes), so the
folder alone is a servable: what a container mounts at /model or KServe at /mnt/models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ovserve.toolchain.servable_graph import GRAPH, write_graph


@pytest.mark.parametrize("fixture", ["default_model_dir", "embedding_model_dir",
                                     "reranker_model_dir"])
def test_prepared_model_folders_check_as_servables(fixture: str,
                                                   request: pytest.FixtureRequest) -> None:
    folder: Path = request.getfixturevalue(fixture)
    assert (folder / GRAPH).is_file()
    result = subprocess.run(
        [sys.executable, "-m", "ovserve", "check", "--model_path", str(folder), "--model_name",
         "m"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_users_own_graph_is_kept(tmp_path: Path) -> None:
    (tmp_path / GRAPH).write_text("# mine\n")
    assert write_graph(tmp_path, "llm") is None
    assert (tmp_path / GRAPH).read_text() == "# mine\n"
    assert write_graph(tmp_path, "unknown-kind") is None
