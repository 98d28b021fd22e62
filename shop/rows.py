"""SQLite rows back into core shop values (the inverse of ``schema.write_snapshot``)."""

from __future__ import annotations

import json
import sqlite3
from datetime import date, datetime

from core.shop import (
    Agent,
    Contact,
    Coupon,
    Customer,
    Order,
    OrderIdShape,
    OrderItem,
    OrderNumbers,
    OrderStatus,
    Policy,
    Product,
    Promotion,
    Refund,
    Shipment,
    ShipmentEvent,
    ShopInfo,
    Variant,
)
from shop.fulfilment import fulfilment_from_json


def _dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _must_dt(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _day(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


def info(row: sqlite3.Row, terms: dict[str, str]) -> ShopInfo:
    return ShopInfo(
        name=row["name"],
        hotline=row["hotline"],
        timezone=row["timezone"],
        as_of=_dt(row["as_of"]),
        agent_hours=(row["agents_open"], row["agents_close"]),
        order_numbers=order_numbers(terms.get("order_numbers")),
        fulfilment=fulfilment_from_json(terms.get("fulfilment")),
    )


def order_numbers(text: str | None) -> OrderNumbers:
    if not text:
        return OrderNumbers()
    doc = json.loads(text)
    return OrderNumbers(tuple(OrderIdShape(*shape) for shape in doc["shapes"]), doc["declared"])


def variant(row: sqlite3.Row) -> Variant:
    return Variant(row["sku"], row["color"], row["size"], row["stock"], _day(row["restock_date"]))


def product(row: sqlite3.Row, variants: list[Variant]) -> Product:
    return Product(
        id=row["id"],
        name=row["name"],
        aliases=tuple(json.loads(row["aliases"])),
        category=row["category"],
        price_fen=row["price_fen"],
        variants=tuple(variants),
        facts=json.loads(row["facts"]),
    )


def promotion(row: sqlite3.Row) -> Promotion:
    return Promotion(
        id=row["id"],
        kind=row["kind"],
        title=row["title"],
        rules=row["rules"],
        starts=_must_dt(row["starts"]),
        ends=_must_dt(row["ends"]),
        params=json.loads(row["params"]),
    )


def coupon(row: sqlite3.Row) -> Coupon:
    return Coupon(
        id=row["id"],
        title=row["title"],
        channel=row["channel"],
        threshold_fen=row["threshold_fen"],
        discount_fen=row["discount_fen"],
        valid_until=_must_dt(row["valid_until"]),
        rules=row["rules"],
    )


def contact(row: sqlite3.Row) -> Contact:
    return Contact(_must_dt(row["at"]), row["channel"], row["summary"], bool(row["complaint"]))


def customer(row: sqlite3.Row, history: list[Contact]) -> Customer:
    return Customer(
        id=row["id"],
        name=row["name"],
        phone=row["phone"],
        vip_level=row["vip_level"],
        dialect=row["dialect"],
        history=tuple(sorted(history, key=lambda c: c.at)),
    )


def item(row: sqlite3.Row) -> OrderItem:
    return OrderItem(
        sku=row["sku"],
        product_id=row["product_id"],
        product_name=row["product_name"],
        color=row["color"],
        size=row["size"],
        qty=row["qty"],
        unit_price_fen=row["unit_price_fen"],
        price_type=row["price_type"],
    )


def order(row: sqlite3.Row, items: list[OrderItem]) -> Order:
    return Order(
        id=row["id"],
        customer_id=row["customer_id"],
        created_at=_must_dt(row["created_at"]),
        paid_at=_dt(row["paid_at"]),
        channel=row["channel"],
        status=OrderStatus(row["status"]),
        items=tuple(items),
        applied_promotions=tuple(json.loads(row["applied_promotions"])),
        coupon=row["coupon"],
        shipping_fee_fen=row["shipping_fee_fen"],
        paid_amount_fen=row["paid_amount_fen"],
        address=row["address"],
        shipment=_shipment(row["shipment"]),
        refund=_refund(row["refund"]),
    )


def _shipment(text: str | None) -> Shipment | None:
    if not text:
        return None
    d = json.loads(text)
    events = tuple(ShipmentEvent(_must_dt(e["at"]), e["where"], e["status"], e.get("signed_by")) for e in d["events"])
    return Shipment(d["carrier"], d["tracking_no"], _dt(d["shipped_at"]), events, _day(d["eta"]))


def _refund(text: str | None) -> Refund | None:
    if not text:
        return None
    d = json.loads(text)
    return Refund(
        requested_at=_must_dt(d["requested_at"]),
        reason=d["reason"],
        amount_fen=d["amount_fen"],
        status=d["status"],
        expected_by=_day(d["expected_by"]),
        warehouse_received_at=_dt(d["warehouse_received_at"]),
        return_tracking_no=d["return_tracking_no"],
    )


def policy(row: sqlite3.Row) -> Policy:
    return Policy(row["id"], row["title"], tuple(json.loads(row["tags"])), row["text"])


def agent(row: sqlite3.Row) -> Agent:
    return Agent(
        id=row["id"],
        name=row["name"],
        skills=json.loads(row["skills"]),
        languages=tuple(json.loads(row["languages"])),
        max_concurrent=row["max_concurrent"],
    )
