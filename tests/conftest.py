"""Shared fixtures: one local Ray instance for every Serve tier of the session.

Unit tests never reach Ray or a model (tests/unit/conftest.py forbids it). The suite's
hygiene (leaked processes fail the run, requirement markers, time per tier) is the
plugin tests/_hygiene.py.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

pytest_plugins = ["tests._hygiene"]

# Ray 2.60 turns token authentication on by default; a local test cluster needs none.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[dict[str, int]]:
    """A local Ray with Serve; yields its ports (metrics, HTTP).

    Stopped in a `finally`, so a failing `serve.start` or `serve.shutdown` cannot leave
    Ray's processes behind (tests/_hygiene.py fails the run if they are)."""
    import ray
    from ray import serve

    ports = {"metrics": free_port(), "http": free_port()}
    # Logical CPUs: each engine replica reserves one; the engines are pinned to real
    # cores by the pool spec, so more logical CPUs than cores is intended.
    ray.init(
        num_cpus=8,
        _metrics_export_port=ports["metrics"],
        include_dashboard=False,
        # Replica logs stay in /tmp/ray/session_latest/logs instead of flooding pytest.
        log_to_driver=False,
        # Metrics reach the Prometheus endpoint every 2 s instead of 10: the tests that
        # read them (engine stats, turn counters) wait that much less.
        _system_config={"metrics_report_interval_ms": 2000},
    )
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": ports["http"]})
        yield ports
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
