"""Each example app on the real default model, served from its own YAML.

SmolLM2-135M follows a multi-step flow only sometimes, so these runs check that a turn
goes end to end through the API, the agents, the pool and the tools without an
infrastructure failure, not what the model decides (the scripted runs in
tests/unit/test_examples.py make the exact assertions).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.builder import build_app
from agents.config import load_app_config
from agents.store.spec import StoreSpec
from tests.fixtures.api_app import KEYS, api_spec

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(900)]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# Failures of the system, never acceptable; a model's bad choice (invalid_action,
# max_steps) is the model's.
INFRASTRUCTURE = {"agent_unavailable", "internal", "store_error", "cancelled"}


@pytest.mark.parametrize(
    ("example", "message"),
    [
        ("customer_support", "I was charged twice for order A1002. Can I get a refund?"),
        ("research_team", "Write a short report on prefix caching."),
        ("code_assistant", "Use python to compute the sum of the numbers from 1 to 10."),
    ],
)
def test_example_on_the_real_model(
    example: str, message: str, ray_cluster: dict[str, int], tmp_path: Path
) -> None:
    from ray import serve

    from agents.client import Client

    config = load_app_config(EXAMPLES / example / "app.yaml")
    config = config.model_copy(
        update={
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
