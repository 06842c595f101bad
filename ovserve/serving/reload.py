"""Config reload, as OVMS does it (docs/online_config_changes.md): config.json, the graph files
it names, their subconfigs and Python handlers, and plain models' version folders are checked
every ``--file_system_poll_wait_seconds`` (0: never), and ``POST /v1/config/reload`` reloads on
demand. What changed is applied by ``Registry.apply``.

A config.json that does not parse (or says something invalid) changes nothing: the servables
loaded go on serving, the reason is logged (once per version of the file), and the reload
endpoint answers OVMS's error. Graph files and version folders are still watched meanwhile,
against the last config that loaded, as OVMS goes on polling model versions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ovserve.errors import GraphConfigError
from ovserve.serving.fingerprint import digest
from ovserve.serving.registry import Registry
from ovserve.serving.server_config import ServableEntry, load_server_config

log = logging.getLogger(__name__)


@dataclass
class ReloadResult:
    """One reload: whether anything was loaded or unloaded; why something did not load."""

    reloaded: bool = False
    #: the config file is missing or unreadable (OVMS: "Config file not found or cannot open.")
    missing: bool = False
    #: the config file does not parse or is invalid: nothing of it was applied
    invalid: bool = False
    #: servables that did not load (named, with the error id their log line has)
    errors: list[str] = field(default_factory=list)
    error_id: str = ""

    @property
    def ok(self) -> bool:
        return not (self.missing or self.invalid or self.errors)


class ConfigReloader:
    """Keeps a registry in line with its config file (or, without one, with its fixed entries'
    files: graph files and version folders)."""

    def __init__(self, registry: Registry, config_path: Path | None,
                 entries: list[ServableEntry], poll_seconds: float = 1.0) -> None:
        self.registry = registry
        self.config_path = config_path
        self.entries = list(entries)  # the last config that parsed
        self.poll_seconds = poll_seconds
        self._seen = digest(config_path)  # the config file as the entries were read from it
        self._reported: str | None = None  # the broken config's digest already logged
        self._task: asyncio.Task[None] | None = None
        registry.reloader = self

    def start(self) -> None:
        """Poll every ``poll_seconds`` (nothing when 0)."""
        if self.poll_seconds > 0 and self._task is None:
            self._task = asyncio.create_task(self._watch())
            log.info("watching the config for changes every %g s", self.poll_seconds)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                await self.reload()
            except Exception:  # the watcher goes on: the next round may do better
                log.exception("config reload failed")

    async def reload(self, *, on_demand: bool = False) -> ReloadResult:
        """Read the config (when it changed, or ``on_demand``) and apply it; ``on_demand``
        (the reload endpoint) also loads again what failed last time."""
        result = ReloadResult()
        read = False  # a changed config.json was read (OVMS answers 201 then, as it reloaded)
        path = self.config_path
        if path is not None:
            now = digest(path)
            if now is None:
                result.missing = True
                self._report(f"config file {path} not found or cannot be read; the servables "
                             "loaded go on serving", "missing", result, on_demand)
            elif now != self._seen or on_demand:
                try:
                    self.entries = load_server_config(path)
                    read = now != self._seen
                    self._seen, self._reported = now, None
                except GraphConfigError as exc:
                    result.invalid = True
                    self._report(f"config file {path} does not load, nothing of it is applied "
                                 f"and the servables loaded go on serving: {exc}", now, result,
                                 on_demand)
        applied = await self.registry.apply(self.entries, retry_failed=on_demand)
        result.reloaded, result.errors = applied.changed or read, applied.errors
        return result

    def _report(self, message: str, version: str, result: ReloadResult, always: bool) -> None:
        """Log a broken config once per version of the file (the poll sees it every round),
        and at every reload asked for."""
        result.error_id = uuid.uuid4().hex[:12]
        if always or self._reported != version:
            self._reported = version
            log.error("%s (error id %s)", message, result.error_id)
