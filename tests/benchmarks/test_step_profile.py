"""benchmarks/step_profile on the built-in model, a few tokens: the views it reports exist and
add up (structure only; the figures are the CPU's, never judged here)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.honesty import Load
from benchmarks.step_profile import conditions, node_profile, pipeline_split, report
from tests.conftest import plugin_config


def test_the_paged_graph_profile_accounts_for_its_nodes(default_model_dir: Path) -> None:
    profile = node_profile(default_model_dir, plugin_config(), tokens=8)
    count: dict[str, float] = {}
    for row in profile["by_kind"]:
        count[row["node_type"]] = count.get(row["node_type"], 0) + row["count"]
    # the projections of each of the 30 layers are nodes, and so is paged attention
    projections = sum(n for kind, n in count.items() if kind.startswith("FullyConnected"))
    assert projections >= 30 and count.get("PagedAttentionExtension", 0) >= 1
    assert profile["nodes"] >= projections
    assert profile["infer_ms"] > 0 and profile["nodes_ms"] > 0
    assert abs(profile["overhead_ms"] - (profile["infer_ms"] - profile["nodes_ms"])) < 1e-9
    assert profile["slowest_nodes"] and "ms" in profile["slowest_nodes"][0]


def test_the_pipeline_split_and_the_report(default_model_dir: Path) -> None:
    split = pipeline_split(default_model_dir, plugin_config(), tokens=6)
    assert split["steps"] == 5  # the first token (the prefill) is not a decode step
    assert split["step_ms"] > 0 and split["forward_ms"] > 0
    text = report(split, [], top=3)
    assert text.startswith("pipeline: step ")


def test_the_report_says_whether_its_figures_count() -> None:
    loaded = conditions(Load(load_before=(64.0, 64.0, 64.0), steal=0.0), "avx512_bf16")
    assert "NOT a quiet machine" in loaded and "only for this CPU family (avx512_bf16)" in loaded
    assert "NOT" not in conditions(Load(load_before=(0.0, 0.0, 0.0)), "amx")
