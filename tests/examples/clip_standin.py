"""A tiny random-weight stand-in for ``openai/clip-vit-base-patch16`` and its OpenVINO model, for
OVMS's CLIP demo (demos/python_demos/clip_image_classification) without the hub.

    python -m tests.examples.clip_standin HOME DEMO_DIR [IMAGE LABELS]

- writes a ``CLIPModel`` from a small ``CLIPConfig`` and a ``CLIPProcessor`` with a tiny
  character vocabulary into HOME's Hugging Face cache under the demo's model id, where
  ``from_pretrained("openai/clip-vit-base-patch16")`` finds it with ``HF_HUB_OFFLINE=1``;
- converts it as the demo's download_model.py does into DEMO_DIR/model/1/
  clip-vit-base-patch16.xml (outputs named ``out_<index>``), with two differences forced by
  this environment, see ``convert``;
- with IMAGE and LABELS, prints the label the demo's pipeline must answer (the processor and
  the converted model run directly, with the server's CPU properties).
"""

from __future__ import annotations

import importlib
import json
import string
import sys
from pathlib import Path
from typing import Any

MODEL_ID = "openai/clip-vit-base-patch16"
REVISION = "0" * 40
#: Names the demo's graph.pbtxt gives attention_mask and pixel_values (OVMS 7e4df0c): the
#: TorchScript debug names that its pinned torch 2.8 / transformers <= 4.53 trace adds to those
#: tensors beside the input names, and that OVMS reports (get_any_name: the smallest name).
TRACED_NAMES = {"attention_mask": "958", "pixel_values": "86"}


def _transformers() -> Any:
    """transformers, untyped here (its CLIP classes' signatures are not typed usefully)."""
    return importlib.import_module("transformers")


def snapshot(home: Path) -> Path:
    """Where the model's files live in HOME's hub cache (the layout huggingface_hub reads)."""
    repo = home / ".cache/huggingface/hub" / f"models--{MODEL_ID.replace('/', '--')}"
    return repo / "snapshots" / REVISION


def write_model(home: Path) -> Path:
    """The tiny CLIP and its processor under MODEL_ID in HOME's hub cache."""
    import torch

    tf = _transformers()
    folder = snapshot(home)
    folder.mkdir(parents=True, exist_ok=True)
    refs = folder.parent.parent / "refs"
    refs.mkdir(exist_ok=True)
    (refs / "main").write_text(REVISION)
    chars = [*string.ascii_lowercase, *string.digits, *".,!?'-"]
    vocab = {token: i for i, token in enumerate(
        ["<|startoftext|>", "<|endoftext|>", *chars, *(c + "</w>" for c in chars)])}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")  # no merges: one token per letter
    tokenizer = tf.CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    config = tf.CLIPConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 37,
                     "num_hidden_layers": 1, "num_attention_heads": 2,
                     "max_position_embeddings": 77, "bos_token_id": 0, "eos_token_id": 1,
                     "pad_token_id": 1},
        vision_config={"image_size": 224, "patch_size": 32, "hidden_size": 32,
                       "intermediate_size": 37, "num_hidden_layers": 1,
                       "num_attention_heads": 2},
        projection_dim=16)
    torch.manual_seed(0)
    tf.CLIPModel(config).save_pretrained(folder)
    tf.CLIPProcessor(image_processor=tf.CLIPImageProcessor(), tokenizer=tokenizer
                     ).save_pretrained(folder)
    return folder


def convert(folder: Path, demo: Path) -> Path:
    """download_model.py's conversion of the model in ``folder``, saved where it saves it.

    Two differences, both forced: (1) its ``ov.convert_model(model, example_input=...)``
    traces with TorchScript, which fails under this environment's transformers 5.5 (the demo
    pins transformers <= 4.53; 5.5's causal-mask code breaks torch.jit.trace with "tuple index
    out of range"), so the model is exported with torch.export (dynamic batch and sequence)
    and converted from that; (2) that route names the inputs by their parameters only, so the
    traced names the demo's graph uses ("958", "86") are added to attention_mask and
    pixel_values, as the pinned trace carries them."""
    import openvino as ov
    import torch
    from PIL import Image
    from torch.export import Dim

    tf = _transformers()
    model = tf.CLIPModel.from_pretrained(folder).eval()
    processor = tf.CLIPProcessor.from_pretrained(folder)
    labels = ["cat", "dog", "wolf", "tiger", "man", "horse", "frog", "tree", "house", "computer"]
    example = processor(text=[f"This is a photo of a {label}" for label in labels],
                        images=[Image.new("RGB", (800, 600))], return_tensors="pt",
                        padding=True)

    class Positional(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, pixel_values: Any) -> Any:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              pixel_values=pixel_values, return_dict=False)

    auto = Dim.AUTO
    exported = torch.export.export(
        Positional(model), (), dict(example), strict=False,
        dynamic_shapes={"input_ids": {0: auto, 1: auto}, "attention_mask": {0: auto, 1: auto},
                        "pixel_values": {0: auto}})
    ov_model = ov.convert_model(exported)
    for idx, out in enumerate(ov_model.outputs):  # as download_model.py names them
        out.get_tensor().set_names({f"out_{idx}"})
    for port in ov_model.inputs:
        extra = TRACED_NAMES.get(port.get_any_name())
        if extra:
            port.get_tensor().add_names({extra})
    target = demo / "model" / "1"
    target.mkdir(parents=True, exist_ok=True)
    path = target / "clip-vit-base-patch16.xml"
    ov.save_model(ov_model, str(path))
    return path


def expected_label(folder: Path, model: Path, image: Path, labels: str,
                   properties: dict[str, Any]) -> str:
    """What the demo's graph answers for ``image`` and ``labels`` (its pre- and
    postprocessing, the model run directly)."""
    import numpy as np
    import openvino as ov
    from PIL import Image

    processor = _transformers().CLIPProcessor.from_pretrained(folder)
    names = labels.split(",")
    inputs = processor(text=[f"This is a photo of a {label}" for label in names],
                       images=[Image.open(image)], return_tensors="np", padding=True)
    compiled = ov.Core().compile_model(str(model), "CPU", properties)
    logits = compiled({k: np.asarray(v) for k, v in inputs.items()})["out_0"]
    return names[int(np.argmax(logits[0]))]


def main(argv: list[str]) -> None:
    home, demo = Path(argv[0]), Path(argv[1])
    folder = write_model(home)
    model = convert(folder, demo)
    if len(argv) > 2:
        from tests.conftest import plugin_config

        print(expected_label(folder, model, Path(argv[2]), argv[3], plugin_config()))


if __name__ == "__main__":
    main(sys.argv[1:])
