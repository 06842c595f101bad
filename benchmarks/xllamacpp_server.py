"""llama.cpp's own server with continuous batching (xllamacpp, its prebuilt CPU wheel) on a
GGUF, for the benchmark: n_parallel slots, an OpenAI /v1 API on --port. Runs in its own venv
(.venv-xllamacpp, `make bench` builds it) until it is terminated.

    .venv-xllamacpp/bin/python benchmarks/xllamacpp_server.py --model X.gguf --port 8090
"""

from __future__ import annotations

import argparse
import os
import signal
import threading

import xllamacpp as xlc  # type: ignore[import-not-found]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--alias", default="smollm2-135m-instruct")
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--ctx-per-slot", type=int, default=2048)
    args = parser.parse_args()
    params = xlc.CommonParams()
    params.model.path = args.model
    params.model_alias = args.alias
    params.n_parallel = args.parallel
    params.cont_batching = True
    params.n_ctx = args.parallel * args.ctx_per_slot
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.hostnames = ["127.0.0.1"]
    params.port = args.port
    server = xlc.Server(params)
    print(f"xllamacpp listening on {server.listening_address}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()


if __name__ == "__main__":
    main()
