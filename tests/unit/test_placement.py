"""Placement: custom Ray resources per agent, API, tool executor and pool role."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agents.pool.builder import llm_configs
from agents.pool.spec import ModelSpec
from agents.spec import AgentSpec

SCRIPTED = {"id": "m", "source": "builtin:smollm2-135m-instruct", "scripted": []}


def test_resources_name_custom_resources_only() -> None:
    assert AgentSpec(name="a", model="m", resources={"agent-node": 0.01}).resources
    with pytest.raises(ValidationError, match="set by the role itself"):
        AgentSpec(name="a", model="m", resources={"CPU": 1})
    with pytest.raises(ValidationError, match="above 0"):
        AgentSpec(name="a", model="m", resources={"agent-node": 0})


def test_a_pool_roles_resources_join_its_engine_bundle() -> None:
    model = ModelSpec.model_validate(
        {
            **SCRIPTED,
            "mode": "disaggregated",
            "decode": {"resources": {"engine-node": 1}},
            "prefill": {"replicas": 1},
        }
    )
    decode, prefill = llm_configs(model)
    assert decode.placement_group_config == {
        "bundle_per_worker": {"CPU": 1, "engine-node": 1},
        "strategy": "PACK",
    }
    assert prefill is not None and prefill.placement_group_config is None
