"""The LoRA flags, with vLLM's names and NIM's environment variables as defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from ovserve.cli import build_parser, lora_options
from ovserve.engine.base import LoraOptions


def options(*argv: str) -> LoraOptions | None:
    return lora_options(build_parser().parse_args(["--config_path", "c.json", *argv]))


def test_no_lora_flags_no_adapters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NIM_PEFT_SOURCE", raising=False)
    assert options() is None
    assert options("--enable_lora") == LoraOptions()


def test_flags(tmp_path: Path) -> None:
    got = options("--lora_dir", str(tmp_path / "a"), "--lora_dir", str(tmp_path / "b"),
                  "--lora_modules", f"x={tmp_path / 'x'}", "--max_loras", "2",
                  "--max_cpu_loras", "3", "--max_lora_rank", "16",
                  "--lora_refresh_interval", "7")
    assert got == LoraOptions(dirs=(tmp_path / "a", tmp_path / "b"),
                              modules=(("x", tmp_path / "x"),), refresh_seconds=7, max_loras=2,
                              max_cpu_loras=3, max_lora_rank=16)


def test_nim_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NIM_PEFT_SOURCE", str(tmp_path))
    monkeypatch.setenv("NIM_PEFT_REFRESH_INTERVAL", "30")
    monkeypatch.setenv("NIM_MAX_GPU_LORAS", "4")
    monkeypatch.setenv("NIM_MAX_CPU_LORAS", "12")
    assert options() == LoraOptions(dirs=(tmp_path,), refresh_seconds=30, max_loras=4,
                                    max_cpu_loras=12)


def test_bad_values_say_which(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SystemExit, match="--max_loras must be at least 1"):
        options("--enable_lora", "--max_loras", "0")
    monkeypatch.setenv("NIM_PEFT_REFRESH_INTERVAL", "soon")
    with pytest.raises(SystemExit, match="NIM_PEFT_REFRESH_INTERVAL must be a number"):
        build_parser()
    with pytest.raises(SystemExit):
        options("--lora_modules", "no-equals-sign")
