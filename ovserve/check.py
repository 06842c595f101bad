"""``ovserve check``: validate a config and its graphs, like ``nginx -t``.

Parses config.json and every graph, runs the full validation pass, then loads each servable
(Python ``initialize``) and unloads it again (``finalize``). Prints every problem found.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from ovserve.engine.cpu_properties import CpuTable
from ovserve.engine.devices import DeviceChoice
from ovserve.engine.registry import EngineRegistry
from ovserve.errors import GraphConfigError, OvserveError
from ovserve.nodes import BUILTIN_CALCULATORS
from ovserve.serving.model import ModelServable
from ovserve.serving.servable import Servable
from ovserve.serving.server_config import (
    GraphEntry,
    ModelEntry,
    ServableEntry,
    load_subconfig,
)


async def _check_model(entry: ModelEntry, engines: EngineRegistry, out: TextIO,
                       loaded: list[ModelServable], where: str = "") -> bool:
    """Compile every version a plain model serves; keep it loaded for the graphs' checks."""
    try:
        model = await ModelServable.load(entry, engines)
    except OvserveError as exc:
        print(f"  {entry.name}{where}: cannot load: {exc}", file=out)
        return False
    loaded.append(model)
    print(f"  {entry.name}{where}: ok (model {entry.base_path}, version(s) "
          f"{', '.join(map(str, model.versions))})", file=out)
    return True


async def check_entries(entries: list[ServableEntry], out: TextIO,
                        devices: DeviceChoice | None = None, cpu_table: bool = True) -> bool:
    """Check each servable; print a line per servable and one per problem. True if all ok.
    ``devices``: the server's --device / --plugin_config, so models load as they would;
    ``cpu_table``: False as with --no_cpu_table.
    Plain models (the config's, then the graphs' subconfig models) load first and stay loaded
    while the graphs are checked, as the server loads them."""
    ok = True
    engines = EngineRegistry(devices=devices, cpu_table=CpuTable(enabled=cpu_table))
    models: list[ModelServable] = []
    try:
        for entry in entries:
            if isinstance(entry, ModelEntry):
                ok = await _check_model(entry, engines, out, models) and ok
        for entry in entries:
            if isinstance(entry, GraphEntry) and entry.subconfig is not None \
                    and entry.subconfig.is_file():
                try:
                    subconfig = load_subconfig(entry.subconfig)
                except GraphConfigError as exc:
                    ok = False
                    print(f"  {entry.name}: subconfig {entry.subconfig}: {exc}", file=out)
                    continue
                for sub in subconfig:
                    ok = await _check_model(sub, engines, out, models,
                                            f" (subconfig of {entry.name})") and ok
        for entry in entries:
            if isinstance(entry, GraphEntry):
                ok = await _check_graph(entry, engines, out) and ok
    finally:
        for model in models:
            await model.unload()
        engines.close()
    return ok


async def _check_graph(entry: GraphEntry, engines: EngineRegistry, out: TextIO) -> bool:
    try:
        servable = await Servable.load(entry, BUILTIN_CALCULATORS, node_threads=4,
                                       engines=engines)
    except GraphConfigError as exc:
        print(f"  {entry.name}: {len(exc.problems) or 1} problem(s) in {entry.graph_path}",
              file=out)
        for problem in exc.problems or [str(exc)]:
            print(f"    {problem}", file=out)
        return False
    except OvserveError as exc:
        print(f"  {entry.name}: cannot load: {exc}", file=out)
        return False
    await servable.unload()
    nodes = len(servable.graph.nodes)
    print(f"  {entry.name}: ok ({entry.graph_path}, {nodes} node{'s' * (nodes != 1)})",
          file=out)
    return True


def run_check(entries: list[ServableEntry], source: str, devices: DeviceChoice | None = None,
              out: TextIO = sys.stdout, cpu_table: bool = True) -> int:
    print(f"ovserve: checking {source}", file=out)
    ok = asyncio.run(check_entries(entries, out, devices, cpu_table))
    print(f"ovserve: configuration {'is ok' if ok else 'test failed'}", file=out)
    return 0 if ok else 1
