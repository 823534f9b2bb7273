"""An agent replica's history cache: bounded by conversations and by bytes."""

from __future__ import annotations

from agents.service import AgentService
from agents.spec import AgentSpec
from agents.testing import LocalApp, ScriptedGenerator, action


def cached_app(*, cache_size: int = 100, cache_bytes: int) -> LocalApp:
    reply = {"match": ".", "json_reply": action("answer", text="ok")}
    app = LocalApp([AgentSpec(name="a", model="m")], generator=ScriptedGenerator([reply]))
    loop = app.service("a").loop
    app.peers.add(AgentService(loop, app.store, cache_size=cache_size, cache_bytes=cache_bytes))
    return app


async def test_huge_conversations_evict_others_instead_of_growing_the_cache() -> None:
    app = cached_app(cache_bytes=300_000)
    service = app.service("a")
    for n in range(5):  # small ones: all fit
        await app.send(f"hi {n}", conversation_id=f"small-{n}")
    assert service.cached_conversations == 5
    for n in range(4):  # ~100 kB each: at most 2 of them fit beside anything else
        await app.send("x" * 100_000, conversation_id=f"huge-{n}")
        assert service.cached_bytes <= 300_000
    assert service.cached_conversations <= 3
    assert service.cached_history("huge-3")  # the newest stays; the oldest went first
    assert not service.cached_history("small-0") and not service.cached_history("huge-0")


async def test_a_conversation_over_the_whole_budget_is_not_cached_but_still_answered() -> None:
    app = cached_app(cache_bytes=10_000)
    events = await app.send("y" * 50_000, conversation_id="big")
    assert events[-1].type == "done" and app.service("a").cached_bytes <= 10_000
    again = await app.send("and now?", conversation_id="big")  # reloaded from the store
    assert again[-1].type == "done"
