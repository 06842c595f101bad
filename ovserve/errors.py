"""Transport-neutral exceptions shared by every layer (a leaf: imports nothing of ovserve)."""

from __future__ import annotations


def error_reason(exc: BaseException) -> str:
    """The last line of a library's error (OpenVINO's, Chroma's): the reason, after the failed
    check and the source path it names."""
    text = str(exc).strip()
    return text.splitlines()[-1] if text else type(exc).__name__


class OvserveError(Exception):
    """Base class for every error ovserve raises on purpose."""


class ToolchainError(OvserveError):
    """Preparing or compressing a model failed; the message says what and how to fix it."""


class GraphConfigError(OvserveError):
    """A config.json or .pbtxt graph is invalid. ``problems`` lists every problem found."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = problems or [message]
        super().__init__(message)


class InvalidInput(OvserveError):
    """A request does not fit the servable (unknown/missing input, bad shape, type or size).
    ``param``: the request field at fault, when there is one (OpenAI's error names it)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        self.param = param
        super().__init__(message)


class ServableNotFound(OvserveError):
    """No servable has the requested name."""


class BodyTooLarge(InvalidInput):
    """A request body is over the server's limit."""


class BodyTimeout(InvalidInput):
    """A request body stopped arriving (shorter than its Content-Length, or stalled)."""


class HeadersTooLarge(InvalidInput):
    """A request has more headers, or more bytes of them, than the server takes."""


class AdapterError(InvalidInput):
    """A LoRA adapter cannot be loaded (bad files, another base model, over a limit)."""


class AdapterConflict(AdapterError):
    """A LoRA adapter name is already taken."""


class AdapterNotFound(ServableNotFound):
    """No LoRA adapter has the requested name."""


class ServableNotReady(OvserveError):
    """The servable exists but is not loaded (its reason is in the message)."""


class NodeError(OvserveError):
    """A node failed while processing a request (a handler raised, or returned bad outputs)."""

    def __init__(self, node: str, message: str) -> None:
        self.node = node
        super().__init__(f"node {node}: {message}")


class Unauthenticated(OvserveError):
    """The server has an API key and the request did not carry it."""


class DependencyUnavailable(OvserveError):
    """A service a graph depends on (the vector store) cannot be reached."""


class Unsupported(OvserveError):
    """The request asks for something this servable or ovserve does not do."""


class EngineError(OvserveError):
    """The generation engine failed or cannot be created (e.g. a device that is not present)."""


class EngineFailure(EngineError):
    """The engine failed a request it had accepted (its process died, a step failed)."""


class EngineUnavailable(EngineError):
    """The engine cannot take requests now (restarting after a crash, or shut down)."""


class Overloaded(OvserveError):
    """The server is at a limit it was given (--max_concurrent_requests, --max_queued_requests):
    the request is refused at once, to be retried later or elsewhere. ``reason``: the limit;
    ``retry_after``: seconds a client should wait before retrying."""

    def __init__(self, message: str, reason: str, retry_after: int = 1) -> None:
        self.reason = reason
        self.retry_after = retry_after
        super().__init__(message)


class EngineConflict(GraphConfigError):
    """Two graphs ask for one model with different engine options."""

    owners: tuple[str, ...] = ()  # the two owners (servables) that disagree
