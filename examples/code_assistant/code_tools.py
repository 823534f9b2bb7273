"""Tools of the code-assistant example: files in one workspace folder, nowhere else.

The workspace is ``$CODE_ASSISTANT_WORKSPACE`` (default:
``<temp dir>/ray-agents-examples/workspace``). A path must be relative and stay
inside it once symlinks are resolved: ``../x``, ``/etc/x`` and links that point out
are refused. ``write_file`` is declared with ``requires_approval`` in app.yaml, so a
person sees every write before it happens.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

MAX_FILE_CHARS = 200_000


def workspace() -> Path:
    """The folder the tools may touch (created on first use)."""
    configured = os.environ.get("CODE_ASSISTANT_WORKSPACE")
    root = Path(configured).expanduser() if configured else None
    root = root or Path(tempfile.gettempdir()) / "ray-agents-examples" / "workspace"
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve()


def _inside(path: str) -> Path:
    root = workspace()
    if not path.strip():
        raise ValueError("give a file path relative to the workspace, e.g. 'notes.txt'")
    if Path(path).is_absolute():
        raise PermissionError(f"{path!r} is absolute; give a path relative to the workspace")
    target = (root / path).resolve()
    if not target.is_relative_to(root) or target == root:
        raise PermissionError(f"{path!r} is outside the workspace")
    return target


def write_file(path: str, content: str) -> str:
    """Write a text file in the workspace (folders are created). Needs approval."""
    if len(content) > MAX_FILE_CHARS:
        raise ValueError(f"content is longer than {MAX_FILE_CHARS} characters")
    target = _inside(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content)
    return f"wrote {len(content)} characters to {target.relative_to(workspace())}"


def read_file(path: str) -> str:
    """Read a text file of the workspace."""
    target = _inside(path)
    if not target.is_file():
        raise FileNotFoundError(f"no file {path!r} in the workspace")
    return target.read_text()[:MAX_FILE_CHARS]


def list_files() -> list[str]:
    """Every file of the workspace, as paths relative to it."""
    root = workspace()
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
