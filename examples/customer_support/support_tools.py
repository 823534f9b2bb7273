"""Tools of the customer-support example: queries over a small SQLite orders database.

The database is created from ``seed.sql`` on first use, at ``$SUPPORT_ORDERS_DB``
(default: ``<temp dir>/ray-agents-examples/orders.db``); delete the file to start
over. Every function opens its own connection, so the tools can run in any worker
process. A failure (an unknown order, a refund larger than what was paid) raises,
and the agent reads the error.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path
from typing import Any

SEED = Path(__file__).with_name("seed.sql")


def database_path() -> Path:
    """Where the orders database lives."""
    configured = os.environ.get("SUPPORT_ORDERS_DB")
    if configured:
        return Path(configured).expanduser()
    return Path(tempfile.gettempdir()) / "ray-agents-examples" / "orders.db"


def _connect() -> sqlite3.Connection:
    path = database_path()
    if not path.exists():
        # Build the seeded file aside, then move it in: concurrent first calls agree.
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        with closing(sqlite3.connect(fresh)) as db:
            db.executescript(SEED.read_text())
        os.replace(fresh, path)
    db = sqlite3.connect(path, timeout=10)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA foreign_keys = ON")
    return db


def _order(db: sqlite3.Connection, order_id: str) -> sqlite3.Row:
    query = "SELECT * FROM orders WHERE id = ?"
    row: sqlite3.Row | None = db.execute(query, (order_id.strip().upper(),)).fetchone()
    if row is None:
        raise LookupError(f"no order {order_id!r}; order ids look like A1001")
    return row


def lookup_order(order_id: str) -> dict[str, Any]:
    """Look up an order by id (e.g. A1002): status, carrier and tracking number, items
    and total."""
    with closing(_connect()) as db:
        order = _order(db, order_id)
        items = db.execute(
            "SELECT sku, description, quantity, price_cents FROM order_items WHERE order_id = ?",
            (order["id"],),
        ).fetchall()
    return {
        "order_id": order["id"],
        "status": order["status"],
        "placed_on": order["placed_on"],
        "carrier": order["carrier"],
        "tracking": order["tracking"],
        "total_cents": order["total_cents"],
        "items": [dict(item) for item in items],
    }


def customer_orders(email: str) -> list[dict[str, Any]]:
    """The orders of a customer, by e-mail address, newest first."""
    with closing(_connect()) as db:
        rows = db.execute(
            "SELECT id AS order_id, placed_on, status, total_cents FROM orders WHERE email = ? "
            "ORDER BY placed_on DESC",
            (email.strip().lower(),),
        ).fetchall()
    if not rows:
        raise LookupError(f"no orders for {email!r}")
    return [dict(row) for row in rows]


def billing_history(order_id: str) -> dict[str, Any]:
    """Every charge and refund of an order, with what was paid and refunded in total."""
    with closing(_connect()) as db:
        order = _order(db, order_id)
        rows = db.execute(
            "SELECT id, kind, amount_cents, status, note, created_on FROM payments "
            "WHERE order_id = ? ORDER BY id",
            (order["id"],),
        ).fetchall()
    payments = [dict(r) for r in rows]
    charged = sum(p["amount_cents"] for p in payments if p["kind"] == "charge")
    refunded = sum(p["amount_cents"] for p in payments if p["kind"] == "refund")
    return {
        "order_id": order["id"],
        "order_total_cents": order["total_cents"],
        "charged_cents": charged,
        "refunded_cents": refunded,
        "payments": payments,
    }


def request_refund(order_id: str, amount_cents: int, reason: str) -> dict[str, Any]:
    """Request a refund of ``amount_cents`` on an order; refused when it exceeds what
    was charged and not yet refunded."""
    if amount_cents <= 0:
        raise ValueError("amount_cents must be positive")
    with closing(_connect()) as db, db:  # one transaction
        order = _order(db, order_id)
        charged, refunded = db.execute(
            "SELECT COALESCE(SUM(CASE WHEN kind = 'charge' THEN amount_cents END), 0), "
            "COALESCE(SUM(CASE WHEN kind = 'refund' THEN amount_cents END), 0) "
            "FROM payments WHERE order_id = ?",
            (order["id"],),
        ).fetchone()
        if amount_cents > charged - refunded:
            raise ValueError(
                f"order {order['id']} has {charged - refunded} cents left to refund, "
                f"not {amount_cents}"
            )
        cursor = db.execute(
            "INSERT INTO payments (order_id, kind, amount_cents, status, note) "
            "VALUES (?, 'refund', ?, 'requested', ?)",
            (order["id"], amount_cents, reason),
        )
    return {
        "refund_id": cursor.lastrowid,
        "order_id": order["id"],
        "amount_cents": amount_cents,
        "status": "requested",
    }


def open_ticket(order_id: str, summary: str) -> dict[str, Any]:
    """Open a technical-support ticket about an order's product."""
    if not summary.strip():
        raise ValueError("summary must describe the problem")
    with closing(_connect()) as db, db:
        order = _order(db, order_id)
        cursor = db.execute(
            "INSERT INTO tickets (order_id, summary) VALUES (?, ?)", (order["id"], summary)
        )
    return {"ticket_id": cursor.lastrowid, "order_id": order["id"], "status": "open"}
