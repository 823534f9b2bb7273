"""The app file's model: every section of ``configs/app.yaml`` and its JSON Schema."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from agents.api.spec import ApiSpec
from agents.conversations import DEFAULT_LEASE_S, DEFAULT_TURN_TIMEOUT_S
from agents.observability.spec import ObservabilitySpec
from agents.pool.spec import PoolSpec
from agents.protocol import DEFAULT_MAX_HOPS, Multitask
from agents.remote import RemoteAgentSpec
from agents.service import DEFAULT_CACHE_BYTES, DEFAULT_CACHE_SIZE
from agents.spec import AgentSpec
from agents.store.spec import StoreSpec
from tools.spec import ToolsConfig

__all__ = ["AgentInclude", "AppConfig", "AppSection", "agent_file_schema", "app_file_schema"]

_Strict = ConfigDict(extra="forbid")
# How pydantic names the two kinds of `agents` entry in an error's location.
ENTRY_TAGS = ("AgentSpec", "AgentInclude", "RemoteAgentSpec")


class AppSection(BaseModel):
    """The app as a whole: its name, entry agent and per-turn bounds."""

    model_config = _Strict

    name: str = Field(
        "agents",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$",
        description="The Serve application's name.",
    )
    default_agent: str | None = Field(
        None, description="The agent a new conversation starts with (default: the first)."
    )
    max_hops: int = Field(
        DEFAULT_MAX_HOPS, ge=1, description="Most hand-offs and asks in one turn."
    )
    turn_timeout_s: float = Field(
        DEFAULT_TURN_TIMEOUT_S, gt=0, description="Most seconds one turn may take, all agents."
    )
    turn_lease_s: float = Field(
        DEFAULT_LEASE_S,
        ge=1,
        le=300,
        description=(
            "Seconds a turn's runner holds the turn without renewing it (it renews every "
            "third of it). A runner that dies is noticed after this long, and its turn "
            "is resumed by another replica."
        ),
    )
    multitask: Multitask = Field(
        "enqueue",
        description=(
            "What a new message does to a turn of its conversation that still runs, unless "
            "the send says: 'enqueue' (run after it, in order), 'reject' (409 "
            "conversation_busy with Retry-After), 'interrupt' (stop it, keep what it "
            "stored, run the new one) or 'rollback' (the same, and the stopped turn leaves "
            "the history the agents see)."
        ),
    )
    cache_size: int = Field(
        DEFAULT_CACHE_SIZE,
        ge=1,
        description="Conversations each agent replica keeps in memory (the rest are reloaded).",
    )
    cache_mib: int = Field(
        DEFAULT_CACHE_BYTES // 2**20,
        ge=1,
        description=(
            "MiB of conversation history (approximate) each agent replica keeps in memory; "
            "the least recently used go first, and a longer history is not cached."
        ),
    )
    python_path: list[str] = Field(
        default_factory=list,
        description=(
            "Folders (relative to this file) holding the modules that `function` tools "
            "import, e.g. ['.'] for tools next to the YAML. Absolute after loading."
        ),
    )


class AgentInclude(BaseModel):
    """Agents defined in files of their own (each an `agent:` file)."""

    model_config = _Strict

    include: str = Field(
        min_length=1,
        description="A file or glob relative to this file, e.g. 'agents/*.yaml'.",
    )


def _entry_kind(value: Any) -> str:
    if isinstance(value, AgentInclude) or (isinstance(value, dict) and "include" in value):
        return "AgentInclude"
    if isinstance(value, RemoteAgentSpec) or (isinstance(value, dict) and "remote" in value):
        return "RemoteAgentSpec"
    return "AgentSpec"


AgentEntry = Annotated[
    Annotated[AgentSpec, Tag("AgentSpec")]
    | Annotated[AgentInclude, Tag("AgentInclude")]
    | Annotated[RemoteAgentSpec, Tag("RemoteAgentSpec")],
    Discriminator(_entry_kind),
]


class AppConfig(BaseModel):
    """One app: its generator pool, tools, agents, conversation store and HTTP API.

    Load it with ``load_app_config``, which also resolves includes, environment
    variables and relative paths, and checks every cross-reference.
    """

    model_config = _Strict

    app: AppSection = Field(default_factory=AppSection, description="The app as a whole.")
    pool: PoolSpec = Field(description="The models every agent shares.")
    tools: ToolsConfig | None = Field(
        None, description="Tools, MCP servers and the sandbox; needed when agents use tools."
    )
    agents: Annotated[list[AgentEntry], Field(min_length=1)] = Field(
        description=(
            "The agents: inline definitions, `{include: 'agents/*.yaml'}` entries, and "
            "remote A2A agents (`{name, description, remote: {url, ...}}`) that the "
            "agents here may hand off to or ask."
        )
    )
    store: StoreSpec = Field(default_factory=StoreSpec, description="Where conversations are kept.")
    api: ApiSpec = Field(default_factory=ApiSpec, description="The HTTP API: keys and limits.")
    observability: ObservabilitySpec = Field(
        default_factory=ObservabilitySpec,
        description="Traces, logs and metrics of every deployment.",
    )

    @property
    def agent_specs(self) -> list[AgentSpec]:
        """The agents (after loading, includes are replaced by the agents they name)."""
        return [a for a in self.agents if isinstance(a, AgentSpec)]

    @property
    def remote_specs(self) -> list[RemoteAgentSpec]:
        """The remote (A2A) agents the app's agents may reach."""
        return [a for a in self.agents if isinstance(a, RemoteAgentSpec)]

    @property
    def default_agent(self) -> str:
        """The agent a new conversation starts with."""
        return self.app.default_agent or self.agent_specs[0].name


def _file_schema(model: type[BaseModel], title: str, section: str | None) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/$defs/{model}")
    defs = schema.pop("$defs", {})
    top: dict[str, Any] = {"$schema": "https://json-schema.org/draft/2020-12/schema"}
    if section is None:
        return {**top, **schema, "title": title, "$defs": defs}
    defs[model.__name__] = schema
    return {
        **top,
        "title": title,
        "type": "object",
        "properties": {section: {"$ref": f"#/$defs/{model.__name__}"}},
        "required": [section],
        "additionalProperties": False,
        "$defs": defs,
    }


def app_file_schema() -> dict[str, Any]:
    """JSON Schema of an app file (``configs/app.yaml``), for editors to check YAML."""
    return _file_schema(AppConfig, "ray-agents app file", None)


def agent_file_schema() -> dict[str, Any]:
    """JSON Schema of an agent file (``agent:`` at the top)."""
    return _file_schema(AgentSpec, "ray-agents agent file", "agent")
