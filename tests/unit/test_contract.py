"""The public contract: one error-code table, exception names, messages that leak
nothing, a typed package, and an SDK that imports nothing of the server."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from agents.api._errors import ERROR_CODES, api_error
from agents.api.types import ERROR_STATUS
from agents.errors import (
    ConfigError,
    ConversationBusyError,
    EngineError,
    RayAgentsError,
    StoreError,
    VariableNotAllowedError,
)

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("agents", "tools")


def defined_exceptions() -> dict[str, str]:
    """Every exception class defined in the packages' source: name -> module."""
    found: dict[str, str] = {}
    known = {"Exception", "BaseException", "RuntimeError", "ValueError"}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            module = module.removesuffix(".__init__")
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.ClassDef):
                    continue
                bases = {
                    b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases
                }
                if bases & known or any(b.endswith("Error") for b in bases):
                    found[node.name] = module
    return found


def ray_agents_errors() -> list[type[RayAgentsError]]:
    """Every RayAgentsError class, with the modules that define them imported."""
    for name, module in defined_exceptions().items():
        if not name.startswith("_"):
            importlib.import_module(module)
    classes, todo = [], [RayAgentsError]
    while todo:
        cls = todo.pop()
        classes.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted(set(classes), key=lambda c: c.__name__)


def test_exception_names_end_in_error() -> None:
    public = {n: m for n, m in defined_exceptions().items() if not n.startswith("_")}
    assert len(public) > 40  # the scan sees the trees (server, tools, SDK)
    assert [f"{m}.{n}" for n, m in public.items() if not n.endswith("Error")] == []


def test_every_exception_class_maps_to_exactly_one_code_in_the_one_table() -> None:
    classes = ray_agents_errors()
    codes = {cls: cls.__dict__.get("code") for cls in classes}
    assert [c.__name__ for c, code in codes.items() if code is None] == []  # each its own
    assert len(set(codes.values())) == len(codes)  # unique
    assert set(codes.values()) == set(ERROR_CODES)  # every code in the table, no stale row
    for code, entry in ERROR_CODES.items():
        assert entry.type in ERROR_STATUS, code


def test_the_readme_lists_every_code_with_its_status() -> None:
    readme = (ROOT / "README.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| (\d{3}) \|", readme, re.MULTILINE))
    assert {code: int(status) for code, status in rows.items()} == {
        code: entry.status for code, entry in ERROR_CODES.items()
    }


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (StoreError("unable to open database file /srv/acme/conversations.db"), 503, "store_error"),
        (ConfigError("/etc/ray-agents/app.yaml:3: store.path: bad"), 500, "config_error"),
        (EngineError("RuntimeError: CUDA error at /opt/vllm/worker.py:12"), 503, "engine_failed"),
        (RuntimeError("KeyError in /work/agents/turn.py"), 500, "internal_error"),
    ],
)
def test_error_messages_never_carry_paths_or_internals(
    exc: Exception, status: int, code: str
) -> None:
    error = api_error(exc)
    assert (error.status, error.code, error.hidden) == (status, code, True)
    assert "/" not in error.message and "Error" not in error.message
    assert "request id" in error.message


def test_known_errors_keep_their_message_and_code() -> None:
    busy = api_error(ConversationBusyError("conversation 'c1' is running another turn"))
    assert (busy.status, busy.type, busy.code) == (409, "conversation_busy", "conversation_busy")
    assert busy.message == "conversation 'c1' is running another turn" and not busy.hidden
    refused = api_error(VariableNotAllowedError("variables: agent 'a' does not let ..."))
    assert (refused.status, refused.code) == (400, "variable_not_allowed")


def test_the_sdk_imports_nothing_of_the_server() -> None:
    code = (
        "import sys, agents.client; "
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('agents', 'tools', 'yaml', 'ray', 'fastapi', 'langchain_core'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    allowed = {"agents", "agents._lazy", "agents.api", "agents.api.types", "agents.errors"}
    allowed |= {"agents.events"} | {m for m in loaded if m.startswith("agents.client")}
    assert loaded - allowed == set()  # not the YAML loader, AgentSpec, the pool or tools


def test_the_packages_are_typed() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    data = project["tool"]["setuptools"]["package-data"]
    for package in PACKAGES:
        assert (ROOT / package / "py.typed").exists()
        assert data[package] == ["py.typed"]
