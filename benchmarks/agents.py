"""Control-plane benchmarks: prints a table and writes JSON.

    python -m benchmarks.agents [--phases hop,memory,scripted,real] [--out FILE]
        [--hop-rounds N] [--hop-warmup N] [--conversations N] [--turns N] [--concurrency N]

A smoke run (a few minutes on 2 cores, most of it starting replicas):

    python -m benchmarks.agents --phases hop,memory --hop-rounds 20 --hop-warmup 5 \\
        --conversations 200 --out /tmp/agents-smoke.json

Phases (every agent runs on the pool's scripted engine except in ``real``):

- hop:      what an agent-to-agent hop costs, from a probe replica, in interleaved rounds
            (each round times one of each, in a seeded random order, so load swings hit
            all alike):
            (a) turn_direct: a turn through the conversations service (the ingress) on
                ``expert``, which answers at once: 1 model step;
            (b) turn_handoff: the same turn on ``router``, which hands off to ``expert``,
                which answers: 2 model steps;
            (c) turn_ask: the same turn on ``asker``, which asks ``expert`` and then
                answers: 3 model steps (ask, the expert's answer, the asker's answer);
            (f) pool_step: one model step alone, a pool round trip for the same scripted
                reply, from the same replica;
            (d) serve_handle_call: a bare DeploymentHandle call to a no-op deployment;
            (e) ray_actor_call: a bare Ray actor method call.
            Equal work: the same agent (``expert``) answers in (a), (b) and (c), so its
            step cancels out; the steps (b) and (c) add (the router's hand-off, the
            asker's ask and its final answer) are scripted replies of 2 to 6 pieces
            with no token delay, as (f) is, so each costs about one ``pool_step``
            (a pool round trip; the pieces themselves cost microseconds). Per round i:
              handoff_hop_i = b_i - a_i - f_i    (the router's extra step taken out)
              ask_hop_i     = c_i - a_i - 2 f_i  (the asker's two extra steps taken out)
            What is left is the hop itself: the stored hand-off (or ask, its
            sub-conversation and its result), the handle call and the events relayed
            through one more replica. ``handoff_turn_extra`` (b - a) and ``ask_turn_extra``
            (c - a) keep the steps: what a user waits for beyond a direct answer.
            Goal: the median hand-off hop <= 1.2x the median bare Serve handle call.
- memory:   RSS of ONE agent replica process (agent-a, one replica, its cache large
            enough to hold every conversation) before and after N conversations of two
            turns each (4 cached messages), driven through the ingress; RSS is read inside
            the replica (after gc) through its Ray actor. The fill runs in 10 slices; RSS
            after each slice gives a per-slice KiB/conversation.
- scripted: turns per second for --concurrency conversations through the whole Serve
            path (entry -> agent -> pool) with the scripted engine: the control plane's
            own ceiling.
- real:     the same with the real default model on vLLM (CPU), 48-token answers.

JSON (``--out``) keys. A *stats* object is ``{"unit", "n", "min", "median", "p99", "max",
"samples"}``: ``samples`` are the raw values in ``unit`` (for CDF plots), in the order
measured.

- ``machine.cpus``
- ``hop.rounds``, ``hop.warmup_rounds``, ``hop.seed``,
  ``hop.steps`` (model steps per turn kind: turn_direct 1, turn_handoff 2, turn_ask 3)
- ``hop.calls.<kind>``: stats in ms of each measured kind, ``<kind>`` one of turn_direct,
  turn_handoff, turn_ask, pool_step, serve_handle_call, ray_actor_call (sample i of each
  was taken in round i)
- ``hop.derived.<name>``: stats in ms of the per-round differences handoff_turn_extra,
  handoff_hop, ask_turn_extra, ask_hop (defined above)
- ``hop.goal``: ``{"handoff_hop_median_ms", "serve_handle_call_median_ms", "ratio",
  "limit": 1.2, "met"}``
- ``memory.process`` (what was measured), ``memory.replica`` (actor name), ``memory.pid``,
  ``memory.conversations``, ``memory.warmup_conversations``,
  ``memory.turns_per_conversation``, ``memory.messages_per_conversation``,
  ``memory.cache_size``, ``memory.cached_check`` (``{"sampled", "with_all_messages"}``:
  conversations peeked in the replica's cache after the fill)
- ``memory.rss_before_mib`` / ``memory.rss_after_mib``: stats in MiB of repeated readings
- ``memory.delta_mib``, ``memory.kib_per_conversation``: from the two medians
- ``memory.kib_per_conversation_by_slice``: stats in KiB of each slice's growth divided
  by its conversations; ``memory.fill``: ``[[conversations_done, rss_mib], ...]``;
  ``memory.fill_wall_s``: how long the fill took
- ``scripted`` / ``real``: ``conversations``, ``turns_per_conversation``, ``turns``,
  ``wall_s``, ``turns_per_s`` and ``completion_tokens_per_s`` (whole run);
  ``turns_per_s_windows`` / ``completion_tokens_per_s_windows``: stats over 5 equal
  time windows of the run; ``turn_latency``: stats in ms of every turn

Ratios and differences measured side by side are what to read: absolute numbers move
with the machine's other load.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from agents.protocol import SendRequest
from benchmarks._common import local_serve, pct, run_phases, table

MODEL = "builtin:smollm2-135m-instruct"
MODEL_ID = "m"
HANDOFF_GOAL = 1.2
WINDOWS = 5


def answer_rule(match: str, text: str) -> dict[str, Any]:
    return {"match": match, "json_reply": {"action": "answer", "text": text}}


SCRIPT = [answer_rule(".", "a short answer of a few words")]

# The hop phase's replies are a few pieces each with no token delay, so an extra step
# of a hand-off or an ask costs about what the bare pool step does.
ANSWER = "three word answer"
HOP_SCRIPT: list[dict[str, Any]] = [
    answer_rule("^direct question$", ANSWER),
    # The router (its prompt lists its peers) writes only the peer; the expert after
    # the hand-off answers the same user message (a router leaves no note).
    {
        "match": "^handoff question$",
        "system": "hand the conversation to",
        "json_reply": {"action": "handoff", "agent": "expert"},
    },
    answer_rule("^handoff question$", ANSWER),
    {
        "match": "^ask question$",
        "json_reply": {"action": "ask", "agent": "expert", "question": "lookup"},
    },
    answer_rule("^lookup$", ANSWER),  # the expert, asked
    answer_rule(r"^\[ask result\]", ANSWER),  # the asker, with the expert's answer
]
HOP_AGENTS: list[dict[str, Any]] = [
    {"name": "expert", "model": MODEL_ID},
    {"name": "router", "model": MODEL_ID, "handoffs": ["expert"], "can_answer": False},
    {"name": "asker", "model": MODEL_ID, "asks": ["expert"]},
]
# Turn kind: (first agent, message, model steps, the agent that answers next turn).
TURNS = {
    "turn_direct": ("expert", "direct question", 1, "expert"),
    "turn_handoff": ("router", "handoff question", 2, "expert"),
    "turn_ask": ("asker", "ask question", 3, "asker"),
}
# The schema an answer-only agent's step carries (for the bare pool step).
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"action": {"enum": ["answer"]}, "text": {"type": "string"}},
    "required": ["action", "text"],
    "additionalProperties": False,
}


def deploy(
    app: str,
    agents: list[dict[str, Any]],
    model: dict[str, Any],
    db: Path,
    *,
    cache_size: int | None = None,
) -> Any:
    from ray import serve

    from agents.builder import build_agents_app
    from agents.pool.spec import PoolSpec
    from agents.service import DEFAULT_CACHE_SIZE
    from agents.spec import AgentSpec
    from agents.store import StoreSpec

    built = build_agents_app(
        [AgentSpec.model_validate(a) for a in agents],
        PoolSpec.model_validate({"models": [model]}),
        store=StoreSpec(backend="sqlite", path=str(db)),
        cache_size=DEFAULT_CACHE_SIZE if cache_size is None else cache_size,
    )
    serve.run(built, name=app, route_prefix=None)
    return serve.get_app_handle(app)


async def turn(handle: Any, message: str, conversation: str) -> tuple[float, list[Any]]:
    start = time.perf_counter()
    request = SendRequest(message=message, conversation_id=conversation)
    stream = handle.options(stream=True).send.remote(request)
    events = [e async for batch in stream for e in batch]
    elapsed = time.perf_counter() - start
    if events[-1].status != "ok":
        raise RuntimeError(f"turn failed: {events}")
    return elapsed, events


def stats(values: Sequence[float], unit: str, scale: float = 1.0) -> dict[str, Any]:
    """n, min, median, p99, max of ``values`` times ``scale``, with the raw samples."""
    xs = [v * scale for v in values]
    if not xs:
        nan = float("nan")
        return {"unit": unit, "n": 0, "min": nan, "median": nan, "p99": nan, "max": nan}
    return {
        "unit": unit,
        "n": len(xs),
        "min": min(xs),
        "median": statistics.median(xs),
        "p99": pct(xs, 99),
        "max": max(xs),
        "samples": [round(x, 4) for x in xs],
    }


# --------------------------------------------------------------------------- hop


class Echo:
    """The floor: a deployment (and an actor) that does nothing but answer."""

    async def ping(self, conversation: str) -> str:
        return conversation


class HopProbe:
    """Times every kind of call from inside a replica, as one agent calls another."""

    def __init__(self, echo: Any, app: str) -> None:
        import ray
        from ray import serve

        from agents.builder import INGRESS_NAME
        from agents.pool.client import PoolClient
        from agents.pool.spec import deployment_name

        self._echo = echo
        self._actor: Any = ray.remote(num_cpus=0)(Echo).remote()
        self._entry: Any = serve.get_deployment_handle(INGRESS_NAME, app).options(stream=True)
        model = serve.get_deployment_handle(deployment_name(MODEL_ID), app)
        self._pool = PoolClient({MODEL_ID: model})

    async def _turn(self, kind: str) -> None:
        agent, message, steps, active = TURNS[kind]
        request = SendRequest(message=message, agent=agent, conversation_id=uuid.uuid4().hex)
        events = [e async for batch in self._entry.send.remote(request) for e in batch]
        done = events[-1]
        if (done.status, done.usage.steps, done.active_agent) != ("ok", steps, active):
            raise RuntimeError(f"{kind}: not the planned turn ({steps} steps): {events}")

    async def _step(self) -> None:
        from agents.pool.types import GenerateRequest, Message, SamplingParams

        request = GenerateRequest(
            model=MODEL_ID,
            messages=[
                Message(role="system", content="You are a helpful assistant."),
                Message(role="user", content="direct question"),
            ],
            sampling=SamplingParams(temperature=0.0),
            json_schema=ANSWER_SCHEMA,
            session_id=uuid.uuid4().hex,
        )
        async for _ in self._pool.generate(request):
            pass

    async def measure(self, rounds: int, warmup: int, seed: int) -> dict[str, list[float]]:
        calls: dict[str, Callable[[], Awaitable[Any]]] = {
            "turn_direct": lambda: self._turn("turn_direct"),
            "turn_handoff": lambda: self._turn("turn_handoff"),
            "turn_ask": lambda: self._turn("turn_ask"),
            "pool_step": self._step,
            "serve_handle_call": lambda: self._echo.ping.remote("x"),
            "ray_actor_call": lambda: self._actor.ping.remote("x"),
        }
        order = random.Random(seed)
        seconds: dict[str, list[float]] = {name: [] for name in calls}
        for n in range(warmup + rounds):  # the first rounds warm routers and caches
            names = list(calls)
            order.shuffle(names)
            for name in names:
                start = time.perf_counter()
                await calls[name]()
                if n >= warmup:
                    seconds[name].append(time.perf_counter() - start)
        return seconds


def hop_results(seconds: dict[str, list[float]], rounds: int, warmup: int, seed: int) -> Any:
    """The hop phase's figures (see the module docstring) from each round's timings."""
    a, b, c, f = (seconds[k] for k in ("turn_direct", "turn_handoff", "turn_ask", "pool_step"))
    derived = {
        "handoff_turn_extra": [bi - ai for ai, bi in zip(a, b, strict=True)],
        "handoff_hop": [bi - ai - fi for ai, bi, fi in zip(a, b, f, strict=True)],
        "ask_turn_extra": [ci - ai for ai, ci in zip(a, c, strict=True)],
        "ask_hop": [ci - ai - 2 * fi for ai, ci, fi in zip(a, c, f, strict=True)],
    }
    hop = stats(derived["handoff_hop"], "ms", 1000)["median"]
    floor = stats(seconds["serve_handle_call"], "ms", 1000)["median"]
    return {
        "rounds": rounds,
        "warmup_rounds": warmup,
        "seed": seed,
        "steps": {kind: steps for kind, (_, _, steps, _) in TURNS.items()},
        "calls": {name: stats(s, "ms", 1000) for name, s in seconds.items()},
        "derived": {name: stats(s, "ms", 1000) for name, s in derived.items()},
        "goal": {
            "handoff_hop_median_ms": hop,
            "serve_handle_call_median_ms": floor,
            "ratio": hop / floor,
            "limit": HANDOFF_GOAL,
            "met": hop <= HANDOFF_GOAL * floor,
        },
    }


async def phase_hop(results: dict[str, Any], db: Path, rounds: int, warmup: int) -> None:
    from ray import serve

    model = {"id": MODEL_ID, "source": MODEL, "scripted": HOP_SCRIPT}
    deploy("bench-hop", HOP_AGENTS, model, db)
    # The probe runs in a replica of its own, so every call crosses processes like a hop.
    free = {"ray_actor_options": {"num_cpus": 0}}
    deployment: Any = serve.deployment
    echo = deployment(Echo).options(**free)
    probe = deployment(HopProbe).options(**free)
    prober = serve.run(probe.bind(echo.bind(), "bench-hop"), name="bench-probe", route_prefix=None)
    seed = 20261201
    seconds = await prober.measure.remote(rounds, warmup, seed)
    serve.delete("bench-probe")
    serve.delete("bench-hop")
    results["hop"] = hop_results(seconds, rounds, warmup, seed)


# --------------------------------------------------------------------------- memory


def _replica_rss(_actor: Any) -> tuple[int, int]:
    """Run inside a replica (``__ray_call__``): its pid and RSS in bytes, after gc."""
    import gc
    import os

    import psutil

    gc.collect()
    return os.getpid(), psutil.Process().memory_info().rss


def replica_actor(app: str, deployment: str) -> tuple[str, Any]:
    """The name and Ray actor of the deployment's only replica."""
    import ray

    prefix = f"SERVE_REPLICA::{app}#{deployment}#"
    names = [
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["namespace"] == "serve" and a["name"].startswith(prefix)
    ]
    if len(names) != 1:
        raise RuntimeError(f"expected one replica of {deployment!r}, found {names}")
    return names[0], ray.get_actor(names[0], namespace="serve")


async def phase_memory(results: dict[str, Any], db: Path, conversations: int) -> None:
    from ray import serve

    app, deployment = "bench-memory", "agent-a"
    warm = min(200, conversations)
    cache_size = warm + conversations + 1000  # every conversation stays cached
    model = {"id": MODEL_ID, "source": MODEL, "scripted": SCRIPT}
    agents = [{"name": "a", "model": MODEL_ID, "scaling": {"min_replicas": 1, "max_replicas": 1}}]
    handle = deploy(app, agents, model, db, cache_size=cache_size)
    name, actor = replica_actor(app, deployment)

    async def rss() -> tuple[int, float]:
        pid, size = await actor.__ray_call__.remote(_replica_rss)
        return pid, size / 2**20

    gate = asyncio.Semaphore(64)
    run = uuid.uuid4().hex[:8]

    async def chat(cid: str) -> None:
        async with gate:
            await turn(handle, "Hello, how are you today?", cid)
            await turn(handle, "Tell me something about the sea.", cid)

    await asyncio.gather(*(chat(f"warm-{i}-{run}") for i in range(warm)))
    pid, _ = await rss()
    before = [(await rss())[1] for _ in range(5)]
    fill: list[list[float]] = [[0, before[-1]]]
    per_slice: list[float] = []
    done = 0
    started = time.perf_counter()
    for slice_no in range(10):
        end = conversations * (slice_no + 1) // 10
        if end == done:
            continue
        await asyncio.gather(*(chat(f"c-{i}-{run}") for i in range(done, end)))
        size = (await rss())[1]
        per_slice.append((size - fill[-1][1]) * 1024 / (end - done))
        fill.append([end, size])
        done = end
    fill_s = time.perf_counter() - started
    after = [(await rss())[1] for _ in range(5)]
    if (await rss())[0] != pid:
        raise RuntimeError("the agent replica restarted during the fill")
    agent = serve.get_deployment_handle(deployment, app)
    sampled = random.Random(1).sample(range(conversations), min(20, conversations))
    complete = 0
    for i in sampled:
        cid = f"c-{i}-{run}"
        peeked = await agent.options(session_id=cid).peek.remote(cid)
        complete += len(peeked["messages"]) == 4
    serve.delete(app)
    delta = statistics.median(after) - statistics.median(before)
    results["memory"] = {
        "process": f"one agent replica process ({deployment}), RSS read inside it after gc",
        "replica": name,
        "pid": pid,
        "conversations": conversations,
        "warmup_conversations": warm,
        "turns_per_conversation": 2,
        "messages_per_conversation": 4,
        "cache_size": cache_size,
        "cached_check": {"sampled": len(sampled), "with_all_messages": complete},
        "rss_before_mib": stats(before, "MiB"),
        "rss_after_mib": stats(after, "MiB"),
        "delta_mib": delta,
        "kib_per_conversation": delta * 1024 / conversations,
        "kib_per_conversation_by_slice": stats(per_slice, "KiB"),
        "fill": fill,
        "fill_wall_s": fill_s,
    }


# --------------------------------------------------------------------------- throughput


def windowed(finished: list[float], weights: list[float], wall: float) -> list[float]:
    """Per-second rates of ``weights`` (completed at ``finished`` s) over equal windows."""
    width = wall / WINDOWS
    totals = [0.0] * WINDOWS
    for at, weight in zip(finished, weights, strict=True):
        totals[min(WINDOWS - 1, int(at / width))] += weight
    return [total / width for total in totals]


async def phase_throughput(
    results: dict[str, Any], db: Path, *, real: bool, turns: int, concurrency: int
) -> None:
    from ray import serve

    model: dict[str, Any]
    if real:
        model = {
            "id": MODEL_ID,
            "source": MODEL,
            "engine": {"max_model_len": 4096, "kv_cache_gib": 1},
        }
        sampling = {"temperature": 0, "max_tokens": 48}
    else:
        model = {"id": MODEL_ID, "source": MODEL, "scripted": SCRIPT}
        sampling = {"temperature": 0, "max_tokens": 256}
    agents = [{"name": "a", "model": MODEL_ID, "sampling": sampling}]
    app = "bench-real" if real else "bench-scripted"
    handle = deploy(app, agents, model, db)
    await turn(handle, "warm up", uuid.uuid4().hex)
    latencies: list[float] = []
    finished: list[float] = []
    tokens: list[float] = []
    start = time.perf_counter()

    async def conversation() -> None:
        cid = uuid.uuid4().hex
        for n in range(turns):
            elapsed, events = await turn(handle, f"Tell me one fact about the number {n}.", cid)
            latencies.append(elapsed)
            finished.append(time.perf_counter() - start)
            tokens.append(events[-1].usage.completion_tokens)

    await asyncio.gather(*(conversation() for _ in range(concurrency)))
    wall = time.perf_counter() - start
    ones = [1.0] * len(finished)
    results["real" if real else "scripted"] = {
        "conversations": concurrency,
        "turns_per_conversation": turns,
        "turns": len(latencies),
        "wall_s": wall,
        "turns_per_s": len(latencies) / wall,
        "completion_tokens_per_s": sum(tokens) / wall,
        "turns_per_s_windows": stats(windowed(finished, ones, wall), "turns/s"),
        "completion_tokens_per_s_windows": stats(windowed(finished, tokens, wall), "tokens/s"),
        "turn_latency": stats(latencies, "ms", 1000),
    }
    serve.delete(app)


# --------------------------------------------------------------------------- report


def spread(s: dict[str, Any], digits: int = 2) -> str:
    """A stats object as 'median X unit (min, max; n)'."""

    def num(x: float) -> str:
        return "nan" if math.isnan(x) else f"{x:.{digits}f}"

    return (
        f"median {num(s['median'])} {s['unit']} "
        f"(min {num(s['min'])}, max {num(s['max'])}; n={s['n']})"
    )


def rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The table rows of what was measured."""
    rows: list[tuple[str, str, str]] = []
    if "hop" in results:
        h = results["hop"]
        labels = {
            "ray_actor_call": "floor (e): bare Ray actor call",
            "serve_handle_call": "floor (d): bare Serve handle call (no-op deployment)",
            "pool_step": "one model step (f): scripted pool round trip",
            "turn_direct": "turn (a): expert answers (1 step)",
            "turn_handoff": "turn (b): router hands off to expert (2 steps)",
            "turn_ask": "turn (c): asker asks expert, answers (3 steps)",
        }
        for key, label in labels.items():
            rows.append((label, spread(h["calls"][key]), ""))
        goal = h["goal"]
        verdict = "met" if goal["met"] else "NOT met"
        derived = {
            "handoff_turn_extra": ("hand-off turn extra: b - a (with 1 step)", ""),
            "handoff_hop": (
                "hand-off hop: b - a - f",
                f"<= {goal['limit']}x (d): {goal['ratio']:.2f}x, {verdict}",
            ),
            "ask_turn_extra": ("ask turn extra: c - a (with 2 steps)", ""),
            "ask_hop": ("ask hop: c - a - 2f", "report"),
        }
        for key, (label, target) in derived.items():
            rows.append((label, spread(h["derived"][key]), target))
    if "memory" in results:
        m = results["memory"]
        rows.append(
            (
                "RSS of one agent replica process, before",
                spread(m["rss_before_mib"], 1),
                "report",
            )
        )
        rows.append(
            (
                f"... after {m['conversations']:,} cached conversations "
                f"({m['messages_per_conversation']} messages each)",
                f"{spread(m['rss_after_mib'], 1)}: +{m['delta_mib']:.1f} MiB, "
                f"{m['kib_per_conversation']:.2f} KiB per conversation",
                "report",
            )
        )
        rows.append(
            (
                "... KiB per conversation, per tenth of the fill",
                spread(m["kib_per_conversation_by_slice"]),
                "",
            )
        )
    for key, label in (("scripted", "scripted engine"), ("real", "real model, 48 tokens")):
        if key in results:
            r = results[key]
            rows.append(
                (
                    f"{r['conversations']} concurrent conversations, {label}: turns/s",
                    f"{r['turns_per_s']:.1f} over the run; windows "
                    f"{spread(r['turns_per_s_windows'], 1)}",
                    "report",
                )
            )
            rows.append(("... turn latency", spread(r["turn_latency"], 0), ""))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--phases", default="hop,memory,scripted,real")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/agents.json"))
    parser.add_argument("--hop-rounds", type=int, default=300, help="Measured rounds (hop).")
    parser.add_argument("--hop-warmup", type=int, default=20, help="Unmeasured rounds (hop).")
    parser.add_argument(
        "--conversations", type=int, default=10_000, help="Conversations cached (memory)."
    )
    parser.add_argument("--turns", type=int, default=10, help="Turns per conversation (scripted).")
    parser.add_argument(
        "--concurrency", type=int, default=32, help="Concurrent conversations (scripted, real)."
    )
    args = parser.parse_args()
    selected = args.phases.split(",")
    if "real" in selected:
        from agents.pool import weights

        weights.prepare(MODEL)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp)
        phases = {
            "hop": lambda results: phase_hop(
                results, db / "hop.db", args.hop_rounds, args.hop_warmup
            ),
            "memory": lambda results: phase_memory(results, db / "memory.db", args.conversations),
            "scripted": lambda results: phase_throughput(
                results,
                db / "scripted.db",
                real=False,
                turns=args.turns,
                concurrency=args.concurrency,
            ),
            "real": lambda results: phase_throughput(
                results, db / "real.db", real=True, turns=2, concurrency=args.concurrency
            ),
        }
        with local_serve(port=8767):
            results = asyncio.run(run_phases(selected, phases, args.out))
    print(table(rows(results)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
