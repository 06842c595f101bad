"""Validate a parsed graph completely, reporting every problem at once.

Each message names the node and the stream (or port) concerned, as MediaPipe's validation does.
The calculator types are passed in, so this module never imports the nodes package.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from ovserve.errors import GraphConfigError
from ovserve.graph.calculator import Calculator
from ovserve.graph.config import (
    GraphConfig,
    NodeConfig,
    NodeLabel,
    StreamRef,
    parse_stream_ref,
    parse_tag_index,
)
from ovserve.graph.proto import stream_handlers_pb2
from ovserve.graph.spec import (
    DEFAULT_HANDLER,
    IMMEDIATE_HANDLER,
    INPUT_HANDLERS,
    GraphSpec,
    NodeSpec,
)
from ovserve.graph.stream_tags import KNOWN_PREFIXES, StreamKind, stream_kind

LOOPBACK = "LOOPBACK"
#: Side packets ovserve provides itself; any other must be a graph input_side_packet.
PROVIDED_SIDE_PACKET_TAGS = frozenset({"PYTHON_NODE_RESOURCES", "LLM_NODE_RESOURCES",
                                       "LLM_NODE_EXECUTION_CONTEXTS",
                                       "EMBEDDINGS_NODE_RESOURCES", "RERANK_NODE_RESOURCES"})


def _refs(texts: list[str], where: str, kind: str, problems: list[str]) -> list[StreamRef]:
    refs = []
    for text in texts:
        try:
            refs.append(parse_stream_ref(text))
        except ValueError as exc:
            problems.append(f"{where}: bad {kind} {exc}")
    return refs


def _named_port(text: str, ports: list[str], where: str, problems: list[str]) -> str | None:
    """The input port a ``tag_index`` field names, or None after recording why not."""
    try:
        tag, index = parse_tag_index(text)
    except ValueError as exc:
        problems.append(f"{where} {exc}")
        return None
    port = f"{tag}:{index}"
    if port not in ports:
        problems.append(f"{where} names input {text!r}, which the node does not have")
        return None
    return port


def _graph_tag_problem(ref: StreamRef) -> str | None:
    kind = stream_kind(ref.tag)
    if kind is None:
        return (f"graph stream {str(ref)!r}: unknown tag {ref.tag!r} (graph streams use "
                f"{', '.join(KNOWN_PREFIXES)}, a tag starting with one of them, or no tag)")
    if kind is StreamKind.KSERVE_MESSAGE:
        return (f"graph stream {str(ref)!r}: {ref.tag} streams carry a {kind.value} to OVMS's "
                "C++ calculators; no ovserve node takes one (use tensor streams, e.g. "
                "OVMS_PY_TENSOR or OVTENSOR)")
    return None


def _sync_sets(
    node: NodeConfig, label: str, ports: list[str], back_edges: set[str], problems: list[str]
) -> tuple[str, list[list[str]]]:
    handler_cfg = node.input_stream_handler
    handler = handler_cfg.input_stream_handler if node.HasField("input_stream_handler") else (
        DEFAULT_HANDLER)
    forward = [p for p in ports if p not in back_edges]
    own = [[p] for p in ports if p in back_edges]
    if handler not in INPUT_HANDLERS:
        problems.append(
            f"node {label}: unknown input_stream_handler {handler!r} "
            f"(supported: {', '.join(INPUT_HANDLERS)})"
        )
        return handler, [forward, *own] if forward else own
    if handler == IMMEDIATE_HANDLER:
        return handler, [[p] for p in ports]
    if handler == DEFAULT_HANDLER:
        return handler, ([forward] if forward else []) + own
    ext = stream_handlers_pb2.SyncSetInputStreamHandlerOptions.ext
    options = handler_cfg.options.Extensions[ext] if handler_cfg.HasField("options") else None
    groups: list[list[str]] = []
    seen: set[str] = set()
    for sync_set in options.sync_set if options is not None else []:
        group = []
        for tag_index in sync_set.tag_index:
            port = _named_port(tag_index, ports, f"node {label}: sync_set", problems)
            if port is None:
                continue
            if port in seen:
                problems.append(f"node {label}: input {tag_index!r} is in two sync sets")
            else:
                seen.add(port)
                group.append(port)
        if group:
            groups.append(group)
    rest = [p for p in ports if p not in seen]
    if rest:
        groups.append(rest)
    # Forward inputs first: a new request is seen before a generator's next back-edge step.
    groups.sort(key=lambda group: any(p in back_edges for p in group))
    return handler, groups


def build_graph(
    config: GraphConfig,
    *,
    name: str,
    path: Path | None,
    base_path: Path,
    calculators: Mapping[str, type[Calculator]],
) -> GraphSpec:
    """Check ``config`` and return the runnable ``GraphSpec``; raise ``GraphConfigError``."""
    problems: list[str] = []
    graph_inputs = _refs(list(config.input_stream), "graph", "input_stream", problems)
    graph_outputs = _refs(list(config.output_stream), "graph", "output_stream", problems)
    graph_side = _refs(list(config.input_side_packet), "graph", "input_side_packet", problems)
    for ref in graph_inputs + graph_outputs:
        problem = _graph_tag_problem(ref)
        if problem:
            problems.append(problem)
    if not graph_inputs:
        problems.append("graph: no input_stream; a servable needs at least one input")
    if not graph_outputs:
        problems.append("graph: no output_stream; a servable needs at least one output")

    producers: dict[str, str] = {}
    for ref in graph_inputs:
        if ref.name in producers:
            problems.append(f"stream {ref.name!r}: declared twice as a graph input_stream")
        producers[ref.name] = "graph input"
    side_names = {ref.name for ref in graph_side}
    # side packets a node makes (a session node's SESSION) serve other nodes as graph ones do
    side_names |= {ref.name for node in config.node for ref in _refs(
        list(node.output_side_packet), f"node {node.name or node.calculator}",
        "output_side_packet", problems)}

    nodes: list[NodeSpec] = []
    names: dict[str, int] = {}
    name_counts = Counter(node.name for node in config.node)
    labels = [
        str(NodeLabel(i, n)) + (f" #{i}" if n.name and name_counts[n.name] > 1 else "")
        for i, n in enumerate(config.node)
    ]
    for index, node in enumerate(config.node):
        label = labels[index]
        if node.name:
            if node.name in names:
                problems.append(
                    f"node {label}: duplicate node name (also node #{names[node.name]})"
                )
            names.setdefault(node.name, index)
        inputs = _refs(list(node.input_stream), f"node {label}", "input_stream", problems)
        outputs = _refs(list(node.output_stream), f"node {label}", "output_stream", problems)
        sides = _refs(list(node.input_side_packet), f"node {label}", "input_side_packet",
                      problems)
        calculator = calculators.get(node.calculator)
        if not node.calculator:
            problems.append(f"node {label}: no calculator")
        elif calculator is None:
            problems.append(
                f"node {label}: unknown calculator {node.calculator!r} (available: "
                f"{', '.join(sorted(calculators))})"
            )
        if not inputs and not node.output_side_packet:  # a side-packet maker needs none
            problems.append(f"node {label}: no input_stream; every node needs an input")
        ports = [ref.port for ref in inputs]
        for kind, refs in (("input", inputs), ("output", outputs)):
            seen_ports: set[str] = set()
            for ref in refs:
                if ref.port in seen_ports:
                    problems.append(f"node {label}: {kind} port {ref.port} used twice")
                seen_ports.add(ref.port)
        back_edges: set[str] = set()
        for info in node.input_stream_info:
            port = _named_port(info.tag_index, ports, f"node {label}: input_stream_info",
                               problems)
            if port is not None and info.back_edge:
                back_edges.add(port)
        if calculator is not None:
            for kind, refs, allowed in (
                ("input stream", inputs, calculator.input_tags),
                ("output stream", outputs, calculator.output_tags),
                ("input side packet", sides, calculator.side_packet_tags),
            ):
                for ref in refs:
                    if allowed is not None and ref.tag not in allowed:
                        problems.append(
                            f"node {label}: {kind} {str(ref)!r}: unknown tag {ref.tag!r} for "
                            f"{node.calculator} (allowed: {', '.join(sorted(allowed)) or 'none'})"
                        )
        has_loop_in = any(ref.tag == LOOPBACK for ref in inputs)
        has_loop_out = any(ref.tag == LOOPBACK for ref in outputs)
        if has_loop_in != has_loop_out:
            side = "input" if has_loop_in else "output"
            missing = "output" if has_loop_in else "input"
            problems.append(
                f"node {label}: LOOPBACK {side} stream without a LOOPBACK {missing} stream; "
                "a generator node needs both ends of the back edge"
            )
        for ref in inputs:
            if ref.tag == LOOPBACK and ref.port not in back_edges:
                problems.append(
                    f"node {label}: LOOPBACK input stream {ref.name!r} is not marked "
                    f"back_edge (add input_stream_info: {{ tag_index: '{ref.port}', "
                    "back_edge: true })"
                )
        for ref in sides:
            if ref.tag in PROVIDED_SIDE_PACKET_TAGS:
                continue
            if ref.name not in side_names:
                problems.append(
                    f"node {label}: input side packet {ref.name!r} is not a graph "
                    "input_side_packet"
                )
        for ref in outputs:
            if ref.name in producers:
                problems.append(
                    f"node {label}: output stream {ref.name!r} already produced by "
                    f"{producers[ref.name]}; a stream has exactly one producer"
                )
            else:
                producers[ref.name] = f"node {label}"
        handler, sync_sets = _sync_sets(node, label, ports, back_edges, problems)
        spec = NodeSpec(
            name=node.name or f"{node.calculator}_{index}",
            calculator=node.calculator, inputs=inputs, outputs=outputs, side_packets=sides,
            back_edges=back_edges, handler=handler, sync_sets=sync_sets, config=node,
        )
        if calculator is not None:
            problems.extend(f"node {label}: {p}" for p in calculator.check(spec, base_path))
        nodes.append(spec)

    for index, spec in enumerate(nodes):
        label = labels[index]
        for ref in spec.inputs:
            if ref.name not in producers:
                problems.append(
                    f"node {label}: input stream {ref.name!r} is not produced by any node or "
                    "graph input_stream"
                )
    for ref in graph_outputs:
        if ref.name not in producers:
            problems.append(f"graph output_stream {ref.name!r} is not produced by any node")
    problems.extend(_cycles(nodes, producers))

    if problems:
        raise GraphConfigError(
            f"graph {name} ({path or 'inline'}) is invalid:\n  " + "\n  ".join(problems),
            problems,
        )
    return GraphSpec(name=name, path=path, base_path=base_path, inputs=graph_inputs,
                     outputs=graph_outputs, side_packets=graph_side, nodes=nodes)


def _cycles(nodes: list[NodeSpec], producers: dict[str, str]) -> list[str]:
    """Cycles among nodes that do not pass through a back_edge input."""
    producer_of = {ref.name: i for i, n in enumerate(nodes) for ref in n.outputs}
    edges: dict[int, list[tuple[int, str]]] = {i: [] for i in range(len(nodes))}
    for i, node in enumerate(nodes):
        for ref in node.inputs:
            if ref.port in node.back_edges or ref.name not in producer_of:
                continue
            edges[producer_of[ref.name]].append((i, ref.name))
    problems: list[str] = []
    state = dict.fromkeys(edges, 0)  # 0 new, 1 on stack, 2 done
    stack: list[tuple[int, str]] = []

    def visit(i: int) -> None:
        state[i] = 1
        for j, stream in edges[i]:
            stack.append((j, stream))
            if state[j] == 1:
                start = next(k for k, (n, _) in enumerate(stack) if n == j)
                path = nodes[j].name + "".join(
                    f" -[{s}]-> {nodes[n].name}" for n, s in stack[start + 1 :]
                )
                problems.append(
                    f"cycle without a back_edge: {path}; mark the stream that closes the loop "
                    "with input_stream_info back_edge: true"
                )
            elif state[j] == 0:
                visit(j)
            stack.pop()
        state[i] = 2

    for i in edges:
        if state[i] == 0:
            stack.append((i, ""))
            visit(i)
            stack.pop()
    return problems
