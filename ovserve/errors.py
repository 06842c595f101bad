"""Transport-neutral exceptions shared by every layer (a leaf: imports nothing of ovserve)."""

from __future__ import annotations


class OvserveError(Exception):
    """Base class for every error ovserve raises on purpose."""


class ToolchainError(OvserveError):
    """Preparing or compressing a model failed; the message says what and how to fix it."""
