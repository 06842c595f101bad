"""One real ovserve process shared by the transport tests of a module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.transport.server import Server, start_server, write_config


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    config = write_config(tmp_path_factory.mktemp("graphs"))
    server = start_server(config, "--max_request_bytes", str(1024 * 1024))
    yield server
    assert server.terminate() == 0
