"""Scale-out under Serve: an app on PostgreSQL with two API replicas and two replicas
per agent, deployed from the Serve config ``ray-agents k8s render`` writes, the way
``serve deploy`` deploys it; concurrent sends to one conversation; a roll-out under load.

The deploy does what ``serve deploy``'s handler in Ray's dashboard does with the file
(validate it with ``ServeDeploySchema``, ``deploy_apps`` on the running controller);
this session's Ray runs no dashboard to take the file over HTTP.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from agents import k8s
from agents.client import AsyncClient
from agents.deploy import ServeTarget
from agents.events import AnswerEvent, DoneEvent, MessageEvent

pytestmark = [pytest.mark.serve, pytest.mark.postgres, pytest.mark.timeout(600)]

ROOT = Path(__file__).parents[2]
FIXTURE = ROOT / "tests/fixtures/scaleout/app.yaml"
APP = "scaleout"
DSN = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass
class Deployed:
    url: str
    app_file: Path
    schema: str
    http_port: int

    def deploy(self) -> float:
        """Render the app file and deploy the RayService's serveConfigV2, as ``serve
        deploy`` would; the time the controller recorded before it (to wait for)."""
        from ray import serve
        from ray.serve._private.api import serve_start
        from ray.serve.schema import ServeDeploySchema

        manifest = k8s.render_rayservice(ServeTarget(self.app_file))
        config = yaml.safe_load(manifest["spec"]["serveConfigV2"])
        config["http_options"]["port"] = self.http_port  # this session's proxy
        config["applications"][0]["runtime_env"] = {
            "env_vars": {"RAY_AGENTS_PG_SCHEMA": self.schema}
        }
        app = serve.status().applications.get(APP)
        before = app.last_deployed_time_s if app is not None else 0.0
        serve_start().deploy_apps(ServeDeploySchema.model_validate(config))
        return before

    def wait_rolled_out(self, before: float, timeout_s: float = 240) -> None:
        """Until the app deployed after ``before`` runs with every replica updated."""
        from ray import serve

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            app = serve.status().applications.get(APP)
            if (
                app is not None
                and app.last_deployed_time_s > before
                and app.status == "RUNNING"
                and all(d.status == "HEALTHY" for d in app.deployments.values())
            ):
                return
            time.sleep(0.5)
        raise AssertionError(f"the app did not roll out: {serve.status().applications.get(APP)}")


def _postgres_reachable() -> None:
    import psycopg

    try:
        psycopg.connect(DSN, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is unreachable at {DSN} ({exc}); this tier needs it")


def _drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="module")
def deployed(
    ray_cluster: dict[str, int], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployed]:
    from ray import serve

    _postgres_reachable()
    folder = tmp_path_factory.mktemp("scaleout")
    app_file = folder / "app.yaml"
    shutil.copy(FIXTURE, app_file)
    schema = f"scaleout_{uuid.uuid4().hex[:8]}"
    url = f"http://127.0.0.1:{ray_cluster['http']}/scaleout"
    found = Deployed(url, app_file, schema, ray_cluster["http"])
    try:
        found.wait_rolled_out(found.deploy())
        yield found
    finally:
        try:
            serve.delete(APP)
        finally:
            _drop_schema(schema)


def _replicas(deployment: str) -> int:
    from ray import serve

    status = serve.status().applications[APP].deployments[deployment]
    return int(status.replica_states.get("RUNNING", 0))


async def test_concurrent_sends_to_one_conversation_run_in_order(deployed: Deployed) -> None:
    """Ten sends 50 ms apart through two API replicas: ten turns, in order, none 409."""
    assert _replicas("agents-api") == 2 and _replicas("agent-front") == 2
    async with AsyncClient(deployed.url, max_retries=0, timeout=120) as client:
        conversation = await client.conversations.create("front")
        texts = [f"message {i}" for i in range(10)]

        async def send(i: int) -> Any:
            await asyncio.sleep(0.05 * i)
            return await conversation.send(texts[i])

        results = await asyncio.gather(*(send(i) for i in range(10)))
        assert [r.status for r in results] == ["ok"] * 10
        events = await conversation.messages()
    # Each turn: its message, its answer, its done; turn after turn in sending order.
    turns = [e for e in events if isinstance(e, MessageEvent | AnswerEvent | DoneEvent)]
    assert [type(e).__name__ for e in turns] == ["MessageEvent", "AnswerEvent", "DoneEvent"] * 10
    assert [e.content for e in turns if isinstance(e, MessageEvent)] == texts
    assert all(e.status == "ok" for e in turns if isinstance(e, DoneEvent))


async def test_a_roll_out_under_load_loses_nothing(deployed: Deployed) -> None:
    """16 conversations talk while ``serve deploy`` rolls out changed instructions, a
    changed replica count and a new agent: every message stored, every turn done, and
    the turns after the roll-out answer with the new instructions."""
    stop = asyncio.Event()
    rolled: list[float] = []  # when the roll-out ended
    renewed: set[str] = set()  # conversations with a turn begun after it
    all_renewed = asyncio.Event()
    sent: dict[str, list[str]] = {}
    answers: dict[str, list[tuple[float, str]]] = {}

    async with AsyncClient(deployed.url, timeout=120) as client:

        async def talk(n: int) -> None:
            conversation = await client.conversations.create("front")
            sent[conversation.id] = []
            answers[conversation.id] = []
            turn = 0
            while not stop.is_set():
                text = f"ask back {n}.{turn}" if turn % 3 == 2 else f"conversation {n} turn {turn}"
                sent[conversation.id].append(text)
                started = time.monotonic()
                result = await conversation.send(text)
                assert result.status == "ok", result
                answers[conversation.id].append((started, result.answer or ""))
                if rolled and started > rolled[0]:
                    renewed.add(conversation.id)
                    if len(renewed) == len(load):
                        all_renewed.set()
                turn += 1

        load = [asyncio.create_task(talk(n)) for n in range(16)]
        await asyncio.sleep(4)
        changed = yaml.safe_load(deployed.app_file.read_text())
        changed["agents"][0]["instructions"] = "You are front, version two."
        changed["agents"][1]["scaling"] = {"min_replicas": 3, "max_replicas": 3}
        changed["agents"].append({"name": "extra", "model": "m", "description": "new"})
        deployed.app_file.write_text(yaml.safe_dump(changed, sort_keys=False))
        before = await asyncio.to_thread(deployed.deploy)
        await asyncio.to_thread(deployed.wait_rolled_out, before)
        rolled_out = time.monotonic()
        rolled.append(rolled_out)
        # Until every conversation had a turn that began after the roll-out.
        await asyncio.wait_for(all_renewed.wait(), timeout=120)
        stop.set()
        await asyncio.gather(*load)

        assert _replicas("agent-back") == 3
        assert "extra" in {a.name for a in await client.agents.list()}
        fresh = await client.conversations.create("front")
        assert (await fresh.send("hello")).answer.startswith("v2 ")  # type: ignore[union-attr]
        for cid, texts in sent.items():
            events = await (await client.conversations.get(cid)).messages()
            stored = [e.content for e in events if isinstance(e, MessageEvent)]
            assert stored == texts  # 0 lost
            dones = [e for e in events if isinstance(e, DoneEvent)]
            assert len(dones) == len(texts) and all(d.status == "ok" for d in dones)
    versions = [a.split()[0] for turns in answers.values() for _, a in turns if a != "back here"]
    after = [
        a.split()[0]
        for turns in answers.values()
        for started, a in turns
        if started > rolled_out and a != "back here"
    ]
    assert len(after) >= 16 and set(after) == {"v2"}, after
    assert "v1" in versions  # the load ran across the roll-out
    print(f"\nroll-out: {sum(len(t) for t in sent.values())} turns, {len(after)} after it")


def test_the_deployed_app_answers_its_probes(deployed: Deployed) -> None:
    assert httpx.get(f"{deployed.url}/readyz", timeout=10).json() == {"status": "ready"}
