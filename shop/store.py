"""``SqliteShop``: the ``core.shop.ShopPort`` over an embedded SQLite store.

Unknown ids give None or an empty list, never an exception. ``quote`` raises NotFoundError for
an unknown SKU (it cannot price what does not exist) and ``change_order`` raises ChangeRefused
with a reason and facts the dialog words. Each call opens its own connection, so one
``SqliteShop`` may be shared by threads.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.errors import NotFoundError, ShopDataError
from core.shop import (
    AddOnSuggestion,
    Agent,
    ChangeRecord,
    ChangeRefused,
    Contact,
    Coupon,
    Customer,
    ExpediteOption,
    KbHit,
    LogisticsStatus,
    Order,
    Policy,
    Product,
    Promotion,
    PromotionAudit,
    Quote,
    ShopInfo,
)
from shop import rows, schema
from shop.audit import add_on_suggestions, audit_order
from shop.changes import ChangePlan, plan_change
from shop.importer import Snapshot
from shop.kb import KnowledgeBase
from shop.logistics import expedite_options, logistics_status
from shop.phone import phone_key
from shop.promotions import BasketLine, Rulebook, price_basket


def import_snapshot(db_path: Path | str, snap: Snapshot, force: bool = False) -> bool:
    """Fill the store at ``db_path`` with ``snap``; True when written.

    The same snapshot again is a no-op (so changes made through the hotline stay) unless
    ``force``; a forced or changed snapshot of the same shop replaces every snapshot table in one
    transaction. A store holding another shop (by name) is never overwritten: that raises
    ShopDataError, so a command for one shop cannot switch a running hotline to another.
    """
    Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    conn = schema.connect(str(db_path))
    try:
        held = schema.meta(conn, "shop_name")
        if held is not None and held != snap.info.name:
            raise ShopDataError(
                f"{db_path}: this store holds the shop {held!r}, not {snap.info.name!r}; give each shop its own store"
            )
        current = schema.meta(conn, "schema_version") == schema.SCHEMA_VERSION
        if not force and current and schema.meta(conn, "content_hash") == snap.content_hash:
            return False
        schema.write_snapshot(conn, snap)
        return True
    finally:
        conn.close()


class SqliteShop:
    """Everything the dialog may ask of the shop, answered from the SQLite store at ``db_path``."""

    def __init__(self, db_path: Path | str) -> None:
        self._path = str(db_path)
        self._lock = threading.Lock()
        self._kb: tuple[str, KnowledgeBase] | None = None
        with self._db():
            pass  # creates the schema, fails early on an unusable path

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        conn = schema.connect(self._path)
        try:
            yield conn
        finally:
            conn.close()

    # --- store maintenance ------------------------------------------------------------------

    @property
    def db_path(self) -> Path:
        return Path(self._path)

    def content_hash(self) -> str | None:
        """The hash of the snapshot last imported, or None for an empty store."""
        with self._db() as conn:
            return schema.meta(conn, "content_hash")

    def digest(self) -> str:
        """A hash over every snapshot table's rows (equal digests: equal shop data)."""
        with self._db() as conn:
            return schema.digest(conn)

    def counts(self) -> dict[str, int]:
        with self._db() as conn:
            return schema.counts(conn)

    # --- lookups ------------------------------------------------------------------------------

    def info(self) -> ShopInfo:
        with self._db() as conn:
            row = conn.execute("SELECT * FROM shop_info WHERE id = 1").fetchone()
            terms = {r["key"]: r["value"] for r in conn.execute("SELECT key, value FROM shop_terms")}
        if row is None:
            raise ShopDataError(f"{self._path}: the shop store is empty; import a shop snapshot first")
        return rows.info(row, terms)

    def timezone(self) -> tzinfo:
        info = self.info()
        try:
            return ZoneInfo(info.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            return info.as_of.tzinfo if info.as_of and info.as_of.tzinfo else UTC

    def customer_by_phone(self, phone: str) -> Customer | None:
        """The customer whose caller ID this is, in any common format (+86 138..., 86138..., 138...)."""
        key = phone_key(phone)
        if key is None:
            return None
        with self._db() as conn:
            row = conn.execute("SELECT id FROM customers WHERE phone_key = ?", (key,)).fetchone()
            return None if row is None else _customer(conn, row["id"])

    def customer(self, customer_id: str) -> Customer | None:
        with self._db() as conn:
            return _customer(conn, customer_id)

    def orders_for_customer(self, customer_id: str) -> Sequence[Order]:
        """Newest first (by creation time)."""
        with self._db() as conn:
            ids = conn.execute(
                "SELECT id FROM orders WHERE customer_id = ? ORDER BY created_utc DESC, id DESC", (customer_id,)
            ).fetchall()
            return [o for r in ids if (o := _order(conn, r["id"])) is not None]

    def order(self, order_id: str) -> Order | None:
        with self._db() as conn:
            return _order(conn, order_id)

    def products(self) -> Sequence[Product]:
        with self._db() as conn:
            return _products(conn)

    def product(self, product_id: str) -> Product | None:
        with self._db() as conn:
            return next((p for p in _products(conn, product_id)), None)

    def promotions(self) -> Sequence[Promotion]:
        with self._db() as conn:
            return [rows.promotion(r) for r in conn.execute("SELECT * FROM promotions ORDER BY pos")]

    def coupons(self) -> Sequence[Coupon]:
        with self._db() as conn:
            return [rows.coupon(r) for r in conn.execute("SELECT * FROM coupons ORDER BY pos")]

    def policies(self) -> Sequence[Policy]:
        with self._db() as conn:
            return [rows.policy(r) for r in conn.execute("SELECT * FROM policies ORDER BY pos")]

    def agents(self) -> Sequence[Agent]:
        with self._db() as conn:
            return [rows.agent(r) for r in conn.execute("SELECT * FROM agents ORDER BY pos")]

    # --- computed answers ---------------------------------------------------------------------

    def rulebook(self) -> Rulebook:
        return Rulebook(
            products={p.id: p for p in self.products()},
            promotions=tuple(self.promotions()),
            coupons={c.id: c for c in self.coupons()},
        )

    def quote(self, items: Sequence[tuple[str, int]], channel: str, at: datetime, coupon: str | None = None) -> Quote:
        """Price ``(sku, qty)`` items bought through ``channel`` at ``at`` (see shop.promotions)."""
        book = self.rulebook()
        by_sku = {v.sku: p for p in book.products.values() for v in p.variants}
        lines = []
        for sku, qty in items:
            product = by_sku.get(sku)
            if product is None:
                raise NotFoundError(f"no SKU {sku!r}")
            if qty <= 0:
                raise ValueError(f"expected a positive quantity for {sku}, got {qty}")
            lines.append(BasketLine(sku, product.id, product.name, product.category, qty, product.price_fen))
        return price_basket(lines, book, channel=channel, at=at, coupon_id=coupon).quote()

    def audit_promotions(self, order_id: str) -> PromotionAudit | None:
        order = self.order(order_id)
        return None if order is None else audit_order(order, self.rulebook())

    def add_on_suggestions(self, order_id: str, at: datetime) -> Sequence[AddOnSuggestion]:
        order = self.order(order_id)
        if order is None:
            return []
        book = self.rulebook()
        in_stock = [
            BasketLine(v.sku, p.id, p.name, p.category, 1, p.price_fen)
            for p in book.products.values()
            for v in p.variants
            if v.stock > 0
        ]
        return add_on_suggestions(order, book, at, in_stock)

    def logistics(self, order_id: str, at: datetime) -> LogisticsStatus | None:
        order = self.order(order_id)
        return None if order is None else logistics_status(order, at, self.info().fulfilment, self.timezone())

    def expedite_options(self, order_id: str, at: datetime) -> Sequence[ExpediteOption]:
        order = self.order(order_id)
        if order is None:
            return []
        variants = {v.sku: v for p in self.products() for v in p.variants}
        customer = self.customer(order.customer_id)
        return expedite_options(order, customer, variants, at, self.info().fulfilment, self.timezone())

    def search_policies(self, query: str, k: int = 3) -> Sequence[KbHit]:
        return self._knowledge_base().search(query, k)

    def _knowledge_base(self) -> KnowledgeBase:
        version = self.content_hash() or ""
        with self._lock:
            if self._kb is None or self._kb[0] != version:
                self._kb = (version, KnowledgeBase(self.policies()))
            return self._kb[1]

    # --- changes ------------------------------------------------------------------------------

    def change_order(
        self,
        order_id: str,
        field: str,
        new_value: str,
        at: datetime,
        item_sku: str | None = None,
        *,
        requested_by: str = "",
    ) -> ChangeRecord:
        """Change the address, colour or size of an unshipped order, and log it.

        ``item_sku`` names the order line when the order holds several that could take the change;
        ``requested_by`` (who asked and how they were identified) is logged with it.
        Raises ChangeRefused (an IvrError with a reason and facts) when not allowed,
        NotFoundError for an unknown order.
        """
        with self._db() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                record = _apply_change(conn, order_id, field, new_value, at, item_sku, requested_by)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return record

    def carriers(self) -> tuple[str, ...]:
        """Every carrier the shop names: those of its stated terms, then those on its shipments."""
        with self._db() as conn:
            found = conn.execute("SELECT shipment FROM orders WHERE shipment IS NOT NULL").fetchall()
        shipped = [str(json.loads(r["shipment"])["carrier"]) for r in found]
        return tuple(dict.fromkeys([c.name for c in self.info().fulfilment.carriers] + shipped))

    def last_recorded_at(self) -> datetime | None:
        """The latest time the hotline wrote into this store (a contact or an order change)."""
        with self._db() as conn:
            found = conn.execute("SELECT at FROM contact_log UNION ALL SELECT at FROM order_changes").fetchall()
        return max((datetime.fromisoformat(r["at"]) for r in found), default=None)

    def change_log(self, order_id: str) -> list[ChangeRecord]:
        """Every change made to ``order_id`` through the hotline, oldest first."""
        with self._db() as conn:
            found = conn.execute("SELECT * FROM order_changes WHERE order_id = ? ORDER BY id", (order_id,))
            return [
                ChangeRecord(
                    r["order_id"], r["field"], r["old"], r["new"], datetime.fromisoformat(r["at"]), r["requested_by"]
                )
                for r in found
            ]

    def record_contact(self, customer_id: str, contact: Contact) -> None:
        """Append a contact to the customer's history; an unknown customer is ignored."""
        with self._db() as conn:
            if conn.execute("SELECT 1 FROM customers WHERE id = ?", (customer_id,)).fetchone() is None:
                return
            conn.execute(
                "INSERT INTO contact_log (customer_id, at, channel, summary, complaint) VALUES (?, ?, ?, ?, ?)",
                (customer_id, contact.at.isoformat(), contact.channel, contact.summary, int(contact.complaint)),
            )


def _customer(conn: sqlite3.Connection, customer_id: str) -> Customer | None:
    row = conn.execute("SELECT * FROM customers WHERE id = ?", (customer_id,)).fetchone()
    if row is None:
        return None
    history = [rows.contact(r) for r in conn.execute("SELECT * FROM contacts WHERE customer_id = ?", (customer_id,))]
    history += [
        rows.contact(r) for r in conn.execute("SELECT * FROM contact_log WHERE customer_id = ?", (customer_id,))
    ]
    return rows.customer(row, history)


def _order(conn: sqlite3.Connection, order_id: str) -> Order | None:
    row = conn.execute("SELECT * FROM orders WHERE id = ?", (order_id,)).fetchone()
    if row is None:
        return None
    items = [
        rows.item(r) for r in conn.execute("SELECT * FROM order_items WHERE order_id = ? ORDER BY pos", (order_id,))
    ]
    return rows.order(row, items)


def _products(conn: sqlite3.Connection, product_id: str | None = None) -> list[Product]:
    where, args = ("WHERE id = ?", (product_id,)) if product_id is not None else ("", ())
    found = conn.execute(f"SELECT * FROM products {where} ORDER BY pos", args).fetchall()  # noqa: S608
    out = []
    for p in found:
        variants = [
            rows.variant(v)
            for v in conn.execute("SELECT * FROM variants WHERE product_id = ? ORDER BY pos", (p["id"],))
        ]
        out.append(rows.product(p, variants))
    return out


def _apply_change(  # noqa: PLR0913 - the change and who asked for it
    conn: sqlite3.Connection,
    order_id: str,
    field: str,
    new_value: str,
    at: datetime,
    item_sku: str | None,
    requested_by: str,
) -> ChangeRecord:
    order = _order(conn, order_id)
    if order is None:
        raise NotFoundError(f"no order {order_id!r}")
    products = {p.id: p for p in _products(conn)}
    plan = plan_change(order, products, field, new_value, item_sku)
    if plan.field == "address":
        conn.execute("UPDATE orders SET address = ? WHERE id = ?", (plan.new, order_id))
    else:
        _move_stock(conn, order, plan)
    conn.execute(
        "INSERT INTO order_changes (order_id, field, old, new, old_sku, new_sku, at, requested_by)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            order_id,
            plan.field,
            plan.old,
            plan.new,
            plan.old_variant.sku if plan.old_variant else None,
            plan.new_variant.sku if plan.new_variant else None,
            at.isoformat(),
            requested_by,
        ),
    )
    return ChangeRecord(order_id, plan.field, plan.old, plan.new, at, requested_by)


def _move_stock(conn: sqlite3.Connection, order: Order, plan: ChangePlan) -> None:
    """Point the order line at the new SKU, reserve its stock and release the old SKU's."""
    assert plan.item_pos is not None and plan.new_variant is not None
    item = order.items[plan.item_pos]
    new = plan.new_variant
    taken = conn.execute(
        "UPDATE variants SET stock = stock - ? WHERE sku = ? AND stock >= ?", (item.qty, new.sku, item.qty)
    ).rowcount
    if taken != 1:
        raise ChangeRefused("sold_out", product=item.product_name, color=new.color, size=new.size)
    conn.execute("UPDATE variants SET stock = stock + ? WHERE sku = ?", (item.qty, item.sku))
    conn.execute(
        "UPDATE order_items SET sku = ?, color = ?, size = ? WHERE order_id = ? AND pos = ?",
        (new.sku, new.color, new.size, order.id, plan.item_pos),
    )
