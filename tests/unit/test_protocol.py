from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace

import pytest

from agents.errors import (
    EngineError,
    InvalidRequestError,
    PromptTooLongError,
    UnknownModelError,
)
from agents.pool._protocol import (
    chat_request_kwargs,
    check_request,
    error_from_response,
    joined,
    parse_stream,
)
from agents.pool.types import (
    Chunk,
    FinishChunk,
    GenerateRequest,
    Message,
    RouteInfo,
    SamplingParams,
    TextChunk,
    ToolCall,
    ToolCallChunk,
    Usage,
    collect,
)


def request(**kwargs: object) -> GenerateRequest:
    return GenerateRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], **kwargs}
    )


async def items(*values: object):  # type: ignore[no-untyped-def]
    for value in values:
        yield value


async def chunks(*values: object) -> list[Chunk]:
    return [c async for batch in parse_stream(items(*values)) for c in batch]


async def test_parse_text_usage_and_finish() -> None:
    out = await chunks(
        ['data: {"choices": [{"delta": {"content": "Hel"}}]}\n\n'],
        [
            'data: {"choices": [{"delta": {"content": "lo"}, "finish_reason": "stop"}]}\n\n',
            'data: {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2,'
            ' "prompt_tokens_details": {"cached_tokens": 3}}}\n\n',
            "data: [DONE]\n\n",
        ],
    )
    done = collect(out)
    assert done.text == "Hello"
    assert done.finish_reason == "stop"
    assert (done.usage.prompt_tokens, done.usage.completion_tokens, done.usage.cached_tokens) == (
        5,
        2,
        3,
    )


async def test_parse_tool_call_pieces() -> None:
    first = (
        'data: {"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "c1", '
        '"function": {"name": "f", "arguments": "{\\"a\\""}}]}}]}\n\n'
    )
    second = (
        'data: {"choices": [{"delta": {"tool_calls": [{"index": 0, '
        '"function": {"arguments": ": 1}"}}]}, "finish_reason": "tool_calls"}]}\n\n'
    )
    out = await chunks([first, second])
    assert isinstance(out[0], ToolCallChunk)
    done = collect(out)
    assert done.tool_calls == [ToolCall(id="c1", name="f", arguments='{"a": 1}')]
    assert done.finish_reason == "tool_calls"


async def test_error_before_and_during_the_stream() -> None:
    class Info:
        message = "The model `x` does not exist."
        code = 404

    class Response:
        error = Info()

    with pytest.raises(UnknownModelError, match="does not exist"):
        await chunks([Response()])
    with pytest.raises(EngineError, match="boom"):
        await chunks(['data: {"error": {"message": "boom", "code": 500}}\n\n'])


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        ({"message": "The model `x` does not exist.", "code": 404}, UnknownModelError),
        (
            {"message": "This model's maximum context length is 4096 tokens.", "code": 400},
            PromptTooLongError,
        ),
        ({"message": "max_tokens must be at least 1", "code": 400}, InvalidRequestError),
        ({"message": "engine died", "code": 500}, EngineError),
    ],
)
def test_error_mapping(error: dict[str, object], kind: type[Exception]) -> None:
    assert type(error_from_response(error)) is kind


def test_check_request() -> None:
    with pytest.raises(InvalidRequestError, match="max_tokens must be at least 1"):
        check_request(request(sampling={"max_tokens": 0}))
    with pytest.raises(InvalidRequestError, match="messages must not be empty"):
        check_request(request(messages=[]))
    with pytest.raises(InvalidRequestError, match="invalid JSON schema"):
        check_request(request(json_schema={"type": "object", "properties": 3}))
    check_request(request(json_schema={"type": "object"}))


def test_chat_request_kwargs() -> None:
    req = GenerateRequest(
        model="m",
        messages=[
            Message(role="user", content="hi"),
            Message(role="assistant", tool_calls=[ToolCall(id="c", name="f", arguments="{}")]),
            Message(role="tool", tool_call_id="c", content="42"),
        ],
        sampling=SamplingParams(temperature=0, max_tokens=5, stop=["\n"], seed=1),
        json_schema={"type": "object"},
        tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
        request_id="r1",
    )
    body = chat_request_kwargs(req)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["messages"][1]["tool_calls"] == [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    ]
    assert body["response_format"]["json_schema"]["schema"] == {"type": "object"}
    assert body["tool_choice"] == "auto"
    assert (body["stop"], body["seed"], body["request_id"]) == (["\n"], 1, "r1")


def test_collect_needs_a_finish() -> None:
    with pytest.raises(ValueError, match="without a finish chunk"):
        collect([TextChunk(text="x")])
    done = collect(
        [
            TextChunk(text="x"),
            FinishChunk(
                finish_reason="stop",
                usage={"prompt_tokens": 1},  # type: ignore[arg-type]
                route=RouteInfo(disaggregated=True),
            ),
        ]
    )
    assert done.route is not None and done.route.disaggregated


async def test_joined_joins_adjacent_text_of_a_batch() -> None:
    async def batches() -> AsyncIterator[list[Chunk]]:
        yield [TextChunk(text="a"), TextChunk(text="b")]
        yield [ToolCallChunk(index=0, name="f", arguments="{"), TextChunk(text="c")]
        yield [TextChunk(text="d"), FinishChunk(finish_reason="stop", usage=Usage())]

    sent = [batch async for batch in joined(batches())]
    assert [[type(c).__name__ for c in b] for b in sent] == [
        ["TextChunk"],
        ["ToolCallChunk", "TextChunk"],
        ["TextChunk", "FinishChunk"],
    ]
    assert [c.text for b in sent for c in b if isinstance(c, TextChunk)] == ["ab", "c", "d"]


async def test_parse_a_reply_that_was_not_streamed() -> None:
    call = SimpleNamespace(id="call_1", function=SimpleNamespace(name="add", arguments='{"a": 1}'))
    message = SimpleNamespace(content="Hello", tool_calls=[call])
    usage = {"prompt_tokens": 7, "completion_tokens": 3, "prompt_tokens_details": None}
    response = SimpleNamespace(
        choices=[SimpleNamespace(message=message, finish_reason="tool_calls")], usage=usage
    )
    done = collect(await chunks(response))
    assert done.text == "Hello" and done.finish_reason == "tool_calls"
    assert [(c.id, c.name, c.arguments) for c in done.tool_calls] == [("call_1", "add", '{"a": 1}')]
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (7, 3)
    # Streamed unless asked otherwise; a reply not streamed asks for no stream options.
    assert chat_request_kwargs(request())["stream_options"] == {"include_usage": True}
    body = chat_request_kwargs(request(stream=False))
    assert body["stream"] is False and "stream_options" not in body
