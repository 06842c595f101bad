#!/usr/bin/env python3
"""Make a model with TinyLlama-1.1B's shape and random weights, offline: OpenVINO int8/int4
folders and a GGUF. Run with --help for the options."""

import sys

from ovserve.toolchain.shaped_model import main

if __name__ == "__main__":
    sys.exit(main())
