from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests must not start Ray (and so cannot reach a real engine by accident)."""
    import ray

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("unit tests must not start Ray; mark the test `serve` or `vllm`")

    monkeypatch.setattr(ray, "init", forbidden)
