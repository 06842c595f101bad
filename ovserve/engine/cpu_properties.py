"""The OpenVINO properties an LLM engine on CPU gets for this CPU's family, chosen by measurement.

The right arithmetic depends on the CPU: on an Intel Xeon with AMX, int8 weights run OpenVINO's
int8 dynamic-quantization kernels only with f32 activations, and the default (bf16) is much
slower there; on an AMD EPYC the same setting measured neutral. So the CPU is named by its
family (from /proc/cpuinfo's flags, capped by ``$ONEDNN_MAX_CPU_ISA`` when that limits oneDNN's
kernels) and ``TABLE`` says what each family gets. ``benchmarks/cpu_properties.py`` sweeps the
candidates on a machine and records which wins; a row changes only with such a measurement.

The table applies to LLM engines (ContinuousBatchingPipeline) on plain ``CPU`` only, under the
graph's ``plugin_config`` and the server's ``--plugin_config``: a key either sets always wins.
``--no_cpu_table`` ($OVSERVE_NO_CPU_TABLE) turns it off (OpenVINO's defaults).
"""

from __future__ import annotations

import functools
import os
import platform
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ENV_OFF", "FAMILIES", "TABLE", "Choice", "Cpu", "CpuTable", "family_of",
           "read_cpu", "this_cpu"]

#: CPU families, best first (each has the ISA of the ones after it, as far as the table cares)
FAMILIES = ("amx", "avx512_bf16", "avx512_vnni", "avx512", "avx2", "other")

DESCRIPTIONS = {
    "amx": "AMX (amx_tile with amx_bf16/amx_int8)",
    "avx512_bf16": "AVX-512 with BF16",
    "avx512_vnni": "AVX-512 with VNNI, no BF16",
    "avx512": "AVX-512 without VNNI",
    "avx2": "AVX2, no AVX-512",
    "other": "no AVX2",
}

#: family -> LLM pipeline properties (laid under every LLM engine's plugin_config on CPU).
#: A row changes only with a measurement (benchmarks/cpu_properties.py); say which beside it.
TABLE: dict[str, dict[str, Any]] = {
    # Intel Xeon with AMX (amx_bf16, amx_int8, avx512_bf16, avx512_fp16, avx512_vnni), 2 cores,
    # 2026-12-07 (issue 29): raw ContinuousBatchingPipeline, int8
    # SmolLM2-135M, 128 tokens, greedy, best of 2 runs: default properties (bf16) 79-81 tok/s at
    # 1 stream, 348 at 8, 1001 at 32; INFERENCE_PRECISION_HINT f32 130-134 / 619 / 1062 with the
    # same greedy text; f32 with DYNAMIC_QUANTIZATION_GROUP_SIZE 0 77 / 319 (so the group stays).
    "amx": {"INFERENCE_PRECISION_HINT": "f32"},
    # AMD EPYC (Zen 4: avx512_bf16, avx512_vnni, no AMX), 2 cores, 2026-12-07: the sweep
    # (benchmarks/results/cpu_properties.json, built-in model, 3 rounds, no level trustworthy)
    # found nothing clearly better than OpenVINO's defaults (bf16, KV cache u8,
    # dynamic-quantization group 32); f32 was slower (67 vs 79 tok/s at 1 stream), not faster.
    "avx512_bf16": {},
    # Not measured yet: OpenVINO's defaults.
    "avx512_vnni": {},
    "avx512": {},
    "avx2": {},
    "other": {},
}

#: the environment variable that gives --no_cpu_table's default
ENV_OFF = "OVSERVE_NO_CPU_TABLE"

#: $ONEDNN_MAX_CPU_ISA -> the best family whose kernels oneDNN may still use under it
#: (None: no cap). oneDNN's names; an unknown one caps nothing.
ISA_CAPS: dict[str, str | None] = {
    "SSE41": "other", "AVX": "other", "AVX2": "avx2", "AVX2_VNNI": "avx2",
    "AVX2_VNNI_2": "avx2", "AVX512_CORE": "avx512", "AVX512_CORE_VNNI": "avx512_vnni",
    "AVX512_CORE_BF16": "avx512_bf16", "AVX512_CORE_FP16": "avx512_bf16",
    "AVX10_1_512": "avx512_bf16", "AVX512_CORE_AMX": "amx", "AVX512_CORE_AMX_FP16": "amx",
    "AVX10_1_512_AMX": "amx", "AVX10_1_512_AMX_FP16": "amx", "AVX10_2_512": "avx512_bf16",
    "AVX10_2_512_AMX_2": "amx", "ALL": None, "DEFAULT": None,
}

#: the flags worth recording beside a measurement (the rest of /proc/cpuinfo's say nothing here)
_ISA_PREFIXES = ("avx", "amx", "fma", "f16c", "sse4", "vnni")


def family_of(flags: Iterable[str]) -> str:
    """The family of a CPU with these /proc/cpuinfo flags."""
    have = set(flags)
    if "amx_tile" in have and have & {"amx_bf16", "amx_int8"}:
        return "amx"
    if "avx512f" in have:
        if "avx512_bf16" in have:
            return "avx512_bf16"
        return "avx512_vnni" if "avx512_vnni" in have else "avx512"
    return "avx2" if "avx2" in have else "other"


@dataclass(frozen=True)
class Cpu:
    """A CPU as the table sees it: its model name, flags, and oneDNN's ISA cap if any."""

    model: str
    flags: frozenset[str] = field(default=frozenset(), repr=False)
    #: $ONEDNN_MAX_CPU_ISA as given (None: not set)
    isa_cap: str | None = None

    @property
    def own_family(self) -> str:
        """The family of the CPU's flags, whatever oneDNN is allowed."""
        return family_of(self.flags)

    @property
    def family(self) -> str:
        """The family whose kernels run: the CPU's own, or the cap's when that is lower."""
        own = self.own_family
        cap = ISA_CAPS.get((self.isa_cap or "").upper())
        if cap is not None and FAMILIES.index(cap) > FAMILIES.index(own):
            return cap
        return own

    @property
    def isa_flags(self) -> list[str]:
        """The flags that name its vector ISA (for reports)."""
        return sorted(f for f in self.flags if f.startswith(_ISA_PREFIXES))

    def describe(self) -> str:
        """E.g. ``avx512_bf16 (AMD EPYC)``, with the cap when it lowers the family."""
        family = self.family
        if family != self.own_family:
            return (f"{family} ({self.model}; oneDNN capped at {self.isa_cap} by "
                    f"$ONEDNN_MAX_CPU_ISA, the CPU itself is {self.own_family})")
        return f"{family} ({self.model})"


def read_cpu(cpuinfo: str | None = None, environ: Mapping[str, str] | None = None) -> Cpu:
    """The CPU of ``cpuinfo`` (/proc/cpuinfo's text; read when None) and ``environ``'s
    $ONEDNN_MAX_CPU_ISA (``os.environ`` when None). Where there is no /proc/cpuinfo the family
    is ``other``."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    environ = os.environ if environ is None else environ
    model, flags = "", ""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = value
    return Cpu(model=model or platform.processor() or "unknown CPU",
               flags=frozenset(flags.split()), isa_cap=environ.get("ONEDNN_MAX_CPU_ISA") or None)


@functools.cache
def this_cpu() -> Cpu:
    """This machine's CPU (read once per process)."""
    return read_cpu()


def _format(properties: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in properties.items())


@dataclass(frozen=True)
class Choice:
    """What the table chose for one engine, and what won over it."""

    cpu: Cpu
    #: the family's row
    row: Mapping[str, Any]
    #: the row's properties the engine gets (no plugin_config sets them)
    applied: Mapping[str, Any]
    #: the row's properties a plugin_config overrides: key -> (its value, who sets it)
    overridden: Mapping[str, tuple[Any, str]] = field(default_factory=dict)
    enabled: bool = True

    def describe(self) -> str:
        """One line for the log: the family and what it brought, or that the table is off."""
        if not self.enabled:
            return "the CPU table is off (--no_cpu_table): OpenVINO's defaults and plugin_config"
        head = f"CPU family {self.cpu.describe()}: "
        if not self.row:
            return head + "no properties from the CPU table"
        parts = []
        if self.applied:
            parts.append(f"{_format(self.applied)} from the CPU table")
        for key, (value, source) in self.overridden.items():
            parts.append(f"{key}={self.row[key]} from the CPU table, overridden by {source} "
                         f"({key}={value})")
        return head + "; ".join(parts)


def _plain_cpu(device: str) -> bool:
    return device.strip().upper() == "CPU"


@dataclass(frozen=True)
class CpuTable:
    """The table as an engine registry uses it. ``enabled`` False: off (--no_cpu_table).
    ``cpu``: the CPU to choose for (None: this machine's); ``rows``: family -> properties."""

    enabled: bool = True
    cpu: Cpu | None = None
    rows: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: TABLE)

    def choose(self, device: str, plugin_config: Mapping[str, Any] | None = None,
               server: Mapping[str, Any] | None = None) -> Choice | None:
        """The choice for an LLM engine on ``device`` whose plugin_config (the graph's with the
        server's laid over it) is ``plugin_config``; ``server``: the properties --plugin_config
        gave it (to name who overrides the table). None: not plain CPU, the table says
        nothing."""
        if not _plain_cpu(device):
            return None
        cpu = self.cpu or this_cpu()
        if not self.enabled:
            return Choice(cpu, {}, {}, enabled=False)
        row = dict(self.rows.get(cpu.family, {}))
        given = dict(plugin_config or {})
        server = dict(server or {})
        applied = {k: v for k, v in row.items() if k not in given}
        overridden = {k: (given[k], "--plugin_config" if k in server else
                          "the graph's plugin_config") for k in row if k in given}
        return Choice(cpu, row, applied, overridden)

    def apply(self, options: Mapping[str, Any], server: Mapping[str, Any] | None = None,
              default_device: str = "CPU") -> tuple[dict[str, Any], Choice | None]:
        """Engine options (``EngineConfig`` fields, the server's --device/--plugin_config
        already laid over them) with the table's properties laid under their plugin_config,
        and the choice (None: not on plain CPU)."""
        out = dict(options)
        choice = self.choose(str(out.get("device", default_device)),
                             out.get("plugin_config") or {}, server)
        if choice is not None and choice.applied:
            out["plugin_config"] = {**choice.applied, **dict(out.get("plugin_config") or {})}
        return out, choice
