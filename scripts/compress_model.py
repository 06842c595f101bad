#!/usr/bin/env python3
"""Write FP16 / INT8 / INT4 variants of an OpenVINO model. Run with --help for the options."""

import sys

from ovserve.toolchain.compress import main

if __name__ == "__main__":
    sys.exit(main())
