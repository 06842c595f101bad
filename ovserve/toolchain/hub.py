"""Reachability of the Hugging Face hub, checked before any export starts."""

from __future__ import annotations

import os
import urllib.error
import urllib.parse
import urllib.request

from ovserve.errors import ToolchainError
from ovserve.toolchain.catalog import DEFAULT_MODEL

TIMEOUT_SECONDS = 5.0


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _offline_hint() -> str:
    return (
        f"The built-in model needs no hub: download_model.py --model {DEFAULT_MODEL}. "
        "A model already on disk in Hugging Face layout can be exported with --model DIR."
    )


def check_hub_model(model_id: str) -> None:
    """Fail fast, with a message that says so, when ``model_id`` cannot be fetched from the hub."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        raise ToolchainError(
            f"cannot fetch {model_id}: HF_HUB_OFFLINE is set. {_offline_hint()}"
        )
    url = f"{hub_endpoint()}/api/models/{urllib.parse.quote(model_id)}"
    request = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS):
            return
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403, 404):
            raise ToolchainError(
                f"{model_id} is not a model on {hub_endpoint()} (HTTP {exc.code}: it does not "
                f"exist, or it is private or gated). {_offline_hint()}"
            ) from exc
        raise ToolchainError(
            f"the Hugging Face hub at {hub_endpoint()} answered HTTP {exc.code} for {model_id}. "
            f"{_offline_hint()}"
        ) from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ToolchainError(
            f"cannot reach the Hugging Face hub at {hub_endpoint()} to fetch {model_id} "
            f"({reason}); no model hub is reachable from this machine. {_offline_hint()}"
        ) from exc
