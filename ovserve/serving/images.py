"""IMAGE graph inputs: HWC pixels in raw contents, checked as OVMS checks a KServe input it
turns into a MediaPipe ImageFrame (src/kfs_frontend/kfs_graph_executor_impl.cpp)."""

from __future__ import annotations

from ovserve.errors import InvalidInput
from ovserve.protocol.tensor import Tensor

#: Datatype -> channel counts an image of it may have (OVMS's KFSDatatypeToImageFormat).
IMAGE_CHANNELS: dict[str, tuple[int, ...]] = {
    "UINT8": (1, 3, 4), "INT8": (1, 3, 4), "UINT16": (1, 3, 4), "INT16": (1, 3, 4),
    "FP32": (1, 2, 4),
}


def check_image(servable: str, tensor: Tensor) -> None:
    """Raise ``InvalidInput`` naming the input unless ``tensor`` is an HWC image."""
    where = f"servable {servable}: input {tensor.name!r} (an IMAGE stream)"
    if len(tensor.shape) != 3 or min(tensor.shape) <= 0:
        raise InvalidInput(f"{where}: shape {list(tensor.shape)} is not height, width, channels "
                           "(HWC), each above 0", tensor.name)
    channels = IMAGE_CHANNELS.get(tensor.datatype)
    if channels is None or tensor.shape[2] not in channels:
        kinds = "; ".join(f"{dt} with {'/'.join(map(str, ch))} channels"
                          for dt, ch in IMAGE_CHANNELS.items())
        raise InvalidInput(f"{where}: {tensor.datatype} with {tensor.shape[2]} channel(s) is not "
                           f"an image format ({kinds})", tensor.name)
