"""The one error type the CLI turns into a one-line message (no traceback unless --debug)."""

from lidr_data.redact import redact_text


class LidrError(Exception):
    """A user-facing error: bad input, a missing file, an unreachable endpoint. The message says what and where.

    Messages quote what they refuse (a URL, a value, a server's answer): every secret-shaped part is redacted here,
    once for all of them, before anything can print or log it (see `lidr_data.redact`)."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact_text(a) if isinstance(a, str) else a for a in args))
