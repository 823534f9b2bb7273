"""Conversation history as langchain-core messages.

The store keeps events; the history an agent prompts with is derived from them:
user messages become ``HumanMessage``, tool calls, hand-offs and asks become
``AIMessage`` tool calls answered by ``ToolMessage``, answers become ``AIMessage``.
Messages cross DeploymentHandles as ``messages_to_dict`` dicts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    ToolMessage,
    messages_from_dict,
    messages_to_dict,
    trim_messages,
)
from langchain_core.messages.utils import count_tokens_approximately

from agents.events import (
    AnswerEvent,
    AskEvent,
    DoneEvent,
    Event,
    HandoffEvent,
    MessageEvent,
    ToolCallEvent,
    ToolResultEvent,
)
from agents.pool.types import Message, ToolCall
from agents.spec import MemoryPolicy

__all__ = [
    "apply_memory",
    "call_message",
    "dump_messages",
    "load_messages",
    "messages_from_events",
    "result_message",
    "to_pool_messages",
]

HANDOFF = "handoff"
ASK = "ask"


def messages_from_events(events: Iterable[Event]) -> list[BaseMessage]:
    """The history that stored events describe, in order; a rolled-back turn's
    events (its done event says so) are left out."""
    events = list(events)
    rolled_back = {e.turn_id for e in events if isinstance(e, DoneEvent) and e.rolled_back}
    out: list[BaseMessage] = []
    pending: dict[str, str] = {}  # call id -> tool name, for calls without a result yet
    for event in events:
        if event.turn_id in rolled_back and event.turn_id is not None:
            continue
        if isinstance(event, MessageEvent):
            # Calls a turn left unanswered (a deadline, a superseded approval) get an
            # error result, as chat templates want every call answered.
            for call_id, name in pending.items():
                out.append(_unanswered(call_id, name))
            pending.clear()
            out.append(HumanMessage(event.content))
        elif isinstance(event, ToolCallEvent):
            out.append(call_message(event.agent, event.call_id, event.name, event.arguments))
            pending[event.call_id] = event.name
        elif isinstance(event, ToolResultEvent):
            pending.pop(event.call_id, None)
            out.append(result_message(event))
        elif isinstance(event, HandoffEvent):
            call_id = f"handoff-{event.seq}"
            args = {"agent": event.to_agent, "message": event.message}
            out.append(call_message(event.agent, call_id, HANDOFF, args))
            out.append(
                ToolMessage(f"Handed off to {event.to_agent}.", tool_call_id=call_id, name=HANDOFF)
            )
        elif isinstance(event, AskEvent):
            args = {"agent": event.to_agent, "question": event.question}
            out.append(call_message(event.agent, event.call_id, ASK, args))
            pending[event.call_id] = ASK
        elif isinstance(event, AnswerEvent):
            extra = {} if event.output is None else {"output": event.output}
            out.append(AIMessage(event.text, name=event.agent, additional_kwargs=extra))
    return out


def _unanswered(call_id: str, name: str) -> ToolMessage:
    text = "no result: the turn ended before this call finished"
    return ToolMessage(text, tool_call_id=call_id, name=name, status="error")


def call_message(agent: str | None, call_id: str, name: str, args: dict[str, Any]) -> AIMessage:
    """The AI message of one tool call (hand-offs and asks are calls too)."""
    return AIMessage("", name=agent, tool_calls=[{"id": call_id, "name": name, "args": args}])


def result_message(event: ToolResultEvent) -> ToolMessage:
    """The tool message of a tool result."""
    status = "error" if event.is_error else "success"
    return ToolMessage(event.content, tool_call_id=event.call_id, name=event.name, status=status)


def apply_memory(history: Sequence[BaseMessage], policy: MemoryPolicy) -> list[BaseMessage]:
    """The part of ``history`` the policy puts in the prompt.

    Trimming keeps the newest messages and starts on a user message, so a tool result
    never appears without the call it answers.
    """
    if policy.mode == "all":
        return list(history)
    counter: Callable[[list[BaseMessage]], int]
    if policy.mode == "last_messages":
        budget, counter = policy.last_messages, len
    else:
        budget, counter = policy.token_budget, count_tokens_approximately
    trimmed = trim_messages(
        list(history),
        max_tokens=budget,
        token_counter=counter,
        strategy="last",
        start_on="human",
        allow_partial=False,
    )
    if not any(isinstance(m, HumanMessage) for m in trimmed):
        # The current exchange alone is over the budget: it still goes in whole, from
        # the user's message on, or the model would not know what it is doing.
        last = max((i for i, m in enumerate(history) if isinstance(m, HumanMessage)), default=0)
        return list(history[last:])
    return trimmed


def to_pool_messages(
    history: Sequence[BaseMessage], *, native: bool, plain: bool = False, decide: bool = False
) -> list[Message]:
    """Chat messages for the pool.

    ``native``: tool calls and results in OpenAI's tool format. Otherwise (schema mode)
    the model's own steps appear as the JSON actions it wrote, and tool results as
    user messages, which every chat template accepts. ``plain`` (an agent that only
    answers, in text): a plain chat; answers are text, calls are left out, tool results
    stay as user messages and a hand-off's note is a user message where it was written
    (a router's hand-off has none: the chat ends on the user's message). Every turn
    renders the same history the same way, so the prefix cache keeps serving it.
    ``decide``: steps appear in ``decide_then_act``'s format (``{"next": ...}``).
    """
    out: list[Message] = []
    for message in history:
        if isinstance(message, HumanMessage):
            out.append(Message(role="user", content=_text(message)))
        elif isinstance(message, AIMessage):
            if native:
                calls = [
                    ToolCall(id=c["id"] or "", name=c["name"], arguments=json.dumps(c["args"]))
                    for c in message.tool_calls
                ]
                out.append(
                    Message(role="assistant", content=_text(message), tool_calls=calls or None)
                )
            elif plain:
                out.extend(_plain(message))
            else:
                out.append(Message(role="assistant", content=action_text(message, decide=decide)))
        elif isinstance(message, ToolMessage):
            if native:
                out.append(
                    Message(role="tool", content=_text(message), tool_call_id=message.tool_call_id)
                )
            elif not (plain and message.name == HANDOFF):
                out.append(
                    Message(role="user", content=f"[{message.name} result] {_text(message)}")
                )
        else:
            out.append(Message(role="system", content=_text(message)))
    return out


def _plain(message: AIMessage) -> list[Message]:
    if not message.tool_calls:
        output = message.additional_kwargs.get("output")
        text = json.dumps(output) if output is not None else _text(message)
        return [Message(role="assistant", content=text)]
    return [
        Message(role="user", content=f"[note from {message.name}] {call['args']['message']}")
        for call in message.tool_calls
        if call["name"] == HANDOFF and call["args"].get("message")
    ]


def action_text(message: AIMessage, *, decide: bool = False) -> str:
    """An AI message as the JSON action of schema mode (``decide``: as a
    ``decide_then_act`` step writes it)."""
    if decide:
        return _decided_text(message)
    if not message.tool_calls:
        output = message.additional_kwargs.get("output")
        if output is not None:
            return json.dumps({"action": "answer", "output": output})
        return json.dumps({"action": "answer", "text": _text(message)})
    call = message.tool_calls[0]
    if call["name"] == HANDOFF:
        return json.dumps({"action": "handoff", **call["args"]})
    if call["name"] == ASK:
        return json.dumps({"action": "ask", **call["args"]})
    return json.dumps({"action": "tool", "tool": call["name"], "arguments": call["args"]})


def _decided_text(message: AIMessage) -> str:
    if not message.tool_calls:
        output = message.additional_kwargs.get("output")
        body = {"output": output} if output is not None else {"text": _text(message)}
        return json.dumps({"next": "answer", **body})
    call = message.tool_calls[0]
    args = call["args"]
    if call["name"] == HANDOFF:
        note = {"message": args["message"]} if args.get("message") else {}
        return json.dumps({"next": args["agent"], **note})
    if call["name"] == ASK:
        return json.dumps({"next": f"ask_{args['agent']}", "question": args["question"]})
    return json.dumps({"next": call["name"], "arguments": args})


def dump_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """Messages as plain dicts, to cross a DeploymentHandle."""
    return messages_to_dict(messages)


def load_messages(data: Sequence[dict[str, Any]]) -> list[BaseMessage]:
    """The inverse of ``dump_messages``."""
    return messages_from_dict(data)


def _text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(part if isinstance(part, str) else str(part.get("text", "")) for part in content)
