"""Turns on the real model that the model must not break: the default app and the three
examples, each served from its own YAML on SmolLM2-135M, ``--runs`` conversations each.

    python -m benchmarks.reliability [--runs 20] [--concurrency 4] [--apps default,...]
                                     [--out benchmarks/results/reliability.json]

Every run is a fresh conversation with a different opening (templates filled in turn);
a turn paused for approval is approved. A turn ends ok, or with an error whose code
says why: ``invalid_action`` (the model broke an action: the goal is 0),
``max_steps_exceeded`` (the model went round without answering: the model's choice,
counted), anything else (a failure of the system). Well-formed is not right: where an
opening has a known right answer (the product asked for, the time from current_time,
small talk kept from math, the sum python computes), the turn is checked for it too.

JSON: ``apps.<name>``: ``runs``, ``ok``, ``right`` of ``judged`` (openings with a known
right answer), ``errors`` (code -> count), ``truncated``
(answers cut by max_tokens or a repetition), ``latency_s`` (per run) and its
``spread``, ``steps``, ``examples`` (the first answer of each error code);
``goal``: invalid_action over all apps.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agents.evals._checks import numbers_in
from benchmarks._common import local_serve, report, show, spread

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-reliability-key"
PORT = 8782
TOPICS = ["prefix caching", "disaggregated prefill", "KV cache transfer", "batching", "routing"]
TIME = re.compile(r"\b\d{1,2}:\d{2}")

Check = Callable[[dict[str, Any], Any], bool]
"""Whether a turn's result (``agents.client.TurnResult``) is right, given the values
its opening was filled with (a, b, d, topic)."""


def holds(number: Callable[[dict[str, Any]], float]) -> Check:
    """The answer holds the number (any number in it equal to it)."""
    return lambda v, result: any(abs(n - number(v)) < 1e-6 for n in numbers_in(result.answer or ""))


def called(tool: str, answer: re.Pattern[str] | None = None) -> Check:
    """The turn called ``tool`` (and the answer matches ``answer``)."""
    return lambda v, result: (
        any(e.type == "tool_call" and e.name == tool for e in result.events)
        and (answer is None or bool(answer.search(result.answer or "")))
    )


def stayed_with(agent: str) -> Check:
    """An answer from ``agent`` without a hand-off (small talk kept away from math)."""
    return lambda v, result: (
        bool((result.answer or "").strip())
        and not any(e.type == "handoff" for e in result.events)
        and result.agent == agent
    )


APPS: dict[str, tuple[Path, list[tuple[str, Check | None]]]] = {
    "default": (
        ROOT / "configs" / "app.yaml",
        [
            ("What is {a} times {b}?", holds(lambda v: v["a"] * v["b"])),
            ("What time is it now?", called("current_time", TIME)),
            ("How much is {a} plus {b}?", holds(lambda v: v["a"] + v["b"])),
            ("Say hello in one sentence, my name is Sam {a}.", stayed_with("assistant")),
        ],
    ),
    # Whether a support or research answer is right is for their eval datasets
    # (examples/<name>/eval.yaml) to judge: None here.
    "customer_support": (
        ROOT / "examples" / "customer_support" / "app.yaml",
        [
            ("I was charged twice for order A100{d}. Can I get a refund?", None),
            ("My order A100{d} has not arrived yet. Where is it?", None),
            ("The app crashes when I open order A100{d}.", None),
            ("Can you show me my billing history? My order is A100{d}.", None),
        ],
    ),
    "research_team": (
        ROOT / "examples" / "research_team" / "app.yaml",
        [
            ("Write a short report on {topic}.", None),
            ("What do the notes say about {topic}?", None),
        ],
    ),
    "code_assistant": (
        ROOT / "examples" / "code_assistant" / "app.yaml",
        [
            (
                "Use python to compute the sum of the numbers from 1 to {a}.",
                holds(lambda v: v["a"] * (v["a"] + 1) // 2),
            ),
            ("Write a file n{a}.txt that contains the number {b}.", called("write_file")),
            ("Use python to compute {a} * {b}.", holds(lambda v: v["a"] * v["b"])),
        ],
    ),
}


def openings(
    templates: list[tuple[str, Check | None]], runs: int
) -> list[tuple[str, dict[str, Any], Check | None]]:
    """Each run's opening, the values it was filled with, and its check."""
    out = []
    for i in range(runs):
        template, check = templates[i % len(templates)]
        values = {"a": 11 + i, "b": 7 + 3 * i, "d": 1 + i % 4, "topic": TOPICS[i % len(TOPICS)]}
        out.append((template.format(**values), values, check))
    return out


async def run_app(name: str, runs: int, concurrency: int, db: Path) -> dict[str, Any]:
    from ray import serve

    from agents.api.spec import ApiKey, ApiLimits, ApiSpec, hash_key
    from agents.builder import build_app
    from agents.client import AsyncClient
    from agents.config import load_app_config
    from agents.store.spec import StoreSpec

    path, templates = APPS[name]
    config = load_app_config(path)
    api = ApiSpec(
        # One person talks and approves the paused tool calls: both scopes.
        keys=[
            ApiKey.model_validate(
                {
                    "tenant": "bench",
                    "sha256": hash_key(KEY),
                    "scopes": ["conversations", "approvals"],
                }
            )
        ],
        keys_env=None,
        limits=ApiLimits(requests_per_minute=1_000_000, burst=100_000),
    )
    config = config.model_copy(
        update={"store": StoreSpec(backend="sqlite", path=str(db)), "api": api}
    )
    serve.run(build_app(config), name=config.app.name, route_prefix=f"/{name}")
    latency: list[float] = []
    errors: Counter[str] = Counter()
    examples: dict[str, str] = {}
    truncated = steps = ok = right = judged = 0
    gate = asyncio.Semaphore(concurrency)
    try:
        async with AsyncClient(f"http://127.0.0.1:{PORT}/{name}", KEY, timeout=900) as client:

            async def one(message: str, values: dict[str, Any], check: Check | None) -> None:
                nonlocal truncated, steps, ok, right, judged
                async with gate:
                    started = time.perf_counter()
                    try:
                        conversation = await client.conversations.create()
                        result = await conversation.send(message, timeout_s=600)
                        for _ in range(3):  # approve what waits for a person; it goes on
                            if result.status != "paused":
                                break
                            call = result.pending_approvals[0].call_id
                            result = await conversation.approve(call)
                    except Exception as exc:  # a failure of the system, counted
                        errors[type(exc).__name__] += 1
                        examples.setdefault(type(exc).__name__, f"{message!r}: {exc}")
                        return
                    latency.append(time.perf_counter() - started)
                steps += result.usage.steps
                truncated += any(getattr(e, "truncated", False) for e in result.events)
                if check is not None:
                    judged += 1
                    right += result.status == "ok" and check(values, result)
                if result.status == "ok":
                    ok += 1
                    return
                code = result.error.code if result.error else result.status
                errors[code] += 1
                examples.setdefault(code, f"{message!r}: {result.error}")

            await asyncio.gather(*(one(*opening) for opening in openings(templates, runs)))
    finally:
        serve.delete(config.app.name)
    return {
        "runs": runs,
        "ok": ok,
        "right": right,
        "judged": judged,
        "errors": dict(errors),
        "truncated": truncated,
        "steps": steps,
        "latency_s": latency,
        "spread": spread(latency),
        "examples": examples,
    }


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench-reliability-"))
    apps: dict[str, Any] = {}
    with local_serve(PORT):
        for name in args.apps:
            print(f"== {name}", flush=True)
            apps[name] = await run_app(name, args.runs, args.concurrency, work / f"{name}.db")
            print(json.dumps({k: v for k, v in apps[name].items() if k != "latency_s"}), flush=True)
    invalid = sum(a["errors"].get("invalid_action", 0) for a in apps.values())
    return {
        "machine": {"cpus": os.cpu_count()},
        "settings": {"runs": args.runs, "concurrency": args.concurrency},
        "apps": apps,
        "goal": {"value": invalid, "goal": "0 invalid_action", "met": invalid == 0},
    }


def rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    out = []
    for name, app in results["apps"].items():
        errors = ", ".join(f"{k} {v}" for k, v in sorted(app["errors"].items())) or "none"
        out.append(
            (
                f"{name}: {app['runs']} conversations",
                f"ok {app['ok']}, right {app['right']} of {app['judged']} judged; "
                f"errors: {errors}; truncated answers {app['truncated']}; "
                f"{app['steps']} steps; latency {show(app['spread'], 's', 1)}",
                f"invalid_action {app['errors'].get('invalid_action', 0)} (goal 0)",
            )
        )
    g = results["goal"]
    out.append(
        (
            "invalid_action, all apps",
            str(g["value"]),
            f"{g['goal']}: {'met' if g['met'] else 'NOT met'}",
        )
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--apps", type=lambda s: s.split(","), default=list(APPS), help="Comma-separated."
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/reliability.json"))
    args = parser.parse_args()
    unknown = set(args.apps) - set(APPS)
    if unknown:
        raise SystemExit(
            f"unknown app(s) {', '.join(sorted(unknown))}; choose from {', '.join(APPS)}"
        )
    results = asyncio.run(bench(args))
    report(results, args.out, rows(results))


if __name__ == "__main__":
    main()
