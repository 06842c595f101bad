"""OVMS's Python-node quickstart (docs/python_support/quickstart.md at OVMS 7e4df0c, committed
unchanged under tests/fixtures/ovms_docs) run as it says: its shell steps write the workspace,
its ``docker run`` line starts the server (ovserve, with the same mount and arguments), its
client runs unchanged and prints what the document says it prints."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import REPO
from tests.examples.ovms_demos import code_blocks, parse_docker_run, serve_and_run

QUICKSTART = REPO / "tests/fixtures/ovms_docs/python_support/quickstart.md"


def test_quickstart_runs_as_written(tmp_path: Path) -> None:
    blocks = code_blocks(QUICKSTART.read_text())
    steps = [b for b in blocks if b.startswith(("mkdir", "echo"))]  # step 1 and the files
    assert len(steps) == 5, steps
    subprocess.run(["bash", "-ec", "\n".join(steps)], cwd=tmp_path, check=True)
    workspace = tmp_path / "workspace"
    (docker,) = [line for b in blocks for line in b.splitlines() if line.startswith("docker run")]
    mounts, args = parse_docker_run(docker, workspace)
    assert mounts == {"/models": workspace / "models"}
    (run_client,) = [b for b in blocks if b.startswith("python client.py")]
    expected = run_client.splitlines()[1]  # what the document shows the client printing
    result = serve_and_run(mounts, args, "python client.py", workspace)
    log = (workspace / "ovserve.log").read_text()
    assert result.returncode == 0, result.stderr + log
    assert result.stdout.strip() == expected == "MAKE THIS TEXT UPPERCASE."
    assert "loaded handler /models/python_model/model.py" in log, log
    assert "loaded graph /models/python_model/graph.pbtxt" in log, log
