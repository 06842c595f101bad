"""Where the CPU goes: CPU time per output token of each process taking part in a level.

On a small machine the server, the engine and the load generator share the same cores, so
every millisecond the server or the client spends on a token is taken from the engine. Per
level this records the CPU seconds (user + system, all threads) of:

- ``server``: the serving process (ovserve's main process, llama.cpp's server),
- ``engine``: the server's child processes (ovserve's engine process),
- ``client``: this process (the load generator; for the raw engine, the engine itself).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

ROLES = ("server", "engine", "client")


def _ticks() -> int:
    return os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads); 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _ticks()


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid:
            found.append(int(entry.name))
    return found


def own_seconds() -> float:
    times = os.times()
    return times.user + times.system


@dataclass
class CpuMeter:
    """Start before a level, ``finish`` after it: CPU seconds per role during the level.
    ``server_pid`` None: no server process (the raw engine runs in this process)."""

    server_pid: int | None = None
    started: dict[str, float] = field(default_factory=dict)

    def _now(self) -> dict[str, float]:
        now = {"client": own_seconds()}
        if self.server_pid is not None:
            now["server"] = process_seconds(self.server_pid)
            # an engine process that restarted mid-level is counted from 0: an undercount
            now["engine"] = sum(process_seconds(p) for p in children(self.server_pid))
        return now

    def __post_init__(self) -> None:
        self.started = self._now()

    def finish(self) -> dict[str, float]:
        end = self._now()
        return {role: max(0.0, end[role] - self.started.get(role, 0.0)) for role in end}


def per_token_ms(cpu_seconds: dict[str, float], tokens: int) -> dict[str, float]:
    """CPU milliseconds per output token of each role (empty without tokens)."""
    if tokens <= 0:
        return {}
    return {role: seconds * 1e3 / tokens for role, seconds in cpu_seconds.items()}
