"""LoRA work folders: a server killed before it could remove its engine processes' folders
leaves them in the temporary directory; the next server on the host sweeps them, and never a
folder whose server still runs or that another host (another container) made."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ovserve.engine import workdirs


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def _folder(root: Path, tag: str) -> Path:
    folder = root / f"{workdirs.PREFIX}{tag}-abc123"
    (folder / "inner").mkdir(parents=True)
    (folder / "inner" / "openvino_model.bin").write_bytes(b"weights")
    return folder


def test_a_killed_servers_folders_are_swept_and_the_others_kept(scratch: Path) -> None:
    host = workdirs._owner_tag().rsplit(".", 1)[0]
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid names a server that no longer runs
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = _folder(scratch, f"{host}.{gone.pid}")
        alive = _folder(scratch, f"{host}.{running.pid}")
        elsewhere = _folder(scratch, f"otherhost.{gone.pid}")
        unrelated = scratch / "ovserve-lora-old"  # an older release's name: not ours to judge
        unrelated.mkdir()
        made = Path(workdirs.make())
        assert not dead.exists()
        assert alive.exists() and elsewhere.exists() and unrelated.exists()
        assert made.parent == scratch and made.name.startswith(
            f"{workdirs.PREFIX}{workdirs._owner_tag()}-")
        assert workdirs.sweep() == []  # its own folder stays while it runs
        workdirs.remove(str(made))
        workdirs.remove(str(made))  # gone already: fine
        assert not made.exists()
    finally:
        running.kill()
        running.wait()
