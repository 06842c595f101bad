"""The benchmark's trust verdicts: raw-engine spread, load before a level, CPU steal."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from benchmarks.honesty import (
    Load,
    LoadProbe,
    spread,
    trust_section,
    verdict,
    wait_until_quiet,
)


def test_spread() -> None:
    assert spread([100.0]) == 0.0
    assert round(spread([90.0, 100.0, 110.0]), 3) == 0.2


def test_a_quiet_steady_level_is_trustworthy() -> None:
    quiet = Load(load_before=(0.1, 0.2, 0.3), load_after=(0.9, 0.5, 0.4), steal=0.0)
    result = verdict(8, [500.0, 510.0, 505.0], quiet, (0.1, 0.1, 0.1), cores=2)
    assert result["trustworthy"] and result["problems"] == []


def test_noisy_loaded_or_stolen_levels_are_flagged() -> None:
    loaded = Load(load_before=(1.4, 1.2, 1.0), steal=0.05)
    result = verdict(8, [214.0, 539.0, 649.0], loaded, (1.4, 1.2, 1.0), cores=2)
    assert not result["trustworthy"]
    text = " ".join(result["problems"])
    assert "raw engine varied" in text and "load average 1.40" in text and "steal" in text
    assert "before the run" in text
    section = " ".join(trust_section([result]))
    assert "NOT trustworthy" in section
    assert "Only a trustworthy level's figures count as results" in section


def test_the_probe_measures_a_level() -> None:
    load = LoadProbe().finish()
    assert len(load.load_before) == 3 and 0.0 <= load.steal <= 1.0 and load.seconds >= 0


def test_waiting_for_a_quiet_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """It returns as soon as the load falls, and gives up when the wait is over (a fake clock
    and load average: what is checked is the decision, not a time)."""
    clock = [0.0]
    loads = iter([(1.5, 1.0, 1.0), (0.9, 1.0, 1.0), (0.3, 0.8, 1.0)])
    monkeypatch.setattr("benchmarks.honesty.time", SimpleNamespace(
        monotonic=lambda: clock[0], sleep=lambda s: clock.__setitem__(0, clock[0] + s)))
    monkeypatch.setattr("benchmarks.honesty.os", SimpleNamespace(getloadavg=lambda: next(loads)))
    assert wait_until_quiet(60, cores=2, poll=5) == (0.3, 0.8, 1.0)  # 0.15 per core: quiet
    assert clock[0] == 10  # two polls

    clock[0] = 0.0
    monkeypatch.setattr("benchmarks.honesty.os", SimpleNamespace(getloadavg=lambda: (2.0,) * 3))
    assert wait_until_quiet(12, cores=2, poll=5) == (2.0, 2.0, 2.0)  # never quiet: gives up
    assert clock[0] == 12
