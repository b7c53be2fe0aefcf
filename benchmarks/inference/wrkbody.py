"""wrk runs whose request body is bytes, not text.

``benchmarks.loadgen`` writes a run's body into wrk's Lua script as a JSON
string literal, which carries text only: Lua has no ``\\uXXXX`` escape, so a
byte above 0x7f or most control bytes would not survive. Inside
:func:`sending`, the script loadgen writes is followed by one more line that
sets ``wrk.body`` to the bytes as a Lua string of decimal escapes; the run
itself (wrk's options, the percentiles, the error counts) is loadgen's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from unittest import mock

from benchmarks import loadgen


def lua_string(data: bytes) -> str:
    """A Lua string literal of ``data``: three-digit decimal escapes, so a
    digit after an escape is never read as part of it."""
    return '"' + "".join(f"\\{byte:03d}" for byte in data) + '"'


@contextlib.contextmanager
def sending(body: bytes) -> Iterator[None]:
    """wrk runs started in this block send ``body`` instead of the Load's."""
    plain = loadgen._script

    def script(load: loadgen.Load) -> str:
        return plain(load) + f"wrk.body = {lua_string(body)}\n"

    with mock.patch.object(loadgen, "_script", script):
        yield
