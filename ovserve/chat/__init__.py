"""The chat layer (OVMS's io_processing counterpart): render messages and tools with the chat
template (``render``), pick the parsers for a model (``detect``, ``parsers``), constrain forced
tool calls with structured output (``tools``), and parse generated text incrementally into
content, reasoning and tool calls (``incremental``), so streamed and whole answers agree.

Used by the LLM node for every chat request and by the transports for validation and the
tokenizer endpoints; it imports only ``protocol`` and ``errors``.
"""
