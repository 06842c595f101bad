#!/usr/bin/env python3
"""CPU families: what a benchmark records of the CPU, where its results go, and the README's
table of results by family.

The project's machines are not all the same CPU (AMD EPYC with AVX-512, Intel Xeon with AMX),
and the engine's arithmetic differs between them, so every run records the CPU model and the
ISA flags that choose the kernels, and its results go to a folder of their own per CPU family
and model: ``benchmarks/results/serving/<family>-<model>/serving.{md,json}``. A family is the
CPU's brand and line and the engine's CPU family (``ovserve.engine.cpu_properties``), e.g.
``amd-epyc-avx512_bf16``, ``intel-xeon-amx``.

The README's "Results by CPU family" table is rendered from the committed JSONs (and from
``reported.json``: figures reported by another machine of the project, not re-measured here):

    .venv/bin/python benchmarks/families.py            # rewrite the table in README.md
    .venv/bin/python benchmarks/families.py --print    # print it
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ovserve.engine.cpu_properties import Cpu, family_of, read_cpu  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "serving"
REPORTED = RESULTS / "reported.json"
README = REPO / "README.md"
BEGIN = ("<!-- results by CPU family: rendered by benchmarks/families.py from "
         "benchmarks/results/serving; do not edit by hand -->")
END = "<!-- end of results by CPU family -->"

#: the ISA flags (as /proc/cpuinfo spells them) that decide which kernels oneDNN and the CPU
#: plugin pick
ISA_FLAGS = ("avx2", "avx_vnni", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16",
             "amx_tile", "amx_bf16", "amx_int8")

# the systems the table compares, named as benchmarks/run.py names them (it takes these)
RAW, SSE, GRPC = "raw openvino-genai", "ovserve OpenAI SSE", "ovserve gRPC stream"
XLLAMA = "llama.cpp server (xllamacpp, 8 slots)"
TABLE_LEVELS = (1, 8, 32)


def _cpu(cpuinfo: list[str] | None) -> Cpu:
    return read_cpu(None if cpuinfo is None else "\n".join(cpuinfo), environ={})


def cpu_model(cpuinfo: list[str] | None = None) -> str:
    """The CPU's model name (/proc/cpuinfo's lines; read when None)."""
    return _cpu(cpuinfo).model


def isa_flags(cpuinfo: list[str] | None = None) -> list[str]:
    """Which of ISA_FLAGS the CPU has, in ISA_FLAGS' order."""
    flags = _cpu(cpuinfo).flags
    return [flag for flag in ISA_FLAGS if flag in flags]


def family(cpu: str, flags: list[str]) -> str:
    """A path-safe family name: the model name's first two words (brand and line, without
    trademarks) and the ISA tier, e.g. 'AMD EPYC 9554 64-Core Processor' with avx512f ->
    'amd-epyc-avx512_bf16', 'Intel(R) Xeon(R) Platinum 8480+' with amx_tile -> 'intel-xeon-amx'.
    The ISA part is the engine's CPU table's family (``ovserve.engine.cpu_properties``)."""
    words = re.sub(r"\((R|TM|tm|r)\)", " ", cpu).split()
    words = [w for w in words if re.fullmatch(r"[A-Za-z]+", w)
             and w.lower() not in {"cpu", "processor", "genuine", "authentic"}][:2]
    brand = "-".join(w.lower() for w in words) or "cpu"
    return f"{brand}-{family_of(flags)}"


def results_dir(family_name: str, model: str, root: Path = RESULTS) -> Path:
    """Where a run on ``family_name`` and ``model`` keeps its serving.{md,json} and plots."""
    return root / f"{family_name}-{model}"


# --- the README table -------------------------------------------------------------------


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _cell(values: list[tuple[float | None, bool]]) -> str:
    """'0.98 / 0.87* / 0.90': * marks a level the run did not call trustworthy."""
    return " / ".join("-" if v is None else f"{v:.2f}" + ("" if ok else "*")
                      for v, ok in values)


def _measured_rows(path: Path) -> list[list[str]]:
    report = json.loads(path.read_text())
    machine = report.get("machine", {})
    tps = {(r["system"], r["concurrency"]): r["tokens_per_second"]
           for r in report.get("levels", [])}
    trusted = {v["concurrency"]: v["trustworthy"] for v in report.get("trust", [])}
    fractions = {(f["system"], f["concurrency"]): f["fraction"]
                 for f in report.get("bandwidth_fraction", [])}
    load = report.get("load_before_run") or next(
        (v["load"]["load_before"] for v in report.get("trust", [])), None)
    cores = machine.get("cores") or 1
    isa = machine.get("isa")
    cpu = (f"{machine.get('cpu', '?')} ({machine.get('family', '?')}; "
           + (" ".join(isa) if isa else "ISA not recorded") + ")")
    bandwidth = machine.get("bandwidth_gbps")
    link = path.parent.relative_to(REPO).as_posix() + "/serving.md"
    rows = []
    for system in (SSE, GRPC):
        if not any(s == system for s, _ in tps):
            continue
        vs_raw = [(_ratio(tps.get((system, c)), tps.get((RAW, c))), trusted.get(c, False))
                  for c in TABLE_LEVELS]
        vs_llama = [(_ratio(tps.get((system, c)), tps.get((XLLAMA, c))), trusted.get(c, False))
                    for c in TABLE_LEVELS]
        fraction = fractions.get((system, 1))
        rows.append([
            cpu, report.get("date", "?"),
            "-" if load is None else f"{load[0]:.2f} on {cores} cores",
            f"{report.get('model', '?')} ({report.get('weights', '?')})", system,
            _cell(vs_raw), _cell(vs_llama),
            ("-" if fraction is None else
             f"{fraction:.0%}{'' if trusted.get(1, False) else '*'} of {bandwidth} GB/s"),
            f"measured: [{path.parent.name}]({link})"])
    return rows


def _reported_rows(entry: dict[str, Any]) -> list[list[str]]:
    tps = {system: {int(c): v for c, v in levels.items()}
           for system, levels in entry["tokens_per_second"].items()}
    given = {system: {int(c): v for c, v in levels.items()}
             for system, levels in entry.get("ratio_to_raw", {}).items()}
    trusted = entry.get("trustworthy", True)
    cpu = f"{entry['cpu']} ({entry['family']}; {' '.join(entry['isa'])})"
    rows = []
    for system in (SSE, GRPC):
        if system not in tps:
            continue
        vs_raw = [(given.get(system, {}).get(c) or _ratio(tps[system].get(c),
                                                           tps.get(RAW, {}).get(c)), trusted)
                  for c in TABLE_LEVELS]
        vs_llama = [(_ratio(tps[system].get(c), tps.get(XLLAMA, {}).get(c)), trusted)
                    for c in TABLE_LEVELS]
        one = tps[system].get(1)
        fraction = (one * entry["weight_bytes"] / (entry["bandwidth_gbps"] * 1e9)
                    if one and entry.get("weight_bytes") and entry.get("bandwidth_gbps")
                    else None)
        rows.append([
            cpu, entry["date"], entry["load"], f"{entry['model']} ({entry['weights']})",
            system, _cell(vs_raw), _cell(vs_llama),
            "-" if fraction is None else
            f"{fraction:.0%} of {entry['bandwidth_gbps']} GB/s (computed here)",
            entry["source"]])
    return rows


def by_family_table(root: Path = RESULTS) -> str:
    """The README's table: one row per ovserve system of every committed result, then the
    reported ones."""
    rows = []
    for path in sorted(root.glob("*/serving.json")):
        rows += _measured_rows(path)
    reported = root / REPORTED.name
    if reported.is_file():
        for entry in json.loads(reported.read_text()):
            rows += _reported_rows(entry)
    levels = "/".join(str(c) for c in TABLE_LEVELS)
    header = ["CPU (family; ISA flags)", "date", "load before the run", "model", "system",
              f"vs raw, c={levels}", f"vs llama.cpp server, c={levels}",
              "bandwidth limit, c=1", "source"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def update_readme(readme: Path = README, root: Path = RESULTS) -> bool:
    """Rewrite the table between the markers in ``readme``; True when it changed."""
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{readme} has no results-by-family markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{BEGIN}\n{by_family_table(root)}\n{END}{tail}"
    if new != text:
        readme.write_text(new)
    return new != text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--print", action="store_true", help="print the table, change nothing")
    args = parser.parse_args()
    if args.print:
        print(by_family_table())
    else:
        print("README.md " + ("updated" if update_readme() else "already up to date"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
