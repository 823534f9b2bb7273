"""The suite's hygiene plugin (tests/_hygiene.py), run on small suites of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[2]


def pytest_run(
    tmp_path: Path, code: str, **env: str
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run ``code`` as a test file under a pytest of its own with the plugin."""
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    network: index\n")
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(code))
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests._hygiene", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO), "RAY_AGENTS_TEST_LEAK_GRACE_S": "1", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return out, tmp_path / "pids"


def gone(pids_file: Path) -> bool:
    pids = [int(pid) for pid in pids_file.read_text().split()]
    deadline = time.monotonic() + 10
    while any(psutil.pid_exists(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not any(psutil.pid_exists(pid) for pid in pids)


LEAKY = """
import subprocess, time

def test_leaks_a_child():
    proc = subprocess.Popen(["sleep", "301"], start_new_session=True)
    open("pids", "a").write(f"{proc.pid}\\n")

def test_leaks_an_orphan():
    # The sleep is reparented to init: only the session's token identifies it.
    subprocess.run(["setsid", "sh", "-c", "sleep 302 & echo $! >> pids"], check=True)
    time.sleep(0.5)
"""


def test_a_process_left_running_fails_the_run_and_is_killed(tmp_path: Path) -> None:
    out, pids = pytest_run(tmp_path, LEAKY)
    assert out.returncode == 1, out.stdout
    assert "2 passed" in out.stdout
    assert "leaked processes" in out.stdout
    assert "sleep 301" in out.stdout and "sleep 302" in out.stdout
    assert gone(pids)


def test_a_process_stopped_by_its_test_passes(tmp_path: Path) -> None:
    code = """
    import subprocess

    def test_waits():
        proc = subprocess.Popen(["sleep", "0.2"])
        proc.wait()
    """
    out, _ = pytest_run(tmp_path, code)
    assert out.returncode == 0, out.stdout
    assert "leaked" not in out.stdout
    assert "wall time per tier" in out.stdout


def test_a_missing_requirement_fails_and_names_it(tmp_path: Path) -> None:
    code = """
    import pytest

    @pytest.mark.network
    def test_needs_the_index():
        pass
    """
    out, _ = pytest_run(tmp_path, code, PIP_INDEX_URL="file:///nonexistent/simple")
    assert out.returncode == 1, out.stdout
    assert "1 error" in out.stdout
    assert "needs pip's package index at file:///nonexistent/simple" in out.stdout
    assert "-m 'not network'" in out.stdout


def test_a_run_past_its_budget_stops_and_fails_loudly(tmp_path: Path) -> None:
    """The budget counts from when the run started (`make test` passes it): the test
    that crosses it is the last to run, and the run fails with the reason."""
    code = """
    def test_first():
        pass

    def test_second():
        pass
    """
    started = str(time.time() - 100)
    env = {"RAY_AGENTS_RUN_STARTED": started, "RAY_AGENTS_TEST_BUDGET_S": "60"}
    out, _ = pytest_run(tmp_path, code, **env)
    assert out.returncode == 1, out.stdout
    assert "1 passed" in out.stdout  # stopped after the first test
    assert "over budget" in out.stdout
    assert "past its budget of 60 s ($RAY_AGENTS_TEST_BUDGET_S)" in out.stdout

    within = {"RAY_AGENTS_RUN_STARTED": started, "RAY_AGENTS_TEST_BUDGET_S": "0"}  # no budget
    out, _ = pytest_run(tmp_path, code, **within)
    assert out.returncode == 0, out.stdout
    assert "2 passed" in out.stdout and "over budget" not in out.stdout


def test_make_test_runs_every_tier() -> None:
    """`make test` names the tiers it runs (some beside others): a new folder of tests
    under tests/ must be named there too, or it would never run."""
    import re

    recipe = (REPO / "Makefile").read_text()
    named = set(re.findall(r"\btests/(\w+)\b", recipe))
    tiers = {p.parent.name for p in (REPO / "tests").glob("*/test_*.py")}
    assert tiers and tiers <= named, f"tiers `make test` does not run: {sorted(tiers - named)}"
