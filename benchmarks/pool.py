"""Generator pool benchmarks: prints a table and writes JSON.

    python -m benchmarks.pool [--phases disagg,server,affinity] [--rounds 3] [--out FILE]

Sizes are options (see ``--help``), so a smoke run can be tiny.

Phases:

- disagg:   one aggregated engine on cores 0-1 ("agg") beside the disaggregated
            configurations of ``--mixed-configs`` on the same two cores, all deployed
            at once: "pd" (prefill on core 0, decode on core 1, every prompt prefilled
            remotely), "pd-cond" (the same with conditional disaggregation: prompts
            under 512 new tokens are prefilled by the decode engine) and, on request,
            "pd-wide-cond" (prefill on cores 0-1). (1) Long prompt: a ~2.6k-token
            prompt, ``--rounds`` runs per configuration, interleaved. (2) Mixed load,
            the same fixed work for every configuration, configurations interleaved per
            round (``--mixed-rounds``): ``--short-chats`` short chats, ``--short-streams``
            at a time, while ``--long-prompts`` ~2.6k-token prompts arrive back to back.
            Inter-token latency (ITL: gaps between text chunks as the client receives
            them; tokens gathered for ``stream_batching_ms`` arrive together, so ITL p50
            reads low, p99 is the stall) and short-chat time to first token (TTFT).
- server:   the pool's DeploymentHandle path vs vLLM's own OpenAI server, both
            streaming (SSE with ``include_usage`` to the server), both deployed at once,
            one core each (``--server-cores``), the server started with the flags of
            the pool's own ModelSpec (``_common.server_command``). ``--rounds`` rounds,
            each: for N in ``--streams``, N concurrent chats through the pool (A), then
            the same N chats through the server (B): A B A B. Tokens/s (per round),
            end-to-end latency and TTFT (per request).
- affinity: prefix-cache hit rate of a 10-turn conversation over 2 replicas, with and
            without session affinity.

Equal work: every request asks for exactly ``max_tokens``. In the server phase vLLM's
server gets ``min_tokens = max_tokens``, and so does the pool when its
``SamplingParams`` has ``min_tokens`` (``POOL_HAS_MIN_TOKENS``). The disagg phase sends
no ``min_tokens`` to any configuration (a remote prefill with it fails, see
``POOL_HAS_MIN_TOKENS``). Prompts are chosen to run past ``max_tokens`` anyway, and
every request's token count is checked: the table says whether the work was equal.

Ratios measured side by side are what to read: absolute numbers move with the
machine's other load.

JSON (``--out``). A *stats* object is ``{n, min, p50, p99, max}``; a *goal* object is
``{value, goal, met}``; a *samples* object holds per-request columns aligned by index:
``round``, ``offset_s`` (start, from the start of its batch or mixed run),
``latency_s``, ``ttft_s``, ``tokens``, ``prompt_tokens``, ``disaggregated`` and
``itl_s`` (per request, the list of gaps between its text chunks): enough to draw CDFs.

- ``machine.cpus``; ``settings``: the command line; ``pool_has_min_tokens``.
- ``server``: ``deployment`` (how the two were deployed, in words), ``cores``,
  ``streams``, ``max_tokens``, ``rounds``; ``runs``: one entry per (round, N, side):
  ``{round, streams, side, wall_s, tokens, tokens_per_s}``;
  ``sides.<pool|vllm_server>.<N>``: ``{tokens_per_s, latency_s, ttft_s}`` stats and
  ``samples``; ``batching_gain.<side>``: tokens/s p50 at the largest N over the
  smallest; ``paired_throughput_ratio``: stats of pool/server tokens/s per round at the
  largest N; ``ratios``: ``{latency_<N>, ttft_<N>, throughput_<N>}`` for every N;
  ``goals``: ``throughput_ratio``, ``latency_ratio`` (largest N), ``batching_gain_kept``;
  ``equal_work``: ``{requests, exact, mismatches}``.
- ``long``: ``tokens``; ``configs.<cfg>``: ``{label, latency_s, prompt_tokens,
  remote, samples}``; ``goals.<cfg>``: disaggregated / aggregated latency p50.
- ``mixed``: ``sizes``; ``configs.<cfg>``: ``{label, itl_ms, short_ttft_s,
  short_latency_s, long_latency_s}`` stats, ``short_chats``, ``long_prompts``,
  ``short_during_longs`` (short chats started before the last long prompt finished),
  ``remote`` (``{short, long}`` prefilled remotely), ``wall_s`` (per round), ``short``
  and ``long`` samples; ``ratios.<cfg>``: ``{itl_p99, short_ttft_p50}`` over "agg";
  ``goals.<cfg>`` (conditional configurations): ``itl_p99``, ``short_ttft_p50``;
  ``equal_work``.
- ``affinity.<sticky|spread>``: ``{hit_rate, cached_tokens, prompt_tokens, turns,
  replicas_used}``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agents.pool import weights
from agents.pool.client import PoolClient
from agents.pool.spec import PoolSpec
from agents.pool.types import GenerateRequest, Message, SamplingParams, TextChunk
from benchmarks._common import (
    goal,
    local_serve,
    run_phases,
    show,
    spread,
    table,
    verdict,
    vllm_server,
)

MODEL = "builtin:smollm2-135m-instruct"
SERVE_PORT = 8766
VLLM_PORT = 8765
SETTINGS = {"stream_batching_ms": 10}  # set from the command line
ENGINE = {"max_model_len": 4096, "kv_cache_gib": 1}
# Whether the pool's generator interface can ask for a minimum length (equal work).
# The disagg phase never asks for one: Ray 2.60 clamps a remote prefill to max_tokens=1
# but keeps min_tokens (``clamp_request_to_single_token`` in
# ray/llm/_internal/serve/engines/vllm/kv_transfer/base.py) and vLLM rejects it.
POOL_HAS_MIN_TOKENS = "min_tokens" in SamplingParams.model_fields
SERVER_PROMPTS = [
    f"Write a long story about {topic}." for topic in ("a cat", "a ship", "a tree", "a robot")
]
SHORT_QUESTIONS = [
    "Tell me about the ocean in detail.",
    "Describe a forest in spring in detail.",
    "Explain step by step how bread is made.",
    "Write a long story about a city at night.",
]
LONG_RUN_TOKENS = 16
# The mixed-load configurations, all on cores 0-1; "agg" is the baseline.
CONFIGS: dict[str, dict[str, Any]] = {
    "agg": {"decode": {"cpu_bind": "0-1"}},
    "pd": {
        "mode": "disaggregated",
        "prefill": {"cpu_bind": "0"},
        "decode": {"cpu_bind": "1"},
        "min_remote_prefill_tokens": 0,
    },
    "pd-cond": {
        "mode": "disaggregated",
        "prefill": {"cpu_bind": "0"},
        "decode": {"cpu_bind": "1"},
        "min_remote_prefill_tokens": 512,
    },
    "pd-wide-cond": {
        "mode": "disaggregated",
        "prefill": {"cpu_bind": "0-1"},
        "decode": {"cpu_bind": "1"},
        "min_remote_prefill_tokens": 512,
    },
}
LABELS = {
    "agg": "one engine (0-1)",
    "pd": "disagg (P 0, D 1)",
    "pd-cond": "disagg+cond (P 0, D 1)",
    "pd-wide-cond": "disagg+cond (P 0-1, D 1)",
}
Sample = dict[str, Any]


@dataclass(frozen=True)
class MixedSizes:
    """The fixed work of one mixed-load run (the same for every configuration)."""

    short_chats: int
    short_streams: int
    short_tokens: int
    long_prompts: int
    long_tokens: int
    long_facts: int


def document(n_facts: int, seed: int) -> str:
    facts = [
        f"Fact {seed}-{i}: item {i} weighs {(i * 7 + seed) % 97} grams." for i in range(n_facts)
    ]
    # A question with a long answer: the reply runs to max_tokens (equal work).
    return " ".join(facts) + "\nList every item in order with its weight."


def ask(
    model: str, text: str, max_tokens: int, session: str | None = None, *, exact: bool = True
) -> GenerateRequest:
    """A greedy chat request; ``exact`` adds min_tokens = max_tokens where the pool can."""
    sampling: dict[str, Any] = {"temperature": 0, "max_tokens": max_tokens}
    if exact and POOL_HAS_MIN_TOKENS:
        sampling["min_tokens"] = max_tokens
    return GenerateRequest(
        model=model,
        messages=[Message(role="user", content=text)],
        sampling=SamplingParams(**sampling),
        session_id=session,
    )


def server_body(request: GenerateRequest) -> dict[str, Any]:
    """The body the pool sends to vLLM for ``request``, streamed, with min_tokens."""
    from agents.pool._protocol import chat_request_kwargs

    body = chat_request_kwargs(request)
    body.pop("request_id")
    body.update(
        stream=True,
        stream_options={"include_usage": True},
        min_tokens=request.sampling.max_tokens,
    )
    return body


def deploy(models: list[dict[str, Any]], app: str) -> PoolClient:
    from ray import serve

    from agents.pool.builder import build_pool_app

    for model in models:
        model.setdefault("stream_batching_ms", SETTINGS["stream_batching_ms"])
    spec = PoolSpec.model_validate({"models": models})
    serve.run(build_pool_app(spec), name=app, route_prefix=f"/{app}")
    return PoolClient.connect([m["id"] for m in models], app_name=app)


def undeploy(app: str) -> None:
    from ray import serve

    serve.delete(app)


# --------------------------------------------------------------------------- timing


def _sample(
    start: float, arrivals: list[float], usage: Mapping[str, Any], disaggregated: bool
) -> Sample:
    end = time.perf_counter()
    return {
        "start": start,
        "end": end,
        "latency_s": end - start,
        "ttft_s": (arrivals[0] if arrivals else end) - start,
        "itl_s": [b - a for a, b in itertools.pairwise(arrivals)],
        "tokens": usage["completion_tokens"],
        "prompt_tokens": usage["prompt_tokens"],
        "disaggregated": disaggregated,
    }


async def timed_stream(pool: PoolClient, request: GenerateRequest) -> Sample:
    """Stream ``request`` through the pool's DeploymentHandle, timing every chunk."""
    start = time.perf_counter()
    arrivals: list[float] = []
    finish = None
    async for chunk in pool.generate(request):
        if isinstance(chunk, TextChunk):
            arrivals.append(time.perf_counter())
        else:
            finish = chunk
    if finish is None or finish.type != "finish":
        raise RuntimeError(f"the pool's stream ended without a finish chunk: {finish}")
    usage = finish.usage.model_dump()
    return _sample(start, arrivals, usage, bool(finish.route and finish.route.disaggregated))


async def timed_sse(http: Any, body: dict[str, Any]) -> Sample:
    """Stream ``body`` from vLLM's server (SSE), timing every content delta."""
    start = time.perf_counter()
    arrivals: list[float] = []
    usage = None
    async with http.stream("POST", "/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            await response.aread()
            raise RuntimeError(f"vLLM's server: {response.status_code} {response.text[:500]}")
        async for line in response.aiter_lines():
            data = line.removeprefix("data: ").strip()
            if not line.startswith("data: ") or data == "[DONE]":
                continue
            event = json.loads(data)
            if any((c.get("delta") or {}).get("content") for c in event.get("choices", [])):
                arrivals.append(time.perf_counter())
            usage = event.get("usage") or usage
    if usage is None:
        raise RuntimeError("vLLM's server sent no usage (stream_options.include_usage)")
    return _sample(start, arrivals, usage, False)


def _r6(x: float) -> float:
    return round(x, 6)


def columns(samples: list[Sample]) -> dict[str, list[Any]]:
    """Per-request samples as JSON columns (see the module docstring)."""
    return {
        "round": [s["round"] for s in samples],
        "offset_s": [_r6(s["offset_s"]) for s in samples],
        "latency_s": [_r6(s["latency_s"]) for s in samples],
        "ttft_s": [_r6(s["ttft_s"]) for s in samples],
        "tokens": [s["tokens"] for s in samples],
        "prompt_tokens": [s["prompt_tokens"] for s in samples],
        "disaggregated": [s["disaggregated"] for s in samples],
        "itl_s": [[_r6(g) for g in s["itl_s"]] for s in samples],
    }


def equal_work(groups: Mapping[str, tuple[list[Sample], int]]) -> dict[str, Any]:
    """How many requests generated exactly their expected token count, per group name."""
    mismatches = [
        {"group": name, "round": s["round"], "tokens": s["tokens"], "expected": expected}
        for name, (samples, expected) in groups.items()
        for s in samples
        if s["tokens"] != expected
    ]
    requests = sum(len(samples) for samples, _ in groups.values())
    return {"requests": requests, "exact": requests - len(mismatches), "mismatches": mismatches}


# --------------------------------------------------------------------------- server


async def phase_server(
    results: dict[str, Any], rounds: int, streams: list[int], max_tokens: int, cores: list[str]
) -> None:
    model_id = "smollm2"
    pool_core, server_core = cores
    base = {"id": model_id, "source": MODEL, "engine": ENGINE}
    deployment = (
        f"both deployed at once: the pool's engine on core {pool_core}, "
        f"vLLM's server on core {server_core}"
    )
    print(f"   {deployment}", flush=True)
    sides = ("pool", "vllm_server")
    samples: dict[str, dict[int, list[Sample]]] = {s: {n: [] for n in streams} for s in sides}
    runs: list[dict[str, Any]] = []
    log = Path("benchmarks/results/vllm_server.log")
    server_spec = {**base, "decode": {"cpu_bind": server_core}}
    async with vllm_server(server_spec, VLLM_PORT, log) as http:
        pool = deploy([{**base, "decode": {"cpu_bind": pool_core}}], "bench-server")
        try:

            def call(side: str, i: int, tokens: int) -> Awaitable[Sample]:
                request = ask(model_id, SERVER_PROMPTS[i % len(SERVER_PROMPTS)], tokens)
                if side == "pool":
                    return timed_stream(pool, request)
                return timed_sse(http, server_body(request))

            # Untimed: every prompt once on each side (timed prompts then hit the prefix
            # cache on both), and one full-length request.
            for side in sides:
                await asyncio.gather(*(call(side, i, 8) for i in range(max(streams))))
                await call(side, 0, max_tokens)
            for rnd in range(rounds):
                for n in streams:
                    for side in sides:
                        start = time.perf_counter()
                        batch = await asyncio.gather(*(call(side, i, max_tokens) for i in range(n)))
                        wall = time.perf_counter() - start
                        for s in batch:
                            s["round"], s["offset_s"] = rnd, s["start"] - start
                        samples[side][n].extend(batch)
                        tokens = sum(s["tokens"] for s in batch)
                        runs.append(
                            {
                                "round": rnd,
                                "streams": n,
                                "side": side,
                                "wall_s": wall,
                                "tokens": tokens,
                                "tokens_per_s": tokens / wall,
                            }
                        )
                        print(
                            f"   round {rnd + 1}/{rounds}, {n} streams, {side}: "
                            f"{tokens / wall:.1f} tok/s in {wall:.1f} s",
                            flush=True,
                        )
        finally:
            undeploy("bench-server")

    def tps(side: str, n: int) -> list[float]:
        return [r["tokens_per_s"] for r in runs if r["side"] == side and r["streams"] == n]

    out_sides: dict[str, dict[str, dict[str, Any]]] = {
        side: {
            str(n): {
                "tokens_per_s": spread(tps(side, n)),
                "latency_s": spread([s["latency_s"] for s in samples[side][n]]),
                "ttft_s": spread([s["ttft_s"] for s in samples[side][n]]),
                "samples": columns(samples[side][n]),
            }
            for n in streams
        }
        for side in sides
    }

    def p50(side: str, n: int, key: str) -> float:
        value: float = out_sides[side][str(n)][key]["p50"]
        return value

    lo, hi = min(streams), max(streams)
    ratios = {
        f"{key}_{n}": p50("pool", n, field) / p50("vllm_server", n, field)
        for n in streams
        for key, field in (
            ("latency", "latency_s"),
            ("ttft", "ttft_s"),
            ("throughput", "tokens_per_s"),
        )
    }
    gain = {side: p50(side, hi, "tokens_per_s") / p50(side, lo, "tokens_per_s") for side in sides}
    paired = [p / v for p, v in zip(tps("pool", hi), tps("vllm_server", hi), strict=True)]
    results["server"] = {
        "deployment": deployment,
        "cores": {"pool": pool_core, "vllm_server": server_core},
        "streams": streams,
        "max_tokens": max_tokens,
        "rounds": rounds,
        "runs": runs,
        "sides": out_sides,
        "ratios": ratios,
        "batching_gain": gain,
        "paired_throughput_ratio": spread(paired),
        "goals": {
            "throughput_ratio": goal(ratios[f"throughput_{hi}"], ">=", 0.97),
            "latency_ratio": goal(ratios[f"latency_{hi}"], "<=", 1.05),
            "batching_gain_kept": goal(gain["pool"] / gain["vllm_server"], ">=", 0.95),
        },
        "equal_work": equal_work(
            {f"{side} x{n}": (samples[side][n], max_tokens) for side in sides for n in streams}
        ),
    }


# --------------------------------------------------------------------------- disagg


async def phase_disagg(
    results: dict[str, Any], configs: list[str], rounds: int, mixed_rounds: int, sz: MixedSizes
) -> None:
    """Long-prompt latency, then mixed load, for one engine and the PD configurations."""
    models = [{"id": c, "source": MODEL, "engine": ENGINE, **CONFIGS[c]} for c in configs]
    pool = deploy(models, "bench-disagg")
    try:
        for c in configs:  # untimed: each engine's first requests
            await pool.complete(ask(c, document(sz.long_facts, 99), 4, exact=False))
            await pool.complete(ask(c, "Say hello.", 4, exact=False))
        long: dict[str, list[Sample]] = {c: [] for c in configs}
        for rnd in range(rounds):
            for c in configs:
                request = ask(c, document(sz.long_facts, rnd), LONG_RUN_TOKENS, exact=False)
                s = await timed_stream(pool, request)
                s["round"], s["offset_s"] = rnd, 0.0
                long[c].append(s)
                print(f"   long prompt, round {rnd + 1}/{rounds}, {c}: {s['latency_s']:.1f} s")
        results["long"] = _long_results(long)
        shorts: dict[str, list[Sample]] = {c: [] for c in configs}
        longs: dict[str, list[Sample]] = {c: [] for c in configs}
        walls: dict[str, list[float]] = {c: [] for c in configs}
        for rnd in range(mixed_rounds):
            for c in configs:
                start = time.perf_counter()
                run_shorts, run_longs = await _mixed(pool, c, rnd, sz)
                walls[c].append(time.perf_counter() - start)
                shorts[c] += run_shorts
                longs[c] += run_longs
                print(
                    f"   mixed load, round {rnd + 1}/{mixed_rounds}, {c}: {walls[c][-1]:.0f} s",
                    flush=True,
                )
        results["mixed"] = _mixed_results(shorts, longs, walls, sz)
    finally:
        undeploy("bench-disagg")


def _long_results(long: dict[str, list[Sample]]) -> dict[str, Any]:
    out: dict[str, Any] = {"tokens": LONG_RUN_TOKENS, "configs": {}, "goals": {}}
    for c, samples in long.items():
        out["configs"][c] = {
            "label": LABELS[c],
            "latency_s": spread([s["latency_s"] for s in samples]),
            "prompt_tokens": max(s["prompt_tokens"] for s in samples),
            "remote": sum(s["disaggregated"] for s in samples),
            "samples": columns(samples),
        }
    agg = out["configs"]["agg"]["latency_s"]["p50"]
    for c in long:
        if c != "agg":
            out["goals"][c] = goal(out["configs"][c]["latency_s"]["p50"] / agg, "<=", 1.1)
    out["equal_work"] = equal_work({c: (s, LONG_RUN_TOKENS) for c, s in long.items()})
    return out


async def _mixed(
    pool: PoolClient, model: str, rnd: int, sz: MixedSizes
) -> tuple[list[Sample], list[Sample]]:
    """One mixed-load run: the same requests for every configuration (per round)."""
    t0 = time.perf_counter()
    shorts: list[Sample] = []
    longs: list[Sample] = []

    async def run(request: GenerateRequest, into: list[Sample]) -> None:
        s = await timed_stream(pool, request)
        s["round"], s["offset_s"] = rnd, s["start"] - t0
        into.append(s)

    async def short_worker(worker: int) -> None:
        for k in range(worker, sz.short_chats, sz.short_streams):
            text = f"{SHORT_QUESTIONS[k % len(SHORT_QUESTIONS)]} (variant {rnd}-{k})"
            await run(ask(model, text, sz.short_tokens, f"r{rnd}-short-{k}", exact=False), shorts)

    async def long_prompts() -> None:
        for k in range(sz.long_prompts):
            text = document(sz.long_facts, 1000 + 100 * rnd + k)
            await run(ask(model, text, sz.long_tokens, f"r{rnd}-long-{k}", exact=False), longs)

    workers = min(sz.short_streams, sz.short_chats)
    await asyncio.gather(long_prompts(), *(short_worker(w) for w in range(workers)))
    return shorts, longs


def _mixed_results(
    shorts: dict[str, list[Sample]],
    longs: dict[str, list[Sample]],
    walls: dict[str, list[float]],
    sz: MixedSizes,
) -> dict[str, Any]:
    out: dict[str, Any] = {"sizes": asdict(sz), "configs": {}, "ratios": {}, "goals": {}}
    for c in shorts:
        s, lg = shorts[c], longs[c]
        long_end = {
            rnd: max(x["end"] for x in lg if x["round"] == rnd) for rnd in {x["round"] for x in lg}
        }
        out["configs"][c] = {
            "label": LABELS[c],
            "itl_ms": spread([g for x in s for g in x["itl_s"]], 1000),
            "short_ttft_s": spread([x["ttft_s"] for x in s]),
            "short_latency_s": spread([x["latency_s"] for x in s]),
            "long_latency_s": spread([x["latency_s"] for x in lg]),
            "short_chats": len(s),
            "long_prompts": len(lg),
            "short_during_longs": sum(x["start"] < long_end.get(x["round"], 0.0) for x in s),
            "remote": {
                "short": sum(x["disaggregated"] for x in s),
                "long": sum(x["disaggregated"] for x in lg),
            },
            "wall_s": walls[c],
            "short": columns(s),
            "long": columns(lg),
        }
    agg = out["configs"]["agg"]
    for c in shorts:
        if c == "agg":
            continue
        d = out["configs"][c]
        itl = d["itl_ms"]["p99"] / agg["itl_ms"]["p99"]
        ttft = d["short_ttft_s"]["p50"] / agg["short_ttft_s"]["p50"]
        out["ratios"][c] = {"itl_p99": itl, "short_ttft_p50": ttft}
        if CONFIGS[c].get("min_remote_prefill_tokens", 0) > 0:
            out["goals"][c] = {
                "itl_p99": goal(itl, "<=", 0.5),
                "short_ttft_p50": goal(ttft, "<=", 1.0),
            }
    groups: dict[str, tuple[list[Sample], int]] = {}
    for c in shorts:
        groups[f"{c} short"] = (shorts[c], sz.short_tokens)
        groups[f"{c} long"] = (longs[c], sz.long_tokens)
    out["equal_work"] = equal_work(groups)
    return out


# --------------------------------------------------------------------------- affinity


async def phase_affinity(results: dict[str, Any]) -> None:
    two = {"replicas": 2, "cpu_bind": ["0", "1"]}
    pool = deploy(
        [
            {"id": "sticky", "source": MODEL, "decode": two, "engine": ENGINE},
            {
                "id": "spread",
                "source": MODEL,
                "decode": two,
                "engine": ENGINE,
                "session_affinity": False,
            },
        ],
        "bench-affinity",
    )
    out = {}
    try:
        for model in ("sticky", "spread"):
            history = [Message(role="system", content=document(60, 7))]
            cached = prompt = turns = 0
            replicas = set()
            for turn in range(10):
                history.append(
                    Message(role="user", content=f"Question {turn}: which item is heaviest?")
                )
                request = GenerateRequest(
                    model=model,
                    messages=history,
                    session_id="conversation",
                    sampling=SamplingParams(temperature=0, max_tokens=12),
                )
                done = await pool.complete(request)
                if turn > 0:
                    cached += done.usage.cached_tokens
                    prompt += done.usage.prompt_tokens
                    turns += 1
                replicas.add(done.route.decode_replica if done.route else None)
                history.append(Message(role="assistant", content=done.text))
            out[model] = {
                "hit_rate": cached / prompt,
                "cached_tokens": cached,
                "prompt_tokens": prompt,
                "turns": turns,
                "replicas_used": len(replicas),
            }
    finally:
        undeploy("bench-affinity")
    results["affinity"] = out


# --------------------------------------------------------------------------- report


def rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The table rows of what was measured: figures as p50 (min-max, n=samples)."""
    rows: list[tuple[str, str, str]] = []
    if "long" in results:
        r = results["long"]
        a = r["configs"]["agg"]
        for c, g in r["goals"].items():
            d = r["configs"][c]
            rows.append(
                (
                    f"{d['prompt_tokens']}-token prompt, {r['tokens']} tokens: "
                    f"{d['label']} / {a['label']}",
                    f"{show(d['latency_s'], 's')} / {show(a['latency_s'], 's')} = "
                    f"{g['value']:.2f}x (remote {d['remote']}/{d['latency_s']['n']})",
                    verdict(g),
                )
            )
        rows.append(_equal_row("long prompt", r["equal_work"]))
    if "mixed" in results:
        rows += _mixed_rows(results["mixed"])
    if "server" in results:
        rows += _server_rows(results["server"])
    if "affinity" in results:
        r = results["affinity"]
        s, p = r["sticky"], r["spread"]
        rows.append(
            (
                "10-turn prefix-cache hit rate, 2 replicas (affinity on / off)",
                f"{s['hit_rate']:.0%} / {p['hit_rate']:.0%} (n={s['turns']} turns each; "
                f"{s['replicas_used']} / {p['replicas_used']} replicas used)",
                "on >> off",
            )
        )
    return rows


def _equal_row(what: str, eq: Mapping[str, Any]) -> tuple[str, str, str]:
    exact = eq["exact"] == eq["requests"]
    shown = ", ".join(f"{m['group']}: {m['tokens']}" for m in eq["mismatches"][:4])
    return (
        f"{what}: equal work (every request made exactly its max_tokens)",
        f"{eq['exact']}/{eq['requests']}" + ("" if exact else f"; short: {shown}"),
        "all: " + ("met" if exact else "NOT met"),
    )


def _mixed_rows(r: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    sz = r["sizes"]
    for c, d in r["configs"].items():
        itl = d["itl_ms"]
        rows.append(
            (
                f"mixed load, {d['label']}: {d['short_chats']} short chats "
                f"({sz['short_streams']} at a time, {sz['short_tokens']} tok), "
                f"{d['long_prompts']} long ({sz['long_tokens']} tok)",
                f"ITL p99 {itl['p99']:.0f} ms (p50 {itl['p50']:.0f}, {itl['min']:.0f}-"
                f"{itl['max']:.0f}, n={itl['n']} gaps); short TTFT "
                f"{show(d['short_ttft_s'], 's')}; long {show(d['long_latency_s'], 's')}; "
                f"{d['short_during_longs']} chats began during longs; remote prefill "
                f"{d['remote']['short']} short, {d['remote']['long']} long",
                "baseline" if c == "agg" else "",
            )
        )
    for c, ratio in r["ratios"].items():
        goals = r["goals"].get(c)
        label = r["configs"][c]["label"]
        rows.append(
            (
                f"mixed load, {label} / one engine: ITL p99, short TTFT p50",
                f"{ratio['itl_p99']:.2f}x, {ratio['short_ttft_p50']:.2f}x",
                f"{verdict(goals['itl_p99'])}; {verdict(goals['short_ttft_p50'])}"
                if goals
                else "report",
            )
        )
    rows.append(_equal_row("mixed load", r["equal_work"]))
    return rows


def _server_rows(r: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = [("pool vs vLLM's server: deployment", r["deployment"], "")]
    p, v, hi = r["sides"]["pool"], r["sides"]["vllm_server"], max(r["streams"])
    for n in map(str, r["streams"]):
        figures = (
            ("tokens/s", "tokens_per_s", "tok/s", 1, "throughput", "throughput_ratio"),
            ("end-to-end latency", "latency_s", "s", 2, "latency", "latency_ratio"),
            ("TTFT", "ttft_s", "s", 3, "ttft", None),
        )
        for what, key, unit, digits, ratio, goal_key in figures:
            g = r["goals"][goal_key] if goal_key and int(n) == hi else None
            rows.append(
                (
                    f"{n} streams x {r['max_tokens']} tok: {what} pool / vLLM server",
                    f"{show(p[n][key], unit, digits)} / {show(v[n][key], unit, digits)} = "
                    f"{r['ratios'][f'{ratio}_{n}']:.2f}x",
                    verdict(g) if g else "report",
                )
            )
    gain, g = r["batching_gain"], r["goals"]["batching_gain_kept"]
    lo = min(r["streams"])
    rows.append(
        (
            f"batching gain, tokens/s p50 {hi} vs {lo} streams: pool / vLLM server",
            f"{gain['pool']:.2f}x / {gain['vllm_server']:.2f}x = {g['value']:.2f} kept "
            f"(n={r['rounds']} rounds each)",
            verdict(g),
        )
    )
    rows.append(
        (
            f"{hi} streams: pool / vLLM server tokens/s, paired by round",
            show(r["paired_throughput_ratio"], "x"),
            "report",
        )
    )
    rows.append(_equal_row("pool vs server", r["equal_work"]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--phases", default="disagg,server,affinity")
    add("--out", type=Path, default=Path("benchmarks/results/pool.json"))
    add("--stream-batching-ms", type=int, default=SETTINGS["stream_batching_ms"])
    add("--rounds", type=int, default=3, help="Server rounds (A B each); long-prompt runs.")
    add("--streams", default="1,16", help="Server phase: concurrent streams, comma-separated.")
    add("--max-tokens", type=int, default=64, help="Server phase: tokens per request.")
    add("--server-cores", default="0,1", help="Server phase: the pool's core, the server's.")
    add("--mixed-configs", default="agg,pd,pd-cond", help=f"Of {', '.join(CONFIGS)}.")
    add("--mixed-rounds", type=int, default=1, help="Mixed-load runs per configuration.")
    add("--short-chats", type=int, default=24, help="Mixed load: short chats per run.")
    add("--short-streams", type=int, default=4, help="Mixed load: short chats at a time.")
    add("--short-tokens", type=int, default=48)
    add("--long-prompts", type=int, default=3, help="Mixed load: long prompts per run.")
    add("--long-tokens", type=int, default=8)
    add("--long-facts", type=int, default=145, help="Long prompt size (145 = ~2.6k tokens).")
    args = parser.parse_args()
    SETTINGS["stream_batching_ms"] = args.stream_batching_ms
    configs = ["agg", *(c for c in args.mixed_configs.split(",") if c != "agg")]
    if unknown := [c for c in configs if c not in CONFIGS]:
        raise SystemExit(f"unknown configuration(s) {unknown}; choose from {', '.join(CONFIGS)}")
    cores = args.server_cores.split(",")
    if len(cores) != 2:
        raise SystemExit("--server-cores takes two core sets: the pool's, the server's")
    sizes = MixedSizes(
        short_chats=args.short_chats,
        short_streams=args.short_streams,
        short_tokens=args.short_tokens,
        long_prompts=args.long_prompts,
        long_tokens=args.long_tokens,
        long_facts=args.long_facts,
    )
    if sizes.short_chats * args.mixed_rounds < 20 or sizes.long_prompts * args.mixed_rounds < 3:
        print("note: mixed load below >= 20 short chats and >= 3 long prompts per configuration")
    streams = sorted({int(n) for n in args.streams.split(",")})
    weights.prepare(MODEL)
    phases: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {
        "disagg": lambda results: phase_disagg(
            results, configs, args.rounds, args.mixed_rounds, sizes
        ),
        "server": lambda results: phase_server(
            results, args.rounds, streams, args.max_tokens, cores
        ),
        "affinity": phase_affinity,
    }

    async def run() -> dict[str, Any]:
        settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        results = await run_phases(args.phases.split(","), phases, args.out)
        results.update(settings=settings, pool_has_min_tokens=POOL_HAS_MIN_TOKENS)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        return results

    with local_serve(port=SERVE_PORT):
        results = asyncio.run(run())
    print(table(rows(results)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
