"""``Servable``: a loaded graph, and the in-process API every front end calls.

    servable = await Servable.load(entry, BUILTIN_CALCULATORS)
    outputs = await servable.infer({"text": tensor})            # unary: name -> Tensor
    async with servable.stream() as run:                        # streaming: a GraphRun
        run.send({"text": tensor})                              # any number of requests
        run.close_inputs()                                      # client half-closed
        async for event in run.events():                        # OutputPacket | RunError
            ...
    await servable.unload()
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ovserve.engine.adapters import AdapterSource
from ovserve.engine.registry import EngineRegistry
from ovserve.errors import InvalidInput, NodeError, Unsupported
from ovserve.graph.calculator import Calculator, LoadContext
from ovserve.graph.config import parse_graph_file
from ovserve.graph.executor import GraphRun, OutputPacket, RunError
from ovserve.graph.spec import GraphSpec
from ovserve.graph.stream_tags import StreamKind, stream_kind
from ovserve.graph.validation import build_graph
from ovserve.nodes.retriever import RetrieverCalculator
from ovserve.protocol.embeddings import EMBED_REQUEST_TAG, EmbeddingRequest, EmbeddingResult
from ovserve.protocol.generation import REQUEST_TAG, GenerationChunk, GenerationRequest
from ovserve.protocol.tensor import Tensor
from ovserve.rag.ingest import IngestReport, ingest_document, reembed
from ovserve.serving.images import check_image
from ovserve.serving.inflight import InFlight
from ovserve.serving.server_config import GraphEntry

log = logging.getLogger(__name__)


#: Threads for blocking user code (Python handlers) per servable: generators of concurrent
#: streams each hold a thread while they compute their next item.
DEFAULT_NODE_THREADS = 64


class Servable:
    """A validated, loaded graph with its node resources and thread pool."""

    def __init__(
        self,
        entry: GraphEntry,
        graph: GraphSpec,
        calculators: dict[str, Calculator],
        executor: ThreadPoolExecutor,
        engines: EngineRegistry,
    ) -> None:
        self.entry = entry
        self.graph = graph
        self.calculators = calculators
        self.executor = executor
        self.engines = engines
        #: whose engines these are in the engine registry: the servable's name, until a config
        #: reload replaces it (then its outgoing generation's own name, see ``Registry``)
        self.owner = entry.name
        self.inflight: InFlight[Servable] = InFlight(entry.name)

    @property
    def ready(self) -> bool:
        """False while an engine it uses cannot take requests (e.g. restarting)."""
        return self.engines.ready(self.owner)

    @property
    def name(self) -> str:
        return self.entry.name

    def adapters(self) -> list[AdapterSource]:
        """The LoRA adapters of the engines this servable uses."""
        return [a for engine in self.engines.engines(self.owner) for a in engine.adapters()]

    def retriever(self) -> RetrieverCalculator | None:
        """The graph's retriever node (a RAG or retrieval graph), if it has one."""
        return next((c for c in self.calculators.values()
                     if isinstance(c, RetrieverCalculator)), None)

    def _store(self) -> RetrieverCalculator:
        retriever = self.retriever()
        if retriever is None:
            raise Unsupported(f"servable {self.name} has no document store (it is not a RAG "
                              "or retrieval graph)")
        return retriever

    async def ingest(self, name: str, data: bytes) -> IngestReport:
        """Add (or update) one document in this graph's document store."""
        if self.inflight.retired:
            return await self.inflight.next().ingest(name, data)
        retriever = self._store()
        report = IngestReport()

        def run() -> None:
            def embed(texts: list[str]) -> Any:
                return retriever.engine.embed(texts).vectors

            model = retriever.embedding_model.id
            report.reembedded = reembed(retriever.store, embed, model)  # a new model's first
            ingest_document(retriever.store, embed, name, data, report, model=model)

        with self.inflight.held():
            await asyncio.get_running_loop().run_in_executor(self.executor, run)
        return report

    async def documents(self) -> dict[str, int]:
        """Each document in this graph's store and its number of chunks."""
        if self.inflight.retired:
            return await self.inflight.next().documents()
        store = self._store().store
        with self.inflight.held():
            return await asyncio.get_running_loop().run_in_executor(self.executor,
                                                                     store.sources)

    async def store_info(self) -> dict[str, Any]:
        """Which embedding model this graph's store was built with (``RetrieverCalculator``)."""
        if self.inflight.retired:
            return await self.inflight.next().store_info()
        retriever = self._store()
        with self.inflight.held():
            return await asyncio.get_running_loop().run_in_executor(self.executor,
                                                                     retriever.store_info)

    @property
    def embedding_input(self) -> str | None:
        """The graph input taking embedding requests, if it has one."""
        return next((r.name for r in self.graph.inputs if r.tag == EMBED_REQUEST_TAG), None)

    async def embed(self, texts: list[str]) -> EmbeddingResult:
        """Run an embeddings graph on ``texts``."""
        if self.inflight.retired:
            return await self.inflight.next().embed(texts)
        name = self.embedding_input
        if name is None:
            raise Unsupported(f"servable {self.name} is not an embeddings graph (it has no "
                              f"{EMBED_REQUEST_TAG} input)")
        outputs = await self.infer({name: EmbeddingRequest(texts)})
        result = next((o for o in outputs.values() if isinstance(o, EmbeddingResult)), None)
        if result is None:
            raise NodeError(self.name, "produced no embeddings")
        return result

    @property
    def generation_input(self) -> str | None:
        """The graph input taking OpenAI-style generation requests, if it has one."""
        return next((r.name for r in self.graph.inputs if r.tag.startswith(REQUEST_TAG)), None)

    @classmethod
    def build(
        cls,
        entry: GraphEntry,
        calculator_types: Mapping[str, type[Calculator]],
        *,
        node_threads: int = DEFAULT_NODE_THREADS,
        engines: EngineRegistry | None = None,
    ) -> Servable:
        """Parse and validate the graph (raises ``GraphConfigError``); nothing is loaded yet.
        ``engines``: the server's engine registry (a registry of its own when not given)."""
        config = parse_graph_file(entry.graph_path)
        graph = build_graph(
            config, name=entry.name, path=entry.graph_path, base_path=entry.base_path,
            calculators=calculator_types,
        )
        executor = ThreadPoolExecutor(node_threads, thread_name_prefix=f"{entry.name}-node")
        engines = engines if engines is not None else EngineRegistry()
        context = LoadContext(servable=entry.name, base_path=entry.base_path, executor=executor,
                              engines=engines)
        calculators = {
            node.name: calculator_types[node.calculator](node, context) for node in graph.nodes
        }
        return cls(entry, graph, calculators, executor, engines)

    @classmethod
    async def load(
        cls,
        entry: GraphEntry,
        calculator_types: Mapping[str, type[Calculator]],
        *,
        node_threads: int = DEFAULT_NODE_THREADS,
        engines: EngineRegistry | None = None,
    ) -> Servable:
        """Build, then load every node (``initialize``); on failure unload what was loaded."""
        servable = cls.build(entry, calculator_types, node_threads=node_threads,
                             engines=engines)
        loaded: list[Calculator] = []
        try:
            for calculator in servable.calculators.values():
                await calculator.load()
                loaded.append(calculator)
        except BaseException:
            await servable._unload(loaded)
            raise
        log.info("servable %s: loaded graph %s", entry.name, entry.graph_path)
        return servable

    async def unload(self) -> None:
        await self._unload(list(self.calculators.values()))

    async def _unload(self, calculators: list[Calculator]) -> None:
        for calculator in calculators:
            try:
                await calculator.unload()
            except Exception:
                log.exception("servable %s: unloading node %s failed (unload goes on)",
                              self.name, calculator.node.name)
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.engines.release(self.owner)  # closes the engines no other servable uses

    # -- requests -----------------------------------------------------------------------------

    def _check_side_packets(self, side_packets: Mapping[str, Any] | None) -> dict[str, Any]:
        given = dict(side_packets or {})
        missing = [r.name for r in self.graph.side_packets if r.name not in given]
        if missing:
            raise InvalidInput(
                f"servable {self.name} needs side packet(s) {', '.join(map(repr, missing))} "
                "as request parameters"
            )
        return given

    def check_inputs(self, inputs: Mapping[str, Any], *, partial: bool = False) -> None:
        """The one check of a request's inputs: every graph input (some of them, at least one,
        for a stream's requests: ``partial``, as OVMS lets a stream send labels once and then
        images alone), nothing else, and KServe tensors only where the graph takes tensors (an
        LLM graph takes OpenAI requests: a tensor there is the client's mistake, not a node
        failure); IMAGE inputs must be images."""
        names = self.graph.input_names
        given = list(inputs)
        unknown = [n for n in given if n not in names]
        if unknown:
            raise InvalidInput(f"servable {self.name} has no input {unknown[0]!r} "
                               f"(inputs: {', '.join(names)})")
        missing = [n for n in names if n not in given]
        if missing and (not partial or not given):
            raise InvalidInput(f"servable {self.name}: missing input {missing[0]!r}, it needs "
                               f"input(s) {', '.join(map(repr, missing))} "
                               f"(inputs: {', '.join(names)})")
        for ref in self.graph.inputs:
            if ref.name not in inputs:
                continue
            payload, kind = inputs[ref.name], stream_kind(ref.tag)
            if kind is StreamKind.GENERATION and not isinstance(payload, GenerationRequest):
                raise InvalidInput(
                    f"servable {self.name}: input {ref.name!r} takes completion and chat "
                    "requests (POST /v3/completions, /v3/chat/completions), not tensors; send "
                    f"them to the OpenAI API with model {self.name!r}", ref.name)
            if kind is StreamKind.IMAGE and isinstance(payload, Tensor):
                check_image(self.name, payload)

    def stream(self, *, side_packets: Mapping[str, Any] | None = None,
               adapter: str | None = None) -> GraphRun:
        """A streaming run; use ``async with``. Side packets come from the first request;
        ``adapter``: the LoRA adapter a model name chose, for the handlers' engine calls."""
        if self.inflight.retired:  # replaced by a config reload: its successor serves
            return self.inflight.next().stream(side_packets=side_packets, adapter=adapter)
        return _CountedRun(self.inflight, self.graph, self.calculators, mode="stream",
                           side_packets=self._check_side_packets(side_packets), adapter=adapter)

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationChunk, None]:
        """Run an LLM graph on one generation request; closing the iterator aborts it."""
        if self.inflight.retired:
            async for chunk in self.inflight.next().generate(request):
                yield chunk
            return
        name = self.generation_input
        if name is None:
            raise Unsupported(f"servable {self.name} is not an LLM graph (it has no "
                              f"{REQUEST_TAG} input)")
        async with self.stream() as run:
            run.send({name: request})
            run.close_inputs()
            async for event in run.events():
                if isinstance(event, RunError):
                    raise event.error
                assert isinstance(event, OutputPacket)
                if isinstance(event.payload, GenerationChunk):
                    yield event.payload

    async def infer(
        self,
        inputs: Mapping[str, Any],
        *,
        side_packets: Mapping[str, Any] | None = None,
        timestamp: int | None = None,
        adapter: str | None = None,
    ) -> dict[str, Any]:
        """Run the graph once; returns a payload per graph output that got one, in graph order."""
        if self.inflight.retired:
            return await self.inflight.next().infer(inputs, side_packets=side_packets,
                                                    timestamp=timestamp, adapter=adapter)
        self.check_inputs(inputs)
        outputs: dict[str, Any] = {}
        run = _CountedRun(self.inflight, self.graph, self.calculators, mode="unary",
                          side_packets=self._check_side_packets(side_packets), adapter=adapter)
        async with run:
            run.send(inputs, timestamp)
            run.close_inputs()
            async for event in run.events():
                if isinstance(event, RunError):
                    raise event.error
                assert isinstance(event, OutputPacket)
                if event.stream in outputs:
                    raise Unsupported(
                        f"servable {self.name} produced several packets on output "
                        f"{event.stream!r}; call it with a stream (ModelStreamInfer)"
                    )
                outputs[event.stream] = event.payload
        if not outputs:
            producer = next((n.name for n in self.graph.nodes
                             for r in n.outputs if r.name == self.graph.output_names[0]), "graph")
            raise NodeError(producer, "produced no packet on any graph output")
        # Outputs no packet reached are left out (a stream's end_signal has no unary answer).
        return {name: outputs[name] for name in self.graph.output_names if name in outputs}


class _CountedRun(GraphRun):
    """A run counted in its servable's ``InFlight`` from ``async with`` to its end."""

    def __init__(self, inflight: InFlight[Servable], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._inflight: InFlight[Servable] | None = inflight

    async def __aenter__(self) -> GraphRun:
        assert self._inflight is not None
        self._inflight.enter()
        try:
            return await super().__aenter__()
        except BaseException:
            self._leave()
            raise

    async def __aexit__(self, *exc: object) -> None:
        try:
            await super().__aexit__(*exc)
        finally:
            self._leave()

    def _leave(self) -> None:
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            inflight.exit()
