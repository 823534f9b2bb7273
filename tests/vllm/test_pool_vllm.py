"""The real default model on vLLM (CPU), one app for the module (an engine start costs
~70 s on a CPU without AVX-512): the pool's two modes, KV transfer, idle CPU, streaming,
structured output, the prefix cache, errors and engine death; and agents on the same
engines through the HTTP API and the SDK (a triage agent hands off to a specialist, a
client that leaves stops vLLM's request).

Routing and affinity over several replicas are the scripted tier's (tests/serve/
test_pool_scripted.py): one aggregated replica here, whose prefix cache is the point."""

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

from agents.api.spec import ApiKey, ApiSpec, hash_key
from agents.builder import build_agents_app
from agents.client import Client
from agents.errors import (
    EngineError,
    InvalidRequestError,
    PromptTooLongError,
    UnknownModelError,
)
from agents.events import AnswerEvent, DoneEvent, ErrorEvent, Event, HandoffEvent, TokenEvent
from agents.pool.client import PoolClient
from agents.pool.spec import PoolSpec
from agents.pool.stats import parse_engine_stats
from agents.pool.types import GenerateRequest, Message, SamplingParams, TextChunk
from agents.spec import AgentSpec
from agents.store import StoreSpec

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(1200)]

APP = "real-model"
MODEL = "builtin:smollm2-135m-instruct"
ENGINE = {"max_model_len": 4096, "kv_cache_gib": 1}
SPEC = {
    "models": [
        {
            "id": "agg",
            "source": MODEL,
            "decode": {"replicas": 1, "cpu_bind": "0-1"},
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
AGENTS = [
    {
        "name": "triage",
        "model": "pd",
        "instructions": "You route customer messages to the right specialist.",
        "handoffs": ["billing"],
        "can_answer": False,
        "sampling": {"temperature": 0, "max_tokens": 128},
    },
    {
        "name": "billing",
        "model": "agg",
        "description": "answers questions about invoices, payments and refunds",
        "instructions": "You are a billing specialist. Answer briefly and politely.",
        "sampling": {"temperature": 0, "max_tokens": 96},
    },
]
KEY = "vllm-test-key"
GREEDY = SamplingParams(temperature=0, max_tokens=24)
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
def app(ray_cluster: dict[str, int], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The agents and both pool models, served once; yields the API's URL."""
    from ray import serve

    db = tmp_path_factory.mktemp("real-model") / "conversations.db"
    built = build_agents_app(
        [AgentSpec.model_validate(a) for a in AGENTS],
        PoolSpec.model_validate(SPEC),
        store=StoreSpec(backend="sqlite", path=str(db)),
        api=ApiSpec(keys=[ApiKey(tenant="t", sha256=hash_key(KEY))], keys_env=None),
    )
    try:
        serve.run(built, name=APP, route_prefix="/")
        yield f"http://127.0.0.1:{ray_cluster['http']}"
    finally:
        serve.delete(APP)


@pytest.fixture(scope="module")
def pool(app: str) -> PoolClient:
    return PoolClient.connect(["agg", "pd"], app_name=APP)


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
    prompt = long_document(125)  # ~2,250 tokens
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
    assert len(groups) >= 3  # agg, pd's prefill and pd's decode
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

    count = 24 if model == "agg" else 8
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


def test_sdk_talks_to_agents_on_the_real_model(app: str) -> None:
    """Triage hands off to billing, who answers; streamed, then sent, through the SDK."""
    with Client(app, KEY, timeout=300) as client:
        conversation = client.conversations.create(agent="triage")
        with conversation.stream("I was charged twice for my order. Can I get a refund?") as stream:
            events: list[Event] = list(stream)
        assert not [e for e in events if isinstance(e, ErrorEvent)], events
        [handoff] = [e for e in events if isinstance(e, HandoffEvent)]
        assert (handoff.agent, handoff.to_agent) == ("triage", "billing")
        [answer] = [e for e in events if isinstance(e, AnswerEvent)]
        assert answer.agent == "billing" and answer.text.strip()
        # The answer streamed token by token as it was generated (billing only answers:
        # plain text; an answer cut for repeating itself keeps the streamed start).
        tokens = [e.text for e in events if isinstance(e, TokenEvent)]
        assert len(tokens) > 3 and "".join(tokens).startswith(answer.text)
        done = events[-1]
        assert isinstance(done, DoneEvent) and done.status == "ok"
        assert done.active_agent == "billing" and done.usage.steps == 2
        assert done.usage.completion_tokens > 0
        assert conversation.agent == "billing"

        # A follow-up goes straight to the specialist, who sees the whole history.
        result = conversation.send("Thanks! How long will it take?")
        assert result.status == "ok" and result.agent == "billing"
        assert result.answer is not None and result.answer.strip()
        assert [e.agent for e in result.events if isinstance(e, AnswerEvent)] == ["billing"]

        stored = [e.type for e in conversation.messages()]
        assert stored == ["message", "handoff", "answer", "done", "message", "answer", "done"]


def test_a_client_that_leaves_mid_answer_stops_vllms_request(app: str) -> None:
    """Cancellation reaches the engine: vLLM's unfinished requests drop within 2 s."""
    from ray import serve

    with Client(app, KEY, timeout=300) as client:
        conversation = client.conversations.create(agent="billing")
        engine = serve.get_deployment_handle("pool-agg", APP).options(session_id=conversation.id)
        question = "Explain in detail, step by step, how refunds for double charges work."
        with conversation.stream(question) as stream:
            tokens = 0
            for event in stream:
                tokens += isinstance(event, TokenEvent)
                if tokens == 3:
                    break
            assert engine.running_requests.remote().result() == 1  # vLLM is generating
        left = time.monotonic()
        while (running := engine.running_requests.remote().result()) and (
            time.monotonic() - left < 2.0
        ):
            time.sleep(0.05)
        stopped_after = time.monotonic() - left
        # The runner stores the turn's end once the cancelled generation has returned:
        # just after vLLM's request ends (CI once read the store in between).
        while (stored := [e.type for e in conversation.messages()])[-1] != "done" and (
            time.monotonic() - left < 10.0
        ):
            time.sleep(0.1)
    print(f"\nvLLM's request ended {stopped_after:.2f} s after the client left")
    assert running == 0
    assert stored == ["message", "error", "done"]


# Last: it kills an engine of the module's app.
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
