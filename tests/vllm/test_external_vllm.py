"""One vLLM OpenAI server (``python -m vllm.entrypoints.openai.api_server``, started
apart, once for this module) serves the real default model to every app here: the
default app, and each example app served from its own YAML. No engine of the pool's own
starts: each app's pool model is ``openai+http://...`` (an engine start costs ~70 s on
a CPU without AVX-512, so five apps share one).

- The default app: a router's guided hand-off to the math agent and the specialists'
  steps run end to end on the external server. (The server gone and back, and tool calls
  the small model does not make reliably, are in tests/unit/test_external_engine.py,
  against the scripted OpenAI server agents.testing ships.)
- Each example: a turn goes end to end through the API, the agents, the external
  model and the tools without an infrastructure failure. SmolLM2-135M follows a
  multi-step flow only sometimes, so what the model decides is not asserted here (the
  scripted runs in tests/unit/test_examples.py make the exact assertions; the examples'
  own pool section is checked there and in tests/serve/test_examples_serve.py).
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agents.builder import build_app
from agents.client import Client
from agents.config import load_app_config
from agents.events import AnswerEvent, DoneEvent, ErrorEvent, HandoffEvent, ToolCallEvent
from agents.pool.spec import PoolSpec
from agents.store.spec import StoreSpec
from benchmarks._common import vllm_server
from tests.conftest import free_port
from tests.fixtures.api_app import KEYS, api_spec

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(900)]

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "examples"
APP = "agents-external"
KEY = "dev-local-key"  # configs/app.yaml's published local key
SERVED = "smollm2"
# Failures of the system, never acceptable; a model's bad choice (invalid_action,
# max_steps) is the model's.
INFRASTRUCTURE = {"agent_unavailable", "internal", "store_error", "cancelled"}


def _server_model() -> dict[str, Any]:
    """The default pool model as one aggregated engine on both cores (the server's own
    settings: dtype, context, KV cache, eager mode)."""
    app = yaml.safe_load((ROOT / "configs/app.yaml").read_text())
    model = app["pool"]["models"][0]
    for key in ("prefill", "kv_transfer", "min_remote_prefill_tokens", "mode"):
        model.pop(key, None)
    model["decode"] = {"replicas": 1, "cpu_bind": "0-1"}
    return dict(model)


@pytest.fixture(scope="module")
async def external(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """vLLM's own server, up for the module; yields the pool source that reaches it."""
    port = free_port()
    logs = tmp_path_factory.mktemp("vllm-server")
    async with vllm_server(_server_model(), port, logs / "vllm.log"):
        yield f"openai+http://127.0.0.1:{port}/v1"


def external_pool(source: str) -> dict[str, Any]:
    endpoint = {"served_model": SERVED, "attempts": 3, "timeout_s": 300}
    return {"models": [{"id": SERVED, "source": source, "endpoint": endpoint}]}


@pytest.fixture(scope="module")
def default_app(
    external: str, ray_cluster: dict[str, int], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The default app (configs/, copied), its model on the external server."""
    from ray import serve

    folder = tmp_path_factory.mktemp("external")
    shutil.copytree(ROOT / "configs", folder / "configs")
    path = folder / "configs/app.yaml"
    data = yaml.safe_load(path.read_text())
    data["pool"] = external_pool(external)
    data["store"]["path"] = str(folder / "conversations.db")
    # A router that can only hand off starts the conversation: its one step is a
    # structured (guided) hand-off on the external server, whatever the small model.
    data["app"]["default_agent"] = "router"
    (folder / "configs/agents/router.yaml").write_text(
        yaml.safe_dump(
            {
                "agent": {
                    "name": "router",
                    "model": SERVED,
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
        yield f"http://127.0.0.1:{ray_cluster['http']}"
    finally:
        serve.delete(APP)


def test_the_default_app_on_an_external_vllm_server(default_app: str) -> None:
    with Client(default_app, KEY, timeout=600) as client:
        conversation = client.conversations.create()
        result = conversation.send("What is 12 times 7?")
        events = result.events
        assert not [e for e in events if isinstance(e, ErrorEvent)], events
        hidden = {"seq", "turn_id"}
        shown = [
            {k: v for k, v in e.model_dump(exclude_none=True).items() if k not in hidden}
            for e in events
        ]
        print("\nexternal engine turn:", shown)
        # The router's one step, a guided hand-off, ran on the external server; the
        # specialists' steps too (the small model may bounce the turn between them).
        handoffs = [e for e in events if isinstance(e, HandoffEvent)]
        assert (handoffs[0].agent, handoffs[0].to_agent) == ("router", "math")
        [answer] = [e for e in events if isinstance(e, AnswerEvent)]
        assert answer.agent in ("math", "assistant") and answer.text.strip()
        for call in [e for e in events if isinstance(e, ToolCallEvent)]:
            assert call.name in ("calculator", "current_time")
        done = events[-1]
        assert isinstance(done, DoneEvent) and result.status == "ok"
        assert done.usage.steps >= 2 and done.usage.prompt_tokens > 0

        # The conversation goes on, its history on the external server too.
        again = conversation.send("And what is 2 plus 2?")
        assert again.status == "ok" and again.answer, again.events


@pytest.mark.parametrize(
    ("example", "message"),
    [
        ("customer_support", "I was charged twice for order A1002. Can I get a refund?"),
        ("research_team", "Write a short report on prefix caching."),
        ("code_assistant", "Use python to compute the sum of the numbers from 1 to 10."),
    ],
)
def test_example_on_the_real_model(
    example: str, message: str, external: str, ray_cluster: dict[str, int], tmp_path: Path
) -> None:
    from ray import serve

    config = load_app_config(EXAMPLES / example / "app.yaml")
    assert [m.id for m in config.pool.models] == [SERVED], "the example's model id changed"
    config = config.model_copy(
        update={
            "pool": PoolSpec.model_validate(external_pool(external)),
            "store": StoreSpec(backend="sqlite", path=str(tmp_path / "c.db")),
            "api": api_spec(),
        }
    )
    try:
        serve.run(build_app(config), name=config.app.name, route_prefix=f"/{example}")
        url = f"http://127.0.0.1:{ray_cluster['http']}/{example}"
        with Client(url, KEYS["acme"], timeout=600) as client:
            conversation = client.conversations.create()
            result = conversation.send(message)
            for _ in range(3):  # a tool that needs approval: approve, the turn goes on
                if result.status != "paused":
                    break
                result = conversation.approve(result.pending_approvals[0].call_id)
            stored = conversation.messages()
    finally:
        serve.delete(config.app.name)
    assert result.usage.completion_tokens > 0, result
    codes = {e.code for e in result.events if e.type == "error"}
    assert not codes & INFRASTRUCTURE, result
    assert result.status != "ok" or (result.answer or "").strip(), result
    assert stored[-1].type == "done", stored
    print(f"{example}: {result.status}, {[e.type for e in stored]}, answer={result.answer!r}")
