"""The shared conversation store: PostgreSQL, for stores on many hosts.

Every write is one transaction that first locks the conversation's row
(``SELECT ... FOR UPDATE``), which holds ``last_seq``; so appends from any number of
connections and processes are atomic, gap-free and in one total order per
conversation, while different conversations never wait for each other.

psycopg's own pool package is not a dependency, so the store keeps a small fixed
pool: ``pool_size`` connections in an ``asyncio.Queue``, in autocommit mode (reads
are single statements; writes open their own transaction).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow

from agents.errors import StoreError
from agents.store._sql import ADDED_COLUMNS, ADDED_INDEXES, SCHEMA, Flow, Row, SQLStore, Statements

__all__ = ["PostgresStore"]

T = TypeVar("T")
_Connection = psycopg.AsyncConnection[TupleRow]


_TABLES = {
    "conversations": "conversations",
    "events": "events",
    "turns": "turns",
    "queue": "turn_queue",
    "usage": "usage",
}
"""Each table's template name and its name in the database."""


def _renderer(schema: str) -> Callable[[str], str]:
    names = {
        **{key: sql.Identifier(schema, table) for key, table in _TABLES.items()},
        "for_update": sql.SQL(" FOR UPDATE"),
        "timestamp": sql.SQL("TIMESTAMPTZ"),
        "clustered": sql.SQL(""),
        "serial": sql.SQL("BIGSERIAL PRIMARY KEY"),
    }
    return lambda template: sql.SQL(template).format(**names).as_string()


class PostgresStore(SQLStore):
    """Conversations in PostgreSQL at ``dsn``, in the tables of ``schema``.

    ``open`` creates the schema and its tables if they are missing; several processes
    may open the same schema at once.
    """

    def __init__(self, dsn: str, *, schema: str = "public", pool_size: int = 4) -> None:
        if pool_size < 1:
            raise ValueError(f"pool_size must be at least 1, got {pool_size}")
        render = _renderer(schema)
        super().__init__(Statements().rendered(render))
        self.schema = schema
        # Each statement with what it creates, so that ``open`` runs only the missing
        # ones: even with IF NOT EXISTS, ALTER TABLE takes an exclusive lock on its table
        # and CREATE INDEX a share lock, which deadlock with the turns other replicas
        # are writing when a replica (re)starts on a live database.
        self._ddl: tuple[tuple[tuple[str, ...], str], ...] = (
            tuple((_creates(template), render(template)) for template in SCHEMA)
            + tuple(
                (
                    ("column", _table(table), column.split()[0]),
                    render(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column}"),
                )
                for table, column in ADDED_COLUMNS
            )
            + tuple((_creates(template), render(template)) for template in ADDED_INDEXES)
        )
        self._dsn = dsn
        self._pool_size = pool_size
        self._pool: asyncio.Queue[_Connection] | None = None

    async def open(self) -> None:
        """Connect ``pool_size`` connections and create the schema if needed."""
        if self._pool is not None:
            return
        pool: asyncio.Queue[_Connection] = asyncio.Queue()
        try:
            for _ in range(self._pool_size):
                conn = await self._connect()
                pool.put_nowait(conn)
            # Any one connection will do: the pool is not in use yet.
            await self._create_schema(conn)
        except psycopg.Error as exc:
            await _close_all(pool)
            raise StoreError(f"cannot open the PostgreSQL store: {exc}") from exc
        self._pool = pool

    async def close(self) -> None:
        """Close the idle connections; busy ones close as their operation ends."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await _close_all(pool)

    async def _connect(self) -> _Connection:
        return await psycopg.AsyncConnection.connect(self._dsn, autocommit=True)

    async def _create_schema(self, conn: _Connection) -> None:
        async with conn.transaction():
            # CREATE ... IF NOT EXISTS is not safe against itself: two processes opening
            # at once can both try, and one fails on the catalog's unique index. The
            # lock lasts until this transaction ends.
            lock = f"ray-agents:{self.schema}"
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (lock,))
            cur = await conn.execute(
                "SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,)
            )
            # Looked up first: CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege on
            # the database even when the schema exists.
            if await cur.fetchone() is None:
                create = sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema))
                await conn.execute(create)
            present = await _present(conn, self.schema)
            for creates, statement in self._ddl:
                if creates not in present:
                    await conn.execute(statement)

    async def _run(self, flow: Flow[T], *, write: bool) -> T:
        async with self._connection() as conn:
            if not write:
                return await _steps(conn, flow)
            async with conn.transaction():
                return await _steps(conn, flow)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[_Connection]:
        pool = self._pool
        if pool is None:
            raise StoreError("the PostgreSQL store is not open; call open() first")
        conn = await pool.get()
        try:
            if conn.closed:  # dropped after an error below: replace it
                conn = await self._connect()
            yield conn
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL store: {exc}") from exc
        finally:
            # A connection left mid-transaction (its task was cancelled) or broken is
            # not reused; the next user of its slot connects afresh.
            if conn.info.transaction_status != TransactionStatus.IDLE or self._pool is not pool:
                await conn.close()
            pool.put_nowait(conn)


def _table(template: str) -> str:
    """``{turns}`` -> the table's name in the database."""
    return _TABLES[template.strip("{}")]


def _creates(template: str) -> tuple[str, ...]:
    """What a CREATE TABLE / CREATE INDEX template creates: ("table", name) or
    ("index", name)."""
    table = re.match(r"\s*CREATE TABLE IF NOT EXISTS (\{\w+\})", template)
    if table:
        return ("table", _table(table.group(1)))
    index = re.match(r"\s*CREATE INDEX IF NOT EXISTS (\w+)", template)
    if index:
        return ("index", index.group(1))
    raise ValueError(f"unknown schema statement: {template[:60]!r}")


async def _present(conn: _Connection, schema: str) -> set[tuple[str, ...]]:
    """The tables, columns and indexes ``schema`` already has, as ``_ddl`` names them."""
    found: set[tuple[str, ...]] = set()
    cur = await conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = %s",
        (schema,),
    )
    for table, column in await cur.fetchall():
        found |= {("table", table), ("column", table, column)}
    cur = await conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = %s", (schema,))
    found |= {("index", name) for (name,) in await cur.fetchall()}
    return found


async def _steps(conn: _Connection, flow: Flow[T]) -> T:
    async with conn.cursor() as cur:
        try:
            query = next(flow)
            while True:
                rows: list[Row] = []
                if query.many:
                    await cur.executemany(query.sql, query.params)
                else:
                    await cur.execute(query.sql, query.params)
                    if cur.description is not None:
                        rows = await cur.fetchall()
                query = flow.send(rows)
        except StopIteration as done:
            result: T = done.value
            return result


async def _close_all(pool: asyncio.Queue[_Connection]) -> None:
    while not pool.empty():
        await pool.get_nowait().close()
