"""What the chaos tier shares: the app under load, the load, kills, and log checks.

The app: triage hands refunds to billing; billing adds with a tool; the pool is
disaggregated (every prompt crosses a prefill replica); two replicas of everything.
A conversation is four turns through the SDK: a hand-off, a tool call, a slow streamed
answer, thanks. ``run_load`` runs them beside a disruption (kills), then sends every
conversation one more message 10 s after the disruption ended, and checks every log.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray.serve.deployment import Application

from agents.api.spec import ApiKey, ApiLimits, ApiSpec, WebhookSpec, hash_key
from agents.builder import build_agents_app
from agents.client import AsyncClient
from agents.events import DoneEvent, ErrorEvent, Event, MessageEvent, TokenEvent
from agents.pool.spec import PoolSpec
from agents.spec import AgentSpec
from agents.store.spec import StoreSpec
from agents.testing import action
from tools.spec import ToolsConfig

KEY = "chaos-secret-key"
# A turn's deadline: generous, since the tier checks that nothing is lost, not speed (a
# quiet machine's slowest turn under node loss took 18 s; CI on a loaded one, 126 s).
TURN_TIMEOUT_S = 600.0
CONVERSATIONS = 24
TURNS = ["refund for order {n}", "sum 2 and 3", "slowly tell me more", "thanks"]
LAST = "one more, thanks"


HOOKS = "http://127.0.0.1:*/hooks"
"""Where the app may send webhooks: a receiver in the test process."""


def _answer(match: str, text: str, delay: float = 0.03) -> dict[str, Any]:
    return {"match": match, "json_reply": action("answer", text=text), "token_delay_s": delay}


SCRIPT = [
    {"match": "^refund", "json_reply": action("handoff", agent="billing", message="refund")},
    {"match": "^sum", "json_reply": action("tool", tool="add", arguments={"a": 2, "b": 3})},
    _answer(r"\[add result\]", "It is 5, or it could not be checked."),
    _answer("Handed off to billing", "Billing here: the refund is on its way."),
    _answer("^slowly", " ".join(f"more{i}" for i in range(24)), delay=0.05),
    _answer("^very slowly", " ".join(f"word{i}" for i in range(30)), delay=0.2),
    _answer("", "You are welcome."),
]


def chaos_app(
    db: Path,
    *,
    placed: Mapping[str, float] | None = None,
    engines: Mapping[str, float] | None = None,
    store: StoreSpec | None = None,
) -> Application:
    """The app under chaos; ``placed``: custom resources that put the API, agents and
    tool executor on the nodes that offer them; ``engines``: the pool's likewise;
    ``store``: instead of SQLite at ``db`` (PostgreSQL, shared by every node)."""
    two: dict[str, Any] = {"min_replicas": 2, "max_replicas": 2}
    resources = dict(placed or {})
    engine_resources = dict(engines or {})
    pool = {
        "models": [
            {
                "id": "m",
                "source": "builtin:smollm2-135m-instruct",
                "mode": "disaggregated",
                "decode": {"replicas": 2, "resources": engine_resources},
                "prefill": {"replicas": 2, "resources": engine_resources},
                "min_remote_prefill_tokens": 0,  # every prompt crosses the prefill replicas
                "scripted": SCRIPT,
            }
        ]
    }
    limits = {"turn_timeout_s": TURN_TIMEOUT_S}
    agents = [
        {"name": "triage", "model": "m", "handoffs": ["billing"], "limits": limits},
        {"name": "billing", "model": "m", "tools": ["add"], "limits": limits},
    ]
    api = ApiSpec(
        keys=[ApiKey(tenant="chaos", sha256=hash_key(KEY))],
        keys_env=None,
        limits=ApiLimits(requests_per_minute=100_000, burst=10_000),
        webhooks=WebhookSpec(allow=[HOOKS], backoff_s=0.2, max_backoff_s=1.0),
        resources=resources,
        **two,
    )
    tools = {"tools": [{"function": "tools.testing:add"}], "resources": resources, **two}
    return build_agents_app(
        [AgentSpec.model_validate({**a, "scaling": two, "resources": resources}) for a in agents],
        PoolSpec.model_validate(pool),
        store=store or StoreSpec(backend="sqlite", path=str(db)),
        tools=ToolsConfig.model_validate(tools),
        api=api,
        turn_lease_s=3.0,
        turn_timeout_s=TURN_TIMEOUT_S,
    )


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
    return check


async def _converse(client: AsyncClient, n: int, results: list[dict[str, Any]]) -> None:
    """One conversation's four turns; streamed and plain turns alternate."""
    conv = await client.conversations.create()
    for i, template in enumerate(TURNS):
        text = template.format(n=n)
        started = time.monotonic()
        if i % 2 == 0:
            events = [e async for e in conv.stream(text)]
            done = events[-1]
            assert isinstance(done, DoneEvent)
            status = done.status
            error = next((e for e in reversed(events) if isinstance(e, ErrorEvent)), None)
            seqs = [e.seq or 0 for e in events if not isinstance(e, TokenEvent)]
            if seqs != sorted(set(seqs)):
                status = "stream-out-of-order"
        else:
            result = await conv.send(text)
            status, error = result.status, result.error
        results.append(
            {
                "conversation": conv.id,
                "text": text,
                "status": status,
                "code": error.code if error is not None and status != "ok" else None,
                "seconds": time.monotonic() - started,
            }
        )


async def run_load(url: str, disrupt: Callable[[], Awaitable[float]]) -> dict[str, Any]:
    """24 conversations x 4 turns beside ``disrupt`` (which returns when, on the
    monotonic clock, its last blow fell); then one more message to every conversation
    10 s after that, and every stored log checked. Returns the figures."""
    results: list[dict[str, Any]] = []
    async with AsyncClient(url, KEY, max_retries=12, timeout=TURN_TIMEOUT_S) as client:
        started = time.monotonic()
        load = asyncio.gather(*(_converse(client, n, results) for n in range(CONVERSATIONS)))
        _, last_blow = await asyncio.gather(load, disrupt())
        load_s = time.monotonic() - started
        await asyncio.sleep(max(0.0, last_blow + 10 - time.monotonic()))
        ids = sorted({r["conversation"] for r in results})
        convs = await asyncio.gather(*(client.conversations.get(cid) for cid in ids))
        answers = await asyncio.gather(*(conv.send(LAST) for conv in convs))
        logs = [await conv.messages() for conv in convs]
    checks = {cid: check_log(log) for cid, log in zip(ids, logs, strict=True)}
    sent = {cid: [r["text"] for r in results if r["conversation"] == cid] for cid in ids}
    statuses = Counter(r["status"] for r in results)
    return {
        "turns": len(results),
        "load_s": round(load_s, 1),
        "ok": statuses["ok"],
        "ok_share": statuses["ok"] / max(len(results), 1),
        "statuses": dict(statuses),
        "error_codes": dict(Counter(r["code"] for r in results if r["code"])),
        "slowest_turn_s": round(max(r["seconds"] for r in results), 1),
        "turns_not_ok": [
            {"text": r["text"], "code": r["code"], "seconds": round(r["seconds"], 1)}
            for r in results
            if r["status"] != "ok"
        ],
        "answered_after": sum(a.status == "ok" for a in answers),
        "conversations": len(ids),
        # No user message lost or stored twice, in the order sent.
        "messages_mismatched": [c for c in ids if checks[c].messages != [*sent[c], LAST]],
        # Every turn in every log ends with done.
        "unclosed_turns": sum(len(c.unclosed) for c in checks.values()),
        "turns_in_logs": sum(c.turns for c in checks.values()),
    }


def assert_recovered(figures: dict[str, Any]) -> None:
    """What the chaos tier demands of a run's figures."""
    assert figures["turns"] == CONVERSATIONS * len(TURNS), figures
    assert figures["messages_mismatched"] == [], figures
    assert figures["unclosed_turns"] == 0, figures
    assert figures["turns_in_logs"] == CONVERSATIONS * (len(TURNS) + 1), figures
    assert figures["ok_share"] >= 0.99, figures
    assert figures["answered_after"] == figures["conversations"], figures
