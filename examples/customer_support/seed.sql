-- The orders database of the customer-support example. support_tools.py creates it
-- from this file on first use; delete the database file to start over.
CREATE TABLE customers (
    email TEXT PRIMARY KEY,
    name  TEXT NOT NULL
);

CREATE TABLE orders (
    id          TEXT PRIMARY KEY,
    email       TEXT NOT NULL REFERENCES customers (email),
    placed_on   TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('processing', 'shipped', 'delivered', 'cancelled')),
    carrier     TEXT,
    tracking    TEXT,
    total_cents INTEGER NOT NULL
);

CREATE TABLE order_items (
    order_id    TEXT NOT NULL REFERENCES orders (id),
    sku         TEXT NOT NULL,
    description TEXT NOT NULL,
    quantity    INTEGER NOT NULL,
    price_cents INTEGER NOT NULL
);

-- Money movements: charges and refunds (refunds start 'requested').
CREATE TABLE payments (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id     TEXT NOT NULL REFERENCES orders (id),
    kind         TEXT NOT NULL CHECK (kind IN ('charge', 'refund')),
    amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
    status       TEXT NOT NULL CHECK (status IN ('settled', 'requested')),
    note         TEXT NOT NULL DEFAULT '',
    created_on   TEXT NOT NULL DEFAULT (date('now'))
);

CREATE TABLE tickets (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id   TEXT NOT NULL REFERENCES orders (id),
    summary    TEXT NOT NULL,
    status     TEXT NOT NULL DEFAULT 'open',
    created_at TEXT NOT NULL DEFAULT (datetime('now'))
);

INSERT INTO customers VALUES
    ('ada@example.com', 'Ada Lovelace'),
    ('alan@example.com', 'Alan Turing');

INSERT INTO orders VALUES
    ('A1001', 'ada@example.com', '2026-10-02', 'delivered', 'UPS', '1Z999AA10123456784', 12900),
    ('A1002', 'ada@example.com', '2026-11-20', 'shipped', 'DHL', 'JD014600006281203551', 4999),
    ('A1003', 'alan@example.com', '2026-11-25', 'delivered', 'UPS', '1Z999AA10987654321', 8900),
    ('A1004', 'alan@example.com', '2026-11-26', 'cancelled', NULL, NULL, 2500);

INSERT INTO order_items VALUES
    ('A1001', 'KB-60', 'Mechanical keyboard', 1, 12900),
    ('A1002', 'HP-2', 'Wireless headphones', 1, 4999),
    ('A1003', 'RT-AX', 'Wi-Fi 6 router', 1, 8900),
    ('A1004', 'CB-USB', 'USB-C cable, 2 m', 2, 1250);

INSERT INTO payments (order_id, kind, amount_cents, status, note, created_on) VALUES
    ('A1001', 'charge', 12900, 'settled', '', '2026-10-02'),
    ('A1002', 'charge', 4999, 'settled', '', '2026-11-20'),
    ('A1002', 'charge', 4999, 'settled', 'card network retry', '2026-11-20'),
    ('A1003', 'charge', 8900, 'settled', '', '2026-11-25'),
    ('A1004', 'charge', 2500, 'settled', '', '2026-11-26'),
    ('A1004', 'refund', 2500, 'settled', 'order cancelled', '2026-11-27');
