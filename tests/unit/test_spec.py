from __future__ import annotations

from pathlib import Path

import pytest

from agents.errors import ConfigError
from agents.pool.spec import ModelSpec, PoolSpec, pool_file_schema

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pool.yaml"
    path.write_text(text)
    return path


def test_default_config_loads() -> None:
    spec = PoolSpec.from_file(REPO / "configs" / "pool.yaml")
    model = spec.model("smollm2")
    assert model.mode == "disaggregated"
    assert model.prefill is not None and model.prefill.cpu_bind == "0"
    assert model.kv_transfer.connector == "nixl-cpu"


def test_gpu_config_loads() -> None:
    spec = PoolSpec.from_file(REPO / "configs" / "pool.gpu.yaml")
    model = spec.models[0]
    assert model.accelerator == "gpu"
    assert model.kv_transfer.connector == "nixl"


@pytest.mark.parametrize(
    ("body", "line", "field", "why"),
    [
        ("models:\n  - id: a\n    source: s\n    colour: red\n", 4, "models.0.colour", "Extra"),
        ("models:\n  - id: a\n    source: s\n    mode: sideways\n", 4, "models.0.mode", "Input"),
        (
            "models:\n  - id: a\n    source: s\n    decode:\n      replicas: -1\n",
            5,
            "models.0.decode.replicas",
            "greater than or equal",
        ),
        ("models:\n  - id: a\n", 2, "models.0.source", "required"),
        ("models:\n  - id: a\n    source: s\n    mode: disaggregated\n", 2, "models.0", "prefill"),
        ("models:\n  - {id: a, source: s}\n  - {id: a, source: t}\n", 1, "models", "duplicate"),
        ("models: []\n", 1, "models", "at least 1"),
        (
            "models:\n  - id: a\n    source: s\n    engine:\n      kv_cache_gib: zero\n",
            5,
            "models.0.engine.kv_cache_gib",
            "number",
        ),
    ],
)
def test_bad_config_names_file_line_field(
    tmp_path: Path, body: str, line: int, field: str, why: str
) -> None:
    path = write(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        PoolSpec.from_file(path)
    message = str(info.value)
    assert f"{path}:{line}: {field}" in message
    assert why in message


def test_pool_section_of_a_larger_file(tmp_path: Path) -> None:
    path = write(tmp_path, "pool:\n  models:\n    - id: a\n      source: s\n      bad: 1\n")
    with pytest.raises(ConfigError, match=r"pool.yaml:5: pool.models.0.bad: Extra"):
        PoolSpec.from_file(path)


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, "models:\n  - id: a\n    source: [unclosed\n")
    with pytest.raises(ConfigError, match=r"pool.yaml:\d+: YAML syntax error"):
        PoolSpec.from_file(path)


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        PoolSpec.from_file("/nonexistent/pool.yaml")


def test_replicas_xor_autoscaling() -> None:
    with pytest.raises(ValueError, match="either `replicas` or `autoscaling`"):
        ModelSpec.model_validate(
            {"id": "a", "source": "s", "decode": {"replicas": 2, "autoscaling": {}}}
        )
    model = ModelSpec.model_validate(
        {"id": "a", "source": "s", "decode": {"autoscaling": {"max_replicas": 3}}}
    )
    assert model.decode.replicas is None
    assert model.decode.autoscaling is not None and model.decode.autoscaling.max_replicas == 3


def test_autoscaling_bounds() -> None:
    with pytest.raises(ValueError, match="min_replicas must not exceed"):
        ModelSpec.model_validate(
            {"id": "a", "source": "s", "decode": {"autoscaling": {"min_replicas": 3}}}
        )


def test_prefill_only_when_disaggregated() -> None:
    with pytest.raises(ValueError, match="only for mode: disaggregated"):
        ModelSpec.model_validate({"id": "a", "source": "s", "prefill": {}})


def test_published_schema_is_current() -> None:
    import json

    published = json.loads((REPO / "configs" / "schema" / "pool.schema.json").read_text())
    assert published == pool_file_schema()
