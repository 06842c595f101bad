#!/usr/bin/env python3
"""Stream completions from the seed's ``python_model`` over KServe gRPC ModelStreamInfer.

    python clients/client_stream.py -p "What is the theory of relativity?" [-p ...] [--url ...]

Text is shown as it arrives (one line per prompt on a terminal, refreshed in place).
"""

from __future__ import annotations

import queue
import sys
import time
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
from client_unary import DEFAULT_PROMPT, parse_args, print_metrics


class Display:
    """Shows each prompt's growing text: refreshed in place on a terminal, appended otherwise."""

    def __init__(self, prompts: list[str]) -> None:
        self.prompts = prompts
        self.texts = [""] * len(prompts)
        self.tty = sys.stdout.isatty()
        self.drawn = 0

    def update(self, deltas: list[str]) -> None:
        for i, delta in enumerate(deltas):
            self.texts[i] += delta
        if self.tty:
            sys.stdout.write("\x1b[F" * self.drawn + "\x1b[J")
            lines = [f"[{i + 1}] {t}" for i, t in enumerate(self.texts)]
            sys.stdout.write("\n".join(lines) + "\n")
            self.drawn = sum(1 + line.count("\n") for line in lines)
        elif len(self.prompts) == 1:
            sys.stdout.write(deltas[0])
        sys.stdout.flush()

    def finish(self) -> None:
        if not self.tty:
            if len(self.prompts) == 1:
                sys.stdout.write("\n")
            else:
                for i, (prompt, text) in enumerate(zip(self.prompts, self.texts, strict=True)):
                    sys.stdout.write(f"== Prompt {i + 1}: {prompt}\n{text}\n\n")
        sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv, __doc__)
    prompts = args.prompts or [DEFAULT_PROMPT]

    client = grpcclient.InferenceServerClient(
        args.url, channel_args=[("grpc.http2.max_pings_without_data", 0)])
    events: queue.Queue[tuple[float, Any, Any]] = queue.Queue()
    client.start_stream(
        callback=lambda result, error: events.put((time.perf_counter(), result, error)))
    inp = grpcclient.InferInput("pre_prompt", [len(prompts)], "BYTES")
    inp.set_data_from_numpy(np.array([p.encode() for p in prompts], dtype=np.object_))
    display = Display(prompts)
    started = time.perf_counter()
    client.async_stream_infer(model_name=args.model, inputs=[inp])
    times: list[float] = []
    tokens = 0
    try:
        while True:
            at, result, error = events.get(timeout=600)
            if error is not None:
                print(f"\nerror: {error}", file=sys.stderr)
                return 1
            times.append(at)
            if result.as_numpy("completion") is not None:
                display.update([c.decode() for c in result.as_numpy("completion")])
            elif result.as_numpy("token_count") is not None:
                tokens = int(result.as_numpy("token_count")[0])
            elif result.as_numpy("end_signal") is not None:
                break
    finally:
        client.stop_stream()
    elapsed = times[-1] - started
    display.finish()
    print_metrics(tokens, elapsed)
    print(f"Number of responses: {len(times)}")
    print(f"First response time: {times[0] - started:.3f} s")
    gaps = [b - a for a, b in zip([started, *times], times, strict=False)]
    print(f"Average response time: {sum(gaps) / len(gaps) * 1000:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
