"""Node loss: a three-node Ray cluster on this machine loses a worker node under load.

Run in a process of its own (it starts its own Ray): ``python -m tests.chaos._node_loss
OUT.json``. The app keeps its conversations in PostgreSQL (a schema of the run's own,
dropped at the end), which every node reaches, as on a cluster of machines. The head
node runs the Serve controller, the proxy and the pool (whose replicas ask for
``engine-node``, which only the head offers); the API, agents and tool executor ask
for ``agent-node``, which only the two worker nodes offer, so Serve spreads their
replicas over those two. Three seconds into the load one worker node is removed (its
raylet and every process on it die). The figures, and where the replicas were, go to
OUT.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import ray
from ray import serve
from ray.cluster_utils import Cluster

from agents.store import StoreSpec
from tests.chaos._chaos import chaos_app, run_load
from tests.conftest import free_port

DSN = os.environ.get("RAY_AGENTS_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")

APP = "agents-chaos-nodes"
PLACED = {"agent-node": 0.01}
ENGINES = {"engine-node": 1.0}


def replica_nodes(app: str = APP) -> dict[str, str]:
    """Serve replica actor name -> the node id it runs on (from the GCS actor table)."""
    from ray._private import state

    found = {}
    for info in state.actors().values():
        name = info.get("Name") or ""
        if name.startswith(f"SERVE_REPLICA::{app}#") and info.get("State") == "ALIVE":
            found[name] = info["Address"]["NodeID"]
    return found


@contextmanager
def three_nodes(schema: str) -> Iterator[tuple[Cluster, list[Any], int]]:
    """A Ray cluster of three nodes in this process: the head offers ``engine-node``,
    two workers offer ``agent-node``, and Serve's proxy listens on the head. Yields the
    cluster, its workers and the proxy's port; tears all of it down, and drops the
    PostgreSQL ``schema`` the app kept its conversations in."""
    import psycopg

    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 4,
            "resources": {"engine-node": 4},
            "gcs_server_port": free_port(),
            "include_dashboard": False,
        },
    )
    try:
        workers = [cluster.add_node(num_cpus=1, resources={"agent-node": 100}) for _ in range(2)]
        ray.init(address=cluster.address, log_to_driver=False)
        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port, "location": "HeadOnly"})
        yield cluster, workers, port
    finally:
        try:
            serve.shutdown()
        finally:
            try:
                ray.shutdown()
            finally:
                try:
                    cluster.shutdown()
                finally:
                    with psycopg.connect(DSN, autocommit=True) as conn:
                        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main(out: Path) -> None:
    schema = f"node_loss_{uuid.uuid4().hex[:8]}"
    store = StoreSpec(backend="postgres", dsn=DSN, schema_name=schema)
    with three_nodes(schema) as (cluster, workers, port), tempfile.TemporaryDirectory() as tmp:
        serve.run(
            chaos_app(Path(tmp) / "c.db", placed=PLACED, engines=ENGINES, store=store),
            name=APP,
            route_prefix="/",
        )
        worker_ids = {w.node_id for w in workers}
        before = replica_nodes()
        lost = workers[0]

        async def lose_a_node() -> float:
            await asyncio.sleep(3.0)
            await asyncio.to_thread(cluster.remove_node, lost, False)
            return time.monotonic()

        figures: dict[str, Any] = asyncio.run(run_load(f"http://127.0.0.1:{port}", lose_a_node))
        after = replica_nodes()
    placed = [n.split("#")[1] for n in before if before[n] in worker_ids]
    figures["replicas"] = len(before)
    figures["replicas_on_worker_nodes"] = dict(Counter(placed))
    figures["replicas_on_lost_node"] = sorted(
        n.split("#")[1] for n, node in before.items() if node == lost.node_id
    )
    figures["replicas_after"] = dict(Counter(n.split("#")[1] for n in after))
    out.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
