"""PEFT adapter folders: reading, checks against the base model, and the catalog (no engine)."""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

import pytest

from ovserve.engine.adapters import AdapterSource, read_adapter
from ovserve.engine.base import LoraOptions
from ovserve.engine.lora_catalog import AdapterCatalog
from ovserve.errors import AdapterConflict, AdapterError, AdapterNotFound
from tests.engine.lora_files import model_shapes, write_adapter


def read(folder: Path, max_rank: int = 64) -> object:
    return read_adapter(AdapterSource(folder.name, folder), model_shapes(), max_rank)


def test_reads_peft_matrices_and_applies_alpha_over_r(tmp_path: Path) -> None:
    weights = read_adapter(AdapterSource("a", write_adapter(tmp_path / "a", seed=1, rank=4,
                                                            alpha=32)), model_shapes(), 64)
    assert weights.rank == 4 and weights.scale == 8.0
    assert len(weights.a) == 60  # q_proj and v_proj of 30 layers
    assert weights.a["model.layers.0.self_attn.q_proj"].shape == (4, 576)
    assert weights.b["model.layers.0.self_attn.v_proj"].shape == (192, 4)


def test_rslora_scale_is_alpha_over_sqrt_r(tmp_path: Path) -> None:
    folder = write_adapter(tmp_path / "rs", seed=1, rank=16, alpha=8)
    config = (folder / "adapter_config.json")
    config.write_text(config.read_text().replace('"r": 16', '"r": 16, "use_rslora": true'))
    assert read_adapter(AdapterSource("rs", folder), model_shapes(), 64).scale == 8 / math.sqrt(16)


@pytest.mark.parametrize(("damage", "message"), [
    ("other_base", "another model"),
    ("corrupt", "not a readable safetensors"),
    ("missing_weights", "no adapter_model.safetensors"),
    ("missing_config", "no adapter_config.json"),
    ("bad_json", "not valid JSON"),
    ("dora", "DoRA"),
])
def test_unusable_adapters_get_a_clear_error(tmp_path: Path, damage: str, message: str) -> None:
    folder = write_adapter(tmp_path / "bad", seed=2,
                           in_features=640 if damage == "other_base" else None)
    weights, config = folder / "adapter_model.safetensors", folder / "adapter_config.json"
    if damage == "corrupt":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif damage == "missing_weights":
        weights.unlink()
    elif damage == "missing_config":
        config.unlink()
    elif damage == "bad_json":
        config.write_text("{nope")
    elif damage == "dora":
        config.write_text('{"r": 8, "lora_alpha": 16, "use_dora": true}')
    with pytest.raises(AdapterError, match=message) as error:
        read(folder)
    assert "'bad'" in str(error.value)  # names the adapter


def test_rank_over_the_limit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AdapterError, match="rank 16 is over max_lora_rank 8"):
        read(write_adapter(tmp_path / "big", seed=3, rank=16), max_rank=8)


def test_catalog_scans_skips_bad_folders_and_follows_changes(tmp_path: Path) -> None:
    root = tmp_path / "loras"
    write_adapter(root / "one", seed=1)
    write_adapter(root / "broken", seed=2, in_features=100)
    catalog = AdapterCatalog(LoraOptions(dirs=(root,)), model_shapes())
    catalog.refresh()
    assert sorted(catalog.known()) == ["one"]  # the bad one is skipped, the rest served
    write_adapter(root / "two", seed=3)
    assert catalog.get("two").path == root / "two"  # a miss re-scans
    shutil.rmtree(root / "one")
    catalog.refresh()
    assert sorted(catalog.known()) == ["two"]
    with pytest.raises(AdapterNotFound):
        catalog.get("one")


def test_catalog_load_and_unload_like_vllm(tmp_path: Path) -> None:
    write_adapter(tmp_path / "loras" / "one", seed=1)
    catalog = AdapterCatalog(LoraOptions(dirs=(tmp_path / "loras",)), model_shapes())
    catalog.refresh()
    extra = write_adapter(tmp_path / "elsewhere", seed=2)
    assert catalog.load("extra", extra).name == "extra"
    with pytest.raises(AdapterConflict, match="already loaded"):
        catalog.load("one", extra)
    with pytest.raises(AdapterError, match="lora_name"):
        catalog.load("no/slash", extra)
    with pytest.raises(AdapterError, match="over max_lora_rank"):
        AdapterCatalog(LoraOptions(max_lora_rank=4), model_shapes()).load("x", extra)
    catalog.unload("extra")
    with pytest.raises(AdapterNotFound):
        catalog.unload("extra")
    assert sorted(catalog.known()) == ["one"]


def test_slots_keep_the_most_recently_used(tmp_path: Path) -> None:
    for name in "abcd":
        write_adapter(tmp_path / name, seed=ord(name))
    catalog = AdapterCatalog(LoraOptions(dirs=(tmp_path,), max_loras=3), model_shapes())
    catalog.refresh()
    for name in ("c", "a", "b"):
        catalog.touch(name)
    catalog.touch("d")
    assert catalog.slots_with("d", ["a", "b", "c"]) == ["a", "b", "d"]  # c: least recent
    assert catalog.initial_slots() == ["a", "b", "c"]


def test_a_reloaded_or_rewritten_adapter_gets_a_new_version(tmp_path: Path) -> None:
    root = tmp_path / "loras"
    write_adapter(root / "one", seed=1)
    catalog = AdapterCatalog(LoraOptions(dirs=(root,)), model_shapes())
    catalog.refresh()
    first = catalog.version("one")
    catalog.refresh()
    assert catalog.version("one") == first  # unchanged files: same weights
    shutil.rmtree(root / "one")
    write_adapter(root / "one", seed=2)  # retrained in place
    catalog.refresh()
    assert catalog.version("one") > first
    catalog.unload("one")
    catalog.load("one", write_adapter(tmp_path / "elsewhere", seed=3))
    assert catalog.version("one") > first + 1


def test_refresh_interval_finds_new_folders_without_a_request(tmp_path: Path) -> None:
    catalog = AdapterCatalog(LoraOptions(dirs=(tmp_path,), refresh_seconds=0.05),
                             model_shapes())
    catalog.refresh()
    assert catalog.known() == {}
    write_adapter(tmp_path / "later", seed=1)
    time.sleep(0.06)
    catalog.refresh_if_due()
    assert list(catalog.known()) == ["later"]
