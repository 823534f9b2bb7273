"""Peer benchmark W1: ray-agents against LangGraph over vLLM's own servers, same engines.

    python -m benchmarks.peers [--rounds 2] [--conversations 16] [--turns 4]
                               [--router-tokens 64] [--also-router-tokens 32,192]
                               [--out benchmarks/results/peers.json]

Needs the ``bench`` extra (``make bench-peers`` installs it).

Workload W1: a triage agent routes each conversation (structured output: a choice of
two peers) to a billing or a tech specialist whose system prompt is ~1,000 tokens of
policy text; every conversation opens with a billing question, then 3 follow-ups;
the specialist answers 48 tokens a turn (``min_tokens`` = ``max_tokens`` = 48 on both
sides, so both generate the same tokens), temperature 0, 16 conversations at once.
After the first turn the specialist keeps the conversation on both sides (ray-agents'
active agent; LangGraph's ``active`` state field), so the work per turn is equal.

Systems, on the same engines (SmolLM2-135M float32, 2 engines x 1 core each):

- ``ray-agents``: the app through its HTTP API and the Python SDK; the pool's two
  aggregated engines with session affinity;
- ``langgraph-rr``: LangGraph 1.2 with its in-memory checkpointer, calling two vLLM
  OpenAI servers round-robin per request (what a Kubernetes Service does);
- ``langgraph-sticky``: the same, conversation i always on server i % 2 (a perfect
  split: the best case of sticky routing).

All engines are up together; the rounds interleave the systems (A B C, then B C A, ...)
and every round sends a fresh set of conversations, the same set to every system, so
each system's prefix caches start equal. Extra rounds run ray-agents with the router's
``max_tokens`` at other sizes (failures and routing only).

JSON: ``systems.<name>``: ``turns``, ``failed``, ``errors`` (code -> count), ``wall_s``,
``turns_per_s``, ``latency_s`` (every turn's seconds, for CDFs) and its ``spread``
(n/min/p50/p99/max), ``routed_right`` / ``conversations`` (first turn went to billing),
``prompt_tokens``, ``cached_tokens``, ``completion_tokens``; ``by_turn.<n>`` (n = 1 for
the opening): ``spread``, ``prompt_tokens``, ``cached_tokens``; ``cpu_s`` and
``cpu_s_per_turn``; ``goals``; ``settings``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import random
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from benchmarks._common import (
    CpuMeter,
    goal,
    local_serve,
    report,
    server_command,
    show,
    spread,
    verdict,
)
from benchmarks._common import wait_healthy as server_healthy

MODEL_ID = "smollm2"
KEY = "bench-peers-key"
SERVE_PORT = 8778
SERVER_PORTS = (8779, 8780)
ANSWER_TOKENS = 48
ENGINE = {"dtype": "float32", "max_model_len": 4096, "kv_cache_gib": 1, "enforce_eager": True}
# The pool: two aggregated engines, one core each, session affinity on.
POOL_MODEL: dict[str, Any] = {
    "id": MODEL_ID,
    "source": "builtin:smollm2-135m-instruct",
    "mode": "aggregated",
    "accelerator": "cpu",
    "decode": {"replicas": 2, "cpu_bind": ["0", "1"]},
    "engine": ENGINE,
    "session_affinity": True,
}
SPECIALISTS = ("billing", "tech")
TRIAGE = (
    "You are the triage agent of ACME Cloud's support desk. Read the customer's message "
    "and send the conversation to the right specialist: billing (invoices, charges, "
    "refunds, payments, plans, subscriptions, receipts) or tech (outages, errors, "
    "logins, passwords, APIs, performance, configuration). Do not answer yourself."
)
TOPICS = {
    "billing": [
        "invoices and receipts",
        "refunds for duplicate charges",
        "plan upgrades and downgrades",
        "failed card payments",
        "annual versus monthly billing",
        "tax and VAT on invoices",
        "credits for outages",
        "cancelling a subscription",
    ],
    "tech": [
        "login failures",
        "password resets",
        "API rate limits",
        "slow dashboards",
        "webhook delivery",
        "DNS configuration",
        "SSL certificates",
        "data exports",
    ],
}


def policy(name: str) -> str:
    """A specialist's system prompt: ~1,000 tokens of numbered policy text."""
    lines = [
        f"You are ACME Cloud's {name} specialist. Answer the customer briefly and "
        "politely, following this policy.",
    ]
    for i in range(40):
        topic = TOPICS[name][i % len(TOPICS[name])]
        lines.append(
            f"{i + 1}. On {topic}: check the account, explain the rule that applies, "
            f"and say what happens next within {(i % 5) + 1} business days."
        )
    return "\n".join(lines)


OPENINGS = [
    "I was charged twice for my {plan} plan in {month}. Can I get a refund?",
    "My invoice for {month} shows the {plan} plan but I downgraded. Why?",
    "How do I change my card? The {month} payment for {plan} failed.",
    "Can I switch the {plan} plan from monthly to annual billing from {month}?",
    "I need a receipt with VAT for my {plan} subscription payment in {month}.",
    "Why did my bill go up in {month}? I am still on the {plan} plan.",
    "Please cancel my {plan} subscription at the end of {month} and refund the rest.",
    "Do I get a credit for the outage in {month}? I pay for {plan}.",
]
PLANS = ["Starter", "Team", "Business", "Enterprise", "Pro", "Basic"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August"]
FOLLOW_UPS = [
    "How long will that take?",
    "Can you explain that in more detail?",
    "Will this show on my next invoice?",
    "Is there anything I need to do on my side?",
    "Thanks. What if it happens again?",
    "Can I get that confirmation by email?",
    "Does this apply to the other accounts in my team?",
    "What is the exact amount I will get back?",
]


def conversations(count: int, turns: int, seed: int) -> list[list[str]]:
    """``count`` conversations of ``turns`` messages; the same seed gives the same set."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        opening = rng.choice(OPENINGS).format(plan=rng.choice(PLANS), month=rng.choice(MONTHS))
        out.append([opening, *rng.sample(FOLLOW_UPS, turns - 1)])
    return out


@dataclass
class Tally:
    """What one system did over its rounds."""

    latency_s: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    wall_s: float = 0.0
    conversations: int = 0
    routed_right: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    cpu_s: Counter[str] = field(default_factory=Counter)
    """CPU seconds per part of the stack over this system's rounds (``CpuMeter``)."""
    by_turn: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Per turn number (1 = the opening): latencies, prompt and cached tokens."""

    def turn(self, n: int, seconds: float, prompt: int, cached: int, completion: int) -> None:
        """Count the ``n``-th turn of a conversation (0-based) that took ``seconds``."""
        self.latency_s.append(seconds)
        self.prompt_tokens += prompt
        self.cached_tokens += cached
        self.completion_tokens += completion
        row = self.by_turn.setdefault(
            n + 1, {"latency_s": [], "prompt_tokens": 0, "cached_tokens": 0}
        )
        row["latency_s"].append(seconds)
        row["prompt_tokens"] += prompt
        row["cached_tokens"] += cached

    def report(self) -> dict[str, Any]:
        turns = len(self.latency_s) + sum(self.errors.values())
        return {
            "turns": turns,
            "failed": sum(self.errors.values()),
            "errors": dict(self.errors),
            "wall_s": self.wall_s,
            "turns_per_s": len(self.latency_s) / self.wall_s if self.wall_s else float("nan"),
            "latency_s": self.latency_s,
            "spread": spread(self.latency_s),
            "conversations": self.conversations,
            "routed_right": self.routed_right,
            "prompt_tokens": self.prompt_tokens,
            "cached_tokens": self.cached_tokens,
            "completion_tokens": self.completion_tokens,
            "cpu_s": {role: round(cpu, 2) for role, cpu in self.cpu_s.most_common()},
            "cpu_s_per_turn": sum(self.cpu_s.values()) / turns if turns else float("nan"),
            "by_turn": {
                n: {
                    "spread": spread(row["latency_s"]),
                    "prompt_tokens": row["prompt_tokens"],
                    "cached_tokens": row["cached_tokens"],
                }
                for n, row in sorted(self.by_turn.items())
            },
        }


def failed(tally: Tally, exc: Exception) -> None:
    """Count a turn that raised; the first of each kind is printed."""
    kind = type(exc).__name__
    if kind not in tally.errors:
        print(f"failed turn: {kind}: {str(exc)[:300]}", flush=True)
    tally.errors[kind] += 1


# A system runs one conversation: it sends each message in turn and reports each turn.
Turn = tuple[float | None, str | None, str | None]  # seconds (None: failed), error, agent
Runner = Callable[[int, list[str], Tally], Awaitable[None]]


async def run_round(run: Runner, convs: list[list[str]], tally: Tally) -> None:
    meter = CpuMeter()
    meter.start()
    started = time.perf_counter()
    await asyncio.gather(*(run(i, messages, tally) for i, messages in enumerate(convs)))
    tally.wall_s += time.perf_counter() - started
    tally.cpu_s.update(meter.stop())
    tally.conversations += len(convs)


# --------------------------------------------------------------------------- ray-agents


def deploy_app(db: Path, router_tokens: list[int]) -> None:
    """The W1 app with one triage agent per router ``max_tokens`` (``triage-<n>``)."""
    from ray import serve

    from agents.api.spec import ApiKey, ApiLimits, ApiSpec, hash_key
    from agents.builder import build_agents_app
    from agents.pool.spec import PoolSpec
    from agents.spec import AgentSpec
    from agents.store.spec import StoreSpec

    answer = {"temperature": 0.0, "max_tokens": ANSWER_TOKENS, "min_tokens": ANSWER_TOKENS}
    agents = [
        AgentSpec(
            name=name,
            description=f"ACME Cloud's {name} specialist",
            instructions=policy(name),
            model=MODEL_ID,
            sampling=answer,  # type: ignore[arg-type]
        )
        for name in SPECIALISTS
    ]
    agents += [
        AgentSpec(
            name=f"triage-{tokens}",
            instructions=TRIAGE,
            model=MODEL_ID,
            handoffs=list(SPECIALISTS),
            can_answer=False,
            sampling={"temperature": 0.0, "max_tokens": tokens},  # type: ignore[arg-type]
        )
        for tokens in router_tokens
    ]
    api = ApiSpec(
        keys=[ApiKey(tenant="bench", sha256=hash_key(KEY))],
        keys_env=None,
        limits=ApiLimits(requests_per_minute=1_000_000, burst=100_000),
    )
    built = build_agents_app(
        agents,
        PoolSpec.model_validate({"models": [POOL_MODEL]}),
        store=StoreSpec(backend="sqlite", path=str(db)),
        api=api,
        default_agent=f"triage-{router_tokens[0]}",
    )
    serve.run(built, name="w1", route_prefix="/")


def ray_agents(client: Any, router: str) -> Runner:
    async def run(index: int, messages: list[str], tally: Tally) -> None:
        conversation = await client.conversations.create(router)
        for n, message in enumerate(messages):
            started = time.perf_counter()
            try:
                result = await conversation.send(message, timeout_s=600)
            except Exception as exc:  # a failed turn is counted, and the next one sent
                failed(tally, exc)
                continue
            if result.status != "ok":
                tally.errors[result.error.code if result.error else result.status] += 1
                continue
            usage = result.usage
            tally.turn(
                n,
                time.perf_counter() - started,
                usage.prompt_tokens,
                usage.cached_tokens,
                usage.completion_tokens,
            )
            if n == 0 and result.agent == "billing":
                tally.routed_right += 1

    return run


# --------------------------------------------------------------------------- LangGraph


def langgraph(servers: list[str], router_tokens: int, routing: Literal["rr", "sticky"]) -> Runner:
    """LangGraph's version of W1 over vLLM's OpenAI servers at ``servers``."""
    from typing import Literal as L

    from langchain_core.messages import HumanMessage, SystemMessage
    from langchain_openai import ChatOpenAI
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.config import get_config
    from langgraph.graph import END, START, MessagesState, StateGraph
    from pydantic import BaseModel

    class Route(BaseModel):
        agent: L["billing", "tech"]

    class State(MessagesState):
        active: str | None

    def llm(url: str, max_tokens: int, **extra: Any) -> ChatOpenAI:
        return ChatOpenAI(
            model=MODEL_ID,
            base_url=f"{url}/v1",
            api_key="unused",  # type: ignore[arg-type]
            temperature=0.0,
            max_tokens=max_tokens,  # type: ignore[call-arg]
            max_retries=0,
            extra_body=extra or None,
        )

    routers = [
        llm(url, router_tokens).with_structured_output(
            Route, method="json_schema", include_raw=True
        )
        for url in servers
    ]
    writers = [llm(url, ANSWER_TOKENS, min_tokens=ANSWER_TOKENS) for url in servers]
    cycle = itertools.count()
    prompts = {name: policy(name) for name in SPECIALISTS}

    def server(config: Any) -> int:
        if routing == "sticky":
            return int(config["configurable"]["index"]) % len(servers)
        return next(cycle) % len(servers)

    def count(config: Any, usage: dict[str, Any] | None) -> None:
        turn: Counter[str] = config["configurable"]["usage"]
        usage = usage or {}
        turn["prompt"] += usage.get("input_tokens", 0)
        turn["completion"] += usage.get("output_tokens", 0)
        turn["cached"] += (usage.get("input_token_details") or {}).get("cache_read", 0)

    async def triage(state: State) -> dict[str, Any]:
        config = get_config()
        out = await routers[server(config)].ainvoke([SystemMessage(TRIAGE), *state["messages"]])
        count(config, out["raw"].usage_metadata)
        if out["parsed"] is None:
            raise ValueError(f"the router's output did not parse: {out['parsing_error']}")
        return {"active": out["parsed"].agent}

    def specialist(name: str) -> Callable[[State], Awaitable[dict[str, Any]]]:
        async def node(state: State) -> dict[str, Any]:
            config = get_config()
            reply = await writers[server(config)].ainvoke(
                [SystemMessage(prompts[name]), *state["messages"]]
            )
            count(config, reply.usage_metadata)  # type: ignore[arg-type]
            return {"messages": [reply]}

        return node

    graph = StateGraph(State)
    graph.add_node("triage", triage)
    for name in SPECIALISTS:
        graph.add_node(name, specialist(name))
        graph.add_edge(name, END)
    graph.add_conditional_edges(START, lambda s: s.get("active") or "triage")
    graph.add_conditional_edges("triage", lambda s: s["active"])
    app = graph.compile(checkpointer=InMemorySaver())

    async def run(index: int, messages: list[str], tally: Tally) -> None:
        thread = f"w1-{routing}-{time.monotonic_ns()}-{index}"
        for n, message in enumerate(messages):
            usage: Counter[str] = Counter()
            config = {"configurable": {"thread_id": thread, "index": index, "usage": usage}}
            started = time.perf_counter()
            try:
                state = await app.ainvoke({"messages": [HumanMessage(message)]}, config)
            except Exception as exc:
                failed(tally, exc)
                continue
            seconds = time.perf_counter() - started
            tally.turn(n, seconds, usage["prompt"], usage["cached"], usage["completion"])
            if n == 0 and state.get("active") == "billing":
                tally.routed_right += 1

    return run


@contextlib.asynccontextmanager
async def vllm_servers(logs: Path) -> AsyncIterator[list[str]]:
    """Two vLLM OpenAI servers with the pool's engine settings, on cores 0 and 1."""
    started: list[subprocess.Popen[bytes]] = []
    urls = []
    try:
        for core, port in zip(("0", "1"), SERVER_PORTS, strict=True):
            model = {**POOL_MODEL, "decode": {"replicas": 1, "cpu_bind": core}}
            argv, env = server_command(model, port)
            log = (logs / f"vllm-server-{core}.log").open("w")
            started.append(subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT))
            urls.append(f"http://127.0.0.1:{port}")
        for url, server in zip(urls, started, strict=True):
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                await server_healthy(http, server, logs)
        yield urls
    finally:
        for server in started:
            server.terminate()
        for server in started:
            server.wait(timeout=60)


# --------------------------------------------------------------------------- the run


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    from agents.client import AsyncClient

    routers = [args.router_tokens, *[t for t in args.also_router_tokens if t != args.router_tokens]]
    tallies: dict[str, Tally] = {}
    logs = Path(tempfile.mkdtemp(prefix="bench-peers-"))
    print(f"logs in {logs}", flush=True)
    with local_serve(SERVE_PORT):
        deploy_app(logs / "w1.db", routers)
        async with (
            vllm_servers(logs) as urls,
            AsyncClient(
                f"http://127.0.0.1:{SERVE_PORT}", KEY, timeout=900, max_retries=0
            ) as client,
        ):
            systems: dict[str, Runner] = {
                "ray-agents": ray_agents(client, f"triage-{args.router_tokens}"),
                "langgraph-rr": langgraph(urls, args.router_tokens, "rr"),
                "langgraph-sticky": langgraph(urls, args.router_tokens, "sticky"),
            }
            # Warm-up: grammars compile, engines take their first batches (not counted).
            warm = conversations(2, 2, seed=10_000)
            for run in systems.values():
                await run_round(run, warm, Tally())
            systems = {name: systems[name] for name in args.systems}
            names = list(systems)
            for r in range(args.rounds):
                convs = conversations(args.conversations, args.turns, seed=r)
                order = names[r % len(names) :] + names[: r % len(names)]
                for name in order:
                    tally = tallies.setdefault(name, Tally())
                    print(f"round {r + 1}/{args.rounds}: {name}", flush=True)
                    await run_round(systems[name], convs, tally)
            for i, tokens in enumerate(routers[1:]):
                name = f"ray-agents-router{tokens}"
                print(f"extra round: {name}", flush=True)
                convs = conversations(args.conversations, args.turns, seed=1_000 + i)
                run = ray_agents(client, f"triage-{tokens}")
                await run_round(run, convs, tallies.setdefault(name, Tally()))
    systems_out = {name: tally.report() for name, tally in tallies.items()}
    return {
        "machine": {"cpus": os.cpu_count()},
        "settings": {
            "rounds": args.rounds,
            "systems": args.systems,
            "conversations": args.conversations,
            "turns": args.turns,
            "answer_tokens": ANSWER_TOKENS,
            "router_tokens": args.router_tokens,
            "model": POOL_MODEL,
        },
        "systems": systems_out,
        "goals": goals(systems_out, args.router_tokens) if len(args.systems) == 3 else {},
    }


def goals(systems: dict[str, Any], router_tokens: int) -> dict[str, Any]:
    ours, rr, sticky = (systems[n] for n in ("ray-agents", "langgraph-rr", "langgraph-sticky"))
    share = {n: s["routed_right"] / s["conversations"] for n, s in systems.items()}
    p99 = ours["spread"]["p99"]
    return {
        "turns_per_s_vs_langgraph_rr": goal(ours["turns_per_s"] / rr["turns_per_s"], ">=", 1.5),
        "turns_per_s_vs_langgraph_sticky": goal(
            ours["turns_per_s"] / sticky["turns_per_s"], ">=", 1.0
        ),
        "p99_vs_worst_langgraph": goal(
            p99 / min(rr["spread"]["p99"], sticky["spread"]["p99"]), "<=", 1.0
        ),
        "failed_turns": {
            "value": {n: s["failed"] for n, s in systems.items() if n.startswith("ray-agents")},
            "goal": "0 at every router max_tokens",
            "met": all(s["failed"] == 0 for n, s in systems.items() if n.startswith("ray-agents")),
        },
        "routed_right_vs_langgraph": goal(
            share["ray-agents"] / max(share["langgraph-rr"], share["langgraph-sticky"], 1e-9),
            ">=",
            1.0,
        ),
        "router_tokens": router_tokens,
    }


def rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    out = []
    for name, s in results["systems"].items():
        cached = s["cached_tokens"] / s["prompt_tokens"] if s["prompt_tokens"] else float("nan")
        out.append(
            (
                name,
                f"{s['turns_per_s']:.2f} turns/s; latency {show(s['spread'], 's')}, "
                f"p99 {s['spread']['p99']:.2f} s; failed {s['failed']}/{s['turns']}; "
                f"routed right {s['routed_right']}/{s['conversations']}; "
                f"cached {cached:.0%} of {s['prompt_tokens']} prompt tokens; "
                f"{s['completion_tokens']} generated",
                "",
            )
        )
    for name, s in results["systems"].items():
        turns = "; ".join(
            f"{n}: p50 {t['spread']['p50']:.1f} s, p99 {t['spread']['p99']:.1f} s, "
            f"uncached {(t['prompt_tokens'] - t['cached_tokens']) / t['spread']['n']:.0f}"
            for n, t in s["by_turn"].items()
        )
        out.append((f"{name} by turn", turns, ""))
    for name, s in results["systems"].items():
        top = ", ".join(f"{role} {cpu:.0f}" for role, cpu in list(s["cpu_s"].items())[:6])
        out.append((f"{name} CPU s", f"{s['cpu_s_per_turn']:.2f} per turn; {top}", ""))
    for key, g in results["goals"].items():
        if isinstance(g, dict) and "goal" in g:
            value = g["value"] if isinstance(g["value"], dict) else f"{g['value']:.2f}x"
            out.append((key, str(value), verdict(g) if "x" in g["goal"] else str(g["met"])))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--conversations", type=int, default=16)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--router-tokens", type=int, default=64)
    parser.add_argument(
        "--also-router-tokens",
        type=lambda s: [int(x) for x in s.split(",") if x],
        default=[32, 192],
        help="More router max_tokens for ray-agents (one round each: failures, routing).",
    )
    parser.add_argument(
        "--systems",
        type=lambda s: [x for x in s.split(",") if x],
        default=["ray-agents", "langgraph-rr", "langgraph-sticky"],
        help="Which systems to run (a diagnosis may run fewer; goals need all three).",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/peers.json"))
    args = parser.parse_args()
    known = ("ray-agents", "langgraph-rr", "langgraph-sticky")
    if unknown := [s for s in args.systems if s not in known]:
        parser.error(f"unknown system(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    results = asyncio.run(bench(args))
    report(results, args.out, rows(results))


if __name__ == "__main__":
    main()
