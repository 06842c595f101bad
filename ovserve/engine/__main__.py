"""``python -m ovserve.engine FD``: an engine process (started by ``OpenVINOEngine``)."""

import sys

from ovserve.engine.process import run_from_fd

if __name__ == "__main__":
    run_from_fd(int(sys.argv[1]))
