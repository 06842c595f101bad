"""The composition root's sockets."""

from __future__ import annotations

import asyncio
import socket

from ovserve.app import bind_socket


def test_accepted_connections_have_nagle_off() -> None:
    """A streamed chunk must not wait for the client's delayed ACK (TCP_NODELAY on)."""

    async def accepted_nodelay() -> int:
        listener = bind_socket("127.0.0.1", 0, "REST")
        listener.listen()
        port = listener.getsockname()[1]
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(connected, sock=listener)  # as uvicorn does
        async with server:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            value = await asyncio.wait_for(seen, 10)
            writer.close()
        return value

    assert asyncio.run(accepted_nodelay()) != 0
