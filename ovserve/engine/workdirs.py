"""The work folders of engine processes with LoRA slots (their widened model is written there,
``engine.lora_graph``): made by the server for each engine process, removed when that process is
gone. A server that is itself killed (SIGKILL, out of memory) cannot remove them, so each new one
first sweeps the folders of servers on this host that no longer run."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "ovserve-lora-"


def _owner_tag() -> str:
    """host and process id: a folder is swept only by a server of the same host (a container
    of its own sees other pids), and only when its process is gone."""
    host = "".join(c if c.isalnum() else "_" for c in socket.gethostname())[:32] or "host"
    return f"{host}.{os.getpid()}"


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's: it runs
        return False
    return False


def sweep() -> list[Path]:
    """Remove the work folders of this host's servers that no longer run; the removed ones."""
    host = _owner_tag().rsplit(".", 1)[0]
    removed = []
    for folder in Path(tempfile.gettempdir()).glob(f"{PREFIX}{host}.*-*"):
        pid = folder.name[len(PREFIX) + len(host) + 1:].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and _gone(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            if not folder.exists():
                removed.append(folder)
    if removed:
        log.info("removed %d LoRA work folder(s) of servers that were killed: %s", len(removed),
                 ", ".join(f.name for f in removed))
    return removed


def make() -> str:
    """A new work folder for one engine process, named after this server (see ``sweep``)."""
    sweep()
    return tempfile.mkdtemp(prefix=f"{PREFIX}{_owner_tag()}-")


def remove(folder: str | None) -> None:
    """Remove an engine process's work folder (gone already: fine)."""
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
