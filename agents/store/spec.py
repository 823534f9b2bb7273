"""Which conversation store an app uses, as config.

A served app runs each deployment (the API, every agent) in processes of its own, so
its store must be one they all reach: ``StoreSpec.unshared`` says why one is not
(the in-memory backend, an in-memory SQLite database); in-process use (``LocalApp``,
tests) may use them.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agents.errors import UserError
from agents.store.base import ConversationStore
from agents.store.memory import MemoryStore
from agents.store.sqlite import SQLiteStore

__all__ = ["StoreSpec", "create_store"]

_NEEDS_DSN = "the postgres backend needs `dsn`, e.g. postgresql://user@host:5432/db"


class StoreSpec(BaseModel):
    """The conversation store: an embedded SQLite file, PostgreSQL, or in memory."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["sqlite", "postgres", "memory"] = Field(
        "sqlite",
        description=(
            "'sqlite': one file, shared by the processes of one host; 'postgres': "
            "shared by every host; 'memory': one process, lost on exit (tests)."
        ),
    )
    path: str = Field(
        "~/.local/share/ray-agents/conversations.db",
        description="The SQLite file (sqlite backend); `~` is expanded.",
    )
    dsn: str | None = Field(
        None,
        description=(
            "PostgreSQL connection string, e.g. 'postgresql://user@host:5432/db' "
            "(required by the postgres backend)."
        ),
    )
    schema_name: str = Field(
        "public", description="PostgreSQL schema that holds the tables (postgres backend)."
    )
    pool_size: int = Field(
        4, ge=1, description="Connections each store keeps open (postgres backend)."
    )

    @model_validator(mode="after")
    def _postgres_needs_dsn(self) -> Self:
        if self.backend == "postgres" and not self.dsn:
            raise ValueError(_NEEDS_DSN)
        return self

    def unshared(self) -> tuple[str, str] | None:
        """Why this store cannot back a served app, as ``(field, why)``; None if it can.

        Each Serve replica opens the store itself: a store that lives inside one
        process would give every deployment a store of its own, and none would see
        the conversations the others wrote.
        """
        if self.backend == "memory":
            return "backend", (
                "'memory' keeps conversations inside one process, so each Serve deployment "
                "(the API, every agent) would get an empty store of its own; a served app "
                "needs 'sqlite' (one host) or 'postgres' (several hosts)"
            )
        if self.backend == "sqlite" and self.path.strip() == ":memory:":
            return "path", (
                "':memory:' is an SQLite database inside one process, so each Serve "
                "deployment would get an empty one of its own; a served app needs a file "
                "path (or the postgres backend)"
            )
        return None


def create_store(spec: StoreSpec) -> ConversationStore:
    """The store ``spec`` describes, not yet opened."""
    if spec.backend == "memory":
        return MemoryStore()
    if spec.backend == "sqlite":
        return SQLiteStore(spec.path)  # it expands `~`
    if spec.dsn is None:  # only a spec built without validation gets here
        raise UserError(_NEEDS_DSN)
    # Imported here: psycopg is a server dependency, absent on client machines.
    from agents.store.postgres import PostgresStore

    return PostgresStore(spec.dsn, schema=spec.schema_name, pool_size=spec.pool_size)
