"""The pool with the real default model on vLLM (CPU): both modes, KV transfer, idle
CPU, streaming, structured output, session affinity, errors, engine death."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator

import httpx
import jsonschema
import psutil
import pytest

from agents.errors import (
    EngineError,
    InvalidRequestError,
    PromptTooLongError,
    UnknownModelError,
)
from agents.pool.builder import build_pool_app
from agents.pool.client import PoolClient
from agents.pool.spec import PoolSpec
from agents.pool.stats import parse_engine_stats
from agents.pool.types import GenerateRequest, Message, SamplingParams, TextChunk

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(1200)]

APP = "pool-vllm"
MODEL = "builtin:smollm2-135m-instruct"
ENGINE = {"max_model_len": 4096, "kv_cache_gib": 1}
SPEC = {
    "models": [
        {
            "id": "agg",
            "source": MODEL,
            "decode": {"replicas": 2, "cpu_bind": ["0", "1"]},
            "engine": ENGINE,
        },
        {
            # Every prompt goes through the prefill engine (no conditional shortcut),
            # so each test below exercises the KV transfer.
            "id": "pd",
            "source": MODEL,
            "mode": "disaggregated",
            "prefill": {"cpu_bind": "0"},
            "decode": {"cpu_bind": "1"},
            "engine": ENGINE,
            "min_remote_prefill_tokens": 0,
        },
    ]
}
GREEDY = SamplingParams(temperature=0, max_tokens=32)
TOOL_CALL = {
    "type": "object",
    "properties": {
        "tool": {"type": "string", "enum": ["get_weather", "search", "calculator"]},
        "arguments": {
            "type": "object",
            "properties": {"query": {"type": "string", "maxLength": 24}},
            "required": ["query"],
            "additionalProperties": False,
        },
    },
    "required": ["tool", "arguments"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def pool(ray_cluster: dict[str, int]) -> Iterator[PoolClient]:
    from ray import serve

    spec = PoolSpec.model_validate(SPEC)
    try:
        serve.run(build_pool_app(spec), name=APP, route_prefix=f"/{APP}")
        yield PoolClient.connect(["agg", "pd"], app_name=APP)
    finally:
        serve.delete(APP)


def user(text: str, model: str = "agg", **kwargs: object) -> GenerateRequest:
    return GenerateRequest(
        model=model, messages=[Message(role="user", content=text)], sampling=GREEDY, **kwargs
    )


def long_document(n: int, seed: int = 0) -> str:
    facts = [f"Fact {seed}-{i}: item {i} weighs {(i * 7 + seed) % 97} grams." for i in range(n)]
    return " ".join(facts) + "\nWhich item is mentioned first? Answer briefly."


def engine_groups() -> dict[int, list[psutil.Process]]:
    """vLLM engine processes, grouped by their EngineCore."""
    groups: dict[int, list[psutil.Process]] = {}
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] == "VLLM::EngineCore":
            groups[proc.pid] = [proc, *proc.children(recursive=True)]
    return groups


async def metrics(ports: dict[str, int]) -> dict[str, object]:
    async with httpx.AsyncClient() as client:
        reply = await client.get(f"http://127.0.0.1:{ports['metrics']}/metrics", timeout=30)
    return dict(parse_engine_stats(reply.text))


async def test_both_modes_answer_paris_with_identical_greedy_outputs(pool: PoolClient) -> None:
    prompts = [
        "What is the capital of France?",
        "Name three primary colors.",
        "Write one sentence about the sea.",
    ]
    for prompt in prompts:
        agg = await pool.complete(user(prompt, "agg"))
        pd = await pool.complete(user(prompt, "pd"))
        assert pd.route is not None and pd.route.disaggregated
        assert agg.text == pd.text, prompt
    paris = await pool.complete(user(prompts[0], "pd"))
    assert "Paris" in paris.text


async def test_long_prompt_moves_through_kv_transfer(
    pool: PoolClient, ray_cluster: dict[str, int]
) -> None:
    prompt = long_document(200)
    before = await metrics(ray_cluster)
    pd = await pool.complete(user(prompt, "pd", session_id="kv-transfer"))
    assert pd.usage.prompt_tokens >= 2000
    assert pd.route is not None and pd.route.disaggregated
    decode = pd.route.decode_replica
    # Ray exports engine metrics every few seconds: wait for this request's counts.
    received = 0.0
    for _ in range(60):
        after = await metrics(ray_cluster)
        old = before.get(decode)
        new = after.get(decode)
        if new is not None:
            received = new.kv_transfer_tokens - (old.kv_transfer_tokens if old else 0.0)  # type: ignore[attr-defined]
            if received >= 0.95 * pd.usage.prompt_tokens:
                break
        await asyncio.sleep(2)
    assert received >= 0.95 * pd.usage.prompt_tokens, (received, pd.usage.prompt_tokens)
    agg = await pool.complete(user(prompt, "agg"))
    assert agg.text == pd.text


async def test_idle_engines_do_not_burn_cpu(pool: PoolClient) -> None:
    await pool.complete(user("warm up", "pd"))
    groups = engine_groups()
    assert len(groups) >= 4
    # Idle means no request for a while: let the last one's tail (stats, frees) pass.
    await asyncio.sleep(5)
    for procs in groups.values():
        for proc in procs:
            proc.cpu_percent(None)
    await asyncio.sleep(5)
    for pid, procs in groups.items():
        used = sum(proc.cpu_percent(None) for proc in procs)
        assert used < 10.0, f"engine {pid} uses {used:.0f}% of a core while idle"


async def test_first_chunk_arrives_before_the_last_token(pool: PoolClient) -> None:
    request = user("Count from one to forty in words.", "agg")
    request.sampling = SamplingParams(temperature=0, max_tokens=64)
    started = time.monotonic()
    arrivals = []
    async for chunk in pool.generate(request):
        if isinstance(chunk, TextChunk):
            arrivals.append(time.monotonic() - started)
    assert len(arrivals) > 2
    assert arrivals[0] < arrivals[-1] / 2


@pytest.mark.parametrize("model", ["agg", "pd"])
async def test_structured_output_always_parses(pool: PoolClient, model: str) -> None:
    asks = [
        "What's the weather in Paris?",
        "Look up the tallest mountain.",
        "What is 12 times 7?",
        "Find news about Mars.",
        "Is it raining in Oslo?",
    ]

    async def one(n: int) -> dict[str, object]:
        request = user(asks[n % len(asks)] + " Reply with a tool call.", model)
        request.json_schema = TOOL_CALL
        # The schema bounds every string, so 96 tokens always fit a whole JSON value.
        request.sampling = SamplingParams(temperature=0.8, max_tokens=96, seed=n)
        done = await pool.complete(request)
        value = json.loads(done.text)
        jsonschema.validate(value, TOOL_CALL)
        return dict(value)

    count = 50 if model == "agg" else 10
    results = await asyncio.gather(*(one(n) for n in range(count)))
    assert len(results) == count


async def test_session_affinity_serves_history_from_prefix_cache(pool: PoolClient) -> None:
    system = Message(role="system", content=long_document(60, seed=1))
    history = [system]
    replicas = set()
    previous_tokens = 0
    for turn in range(10):
        history.append(Message(role="user", content=f"Question {turn}: which item weighs most?"))
        request = GenerateRequest(
            model="agg",
            messages=history,
            session_id="affinity",
            sampling=SamplingParams(temperature=0, max_tokens=12),
        )
        done = await pool.complete(request)
        assert done.route is not None
        replicas.add(done.route.decode_replica)
        if turn > 0:
            assert done.usage.cached_tokens >= 0.8 * previous_tokens, (turn, done.usage)
        previous_tokens = done.usage.prompt_tokens + done.usage.completion_tokens
        history.append(Message(role="assistant", content=done.text))
    assert len(replicas) == 1


@pytest.mark.parametrize(
    ("request_", "error", "message"),
    [
        (user("hi", "no-such-model"), UnknownModelError, "unknown model"),
        (user(long_document(600), "agg"), PromptTooLongError, "maximum context length"),
        (user(long_document(600), "pd"), PromptTooLongError, "maximum context length"),
        (
            user("hi").model_copy(update={"json_schema": {"type": "object", "required": 5}}),
            InvalidRequestError,
            "invalid JSON schema",
        ),
        (
            user("hi").model_copy(update={"sampling": SamplingParams(max_tokens=-3)}),
            InvalidRequestError,
            "max_tokens must be at least 1",
        ),
    ],
)
async def test_bad_input_gives_typed_errors(
    pool: PoolClient, request_: GenerateRequest, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        await asyncio.wait_for(pool.complete(request_), 120)
    model = request_.model if request_.model in ("agg", "pd") else "agg"
    assert "Paris" in (await pool.complete(user("What is the capital of France?", model))).text


async def test_killed_engine_errors_and_its_replica_is_replaced(pool: PoolClient) -> None:
    before = await pool.complete(user("What is the capital of France?", "pd"))
    assert before.route is not None
    replica = re.compile(rf"ServeReplica:{APP}:pool-pd(?!-)")
    decode_cores = [
        core
        for core, procs in engine_groups().items()
        if replica.search(" ".join(procs[0].parent().cmdline()))
    ]
    assert len(decode_cores) == 1, "cannot find the pd decode engine"
    victim = psutil.Process(decode_cores[0])
    request = user("Write a long story about a lighthouse.", "pd")
    request.sampling = SamplingParams(temperature=0, max_tokens=400)

    async def kill_soon() -> None:
        await asyncio.sleep(1.0)
        victim.kill()

    killer = asyncio.create_task(kill_soon())
    with pytest.raises(EngineError):
        await asyncio.wait_for(pool.complete(request), 120)
    await killer
    deadline = time.monotonic() + 400
    while True:
        try:
            after = await asyncio.wait_for(pool.complete(user("What is 2 + 2?", "pd")), 120)
            break
        except EngineError:
            assert time.monotonic() < deadline, "the dead engine's replica was never replaced"
            await asyncio.sleep(5)
    assert after.route is not None and after.route.decode_replica != before.route.decode_replica
