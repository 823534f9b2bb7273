"""The default app with its pool model pointed at vLLM's own OpenAI server, started
apart (``python -m vllm.entrypoints.openai.api_server``): no engine of the pool's own
starts. A router's guided hand-off to the math agent and the specialists' steps run
end to end on the external server; the server killed, a turn ends with
``engine_unavailable``; the server back, the conversation goes on. (Tool calls through
an external server, which the small model does not make reliably, are in
tests/unit/test_external_engine.py, against the scripted OpenAI server agents.testing ships.)"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agents.builder import build_app
from agents.client import Client
from agents.config import load_app_config
from agents.events import (
    AnswerEvent,
    DoneEvent,
    ErrorEvent,
    HandoffEvent,
    ToolCallEvent,
)
from benchmarks._common import vllm_server
from tests.conftest import free_port

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(1200)]

ROOT = Path(__file__).parents[2]
APP = "agents-external"
KEY = "dev-local-key"  # configs/app.yaml's published local key


def _server_model() -> dict[str, Any]:
    """The default pool model as one aggregated engine (the server's own settings)."""
    app = yaml.safe_load((ROOT / "configs/app.yaml").read_text())
    model = app["pool"]["models"][0]
    for key in ("prefill", "kv_transfer", "min_remote_prefill_tokens", "mode"):
        model.pop(key, None)
    model["decode"] = {"replicas": 1, "cpu_bind": "0"}
    return dict(model)


class ExternalServer:
    """vLLM's server on a fixed port, started and stopped by the test."""

    def __init__(self, port: int, logs: Path) -> None:
        self.port, self.logs, self.runs = port, logs, 0
        self._running: Any = None

    async def start(self) -> None:
        self.runs += 1
        self._running = vllm_server(_server_model(), self.port, self.logs / f"vllm-{self.runs}.log")
        await self._running.__aenter__()

    async def stop(self) -> None:
        await self._running.__aexit__(None, None, None)


@pytest.fixture(scope="module")
def app(
    ray_cluster: dict[str, int], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, int]]:
    """The default app (configs/, copied) whose model is ``openai+http://...``."""
    from ray import serve

    folder = tmp_path_factory.mktemp("external")
    shutil.copytree(ROOT / "configs", folder / "configs")
    path = folder / "configs/app.yaml"
    data = yaml.safe_load(path.read_text())
    port = free_port()
    data["pool"]["models"] = [
        {
            "id": "smollm2",
            "source": f"openai+http://127.0.0.1:{port}/v1",
            "endpoint": {"served_model": "smollm2", "attempts": 3, "timeout_s": 300},
        }
    ]
    data["store"]["path"] = str(folder / "conversations.db")
    # A router that can only hand off starts the conversation: its one step is a
    # structured (guided) hand-off on the external server, whatever the small model.
    data["app"]["default_agent"] = "router"
    (folder / "configs/agents/router.yaml").write_text(
        yaml.safe_dump(
            {
                "agent": {
                    "name": "router",
                    "model": "smollm2",
                    "description": "routes each message to the specialist for it",
                    "instructions": "You route each message to the right specialist.",
                    "handoffs": ["math", "assistant"],
                    "can_answer": False,
                    "sampling": {"temperature": 0, "max_tokens": 64},
                }
            }
        )
    )
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    try:
        serve.run(build_app(load_app_config(path)), name=APP, route_prefix="/")
        yield f"http://127.0.0.1:{ray_cluster['http']}", port
    finally:
        serve.delete(APP)


async def test_the_default_app_on_an_external_vllm_server(
    app: tuple[str, int], tmp_path: Path
) -> None:
    url, port = app
    server = ExternalServer(port, tmp_path)
    await server.start()
    try:
        with Client(url, KEY, timeout=600) as client:
            conversation = client.conversations.create()
            result = conversation.send("What is 12 times 7?")
            events = result.events
            assert not [e for e in events if isinstance(e, ErrorEvent)], events
            shown = [
                {
                    k: v
                    for k, v in e.model_dump(exclude_none=True).items()
                    if k not in ("seq", "turn_id")
                }
                for e in events
            ]
            print("\nexternal engine turn:", shown)
            # The router's one step, a guided hand-off, ran on the external server; the
            # specialists' steps too (the small model may bounce the turn between them
            # and answer without the calculator: it does so on the pool's own engines too).
            handoffs = [e for e in events if isinstance(e, HandoffEvent)]
            assert (handoffs[0].agent, handoffs[0].to_agent) == ("router", "math")
            [answer] = [e for e in events if isinstance(e, AnswerEvent)]
            assert answer.agent in ("math", "assistant") and answer.text.strip()
            for call in [e for e in events if isinstance(e, ToolCallEvent)]:
                assert call.name in ("calculator", "current_time")
            done = events[-1]
            assert isinstance(done, DoneEvent) and result.status == "ok"
            assert done.usage.steps >= 2 and done.usage.prompt_tokens > 0

            await server.stop()  # the external server is gone
            down = conversation.send("And 6 times 7?")
            [error] = [e for e in down.events if isinstance(e, ErrorEvent)]
            assert error.code == "engine_unavailable" and down.status == "error"

            await server.start()  # back: the same conversation goes on
            back = conversation.send("What is 2 plus 2?")
            assert back.status == "ok" and back.answer, back.events
    finally:
        await server.stop()
