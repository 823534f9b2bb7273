"""Soak: a steady load of real turns for a long time; memory must stay flat, 0 errors.

    python -m benchmarks.soak --minutes 30 --out benchmarks/results/soak.json

One Serve app through its HTTP API (the SDK as client): triage hands refunds to
billing, billing adds with a tool (the scripted engine, so the control plane is what
is soaked), plus an ``assistant`` agent on the real default model (vLLM on CPU) taking
a slice of the turns. ``--workers`` conversations run at once, each four turns long,
then the next; one more loop talks to the real model. Every ``--sample-s`` the RSS of
every Serve replica process (with its children: vLLM's engine core, tool workers) is
read; the figures compare the first sample after ``--warmup-s`` with the last, and
the middle one with the last (a leak keeps growing in the second half; a bounded cache
filling up does not). Each agent replica caches ``--cache-size`` conversations
(default 256, filled within the warm-up; the app default, 4096, takes about 20 minutes
of this load to fill, and its filling reads as growth).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from benchmarks._common import local_serve, summary

APP = "soak"
KEY = "soak-secret-key"
PORT = 8431
TURNS = ["refund for order {n}", "sum 2 and 3", "tell me more", "thanks"]
QUESTIONS = ["What is the capital of France?", "Name a colour.", "What is 2 + 2?"]


def app(db: Path, cache_size: int) -> Any:
    from agents.api.spec import ApiKey, ApiLimits, ApiSpec, hash_key
    from agents.builder import build_agents_app
    from agents.pool.spec import PoolSpec
    from agents.spec import AgentSpec
    from agents.store.spec import StoreSpec
    from agents.testing import action
    from tools.spec import ToolsConfig

    def answer(match: str, text: str) -> dict[str, Any]:
        return {"match": match, "json_reply": action("answer", text=text), "token_delay_s": 0.02}

    script = [
        {"match": "^refund", "json_reply": action("handoff", agent="billing", message="refund")},
        {"match": "^sum", "json_reply": action("tool", tool="add", arguments={"a": 2, "b": 3})},
        answer(r"\[add result\]", "It is 5."),
        answer("Handed off to billing", "Billing here: the refund is on its way."),
        answer("^tell", " ".join(f"more{i}" for i in range(24))),
        answer("", "You are welcome."),
    ]
    pool = {
        "models": [
            {"id": "m", "source": "builtin:smollm2-135m-instruct", "scripted": script},
            {
                "id": "smollm2",
                "source": "builtin:smollm2-135m-instruct",
                "engine": {"max_model_len": 2048, "kv_cache_gib": 1},
                "decode": {"cpu_bind": "1"},
            },
        ]
    }
    agents = [
        {"name": "triage", "model": "m", "handoffs": ["billing"]},
        {"name": "billing", "model": "m", "tools": ["add"]},
        {
            "name": "assistant",
            "model": "smollm2",
            "instructions": "You answer in one short sentence.",
            "sampling": {"temperature": 0, "max_tokens": 48},
        },
    ]
    return build_agents_app(
        [AgentSpec.model_validate(a) for a in agents],
        PoolSpec.model_validate(pool),
        store=StoreSpec(backend="sqlite", path=str(db)),
        tools=ToolsConfig.model_validate({"tools": [{"function": "tools.testing:add"}]}),
        api=ApiSpec(
            keys=[ApiKey(tenant="soak", sha256=hash_key(KEY))],
            keys_env=None,
            limits=ApiLimits(requests_per_minute=1_000_000, burst=100_000),
        ),
        cache_size=cache_size,
    )


def replica_rss() -> dict[str, list[int]]:
    """RSS in bytes of each live replica of the app (with its child processes), by
    deployment, from the GCS actor table and /proc."""
    import psutil
    from ray._private import state

    found: dict[str, list[int]] = defaultdict(list)
    for info in state.actors().values():
        name = info.get("Name") or ""
        if not name.startswith(f"SERVE_REPLICA::{APP}#") or info.get("State") != "ALIVE":
            continue
        try:
            proc = psutil.Process(info["Pid"])
            rss = proc.memory_info().rss
            rss += sum(c.memory_info().rss for c in proc.children(recursive=True))
        except psutil.Error:
            continue
        found[name.split("#")[1]].append(rss)
    return dict(found)


class Load:
    """The running load's tallies."""

    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.statuses: dict[str, Counter[str]] = defaultdict(Counter)
        self.errors: list[str] = []


async def conversation_loop(
    client: Any, load: Load, kind: str, agent: str | None, texts: list[str], until: float
) -> None:
    """Conversations of ``texts`` with ``agent`` (the app's default if None), one after
    another until ``until``; each turn's latency and status is tallied under ``kind``."""
    while time.monotonic() < until:
        conv = await client.conversations.create(agent=agent)
        for text in texts:
            started = time.monotonic()
            try:
                result = await conv.send(text)
            except Exception as exc:  # a failed request is a soak error, recorded
                load.errors.append(f"{type(exc).__name__}: {exc}")
                load.statuses[kind]["exception"] += 1
                continue
            load.latency[kind].append(time.monotonic() - started)
            load.statuses[kind][result.status] += 1
            if result.status != "ok" and result.error is not None:
                load.errors.append(f"{result.error.code}: {result.error.message}")
        await conv.delete()


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    from ray import serve

    from agents.client import AsyncClient

    with tempfile.TemporaryDirectory() as tmp:
        serve.run(app(Path(tmp) / "soak.db", args.cache_size), name=APP, route_prefix="/")
        load = Load()
        samples: list[tuple[float, dict[str, list[int]]]] = []
        started = time.monotonic()
        until = started + args.minutes * 60
        async with AsyncClient(f"http://127.0.0.1:{PORT}", KEY, timeout=300) as client:
            loops = [
                conversation_loop(
                    client, load, "scripted", None, [t.format(n=n) for t in TURNS], until
                )
                for n in range(args.workers)
            ]
            real = conversation_loop(client, load, "real model", "assistant", QUESTIONS, until)
            running = asyncio.gather(*loops, real)
            while not running.done():
                samples.append((time.monotonic() - started, replica_rss()))
                done = sum(sum(c.values()) for c in load.statuses.values())
                print(f"  {samples[-1][0]:6.0f} s  turns {done}  errors {len(load.errors)}")
                await asyncio.wait([running], timeout=args.sample_s)
            await running
        wall = time.monotonic() - started
    return figures(args, load, samples, wall)


def figures(
    args: argparse.Namespace,
    load: Load,
    samples: list[tuple[float, dict[str, list[int]]]],
    wall: float,
) -> dict[str, Any]:
    warm = next((s for s in samples if s[0] >= args.warmup_s), samples[0])
    last = samples[-1]
    memory = {}
    for deployment in sorted(last[1]):
        start_mib = sum(warm[1].get(deployment, [])) / 2**20
        end_mib = sum(last[1][deployment]) / 2**20
        series = [sum(s[1].get(deployment, [])) / 2**20 for s in samples if s[0] >= warm[0]]
        half = series[len(series) // 2]  # a leak keeps growing in the second half too
        memory[deployment] = {
            "replicas": len(last[1][deployment]),
            "start_mib": round(start_mib, 1),
            "end_mib": round(end_mib, 1),
            "growth": round(end_mib / start_mib - 1, 4) if start_mib else None,
            "second_half_growth": round(end_mib / half - 1, 4) if half else None,
            "median_mib": round(statistics.median(series), 1),
            "series_mib": [
                [round(t), round(sum(rss.get(deployment, [])) / 2**20, 1)] for t, rss in samples
            ],
        }
    turns = {
        kind: {
            "turns": sum(load.statuses[kind].values()),
            "statuses": dict(load.statuses[kind]),
            "turns_per_s": round(sum(load.statuses[kind].values()) / wall, 2),
            **summary(load.latency[kind]),
        }
        for kind in sorted(load.statuses)
    }
    return {
        "minutes": args.minutes,
        "wall_s": round(wall, 1),
        "workers": args.workers,
        "cache_size": args.cache_size,
        "warmup_s": args.warmup_s,
        "memory_from_s": round(warm[0], 1),
        "memory_to_s": round(last[0], 1),
        "samples": len(samples),
        "turns": turns,
        "errors": len(load.errors),
        "first_errors": load.errors[:10],
        "memory": memory,
    }


def report(results: dict[str, Any]) -> str:
    lines = [
        f"soak: {results['wall_s']:.0f} s, {results['workers']} scripted conversations at "
        f"once + 1 on the real model; errors: {results['errors']}",
        "",
        "| turns | n | turns/s | p50 | p99 | statuses |",
        "|---|---|---|---|---|---|",
    ]
    for kind, t in results["turns"].items():
        lines.append(
            f"| {kind} | {t['turns']} | {t['turns_per_s']} | {t['p50_ms']:.0f} ms | "
            f"{t['p99_ms']:.0f} ms | {t['statuses']} |"
        )
    lines += [
        "",
        f"RSS per deployment (all its replicas and their children), from "
        f"{results['memory_from_s']:.0f} s to {results['memory_to_s']:.0f} s:",
        "",
        "| deployment | replicas | start | end | growth | second half |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in results["memory"].items():
        growth = "n/a" if m["growth"] is None else f"{m['growth']:+.1%}"
        second = m.get("second_half_growth")
        later = "n/a" if second is None else f"{second:+.1%}"
        lines.append(
            f"| {name} | {m['replicas']} | {m['start_mib']:.0f} MiB | {m['end_mib']:.0f} MiB "
            f"| {growth} | {later} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=8, help="scripted conversations at once")
    parser.add_argument(
        "--cache-size",
        type=int,
        default=256,
        help="conversations each agent replica caches (the LRU fills during the warm-up)",
    )
    parser.add_argument("--warmup-s", type=float, default=120.0)
    parser.add_argument("--sample-s", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/soak.json"))
    args = parser.parse_args()
    with local_serve(PORT):
        results = asyncio.run(soak(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(report(results))


if __name__ == "__main__":
    main()
