"""benchmarks/run.py's derived figures: the fraction of the memory-bandwidth limit, and issue
29's goals as checks that count only on trustworthy levels."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.loadgen import LevelResult
from benchmarks.run import (
    GRPC,
    RAW,
    SSE,
    XLLAMA,
    bandwidth_fraction,
    check_state,
    fraction_table,
    fractions,
    targets_check,
    targets_summary,
)

P = {"p50": 0.01, "p90": 0.02, "p99": 0.03}


def level(system: str, concurrency: int, tokens_per_second: float) -> LevelResult:
    """A level of 10 s that produced ``tokens_per_second``."""
    return LevelResult(system=system, concurrency=concurrency, requests=10, seconds=10.0,
                       output_tokens=round(tokens_per_second * 10), errors=0, ttft=P, tpot=P,
                       itl=P, e2e=P)


def trust(*untrusted: int, levels: tuple[int, ...] = (1, 8, 32)) -> list[dict[str, Any]]:
    return [{"concurrency": c, "trustworthy": c not in untrusted} for c in levels]


def by_target(checks: list[dict[str, Any]], text: str) -> dict[str, Any]:
    (found,) = [c for c in checks if c["target"] == text]
    return found


def test_the_fraction_is_the_step_rate_times_the_weights_over_the_bandwidth() -> None:
    # one stream: 100 tok/s x 135 MB = 13.5 GB/s of 27 GB/s
    assert bandwidth_fraction(100, 1, 135_000_000, 27.0) == pytest.approx(0.5)
    # 8 streams share each step's read: 400 tok/s is 50 steps/s
    assert bandwidth_fraction(400, 8, 135_000_000, 27.0) == pytest.approx(0.25)
    # a server with 8 slots at 32 streams still decodes 8 per step
    assert bandwidth_fraction(400, 32, 135_000_000, 27.0, streams_cap=8) == pytest.approx(0.25)


def test_fractions_cover_the_systems_whose_weights_are_known() -> None:
    levels = [level(RAW, 1, 100), level(SSE, 1, 90), level(XLLAMA, 32, 200),
              level("seed approach (optimum-intel per request)", 1, 10)]
    found = fractions(levels, {"openvino": 135_000_000, "gguf": 80_000_000}, 27.0)
    got = {(f["system"], f["concurrency"]): f["fraction"] for f in found}
    assert got == {(RAW, 1): 0.5, (SSE, 1): 0.45,
                   (XLLAMA, 32): pytest.approx(200 / 8 * 80e6 / 27e9, abs=1e-4)}
    assert fractions(levels, {"openvino": 1}, None) == []  # no bandwidth measured
    table = fraction_table(found)
    assert "| raw openvino-genai | 135 | 50% |" in table


def builtin_run() -> list[LevelResult]:
    return [level(RAW, 1, 100), level(SSE, 1, 97), level(GRPC, 1, 90), level(XLLAMA, 1, 95),
            level(RAW, 8, 500), level(SSE, 8, 480), level(GRPC, 8, 400), level(XLLAMA, 8, 150),
            level(RAW, 32, 800), level(SSE, 32, 790), level(GRPC, 32, 700),
            level(XLLAMA, 32, 150)]


def test_the_issues_goals_on_the_builtin_model() -> None:
    levels = builtin_run()
    found = fractions(levels, {"openvino": 135_000_000}, 27.0)
    checks = targets_check(levels, trust(), "builtin:smollm2-135m-instruct", found)
    at = f"{SSE}: throughput at concurrency"
    assert by_target(checks, f"{at} 1 >= 0.95 x raw")["met"] is True
    assert by_target(checks, f"{at} 8 >= 0.95 x raw")["met"] is True
    assert by_target(checks, f"{GRPC}: throughput at concurrency 8 >= 0.95 x raw")["met"] is False
    assert by_target(checks, f"{at} 1 >= llama.cpp's server (xllamacpp)")["met"] is True
    assert by_target(checks, f"{at} 8 >= 3 x llama.cpp's server (xllamacpp)")["met"] is True
    bandwidth = by_target(checks, f"{SSE}: at concurrency 1 >= 50% of the memory-bandwidth limit")
    assert bandwidth["value"] == pytest.approx(0.485) and bandwidth["met"] is False
    assert not [c for c in checks if "0.97" in c["target"] or "ahead of" in c["target"]]


def test_a_check_on_an_untrusted_level_is_neither_met_nor_missed() -> None:
    levels = builtin_run()
    checks = targets_check(levels, trust(8), "builtin:smollm2-135m-instruct")
    eight = by_target(checks, f"{GRPC}: throughput at concurrency 8 >= 0.95 x raw")
    assert eight["met"] is None and eight["untrusted"] == [8]
    assert eight["met_if_trusted"] is False and eight["value"] == 0.8
    assert check_state(eight) == "untrusted: c=8 not trustworthy; would not be met"
    one = by_target(checks, f"{GRPC}: throughput at concurrency 1 >= 0.95 x raw")
    assert one["met"] is False and "untrusted" not in one
    assert check_state(one) == "NOT met"
    # a level with no verdict at all is not trusted either
    checks = targets_check(levels, [], "builtin:smollm2-135m-instruct")
    assert all(c["met"] is None for c in checks)
    assert "0 met, 0 not met" in targets_summary(checks)


def test_the_shaped_models_goals() -> None:
    levels = [level(RAW, 1, 20), level(SSE, 1, 19.5), level(XLLAMA, 1, 25),
              level(RAW, 8, 100), level(SSE, 8, 96), level(XLLAMA, 8, 90)]
    checks = targets_check(levels, trust(levels=(1, 8)), "shaped:tinyllama-1.1b-shaped")
    shaped = "(1.1B-shaped model)"
    assert by_target(checks, f"{SSE}: throughput at concurrency 1 >= 0.97 x raw {shaped}"
                     )["met"] is True
    assert by_target(checks, f"{SSE}: throughput at concurrency 8 >= 0.97 x raw {shaped}"
                     )["met"] is False
    ahead = by_target(checks, f"{SSE}: throughput at concurrency 8 ahead of llama.cpp's server "
                      f"(xllamacpp, 1.1B-shaped model)")
    assert ahead["met"] is True
    # the built-in model's llama.cpp goals are not the shaped model's
    assert not [c for c in checks if "3 x llama.cpp" in c["target"]]
