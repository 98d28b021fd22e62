"""The SQLite schema and the one-transaction write of a validated snapshot.

Snapshot tables hold exactly what the last imported snapshot said (plus changes made by
``change_order``). ``contact_log`` and ``order_changes`` are the hotline's own records: an import
never touches them, so a new snapshot does not erase what callers were told.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import asdict
from datetime import date, datetime

from core.shop import Order, OrderNumbers, Shipment
from shop.fulfilment import fulfilment_json
from shop.importer import FORMAT, Snapshot
from shop.phone import phone_key

SCHEMA_VERSION = "2"

SNAPSHOT_TABLES = (
    "shop_info",
    "shop_terms",
    "products",
    "variants",
    "promotions",
    "coupons",
    "customers",
    "contacts",
    "orders",
    "order_items",
    "policies",
    "agents",
)

DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS shop_info (
  id INTEGER PRIMARY KEY CHECK (id = 1), name TEXT NOT NULL, hotline TEXT NOT NULL,
  timezone TEXT NOT NULL, as_of TEXT, agents_open TEXT NOT NULL, agents_close TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS shop_terms (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS products (
  id TEXT PRIMARY KEY, pos INTEGER NOT NULL, name TEXT NOT NULL, aliases TEXT NOT NULL,
  category TEXT NOT NULL, price_fen INTEGER NOT NULL, facts TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS variants (
  sku TEXT PRIMARY KEY, product_id TEXT NOT NULL, pos INTEGER NOT NULL, color TEXT NOT NULL,
  size TEXT NOT NULL, stock INTEGER NOT NULL CHECK (stock >= 0), restock_date TEXT);
CREATE INDEX IF NOT EXISTS variants_product ON variants (product_id, pos);
CREATE TABLE IF NOT EXISTS promotions (
  id TEXT PRIMARY KEY, pos INTEGER NOT NULL, kind TEXT NOT NULL, title TEXT NOT NULL,
  rules TEXT NOT NULL, starts TEXT NOT NULL, ends TEXT NOT NULL, params TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS coupons (
  id TEXT PRIMARY KEY, pos INTEGER NOT NULL, title TEXT NOT NULL, channel TEXT NOT NULL,
  threshold_fen INTEGER NOT NULL, discount_fen INTEGER NOT NULL, valid_until TEXT NOT NULL,
  rules TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS customers (
  id TEXT PRIMARY KEY, pos INTEGER NOT NULL, name TEXT NOT NULL, phone TEXT NOT NULL,
  phone_key TEXT UNIQUE, vip_level TEXT NOT NULL, dialect TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS contacts (
  customer_id TEXT NOT NULL, seq INTEGER NOT NULL, at TEXT NOT NULL, channel TEXT NOT NULL,
  summary TEXT NOT NULL, complaint INTEGER NOT NULL, PRIMARY KEY (customer_id, seq));
CREATE TABLE IF NOT EXISTS orders (
  id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, created_at TEXT NOT NULL,
  created_utc INTEGER NOT NULL, paid_at TEXT, channel TEXT NOT NULL, status TEXT NOT NULL,
  applied_promotions TEXT NOT NULL, coupon TEXT, shipping_fee_fen INTEGER NOT NULL,
  paid_amount_fen INTEGER NOT NULL, address TEXT NOT NULL, shipment TEXT, refund TEXT);
CREATE INDEX IF NOT EXISTS orders_customer ON orders (customer_id, created_utc);
CREATE TABLE IF NOT EXISTS order_items (
  order_id TEXT NOT NULL, pos INTEGER NOT NULL, sku TEXT NOT NULL, product_id TEXT NOT NULL,
  product_name TEXT NOT NULL, color TEXT NOT NULL, size TEXT NOT NULL, qty INTEGER NOT NULL,
  unit_price_fen INTEGER NOT NULL, price_type TEXT NOT NULL, PRIMARY KEY (order_id, pos));
CREATE TABLE IF NOT EXISTS policies (
  id TEXT PRIMARY KEY, pos INTEGER NOT NULL, title TEXT NOT NULL, tags TEXT NOT NULL, text TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS agents (
  id TEXT PRIMARY KEY, pos INTEGER NOT NULL, name TEXT NOT NULL, skills TEXT NOT NULL,
  languages TEXT NOT NULL, max_concurrent INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS contact_log (
  id INTEGER PRIMARY KEY AUTOINCREMENT, customer_id TEXT NOT NULL, at TEXT NOT NULL,
  channel TEXT NOT NULL, summary TEXT NOT NULL, complaint INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS order_changes (
  id INTEGER PRIMARY KEY AUTOINCREMENT, order_id TEXT NOT NULL, field TEXT NOT NULL,
  old TEXT NOT NULL, new TEXT NOT NULL, old_sku TEXT, new_sku TEXT, at TEXT NOT NULL,
  requested_by TEXT NOT NULL DEFAULT '');
"""


def connect(db_path: str) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) with the schema in place."""
    conn = sqlite3.connect(db_path, timeout=10, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(DDL)
    _add_requested_by(conn)
    return conn


def _add_requested_by(conn: sqlite3.Connection) -> None:
    """A database made before changes recorded who asked gets the column (old rows: '')."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(order_changes)")}
    if "requested_by" not in columns:
        conn.execute("ALTER TABLE order_changes ADD COLUMN requested_by TEXT NOT NULL DEFAULT ''")


def meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def to_json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=_json_default)


def _json_default(value: object) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


def write_snapshot(conn: sqlite3.Connection, snap: Snapshot) -> None:
    """Replace every snapshot table with ``snap`` in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table in SNAPSHOT_TABLES:
            conn.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
        _write_catalogue(conn, snap)
        _write_people(conn, snap)
        for order in snap.orders:
            write_order(conn, order)
        conn.executemany(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)",
            [
                ("format", FORMAT),
                ("schema_version", SCHEMA_VERSION),
                ("content_hash", snap.content_hash),
                ("shop_name", snap.info.name),
            ],
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _write_catalogue(conn: sqlite3.Connection, snap: Snapshot) -> None:
    i = snap.info
    conn.execute(
        "INSERT INTO shop_info VALUES (1, ?, ?, ?, ?, ?, ?)",
        (i.name, i.hotline, i.timezone, i.as_of.isoformat() if i.as_of else None, *i.agent_hours),
    )
    conn.executemany(
        "INSERT INTO shop_terms VALUES (?, ?)",
        [("order_numbers", order_numbers_json(i.order_numbers)), ("fulfilment", fulfilment_json(i.fulfilment))],
    )
    for pos, p in enumerate(snap.products):
        conn.execute(
            "INSERT INTO products VALUES (?, ?, ?, ?, ?, ?, ?)",
            (p.id, pos, p.name, to_json(list(p.aliases)), p.category, p.price_fen, to_json(dict(p.facts))),
        )
        conn.executemany(
            "INSERT INTO variants VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (v.sku, p.id, vpos, v.color, v.size, v.stock, v.restock_date.isoformat() if v.restock_date else None)
                for vpos, v in enumerate(p.variants)
            ],
        )
    conn.executemany(
        "INSERT INTO promotions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (p.id, pos, p.kind, p.title, p.rules, p.starts.isoformat(), p.ends.isoformat(), to_json(dict(p.params)))
            for pos, p in enumerate(snap.promotions)
        ],
    )
    conn.executemany(
        "INSERT INTO coupons VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (c.id, pos, c.title, c.channel, c.threshold_fen, c.discount_fen, c.valid_until.isoformat(), c.rules)
            for pos, c in enumerate(snap.coupons)
        ],
    )
    conn.executemany(
        "INSERT INTO policies VALUES (?, ?, ?, ?, ?)",
        [(p.id, pos, p.title, to_json(list(p.tags)), p.text) for pos, p in enumerate(snap.policies)],
    )


def _write_people(conn: sqlite3.Connection, snap: Snapshot) -> None:
    for pos, c in enumerate(snap.customers):
        conn.execute(
            "INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?, ?)",
            (c.id, pos, c.name, c.phone, phone_key(c.phone), c.vip_level, c.dialect),
        )
        conn.executemany(
            "INSERT INTO contacts VALUES (?, ?, ?, ?, ?, ?)",
            [(c.id, seq, h.at.isoformat(), h.channel, h.summary, int(h.complaint)) for seq, h in enumerate(c.history)],
        )
    conn.executemany(
        "INSERT INTO agents VALUES (?, ?, ?, ?, ?, ?)",
        [
            (a.id, pos, a.name, to_json(dict(a.skills)), to_json(list(a.languages)), a.max_concurrent)
            for pos, a in enumerate(snap.agents)
        ],
    )


def order_numbers_json(numbers: OrderNumbers) -> str:
    shapes = [[s.prefix, s.min_digits, s.max_digits, s.orders] for s in numbers.shapes]
    return json.dumps({"shapes": shapes, "declared": numbers.declared}, ensure_ascii=False)


def write_order(conn: sqlite3.Connection, o: Order) -> None:
    """Insert or replace one order and its items (inside the caller's transaction)."""
    conn.execute("DELETE FROM order_items WHERE order_id = ?", (o.id,))
    conn.execute(
        "INSERT OR REPLACE INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            o.id,
            o.customer_id,
            o.created_at.isoformat(),
            int(o.created_at.timestamp()),
            o.paid_at.isoformat() if o.paid_at else None,
            o.channel,
            o.status.value,
            to_json(list(o.applied_promotions)),
            o.coupon,
            o.shipping_fee_fen,
            o.paid_amount_fen,
            o.address,
            _shipment_json(o.shipment),
            to_json(asdict(o.refund)) if o.refund else None,
        ),
    )
    conn.executemany(
        "INSERT INTO order_items VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (o.id, pos, i.sku, i.product_id, i.product_name, i.color, i.size, i.qty, i.unit_price_fen, i.price_type)
            for pos, i in enumerate(o.items)
        ],
    )


def _shipment_json(shipment: Shipment | None) -> str | None:
    return None if shipment is None else to_json(asdict(shipment))


def digest(conn: sqlite3.Connection) -> str:
    """A hash of every snapshot table's rows in key order: equal digests mean equal shop data."""
    h = hashlib.sha256()
    for table in SNAPSHOT_TABLES:
        h.update(table.encode())
        for row in conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2"):  # noqa: S608
            h.update(to_json(list(row)).encode())
    return h.hexdigest()


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Rows per snapshot table."""
    return {t: int(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in SNAPSHOT_TABLES}  # noqa: S608
