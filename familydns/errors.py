"""The exception tree of familydns.

Everything the project raises on purpose derives from FamilyDNSError, so callers at the
edges (CLI, server loop) can turn any of them into a clear message without catching
programming errors by accident. dnslib, OS and SSL errors are translated where they
enter (wire decoding, upstream I/O) into these classes.
"""

from __future__ import annotations


class FamilyDNSError(Exception):
    """Base class for every error familydns raises deliberately."""


class ConfigError(FamilyDNSError):
    """A configuration that cannot be used; lists every problem with the key it concerns."""

    def __init__(self, problems: list[str] | str, source: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(where + "; ".join(self.problems))

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source else ""
        if len(self.problems) == 1:
            return where + self.problems[0]
        return where + "\n  " + "\n  ".join(self.problems)


class WireError(FamilyDNSError):
    """A DNS message that cannot be decoded.

    ``query_id`` is set when the 12-byte header was readable, so the server can answer
    FORMERR to it; when it is None the packet is dropped silently.
    """

    def __init__(self, reason: str, query_id: int | None = None, rcode: int = 1) -> None:
        super().__init__(reason)
        self.reason = reason
        self.query_id = query_id
        self.rcode = rcode


class UpstreamError(FamilyDNSError):
    """An upstream did not give a usable answer (timeout, refused, bad or spoofed reply)."""
