"""What crosses between the serving process and the engine process survives the crossing:
a ``Step`` as the engine loop sends it (its own pickle, no ForkingPickler) read back by
``Connection.recv`` as the receiver thread reads it."""

from __future__ import annotations

import pickle
import socket
from multiprocessing.connection import Connection

from ovserve.engine.messages import Output, Step


def test_a_step_crosses_the_pipe_with_every_field_of_its_outputs() -> None:
    step = Step([Output(7, "héllo 🤗", [28, 29], "stop", True, None, [-0.25, -1.5]),
                 Output(8, "", [], None, False),
                 Output(9, "", [], done=True, error="the engine refused the request: x")],
                cache_usage=0.125, started=10.5, ended=10.75, scheduled=(8, 9))
    ours, theirs = socket.socketpair()
    sender, receiver = Connection(ours.detach()), Connection(theirs.detach())
    with sender, receiver:
        sender.send_bytes(pickle.dumps(step, pickle.HIGHEST_PROTOCOL))
        sender.send(step)  # Connection.send too (the ForkingPickler)
        first, second = receiver.recv(), receiver.recv()
    assert first == step and second == step
    assert all(isinstance(o, Output) for o in first.outputs)
    # its outputs go as plain tuples: no per-object __getstate__ in the pickle
    assert b"Output" not in pickle.dumps(step, pickle.HIGHEST_PROTOCOL)
