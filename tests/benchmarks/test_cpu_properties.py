"""The CPU-properties sweep's verdicts (benchmarks/cpu_properties.py): a greedy text's structure
and the winner per level. The sweep itself runs on a quiet machine, not in the suite."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.cpu_properties import CANDIDATES, loop_period, structure, winners


def test_structure_flags_empty_and_looping_texts_only() -> None:
    assert structure([]) == ["no tokens"]
    varied = list(range(100))
    assert structure(varied) == [] and loop_period(varied) is None
    assert structure([7, 8, 9]) == []  # too short to judge
    stuck = list(range(40)) + [5, 6, 7] * 20  # ends in a loop of three tokens
    assert loop_period(stuck) == 3
    assert structure(stuck) == ["ends in a loop of 3 token(s)"]
    assert "distinct tokens" in structure([1] * 20 + [2])[0]
    sentence = list(range(100, 120))
    assert loop_period(list(range(50)) + sentence * 3) == 20  # a repeated sentence


def _candidate(tok_s: dict[str, list[float]], coherent: bool = True) -> dict[str, Any]:
    return {"tok_s": tok_s, "coherent": coherent,
            "median_tok_s": {c: sorted(v)[len(v) // 2] for c, v in tok_s.items()},
            "spread": {c: (max(v) - min(v)) / (sum(v) / len(v)) for c, v in tok_s.items()}}


def test_the_winner_per_level_is_the_fastest_coherent_candidate() -> None:
    candidates = {"default": _candidate({"1": [80, 81, 79], "8": [350, 340, 345]}),
                  "f32": _candidate({"1": [130, 134, 131], "8": [352, 346, 348]}),
                  "broken": _candidate({"1": [500, 500, 500], "8": [900, 900, 900]},
                                       coherent=False)}
    won = winners(candidates, [1, 8])
    assert won["1"]["candidate"] == "f32" and won["1"]["clear"]
    assert won["1"]["vs_default"] == round(131 / 80, 3)
    assert won["8"]["candidate"] == "f32" and not won["8"]["clear"]  # within the noise
    single = {"default": _candidate({"1": [80]}), "f32": _candidate({"1": [130]})}
    assert winners(single, [1])["1"]["clear"] is False  # one round shows no spread


def test_the_candidates_cover_the_issues_list() -> None:
    properties = [c.properties for c in CANDIDATES.values()]
    assert {} in properties and {"INFERENCE_PRECISION_HINT": "f32"} in properties
    assert {"INFERENCE_PRECISION_HINT": "f32", "DYNAMIC_QUANTIZATION_GROUP_SIZE": 0} in properties
    assert {"KV_CACHE_PRECISION": "f16"} in properties
    assert {"INFERENCE_NUM_THREADS": 1} in properties
    assert {"ENABLE_CPU_PINNING": False} in properties
    assert any("max_num_batched_tokens" in c.scheduler for c in CANDIDATES.values())


def test_the_raw_engine_gets_the_servers_properties(monkeypatch: pytest.MonkeyPatch) -> None:
    """loadgen's RawEngineTarget builds its pipeline with what an ovserve engine on CPU gets
    from graphs/llm (empty plugin_config): the CPU table's row under $OVSERVE_PLUGIN_CONFIG,
    none with $OVSERVE_NO_CPU_TABLE, so raw and ovserve stay like for like."""
    from benchmarks.loadgen import server_properties
    from ovserve.engine.cpu_properties import TABLE, this_cpu

    monkeypatch.delenv("OVSERVE_PLUGIN_CONFIG", raising=False)
    monkeypatch.delenv("OVSERVE_NO_CPU_TABLE", raising=False)
    properties, note = server_properties()
    assert properties == TABLE[this_cpu().family]
    assert note.startswith(f"CPU family {this_cpu().describe()}: ")
    monkeypatch.setenv("OVSERVE_PLUGIN_CONFIG",
                       '{"CPU": {"INFERENCE_PRECISION_HINT": "bf16", "NUM_STREAMS": 1}}')
    properties, note = server_properties()
    assert properties == {**TABLE[this_cpu().family], "INFERENCE_PRECISION_HINT": "bf16",
                          "NUM_STREAMS": 1}
    assert "$OVSERVE_PLUGIN_CONFIG sets" in note
    monkeypatch.setenv("OVSERVE_NO_CPU_TABLE", "1")
    monkeypatch.delenv("OVSERVE_PLUGIN_CONFIG")
    assert server_properties() == ({}, "the CPU table is off (--no_cpu_table): OpenVINO's "
                                       "defaults and plugin_config")
