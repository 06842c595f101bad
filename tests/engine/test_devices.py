"""Device strings: what they need, the clear error when the machine lacks it, and the
server-wide choice (--device, --plugin_config) laid over each engine's options."""

from __future__ import annotations

import pytest

from ovserve.engine.devices import DeviceChoice, available_devices, check, needed
from ovserve.errors import EngineError


@pytest.mark.parametrize(("device", "names"), [
    ("CPU", ["CPU"]), ("gpu.1", ["GPU.1"]), ("AUTO", []), ("AUTO:GPU,CPU", ["GPU", "CPU"]),
    ("HETERO:GPU,CPU", ["GPU", "CPU"]), ("MULTI:GPU.0,GPU.1", ["GPU.0", "GPU.1"])])
def test_needed_devices(device: str, names: list[str]) -> None:
    assert needed(device) == names


@pytest.mark.parametrize("device", ["CPU", "GPU", "GPU.0", "GPU.1", "AUTO", "HETERO:GPU,CPU"])
def test_present_devices_pass(device: str) -> None:
    check(device, ["CPU", "GPU.0", "GPU.1"])
    if device != "GPU.1":
        check(device, ["CPU", "GPU"])  # one GPU: OpenVINO says "GPU"


@pytest.mark.parametrize(("device", "missing"), [
    ("GPU", "GPU"), ("GPU.1", "GPU.1"), ("HETERO:GPU,CPU", "GPU"), ("NPU", "NPU")])
def test_missing_devices_are_named_with_those_present(device: str, missing: str) -> None:
    with pytest.raises(EngineError) as info:
        check(device, ["CPU"])
    message = str(info.value)
    assert f"{missing} is missing; available: CPU" in message
    assert ("/dev/dri" in message) == missing.startswith("GPU")


def test_this_machine_has_a_cpu() -> None:
    assert "CPU" in available_devices()
    check("CPU")


def test_the_servers_choice_is_laid_over_the_graphs() -> None:
    choice = DeviceChoice("GPU", {"GPU": {"INFERENCE_PRECISION_HINT": "f16"},
                                  "CPU": {"INFERENCE_NUM_THREADS": 1}})
    assert choice.apply({"device": "CPU", "plugin_config": {"PERF": "x"}}) == {
        "device": "GPU", "plugin_config": {"PERF": "x", "INFERENCE_PRECISION_HINT": "f16"}}
    hetero = DeviceChoice("HETERO:GPU,CPU", choice.plugin_config).apply({})
    assert hetero["plugin_config"] == {"INFERENCE_PRECISION_HINT": "f16",
                                       "INFERENCE_NUM_THREADS": 1}
    keep = DeviceChoice(None, {"CPU": {"INFERENCE_NUM_THREADS": 1}})
    assert keep.apply({"device": "CPU"}) == {"device": "CPU",
                                             "plugin_config": {"INFERENCE_NUM_THREADS": 1}}
    assert DeviceChoice().apply({"device": "CPU"}) == {"device": "CPU"}
