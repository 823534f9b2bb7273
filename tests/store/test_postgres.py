"""The store contract against a real PostgreSQL (CI runs one; so must a dev box).

The server is ``$RAY_AGENTS_TEST_POSTGRES_DSN``, by default the local ``test``
database as user ``postgres``. Each session works in a fresh schema, dropped at the end.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest
from psycopg import sql

from agents.errors import StoreError
from agents.events import AnswerEvent
from agents.store import PostgresStore
from tests.store.contract import (
    DurableStoreContract,
    StoreFactory,
    assert_one_total_order,
    new_id,
    open_stores,
    send,
)

pytestmark = pytest.mark.postgres

DSN = os.environ.get("RAY_AGENTS_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


async def drop_schema(conn: psycopg.AsyncConnection[object], schema: str) -> None:
    await conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


async def wait_for_lock_waiter(admin: psycopg.AsyncConnection[object], schema: str) -> None:
    """Returns once a statement on ``schema`` waits for a row lock."""
    query = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE wait_event_type = 'Lock' AND strpos(query, %s) > 0"
    )
    async with asyncio.timeout(10):
        while True:
            cur = await admin.execute(query, (schema,))
            if await cur.fetchone() != (0,):
                return
            await asyncio.sleep(0.01)


@pytest.fixture(scope="session")
async def admin() -> AsyncIterator[psycopg.AsyncConnection[object]]:
    """A connection for setup and cleanup; fails (never skips) without a server."""
    try:
        conn = await psycopg.AsyncConnection.connect(DSN, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is unreachable at {DSN} ({exc}); start it or point "
            "RAY_AGENTS_TEST_POSTGRES_DSN at one",
            pytrace=False,
        )
    async with conn:
        yield conn


@pytest.fixture(scope="session")
async def schema(admin: psycopg.AsyncConnection[object]) -> AsyncIterator[str]:
    name = f"ra_test_{uuid.uuid4().hex}"
    yield name
    await drop_schema(admin, name)


class TestPostgresStore(DurableStoreContract):
    @pytest.fixture
    async def new_store(self, schema: str) -> AsyncIterator[StoreFactory]:
        async with open_stores(lambda: PostgresStore(DSN, schema=schema, pool_size=4)) as factory:
            yield factory

    async def test_many_tasks_share_a_small_pool(self, schema: str) -> None:
        async with open_stores(lambda: PostgresStore(DSN, schema=schema, pool_size=2)) as new:
            store = await new()
            cid = new_id()
            contents = [f"message {i}" for i in range(50)]
            await asyncio.gather(*(send(store, cid, c) for c in contents))
            await assert_one_total_order(store, cid, contents)

    async def test_a_replica_opening_on_a_live_database_waits_for_no_writer(
        self, schema: str, new_store: StoreFactory
    ) -> None:
        """A replica that (re)starts while turns are being written opens at once: it
        runs no DDL on a complete schema (ALTER TABLE ... IF NOT EXISTS would wait for
        an exclusive lock behind every writer, and deadlocked with them under load)."""
        await new_store()  # the schema exists, complete
        async with await psycopg.AsyncConnection.connect(DSN) as writer:
            # A turn being written: its transaction holds a write lock on each table.
            for table in ("conversations", "events", "turns", "turn_queue", "usage"):
                await writer.execute(
                    sql.SQL("LOCK TABLE {} IN ROW EXCLUSIVE MODE").format(
                        sql.Identifier(schema, table)
                    )
                )
            store = await asyncio.wait_for(new_store(), timeout=10)
            await writer.rollback()
        assert await store.conversation("none") is None

    async def test_concurrent_opens_create_an_oddly_named_schema_once(
        self, admin: psycopg.AsyncConnection[object]
    ) -> None:
        # Quotes, capitals and spaces reach the server only as a quoted identifier.
        odd = f'Ra "Test" {uuid.uuid4().hex}'
        try:
            async with open_stores(lambda: PostgresStore(DSN, schema=odd, pool_size=1)) as new:
                stores = await asyncio.gather(*(new() for _ in range(5)))
                cid = new_id()
                await asyncio.gather(*(send(s, cid, f"from {i}") for i, s in enumerate(stores)))
                await assert_one_total_order(stores[0], cid, [f"from {i}" for i in range(5)])
            cur = await admin.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s"
                " ORDER BY table_name",
                (odd,),
            )
            assert await cur.fetchall() == [
                ("conversations",),
                ("events",),
                ("turn_queue",),
                ("turns",),
                ("usage",),
            ]
        finally:
            await drop_schema(admin, odd)

    async def test_a_cancelled_append_leaves_the_pool_usable(
        self, schema: str, admin: psycopg.AsyncConnection[object]
    ) -> None:
        async with open_stores(lambda: PostgresStore(DSN, schema=schema, pool_size=1)) as new:
            store = await new()
            cid = new_id()
            await send(store, cid, "hi")
            lock = sql.SQL("SELECT 1 FROM {} WHERE conversation_id = %s FOR UPDATE").format(
                sql.Identifier(schema, "conversations")
            )
            # Locked from its own connection: inside a transaction, pg_stat_activity is a
            # snapshot, so `admin` must stay out of one to see the waiter arrive.
            locker = await psycopg.AsyncConnection.connect(DSN, autocommit=True)
            async with locker, locker.transaction():
                await locker.execute(lock, (cid,))
                task = asyncio.create_task(store.append(cid, [AnswerEvent(text="lost")]))
                await wait_for_lock_waiter(admin, schema)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            # The one pooled connection was mid-transaction; the store still works.
            stored = await store.append(cid, [AnswerEvent(text="kept")])
            assert [e.seq for e in stored] == [2]
            assert [e.type for e in await store.events(cid)] == ["message", "answer"]

    async def test_unreachable_server_is_a_store_error(self) -> None:
        store = PostgresStore("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
        with pytest.raises(StoreError, match="cannot open") as caught:
            await store.open()
        assert isinstance(caught.value.__cause__, psycopg.OperationalError)

    async def test_use_before_open_is_a_store_error(self, schema: str) -> None:
        with pytest.raises(StoreError, match="not open"):
            await PostgresStore(DSN, schema=schema).events("c")
