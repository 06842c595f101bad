"""download_model.py's failures are clear and leave nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

SCRIPT = REPO / "scripts" / "download_model.py"


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True,
        env={**os.environ, **(env or {})}, timeout=300, check=False,
    )


def test_unknown_model_name(tmp_path: Path) -> None:
    result = run("--model", "smollm2-135m-instruc", cwd=tmp_path)
    assert result.returncode == 1
    assert "unknown model 'smollm2-135m-instruc'" in result.stderr
    assert "Did you mean 'smollm2-135m-instruct'?" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_unreachable_hub_fails_fast_and_names_builtin(tmp_path: Path) -> None:
    result = run(
        "--model", "HuggingFaceTB/SmolLM2-360M-Instruct", "--output", str(tmp_path / "out"),
        cwd=tmp_path, env={"HF_ENDPOINT": "http://127.0.0.1:9"},
    )
    assert result.returncode == 1
    assert "cannot reach the Hugging Face hub at http://127.0.0.1:9" in result.stderr
    assert "--model smollm2-135m-instruct" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_offline_flag_is_respected(tmp_path: Path) -> None:
    result = run(
        "--model", "HuggingFaceTB/SmolLM2-360M-Instruct", cwd=tmp_path,
        env={"HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 1
    assert "HF_HUB_OFFLINE is set" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = run("--output", str(blocker / "model"), cwd=tmp_path)
    assert result.returncode == 1
    assert f"cannot write the output directory {blocker / 'model'}" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_failed_export_leaves_nothing(tmp_path: Path) -> None:
    broken = tmp_path / "broken-hf"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "no-such-architecture"}')
    out_root = tmp_path / "models"
    result = run("--model", str(broken), "--output", str(out_root / "broken"), cwd=tmp_path)
    assert result.returncode == 1
    assert "exporting" in result.stderr and "failed" in result.stderr
    assert list(out_root.iterdir()) == []  # neither the output nor a .partial staging dir


def test_local_directory_without_config(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = run("--model", str(tmp_path / "empty"), cwd=tmp_path)
    assert result.returncode == 1
    assert "not a Hugging Face model directory (it has no config.json)" in result.stderr


def test_existing_model_is_reused(default_model_dir: Path, tmp_path: Path) -> None:
    result = run("--output", str(default_model_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "already prepared (int8)" in result.stderr
    other = run("--output", str(default_model_dir), "--weight-format", "fp16", cwd=tmp_path)
    assert other.returncode == 1
    assert "already holds int8 weights, not fp16" in other.stderr


def test_list_shows_builtin_and_prepared(tmp_path: Path) -> None:
    result = run("--list", cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "smollm2-135m-instruct (default)" in result.stdout
    assert "Prepared under models/:" in result.stdout
    assert "  smollm2-135m-instruct: int8" in result.stdout
