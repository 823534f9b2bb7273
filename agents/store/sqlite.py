"""The embedded conversation store: one SQLite file, shared by every local process.

The file is in WAL mode, so readers never wait for the writer. Every write is a
``BEGIN IMMEDIATE`` transaction: it takes the file's write lock before it reads
``last_seq``, so appends from any number of connections and processes are atomic and
totally ordered; a writer that finds the lock taken waits up to the busy timeout.

Each store owns one connection, used only on its own single-thread executor, so the
event loop never blocks on disk or on the lock.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from agents.errors import StoreError
from agents.store._sql import (
    ADDED_COLUMNS,
    ADDED_INDEXES,
    SCHEMA,
    Flow,
    Query,
    Row,
    SQLStore,
    Statements,
)

__all__ = ["SQLiteStore"]

T = TypeVar("T")

BUSY_TIMEOUT_S = 30.0
"""How long a write waits for another connection's write lock before it fails."""


def _render(template: str) -> str:
    # sqlite3 spells a parameter `?`; the templates use psycopg's `%s`.
    return template.format(
        conversations="conversations",
        events="events",
        turns="turns",
        queue="turn_queue",
        usage="usage",
        for_update="",  # BEGIN IMMEDIATE already holds the whole file's write lock
        timestamp="TEXT",  # ISO 8601
        clustered=" WITHOUT ROWID",
        serial="INTEGER PRIMARY KEY AUTOINCREMENT",
    ).replace("%s", "?")


_SCHEMA = tuple(_render(template) for template in SCHEMA)
_ADDED_COLUMNS = tuple((_render(table), column) for table, column in ADDED_COLUMNS)
_ADDED_INDEXES = tuple(_render(template) for template in ADDED_INDEXES)
_STATEMENTS = Statements().rendered(_render)


class SQLiteStore(SQLStore):
    """Conversations in a SQLite file at ``path`` (its parent folders are created).

    A call whose task is cancelled still finishes on the store's thread: what it
    wrote stays written (a retried ``begin_turn`` then finds its turn).
    """

    def __init__(self, path: str | Path) -> None:
        super().__init__(_STATEMENTS)
        self.path = Path(path).expanduser()
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None  # touched only on the executor

    async def open(self) -> None:
        """Open the file (creating it and its schema if needed)."""
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sqlite-store")
        try:
            await self._call(self._connect)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    async def close(self) -> None:
        """Close the connection and stop its thread."""
        if self._executor is None:
            return
        try:
            await self._call(self._disconnect)
        finally:
            # The thread is idle now (the close above was its last job), so it exits.
            self._executor.shutdown(wait=False)
            self._executor = None

    async def _run(self, flow: Flow[T], *, write: bool) -> T:
        return await self._call(self._drive, flow, write)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise StoreError("the SQLite store is not open; call open() first")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"SQLite store {self.path}: {exc}") from exc

    # Everything below runs on the executor's thread.

    def _connect(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: no implicit transactions; every write says BEGIN IMMEDIATE.
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            # With WAL, NORMAL loses at most the last commits on power loss, never
            # consistency, and spares an fsync per append.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            with _immediate(conn):
                for statement in _SCHEMA:
                    conn.execute(statement)
                for table, column in _ADDED_COLUMNS:
                    have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
                    if column.split()[0] not in have:
                        conn.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
                for statement in _ADDED_INDEXES:
                    conn.execute(statement)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _drive(self, flow: Flow[T], write: bool) -> T:
        conn = self._conn
        if conn is None:
            raise StoreError("the SQLite store is closed")
        if not write:
            return _steps(conn, flow)
        with _immediate(conn):
            return _steps(conn, flow)


@contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """A write transaction that holds the file's write lock from its first statement."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        # Some errors (a full disk, for one) have rolled the transaction back already.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _steps(conn: sqlite3.Connection, flow: Flow[T]) -> T:
    try:
        query = next(flow)
        while True:
            query = flow.send(_execute(conn, query))
    except StopIteration as done:
        result: T = done.value
        return result


def _execute(conn: sqlite3.Connection, query: Query) -> list[Row]:
    if query.many:
        conn.executemany(query.sql, [_adapt(params) for params in query.params])
        return []
    return conn.execute(query.sql, _adapt(query.params)).fetchall()


def _adapt(params: Any) -> tuple[Any, ...]:
    # Timestamps go in as ISO text (sqlite3's own datetime adapter is deprecated);
    # ConversationInfo parses them back.
    return tuple(p.isoformat() if isinstance(p, datetime) else p for p in params)
