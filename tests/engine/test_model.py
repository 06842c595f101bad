"""The plain-model engine on real OpenVINO: reshaping (shape, batch_size), the pool of infer
requests under concurrency and cancellation, input checks, names, zero-copy inputs, rt_info."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from ovserve.engine.model import ModelConfig, ModelEngine
from ovserve.errors import EngineError, InvalidInput
from ovserve.protocol.tensor import Tensor
from tests.conftest import plugin_config
from tests.engine.model_files import affine, assert_affine, classifier, save, unary

F32 = {"INFERENCE_PRECISION_HINT": "f32"}


@pytest.fixture(scope="module")
def affine_xml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save(affine(1), tmp_path_factory.mktemp("affine") / "1")


def engine(path: Path, **options: object) -> ModelEngine:
    options.setdefault("plugin_config", plugin_config(F32))
    return ModelEngine(ModelConfig(path=path, **options))  # type: ignore[arg-type]


def tensors(a: np.ndarray, b: np.ndarray) -> dict[str, Tensor]:
    return {"a": Tensor("a", a), "b": Tensor("b", b)}


@pytest.mark.parametrize(("options", "shapes"), [
    ({}, {"a": (-1, 4), "b": (-1, 3)}),
    ({"batch_size": 3}, {"a": (3, 4), "b": (3, 3)}),
    ({"batch_size": "auto"}, {"a": (-1, 4), "b": (-1, 3)}),
    ({"shape": (("a", "(2,4)"), ("b", "[2,3]"))}, {"a": (2, 4), "b": (2, 3)}),
    ({"shape": (("a", "(1:5,4)"), ("b", "auto"))}, {"a": (-1, 4), "b": (-1, -1)}),
    ({"shape": (("a", "(2,4)"),), "batch_size": 7}, {"a": (2, 4), "b": (-1, 3)}),  # shape wins
])
def test_shape_and_batch_size_reshape(affine_xml: Path, options: dict[str, object],
                                      shapes: dict[str, tuple[int, ...]]) -> None:
    model = engine(affine_xml, **options)
    assert {i.name: i.shape for i in model.inputs} == shapes
    assert [(o.name, o.datatype) for o in model.outputs] == [("y", "FP32"), ("argmax", "INT64")]


@pytest.mark.parametrize(("options", "message"), [
    ({"shape": (("", "(1,4)"),)}, "a single shape was given for 2 inputs"),
    ({"shape": (("c", "(1,4)"),)}, "shape names input 'c', which it does not have"),
    ({"shape": (("a", "(1,5)"),)}, "cannot take the shape"),
    ({"shape": (("a", "(one,4)"),)}, "is not a shape like"),
    ({"device": "GPU.7"}, "device 'GPU.7' is not present"),
])
def test_options_it_cannot_apply_are_engine_errors(affine_xml: Path, options: dict[str, object],
                                                   message: str) -> None:
    with pytest.raises(EngineError, match=message):
        engine(affine_xml, **options)


def test_a_single_shape_for_a_single_input(tmp_path: Path) -> None:
    model = engine(save(unary("x", "y", [-1, 3], 1.0), tmp_path / "1"), shape=(("", "(4,3)"),))
    assert model.inputs[0].shape == (4, 3)


async def test_many_requests_share_a_small_pool(affine_xml: Path) -> None:
    model = engine(affine_xml, nireq=2)
    assert model.nireq == 2
    rng = np.random.default_rng(0)
    cases = [(rng.standard_normal((i % 5 + 1, 4)).astype(np.float32),
              rng.standard_normal((i % 5 + 1, 3)).astype(np.float32)) for i in range(24)]
    results = await asyncio.gather(*(model.infer(model.check_inputs(tensors(a, b), "m"))
                                     for a, b in cases))
    for (a, b), result in zip(cases, results, strict=True):
        assert_affine(result["y"], result["argmax"], 1, a, b)
    assert len(model._idle) == 2 and not model._waiters
    assert model.total_requests == 24


async def test_cancelled_requests_give_their_infer_request_back(affine_xml: Path) -> None:
    model = engine(affine_xml, nireq=1)
    a, b = np.ones((64, 4), np.float32), np.ones((64, 3), np.float32)
    tasks = [asyncio.create_task(model.infer(model.check_inputs(tensors(a, b), "m")))
             for _ in range(6)]
    await asyncio.sleep(0)
    for task in tasks[1::2]:
        task.cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert sum(isinstance(d, asyncio.CancelledError) for d in done) == 3
    assert all(isinstance(d, dict) for d in done[::2])
    for _ in range(50):  # a cancelled run still completes in OpenVINO, then comes back
        if len(model._idle) == 1:
            break
        await asyncio.sleep(0.02)
    assert len(model._idle) == 1 and not model._waiters
    result = await model.infer(model.check_inputs(tensors(a, b), "m"))
    assert result["y"].shape == (64, 3)


@pytest.mark.parametrize(("given", "message"), [
    ({"a": ("FP32", (1, 4))}, "missing input 'b'"),
    ({"a": ("FP32", (1, 4)), "b": ("FP32", (1, 3)), "c": ("FP32", (1,))}, "has no input 'c'"),
    ({"a": ("FP16", (1, 4)), "b": ("FP32", (1, 3))}, "input 'a' takes FP32, not FP16"),
    ({"a": ("FP32", (1, 4, 1)), "b": ("FP32", (1, 3))}, "input 'a' takes shape [?,4]"),
])
def test_input_checks_name_the_input(
        affine_xml: Path, given: dict[str, tuple[str, tuple[int, ...]]], message: str) -> None:
    model = engine(affine_xml)
    inputs = {name: Tensor(name, np.zeros(shape, np.float32 if dt == "FP32" else np.float16),
                           datatype=dt) for name, (dt, shape) in given.items()}
    with pytest.raises(InvalidInput, match=message.replace("[", r"\[").replace("?", r"\?")):
        model.check_inputs(inputs, "m")


def test_a_size_that_does_not_fit_the_shape(affine_xml: Path) -> None:
    model = engine(affine_xml)
    short = Tensor("a", bytes(12), shape=(1, 4), datatype="FP32")
    with pytest.raises(InvalidInput, match="input 'a' has 12 bytes but shape"):
        model.check_inputs({"a": short, "b": Tensor("b", np.zeros((1, 3), np.float32))}, "m")


def test_inputs_are_numpy_views_of_the_request_memory(affine_xml: Path) -> None:
    model = engine(affine_xml)
    a, b = np.ones((2, 4), np.float32), np.ones((2, 3), np.float32)
    arrays = model.check_inputs(tensors(a, b), "m")
    assert np.shares_memory(arrays["a"], a) and arrays["a"].flags.writeable  # a node's array
    raw = np.zeros((1, 4), np.float32).tobytes()
    arrays = model.check_inputs({"a": Tensor("a", raw, shape=(1, 4), datatype="FP32"),
                                 "b": Tensor("b", np.zeros((1, 3), np.float32))}, "m")
    assert not arrays["a"].flags.writeable  # request bytes: read-only, copied by OpenVINO only


def test_any_name_of_a_tensor_finds_it(tmp_path: Path) -> None:
    model = unary("attention_mask", "out", [2], 1.0)
    model.inputs[0].get_tensor().add_names({"958"})  # type: ignore[attr-defined]
    loaded = engine(save(model, tmp_path / "1"))
    assert loaded.inputs[0].name == "958"  # what OVMS reports: the smallest name
    assert loaded.input("attention_mask") is loaded.input("958") is loaded.inputs[0]


def test_rt_info_model_info_as_ovms_reports_it(tmp_path: Path) -> None:
    model = classifier("0", "1463", classes=4)
    model.set_rt_info(["cat", "dog"], ["model_info", "labels"])  # type: ignore[attr-defined]
    loaded = engine(save(model, tmp_path / "1"))
    assert loaded.rt_info == {"model_info": {"labels": "cat dog"}}


async def test_mapping_config_renames_inputs_and_outputs(tmp_path: Path) -> None:
    path = save(affine(1), tmp_path / "1")
    (tmp_path / "1" / "mapping_config.json").write_text(
        '{"inputs": {"a": "features"}, "outputs": {"y": "scores"}}')
    model = engine(path)
    assert [i.name for i in model.inputs] == ["features", "b"]
    assert [o.name for o in model.outputs] == ["scores", "argmax"]
    a, b = np.ones((1, 4), np.float32), np.zeros((1, 3), np.float32)
    with pytest.raises(InvalidInput, match="has no input 'a'"):  # only the new name, as OVMS
        model.check_inputs(tensors(a, b), "m")
    out = await model.infer(model.check_inputs({"features": Tensor("f", a),
                                                "b": Tensor("b", b)}, "m"))
    assert_affine(out["scores"], out["argmax"], 1, a, b)
    (tmp_path / "1" / "mapping_config.json").write_text('{"inputs": ["a"]}')
    with pytest.raises(EngineError, match=r"mapping_config\.json: expected"):
        engine(path)


async def test_inputs_that_fit_alone_but_not_together_are_invalid(affine_xml: Path) -> None:
    model = engine(affine_xml, nireq=1)
    arrays = model.check_inputs(tensors(np.ones((2, 4), np.float32),
                                        np.ones((3, 3), np.float32)), "m")
    with pytest.raises(InvalidInput, match="cannot run on these inputs"):
        await asyncio.wait_for(model.infer(arrays), 30)  # OpenVINO's callback never comes
    assert len(model._idle) == 1  # the request is back, and works
    one = model.check_inputs(tensors(np.ones((1, 4), np.float32), np.ones((1, 3), np.float32)),
                             "m")
    assert (await model.infer(one))["y"].shape == (1, 3)
