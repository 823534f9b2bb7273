"""Hostile input through the real HTTP API, Ray Serve's proxy in front.

One Serve app (scripted engine) with real limits: schemathesis over every operation,
then hand-written abuse: huge, chunked, deeply nested and invalid-UTF-8 bodies,
100k-character messages, odd request ids (CRLF included, on a raw socket), SSE readers
that never read, one key creating 1,000 conversations, and another tenant's ids in
every route. Each answer is a 4xx in the one error shape (never a 5xx), and the app
goes on serving.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from agents.api.types import ERROR_STATUS
from tests.fixtures import api_app
from tests.fixtures.api_app import TALK_ONLY_KEY, headers, new_conversation

pytestmark = pytest.mark.serve

APP = "agents-hostile"
# Real limits (per key): 50 requests a second sustained, bursts of 100.
LIMITS = {"requests_per_minute": 3000, "burst": 100, "max_streams_per_key": 8}
# The key that creates 1000 conversations has a rate of its own, 5 a second: CI on a
# machine at half speed did not reach 50 creates a second, so 50/s was never exceeded.
FLOOD = {"requests_per_minute": 300, "burst": 100}
SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


@pytest.fixture(scope="module")
def url(ray_cluster: dict[str, int], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = tmp_path_factory.mktemp("hostile") / "conversations.db"
    with api_app.served(
        ray_cluster["http"], db, APP, heartbeat_s=0.5, talk_only=FLOOD, **LIMITS
    ) as served:
        yield served


@pytest.fixture
def client(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, headers=headers(), timeout=60) as client:
        yield client


def error_of(response: httpx.Response, status: int | None = None) -> dict[str, str]:
    """The error of a 4xx response, checked to have the one error shape."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    if status is not None:
        assert response.status_code == status, response.text[:300]
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, str] = body["error"]
    assert set(error) == {"type", "code", "message", "request_id"}, error
    assert ERROR_STATUS[error["type"]] == response.status_code or response.status_code in (
        404,
        405,
    )
    assert "Traceback" not in error["message"] and "/work/" not in error["message"]
    assert SANE_ID.match(error["request_id"]), error
    return error


EXAMPLES_PER_RUN = 75
"""Cases per operation and mode (fewer where hypothesis runs out of new ones)."""


def test_schemathesis_finds_no_server_error_and_one_error_shape(url: str) -> None:
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    auth = headers("globex")  # a tenant of its own: its own rate bucket
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    for operation in operations:
        # Valid requests (per the schema) and invalid ones on random ids; valid ones on
        # a real conversation too, so that they get past the 404 (not DELETE: it would
        # leave nothing for the rest).
        runs: list[tuple[GenerationMode, dict[str, str] | None]] = [
            (GenerationMode.POSITIVE, None),
            (GenerationMode.NEGATIVE, None),
        ]
        if "{conversation_id}" in operation.path and operation.method.upper() != "DELETE":
            with httpx.Client(base_url=url, headers=auth, timeout=60) as http:
                runs.append((GenerationMode.POSITIVE, {"conversation_id": new_conversation(http)}))
        for mode, path in runs:

            @settings(
                max_examples=EXAMPLES_PER_RUN,
                deadline=None,
                database=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path))
            def check(case: Any) -> None:
                response = case.call(base_url=url, headers=auth, timeout=30)
                statuses[response.status_code] += 1
                where = f"{case.method} {case.formatted_path}"
                if response.status_code >= 500:
                    failures.append(f"{where}: {response.status_code} {response.text[:200]}")
                elif response.status_code >= 400:
                    try:
                        error_of(httpx.Response(response.status_code, content=response.content))
                    except (AssertionError, ValueError) as exc:
                        failures.append(f"{where}: {response.status_code} not the shape: {exc}")
                if response.status_code == 429:  # schemathesis keeps header values in lists
                    wait = response.headers.get("retry-after") or ["1"]
                    time.sleep(float(wait[0] if isinstance(wait, list) else wait))

            try:
                check()
            except Unsatisfiable:  # nothing of this operation can be made invalid
                assert mode == GenerationMode.NEGATIVE
    assert sum(statuses.values()) >= 1000, statuses
    assert statuses[400] > 100 and statuses[200] + statuses[201] > 100, statuses
    assert not failures, failures[:10]


def test_a_10_mb_body_is_refused_before_it_is_read(client: httpx.Client) -> None:
    big = b'{"content": "' + b"x" * (10 * 2**20) + b'"}'
    cid = new_conversation(client)
    url = f"/v1/conversations/{cid}/messages"
    sized = client.post(url, content=big, headers={"content-type": "application/json"})
    assert error_of(sized, 413)["type"] == "payload_too_large"
    # Chunked, with no length to check: read up to the limit, then refused.
    chunks = (big[i : i + 2**16] for i in range(0, len(big), 2**16))
    chunked = client.post(url, content=chunks, headers={"content-type": "application/json"})
    assert error_of(chunked, 413)["type"] == "payload_too_large"


def test_deeply_nested_json_is_a_400(client: httpx.Client) -> None:
    deep = '{"agent": "triage", "metadata": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = client.post(
        "/v1/conversations", content=deep, headers={"content-type": "application/json"}
    )
    error_of(response, 400)
    nested = {"content": "hi", "variables": {"user": {"a": [[[[{"b": 1}]]]]}}}
    cid = new_conversation(client)
    error_of(client.post(f"/v1/conversations/{cid}/messages", json=nested), 400)


def test_invalid_utf8_is_a_400(client: httpx.Client) -> None:
    cid = new_conversation(client)
    for body in (b'{"content": "\xff\xfe\xfd"}', b"\xc3\x28", b'{"content": "\xed\xa0\x80"}'):
        response = client.post(
            f"/v1/conversations/{cid}/messages",
            content=body,
            headers={"content-type": "application/json"},
        )
        error_of(response, 400)


def test_a_100k_character_message_is_a_400(client: httpx.Client) -> None:
    cid = new_conversation(client)
    response = client.post(f"/v1/conversations/{cid}/messages", json={"content": "x" * 100_000})
    assert "content: 100000 characters" in error_of(response, 400)["message"]
    chat = client.post(
        "/v1/chat/completions",
        json={"model": "triage", "messages": [{"role": "user", "content": "y" * 100_000}]},
    )
    error_of(chat, 400)


def raw_request(url: str, head: bytes) -> bytes:
    """Send ``head`` (a whole request) on a fresh socket; what came back."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(head)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_odd_request_ids_never_reach_a_body_or_a_header_unchecked(
    client: httpx.Client, url: str
) -> None:
    for given in ("x" * 1000, "id with spaces", "<script>alert(1)</script>", "ünïcödé"):
        response = client.get(
            "/v1/conversations/nope", headers={"x-request-id": given.encode("utf-8")}
        )
        error = error_of(response, 404)
        assert error["request_id"] != given  # replaced by an id of ours
    sane = client.get("/v1/conversations/nope", headers={"x-request-id": "trace-42.a:b"})
    assert error_of(sane, 404)["request_id"] == "trace-42.a:b" == sane.headers["x-request-id"]
    # A CR LF inside the header cannot add a header: the proxy refuses the request.
    key = api_app.KEYS["acme"]
    head = (
        f"GET /v1/agents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
        "X-Request-ID: abc\rSet-Cookie: pwned=1\r\nConnection: close\r\n\r\n"
    ).encode()
    reply = raw_request(url, head)
    status = int(reply.split(b" ", 2)[1])
    assert 400 <= status < 500 and b"pwned" not in reply.lower().split(b"\r\n\r\n")[0]
    assert client.get("/v1/agents").status_code == 200


def test_sse_readers_that_never_read_do_not_hold_the_server(client: httpx.Client, url: str) -> None:
    cid = new_conversation(client)
    parts = urlsplit(url)
    key = api_app.KEYS["acme"]
    body = json.dumps({"content": "slow one", "stream": True}).encode()
    head = (
        f"POST /v1/conversations/{cid}/messages HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    readers = []
    for _ in range(4):  # the same conversation: one runs, the others are refused (409)
        sock = socket.create_connection((parts.hostname, parts.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        sock.sendall(head + body)
        readers.append(sock)  # and never read
    try:
        for _ in range(5):
            started = time.monotonic()
            assert client.get("/v1/agents").status_code == 200
            assert time.monotonic() - started < 5
            other = new_conversation(client)
            reply = client.post(f"/v1/conversations/{other}/messages", json={"content": "hi"})
            assert reply.status_code == 200 and reply.json()["status"] == "ok"
    finally:
        for sock in readers:
            sock.close()
    # The readers are gone: their turn ends, its slots come back, the key streams again.
    deadline = time.monotonic() + 60
    while True:
        events = client.get(f"/v1/conversations/{cid}/messages").json()["data"]
        if events and events[-1]["type"] == "done":
            break
        assert time.monotonic() < deadline, events
        time.sleep(0.5)
    again = client.post(f"/v1/conversations/{cid}/messages", json={"content": "hi", "stream": True})
    assert again.status_code == 200 and "event: done" in again.text


def test_another_tenants_ids_get_404_in_every_route(client: httpx.Client) -> None:
    cid = new_conversation(client, agent="tech")
    paused = client.post(f"/v1/conversations/{cid}/messages", json={"content": "shout"}).json()
    call_id = paused["pending_approvals"][0]["call_id"]
    other = headers("globex")
    for method, path, body in [
        ("GET", f"/v1/conversations/{cid}", None),
        ("GET", f"/v1/conversations/{cid}/messages", None),
        ("POST", f"/v1/conversations/{cid}/messages", {"content": "hi"}),
        ("POST", f"/v1/conversations/{cid}/approvals/{call_id}", {"approve": True}),
        ("DELETE", f"/v1/conversations/{cid}", None),
    ]:
        response = client.request(method, path, json=body, headers=other)
        assert error_of(response, 404)["type"] == "not_found"
        assert cid not in response.text or "no conversation" in response.text
    # Untouched: the owner's call still waits and is decided by the owner.
    decided = client.post(f"/v1/conversations/{cid}/approvals/{call_id}", json={"approve": True})
    assert decided.status_code == 200 and decided.json()["answer"] == "Shouted."


async def test_one_key_creating_1000_conversations_is_limited_not_broken(url: str) -> None:
    statuses: Counter[int] = Counter()
    retry_after: set[str] = set()
    key = {"Authorization": f"Bearer {TALK_ONLY_KEY}"}  # its own rate bucket
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=url, headers=key, timeout=60, limits=limits) as http:

        async def create(i: int) -> None:
            response = await http.post("/v1/conversations", json={"metadata": {"i": str(i)}})
            statuses[response.status_code] += 1
            if response.status_code == 429:
                error_of(response, 429)
                retry_after.add(response.headers["retry-after"])

        started = time.monotonic()
        await asyncio.gather(*(create(i) for i in range(1000)))
        took = time.monotonic() - started
        assert set(statuses) <= {201, 429}, statuses
        # The burst, then no more than the rate refilled while they came.
        allowed = FLOOD["burst"] + FLOOD["requests_per_minute"] / 60 * took
        assert FLOOD["burst"] <= statuses[201] <= allowed + 1, (statuses, took)
        assert statuses[429] > 0, (statuses, took)
        assert all(int(s) >= 1 for s in retry_after)
        # The bucket refills: after the wait it asks for, the key works again.
        await asyncio.sleep(max(int(s) for s in retry_after))
        response = await http.post("/v1/conversations", json={})
        assert response.status_code == 201
