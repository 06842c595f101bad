"""The CPU table (engine.cpu_properties): the family a flag set names, oneDNN's cap, the table's
properties under an LLM engine's plugin_config on CPU (the graph's plugin_config and
--plugin_config win, other devices and other engine kinds untouched, the off switch), and a
real engine on this machine logging its choice. No verdict depends on this machine's family."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from ovserve.engine.cpu_properties import (
    FAMILIES,
    TABLE,
    Cpu,
    CpuTable,
    family_of,
    read_cpu,
    this_cpu,
)
from ovserve.engine.devices import DeviceChoice
from ovserve.engine.embeddings import EmbeddingConfig
from ovserve.engine.registry import EngineRegistry
from tests.conftest import engine_registry
from tests.engine.test_registry import Factory


def _flags(text: str) -> list[str]:
    return text.split()


# /proc/cpuinfo flags of real CPUs (the vector ones and a few others)
SAPPHIRE_RAPIDS = _flags("fpu sse4_2 avx avx2 fma f16c avx512f avx512dq avx512bw avx512vl "
                         "avx512_vnni avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8")
ZEN4 = _flags("fpu sse4_2 avx avx2 fma avx512f avx512bw avx512_vnni avx512_bf16")
CASCADE_LAKE = _flags("fpu sse4_2 avx avx2 fma avx512f avx512bw avx512_vnni")
SKYLAKE_SP = _flags("fpu sse4_2 avx avx2 fma avx512f avx512bw")
ZEN2 = _flags("fpu sse4_2 avx avx2 fma")
OLD = _flags("fpu sse4_2 avx")

AMX = Cpu("Intel(R) Xeon(R) Platinum 8480+", frozenset(SAPPHIRE_RAPIDS))
ROW = dict(TABLE["amx"])  # the table's row under test: AMX's
#: a table whose AMX row is the real one and whose every other family has one property too, so
#: "untouched" and "overridden" mean something whatever the rows say
TEST_TABLE = {family: {"X_FAMILY": family} for family in FAMILIES} | {
    "amx": {**ROW, "X_FAMILY": "amx"}}


@pytest.mark.parametrize(("flags", "family"), [
    (SAPPHIRE_RAPIDS, "amx"), (ZEN4, "avx512_bf16"), (CASCADE_LAKE, "avx512_vnni"),
    (SKYLAKE_SP, "avx512"), (ZEN2, "avx2"), (OLD, "other"), ([], "other"),
    (["amx_tile", *ZEN4], "avx512_bf16"),  # tiles without bf16/int8 units are not AMX here
])
def test_the_family_of_a_flag_set(flags: list[str], family: str) -> None:
    assert family_of(flags) == family


def test_cpuinfo_gives_the_model_and_flags_and_onednn_caps_the_family() -> None:
    cpuinfo = ("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
               f"flags\t\t: {' '.join(SAPPHIRE_RAPIDS)}\n\nprocessor\t: 1\n"
               "model name\t: Intel(R) Xeon(R) Platinum 8480+\nflags\t\t: fpu\n")
    cpu = read_cpu(cpuinfo, environ={})
    assert (cpu.model, cpu.family, cpu.isa_cap) == ("Intel(R) Xeon(R) Platinum 8480+", "amx", None)
    assert "amx_int8" in cpu.isa_flags and "fpu" not in cpu.isa_flags
    assert cpu.describe() == "amx (Intel(R) Xeon(R) Platinum 8480+)"
    capped = read_cpu(cpuinfo, environ={"ONEDNN_MAX_CPU_ISA": "AVX2"})
    assert (capped.family, capped.own_family) == ("avx2", "amx")
    assert "capped at AVX2" in capped.describe()
    # a cap above the CPU, "ALL" or an unknown name changes nothing
    zen4 = Cpu("AMD EPYC", frozenset(ZEN4), "AVX512_CORE_AMX")
    assert zen4.family == "avx512_bf16" and zen4.describe() == "avx512_bf16 (AMD EPYC)"
    assert read_cpu(cpuinfo, environ={"ONEDNN_MAX_CPU_ISA": "all"}).family == "amx"
    assert read_cpu(cpuinfo, environ={"ONEDNN_MAX_CPU_ISA": "NEW_ISA"}).family == "amx"
    assert read_cpu("", environ={}).family == "other"  # no /proc/cpuinfo


def test_every_family_has_a_row() -> None:
    assert set(TABLE) == set(FAMILIES)
    assert TABLE["amx"] == {"INFERENCE_PRECISION_HINT": "f32"}  # issue 29's measurement


def _registry(table: CpuTable, **kwargs: Any) -> tuple[EngineRegistry, Factory]:
    factory = Factory()
    return EngineRegistry(factory, cpu_table=table, **kwargs), factory


def test_the_table_lies_under_an_llm_engines_plugin_config_on_cpu(
        model: Path, caplog: pytest.LogCaptureFixture) -> None:
    engines, factory = _registry(CpuTable(cpu=AMX, rows=TEST_TABLE))
    with caplog.at_level(logging.INFO, logger="ovserve.engine.registry"):
        engines.acquire("graph", model, plugin_config={"PERFORMANCE_HINT": "LATENCY"})
    ((config, _),) = factory.made
    assert config.plugin_config == {**TEST_TABLE["amx"], "PERFORMANCE_HINT": "LATENCY"}
    described = ", ".join(f"{k}={v}" for k, v in TEST_TABLE["amx"].items())
    assert (f"engine {model.name}: CPU family amx (Intel(R) Xeon(R) Platinum 8480+): "
            f"{described} from the CPU table") in caplog.messages


def test_the_graphs_plugin_config_and_the_servers_win(
        model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    engines, factory = _registry(CpuTable(cpu=AMX, rows=TEST_TABLE))
    with caplog.at_level(logging.INFO, logger="ovserve.engine.registry"):
        engines.acquire("graph", model, plugin_config={"X_FAMILY": "mine"})
    assert factory.made[0][0].plugin_config == {**TEST_TABLE["amx"], "X_FAMILY": "mine"}
    assert any("X_FAMILY=amx from the CPU table, overridden by the graph's plugin_config "
               "(X_FAMILY=mine)" in m for m in caplog.messages)

    other = tmp_path / "other"
    other.mkdir()
    caplog.clear()
    engines, factory = _registry(CpuTable(cpu=AMX, rows=TEST_TABLE),
                                 devices=DeviceChoice(None, {"CPU": {"X_FAMILY": "server"}}))
    with caplog.at_level(logging.INFO, logger="ovserve.engine.registry"):
        engines.acquire("graph", other, plugin_config={"X_FAMILY": "mine"})
    assert factory.made[0][0].plugin_config["X_FAMILY"] == "server"
    assert any("overridden by --plugin_config (X_FAMILY=server)" in m for m in caplog.messages)


@pytest.mark.parametrize("device", ["GPU", "AUTO", "HETERO:GPU,CPU", "NPU"])
def test_other_devices_are_untouched(model: Path, device: str) -> None:
    engines, factory = _registry(CpuTable(cpu=AMX, rows=TEST_TABLE))
    engines.acquire("graph", model, device=device)
    assert factory.made[0][0].plugin_config == {}
    # --device moves a CPU graph elsewhere: untouched too
    engines, factory = _registry(CpuTable(cpu=AMX, rows=TEST_TABLE),
                                 devices=DeviceChoice(device))
    engines.acquire("graph", model, device="CPU")
    assert factory.made[0][0].plugin_config == {}


def test_the_off_switch(model: Path, caplog: pytest.LogCaptureFixture) -> None:
    engines, factory = _registry(CpuTable(enabled=False, cpu=AMX, rows=TEST_TABLE))
    with caplog.at_level(logging.INFO, logger="ovserve.engine.registry"):
        engines.acquire("graph", model)
    assert factory.made[0][0].plugin_config == {}
    assert any("the CPU table is off (--no_cpu_table)" in m for m in caplog.messages)


def test_only_llm_engines(model: Path) -> None:
    made: list[EmbeddingConfig] = []

    def embeddings(config: EmbeddingConfig) -> Any:
        made.append(config)
        return object()

    engines = EngineRegistry(Factory(), embedding_factory=embeddings,
                             cpu_table=CpuTable(cpu=AMX, rows=TEST_TABLE))
    engines.acquire_embeddings("graph", model, device="CPU")
    assert made[0].plugin_config == {}


def test_owners_share_an_engine_whatever_the_table_added(
        model: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The table's properties are not an owner's request: a second graph asking for nothing,
    or for an empty plugin_config, shares the engine without a warning; one asking for another
    value of a table key is warned about (the loaded engine stays), not refused."""
    engines, factory = _registry(CpuTable(cpu=AMX, rows=TEST_TABLE))
    first = engines.acquire("graph_a", model)
    with caplog.at_level(logging.WARNING, logger="ovserve.engine.registry"):
        assert engines.acquire("graph_b", model) is first
        assert engines.acquire("graph_c", model, plugin_config={}) is first
    assert len(factory.made) == 1 and caplog.messages == []

    engines, factory = _registry(CpuTable(cpu=AMX, rows=TEST_TABLE))
    first = engines.acquire("graph_a", model)
    with caplog.at_level(logging.WARNING, logger="ovserve.engine.registry"):
        assert engines.acquire("graph_d", model, plugin_config={"X_FAMILY": "mine"}) is first
    assert len(factory.made) == 1 and len(caplog.messages) == 1
    assert "already loaded with plugin_config" in caplog.messages[0]


def test_a_loaded_engine_on_this_machine_logs_its_choice(
        default_model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Whatever this CPU is: the log names its family and model, and the engine is built with
    the family's row under the plugin_config the tests' environment gives (make test-kernels),
    and loads."""
    engines = engine_registry()
    cpu = this_cpu()
    try:
        with caplog.at_level(logging.INFO, logger="ovserve.engine.registry"):
            engine = engines.acquire("test", default_model_dir)
        assert engine.ready
        (line,) = [m for m in caplog.messages if m.startswith(f"engine {default_model_dir.name}:")]
        server = engines.devices.properties("CPU")
        assert line.startswith(f"engine {default_model_dir.name}: CPU family "
                               f"{cpu.describe()}: ")
        built = dict(engine.config.plugin_config)
        for key, value in TABLE[cpu.family].items():
            assert built[key] == server.get(key, value)
            assert key in line
        if not TABLE[cpu.family]:
            assert line.endswith("no properties from the CPU table")
    finally:
        engines.close()
