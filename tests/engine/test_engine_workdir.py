"""An engine process with LoRA slots builds its model in a work folder that the supervisor owns:
killed, restarted or closed, it leaves no ovserve-lora-* folder behind (the outside probe found
a killed engine's folders left in the temporary directory); without adapters none is made."""

from __future__ import annotations

import os
import signal
import tempfile
import time
from pathlib import Path

import pytest

from ovserve.engine.base import EngineConfig, LoraOptions, SamplingParams
from ovserve.engine.client import OpenVINOEngine
from tests.conftest import plugin_config
from tests.engine.lora_files import write_adapter


def folders(root: Path) -> list[Path]:
    return sorted(root.glob("ovserve-lora-*"))


def test_a_killed_engine_leaves_no_work_folder(default_model_dir: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    write_adapter(tmp_path / "loras" / "alpha", seed=1)
    engine = OpenVINOEngine(EngineConfig(default_model_dir, plugin_config=plugin_config(),
                                         lora=LoraOptions(dirs=(tmp_path / "loras",))),
                            restart_delays=(0.1, 1.0))
    try:
        params = SamplingParams(max_tokens=4, ignore_eos=True)
        first = engine.submit(engine.prepare("Hello", params, adapter="alpha"))
        list(first.deltas())  # alpha is in a slot: the engine process was rebuilt with it
        (built,) = folders(scratch)
        assert (built / "openvino_model.xml").is_file()
        killed = engine.pid
        os.kill(killed, signal.SIGKILL)
        deadline = time.monotonic() + 120
        while (engine.pid == killed or not engine.ready) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert engine.ready and engine.pid != killed
        (rebuilt,) = folders(scratch)  # the killed one's folder is gone, the new one's is here
        assert rebuilt != built and not built.exists()
        again = engine.submit(engine.prepare("Hello", params, adapter="alpha"))
        list(again.deltas())
        assert again.completion_tokens == 4
    finally:
        engine.close()
    assert folders(scratch) == []


def test_no_work_folder_without_adapters(default_model_dir: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    engine = OpenVINOEngine(EngineConfig(default_model_dir, plugin_config=plugin_config()))
    try:
        assert folders(tmp_path) == []
    finally:
        engine.close()
