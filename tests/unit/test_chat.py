"""``ray-agents chat`` against the fake API server of test_client, with StringIO terminals."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import httpx
import pytest

from agents.client import Client
from agents.client._chat import run_chat
from agents.events import (
    AnswerEvent,
    AskEvent,
    DoneEvent,
    ErrorEvent,
    Event,
    HandoffEvent,
    ToolCallEvent,
    ToolResultEvent,
)
from tests.unit.test_client import KEY, URL, FakeServer, chat_turn, error, paused_turn, resumed_turn

BANNER = "Talking to triage (conversation c1). Ctrl-D or /quit to leave.\n"


class Recorder:
    def __init__(self) -> None:
        self.seconds: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


@pytest.fixture
def client(server: FakeServer) -> Iterator[Client]:
    http = httpx.Client(transport=server.transport())
    with Client(URL, KEY, http_client=http, sleep=Recorder()) as client:
        yield client
    http.close()


def chat(client: Client, typed: str) -> tuple[int, str]:
    out = io.StringIO()
    code = run_chat("triage", url=URL, key=KEY, stdin=io.StringIO(typed), stdout=out, client=client)
    return code, out.getvalue()


def test_tokens_stream_after_the_prompt(client: Client, server: FakeServer) -> None:
    server.turns.append(chat_turn())
    code, out = chat(client, "hi\n")
    assert code == 0
    assert out == BANNER + "you> triage> Hello there\nyou> \n"


def test_an_answer_without_tokens_is_printed(client: Client, server: FakeServer) -> None:
    server.turns.append([AnswerEvent(agent="triage", text="Just this."), DoneEvent()])
    assert chat(client, "hi\n") == (0, BANNER + "you> triage> Just this.\nyou> \n")


def test_tools_handoffs_and_asks_show_on_their_own_lines(
    client: Client, server: FakeServer
) -> None:
    turn: list[Event] = [
        HandoffEvent(agent="triage", to_agent="billing", message="invoice"),
        ToolCallEvent(agent="billing", call_id="t1", name="lookup", arguments={"order": "A1"}),
        ToolResultEvent(agent="billing", call_id="t1", name="lookup", content="x" * 500),
        AskEvent(agent="billing", call_id="a1", to_agent="legal", question="Refundable?"),
        ToolResultEvent(agent="billing", call_id="a1", name="ask", content="no", is_error=True),
        *chat_turn("billing", "It is paid."),
    ]
    server.turns.append(turn)
    code, out = chat(client, "\nmy invoice\n")
    assert code == 0
    assert out == (
        BANNER
        + "you> you> "
        + "  [handoff] triage -> billing\n"
        + '  [tool] lookup(order="A1")\n'
        + f"  [result] {'x' * 197}...\n"
        + "  [ask] billing -> legal: Refundable?\n"
        + "  [tool error] no\n"
        + "billing> It is paid.\n"
        + "(now talking to billing)\n"
        + "you> \n"
    )


@pytest.mark.parametrize(("typed", "approve"), [("y", True), ("YES", True), ("", False)])
def test_an_approval_is_asked_and_the_resumed_turn_streams(
    client: Client, server: FakeServer, typed: str, approve: bool
) -> None:
    server.turns += [paused_turn(), resumed_turn()]
    code, out = chat(client, f"refund A1\n{typed}\n/quit\n")
    assert code == 0
    assert out == (
        BANNER
        + "you> "
        + "  [handoff] triage -> billing\n"
        + '  [tool] refund(order="A1")\n'
        + '  approve refund(order="A1")? [y/N] '
        + "  [result] refunded\n"
        + "billing> Refund done\n"
        + "(now talking to billing)\n"
        + "you> "
    )
    decision = json.loads(server.requests[-1].content)
    assert server.requests[-1].url.path == "/v1/conversations/c1/approvals/k1"
    assert decision == {"approve": approve, "reason": "", "stream": True}


def test_eof_at_the_approval_prompt_leaves_without_deciding(
    client: Client, server: FakeServer
) -> None:
    server.turns.append(paused_turn())
    code, out = chat(client, "refund A1\n")
    assert code == 0
    assert out.endswith('  approve refund(order="A1")? [y/N] \n')
    assert not any("/approvals/" in r.url.path for r in server.requests)


def test_a_failed_turn_shows_its_error(client: Client, server: FakeServer) -> None:
    server.turns.append(
        [ErrorEvent(agent="triage", code="hop_limit", message="too many hops"), DoneEvent()]
    )
    code, out = chat(client, "hi\n")
    assert (code, out) == (0, BANNER + "you>   [error] hop_limit: too many hops\nyou> \n")


def test_an_api_error_of_one_turn_is_printed_and_the_chat_goes_on(
    client: Client, server: FakeServer
) -> None:
    server.turns.append(chat_turn())
    server.turn_replies.append(error("conversation_busy", "a turn is running"))
    code, out = chat(client, "hi\nagain\n")
    assert code == 0
    assert out == (
        BANNER
        + "you> error: 409 conversation_busy: a turn is running\n"
        + "you> triage> Hello there\n"
        + "you> \n"
    )


def test_quit_command(client: Client) -> None:
    assert chat(client, "/quit\nhi\n") == (0, BANNER + "you> ")


def test_a_wrong_key_fails_at_start(server: FakeServer) -> None:
    with httpx.Client(transport=server.transport()) as http:
        code, out = chat(Client(URL, "wrong", http_client=http), "hi\n")
    assert code == 1
    assert out == (
        "error: 401 authentication_error: invalid API key (pass --key or set RAY_AGENTS_API_KEY)\n"
    )


def test_an_unreachable_server_fails_at_start(client: Client, server: FakeServer) -> None:
    server.replies += [httpx.ConnectError("connection refused")] * 4
    code, out = chat(client, "hi\n")
    assert code == 1
    assert out.startswith(f"error: cannot reach {URL}: POST {URL}/v1/conversations failed")


def test_ctrl_c_leaves_cleanly(client: Client) -> None:
    class Interrupted(io.StringIO):
        def readline(self, size: int | None = -1) -> str:
            raise KeyboardInterrupt

    out = io.StringIO()
    code = run_chat("triage", url=URL, key=KEY, stdin=Interrupted(), stdout=out, client=client)
    assert (code, out.getvalue()) == (0, BANNER + "you> \n")
