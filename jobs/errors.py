"""Errors a job reports to its operator instead of a stack trace."""


class JobError(Exception):
    """A failure with a message that says what to fix.

    Raised for conditions an operator can act on (unreachable service, missing
    input, input that does not match its schema); the CLI prints the message and
    exits non-zero without a Python traceback.
    """
