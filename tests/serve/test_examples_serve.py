"""An example app served by Ray Serve from its own YAML: its tool module reaches the
tool executor's workers through the app's python_path (scripted model turns)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.builder import build_app
from agents.config import load_app_config
from agents.pool.spec import PoolSpec
from agents.store.spec import StoreSpec
from agents.testing import action
from tests.fixtures.api_app import KEYS, api_spec

pytestmark = pytest.mark.serve

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "customer_support" / "app.yaml"
# A read-only path through the example (the orders database may be shared across runs).
RULES = [
    {
        "match": "where is",
        "json_reply": action("handoff", agent="tech_support"),
    },
    {
        "match": "Handed off to tech_support",
        "json_reply": action("tool", tool="lookup_order", arguments={"order_id": "A1002"}),
    },
    {
        "match": r'\[lookup_order result\] .*"status": "shipped"',
        "json_reply": action("answer", text="Order A1002 has shipped."),
    },
]


@pytest.fixture(scope="module")
def url(ray_cluster: dict[str, int], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from ray import serve

    config = load_app_config(EXAMPLE)
    model = config.pool.models[0]
    pool = PoolSpec.model_validate(
        {"models": [{"id": model.id, "source": model.source, "scripted": RULES}]}
    )
    db = tmp_path_factory.mktemp("example") / "conversations.db"
    config = config.model_copy(
        update={
            "pool": pool,
            "store": StoreSpec(backend="sqlite", path=str(db)),
            "api": api_spec(),
        }
    )
    try:
        serve.run(build_app(config), name=config.app.name, route_prefix="/support")
        yield f"http://127.0.0.1:{ray_cluster['http']}/support"
    finally:
        serve.delete(config.app.name)


def test_customer_support_example_through_the_sdk(url: str) -> None:
    from agents.client import Client

    with Client(url, KEYS["acme"]) as client:
        conversation = client.conversations.create()
        result = conversation.send("Hi, where is my order A1002?")
    assert result.status == "ok" and result.answer == "Order A1002 has shipped."
    assert result.agent == "tech_support"
    kinds = [e.type for e in result.events]
    assert kinds == ["message", "handoff", "tool_call", "tool_result", "answer", "done"]
    [tool_result] = [e for e in result.events if e.type == "tool_result"]
    assert not tool_result.is_error and '"tracking": "JD014600006281203551"' in tool_result.content
