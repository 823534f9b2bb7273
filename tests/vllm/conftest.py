from __future__ import annotations

import pytest

from agents.pool import weights

DEFAULT_MODEL = "builtin:smollm2-135m-instruct"


@pytest.fixture(scope="session", autouse=True)
def _model_prepared() -> None:
    """The real default model, converted once (`make install` already did it)."""
    weights.prepare(DEFAULT_MODEL)
