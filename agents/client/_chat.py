"""``ray-agents chat AGENT``: talk to an agent of a running application in a terminal.

The answer streams as it is generated; tool calls, results, hand-offs and questions
to other agents show on their own indented lines. A tool call that needs approval is
put to the user (``[y/N]``) once the turn pauses, and the resumed turn streams too.
Ctrl-D, Ctrl-C or ``/quit`` leave.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from agents.client._exceptions import APIConnectionError, APIError, AuthenticationError
from agents.client._sync import Client, ConversationHandle, EventStream
from agents.events import (
    AnswerEvent,
    ApprovalRequiredEvent,
    AskEvent,
    DoneEvent,
    ErrorEvent,
    HandoffEvent,
    TokenEvent,
    ToolCallEvent,
    ToolResultEvent,
)

__all__ = ["run_chat"]

PROMPT = "you> "
QUIT = frozenset({"/quit", "/exit"})
SHOWN = 200
"""How many characters of a tool's arguments or result are shown."""


def run_chat(
    agent: str,
    *,
    url: str,
    key: str | None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    client: Client | None = None,
) -> int:
    """Chat with ``agent`` at ``url`` until EOF, Ctrl-C or ``/quit``; the exit status.

    Returns 1 when the conversation cannot be started (server unreachable, wrong
    key, unknown agent), else 0; errors of single turns are printed and the chat
    goes on. ``client`` replaces the one built from ``url`` and ``key`` (tests).
    """
    out = stdout or sys.stdout
    owned = client is None
    client = client or Client(url, key)
    try:
        return _Chat(client, stdin or sys.stdin, out).run(agent)
    except (EOFError, KeyboardInterrupt):
        out.write("\n")
        return 0
    finally:
        if owned:
            client.close()


class _Chat:
    def __init__(self, client: Client, stdin: TextIO, stdout: TextIO) -> None:
        self._client = client
        self._in = stdin
        self._out = stdout
        self._col0 = True
        self._streamed = False  # tokens shown since the last answer

    def run(self, agent: str) -> int:
        try:
            conv = self._client.conversations.create(agent)
        except APIError as exc:
            self._line(f"error: {self._describe(exc)}")
            return 1
        self._line(f"Talking to {conv.agent} (conversation {conv.id}). Ctrl-D or /quit to leave.")
        while True:
            text = self._read(PROMPT)
            if text in QUIT:
                return 0
            if text:
                try:
                    self._turn(conv, text)
                except APIError as exc:
                    self._line(f"error: {self._describe(exc)}")

    def _turn(self, conv: ConversationHandle, text: str) -> None:
        before = conv.agent
        pending = self._show(conv, conv.stream(text))
        while pending:
            call = pending.pop(0)
            reply = self._read(f"  approve {call.name}({_args(call.arguments)})? [y/N] ")
            decide = conv.stream_approve if reply.lower() in ("y", "yes") else conv.stream_reject
            pending += self._show(conv, decide(call.call_id))
        if conv.agent != before:
            self._line(f"(now talking to {conv.agent})")

    def _show(self, conv: ConversationHandle, events: EventStream) -> list[ApprovalRequiredEvent]:
        pending: list[ApprovalRequiredEvent] = []
        with events:
            for event in events:
                match event:
                    case TokenEvent():
                        self._text(event.agent or conv.agent, event.text)
                    case AnswerEvent():
                        if not self._streamed:
                            self._text(event.agent or conv.agent, event.text)
                        self._streamed = False
                    case ToolCallEvent():
                        self._note(f"[tool] {event.name}({_args(event.arguments)})")
                    case ToolResultEvent():
                        label = "[tool error]" if event.is_error else "[result]"
                        self._note(f"{label} {_short(event.content)}")
                    case HandoffEvent():
                        self._note(f"[handoff] {event.agent} -> {event.to_agent}")
                    case AskEvent():
                        self._note(f"[ask] {event.agent} -> {event.to_agent}: {event.question}")
                    case ApprovalRequiredEvent():
                        pending.append(event)
                    case ErrorEvent():
                        self._note(f"[error] {event.code}: {event.message}")
                    case DoneEvent():
                        self._newline()
        self._streamed = False
        return pending

    def _read(self, prompt: str) -> str:
        self._write(prompt)
        line = self._in.readline()
        if not line:
            raise EOFError
        self._col0 = True
        return line.strip()

    def _text(self, agent: str, text: str) -> None:
        if self._col0:
            self._write(f"{agent}> ")
        self._write(text)
        self._streamed = True

    def _note(self, text: str) -> None:
        self._newline()
        self._line(f"  {text}")

    def _line(self, text: str) -> None:
        self._write(f"{text}\n")

    def _newline(self) -> None:
        if not self._col0:
            self._write("\n")

    def _write(self, text: str) -> None:
        if text:
            self._out.write(text)
            self._out.flush()
            self._col0 = text.endswith("\n")

    def _describe(self, exc: APIError) -> str:
        if isinstance(exc, APIConnectionError):
            return f"cannot reach {self._client.base_url}: {exc}"
        if isinstance(exc, AuthenticationError):
            return f"{exc} (pass --key or set RAY_AGENTS_API_KEY)"
        return str(exc)


def _args(arguments: dict[str, Any]) -> str:
    text = ", ".join(f"{name}={json.dumps(value)}" for name, value in arguments.items())
    return _short(text)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SHOWN else text[: SHOWN - 3] + "..."
