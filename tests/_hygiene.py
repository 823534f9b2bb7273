"""Suite hygiene, loaded by tests/conftest.py as a plugin.

- Leaked processes fail the run: a Ray, `serve run`, `ray-agents up` or vLLM server left
  running by one test starves the tests after it of CPU and memory, and makes later
  failures look unrelated (the chaos tier kills replicas and nodes, so it must start
  from a clean machine and leave one).
- Tests that need root, the package index or PostgreSQL carry a marker; without the
  requirement they fail, naming it, instead of failing obscurely or skipping silently.
- Each tier's summed test time is printed, so a slow tier shows in every run; a run
  past its budget (45 min, counted from when `make test` started, install and lint
  included) stops and fails, loudly, well before CI's hard 90-minute limit would.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

TESTS = Path(__file__).resolve().parent

# Every process this session starts inherits it, so its processes can be told from
# those of other sessions on the machine, even after they were reparented to init.
SESSION_ENV = "RAY_AGENTS_TEST_SESSION"
# How long processes still stopping at the end (Ray's workers after ray.shutdown) get.
GRACE_S = float(os.environ.get("RAY_AGENTS_TEST_LEAK_GRACE_S", "10"))
# Helpers multiprocessing keeps for the life of the interpreter; they exit with pytest.
LIFELONG = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")

_token = pytest.StashKey[str]()
_leaked = pytest.StashKey[list[str]]()
LEAKED = "these outlived the tests, so the run fails (now killed); stop them in a `finally`:"


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_token] = os.environ[SESSION_ENV] = uuid.uuid4().hex
    config.pluginmanager.register(TierTimes(), "ray_agents_tier_times")


# -- leaked processes ----------------------------------------------------------------


def session_processes(token: str) -> list[psutil.Process]:
    """Live processes of this session: descendants of pytest, and processes that carry
    its token (a `serve run` or Ray daemon reparented to init when its parent died)."""
    me = psutil.Process()
    found = {p.pid: p for p in me.children(recursive=True)}
    for proc in psutil.process_iter():
        if proc.pid in found or proc.pid == me.pid:
            continue
        try:
            if proc.environ().get(SESSION_ENV) == token:
                found[proc.pid] = proc
        except (psutil.Error, OSError):  # gone, or another user's
            continue
    alive = []
    for proc in found.values():
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            command = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if not any(name in command for name in LIFELONG):
            alive.append(proc)
    return alive


def describe(proc: psutil.Process) -> str:
    try:
        return f"pid {proc.pid} (parent {proc.ppid()}): {' '.join(proc.cmdline())[:300]}"
    except psutil.Error:
        return f"pid {proc.pid} (gone)"


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """After every fixture is torn down (pytest's own sessionfinish does that, and this
    runs last), fail the run if a process it started is alive, and kill it."""
    token = session.config.stash[_token]
    procs = session_processes(token)
    if procs:
        psutil.wait_procs(procs, timeout=GRACE_S)
        procs = session_processes(token)
    if not procs:
        return
    lines = [describe(p) for p in procs]
    for proc in procs:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=5)
    session.config.stash[_leaked] = lines
    if session.config.pluginmanager.get_plugin("terminalreporter") is None:
        print(LEAKED, *lines, sep="\n", file=sys.stderr)
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The leaks, after the failures (the terminal summary comes after sessionfinish)."""
    lines = terminalreporter.config.stash.get(_leaked, [])
    if lines:
        terminalreporter.write_sep("=", "leaked processes", red=True, bold=True)
        for line in (LEAKED, *lines):
            terminalreporter.write_line(line, red=True)


# -- requirements --------------------------------------------------------------------


@functools.cache
def missing_root() -> str | None:
    """The sandbox (tools/sandbox.py) needs root to create its namespaces."""
    from tools.sandbox import Sandbox, SandboxUnavailableError

    try:
        Sandbox.check()
        probe = ["unshare", "--net", "--mount", "--pid", "--fork", "true"]
        subprocess.run(probe, check=True, capture_output=True, timeout=30)
    except SandboxUnavailableError as exc:
        return f"needs root for `unshare -n` (tools/sandbox.py): {exc}"
    except subprocess.CalledProcessError as exc:
        return f"`unshare -n` fails here: {exc.stderr.decode().strip()}"
    except (OSError, subprocess.SubprocessError) as exc:
        return f"`unshare -n` fails here: {exc}"
    return None


def index_url() -> str:
    """pip's index as pip would use it: $PIP_INDEX_URL, its config, else PyPI."""
    if url := os.environ.get("PIP_INDEX_URL"):
        return url.split()[0]
    get = [sys.executable, "-m", "pip", "config", "get", "global.index-url"]
    out = subprocess.run(get, capture_output=True, text=True, timeout=60)
    configured = out.stdout.strip() if out.returncode == 0 else ""
    return configured or "https://pypi.org/simple/"


@functools.cache
def missing_network() -> str | None:
    """`pip install` of the base dependencies needs pip's package index."""
    url = index_url()
    try:
        if url.startswith("file://"):
            if not Path(url.removeprefix("file://")).is_dir():
                raise OSError("no such directory")
        else:
            request = urllib.request.Request(url, method="HEAD")
            urllib.request.urlopen(request, timeout=10).close()
    except (OSError, ValueError) as exc:
        return f"needs pip's package index at {url} ({exc}); connect to it or set PIP_INDEX_URL"
    return None


REQUIREMENTS: dict[str, Callable[[], str | None]] = {
    "root": missing_root,
    "network": missing_network,
    # `postgres` tests fail in their `admin` fixture (tests/store/test_postgres.py).
}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Fail (not skip: a skipped tier looks green) a test whose requirement is absent."""
    for marker, missing in REQUIREMENTS.items():
        if item.get_closest_marker(marker) is not None and (why := missing()):
            pytest.fail(f"{why}; or deselect with -m 'not {marker}'", pytrace=False)


# -- time per tier, and the run's budget ----------------------------------------------

BUDGET_ENV = "RAY_AGENTS_TEST_BUDGET_S"
"""The whole run's budget in seconds (default 45 min; 0: none). CI stops a run at 90."""
STARTED_ENV = "RAY_AGENTS_RUN_STARTED"
"""When the run started, in seconds since the epoch: `make test` passes the time it
started (install and lint count); without it, pytest's own start."""
OVER_BUDGET = (
    "the run took {elapsed:.0f} s, past its budget of {budget:.0f} s (${env}), so it stops "
    "and fails here: CI's hard limit is 90 min. The time per tier below shows which tier grew."
)


class TierTimes:
    """Sums each tier's setup, call and teardown durations; prints them at the end."""

    def __init__(self) -> None:
        self.tiers: dict[str, str] = {}
        self.seconds: dict[str, float] = defaultdict(float)
        self.tests: dict[str, set[str]] = defaultdict(set)
        self.started = float(os.environ.get(STARTED_ENV) or time.time())
        self.budget = float(os.environ.get(BUDGET_ENV, "2700"))
        self.over: str | None = None
        self.session: pytest.Session | None = None

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.session = session

    @staticmethod
    def tier(item: pytest.Item) -> str:
        """The folder under tests/: unit, store, serve, vllm, chaos."""
        try:
            parts = item.path.resolve().relative_to(TESTS).parts
        except ValueError:
            return "other"
        return parts[0] if len(parts) > 1 else "other"

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        self.tiers.update((item.nodeid, self.tier(item)) for item in items)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        name = self.tiers.get(report.nodeid, "other")
        self.seconds[name] += report.duration
        self.tests[name].add(report.nodeid)
        elapsed = time.time() - self.started
        if report.when == "teardown" and self.budget and elapsed > self.budget and not self.over:
            self.over = OVER_BUDGET.format(elapsed=elapsed, budget=self.budget, env=BUDGET_ENV)
            if self.session is not None:
                self.session.shouldfail = self.over

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.tests:
            return
        terminalreporter.write_sep("-", "wall time per tier (setup + call + teardown)")
        rows = [(name, len(self.tests[name]), self.seconds[name]) for name in sorted(self.tests)]
        rows.append(("total", sum(r[1] for r in rows), sum(r[2] for r in rows)))
        for name, count, seconds in rows:
            terminalreporter.write_line(f"{name:<8} {count:>5} tests {seconds:>9.1f} s")
        elapsed = time.time() - self.started
        terminalreporter.write_line(f"the whole run so far (${STARTED_ENV}): {elapsed:.0f} s")
        if self.over:
            terminalreporter.write_sep("=", "over budget", red=True, bold=True)
            terminalreporter.write_line(self.over, red=True, bold=True)
