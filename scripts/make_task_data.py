#!/usr/bin/env python3
"""Generate a small labelled task (train.jsonl / test.jsonl of prompt/completion pairs).

    python scripts/make_task_data.py --task parity --output data/parity
"""

import argparse
import sys

from ovserve.toolchain.tasks import TASKS, write_task


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(TASKS), default="parity")
    parser.add_argument("--output", required=True, help="folder for train.jsonl and test.jsonl")
    parser.add_argument("--train", type=int, default=400, help="training examples")
    parser.add_argument("--test", type=int, default=200, help="test examples")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from pathlib import Path

    train, test = write_task(args.task, Path(args.output), args.train, args.test, args.seed)
    print(f"wrote {train} ({args.train} examples) and {test} ({args.test} examples)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
