"""The SDK works in a fresh virtualenv that has only the base install.

The venv gets ``[project].dependencies`` from pip's configured index (and pip's cache)
and a copy of the ``agents`` package on its path, so nothing of the dev venv (Ray,
vLLM, torch, FastAPI, LangChain) is reachable. A script then uses ``Client`` and
``AsyncClient`` against a tiny ``http.server`` of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

# pip installs the base dependencies from its index.
pytestmark = pytest.mark.network

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import asyncio
import importlib.util
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import agents.client
from agents.client import AsyncClient, Client, NotFoundError

HEAVY = ("ray", "vllm", "torch", "fastapi", "starlette", "langchain_core")


def check_light():
    loaded = [name for name in HEAVY if name in sys.modules]
    reachable = [name for name in HEAVY if importlib.util.find_spec(name) is not None]
    assert not loaded and not reachable, (loaded, reachable)


check_light()

NOW = "2025-01-01T00:00:00Z"
AGENTS = {"object": "list", "data": [{"name": "triage", "description": "d", "model": "m"}]}
CONV = {"id": "c1", "agent": "triage", "created_at": NOW, "updated_at": NOW, "last_seq": 0}
EVENTS = [
    {"type": "message", "content": "hi", "seq": 1},
    {"type": "token", "text": "Hel"},
    {"type": "token", "text": "lo"},
    {"type": "answer", "text": "Hello", "seq": 2},
    {"type": "done", "status": "ok", "active_agent": "triage", "last_seq": 2},
]
RESULT = {"conversation_id": "c1", "turn_id": "t1", "status": "ok", "answer": "Hello",
          "agent": "triage", "events": [EVENTS[0], EVENTS[3], EVENTS[4]]}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body, kind="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Request-ID", "req-1")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        assert self.headers["Authorization"] == "Bearer sk-base"
        if self.path == "/v1/agents":
            return self.reply(200, AGENTS)
        error = {"type": "not_found", "message": "no such thing", "request_id": "req-1"}
        self.reply(404, {"error": error})

    def do_POST(self):
        assert self.headers["Authorization"] == "Bearer sk-base"
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/v1/conversations":
            return self.reply(201, CONV)
        assert body["idempotency_key"]
        if not body["stream"]:
            return self.reply(200, RESULT)
        frames = [b": ping\r\n\r\n"]
        for event in EVENTS:
            frames.append(f"event: {event['type']}\r\ndata: {json.dumps(event)}\r\n\r\n".encode())
        self.reply(200, b"".join(frames), kind="text/event-stream")


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{server.server_address[1]}"

with Client(url, "sk-base", max_retries=0) as client:
    assert [a.name for a in client.agents.list()] == ["triage"]
    try:
        client.agents.get("nobody")
    except NotFoundError as exc:
        assert exc.request_id == "req-1"
    else:
        raise AssertionError("expected NotFoundError")
    conv = client.conversations.create(agent="triage")
    events = list(conv.stream("hi"))
    assert [e.type for e in events] == ["message", "token", "token", "answer", "done"]
    assert conv.send("hi").answer == "Hello"


async def use_async():
    async with AsyncClient(url, "sk-base", max_retries=0) as client:
        conv = await client.conversations.create()
        return [e.type async for e in conv.stream("hi")]


assert asyncio.run(use_async())[-1] == "done"
server.shutdown()
check_light()
print("sdk ok", agents.client.__name__)
"""


def test_the_sdk_runs_with_only_the_base_dependencies(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *deps],
        check=True,
        timeout=300,
    )
    site = tmp_path / "src"
    shutil.copytree(ROOT / "agents", site / "agents", ignore=shutil.ignore_patterns("__pycache__"))
    script = tmp_path / "check_sdk.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PYTHONPATH"] = str(site)
    out = subprocess.run(
        [str(python), str(script)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "sdk ok agents.client"
