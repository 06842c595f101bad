"""What OVMS's Python image gives handlers beyond ``pyovms``, supplied to handlers here.

OVMS's image ships an optimum-intel build whose ``OVModelForCausalLM.clone()`` returns a model
that shares the compiled model but has an infer request (and so a KV cache) of its own; the
LLM demo handlers written for OVMS call it once per request. optimum-intel from PyPI has no
``clone``. ``install()`` adds it, only where it is missing, when the handler imports
optimum-intel's decoder module (a post-import hook: optimum is heavy and most handlers never
import it), or at once if it is already imported.
"""

from __future__ import annotations

import copy
import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Sequence
from types import ModuleType
from typing import Any

MODULE = "optimum.intel.openvino.modeling_decoder"
_lock = threading.Lock()
_installed = False


def clone(self: Any) -> Any:
    """A copy of the model sharing its compiled model, with an infer request of its own."""
    if getattr(self, "request", None) is None:
        self.compile()
    model = copy.copy(self)
    model.request = self.request.get_compiled_model().create_infer_request()
    return model


def _patch(module: ModuleType) -> None:
    cls = getattr(module, "OVModelForCausalLM", None)
    if cls is not None and not hasattr(cls, "clone"):
        cls.clone = clone


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        _patch(module)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != MODULE:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _PatchingLoader(spec.loader)
                return spec
        return None


def install() -> None:
    """Make ``OVModelForCausalLM.clone`` available to handlers (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
        if MODULE in sys.modules:
            _patch(sys.modules[MODULE])
        else:
            sys.meta_path.insert(0, _Finder())
