"""OpenVINO device names: which a device string needs, whether this machine has them, and the
server-wide device choice (``--device``, ``--plugin_config``) laid over every engine's own.

A device string is a plain device (``CPU``, ``GPU``, ``GPU.1``, ``NPU``) or a virtual one over
a list (``AUTO``, ``AUTO:GPU,CPU``, ``HETERO:GPU,CPU``, ``MULTI:GPU,CPU``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ovserve.errors import EngineError

VIRTUAL = ("AUTO", "HETERO", "MULTI", "BATCH")
#: the ``plugin_config`` key whose properties apply on every device (OVMS's flat form)
EVERY_DEVICE = "*"


def available_devices() -> list[str]:
    import openvino as ov

    return list(ov.Core().available_devices)


def needed(device: str) -> list[str]:
    """The physical devices a device string names (``AUTO`` alone names none: it picks)."""
    name, _, targets = device.upper().partition(":")
    if name in VIRTUAL:
        return [t.strip() for t in targets.split(",") if t.strip()]
    return [name]


def _present(name: str, present: list[str]) -> bool:
    if name in present:
        return True
    base, _, index = name.partition(".")
    if not index:  # "GPU" with GPU.0 and GPU.1 present
        return any(p.split(".")[0] == base for p in present)
    return index == "0" and base in present  # "GPU.0" where OpenVINO says just "GPU"


def check(device: str, present: list[str] | None = None) -> None:
    """Raises an EngineError naming the missing device and the devices present."""
    present = available_devices() if present is None else present
    missing = [name for name in needed(device) if not _present(name, present)]
    if missing:
        hint = (" (an Intel GPU needs its driver and /dev/dri in the container; see the "
                "README)") if missing[0].startswith("GPU") else ""
        raise EngineError(f"device {device!r} is not present: {missing[0]} is missing; "
                          f"available: {', '.join(present) or 'none'}{hint}")


@dataclass(frozen=True)
class DeviceChoice:
    """The server's device choice: ``device`` replaces every engine's (None keeps the graphs'
    own); ``plugin_config`` maps a device name to properties laid over an engine's
    plugin_config when it runs there (e.g. ``{"GPU": {"INFERENCE_PRECISION_HINT": "f16"}}``);
    key ``EVERY_DEVICE`` holds properties for every device (``--plugin_config``'s flat form)."""

    device: str | None = None
    plugin_config: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def apply(self, options: dict[str, Any], default: str = "CPU") -> dict[str, Any]:
        """Engine options with the choice laid over them."""
        out = dict(options)
        if self.device is not None:
            out["device"] = self.device
        extra = self.properties(str(out.get("device", default)))
        if extra:
            out["plugin_config"] = {**dict(out.get("plugin_config") or {}), **extra}
        return out

    def properties(self, device: str) -> dict[str, Any]:
        """The properties the choice lays over an engine on ``device``: those for every
        device, then the device's own, then those of the devices a virtual one names."""
        device = device.upper()
        extra: dict[str, Any] = {}
        for name in (EVERY_DEVICE, device, *needed(device)):
            extra.update(self.plugin_config.get(name, {}))
        return extra
