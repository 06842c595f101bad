#!/usr/bin/env python3
"""Send prompts to the seed's ``python_model`` with one unary KServe gRPC call.

    python clients/client_unary.py -p "What is the theory of relativity?" [-p ...] [--url ...]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

DEFAULT_PROMPT = "What is the theory of relativity?"


def parse_args(argv: list[str] | None = None, description: str | None = __doc__
               ) -> argparse.Namespace:
    """The seed clients' options: --url, repeatable -p/--prompt, --model."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="localhost:9000", help="gRPC address (localhost:9000)")
    parser.add_argument("-p", "--prompt", action="append", dest="prompts",
                        help=f"a prompt; repeat for several (default: {DEFAULT_PROMPT!r})")
    parser.add_argument("--model", default="python_model", help="servable name")
    return parser.parse_args(argv)


def print_metrics(tokens: int, seconds: float) -> None:
    print(f"Number of tokens: {tokens}")
    print(f"Tokens per second: {tokens / seconds:.2f}" if seconds > 0 else "Tokens per second: -")
    print(f"Time per token: {seconds / tokens * 1000:.2f} ms" if tokens else "Time per token: -")
    print(f"Total time: {seconds:.3f} s")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    prompts = args.prompts or [DEFAULT_PROMPT]
    client = grpcclient.InferenceServerClient(
        args.url, channel_args=[("grpc.http2.max_pings_without_data", 0)])
    data = np.array([p.encode() for p in prompts], dtype=np.object_)
    inp = grpcclient.InferInput("pre_prompt", [len(prompts)], "BYTES")
    inp.set_data_from_numpy(data)
    started = time.perf_counter()
    try:
        result = client.infer(args.model, [inp], client_timeout=600)
    except InferenceServerException as exc:
        print(f"error: {exc.message()}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - started
    completions = result.as_numpy("completion")
    for i, (prompt, completion) in enumerate(zip(prompts, completions, strict=True)):
        print(f"== Prompt {i + 1}: {prompt}\n{completion.decode()}\n")
    print_metrics(int(result.as_numpy("token_count")[0]), elapsed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
