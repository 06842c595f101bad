#!/usr/bin/env python3
"""The machine's aggregate memory read bandwidth: the ceiling a decode step meets, since every
step reads all of the model's weights once.

N processes (default: one per CPU) each sum a float64 array far larger than the last-level
cache with numpy, all starting together (a barrier before every repeat). A repeat's bandwidth
is the bytes all of them read over the slowest one's time; the figure is the best of the
repeats, as a peak should be. Prints JSON when run by itself:

    .venv/bin/python benchmarks/bandwidth.py [--processes 2] [--mib 512] [--repeats 5]

Why numpy's sum and not a bandwidth tool (STREAM, mbw, sysbench): issue 29's figure for the
project's Intel Xeon (35.1 GB/s with two processes summing 512 MiB each) was measured this way,
so the figures of the project's machines compare; it needs nothing the benchmark's venv does
not already hold, and no compiler; and a sum only reads, as a decode step reads its weights
(STREAM's copy and triad also write). numpy's sum is vectorised and on these CPUs adds faster
than one core's share of memory delivers, so memory, not arithmetic, is what it times. Processes
rather than threads: numpy's sum runs on one thread, and processes share nothing but memory.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

DEFAULT_MIB = 512  # per process: 16x the 32 MiB L3 of the project's AMD EPYC machines
DEFAULT_REPEATS = 5
BARRIER_TIMEOUT = 120.0


@dataclass
class Bandwidth:
    gbps: float  # the best repeat, 1e9 bytes per second, all processes together
    processes: int
    mib_per_process: int
    repeats: int
    method: str = "numpy float64 sum, one array per process, started together, best repeat"
    per_repeat_gbps: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _reader(mib: int, repeats: int, start: Any, results: Any) -> None:
    """One process: touch the array (page faults are not timed), sum it once to warm up, then
    time ``repeats`` sums, each after the barrier, and send the times back."""
    import numpy as np

    try:
        data = np.ones(max(1, mib * 2**20 // 8), dtype=np.float64)
        data.sum()
        times = []
        for _ in range(repeats):
            start.wait(BARRIER_TIMEOUT)
            began = time.perf_counter()
            data.sum()
            times.append(time.perf_counter() - began)
        results.put((os.getpid(), data.nbytes, times, None))
    except BaseException as exc:  # the parent raises it; a broken barrier frees the others
        start.abort()
        results.put((os.getpid(), 0, [], repr(exc)))


def measure(processes: int | None = None, mib: int = DEFAULT_MIB,
            repeats: int = DEFAULT_REPEATS) -> Bandwidth:
    """The aggregate read bandwidth of ``processes`` processes (default: one per CPU)."""
    processes = processes or os.cpu_count() or 1
    # spawn: the caller may hold threads (openvino's, asyncio's) that a fork would copy half-way
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(processes)
    results = context.Queue()
    workers = [context.Process(target=_reader, args=(mib, repeats, start, results), daemon=True)
               for _ in range(processes)]
    for worker in workers:
        worker.start()
    try:
        replies = [results.get(timeout=BARRIER_TIMEOUT * (repeats + 1)) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
    errors = [error for _, _, _, error in replies if error]
    if errors:
        raise RuntimeError(f"a bandwidth reader failed: {errors[0]}")
    total = sum(nbytes for _, nbytes, _, _ in replies)
    per_repeat = [total / max(times[i] for _, _, times, _ in replies) / 1e9
                  for i in range(repeats)]
    best = max(per_repeat)
    if not math.isfinite(best) or best <= 0:
        raise RuntimeError(f"bandwidth measured as {best}")
    return Bandwidth(gbps=round(best, 2), processes=processes, mib_per_process=mib,
                     repeats=repeats, per_repeat_gbps=[round(g, 2) for g in per_repeat])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1,
                        help="processes reading at once (default: one per CPU)")
    parser.add_argument("--mib", type=int, default=DEFAULT_MIB,
                        help=f"MiB each process sums (default {DEFAULT_MIB}; keep it far above "
                        "the last-level cache)")
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS)
    args = parser.parse_args()
    print(json.dumps(measure(args.processes, args.mib, args.repeats).as_dict(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
