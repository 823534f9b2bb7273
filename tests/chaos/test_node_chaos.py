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

import pytest

from tests.chaos._chaos import assert_recovered

pytestmark = [pytest.mark.chaos, pytest.mark.postgres, pytest.mark.timeout(900)]

ROOT = Path(__file__).parents[2]
AGENT_DEPLOYMENTS = {"agents-api", "agent-triage", "agent-billing", "tools"}


def test_losing_a_worker_node_under_load_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "node_loss.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # A session of its own, so the whole process group can be stopped in the end.
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.chaos._node_loss", str(out)],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    try:
        assert proc.wait(timeout=780) == 0
    finally:
        # Whatever the run left in its session (a Ray that outlived it) goes too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    figures = json.loads(out.read_text())
    print(f"\nchaos (a worker node removed): {figures}")
    # The API, agents and tools ran on the worker nodes, and the lost one held some.
    assert set(figures["replicas_on_worker_nodes"]) == AGENT_DEPLOYMENTS
    assert figures["replicas_on_lost_node"], figures
    assert_recovered(figures)
