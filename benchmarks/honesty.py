"""What makes a benchmark figure trustworthy: the machine's load and CPU steal around each level,
and how much the raw engine (the same code every round) varied between rounds. A level whose
raw engine varied by more than 10%, that started on a loaded machine or saw steal, is flagged."""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MAX_RAW_SPREAD = 0.10  # (max - min) / mean of the raw engine's rounds
MAX_LOAD_PER_CORE = 0.25  # 1-minute load average per core before a level
MAX_STEAL = 0.01  # fraction of CPU time stolen by the hypervisor during a level


def _cpu_times() -> tuple[int, int]:
    """(steal, total) jiffies from /proc/stat's cpu line; (0, 0) where there is none."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return 0, 0
    values = [int(v) for v in fields]
    steal = values[7] if len(values) > 7 else 0
    return steal, sum(values[:8])


@dataclass
class Load:
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    steal: float = 0.0  # fraction of CPU time during the level
    seconds: float = 0.0


class LoadProbe:
    """Start before a level, ``finish`` after it."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.cpu = _cpu_times()
        self.load = Load(load_before=os.getloadavg())

    def finish(self) -> Load:
        steal, total = _cpu_times()
        spent = total - self.cpu[1]
        self.load.load_after = os.getloadavg()
        self.load.steal = (steal - self.cpu[0]) / spent if spent > 0 else 0.0
        self.load.seconds = time.monotonic() - self.started
        return self.load


def wait_until_quiet(seconds: float, cores: int | None = None,
                     poll: float = 5.0) -> tuple[float, float, float]:
    """Wait up to ``seconds`` for the 1-minute load average to fall to MAX_LOAD_PER_CORE;
    returns the load average then (judged by ``verdict`` as the load before the run)."""
    cores = cores or os.cpu_count() or 1
    deadline = time.monotonic() + seconds
    load = os.getloadavg()
    while load[0] / cores > MAX_LOAD_PER_CORE and time.monotonic() < deadline:
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))
        load = os.getloadavg()
    return load


def spread(values: list[float]) -> float:
    """(max - min) / mean; 0 for fewer than two values."""
    if len(values) < 2 or not statistics.mean(values):
        return 0.0
    return (max(values) - min(values)) / statistics.mean(values)


def verdict(concurrency: int, raw_rounds: list[float], load: Load,
            before_run: tuple[float, float, float], cores: int | None = None
            ) -> dict[str, Any]:
    """Whether one level's figures can be trusted, and why not. ``before_run``: the load
    average before the benchmark started (later levels see the benchmark's own load, so the
    machine's other load is judged there; during the run, steal and the raw engine's spread
    say whether something else took the CPU)."""
    cores = cores or os.cpu_count() or 1
    problems = []
    raw_spread = spread(raw_rounds)
    if raw_spread > MAX_RAW_SPREAD:
        problems.append(f"the raw engine varied {raw_spread:.0%} between rounds "
                        f"({', '.join(f'{v:.0f}' for v in raw_rounds)} tok/s)")
    if before_run[0] / cores > MAX_LOAD_PER_CORE:
        problems.append(f"load average {before_run[0]:.2f} on {cores} cores before the run")
    if load.steal > MAX_STEAL:
        problems.append(f"{load.steal:.1%} CPU steal during it")
    return {"concurrency": concurrency, "trustworthy": not problems, "problems": problems,
            "raw_spread": round(raw_spread, 3), "load": asdict(load)}


def trust_section(verdicts: list[dict[str, Any]]) -> list[str]:
    """Markdown lines saying which levels' figures are trustworthy."""
    lines = ["## Which figures to trust", "",
             f"A level is trustworthy when the raw engine varied by at most "
             f"{MAX_RAW_SPREAD:.0%} between rounds, the 1-minute load average before the run "
             f"was at most {MAX_LOAD_PER_CORE} per core and CPU steal during the level at most "
             f"{MAX_STEAL:.0%}. Only a trustworthy level's figures count as results: a quiet "
             "machine and a raw engine whose rounds agree; the others are shown, not claimed. "
             "A figure holds only for the CPU family it ran on (the engine runs other kernels "
             "in other precisions on others).",
             ""]
    for v in verdicts:
        load = v["load"]
        state = "trustworthy" if v["trustworthy"] else "NOT trustworthy: " + "; ".join(
            v["problems"])
        lines.append(f"- c={v['concurrency']}: {state} (load {load['load_before'][0]:.2f} -> "
                     f"{load['load_after'][0]:.2f}, steal {load['steal']:.1%}, raw spread "
                     f"{v['raw_spread']:.0%})")
    return [*lines, ""]


def trusted_levels(verdicts: list[dict[str, Any]]) -> dict[int, bool]:
    """Concurrency -> whether that level's verdict is trustworthy (a level with no verdict is
    absent: nothing says it can be trusted)."""
    return {int(v["concurrency"]): bool(v["trustworthy"]) for v in verdicts}
