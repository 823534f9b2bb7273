from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import ValidationError

import agents.store
from agents.errors import StoreError
from agents.store import (
    MemoryStore,
    PostgresStore,
    SQLiteStore,
    StoreSpec,
    create_store,
)
from tests.store.contract import (
    DurableStoreContract,
    StoreContract,
    StoreFactory,
    assert_one_total_order,
    new_id,
    open_stores,
    send,
)

REPO = Path(__file__).resolve().parents[2]


class TestMemoryStore(StoreContract):
    @pytest.fixture
    async def new_store(self) -> AsyncIterator[StoreFactory]:
        # One instance is the whole "database": every new_store() gets it back.
        store = MemoryStore()
        async with open_stores(lambda: store) as factory:
            yield factory


class TestSQLiteStore(DurableStoreContract):
    @pytest.fixture
    def path(self, tmp_path: Path) -> Path:
        return tmp_path / "not" / "yet" / "conversations.db"

    @pytest.fixture
    async def new_store(self, path: Path) -> AsyncIterator[StoreFactory]:
        async with open_stores(lambda: SQLiteStore(path)) as factory:
            yield factory

    async def test_file_is_created_in_wal_mode(self, new_store: StoreFactory, path: Path) -> None:
        await new_store()
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)

    async def test_processes_share_one_total_order(
        self, new_store: StoreFactory, path: Path
    ) -> None:
        store = await new_store()
        cid = new_id()
        writers = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-c", _WRITER, str(path), cid, f"process {p}", cwd=REPO
            )
            for p in range(3)
        ]
        mine = [f"parent {i}" for i in range(10)]
        await asyncio.gather(*(send(store, cid, content) for content in mine))
        assert [await writer.wait() for writer in writers] == [0, 0, 0]
        theirs = [f"process {p} {i}" for p in range(3) for i in range(10)]
        await assert_one_total_order(store, cid, mine + theirs)

    async def test_use_before_open_is_a_store_error(self, path: Path) -> None:
        with pytest.raises(StoreError, match="not open"):
            await SQLiteStore(path).events("c")

    async def test_unusable_path_is_a_store_error(self, tmp_path: Path) -> None:
        (tmp_path / "file").write_text("")
        store = SQLiteStore(tmp_path / "file" / "conversations.db")
        with pytest.raises(StoreError, match=r"conversations\.db") as caught:
            await store.open()
        assert isinstance(caught.value.__cause__, OSError)


# Sends ten messages at once from its own process: argv is path, conversation, prefix.
_WRITER = """
import asyncio, sys
from agents.events import MessageEvent
from agents.store import SQLiteStore

async def main(path, cid, prefix):
    store = SQLiteStore(path)
    await store.open()
    try:
        await asyncio.gather(*(
            store.begin_turn(cid, MessageEvent(content=f"{prefix} {i}"),
                             idempotency_key=f"{prefix} {i}", agent="triage")
            for i in range(10)
        ))
    finally:
        await store.close()

asyncio.run(main(*sys.argv[1:]))
"""


def test_spec_defaults_to_sqlite_in_the_home_folder() -> None:
    store = create_store(StoreSpec())
    assert isinstance(store, SQLiteStore)
    assert store.path == Path.home() / ".local/share/ray-agents/conversations.db"


def test_spec_builds_each_backend(tmp_path: Path) -> None:
    sqlite = create_store(StoreSpec(path=str(tmp_path / "c.db")))
    assert isinstance(sqlite, SQLiteStore) and sqlite.path == tmp_path / "c.db"
    assert isinstance(create_store(StoreSpec(backend="memory")), MemoryStore)
    spec = StoreSpec(backend="postgres", dsn="postgresql://u@h/db", schema_name="s", pool_size=2)
    postgres = create_store(spec)
    assert isinstance(postgres, PostgresStore) and postgres.schema == "s"


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"backend": "postgres"}, "needs `dsn`"),
        ({"backend": "redis"}, "backend"),
        ({"pool_size": 0}, "pool_size"),
        ({"colour": "red"}, "Extra inputs"),
    ],
)
def test_spec_refuses_bad_config(fields: dict[str, object], why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        StoreSpec.model_validate(fields)


def test_spec_fields_are_described() -> None:
    assert all(field.description for field in StoreSpec.model_fields.values())


def test_exports_are_sorted_and_resolve() -> None:
    names = agents.store.__all__
    assert names == sorted(names)
    assert all(getattr(agents.store, name) is not None for name in names)


def test_importing_the_store_does_not_load_psycopg() -> None:
    code = (
        "import sys, agents.store as s;"
        "s.create_store(s.StoreSpec()); s.create_store(s.StoreSpec(backend='memory'));"
        "print('psycopg' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
