"""Per-session prompt bookkeeping for conditional disaggregation."""

from __future__ import annotations

from collections import OrderedDict


def common_prefix_len(a: list[int], b: list[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    common = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        common += 1
    return common


class SessionPrefixes:
    """What each session's last request left in the decode engine's prefix cache.

    The engine caches the prompt and the generated tokens; the next turn's prompt
    repeats both (the reply comes back as the assistant message), so a prompt that
    extends the previous one misses only what follows the previous reply.
    """

    def __init__(self, max_sessions: int = 4096) -> None:
        self._last: OrderedDict[str, tuple[list[int], int]] = OrderedDict()
        self._max = max_sessions

    def new_tokens(self, session: str | None, ids: list[int]) -> int:
        """Tokens of ``ids`` the decode engine is expected not to have cached."""
        previous, generated = self._last.get(session, ([], 0)) if session else ([], 0)
        common = common_prefix_len(previous, ids)
        if previous and common == len(previous):
            common = min(len(ids), common + generated)
        return len(ids) - common

    def remember(self, session: str | None, ids: list[int], generated: int) -> None:
        """Record a finished request of ``session``: its prompt and output length."""
        if not session:
            return
        self._last[session] = (ids, generated)
        self._last.move_to_end(session)
        while len(self._last) > self._max:
            self._last.popitem(last=False)
