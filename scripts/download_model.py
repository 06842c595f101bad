#!/usr/bin/env python3
"""Prepare an LLM as OpenVINO IR for ovserve. Run with --help for the options."""

import sys

from ovserve.toolchain.download import main

if __name__ == "__main__":
    sys.exit(main())
