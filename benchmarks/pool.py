"""Generator pool benchmarks: prints a table and writes JSON.

    python -m benchmarks.pool [--phases disagg,server,affinity] [--out FILE]

Phases (each deploys what it measures, one at a time, on this machine's cores):

- disagg:   (1) a ~2.7k-token prompt, disaggregated vs one aggregated engine; (2) mixed
            load: 4 short chats streaming 48 tokens while ~2.7k-token prompts arrive
            back to back: inter-token latency (ITL) and short-chat time to first token
            (TTFT). Both for two disaggregated core layouts.
- server:   the pool's DeploymentHandle path vs vLLM's own OpenAI server, same model and
            engine settings, at 1 and 16 concurrent 64-token chats; batching gain.
- affinity: prefix-cache hit rate of a 10-turn conversation over 2 replicas, with and
            without session affinity.

Ratios are what to read: absolute numbers move with the machine's other load.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from agents.pool import weights
from agents.pool.client import PoolClient
from agents.pool.spec import PoolSpec
from agents.pool.types import GenerateRequest, Message, SamplingParams, TextChunk
from benchmarks._common import local_serve, pct, run_phases, table, wait_healthy

MODEL = "builtin:smollm2-135m-instruct"
SETTINGS = {"stream_batching_ms": 10}  # set from the command line
ENGINE = {"max_model_len": 4096, "kv_cache_gib": 1}
SHORT_QUESTIONS = [
    "Tell me about the ocean.",
    "Describe a forest in spring.",
    "Explain how bread is made.",
    "Write about a city at night.",
]


def document(n_facts: int, seed: int) -> str:
    facts = [
        f"Fact {seed}-{i}: item {i} weighs {(i * 7 + seed) % 97} grams." for i in range(n_facts)
    ]
    return " ".join(facts) + "\nWhich item is mentioned first? Answer briefly."


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


async def timed_stream(pool: PoolClient, request: GenerateRequest) -> dict[str, Any]:
    start = time.perf_counter()
    arrivals: list[float] = []
    finish = None
    async for chunk in pool.generate(request):
        if isinstance(chunk, TextChunk):
            arrivals.append(time.perf_counter())
        else:
            finish = chunk
    end = time.perf_counter()
    assert finish is not None and finish.type == "finish"
    return {
        "latency": end - start,
        "ttft": (arrivals[0] - start) if arrivals else end - start,
        "gaps": [b - a for a, b in itertools.pairwise(arrivals)],
        "tokens": finish.usage.completion_tokens,
        "prompt_tokens": finish.usage.prompt_tokens,
        "cached_tokens": finish.usage.cached_tokens,
        "disaggregated": bool(finish.route and finish.route.disaggregated),
    }


def ask(model: str, text: str, max_tokens: int, session: str | None = None) -> GenerateRequest:
    return GenerateRequest(
        model=model,
        messages=[Message(role="user", content=text)],
        sampling=SamplingParams(temperature=0, max_tokens=max_tokens),
        session_id=session,
    )


# --------------------------------------------------------------------------- phases


# Two disaggregated layouts on a 2-core machine: prefill and decode on a core each, or
# prefill on both cores (it has them to itself while decode is idle) and decode on one.
LAYOUTS = {"pd": ("0", "1"), "pd-wide": ("0-1", "1")}


def disagg_models(min_remote: int) -> list[dict[str, Any]]:
    models: list[dict[str, Any]] = [
        {"id": "agg", "source": MODEL, "decode": {"cpu_bind": "0-1"}, "engine": ENGINE}
    ]
    for name, (prefill, decode) in LAYOUTS.items():
        models.append(
            {
                "id": name,
                "source": MODEL,
                "mode": "disaggregated",
                "prefill": {"cpu_bind": prefill},
                "decode": {"cpu_bind": decode},
                "engine": ENGINE,
                "min_remote_prefill_tokens": min_remote,
            }
        )
    return models


async def phase_disagg(results: dict[str, Any], seconds: float) -> None:
    """Long-prompt latency, then mixed load, for one engine and both PD layouts."""
    pool = deploy(disagg_models(min_remote=512), "bench-disagg")
    try:
        for model in ("agg", *LAYOUTS):
            await pool.complete(ask(model, document(145, 99), 4))
        runs: dict[str, list[float]] = {m: [] for m in ("agg", *LAYOUTS)}
        tokens = 0
        for run in range(3):
            for model in runs:
                r = await timed_stream(pool, ask(model, document(145, run), 16))
                runs[model].append(r["latency"])
                tokens = r["prompt_tokens"]
                assert r["disaggregated"] == (model != "agg")
        agg = statistics.median(runs["agg"])
        results["long"] = {"prompt_tokens": tokens, "aggregated_s": agg, "runs": runs}
        for name in LAYOUTS:
            median = statistics.median(runs[name])
            results["long"][name] = {"disaggregated_s": median, "ratio": median / agg}
        mixed = {model: await _mixed(pool, model, seconds) for model in ("agg", *LAYOUTS)}
        results["mixed"] = {"aggregated": mixed["agg"]}
        for name in LAYOUTS:
            results["mixed"][name] = {
                **mixed[name],
                "itl_p99_ratio": mixed[name]["itl_p99_ms"] / mixed["agg"]["itl_p99_ms"],
                "short_ttft_p50_ratio": mixed[name]["short_ttft_p50_s"]
                / mixed["agg"]["short_ttft_p50_s"],
            }
    finally:
        undeploy("bench-disagg")


async def _mixed(pool: PoolClient, model: str, seconds: float) -> dict[str, Any]:
    stop = time.perf_counter() + seconds
    gaps: list[float] = []
    ttfts: list[float] = []
    longs: list[float] = []

    async def short_chats(worker: int) -> None:
        n = 0
        while time.perf_counter() < stop:
            text = f"{SHORT_QUESTIONS[worker]} (variant {n})"
            r = await timed_stream(pool, ask(model, text, 48, session=f"short-{worker}-{n}"))
            gaps.extend(r["gaps"])
            ttfts.append(r["ttft"])
            n += 1

    async def long_prompts() -> None:
        n = 0
        while time.perf_counter() < stop:
            r = await timed_stream(pool, ask(model, document(145, 1000 + n), 8, f"long-{n}"))
            longs.append(r["latency"])
            n += 1

    await asyncio.gather(long_prompts(), *(short_chats(w) for w in range(4)))
    return {
        "itl_p50_ms": pct(gaps, 50) * 1000,
        "itl_p99_ms": pct(gaps, 99) * 1000,
        "short_ttft_p50_s": pct(ttfts, 50),
        "short_chats": len(ttfts),
        "long_prompts": len(longs),
    }


async def _concurrent(call: Any, n: int) -> dict[str, float]:
    start = time.perf_counter()
    runs = await asyncio.gather(*(call(i) for i in range(n)))
    wall = time.perf_counter() - start
    tokens = sum(t for _, t in runs)
    return {
        "median_latency_s": statistics.median(lat for lat, _ in runs),
        "tokens_per_s": tokens / wall,
        "tokens": tokens,
    }


async def phase_server(results: dict[str, Any]) -> None:
    checkpoint = weights.prepare(MODEL)
    prompts = [
        f"Write a short story about {topic}." for topic in ("a cat", "a ship", "a tree", "a robot")
    ]
    port = 8765
    env = {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": str(ENGINE["kv_cache_gib"]),
        "VLLM_CPU_OMP_THREADS_BIND": "0-1",
    }
    log_path = Path("benchmarks/results/vllm_server.log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(checkpoint),
            "--served-model-name",
            "smollm2",
            "--dtype",
            "float32",
            "--enforce-eager",
            "--max-model-len",
            str(ENGINE["max_model_len"]),
            "--port",
            str(port),
            "--enable-prompt-tokens-details",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    vllm_out: dict[str, Any] = {}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=300) as http:
            await wait_healthy(http, server, log_path)

            async def via_server(i: int) -> tuple[float, int]:
                body = {
                    "model": "smollm2",
                    "messages": [{"role": "user", "content": prompts[i % len(prompts)]}],
                    "temperature": 0,
                    "max_tokens": 64,
                }
                t = time.perf_counter()
                reply = (await http.post("/v1/chat/completions", json=body)).json()
                return time.perf_counter() - t, reply["usage"]["completion_tokens"]

            await via_server(0)
            for n in (1, 16):
                vllm_out[str(n)] = await _concurrent(via_server, n)
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()

    pool = deploy(
        [{"id": "agg", "source": MODEL, "decode": {"cpu_bind": "0-1"}, "engine": ENGINE}],
        "bench-server",
    )
    pool_out: dict[str, Any] = {}
    try:

        async def via_pool(i: int) -> tuple[float, int]:
            t = time.perf_counter()
            done = await pool.complete(ask("agg", prompts[i % len(prompts)], 64))
            return time.perf_counter() - t, done.usage.completion_tokens

        await via_pool(0)
        for n in (1, 16):
            pool_out[str(n)] = await _concurrent(via_pool, n)
    finally:
        undeploy("bench-server")
    results["server"] = {
        "vllm_server": vllm_out,
        "pool": pool_out,
        "latency_ratio_1": pool_out["1"]["median_latency_s"] / vllm_out["1"]["median_latency_s"],
        "latency_ratio_16": pool_out["16"]["median_latency_s"] / vllm_out["16"]["median_latency_s"],
        "throughput_ratio_16": pool_out["16"]["tokens_per_s"] / vllm_out["16"]["tokens_per_s"],
        "batching_gain_server": vllm_out["16"]["tokens_per_s"] / vllm_out["1"]["tokens_per_s"],
        "batching_gain_pool": pool_out["16"]["tokens_per_s"] / pool_out["1"]["tokens_per_s"],
    }


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
            cached = prompt = 0
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
                replicas.add(done.route.decode_replica if done.route else None)
                history.append(Message(role="assistant", content=done.text))
            out[model] = {"hit_rate": cached / prompt, "replicas_used": len(replicas)}
    finally:
        undeploy("bench-affinity")
    results["affinity"] = out


# --------------------------------------------------------------------------- report


def rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The table rows of what was measured."""
    rows: list[tuple[str, str, str]] = []
    if "long" in results:
        r = results["long"]
        for name, (prefill, decode) in LAYOUTS.items():
            rows.append(
                (
                    f"{r['prompt_tokens']}-token prompt: disagg (P {prefill}, D {decode}) / agg",
                    f"{r[name]['disaggregated_s']:.2f} s / {r['aggregated_s']:.2f} s = "
                    f"{r[name]['ratio']:.2f}x",
                    "<= 1.1x",
                )
            )
    if "mixed" in results:
        r = results["mixed"]
        a = r["aggregated"]
        rows.append(
            (
                "mixed load, one engine: ITL p50/p99, short TTFT p50",
                f"{a['itl_p50_ms']:.0f}/{a['itl_p99_ms']:.0f} ms, {a['short_ttft_p50_s']:.2f} s",
                "baseline",
            )
        )
        for name, (prefill, decode) in LAYOUTS.items():
            d = r[name]
            rows.append(
                (
                    f"mixed load, disagg (P {prefill}, D {decode}): ITL p50/p99, TTFT p50",
                    f"{d['itl_p50_ms']:.0f}/{d['itl_p99_ms']:.0f} ms ({d['itl_p99_ratio']:.2f}x), "
                    f"{d['short_ttft_p50_s']:.2f} s ({d['short_ttft_p50_ratio']:.2f}x)",
                    "p99 <= 0.5x, TTFT <= 1.0x",
                )
            )
    if "server" in results:
        r = results["server"]
        v, p = r["vllm_server"], r["pool"]
        for n in ("1", "16"):
            rows.append(
                (
                    f"{n} concurrent 64-token chats: median latency pool / vLLM server",
                    f"{p[n]['median_latency_s']:.2f} s / {v[n]['median_latency_s']:.2f} s = "
                    f"{r['latency_ratio_' + n]:.2f}x",
                    "<= 1.05x",
                )
            )
        rows.append(
            (
                "16 concurrent: throughput pool / vLLM server",
                f"{p['16']['tokens_per_s']:.0f} / {v['16']['tokens_per_s']:.0f} tok/s = "
                f"{r['throughput_ratio_16']:.2f}x",
                ">= 0.95x",
            )
        )
        rows.append(
            (
                "batching gain, 16 vs 1 (pool vs server)",
                f"{r['batching_gain_pool']:.1f}x vs {r['batching_gain_server']:.1f}x",
                ">= 0.95 of server's",
            )
        )
    if "affinity" in results:
        r = results["affinity"]
        rows.append(
            (
                "10-turn prefix-cache hit rate, 2 replicas (affinity on / off)",
                f"{r['sticky']['hit_rate']:.0%} / {r['spread']['hit_rate']:.0%}",
                "on >> off",
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--phases", default="disagg,server,affinity")
    parser.add_argument("--mixed-seconds", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/pool.json"))
    parser.add_argument("--stream-batching-ms", type=int, default=SETTINGS["stream_batching_ms"])
    args = parser.parse_args()
    SETTINGS["stream_batching_ms"] = args.stream_batching_ms
    weights.prepare(MODEL)
    phases = {
        "disagg": lambda results: phase_disagg(results, args.mixed_seconds),
        "server": phase_server,
        "affinity": phase_affinity,
    }
    with local_serve(port=8766):
        results = asyncio.run(run_phases(args.phases.split(","), phases, args.out))
    print(table(rows(results)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
