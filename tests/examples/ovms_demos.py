"""Run OVMS's documented demos as their READMEs say, with ovserve in place of OVMS's image.

A README's ``docker run ... -v HOST:PATH ... openvino/model_server:TAG ARGS`` becomes
``ovserve ARGS`` run in a private mount and network namespace (root, util-linux ``unshare``,
iproute2 ``ip``): each HOST folder is bound at its PATH as docker mounts it, so graphs that say
``/models/...`` or ``/workspace/...`` run unchanged, and the namespace's own loopback gives the
demo its fixed ports (9000, 8000) whatever else the machine runs. The host sees no mount; a
missing mount point is created (an empty folder) as docker would create it.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

#: docker run options that take a value (the others are flags).
_VALUED = {"-p", "--publish", "-e", "--env", "--name", "-w", "--workdir", "-u", "--user",
           "--device", "--shm-size", "--entrypoint", "--network", "--group-add", "-m",
           "--cpus", "--env-file"}


def code_blocks(markdown: str, language: str = "bash") -> list[str]:
    """The fenced code blocks of ``language`` in a README, in order."""
    return re.findall(rf"```{language}\n(.*?)```", markdown, flags=re.S)


def parse_docker_run(command: str, pwd: Path) -> tuple[dict[str, Path], list[str]]:
    """(container path -> host folder, the server's arguments) of a README's docker run."""
    for form in ("$(pwd)", "${PWD}", "$PWD"):
        command = command.replace(form, str(pwd))
    tokens = shlex.split(command)
    assert tokens[:2] == ["docker", "run"], command
    mounts: dict[str, Path] = {}
    i = 2
    while i < len(tokens) and tokens[i].startswith("-"):
        if tokens[i] in ("-v", "--volume"):
            host, path = tokens[i + 1].split(":")[:2]
            mounts[path] = Path(host)
            i += 2
        else:
            i += 2 if tokens[i] in _VALUED else 1
    return mounts, tokens[i + 1:]  # tokens[i] is the image


def in_namespace(mounts: dict[str, Path], script: str) -> list[str]:
    """The command running ``script`` (bash) with ``mounts`` bound and a loopback of its own."""
    lines = ["set -e", "ip link set lo up"]
    for path, host in mounts.items():
        lines += [f"mkdir -p {shlex.quote(path)}",
                  f"mount --bind {shlex.quote(str(host))} {shlex.quote(path)}"]
    return ["unshare", "--mount", "--net", "--propagation", "private", "bash", "-c",
            "\n".join(lines) + "\n" + script]


def serve_and_run(mounts: dict[str, Path], server_args: list[str], client: str, cwd: Path,
                  timeout: float = 600, env: dict[str, str] | None = None
                  ) -> subprocess.CompletedProcess[str]:
    """Start ovserve with ``server_args`` in the namespace, wait until it is ready over gRPC
    (``--port``), run ``client`` (bash, in ``cwd``), stop the server. The server's log goes to
    ``cwd/ovserve.log``. ``env``: more variables for both (e.g. ``HF_HUB_OFFLINE``)."""
    port = server_args[server_args.index("--port") + 1] if "--port" in server_args else "9000"
    python = shlex.quote(sys.executable)
    wait = (f"{python} -c 'import sys, time, tritonclient.grpc as g\n"
            f"c = g.InferenceServerClient(\"localhost:{port}\")\n"
            "for _ in range(600):\n"
            "    try:\n"
            "        if c.is_server_ready(): sys.exit(0)\n"
            "    except Exception: pass\n"
            "    time.sleep(0.2)\n"
            "sys.exit(\"ovserve did not become ready\")'")
    script = "\n".join([
        f"{python} -m ovserve {shlex.join(server_args)} > ovserve.log 2>&1 &",
        "server=$!",
        "trap 'kill -TERM $server 2>/dev/null; wait $server' EXIT",
        wait,
        client,
    ])
    env_path = f"{REPO / '.venv/bin'}:/usr/sbin:/usr/bin:/sbin:/bin"
    return subprocess.run(in_namespace(mounts, script), cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={"PATH": env_path, "HOME": str(cwd),
                                                           "PYTHONUNBUFFERED": "1", **(env or {})})
