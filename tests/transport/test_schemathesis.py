"""Schemathesis against the published /openapi.json (issue 17), with a bounded budget: no
server error, every status, content type, header and body as the spec says, malformed input
refused. ``positive_data_acceptance`` is left out: some schema-valid requests are refused by
rules a schema cannot state (``best_of`` equal to ``n``, one structured-output constraint at a
time, an adapter folder that must exist, a servable's own inputs), each with a 400 naming
the field."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx

from tests.transport.server import Server

CONFIG = Path(__file__).with_name("schemathesis.toml")
MAX_EXAMPLES = 20  # per operation and phase: about 3,000 requests, 15 s here


def test_the_published_spec_holds(server: Server) -> None:
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st, "schemathesis is not installed (requirements/dev.txt)"
    run = subprocess.run(
        [st, "--config-file", str(CONFIG), "run", f"{server.rest_url}/openapi.json",
         "--checks", "all", "--exclude-checks", "positive_data_acceptance",
         "--max-examples", str(MAX_EXAMPLES), "--request-timeout", "30", "--seed", "1",
         "--no-color"],
        capture_output=True, text=True, timeout=900)
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-6000:]
    spec = httpx.get(f"{server.rest_url}/openapi.json").json()
    operations = sum(len(methods) for methods in spec["paths"].values())
    assert f"Tested: {operations}" in report  # every operation of the spec
    cases = re.search(r"(\d+) generated, (\d+) passed", report)
    assert cases and cases.group(1) == cases.group(2) and int(cases.group(1)) > 1000, report[-800:]
