"""Shared fixtures. Unit tests never reach Ray or a model: see tests/unit/conftest.py."""

from __future__ import annotations

import os

# Ray 2.60 turns token authentication on by default; local test clusters do not need it.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
