"""The benchmark's CPU accounting: a server process, its children and this process."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from benchmarks.cpu import CpuMeter, children, own_seconds, per_token_ms, process_seconds
from benchmarks.loadgen import LevelResult, merge

# a "server" that starts a child (its "engine") burning CPU, and itself stays idle
SERVER = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time\\nend = time.time() + 30\\n"
                          "while time.time() < end: pass"])
time.sleep(30)
"""


def test_the_meter_splits_server_engine_and_client() -> None:
    server = subprocess.Popen([sys.executable, "-c", SERVER])
    try:
        deadline = time.monotonic() + 10
        while not children(server.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        (child,) = children(server.pid)
        meter = CpuMeter(server.pid)
        child_start, own_start = process_seconds(child), own_seconds()
        # busy here too until both have spent 0.3 s of CPU, however loaded the machine is
        deadline = time.monotonic() + 60
        while ((process_seconds(child) - child_start < 0.3 or own_seconds() - own_start < 0.3)
               and time.monotonic() < deadline):
            pass
        cpu = meter.finish()
    finally:
        for pid in children(server.pid):
            subprocess.run(["kill", str(pid)], check=False)
        server.kill()
        server.wait()
    assert set(cpu) == {"server", "engine", "client"}
    assert cpu["engine"] > 0.2  # the busy child, counted as the engine
    assert cpu["client"] > 0.2  # this process's busy loop
    assert cpu["server"] < cpu["engine"] / 2  # the idle parent
    assert per_token_ms(cpu, 100)["engine"] == pytest.approx(cpu["engine"] * 10)
    assert per_token_ms(cpu, 0) == {}


def test_without_a_server_only_the_client_is_measured() -> None:
    assert set(CpuMeter(None).finish()) == {"client"}
    assert process_seconds(2**22 + 12345) == 0.0  # no such process


def test_rounds_sum_their_cpu() -> None:
    def level(cpu: dict[str, float]) -> LevelResult:
        return LevelResult.of("s", 1, [], 1.0, cpu_seconds=cpu)

    merged = merge([level({"server": 1.0, "client": 0.5}), level({"server": 2.0})])
    assert merged.cpu_seconds == {"server": 3.0, "client": 0.5}
