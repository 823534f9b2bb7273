"""Bounded reading of untrusted output: keep the first bytes, count the rest.

Every byte stream a tool reads from something it does not control (a sandboxed
program's pipes, a web server's body, an MCP server's result) goes through a
``CappedBytes`` while it is read, so memory stays bounded whatever the source sends;
what was cut is said with a visible marker the agent reads.
"""

from __future__ import annotations

__all__ = ["CappedBytes"]


class CappedBytes:
    """The first ``cap`` bytes fed in, and the count of all of them."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.size = 0
        self._kept = bytearray()

    @property
    def cut(self) -> bool:
        """More was fed than is kept."""
        return self.size > self.cap

    def feed(self, chunk: bytes) -> None:
        """Keep what still fits of ``chunk``; count the rest and drop it."""
        self.size += len(chunk)
        room = self.cap - len(self._kept)
        if room > 0:
            self._kept += chunk[:room]

    def text(self, encoding: str = "utf-8", *, unread: bool = False) -> str:
        """What was kept, decoded, and a marker if anything was cut. ``unread``: the
        source was not read to its end, so how much more there was is unknown."""
        text = self._kept.decode(encoding, errors="replace")
        if not self.cut:
            return text
        if unread:
            return text + f"\n[... more bytes cut: reading stopped at {self.cap} bytes]"
        return text + f"\n[... {self.size - self.cap} more bytes cut]"
