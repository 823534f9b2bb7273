"""The conversation store: the durable, append-only log of every conversation.

``ConversationStore`` is the interface; ``SQLiteStore`` (one host), ``PostgresStore``
(many hosts) and ``MemoryStore`` (tests) implement it; ``StoreSpec`` and
``create_store`` pick one from config. ``PostgresStore`` loads psycopg on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agents._lazy import lazy_exports
from agents.store.base import ConversationInfo, ConversationStore, TurnRecord
from agents.store.memory import MemoryStore
from agents.store.spec import StoreSpec, create_store
from agents.store.sqlite import SQLiteStore

if TYPE_CHECKING:
    from agents.store.postgres import PostgresStore

_LAZY = {"PostgresStore": "agents.store.postgres"}

__all__ = [
    "ConversationInfo",
    "ConversationStore",
    "MemoryStore",
    "PostgresStore",
    "SQLiteStore",
    "StoreSpec",
    "TurnRecord",
    "create_store",
]


__getattr__ = lazy_exports(__name__, _LAZY)
