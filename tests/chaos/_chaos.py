"""What the chaos tier shares: killing Serve replicas, and checking stored logs."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from agents.events import DoneEvent, Event, MessageEvent


def replicas(app: str, deployment: str) -> list[str]:
    """The actor names of a deployment's live replicas (Serve names them
    ``SERVE_REPLICA::<app>#<deployment>#<id>`` in the ``serve`` namespace)."""
    import ray

    prefix = f"SERVE_REPLICA::{app}#{deployment}#"
    named = ray.util.list_named_actors(all_namespaces=True)
    return sorted(a["name"] for a in named if a["name"].startswith(prefix))


def kill_replica(app: str, deployment: str, rng: random.Random) -> str:
    """Kill one live replica of ``deployment`` (Serve starts a replacement)."""
    import ray

    names = replicas(app, deployment)
    if not names:
        raise AssertionError(f"{deployment} has no live replica to kill")
    name = rng.choice(names)
    ray.kill(ray.get_actor(name, namespace="serve"), no_restart=True)
    return name


@dataclass
class LogCheck:
    """What one conversation's stored log says about its turns."""

    messages: list[str]
    turns: int
    unclosed: list[str] = field(default_factory=list)
    """Turns without a ``done``, or with events after their ``done``."""
    statuses: dict[str, str] = field(default_factory=dict)


def check_log(events: Sequence[Event]) -> LogCheck:
    """Every user message once, and every turn closed by exactly one final ``done``."""
    by_turn: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        by_turn[event.turn_id or "?"].append(event)
    check = LogCheck(
        messages=[e.content for e in events if isinstance(e, MessageEvent)], turns=len(by_turn)
    )
    for turn_id, turn in by_turn.items():
        dones = [e for e in turn if isinstance(e, DoneEvent)]
        if len(dones) != 1 or turn[-1] is not dones[0]:
            check.unclosed.append(turn_id)
        else:
            check.statuses[turn_id] = dones[0].status
    return check
