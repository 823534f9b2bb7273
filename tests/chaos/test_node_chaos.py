"""Chaos: a worker node of a three-node Ray cluster removed under load.

The cluster runs in a process of its own (``_node_loss``): this session's Ray stays as
it is, and the process (with every Ray process it started) is gone when the test ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.chaos._chaos import assert_recovered

pytestmark = [pytest.mark.chaos, pytest.mark.postgres, pytest.mark.timeout(900)]

ROOT = Path(__file__).parents[2]
AGENT_DEPLOYMENTS = {"agents-api", "agent-triage", "agent-billing", "tools"}


def _run_apart(module: str, out: Path) -> dict[str, Any]:
    """``python -m module OUT`` in a session of its own (its own Ray); its figures."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # A session of its own, so the whole process group can be stopped in the end.
    proc = subprocess.Popen(
        [sys.executable, "-m", module, str(out)], cwd=ROOT, env=env, start_new_session=True
    )
    try:
        assert proc.wait(timeout=780) == 0
    finally:
        # Whatever the run left in its session (a Ray that outlived it) goes too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    figures: dict[str, Any] = json.loads(out.read_text())
    return figures


def test_losing_a_worker_node_under_load_loses_nothing(tmp_path: Path) -> None:
    figures = _run_apart("tests.chaos._node_loss", tmp_path / "node_loss.json")
    print(f"\nchaos (a worker node removed): {figures}")
    # The API, agents and tools ran on the worker nodes, and the lost one held some.
    assert set(figures["replicas_on_worker_nodes"]) == AGENT_DEPLOYMENTS
    assert figures["replicas_on_lost_node"], figures
    assert_recovered(figures)


def test_the_default_apps_yaml_placed_on_three_nodes_outlives_a_node(tmp_path: Path) -> None:
    """configs/app.yaml plus a placement override, on PostgreSQL and the scripted engine:
    engines on the engine node, everything else on the two others; the conversation
    goes on after the node holding its agent's replica is gone."""
    figures = _run_apart("tests.chaos._default_nodes", tmp_path / "default_nodes.json")
    print(f"\nthe default app on three nodes: {figures}")
    assert figures["on_head"] == ["pool-smollm2", "pool-smollm2-prefill"], figures
    assert set(figures["on_workers"]) == {"agents-api", "agent-assistant", "agent-math", "tools"}
    assert figures["first"]["status"] == "ok", figures
    assert figures["lost_node_held"], figures
    assert figures["after"] == {"status": "ok", "errors": [], "answer": True}, figures
    assert figures["stored"] == ["message", "done", "message", "done"], figures
