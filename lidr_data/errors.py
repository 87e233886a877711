"""The one error type the CLI turns into a one-line message (no traceback unless --debug)."""


class LidrError(Exception):
    """A user-facing error: bad input, a missing file, an unreachable endpoint. The message says what and where."""
