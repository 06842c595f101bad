"""Results per CPU family: the family a CPU gets, where a run's results go, and the README's
table rendered from the committed results."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmarks import families
from benchmarks.run import committed, default_out
from tests.conftest import REPO

EPYC = ["processor\t: 0", "vendor_id\t: AuthenticAMD", "model name\t: AMD EPYC 9554 64-Core "
        "Processor", "flags\t\t: fpu sse4_2 avx avx2 avx512f avx512_bf16 avx512_vnni"]
XEON = ["model name\t: Intel(R) Xeon(R) Platinum 8480+", "flags\t\t: avx2 avx512f avx512_vnni "
        "avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8 avx_vnni"]


def test_the_cpu_model_flags_and_family() -> None:
    assert families.cpu_model(EPYC) == "AMD EPYC 9554 64-Core Processor"
    assert families.isa_flags(EPYC) == ["avx2", "avx512f", "avx512_vnni", "avx512_bf16"]
    assert families.family(families.cpu_model(EPYC), families.isa_flags(EPYC)) == (
        "amd-epyc-avx512_bf16")
    assert families.isa_flags(XEON) == list(families.ISA_FLAGS)
    assert families.family(families.cpu_model(XEON), families.isa_flags(XEON)) == (
        "intel-xeon-amx")
    assert families.family("Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz", ["avx2"]) == (
        "intel-core-avx2")


def test_a_run_writes_to_its_familys_and_models_folder(tmp_path: Path) -> None:
    model = tmp_path / "tinyllama-1.1b-shaped-int8"
    here = families.family(families.cpu_model(), families.isa_flags())
    assert default_out(model) == families.RESULTS / f"{here}-tinyllama-1.1b-shaped-int8"
    assert default_out(model, tmp_path) == tmp_path / f"{here}-tinyllama-1.1b-shaped-int8"
    assert families.results_dir("intel-xeon-amx", "smollm2-135m-instruct") == (
        REPO / "benchmarks/results/serving/intel-xeon-amx-smollm2-135m-instruct")
    # only runs into the committed folders render the README's table
    assert committed(default_out(model))
    assert not committed(tmp_path / "smoke")


def test_the_readme_table_is_rendered_from_the_committed_results() -> None:
    """The README's table is what families.py renders now: nobody typed it, and a result
    committed without re-rendering it fails here."""
    text = (REPO / "README.md").read_text()
    rendered = text.split(families.BEGIN, 1)[1].split(families.END, 1)[0].strip()
    assert rendered == families.by_family_table()
    # every committed result has its rows, and the Xeon is labelled as reported
    for path in families.RESULTS.glob("*/serving.json"):
        assert f"[{path.parent.name}]" in rendered
    xeon = [row for row in rendered.splitlines() if "intel-xeon-amx" in row]
    assert xeon and all("reported in issue 29" in row and "not re-measured" in row
                        for row in xeon)


def test_rows_of_a_run_mark_untrusted_levels(tmp_path: Path) -> None:
    root = tmp_path / "serving"
    source = families.RESULTS / "amd-epyc-avx512_bf16-smollm2-135m-instruct"
    (root / source.name).mkdir(parents=True)
    shutil.copy(source / "serving.json", root / source.name / "serving.json")
    report = json.loads((root / source.name / "serving.json").read_text())
    report["machine"].update(isa=["avx2", "avx512f"], bandwidth_gbps=30.0)
    report["bandwidth_fraction"] = [{"system": families.SSE, "concurrency": 1,
                                     "weight_bytes": 1, "fraction": 0.41}]
    # the verdicts are this test's own: only c=8 is not trustworthy
    report["trust"] = [{"concurrency": c, "trustworthy": c != 8, "load": {"load_before": 0.1}}
                       for c in (1, 8, 32)]
    tps = {(r["system"], r["concurrency"]): r["tokens_per_second"] for r in report["levels"]}
    at8 = f"{tps[(families.SSE, 8)] / tps[(families.RAW, 8)]:.2f}*"
    (root / source.name / "serving.json").write_text(json.dumps(report))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(families, "REPO", tmp_path)
        table = families.by_family_table(root)
    (sse,) = [row for row in table.splitlines() if f"| {families.SSE} |" in row]
    assert "avx2 avx512f" in sse and "41% of 30.0 GB/s" in sse
    assert f" / {at8} / " in sse  # c=8 is marked as not trustworthy, c=1 and c=32 are not
    assert sse.count("*") == 2  # c=8 vs raw and vs llama.cpp's server
