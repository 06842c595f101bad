#!/usr/bin/env python3
"""Train a LoRA adapter for a built-in model on the CPU. Run with --help for the options."""

import sys

from ovserve.toolchain.finetune import main

if __name__ == "__main__":
    sys.exit(main())
