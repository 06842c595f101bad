"""staged_directory: the output appears whole or not at all."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ovserve.errors import ToolchainError
from ovserve.toolchain.staging import staged_directory


def test_success_renames_into_place(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with staged_directory(out, force=False) as staging:
        (staging / "f").write_text("x")
        assert not out.exists()
    assert (out / "f").read_text() == "x"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_failure_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), staged_directory(out, force=False) as staging:
        (staging / "f").write_text("x")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_force_replaces_only_when_complete(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "old").write_text("old")
    with pytest.raises(RuntimeError), staged_directory(out, force=True):
        raise RuntimeError("boom")
    assert (out / "old").exists()
    with staged_directory(out, force=True) as staging:
        (staging / "new").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_existing_without_force(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    with pytest.raises(ToolchainError, match="already exists; pass --force"), staged_directory(
        tmp_path / "out", force=False
    ):
        pass


def test_the_finished_folder_is_not_private(tmp_path: Path) -> None:
    """mkdtemp's 0700 is for the build only: a non-root container user reads the result."""
    with staged_directory(tmp_path / "out", force=False) as staging:
        (staging / "f").write_text("x")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o777 & ~umask
