"""Session affinity with a load bound (``SessionTable``, the core of ``SessionRouter``)."""

from __future__ import annotations

import random
from collections import Counter

from agents.pool.routing import SessionTable


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_new_sessions_split_evenly_and_stay_put() -> None:
    table: SessionTable[str] = SessionTable()
    rng = random.Random(7)
    placed = {}
    for n in range(16):
        ring = ["a", "b"] if rng.random() < 0.5 else ["b", "a"]  # the ring's own order
        placed[f"s{n}"] = table.place(f"s{n}", ring)
    assert Counter(placed.values()) == {"a": 8, "b": 8}
    for session, replica in placed.items():
        assert table.place(session, ["b", "a"]) == replica  # affinity beats ring order
    assert table.load() == {"a": 8, "b": 8}


def test_ties_follow_the_ring() -> None:
    table: SessionTable[str] = SessionTable()
    assert table.place("s1", ["b", "a", "c"]) == "b"
    assert table.place("s2", ["b", "a", "c"]) == "a"


def test_a_session_whose_replica_died_moves_and_the_count_follows() -> None:
    table: SessionTable[str] = SessionTable()
    assert table.place("s1", ["a", "b"]) == "a"
    assert table.place("s1", ["b"]) == "b"
    assert table.load() == {"b": 1}


def test_idle_sessions_stop_counting_and_the_table_is_bounded() -> None:
    clock = Clock()
    table: SessionTable[str] = SessionTable(active_s=60, max_sessions=3, clock=clock)
    for n in range(3):
        table.place(f"old{n}", ["a", "b"])
    assert table.load() == {"a": 2, "b": 1}
    clock.now = 61
    assert table.load() == {}
    assert table.place("new", ["a", "b"]) == "a"
    for n in range(5):
        table.place(f"more{n}", ["a", "b"])
    assert sum(table.load().values()) == 3
