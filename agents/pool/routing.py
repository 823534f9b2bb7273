"""Session affinity with a load bound: the pool's (and the agents') request router.

Consistent hashing alone (Ray's ``ConsistentHashRouter``) keeps a conversation on one
replica, but spreads 16 conversations over 2 replicas unevenly: the busier one holds
~9.6 on average, and a batch is as slow as its busiest engine. ``SessionRouter`` keeps
the affinity and bounds the load:

- a session seen before goes back to its replica while that replica lives;
- a new session goes to the replica holding the fewest *active* sessions (seen within
  ``active_s``), ties broken by the consistent-hash ring, so one replica's sessions
  never outnumber another's by more than one, per router;
- a session idle for longer than ``active_s`` stops counting; past ``max_sessions``
  the least recently seen are forgotten (their next request is placed again).

Each router (one per DeploymentHandle, per process) keeps its own table, so it is for
deployments one caller reaches per session: the pool, whose requests for one
conversation come from one agent replica (agents themselves route by plain consistent
hashing: the entry and the peers must agree). Requests without a session are spread by
the ring (a fresh id each).
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

from ray.serve.experimental.consistent_hash_router import ConsistentHashRouter

__all__ = ["SESSION_ROUTER", "SessionRouter", "SessionTable"]

SESSION_ROUTER = "agents.pool.routing:SessionRouter"
R = TypeVar("R", bound=Hashable)


class SessionTable(Generic[R]):
    """Which replica each session is on (the routing decision, without Ray)."""

    def __init__(
        self,
        *,
        active_s: float = 600.0,
        max_sessions: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.active_s, self.max_sessions, self._clock = active_s, max_sessions, clock
        self._sessions: OrderedDict[str, tuple[R, float]] = OrderedDict()
        self._active: Counter[R] = Counter()

    def place(self, session: str, ranked: Sequence[R]) -> R:
        """The replica for ``session``; ``ranked``: the live replicas, best first (the
        ring's order for this session)."""
        now = self._clock()
        self._expire(now)
        known = self._sessions.pop(session, None)
        if known is not None and known[0] in ranked:
            replica = known[0]
        else:
            if known is not None:
                self._active[known[0]] -= 1  # its replica is gone
            replica = min(ranked, key=lambda r: self._active[r])  # min keeps ring order
            self._active[replica] += 1
        self._sessions[session] = (replica, now)
        while len(self._sessions) > self.max_sessions:
            self._forget(*self._sessions.popitem(last=False))
        return replica

    def load(self) -> dict[R, int]:
        """Active sessions per replica."""
        self._expire(self._clock())
        return {r: n for r, n in self._active.items() if n}

    def _expire(self, now: float) -> None:
        while self._sessions:
            session, (replica, seen) = next(iter(self._sessions.items()))
            if now - seen <= self.active_s:
                return
            self._forget(session, (replica, seen))
            del self._sessions[session]

    def _forget(self, session: str, entry: tuple[R, float]) -> None:
        self._active[entry[0]] -= 1


class SessionRouter(ConsistentHashRouter):  # type: ignore[misc]
    """Ray Serve request router: ``SessionTable`` over Ray's consistent-hash ring.

    Router kwargs: those of ``ConsistentHashRouter`` (``num_virtual_nodes``,
    ``num_fallback_replicas``) plus ``active_s`` and ``max_sessions``.
    """

    def initialize_state(self, **kwargs: Any) -> None:
        """Take the table's kwargs; the rest go to ``ConsistentHashRouter``."""
        table = {k: kwargs.pop(k) for k in ("active_s", "max_sessions") if k in kwargs}
        super().initialize_state(**kwargs)
        self._table: SessionTable[Any] = SessionTable(**table)

    async def choose_replicas(
        self, candidate_replicas: list[Any], pending_request: Any | None = None
    ) -> list[list[Any]]:
        """The table's replica first, then the ring's fallbacks."""
        ranks: list[list[Any]] = await super().choose_replicas(candidate_replicas, pending_request)
        session = pending_request.metadata.session_id if pending_request is not None else None
        if not session or not ranks:
            return ranks
        # Every live replica in ring order: the table may pick past the fallbacks.
        ring = [r.replica_id for rank in ranks for r in rank]
        ring += [r for r in self._lookup_ranked_all(session) if r not in ring]
        chosen = self._table.place(session, ring)
        replica = self._replicas.get(chosen)
        if replica is None:
            return ranks
        rest = [rank for rank in ranks if rank[0].replica_id != chosen]
        return [[replica], *rest][: 1 + self._num_fallback_replicas]

    def _lookup_ranked_all(self, session: str) -> list[Any]:
        fallbacks, self._num_fallback_replicas = self._num_fallback_replicas, len(self._replicas)
        try:
            return list(self._lookup_ranked_replicas(session))
        finally:
            self._num_fallback_replicas = fallbacks
