"""Small plain OpenVINO models made by script (``ov.Model`` from openvino.opset), saved as IR
in OVMS's version-folder layout, and numpy references for what they compute."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def save(model: object, folder: Path, name: str = "model") -> Path:
    """Save ``model`` as ``folder/name.xml`` (+ .bin); the path of the .xml."""
    import openvino as ov

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.xml"
    ov.save_model(model, str(path), compress_to_fp16=False)
    return path


def weights(version: int) -> np.ndarray:
    """The matmul weights of ``affine`` version ``version``: different per version."""
    rng = np.random.default_rng(version)
    return rng.standard_normal((4, 3)).astype(np.float32)


def affine(version: int) -> object:
    """Two inputs ``a`` FP32 [-1, 4] and ``b`` FP32 [-1, 3] (a dynamic batch); outputs
    ``y`` = a @ W(version) + b (FP32 [-1, 3]) and ``argmax`` (INT64 [-1])."""
    import openvino as ov
    import openvino.opset13 as ops

    a = ops.parameter([-1, 4], np.float32, name="a")
    b = ops.parameter([-1, 3], np.float32, name="b")
    y = ops.add(ops.matmul(a, ops.constant(weights(version)), False, False), b)
    arg = ops.topk(y, ops.constant(np.int64(1)), axis=1, mode="max", sort="none",
                   index_element_type="i64").output(1)
    flat = ops.squeeze(arg, ops.constant(np.array([1], np.int64)))
    y.output(0).get_tensor().set_names({"y"})
    flat.output(0).get_tensor().set_names({"argmax"})
    return ov.Model([y, flat], [a, b], f"affine_v{version}")


def affine_reference(version: int, a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    y = a @ weights(version) + b
    return {"y": y, "argmax": y.argmax(axis=1).astype(np.int64)}


def unary(input_name: str, output_name: str, shape: list[int], add: float) -> object:
    """One input, one output: x + ``add`` (OVMS's test ``dummy`` model is b -> a, +1)."""
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter(shape, np.float32, name=input_name)
    out = ops.add(x, ops.constant(np.float32(add)))
    out.output(0).get_tensor().set_names({output_name})
    return ov.Model([out], [x], "unary")


def add_two(shape: list[int]) -> object:
    """OVMS's ``add_two_inputs_model``: input1 + input2 -> sum."""
    import openvino as ov
    import openvino.opset13 as ops

    one = ops.parameter(shape, np.float32, name="input1")
    two = ops.parameter(shape, np.float32, name="input2")
    out = ops.add(one, two)
    out.output(0).get_tensor().set_names({"sum"})
    return ov.Model([out], [one, two], "add_two_inputs")


def classifier(input_name: str, output_name: str, classes: int = 1000) -> object:
    """A stand-in image classifier: FP32 [1,3,224,224] -> [1, classes] (channel means
    through a fixed projection)."""
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter([1, 3, 224, 224], np.float32, name=input_name)
    means = ops.reduce_mean(x, ops.constant(np.array([2, 3], np.int64)), keep_dims=False)
    projection = np.random.default_rng(0).standard_normal((3, classes)).astype(np.float32)
    out = ops.matmul(means, ops.constant(projection), False, False)
    out.output(0).get_tensor().set_names({output_name})
    return ov.Model([out], [x], "classifier")
