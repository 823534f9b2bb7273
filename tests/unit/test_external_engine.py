"""External engines (``source: openai+http://...``): the pool's HTTP client of an
OpenAI-compatible server, against scripted HTTP answers (httpx.MockTransport); the
real vLLM server is in tests/vllm/test_external_vllm.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from agents.errors import (
    ConfigError,
    EngineLostError,
    EngineUnavailableError,
    InvalidRequestError,
    PromptTooLongError,
    UnknownModelError,
)
from agents.pool.builder import build_pool_app
from agents.pool.external import ExternalEngine
from agents.pool.spec import ModelSpec, PoolSpec
from agents.pool.types import FinishChunk, GenerateRequest, Message, TextChunk

URL = "openai+http://engines.internal:8000/v1"


def model(**endpoint: Any) -> ModelSpec:
    return ModelSpec.model_validate(
        {"id": "m", "source": URL, "endpoint": {"connect_timeout_s": 1, **endpoint}}
    )


def request(**fields: Any) -> GenerateRequest:
    return GenerateRequest(
        model="m", messages=[Message(role="user", content="hi")], session_id="conv-1", **fields
    )


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events) + b"data: [DONE]\n\n"


def delta(text: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


DONE = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
USAGE = {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2}}


def engine(handler: Callable[[httpx.Request], httpx.Response], **endpoint: Any) -> ExternalEngine:
    return ExternalEngine(
        model(**endpoint), http=httpx.AsyncClient(transport=httpx.MockTransport(handler))
    )


async def test_a_streamed_reply_with_structured_output_and_the_session_header() -> None:
    seen: list[httpx.Request] = []

    def server(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        if req.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "served-name"}]})
        return httpx.Response(200, content=sse(delta('{"a"'), delta(": 1}"), DONE, USAGE))

    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    completion = await engine(server).complete(request(json_schema=schema))
    assert completion.text == '{"a": 1}' and completion.usage.prompt_tokens == 7
    models, chat = seen
    assert str(models.url) == "http://engines.internal:8000/v1/models"
    body = json.loads(chat.content)
    assert body["model"] == "served-name"  # the server's first model, asked once
    assert body["response_format"]["json_schema"]["schema"] == schema
    assert body["stream"] is True and "request_id" not in body  # not OpenAI's
    assert chat.headers["X-Session-ID"] == "conv-1" and chat.headers["X-Request-Id"]


async def test_a_whole_reply_when_the_request_does_not_stream() -> None:
    def server(req: httpx.Request) -> httpx.Response:
        message = {"role": "assistant", "content": "all at once"}
        return httpx.Response(
            200,
            json={
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 3},
            },
        )

    chunks = [c async for c in engine(server, served_model="x").generate(request(stream=False))]
    assert chunks[0] == TextChunk(text="all at once")
    assert isinstance(chunks[-1], FinishChunk) and chunks[-1].usage.completion_tokens == 3


async def test_a_server_that_is_down_is_tried_again_then_engine_unavailable() -> None:
    tries = 0

    def refused(req: httpx.Request) -> httpx.Response:
        nonlocal tries
        tries += 1
        raise httpx.ConnectError("connection refused", request=req)

    with pytest.raises(EngineUnavailableError, match="3 tries") as caught:
        await engine(refused, served_model="x", attempts=3).complete(request())
    assert tries == 3 and caught.value.code == "engine_unavailable"


async def test_a_busy_answer_is_tried_again_and_the_next_try_answers() -> None:
    answers = iter([httpx.Response(503), httpx.Response(502)])

    def server(req: httpx.Request) -> httpx.Response:
        return next(answers, None) or httpx.Response(200, content=sse(delta("ok"), DONE))

    assert (await engine(server, served_model="x").complete(request())).text == "ok"


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (
            400,
            {"error": {"message": "This model's maximum context length is 4096"}},
            PromptTooLongError,
        ),
        (400, {"object": "error", "message": "invalid schema", "code": 400}, InvalidRequestError),
        (404, {"error": {"message": "The model `x` does not exist."}}, UnknownModelError),
    ],
)
async def test_the_servers_errors_map_to_ours(
    status: int, body: dict[str, Any], error: type[Exception]
) -> None:
    failing = engine(lambda req: httpx.Response(status, json=body), served_model="x")
    with pytest.raises(error):
        await failing.complete(request())


async def test_a_reply_cut_off_midway_is_engine_lost_which_the_turn_retries() -> None:
    class Broken(httpx.AsyncByteStream):
        async def __aiter__(self) -> Any:
            yield sse(delta("half"))[:-15]
            raise httpx.ReadError("connection reset")

    chunks: list[Any] = []
    with pytest.raises(EngineLostError) as caught:
        async for chunk in engine(
            lambda r: httpx.Response(200, stream=Broken()), served_model="x"
        ).generate(request()):
            chunks.append(chunk)
    assert caught.value.retryable
    assert chunks == [TextChunk(text="half")]  # what came, came


def test_an_external_model_is_one_aggregated_server() -> None:
    assert model().external and model().endpoint is not None
    with pytest.raises(ValueError, match="mode aggregated"):
        ModelSpec.model_validate(
            {"id": "m", "source": URL, "mode": "disaggregated", "prefill": {"replicas": 1}}
        )
    with pytest.raises(ValueError, match="only for an external engine"):
        ModelSpec.model_validate({"id": "m", "source": "builtin:x", "endpoint": {}})
    with pytest.raises(ConfigError, match="external engine already serves OpenAI"):
        build_pool_app(PoolSpec(models=[model()]))


def test_an_app_file_keeps_the_url_and_prepares_nothing(tmp_path: Path) -> None:
    from agents.config import load_app_config

    app = tmp_path / "app.yaml"
    app.write_text(
        f"""
pool:
  models:
    - id: m
      source: {URL}
      endpoint: {{served_model: smollm2, session_header: null}}
agents:
  - {{name: a, model: m}}
store: {{backend: sqlite, path: ./c.db}}
"""
    )
    config = load_app_config(app)
    assert config.pool.models[0].source == URL  # not made a path
    assert config.pool.models[0].endpoint.session_header is None  # type: ignore[union-attr]


async def test_agents_on_an_external_engine_hand_off_call_a_tool_and_outlive_it() -> None:
    """A router's guided hand-off, a tool call and an answer, every step over HTTP to
    an OpenAI-compatible server (the scripted one ``agents.testing`` ships, which checks
    each reply against the request's ``response_format``); the server gone, a turn ends
    with ``engine_unavailable``; the server back on its port, the conversation goes on."""
    from agents.events import DoneEvent, ErrorEvent, HandoffEvent, ToolCallEvent
    from agents.spec import AgentSpec
    from agents.testing import LocalApp, ScriptedGenerator, action, openai_server
    from tests.conftest import free_port
    from tests.fixtures.local_server import serving
    from tools.testing import FunctionTools

    schema = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}
    script = ScriptedGenerator(
        [
            {
                "system": "You are router",
                "json_reply": action("handoff", agent="math"),
            },
            {"match": r"\[add result\] 5", "json_reply": action("answer", text="It is 5.")},
            {
                "system": "You are math",
                "json_reply": action("tool", tool="add", arguments={"a": 2, "b": 3}),
            },
        ]
    )
    port = free_port()
    source = f"openai+http://127.0.0.1:{port}/v1"
    engine = ExternalEngine(
        ModelSpec.model_validate(
            {"id": "m", "source": source, "endpoint": {"served_model": "scripted", "attempts": 2}}
        )
    )
    specs = [
        AgentSpec(
            name="router",
            model="m",
            instructions="You are router.",
            handoffs=["math"],
            can_answer=False,
        ),
        AgentSpec(name="math", model="m", instructions="You are math.", tools=["add"]),
    ]
    app = LocalApp(
        specs, generator=engine, tools=FunctionTools({"add": (lambda a, b: a + b, schema)})
    )
    try:
        async with serving(openai_server(script), port=port):
            events = await app.send("add two and three", conversation_id="c1")
        kinds = [e.type for e in events if e.type != "token"]
        assert kinds == ["message", "handoff", "tool_call", "tool_result", "answer", "done"], events
        assert next(e for e in events if isinstance(e, HandoffEvent)).to_agent == "math"
        assert next(e for e in events if isinstance(e, ToolCallEvent)).name == "add"
        assert all(r.json_schema is not None for r in script.requests)  # guided, every step

        down = await app.send("again", conversation_id="c1")  # nothing listens on the port
        [error] = [e for e in down if isinstance(e, ErrorEvent)]
        assert error.code == "engine_unavailable"
        assert isinstance(down[-1], DoneEvent) and down[-1].status == "error"

        async with serving(openai_server(script), port=port):
            back = await app.send("add two and three", conversation_id="c1")
        assert isinstance(back[-1], DoneEvent) and back[-1].status == "ok", back
    finally:
        await engine.aclose()
