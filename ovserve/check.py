"""``ovserve check``: validate a config and its graphs, like ``nginx -t``.

Parses config.json and every graph, runs the full validation pass, then loads each servable
(Python ``initialize``) and unloads it again (``finalize``). Prints every problem found.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from ovserve.engine.devices import DeviceChoice
from ovserve.engine.registry import EngineRegistry
from ovserve.errors import GraphConfigError, OvserveError
from ovserve.nodes import BUILTIN_CALCULATORS
from ovserve.serving.model import ModelServable
from ovserve.serving.servable import Servable
from ovserve.serving.server_config import ModelEntry, ServableEntry


async def check_entries(entries: list[ServableEntry], out: TextIO,
                        devices: DeviceChoice | None = None) -> bool:
    """Check each servable; print a line per servable and one per problem. True if all ok.
    ``devices``: the server's --device / --plugin_config, so models load as they would."""
    ok = True
    for entry in entries:
        if isinstance(entry, ModelEntry):  # a plain model: compile every version it serves
            try:
                model = await ModelServable.load(entry, EngineRegistry(devices=devices))
            except OvserveError as exc:
                ok = False
                print(f"  {entry.name}: cannot load: {exc}", file=out)
                continue
            await model.unload()
            print(f"  {entry.name}: ok (model {entry.base_path}, version(s) "
                  f"{', '.join(map(str, model.versions))})", file=out)
            continue
        try:
            servable = await Servable.load(entry, BUILTIN_CALCULATORS, node_threads=4,
                                           engines=EngineRegistry(devices=devices))
        except GraphConfigError as exc:
            ok = False
            print(f"  {entry.name}: {len(exc.problems)} problem(s) in {entry.graph_path}",
                  file=out)
            for problem in exc.problems:
                print(f"    {problem}", file=out)
            continue
        except OvserveError as exc:
            ok = False
            print(f"  {entry.name}: cannot load: {exc}", file=out)
            continue
        await servable.unload()
        nodes = len(servable.graph.nodes)
        print(f"  {entry.name}: ok ({entry.graph_path}, {nodes} node{'s' * (nodes != 1)})",
              file=out)
    return ok


def run_check(entries: list[ServableEntry], source: str, devices: DeviceChoice | None = None,
              out: TextIO = sys.stdout) -> int:
    print(f"ovserve: checking {source}", file=out)
    ok = asyncio.run(check_entries(entries, out, devices))
    print(f"ovserve: configuration {'is ok' if ok else 'test failed'}", file=out)
    return 0 if ok else 1
