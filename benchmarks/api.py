"""HTTP API benchmarks: prints a table and writes JSON.

    python -m benchmarks.api [--phases overhead,streams] [--out FILE]

- overhead: one agent turn through the HTTP API vs the same generation request sent
            straight to vLLM's own OpenAI server, same model and engine settings. The
            request is the agent's own: captured in-process (``LocalApp``), turned into
            the body the pool sends (``chat_request_kwargs``, not streamed). Both
            servers stay up and each round sends, one at a time with a pause after each:
            the request to vLLM's server; a turn (``POST .../messages`` in a fresh
            conversation, so the prompt is the same); a stateless
            ``/v1/chat/completions``; and, for the breakdown, the captured request
            through the pool's DeploymentHandle (plus the proxy's floor, ``GET
            /healthz``, and ``POST /v1/conversations``). Alternating keeps the ratios
            honest on a machine whose other load drifts. At temperature 0 every path
            must give vLLM's answer.
- streams:  concurrent SSE turns held by one API replica over the scripted engine (no
            model): each client opens a conversation and streams a slow answer with
            heartbeats. Grows N until a size has failures.

Ratios measured side by side are what to read: absolute numbers move with the
machine's other load (2 cores here, shared by the client, Ray and the engine).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time
import uuid
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from agents.pool.types import GenerateRequest
from benchmarks._common import local_serve, pct, run_phases, summary, table, vllm_server

MODEL = "builtin:smollm2-135m-instruct"
MODEL_ID = "smollm2"
AGENT = "assistant"
KEY = "bench-api-key"
MESSAGE = "What is the capital of France?"
SERVE_PORT = 8768
VLLM_PORT = 8769
# The overhead phase's model: aggregated on both cores, float32, eager, 1 GiB of KV
# cache; vLLM's own server gets its settings from this same spec (``vllm_server``).
REAL_MODEL: dict[str, Any] = {
    "id": MODEL_ID,
    "source": MODEL,
    "decode": {"cpu_bind": "0-1"},
    "engine": {"dtype": "float32", "max_model_len": 4096, "kv_cache_gib": 1, "enforce_eager": True},
}
HIGH_LIMITS = {"requests_per_minute": 1_000_000, "burst": 100_000}
T = TypeVar("T")


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}"}


def agent(model: str, **fields: Any) -> dict[str, Any]:
    return {"name": AGENT, "model": model, **fields}


def deploy(
    app: str, agent_spec: dict[str, Any], model: dict[str, Any], db: Path, **limits: Any
) -> None:
    """The agents app with its HTTP API at ``/`` of the local Serve."""
    from ray import serve

    from agents.api.spec import ApiKey, ApiLimits, ApiSpec, hash_key
    from agents.builder import build_agents_app
    from agents.pool.spec import PoolSpec
    from agents.spec import AgentSpec
    from agents.store.spec import StoreSpec

    api = ApiSpec(
        keys=[ApiKey(tenant="bench", sha256=hash_key(KEY))],
        keys_env=None,
        limits=ApiLimits(**limits),
    )
    built = build_agents_app(
        [AgentSpec.model_validate(agent_spec)],
        PoolSpec.model_validate({"models": [model]}),
        store=StoreSpec(backend="sqlite", path=str(db)),
        api=api,
    )
    serve.run(built, name=app, route_prefix="/")


# --------------------------------------------------------------------------- overhead


async def captured_request(sampling: dict[str, Any]) -> GenerateRequest:
    """The agent's generation request for ``MESSAGE``, recorded in-process."""
    from agents.spec import AgentSpec
    from agents.testing import LocalApp, ScriptedGenerator, action

    recorder = ScriptedGenerator([{"match": "", "json_reply": action("answer", text="ok")}])
    app = LocalApp(
        [AgentSpec.model_validate(agent(MODEL_ID, sampling=sampling))], generator=recorder
    )
    await app.send(MESSAGE)
    (request,) = recorder.requests
    return request


def server_body(request: GenerateRequest) -> dict[str, Any]:
    """The body the pool sends to vLLM for ``request``, for vLLM's server: not streamed."""
    from agents.pool._protocol import chat_request_kwargs

    body = chat_request_kwargs(request)
    body.pop("stream_options")
    body.pop("request_id")
    body["stream"] = False
    return body


async def timed(work: Awaitable[T]) -> tuple[float, T]:
    """Seconds ``work`` takes (it starts when awaited), and its value."""
    start = time.perf_counter()
    value = await work
    return time.perf_counter() - start, value


def ok(response: httpx.Response) -> Any:
    if response.status_code >= 300:
        raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text[:500]}")
    return response.json()


def _answer_text(content: str) -> str:
    """An answer step's text: plain (an answer-only agent) or a JSON answer action."""
    try:
        data = json.loads(content)
    except ValueError:
        return content
    return str(data["text"]) if isinstance(data, dict) and "text" in data else content


async def phase_overhead(
    results: dict[str, Any], db: Path, rounds: int, warmup: int, pause_s: float
) -> None:
    from ray import serve

    from agents.pool.client import PoolClient

    sampling = {"temperature": 0, "max_tokens": 64}
    request = await captured_request(sampling)
    body = server_body(request)
    app = "bench-api-overhead"
    chat = {"model": AGENT, "messages": [{"role": "user", "content": MESSAGE}]}
    paths = ("vllm_server", "healthz", "create", "turn", "chat", "pool")
    seconds: dict[str, list[float]] = {k: [] for k in paths}
    answers: dict[str, set[str]] = {k: set() for k in ("vllm_server", "turn", "chat", "pool")}
    usage: dict[str, Any] = {}
    loads: list[float] = []
    log = Path("benchmarks/results/vllm_server_api.log")
    base = f"http://127.0.0.1:{SERVE_PORT}"
    async with (
        vllm_server(REAL_MODEL, VLLM_PORT, log) as direct,
        httpx.AsyncClient(base_url=base, headers=auth(), timeout=300) as http,
    ):
        deploy(app, agent(MODEL_ID, sampling=sampling), REAL_MODEL, db, **HIGH_LIMITS)
        pool = PoolClient.connect([MODEL_ID], app_name=app)
        try:
            for n in range(warmup + rounds):
                # One request in flight at a time, and a pause after each, so neither
                # engine's threads are still busy when the other's request starts.
                timings: dict[str, float] = {}
                timings["vllm_server"], reply = await timed(
                    direct.post("/v1/chat/completions", json=body)
                )
                await asyncio.sleep(pause_s)
                timings["healthz"], _ = await timed(http.get("/healthz"))
                timings["create"], created = await timed(http.post("/v1/conversations", json={}))
                turn_url = f"/v1/conversations/{ok(created)['id']}/messages"
                timings["turn"], sent = await timed(http.post(turn_url, json={"content": MESSAGE}))
                await asyncio.sleep(pause_s)
                timings["chat"], completion = await timed(
                    http.post("/v1/chat/completions", json=chat)
                )
                await asyncio.sleep(pause_s)
                fresh = request.model_copy(update={"request_id": uuid.uuid4().hex})
                timings["pool"], done = await timed(pool.complete(fresh))
                await asyncio.sleep(pause_s)
                turn = ok(sent)
                if turn["status"] != "ok":
                    raise RuntimeError(f"turn failed: {turn}")
                if n < warmup:
                    continue
                for name, value in timings.items():
                    seconds[name].append(value)
                vllm_reply = ok(reply)
                answers["vllm_server"].add(
                    _answer_text(vllm_reply["choices"][0]["message"]["content"])
                )
                answers["turn"].add(turn["answer"])
                answers["chat"].add(ok(completion)["choices"][0]["message"]["content"])
                answers["pool"].add(_answer_text(done.text))
                usage = turn["usage"]
                loads.append(os.getloadavg()[0])
        finally:
            serve.delete(app)
    p50 = {name: pct(values, 50) for name, values in seconds.items()}
    p99 = {name: pct(values, 99) for name, values in seconds.items()}
    choice = vllm_reply["choices"][0]
    results["overhead"] = {
        "message": MESSAGE,
        "request": body,
        "rounds": rounds,
        "pause_s": pause_s,
        **{name: summary(values) for name, values in seconds.items()},
        "vllm_server_reply": {
            "content": choice["message"]["content"],
            "finish_reason": choice["finish_reason"],
            "usage": vllm_reply["usage"],
        },
        "turn_usage": usage,
        "load_average_1m": {"min": min(loads), "max": max(loads)},
        "answers": {k: sorted(v) for k, v in answers.items()},
        "same_answer": all(v == answers["vllm_server"] for v in answers.values())
        and len(answers["vllm_server"]) == 1,
        "ratio_p50": {k: p50[k] / p50["vllm_server"] for k in ("turn", "chat", "pool")},
        "ratio_p99": {k: p99[k] / p99["vllm_server"] for k in ("turn", "chat", "pool")},
        "turn_minus_pool_p50_ms": (p50["turn"] - p50["pool"]) * 1000,
        "turn_minus_vllm_p50_ms": (p50["turn"] - p50["vllm_server"]) * 1000,
        "raw_ms": {name: [round(v * 1000, 1) for v in values] for name, values in seconds.items()},
    }


# --------------------------------------------------------------------------- streams


def serving_pids(app: str) -> dict[str, int]:
    """PIDs of the app's replicas (API, agent, pool), Serve's HTTP proxy and this client.

    Asked of the actors, found by name: ``ray.util.state.list_actors`` needs the
    dashboard, which ``local_serve`` leaves out.
    """
    import ray

    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)]
    wanted = {
        "api_replica": [n for n in names if f"{app}#agents-api#" in n],
        "agent_replica": [n for n in names if f"{app}#agent-{AGENT}#" in n],
        "pool_replica": [n for n in names if f"{app}#pool-" in n],
        "proxy": [n for n in names if n.startswith("SERVE_PROXY_ACTOR")],
    }
    pids = {"client": os.getpid()}
    for role, found in wanted.items():
        if len(found) != 1:
            raise RuntimeError(f"expected one {role} actor, found {found}")
        actor = ray.get_actor(found[0], namespace="serve")
        pid_ref: Any = actor.__ray_call__.remote(lambda _: os.getpid())
        pids[role] = ray.get(pid_ref)
    return pids


class ProcessSampler:
    """Peak RSS (sampled) and CPU seconds of some processes while entered."""

    def __init__(self, pids: dict[str, int], interval_s: float = 0.25) -> None:
        import psutil

        self._procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self._interval_s = interval_s
        self.rss_before = self.rss()
        self.peak = dict(self.rss_before)
        self.cpu_s: dict[str, float] = self._cpu()
        self._task: asyncio.Task[None] | None = None

    def rss(self) -> dict[str, float]:
        """Each process's RSS now, in MiB."""
        return {name: p.memory_info().rss / 2**20 for name, p in self._procs.items()}

    def _cpu(self) -> dict[str, float]:
        times = {name: p.cpu_times() for name, p in self._procs.items()}
        return {name: t.user + t.system for name, t in times.items()}

    async def _run(self) -> None:
        while True:
            for name, mib in self.rss().items():
                self.peak[name] = max(self.peak[name], mib)
            await asyncio.sleep(self._interval_s)

    async def __aenter__(self) -> ProcessSampler:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        now = self._cpu()
        self.cpu_s = {name: now[name] - start for name, start in self.cpu_s.items()}


async def one_stream(http: httpx.AsyncClient, words: int) -> dict[str, Any]:
    """Open a conversation and stream a slow answer: timings, counts, outcome.

    It is ok when the turn ends ``ok`` and the streamed token text is the stored
    answer's, of ``words`` words. (Token events are counted too, but under load the
    pool joins text chunks that arrive together into one event: fewer events, the
    same text.)"""
    out: dict[str, Any] = {"ok": False, "heartbeats": 0, "tokens": 0, "first_event": None}
    try:
        cid = ok(await http.post("/v1/conversations", json={}))["id"]
        body = {"content": "slow answer please", "stream": True}
        start = time.perf_counter()
        kind = status = answer = None
        streamed: list[str] = []
        async with http.stream("POST", f"/v1/conversations/{cid}/messages", json=body) as response:
            if response.status_code != 200:
                out["error"] = f"HTTP {response.status_code}"
                return out
            async for line in response.aiter_lines():
                if line.startswith(":"):
                    out["heartbeats"] += 1
                elif line.startswith("event: "):
                    kind = line.removeprefix("event: ")
                    if out["first_event"] is None:
                        out["first_event"] = time.perf_counter() - start
                    if kind == "token" and out["tokens"] == 0:
                        out["first_token"] = time.perf_counter() - start
                    out["tokens"] += kind == "token"
                elif line.startswith("data: ") and kind in ("token", "answer", "done"):
                    data = json.loads(line.removeprefix("data: "))
                    if kind == "token":
                        streamed.append(data["text"])
                    elif kind == "answer":
                        answer = data["text"]
                    else:
                        status = data["status"]
        out["seconds"] = time.perf_counter() - start
        text = "".join(streamed)
        same = answer is not None and text.strip() == answer.strip()
        out["ok"] = status == "ok" and same and len(text.split()) == words
        if not out["ok"]:
            out["error"] = (
                f"status {status}, {out['tokens']} token events, {len(text.split())} words "
                f"streamed, {'equal to' if same else 'unlike'} the answer"
            )
    except httpx.HTTPError as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    except RuntimeError as exc:
        out["error"] = str(exc)
    return out


async def phase_streams(
    results: dict[str, Any],
    db: Path,
    sizes: list[int],
    words: int,
    token_delay_s: float,
    heartbeat_s: float,
    max_stretch: float,
) -> None:
    from ray import serve

    from agents.testing import action

    app = "bench-api-streams"
    rule = {
        "match": "^slow",
        "json_reply": action("answer", text=" ".join(f"word{i}" for i in range(words))),
        "token_delay_s": token_delay_s,
    }
    model = {"id": "m", "source": MODEL, "scripted": [rule]}
    # One agent replica holds every turn: max_ongoing_requests = 2 * target in the builder.
    scaling = {"min_replicas": 1, "max_replicas": 1, "target_ongoing_requests": 1024}
    top = max(sizes)
    deploy(
        app,
        agent("m", scaling=scaling),
        model,
        db,
        **HIGH_LIMITS,
        max_concurrent_turns=2 * top,
        max_streams_per_key=2 * top,
        heartbeat_s=heartbeat_s,
    )
    out: dict[str, Any] = {
        "words": words,
        "token_delay_s": token_delay_s,
        "heartbeat_s": heartbeat_s,
        "agent_scaling": scaling,
        "runs": {},
    }
    results["streams"] = out
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    base = f"http://127.0.0.1:{SERVE_PORT}"
    try:
        async with httpx.AsyncClient(
            base_url=base, headers=auth(), timeout=120, limits=limits
        ) as http:
            single = await one_stream(http, words)  # warms up; the unloaded stream time
            if not single["ok"]:
                raise RuntimeError(f"a single stream failed: {single}")
            out["single_stream_s"] = single["seconds"]
            out["single_first_event_ms"] = single["first_event"] * 1000
            pids = serving_pids(app)
            for n in sizes:
                async with ProcessSampler(pids) as procs:
                    start = time.perf_counter()
                    runs = await asyncio.gather(*(one_stream(http, words) for _ in range(n)))
                    wall = time.perf_counter() - start
                failed = [r for r in runs if not r["ok"]]
                good = [r for r in runs if r["ok"]]
                streamed = summary([r["seconds"] for r in good])
                stretch = streamed["p50_ms"] / 1000 / single["seconds"]
                out["runs"][str(n)] = {
                    "completed": len(good),
                    "failed": len(failed),
                    "errors": sorted({r.get("error", "") for r in failed})[:5],
                    "first_event": summary([r["first_event"] for r in good]),
                    "first_token": summary([r["first_token"] for r in good]),
                    "stream_seconds": streamed,
                    "stretch_p50": stretch,
                    "heartbeats_per_stream": sum(r["heartbeats"] for r in good) / max(1, len(good)),
                    "wall_s": wall,
                    "rss_before_mib": procs.rss_before,
                    "rss_peak_mib": procs.peak,
                    "cpu_s": procs.cpu_s,
                    "load_average_1m": os.getloadavg()[0],
                }
                print(
                    f"   {n} streams: {len(good)} ok, {len(failed)} failed, {wall:.1f} s",
                    flush=True,
                )
                if failed or stretch > max_stretch:
                    break  # failures, or the machine can no longer keep up
    finally:
        serve.delete(app)
    held = [int(n) for n, r in out["runs"].items() if r["failed"] == 0]
    out["largest_held"] = max(held, default=0)


# --------------------------------------------------------------------------- report


def rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The table rows of what was measured."""
    rows: list[tuple[str, str, str]] = []
    if "overhead" in results:
        r = results["overhead"]
        v, usage = r["vllm_server"], r["vllm_server_reply"]["usage"]
        rows.append(
            (
                "vLLM's own server, the agent's request",
                f"p50 {v['p50_ms']:.0f} ms, p99 {v['p99_ms']:.0f} ms "
                f"({usage['prompt_tokens']} + {usage['completion_tokens']} tokens)",
                "baseline",
            )
        )
        labels = {
            "turn": "agent turn: POST /v1/conversations/{id}/messages",
            "chat": "agent turn: POST /v1/chat/completions",
            "pool": "pool DeploymentHandle, same request (breakdown)",
        }
        for key, label in labels.items():
            rows.append(
                (
                    f"{label} / vLLM",
                    f"p50 {r[key]['p50_ms']:.0f} ms ({r['ratio_p50'][key]:.2f}x), "
                    f"p99 {r[key]['p99_ms']:.0f} ms ({r['ratio_p99'][key]:.2f}x)",
                    "<= 1.05x median" if key != "pool" else "",
                )
            )
        rows.append(
            (
                "floors: GET /healthz, POST /v1/conversations",
                f"p50 {r['healthz']['p50_ms']:.1f} ms, {r['create']['p50_ms']:.1f} ms",
                "",
            )
        )
        same = r["same_answer"]
        rows.append(
            (
                "same answer as vLLM's server (temperature 0)",
                "yes" if same else f"NO: {r['answers']}",
                "yes",
            )
        )
    if "streams" in results:
        r = results["streams"]
        for n, run in r["runs"].items():
            first, before, peak = run["first_event"], run["rss_before_mib"], run["rss_peak_mib"]
            rows.append(
                (
                    f"{n} concurrent SSE streams, one API replica",
                    f"{run['completed']} ok / {run['failed']} failed; stream p50 "
                    f"{run['stream_seconds']['p50_ms'] / 1000:.1f} s ({run['stretch_p50']:.1f}x "
                    f"a lone stream's {r['single_stream_s']:.1f} s); first event p50 "
                    f"{first['p50_ms']:.0f} ms, p99 {first['p99_ms']:.0f} ms; "
                    f"{run['heartbeats_per_stream']:.0f} heartbeats each; "
                    f"API RSS {before['api_replica']:.0f} -> {peak['api_replica']:.0f} MiB",
                    "0 failed",
                )
            )
            per_stream = ", ".join(
                f"{name.removesuffix('_replica')} {cpu / int(n) * 1000:.0f}"
                for name, cpu in sorted(run["cpu_s"].items(), key=lambda kv: -kv[1])
            )
            rows.append((f"  CPU ms per stream at {n}", per_stream, "report"))
        rows.append(("largest N held with 0 failures", str(r["largest_held"]), "report"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--phases", default="overhead,streams")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/api.json"))
    parser.add_argument("--rounds", type=int, default=30, help="Timed requests per path.")
    parser.add_argument("--warmup", type=int, default=3, help="Untimed requests per path first.")
    parser.add_argument(
        "--pause-s", type=float, default=0.3, help="Idle time after each overhead request."
    )
    parser.add_argument(
        "--streams", default="100,250,500,1000", help="Concurrent stream counts, tried in order."
    )
    parser.add_argument("--words", type=int, default=40, help="Tokens in each streamed answer.")
    parser.add_argument("--token-delay-s", type=float, default=0.25)
    parser.add_argument("--heartbeat-s", type=float, default=0.2)
    parser.add_argument(
        "--max-stretch",
        type=float,
        default=4.0,
        help="Stop growing N once streams take this many times a single stream's time.",
    )
    args = parser.parse_args()
    selected = args.phases.split(",")
    if "overhead" in selected:
        from agents.pool import weights

        weights.prepare(MODEL)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp)
        phases = {
            "overhead": lambda results: phase_overhead(
                results, db / "overhead.db", args.rounds, args.warmup, args.pause_s
            ),
            "streams": lambda results: phase_streams(
                results,
                db / "streams.db",
                [int(n) for n in args.streams.split(",")],
                args.words,
                args.token_delay_s,
                args.heartbeat_s,
                args.max_stretch,
            ),
        }
        with local_serve(port=SERVE_PORT):
            results = asyncio.run(run_phases(selected, phases, args.out))
    print(table(rows(results)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
