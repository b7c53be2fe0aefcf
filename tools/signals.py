"""Signal dispositions the project's test and benchmark drivers hand down."""

from __future__ import annotations

import signal


def deliver_sigint() -> None:
    """Let the programs this process starts receive SIGINT.

    A shell without job control starts a background command with SIGINT
    ignored, and an ignored signal stays ignored across ``exec``. The Pulumi
    CLI stops each plugin it is done with by SIGINT and kills it only 5 s
    later, so under such a driver every ``pulumi`` command would wait 5 s
    for its language host (seen: a no-op ``up`` of the dev stack in 6.9 s
    instead of 2.0 s). Python's own handler instead, which ``exec`` resets
    to the default for the children."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
