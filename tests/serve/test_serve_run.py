"""Ray's own ``serve run serve_app:app``, as a user runs it from the repository: it
starts a Ray of its own, builds the app from an app file (``config=``) and serves the
API; Ctrl-C stops it. The default app's files, the pool swapped for the scripted engine
(the real model under `ray-agents up` is tests/vllm/test_cli_up.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
import yaml

from tests.fixtures.commands import BIN, REPO, start, stop, wait_for
from tests.fixtures.placed_app import generating_decisions

pytestmark = [pytest.mark.serve, pytest.mark.timeout(600)]

SCRIPTED = {
    "models": [
        {
            "id": "smollm2",
            "source": "builtin:smollm2-135m-instruct",
            # The default agents decide, then act: the reply names its choice ("next"),
            # which decides (generating_decisions).
            "scripted": [{"json_reply": {"next": "answer", "text": "Hello from serve run."}}],
        }
    ]
}


def test_serve_run_serves_an_app_file(tmp_path: Path) -> None:
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    path = tmp_path / "configs/app.yaml"
    data = yaml.safe_load(path.read_text())
    data["pool"] = SCRIPTED
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    generating_decisions(tmp_path / "configs/agents")
    log_path = tmp_path / "serve.log"
    env = {"RAY_AGENTS_DB": str(tmp_path / "conversations.db")}
    with log_path.open("wb") as log:
        proc = start([str(BIN / "serve"), "run", "serve_app:app", f"config={path}"], log, **env)
        try:
            wait_for(log_path, r"Application 'default' is ready at", proc, 300)
            reply = httpx.post(
                "http://127.0.0.1:8000/v1/chat/completions",
                headers={"Authorization": "Bearer dev-local-key"},
                json={"model": "assistant", "messages": [{"role": "user", "content": "Hello!"}]},
                timeout=120,
            )
            assert reply.status_code == 200, reply.text
            assert reply.json()["choices"][0]["message"]["content"] == "Hello from serve run."
        finally:
            code, left = stop(proc, log_path)
    assert code == 0, log_path.read_text()[-3000:]
    assert not left, f"`serve run` left these running after it exited: {left}"
