"""Control-plane benchmarks: prints a table and writes JSON.

    python -m benchmarks.agents [--phases hop,memory,scripted,real] [--out FILE]

- hop:      agent-to-agent overhead through DeploymentHandles on one node, measured
            replica to replica: a handle call to an agent replica next to the floors
            (a bare Ray actor call, a handle call to a no-op deployment); and a turn
            with a hand-off (A -> B, two model steps) next to one A answers alone.
- memory:   RSS of one agent process holding 10,000 idle conversations in its cache
            (two turns each), measured in a fresh process.
- scripted: turns per second for 32 concurrent conversations through the whole Serve
            path (entry -> agent -> pool) with the scripted engine: the control plane's
            own ceiling.
- real:     the same with the real default model on vLLM (CPU), 48-token answers.

Ratios and differences measured side by side are what to read: absolute numbers move
with the machine's other load.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from agents.protocol import SendRequest
from benchmarks._common import local_serve, pct, run_phases, summary, table

MODEL = "builtin:smollm2-135m-instruct"
CONCURRENCY = 32


def answer_rule(match: str, text: str) -> dict[str, Any]:
    return {"match": match, "json_reply": {"action": "answer", "text": text}}


SCRIPT = [
    {"match": "^hop", "json_reply": {"action": "handoff", "agent": "b", "message": "go"}},
    answer_rule("Handed off to b", "b answers"),
    answer_rule(".", "a short answer of a few words"),
]


def deploy(app: str, agents: list[dict[str, Any]], model: dict[str, Any], db: Path) -> Any:
    from ray import serve

    from agents.builder import build_agents_app
    from agents.pool.spec import PoolSpec
    from agents.spec import AgentSpec
    from agents.store import StoreSpec

    built = build_agents_app(
        [AgentSpec.model_validate(a) for a in agents],
        PoolSpec.model_validate({"models": [model]}),
        store=StoreSpec(backend="sqlite", path=str(db)),
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


# --------------------------------------------------------------------------- phases


class Echo:
    """The floor: a deployment (and an actor) that does nothing but answer."""

    async def ping(self, conversation: str) -> str:
        return conversation


class HopProbe:
    """Times calls from inside a replica, as one agent calls another."""

    def __init__(self, echo: Any) -> None:
        import ray

        self._echo = echo
        self._actor = ray.remote(num_cpus=0)(Echo).remote()

    async def measure(self, app: str, agent: str, calls: int) -> dict[str, list[float]]:
        from ray import serve

        agent_handle = serve.get_deployment_handle(f"agent-{agent}", app)
        conversation = uuid.uuid4().hex
        targets = {
            "ray_actor_call": lambda: self._actor.ping.remote(conversation),
            "serve_handle_call": lambda: self._echo.ping.remote(conversation),
            "agent_handle_call": lambda: agent_handle.options(session_id=conversation).peek.remote(
                conversation
            ),
        }
        seconds: dict[str, list[float]] = {name: [] for name in targets}
        for _ in range(50):  # warm up routers and connections
            for call in targets.values():
                await call()
        for _ in range(calls):  # interleaved, so load swings hit all three alike
            for name, call in targets.items():
                start = time.perf_counter()
                await call()
                seconds[name].append(time.perf_counter() - start)
        return seconds


async def phase_hop(results: dict[str, Any], db: Path) -> None:
    from ray import serve

    model = {"id": "m", "source": MODEL, "scripted": SCRIPT}
    agents = [{"name": "a", "model": "m", "handoffs": ["b"]}, {"name": "b", "model": "m"}]
    handle = deploy("bench-hop", agents, model, db)
    # The probe runs in a replica of its own, so the call crosses processes like a hop.
    free = {"ray_actor_options": {"num_cpus": 0}}
    echo: Any = serve.deployment(Echo).options(**free)
    probe: Any = serve.deployment(HopProbe).options(**free)
    prober = serve.run(probe.bind(echo.bind()), name="bench-probe", route_prefix=None)
    calls = await prober.measure.remote("bench-hop", "b", 2000)
    serve.delete("bench-probe")
    direct, handoff = [], []
    run = uuid.uuid4().hex[:8]
    for i in range(200):
        # Fresh conversations: every turn starts at agent a.
        elapsed, _ = await turn(handle, "plain question", f"d-{i}-{run}")
        direct.append(elapsed)
        elapsed, events = await turn(handle, "hop to b", f"h-{i}-{run}")
        assert events[-1].active_agent == "b"
        handoff.append(elapsed)
    results["hop"] = {
        **{name: summary(seconds) for name, seconds in calls.items()},
        "turn_direct": summary(direct),
        "turn_with_handoff": summary(handoff),
        "handoff_extra_p50_ms": pct([h * 1000 for h in handoff], 50)
        - pct([d * 1000 for d in direct], 50),
    }
    serve.delete("bench-hop")


async def phase_throughput(results: dict[str, Any], db: Path, *, real: bool, turns: int) -> None:
    from ray import serve

    if real:
        model = {"id": "m", "source": MODEL, "engine": {"max_model_len": 4096, "kv_cache_gib": 1}}
        sampling = {"temperature": 0, "max_tokens": 48}
    else:
        model = {"id": "m", "source": MODEL, "scripted": SCRIPT}
        sampling = {"temperature": 0, "max_tokens": 256}
    agents = [{"name": "a", "model": "m", "sampling": sampling}]
    app = "bench-real" if real else "bench-scripted"
    handle = deploy(app, agents, model, db)
    await turn(handle, "warm up", uuid.uuid4().hex)
    latencies: list[float] = []
    tokens = 0

    async def conversation() -> None:
        nonlocal tokens
        cid = uuid.uuid4().hex
        for n in range(turns):
            elapsed, events = await turn(handle, f"Tell me one fact about the number {n}.", cid)
            latencies.append(elapsed)
            tokens += events[-1].usage.completion_tokens

    start = time.perf_counter()
    await asyncio.gather(*(conversation() for _ in range(CONCURRENCY)))
    wall = time.perf_counter() - start
    results["real" if real else "scripted"] = {
        "conversations": CONCURRENCY,
        "turns": len(latencies),
        "turns_per_s": len(latencies) / wall,
        "completion_tokens_per_s": tokens / wall,
        "turn_latency": summary(latencies),
    }
    serve.delete(app)


async def phase_memory(results: dict[str, Any], conversations: int) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.agents",
        "--memory-probe",
        str(conversations),
        stdout=asyncio.subprocess.PIPE,
    )
    stdout, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"the memory probe failed with exit code {process.returncode}")
    results["memory"] = json.loads(stdout.decode().strip().splitlines()[-1])


async def memory_probe(conversations: int) -> dict[str, Any]:
    """In a fresh process: fill one agent's cache with idle conversations, report RSS."""
    import psutil

    from agents.spec import AgentSpec
    from agents.store import SQLiteStore
    from agents.testing import LocalApp, ScriptedGenerator

    gen = ScriptedGenerator([answer_rule(".", "a short answer of a few words")])
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "c.db")
        await store.open()
        app = LocalApp(
            [AgentSpec(name="a", model="m")],
            generator=gen,
            store=store,
            cache_size=conversations + 1000,
        )
        gate = asyncio.Semaphore(64)

        async def chat(cid: str) -> None:
            async with gate:
                await app.send("Hello, how are you today?", conversation_id=cid)
                await app.send("Tell me something about the sea.", conversation_id=cid)

        await asyncio.gather(*(chat(f"warm-{i}") for i in range(200)))
        gen.requests.clear()
        gc.collect()
        before = psutil.Process().memory_info().rss
        await asyncio.gather(*(chat(f"c-{i}") for i in range(conversations)))
        gen.requests.clear()  # the double keeps requests; a replica does not
        gc.collect()
        after = psutil.Process().memory_info().rss
        cached = app.service("a").cached_conversations
        await store.close()
    return {
        "conversations": conversations,
        "cached": cached,
        "rss_before_mib": before / 2**20,
        "rss_after_mib": after / 2**20,
        "delta_mib": (after - before) / 2**20,
        "kib_per_conversation": (after - before) / 1024 / conversations,
        "messages_per_conversation": 4,
    }


# --------------------------------------------------------------------------- report


def rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The table rows of what was measured."""
    rows: list[tuple[str, str, str]] = []
    if "hop" in results:
        h = results["hop"]
        labels = {
            "ray_actor_call": "floor: bare Ray actor call",
            "serve_handle_call": "floor: bare Serve handle call (no-op deployment)",
            "agent_handle_call": "agent hop: handle call to an agent replica",
        }
        for key, label in labels.items():
            c = h[key]
            goal = "p50 <= 3 ms" if key == "agent_handle_call" else ""
            rows.append((label, f"p50 {c['p50_ms']:.2f} ms, p99 {c['p99_ms']:.2f} ms", goal))
        rows.append(
            (
                "turn: A answers / A hands off to B",
                f"p50 {h['turn_direct']['p50_ms']:.1f} / {h['turn_with_handoff']['p50_ms']:.1f} ms"
                f" (+{h['handoff_extra_p50_ms']:.1f} ms: hop + 1 model step + 1 store write)",
                "",
            )
        )
    if "memory" in results:
        m = results["memory"]
        rows.append(
            (
                f"RSS of {m['conversations']:,} idle cached conversations",
                f"+{m['delta_mib']:.0f} MiB ({m['kib_per_conversation']:.1f} KiB each, "
                f"{m['messages_per_conversation']} messages)",
                "report",
            )
        )
    for key, label in (("scripted", "scripted engine"), ("real", "real model, 48 tokens")):
        if key in results:
            r = results[key]
            lat = r["turn_latency"]
            rows.append(
                (
                    f"{r['conversations']} concurrent conversations, {label}",
                    f"{r['turns_per_s']:.1f} turns/s, turn p50 {lat['p50_ms']:.0f} ms, "
                    f"p99 {lat['p99_ms']:.0f} ms",
                    "report",
                )
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--phases", default="hop,memory,scripted,real")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/agents.json"))
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--turns", type=int, default=10, help="Turns per conversation (scripted).")
    parser.add_argument("--memory-probe", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_probe is not None:
        print(json.dumps(asyncio.run(memory_probe(args.memory_probe))))
        return
    selected = args.phases.split(",")
    if "real" in selected:
        from agents.pool import weights

        weights.prepare(MODEL)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp)
        phases = {
            "hop": lambda results: phase_hop(results, db / "hop.db"),
            "memory": lambda results: phase_memory(results, args.conversations),
            "scripted": lambda results: phase_throughput(
                results, db / "scripted.db", real=False, turns=args.turns
            ),
            "real": lambda results: phase_throughput(results, db / "real.db", real=True, turns=2),
        }
        with local_serve(port=8767):
            results = asyncio.run(run_phases(selected, phases, args.out))
    print(table(rows(results)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
