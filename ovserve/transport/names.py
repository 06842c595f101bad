"""Served model names: aliases of servables (``--served_model_name SERVABLE=ALIAS[,ALIAS...]``,
vLLM's ``--served-model-name``, SGLang's, llama.cpp's ``--alias``).

An alias is one more name for a servable, in every API: OpenAI's ``model`` field and
``/v1/models`` (each alias listed, its ``root`` the servable), KServe's model name over REST and
gRPC. The servable's own name (config.json's) is still served, so OVMS clients keep working;
a response echoes the name the request used."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["ServedNames"]


class ServedNames:
    """``aliases``: servable name -> its aliases."""

    def __init__(self, aliases: Mapping[str, tuple[str, ...]] | None = None) -> None:
        self._aliases = {servable: tuple(names) for servable, names in (aliases or {}).items()}
        self._servable = {alias: servable for servable, names in self._aliases.items()
                          for alias in names}

    def servable(self, name: str) -> str:
        """The servable a model name means (an alias's servable; any other name itself)."""
        return self._servable.get(name, name)

    def aliases(self, servable: str) -> tuple[str, ...]:
        return self._aliases.get(servable, ())

    def is_alias(self, name: str) -> bool:
        return name in self._servable
