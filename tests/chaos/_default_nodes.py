"""The default app's YAML on a three-node Ray cluster on this machine, with a placement
override and the PostgreSQL store (tests/fixtures/placed_app.py): the engines on the
head (the only node with ``engine-node``), the API, agents and tool executor on the two
workers (``agent-node``). A conversation through the SDK; then the worker node that
holds the conversation's agent replica is removed and the conversation goes on.

The pool's engines are the scripted engine, placed and disaggregated as the YAML says:
where replicas run and what a lost node takes with it is the point, not the model
(whose engines would cost minutes to start on a slow CPU). The agents decide by
generating their choice, so the script's reply decides it.

Run in a process of its own (it starts its own Ray): ``python -m
tests.chaos._default_nodes OUT.json``; where each replica ran and what the
conversation got go to OUT.json.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

from ray import serve

from agents.builder import build_app
from agents.client import Client
from agents.config import load_app_config
from agents.events import ErrorEvent
from agents.up import DEV_KEY
from tests.chaos._node_loss import DSN, replica_nodes, three_nodes
from tests.fixtures.placed_app import generating_decisions, write_placed_app

SCRIPT = [{"json_reply": {"next": "answer", "text": "Hello from the placed app."}}]


def scripted(app: Path) -> Path:
    """The placed app with the scripted engine in its pool and agents that generate
    their decision (the script's ``next``)."""
    data = yaml.safe_load(app.read_text())
    data["pool"]["models"][0]["scripted"] = SCRIPT
    app.write_text(yaml.safe_dump(data))
    generating_decisions(app.parent / "agents")
    return app


def main(out: Path) -> None:
    schema = f"default_nodes_{uuid.uuid4().hex[:8]}"
    os.environ["RAY_AGENTS_PG_DSN"] = DSN
    figures: dict[str, Any] = {}
    with three_nodes(schema) as (cluster, workers, port), tempfile.TemporaryDirectory() as tmp:
        config = load_app_config(scripted(write_placed_app(Path(tmp), schema=schema)))
        serve.run(build_app(config), name=config.app.name, route_prefix="/")
        nodes = replica_nodes(config.app.name)
        head = cluster.head_node.node_id
        figures["on_head"] = sorted({n.split("#")[1] for n, at in nodes.items() if at == head})
        figures["on_workers"] = dict(
            Counter(n.split("#")[1] for n, at in nodes.items() if at != head)
        )
        with Client(f"http://127.0.0.1:{port}", DEV_KEY, timeout=600, max_retries=12) as sdk:
            conversation = sdk.conversations.create()
            first = conversation.send("Hello! Who are you?")
            figures["first"] = {"status": first.status, "agent": first.agent}
            # The worker that holds a replica of the agent the conversation is with.
            agent = f"agent-{conversation.agent}"
            holders = {at for n, at in nodes.items() if n.split("#")[1] == agent}
            lost = next(w for w in workers if w.node_id in holders)
            figures["lost_node_held"] = sorted(
                n.split("#")[1] for n, at in nodes.items() if at == lost.node_id
            )
            cluster.remove_node(lost, allow_graceful=False)
            after = conversation.send("Thanks. What can you help me with?")
            figures["after"] = {
                "status": after.status,
                "errors": [e.code for e in after.events if isinstance(e, ErrorEvent)],
                "answer": bool((after.answer or "").strip()),
            }
            stored = conversation.messages()
            figures["stored"] = [e.type for e in stored if e.type in ("message", "done")]
    out.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
