"""The app config: one YAML file composing the pool, tools, agents, store and API.

``load_app_config`` reads it (``${VAR}`` interpolation, ``include`` d agent files,
paths relative to the file that names them) and checks every reference; each
problem names its file, line and field. ``app_file_schema`` is the JSON Schema
editors use to check the YAML as it is typed.
"""

from __future__ import annotations

from agents.config._checks import check_app
from agents.config._load import load_app_config
from agents.config._model import (
    AgentInclude,
    AppConfig,
    AppSection,
    agent_file_schema,
    app_file_schema,
)

__all__ = [
    "AgentInclude",
    "AppConfig",
    "AppSection",
    "agent_file_schema",
    "app_file_schema",
    "check_app",
    "load_app_config",
]
