"""The documented deployment path, as a user runs it: ``ray start --head`` (with its
dashboard), ``ray-agents serve-config``, Ray's own ``serve deploy`` and ``serve
status``; then a changed app file deployed the same way rolls the app out.

The cluster runs in a session of its own (``ray start --block``), stopped with its whole
process group at the end: this session's Ray is left alone (``ray stop`` would stop
every Ray on the machine).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

pytestmark = [pytest.mark.chaos, pytest.mark.postgres, pytest.mark.timeout(600)]

ROOT = Path(__file__).parents[2]
BIN = Path(sys.executable).parent
FIXTURE = ROOT / "tests/fixtures/scaleout/app.yaml"
DSN = os.environ.get("RAY_AGENTS_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def run(*argv: str, env: dict[str, str]) -> str:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{argv}: {done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A one-node Ray cluster started by ``ray start --head``; its dashboard address
    and the environment that reaches it."""
    port, dashboard = free_port(), free_port()
    # Ray's socket paths must stay under 107 bytes: a short folder of its own.
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_ADDRESS": f"127.0.0.1:{port}"}
    log = (tmp_path / "ray-start.log").open("w")
    proc = subprocess.Popen(
        [
            str(BIN / "ray"), "start", "--head", "--block", f"--port={port}",
            f"--dashboard-port={dashboard}", "--include-dashboard=true", "--num-cpus=4",
            "--disable-usage-stats", f"--temp-dir={temp}",
        ],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    address = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp_path / "ray-start.log").read_text()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{address}/api/version", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, "the dashboard did not come up"
            time.sleep(1)
        yield address, env
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def test_serve_deploy_of_the_rendered_config_serves_and_rolls_out(
    cluster: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    import psycopg

    dashboard, env = cluster
    app = tmp_path / "app.yaml"
    shutil.copy(FIXTURE, app)
    schema = f"deploy_cli_{uuid.uuid4().hex[:8]}"
    http = free_port()
    config = tmp_path / "serve.yaml"
    url = f"http://127.0.0.1:{http}/scaleout"

    def deploy() -> None:
        run(
            str(BIN / "ray-agents"), "serve-config", str(app), "--port", str(http),
            "--env", f"RAY_AGENTS_PG_SCHEMA={schema}", "-o", str(config), env=env,
        )  # fmt: skip
        run(str(BIN / "serve"), "deploy", str(config), "-a", dashboard, env=env)

    def answer(client: httpx.Client, expected: str, timeout_s: float = 120) -> None:
        """Until a new conversation's answer starts with ``expected``."""
        deadline, last = time.monotonic() + timeout_s, ""
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                created = client.post("/v1/conversations", json={"agent": "front"})
                if created.status_code == 201:
                    cid = created.json()["id"]
                    sent = client.post(f"/v1/conversations/{cid}/messages", json={"content": "hi"})
                    last = sent.text
                    if sent.status_code == 200 and sent.json()["answer"].startswith(expected):
                        return
            time.sleep(1)
        raise AssertionError(f"no answer starting {expected!r}: {last}")

    try:
        deploy()
        with httpx.Client(base_url=url, timeout=60) as client:
            answer(client, "v1 ")
            status = run(str(BIN / "serve"), "status", "-a", dashboard, env=env)
            assert "scaleout" in status and "RUNNING" in status, status
            app.write_text(app.read_text().replace("front, version one", "front, version two"))
            deploy()  # the same two commands after an edit: a roll-out
            answer(client, "v2 ")
    finally:
        with psycopg.connect(DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
