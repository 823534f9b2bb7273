"""A tool worker process: runs calls sent over stdin, answers on stdout.

Frames are a 4-byte big-endian length and a pickle. A request is
``(function_bytes, arguments)`` (the function cloudpickled); the answer is
``("ok", value)`` or ``("error", type_name, message)``. The tool's own prints go to
stderr so they cannot corrupt the protocol. A tool that crashes the process (a
segfault, ``os._exit``) ends only this worker; the pool starts another.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import pickle
import struct
import sys
from typing import Any, BinaryIO

import cloudpickle


def read_frame(stream: BinaryIO) -> Any:
    header = stream.read(4)
    if len(header) < 4:
        raise EOFError
    (size,) = struct.unpack(">I", header)
    return pickle.loads(stream.read(size))


def frame(value: Any) -> bytes:
    data = pickle.dumps(value)
    return struct.pack(">I", len(data)) + data


def main() -> None:
    requests = sys.stdin.buffer
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    # Whatever the tool writes to fd 1 (prints, os.system, C code) goes to stderr:
    # only the duplicate above carries the protocol.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    functions: dict[bytes, Any] = {}
    while True:
        try:
            blob, arguments = read_frame(requests)
        except EOFError:
            return
        try:
            fn = functions.get(blob)
            if fn is None:
                fn = functions[blob] = cloudpickle.loads(blob)
            value = fn(**arguments)
            if inspect.isawaitable(value):
                value = asyncio.run(_await(value))
            data = frame(("ok", value))  # a value that does not pickle is an error too
        except Exception as exc:  # the tool's failure is the caller's result
            data = frame(("error", type(exc).__name__, str(exc)))
        answers.write(data)
        answers.flush()


async def _await(value: Any) -> Any:
    return await value


if __name__ == "__main__":
    main()
