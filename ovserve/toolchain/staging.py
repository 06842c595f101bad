"""Build a directory somewhere private, then move it into place in one rename.

A failure (or Ctrl-C) at any point leaves neither a half-written output nor the staging
directory behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ovserve.errors import ToolchainError


def directory_size(path: Path) -> int:
    """Total size in bytes of the regular files under ``path``."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def human_size(num_bytes: int) -> str:
    return f"{num_bytes / 1e6:.1f} MB"


@contextlib.contextmanager
def staged_directory(output: Path, *, force: bool) -> Iterator[Path]:
    """Yield an empty staging directory next to ``output``; on success it becomes ``output``.

    The staging directory lives in the same parent so the final step is an atomic rename.
    With ``force`` an existing ``output`` is replaced only after the new one is complete.
    """
    output = output.absolute()
    if output.exists() and not force:
        raise ToolchainError(f"{output} already exists; pass --force to replace it")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.partial-", dir=output.parent))
    except OSError as exc:
        raise ToolchainError(
            f"cannot write the output directory {output}: {exc.strerror or exc}"
        ) from exc
    try:
        yield staging
        # mkdtemp makes it private (0700); a prepared folder is as readable as any new
        # directory (a container's non-root user reads a mounted model)
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)
        if output.exists():
            old = output.with_name(f".{output.name}.old-{os.getpid()}")
            output.rename(old)
            staging.rename(output)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
