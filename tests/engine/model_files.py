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


#: Machine epsilon of the coarsest precision OpenVINO's CPU plugin may run these models in:
#: bf16 (8 significant bits), the default where the CPU has AMX or AVX-512 BF16, and what
#: `make test-kernels` forces; f32 and f16 are finer.
COARSEST_EPS = 2.0 ** -8


def assert_affine(y: np.ndarray, argmax: np.ndarray, version: int, a: np.ndarray,
                  b: np.ndarray) -> None:
    """``y`` and ``argmax`` are what ``affine(version)`` computes for ``a`` and ``b``, whatever
    precision the CPU ran it in: ``y`` within a forward error bound (inputs, weights and result
    rounded, relative to the magnitudes summed: 4 eps of |a| @ |W| + |b|, far below what tells
    versions apart), ``argmax`` a place where ``y`` is largest, and numpy's wherever numpy's
    top two are further apart than the bound (elsewhere the rounding may pick either)."""
    w = weights(version)
    reference = a @ w + b
    bound = 4 * COARSEST_EPS * (np.abs(a) @ np.abs(w) + np.abs(b)) + 1e-6
    off = np.abs(y - reference) - bound
    assert off.max() <= 0, f"y is {off.max():.3g} past the rounding bound of the reference"
    rows = np.arange(len(y))
    assert np.array_equal(y[rows, argmax], y.max(axis=1)), "argmax is not where y is largest"
    top_two = np.sort(reference, axis=1)[:, -2:]
    clear = top_two[:, 1] - top_two[:, 0] > 2 * bound.max(axis=1)
    np.testing.assert_array_equal(argmax[clear], reference.argmax(axis=1)[clear])


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
