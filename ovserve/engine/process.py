"""The engine process: one openvino-genai ContinuousBatchingPipeline and the loop that steps it.

Why a process: openvino-genai's Python binding of ``ContinuousBatchingPipeline.step()`` keeps
the GIL for the whole step (tens of milliseconds), so a pipeline stepped in the server's
process freezes the event loop, the gRPC server and every handler thread for most of the time.
Here it runs alone (``python -m ovserve.engine FD``, a plain subprocess: multiprocessing's
spawn would re-run the server's main script); the server talks to it over a socket pair with
the typed messages of ``engine.messages``.

One ``Step`` message carries every request's new text after a step: tokens are detokenized
here, incrementally (a short window per request), by joining the tokens' bytes when the
model's detokenizer does no more than that (``engine.detokenizer``), else in one detokenizer
call per step. The loop blocks while idle and exits when the server closes the pipe or goes
away.

Every step costs this process what the pipeline's step costs plus what this loop does around
it, and while the loop runs Python the pipeline's worker threads spin waiting for the next
step: so per step it asks the pipeline for its metrics once, detokenizes without an inference
where it can and polls the pipe with one system call (``benchmarks/engine_tax.py``).
"""

from __future__ import annotations

import logging
import pickle
import select
import signal
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ovserve.engine import determinism
from ovserve.engine.detokenizer import ByteVocab, agrees
from ovserve.engine.lora_graph import build_model_dir
from ovserve.engine.messages import Abort, Add, Close, LoadFailed, Output, Ready, Start, Step
from ovserve.engine.pipelines import error_reason

log = logging.getLogger("ovserve.engine")

FINISH = {"STOP": "stop", "LENGTH": "length"}
DONE_STATUSES = frozenset({"FINISHED", "STOP", "CANCEL", "IGNORED", "DROPPED_BY_PIPELINE",
                           "DROPPED_BY_HANDLE"})


def scheduler_config(config: Any) -> Any:
    """The ``openvino_genai.SchedulerConfig`` of an ``EngineConfig``, as OVMS builds it from
    the same graph fields (``cache_size`` 0: cache and block count both 0, which openvino-genai
    takes as a dynamically allocated cache)."""
    import openvino_genai as ov_genai

    scheduler = ov_genai.SchedulerConfig()
    scheduler.max_num_seqs = config.max_num_seqs
    scheduler.max_num_batched_tokens = config.max_num_batched_tokens
    scheduler.cache_size = _cache_gb(config.cache_size_gb)
    scheduler.num_kv_blocks = 0
    scheduler.enable_prefix_caching = config.enable_prefix_caching
    scheduler.dynamic_split_fuse = config.dynamic_split_fuse
    if config.cache_interval_multiplier is not None:
        scheduler.cache_interval_multiplier = config.cache_interval_multiplier
    if config.cache_eviction is not None:
        scheduler.use_cache_eviction = True
        scheduler.cache_eviction_config = cache_eviction_config(config.cache_eviction)
    if config.sparse_attention is not None:
        scheduler.use_sparse_attention = True
        scheduler.sparse_attention_config = sparse_attention_config(config.sparse_attention)
    if config.deterministic:
        determinism.schedule(scheduler)
    return scheduler


def _cache_gb(size: float) -> int:
    """Whole GB (openvino-genai's unit); 0 stays 0 (dynamic), anything else at least 1."""
    return 0 if size == 0 else max(1, round(size))


def draft_scheduler_config(config: Any) -> Any:
    """The draft model's ``SchedulerConfig``: its own fields where the graph set them, else
    the main model's (as OVMS's ``prepareDraftPipelineSchedulerConfig``); no cache eviction or
    sparse attention for the draft, as in OVMS."""
    import openvino_genai as ov_genai

    draft = config.draft
    scheduler = ov_genai.SchedulerConfig()
    scheduler.max_num_batched_tokens = _given(draft.max_num_batched_tokens,
                                              config.max_num_batched_tokens)
    scheduler.cache_size = _cache_gb(_given(draft.cache_size_gb, config.cache_size_gb))
    scheduler.num_kv_blocks = 0
    scheduler.dynamic_split_fuse = _given(draft.dynamic_split_fuse, config.dynamic_split_fuse)
    scheduler.max_num_seqs = _given(draft.max_num_seqs, config.max_num_seqs)
    scheduler.enable_prefix_caching = config.enable_prefix_caching
    if config.deterministic:
        determinism.schedule(scheduler)
    return scheduler


def _given(value: Any, default: Any) -> Any:
    return default if value is None else value


def cache_eviction_config(eviction: Any) -> Any:
    """An ``openvino_genai.CacheEvictionConfig`` of a ``CacheEviction``."""
    import openvino_genai as ov_genai

    kv_crush = None
    if eviction.kv_crush is not None:
        budget, anchor, seed = eviction.kv_crush
        kv_crush = ov_genai.KVCrushConfig(budget, ov_genai.KVCrushAnchorPointMode.__members__[
            anchor], seed)
    return ov_genai.CacheEvictionConfig(
        eviction.start_size, eviction.recent_size, eviction.max_cache_size,
        ov_genai.AggregationMode.__members__[eviction.aggregation_mode],
        eviction.apply_rotation, eviction.snapkv_window_size, kv_crush)


def sparse_attention_config(sparse: Any) -> Any:
    """An ``openvino_genai.SparseAttentionConfig`` of a ``SparseAttention`` (fields not given
    keep openvino-genai's defaults)."""
    import openvino_genai as ov_genai

    result = ov_genai.SparseAttentionConfig()
    result.mode = ov_genai.SparseAttentionMode.__members__[sparse.mode]
    for name, value in sparse.settings:
        setattr(result, name, value)
    return result


def pipeline_properties(config: Any) -> dict[str, Any]:
    """The properties the pipeline is built with: the graph's plugin_config, and the draft
    model (openvino-genai's ``draft_model`` property) for speculative decoding."""
    import openvino_genai as ov_genai

    properties = dict(config.plugin_config)
    if config.draft is not None:
        draft = config.draft
        properties["draft_model"] = ov_genai.draft_model(
            str(draft.models_path), draft.device.upper(),
            scheduler_config=draft_scheduler_config(config))
    return properties


#: StructuredOutputConfig fields a request may set (structural tags as XGrammar JSON text)
STRUCTURED = ("json_schema", "regex", "structural_tags_config")


def generation_config(fields: dict[str, Any]) -> Any:
    """An ``openvino_genai.GenerationConfig`` with ``fields`` set (``validate()`` is the
    caller's choice)."""
    import openvino_genai as ov_genai

    config = ov_genai.GenerationConfig()
    for name, value in fields.items():
        if name in STRUCTURED:  # structured output: the text must match this schema/regex
            structured = ov_genai.StructuredOutputConfig()
            setattr(structured, name, value)
            config.structured_output_config = structured
        else:
            setattr(config, name, value)
    return config


@dataclass
class _Slot:
    """A running request: its handle and its incremental detokenization state."""

    handle: Any
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    # tokens [prefix_offset:read_offset] were already sent as text (as vLLM does)
    prefix_offset: int = 0
    read_offset: int = 0
    sent: int = 0  # token ids already sent
    scheduled: bool = False  # a step has run it (reported once)
    #: the text keeps special tokens: the stop tokens, left out when one ends the text
    #: (None: special tokens are skipped)
    keep_special: frozenset[int] | None = None


class EngineLoop:
    """Owns the pipeline; turns server messages into requests and steps into updates."""

    def __init__(self, pipeline: Any, conn: Connection, vocab: int = 0,
                 byte_vocab: ByteVocab | None = None) -> None:
        self.pipeline = pipeline
        self.vocab = vocab  # with LoRA slots: token ids come offset by slot * vocab
        self.tokenizer = pipeline.get_tokenizer()
        #: the detokenizer as a table of the tokens' bytes (None: the detokenizer decodes)
        self.byte_vocab = byte_vocab
        self.conn = conn
        self.active: dict[int, _Slot] = {}
        self.released = True  # False: requests were cancelled and no step has freed them
        #: a step failed: openvino-genai's pipeline may not run again (measured on 2026.4.1: a
        #: request whose grammar does not compile, beside another, leaves every later step
        #: failing with "... already in scheduling phase"), so the process exits and the
        #: supervisor starts a new one
        self.broken = False

    def run(self) -> None:
        # one poll(2) per step (Connection.poll builds a selector each time)
        pending = select.poll()
        pending.register(self.conn.fileno(), select.POLLIN)
        while True:
            try:
                messages = [self.conn.recv()] if not self.active else []
                while pending.poll(0):  # a message, or the server gone (recv raises)
                    messages.append(self.conn.recv())
            except (EOFError, OSError):
                log.info("engine: the server closed the connection; exiting")
                return
            updates: list[Output] = []
            for message in messages:
                if isinstance(message, Close):
                    for request_id in list(self.active):
                        self.active.pop(request_id).handle.cancel()
                        self.released = False
                    self._release()
                    return
                self._handle(message, updates)
            started = ended = time.monotonic()
            scheduled: tuple[int, ...] = ()
            cache_usage: float | None = None
            if self.active:
                stepped, scheduled, cache_usage = self._step()
                updates += stepped
                ended = time.monotonic()
            elif not self.released:
                self._release()
            if updates or scheduled:
                if cache_usage is None:
                    cache_usage = self._metrics()[0]
                # pickle's own C pickler: Connection.send builds a ForkingPickler per call
                self.conn.send_bytes(pickle.dumps(
                    Step(updates, cache_usage, started, ended, scheduled),
                    pickle.HIGHEST_PROTOCOL))
            if self.broken:
                log.error("engine: a generation step failed; exiting so that the server "
                          "starts a new engine process (the pipeline may not run again)")
                return

    def _handle(self, message: Add | Abort, updates: list[Output]) -> None:
        if isinstance(message, Add):
            import openvino as ov

            try:
                input_ids = ov.Tensor(_int64_array([message.token_ids]))
                handle = self.pipeline.add_request(message.request_id, input_ids,
                                                   generation_config(message.fields))
            except Exception as exc:  # the request fails, the engine goes on
                log.exception("engine: adding request %d failed", message.request_id)
                updates.append(Output(message.request_id, "", [], done=True,
                                      error=f"the engine refused the request: "
                                            f"{error_reason(exc)}"))
                return
            keep = None
            if message.keep_special:
                keep = frozenset({*message.fields.get("stop_token_ids", ()),
                                  message.fields.get("eos_token_id", -1)})
            self.active[message.request_id] = _Slot(handle, keep_special=keep)
        elif isinstance(message, Abort):
            slot = self.active.pop(message.request_id, None)
            if slot is not None:
                slot.handle.cancel()
                self.released = False
                updates.append(Output(message.request_id, "", [], "abort", done=True))

    def _release(self) -> None:
        """One scheduler step with no request running: the pipeline frees the KV-cache blocks
        of requests cancelled since (it only does so in a step)."""
        self.released = True
        try:
            self.pipeline.step()
        except Exception:
            log.exception("engine: freeing cancelled requests failed")

    def _metrics(self) -> tuple[float, int | None]:
        """The fraction of KV-cache blocks in use (openvino-genai reports a percentage) and
        how many requests the last step scheduled (None: unknown)."""
        try:
            metrics = self.pipeline.get_metrics()
            return float(metrics.cache_usage) / 100, int(metrics.scheduled_requests)
        except Exception:
            return 0.0, None

    def _step(self) -> tuple[list[Output], tuple[int, ...], float]:
        """One pipeline step: the outputs, the requests it scheduled for the first time, and
        the fraction of the KV cache in use after it."""
        try:
            self.pipeline.step()
        except Exception as exc:  # fail every running request rather than the engine
            log.exception("engine: step failed")
            reason = f"a generation step failed: {error_reason(exc)}"
            failed = [Output(request_id, "", [], done=True, error=reason)
                      for request_id in self.active]
            for slot in self.active.values():
                slot.handle.cancel()
            self.active.clear()
            self.broken = True
            return failed, (), self._metrics()[0]
        cache_usage, count = self._metrics()
        scheduled = self._newly_scheduled(len(self.active) if count is None else count)
        return self._collect(), scheduled, cache_usage

    def _newly_scheduled(self, count: int) -> tuple[int, ...]:
        """The requests this step scheduled for the first time, of ``count`` it scheduled.
        openvino-genai reports how many requests the step scheduled
        (``PipelineMetrics.scheduled_requests``), not which: requests already scheduled stay
        in the batch, and waiting ones are taken in the order they came, so the new ones are
        the first waiting ones up to that count."""
        waiting = [request_id for request_id, slot in self.active.items() if not slot.scheduled]
        if not waiting:
            return ()
        new = waiting[:max(count - (len(self.active) - len(waiting)), 0)]
        for request_id in new:
            self.active[request_id].scheduled = True
        return tuple(new)

    def _collect(self) -> list[Output]:
        """Read every request's new tokens and make their new text: by the byte table where
        the new tokens are whole UTF-8 characters, else from windows of tokens decoded by
        the detokenizer (all requests' in one call)."""
        changed: list[tuple[int, _Slot, str | None, bool, str | None]] = []
        byte_vocab, vocab = self.byte_vocab, self.vocab
        windowed = False
        for request_id, slot in list(self.active.items()):
            handle = slot.handle
            finish: str | None = None
            if handle.can_read():
                slot.scheduled = True
                for output in handle.read().values():
                    slot.token_ids.extend(output.generated_ids)
                    slot.logprobs.extend(output.generated_log_probs)
                    finish = FINISH.get(output.finish_reason.name, finish)
            status = handle.get_status().name
            done = status in DONE_STATUSES
            if done:
                del self.active[request_id]
                if finish is None:
                    finish = "stop" if status in ("FINISHED", "STOP") else "abort"
            elif len(slot.token_ids) <= slot.read_offset:
                continue
            delta = None
            if byte_vocab is not None:
                # the tokens past those sent as text: alone, when they are whole characters,
                # they make the text the windows below would (see _delta)
                new = slot.token_ids[slot.read_offset:_end(slot, done)]
                text = byte_vocab.decode([t % vocab for t in new] if vocab else new,
                                         slot.keep_special is None)
                if text is not None:
                    delta = text if done or not text.endswith("\ufffd") else ""
            windowed = windowed or delta is None
            changed.append((request_id, slot, finish, done, delta))
        if windowed:
            changed = self._windowed(changed)
        updates: list[Output] = []
        for request_id, slot, finish, done, delta in changed:
            if delta:
                slot.prefix_offset = slot.read_offset
                slot.read_offset = len(slot.token_ids)
            if delta or done:
                logprobs = slot.logprobs[slot.sent:len(slot.token_ids)]
                new_ids, slot.sent = slot.token_ids[slot.sent:], len(slot.token_ids)
                if vocab:
                    new_ids = [t % vocab for t in new_ids]
                updates.append(Output(request_id, delta or "", new_ids,
                                      finish if done else None, done, logprobs=logprobs))
        return updates

    def _windowed(self, changed: list[tuple[int, _Slot, str | None, bool, str | None]]
                  ) -> list[tuple[int, _Slot, str | None, bool, str | None]]:
        """The new text of the requests without one yet (delta None), as vLLM makes it: the
        text of the tokens from ``prefix_offset``, less that of those up to ``read_offset``
        (sent already), held back while it ends in an incomplete UTF-8 sequence."""
        todo = [n for n, entry in enumerate(changed) if entry[4] is None]
        windows: list[list[int]] = []
        special: set[int] = set()  # the windows to detokenize with their special tokens
        for k, n in enumerate(todo):
            _, slot, _, done, _ = changed[n]
            end = _end(slot, done)
            if slot.keep_special is not None:
                special |= {2 * k, 2 * k + 1}
            windows.append(slot.token_ids[slot.prefix_offset:min(slot.read_offset, end)])
            windows.append(slot.token_ids[slot.prefix_offset:end])
        texts = [""] * len(windows)
        plain = [k for k in range(len(windows)) if k not in special]
        if plain:  # one detokenizer inference
            for k, text in zip(plain, self.tokenizer.decode([windows[k] for k in plain]),
                               strict=True):
                texts[k] = text
        for k in special:  # one by one: a batch pads shorter windows with a special token
            texts[k] = self.tokenizer.decode(windows[k], skip_special_tokens=False)
        result = list(changed)
        for k, n in enumerate(todo):
            request_id, slot, finish, done, _ = changed[n]
            prefix_text, full_text = texts[2 * k], texts[2 * k + 1]
            delta = ""
            if len(full_text) > len(prefix_text) and (done or not full_text.endswith("\ufffd")):
                delta = full_text[len(prefix_text):]
            result[n] = (request_id, slot, finish, done, delta)
        return result


def _end(slot: _Slot, done: bool) -> int:
    """Where a request's text ends in its tokens: the stop token that ended a text with its
    special tokens is not part of it."""
    end = len(slot.token_ids)
    if done and end and slot.keep_special is not None and slot.token_ids[-1] in slot.keep_special:
        end -= 1
    return end


def _int64_array(rows: list[list[int]]) -> Any:
    import numpy as np

    return np.array(rows, dtype=np.int64)


def main(config: Any, conn: Connection, log_level: int,
         adapters: list[tuple[str, Any]] | None = None, workdir: str | None = None) -> None:
    """The engine process's entry point (``config`` is an ``EngineConfig``; ``adapters`` the
    LoRA slots, see ``engine.lora_graph``, built in ``workdir``, which the supervisor owns)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the server's to handle
    logging.basicConfig(level=log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        import openvino_genai as ov_genai

        models_path, vocab = config.models_path, 0
        if adapters:
            assert workdir is not None, "LoRA slots need a work folder"
            models_path = Path(workdir)
            weights = [w for _, w in adapters]
            vocab = build_model_dir(config.models_path, weights,
                                    max(w.rank for w in weights), models_path)
            log.info("engine: %d LoRA adapter(s) in slots: %s", len(adapters),
                     ", ".join(name for name, _ in adapters))
        if config.draft is not None:
            log.info("engine: speculative decoding with the draft model %s on %s",
                     config.draft.models_path, (config.draft.device or config.device).upper())
        pipeline = ov_genai.ContinuousBatchingPipeline(
            str(models_path), scheduler_config(config), config.device.upper(),
            pipeline_properties(config))
        defaults = pipeline.get_config()
    except Exception as exc:
        conn.send(LoadFailed(f"loading {config.models_path} on {config.device} failed: "
                             f"{error_reason(exc)}"))
        return
    slots = {name: k + 1 for k, (name, _) in enumerate(adapters or [])}
    byte_vocab = _byte_vocab(config.models_path, pipeline)
    conn.send(Ready(defaults.eos_token_id, sorted(defaults.stop_token_ids), vocab, slots))
    EngineLoop(pipeline, conn, vocab, byte_vocab).run()


def _byte_vocab(models_path: Path, pipeline: Any) -> ByteVocab | None:
    """The byte table of the (base) model's detokenizer, if it has one that decodes as the
    pipeline's detokenizer does (with LoRA slots that one is widened: ids mod the base
    vocabulary, which the loop applies itself)."""
    byte_vocab = ByteVocab.load(models_path)
    if byte_vocab is not None and not agrees(byte_vocab, pipeline.get_tokenizer()):
        return None
    log.info("engine: detokenizing %s", "by the byte table of its openvino_detokenizer.xml"
             if byte_vocab is not None else "with its detokenizer model")
    return byte_vocab


def run_from_fd(fd: int) -> None:
    """``python -m ovserve.engine FD``: a ``Start`` message arrives first on the connection."""
    connection = Connection(fd)
    start = connection.recv()
    assert isinstance(start, Start)
    main(start.config, connection, start.log_level, start.adapters, start.workdir)
