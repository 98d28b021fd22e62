"""Read and validate a ``shop-snapshot/1`` JSON into core shop values (the one wire boundary).

Every problem is reported with the JSON path of the bad field, several at once, one per line:
``orders[3].items[0].qty: expected a positive integer, got -1``. Unknown SKU, customer, promotion
and coupon references, naive datetimes, unknown promotion kinds and a wrong format tag are
errors. Unknown extra fields are ignored so a newer exporter does not break the hotline.
The optional ``shop.order_number_pattern`` and ``shop.fulfilment`` are described in docs/SNAPSHOT.md.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.errors import ShopDataError
from core.shop import (
    Agent,
    Contact,
    Coupon,
    Customer,
    Order,
    OrderItem,
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
from shop.fulfilment import read_fulfilment
from shop.order_numbers import check_pattern, learn_order_numbers
from shop.phone import is_e164, phone_key
from shop.validate import Errors, Node, shown

FORMAT = "shop-snapshot/1"
PROMOTION_KINDS = ("threshold_discount", "quantity_percent", "bundle", "channel_price")
ORDER_STATUSES = tuple(s.value for s in OrderStatus)
_PAID_STATUSES = ("paid", "shipped", "delivered", "refunding")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A validated shop snapshot; ``content_hash`` identifies the source bytes, ``source`` where they came from."""

    info: ShopInfo
    products: tuple[Product, ...]
    promotions: tuple[Promotion, ...]
    coupons: tuple[Coupon, ...]
    customers: tuple[Customer, ...]
    orders: tuple[Order, ...]
    policies: tuple[Policy, ...]
    agents: tuple[Agent, ...]
    content_hash: str
    source: str = ""

    @property
    def identity(self) -> str:
        """Which shop this is: its name and where it was read from (one database per identity)."""
        return f"{self.info.name}\n{self.source}"


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_snapshot(path: Path) -> Snapshot:
    """Read and validate the snapshot file at ``path``."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ShopDataError(f"{path}: cannot read the shop snapshot ({err.strerror})") from None
    return replace(parse_snapshot(data, source=str(path)), source=str(path.resolve()))


def parse_snapshot(data: bytes | str, source: str = "shop.json") -> Snapshot:
    """Validate a snapshot's JSON text; raises ShopDataError listing every problem found."""
    raw = data.encode() if isinstance(data, str) else data
    if not raw.strip():
        raise ShopDataError(f"{source}: the shop snapshot is empty")
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        where = f" at line {err.lineno} column {err.colno}" if isinstance(err, json.JSONDecodeError) else ""
        raise ShopDataError(f"{source}: not valid JSON{where}") from None
    errors = Errors(source)
    root = Node.of(doc, "", errors)
    if root is None:
        errors.raise_if_any()
        raise AssertionError("unreachable")
    if root.raw("format") != FORMAT:
        got = "nothing (field missing)" if "format" not in root.value else shown(root.raw("format"))
        raise ShopDataError(f"{source}: format: expected {shown(FORMAT)}, got {got}")
    snapshot = _sections(root, errors, content_hash(raw))
    errors.raise_if_any()
    return replace(snapshot, source=source)


def _sections(root: Node, errors: Errors, digest: str) -> Snapshot:
    info_node = root.child("shop")
    info = _info(info_node) if info_node else None
    products = _unique(root, "products", [_product(n) for n in root.children("products", non_empty=True)])
    refs = _Refs(root, products)
    _check_skus(root, products)
    promotions = _unique(root, "promotions", [_promotion(n, refs) for n in root.children("promotions", False)])
    coupons = _unique(root, "coupons", [_coupon(n) for n in root.children("coupons", False)])
    customers = _unique(root, "customers", [_customer(n) for n in root.children("customers", False)])
    _check_phones(root, customers)
    orders = _unique(root, "orders", [_order(n, refs) for n in root.children("orders", False)])
    policies = _unique(root, "policies", [_policy(n) for n in root.children("policies", False)])
    agents = _unique(root, "agents", [_agent(n) for n in root.children("agents", False)])
    empty_info = ShopInfo(name="", hotline="", timezone="Asia/Shanghai", as_of=None, agent_hours=("09:00", "22:00"))
    declared = _order_number_pattern(info_node, orders) if info_node else None
    numbers = learn_order_numbers(orders, declared)
    return Snapshot(
        info=replace(info or empty_info, order_numbers=numbers),
        products=tuple(products.values()),
        promotions=tuple(promotions.values()),
        coupons=tuple(coupons.values()),
        customers=tuple(customers.values()),
        orders=tuple(orders.values()),
        policies=tuple(policies.values()),
        agents=tuple(agents.values()),
        content_hash=digest,
    )


class _Refs:
    """Ids for reference checks in later sections.

    Ids are read leniently from the raw JSON, so a product dropped for a bad price does not turn
    every order that references it into a second, misleading "unknown SKU" error.
    """

    def __init__(self, root: Node, products: Mapping[str, Product]) -> None:
        self.products = products
        self.variants = {v.sku: (p, v) for p in products.values() for v in p.variants}
        raw_products = _raw_rows(root.value, "products")
        self.product_ids = _raw_ids(raw_products, "id")
        self.skus = {sku for p in raw_products for sku in _raw_ids(_raw_rows(p, "variants"), "sku")}
        self.categories = _raw_ids(raw_products, "category")
        self.promotion_ids = _raw_ids(_raw_rows(root.value, "promotions"), "id")
        self.coupon_ids = _raw_ids(_raw_rows(root.value, "coupons"), "id")
        self.customer_ids = _raw_ids(_raw_rows(root.value, "customers"), "id")


def _raw_rows(doc: Mapping[str, object], key: str) -> list[Mapping[str, object]]:
    rows = doc.get(key)
    return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []


def _raw_ids(rows: list[Mapping[str, object]], key: str) -> set[str]:
    return {v.strip() for row in rows if isinstance(v := row.get(key), str)}


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


T = TypeVar("T", bound=_HasId)


def _unique(root: Node, section: str, rows: list[tuple[str, T] | None]) -> dict[str, T]:
    """Rows by id; a repeated id is an error naming both positions."""
    seen: dict[str, T] = {}
    first: dict[str, int] = {}
    for i, row in enumerate(rows):
        if row is None:
            continue
        path, value = row
        if value.id in seen:
            root.errors.add(f"{path}.id", f"duplicate id {shown(value.id)} (first at {section}[{first[value.id]}])")
            continue
        seen[value.id] = value
        first[value.id] = i
    return seen


def _info(node: Node) -> ShopInfo | None:
    mark = node.errors.mark()
    tz = node.text("timezone", default="Asia/Shanghai")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        node.errors.add(node.at("timezone"), f"expected an IANA time zone such as Asia/Shanghai, got {shown(tz)}")
    hours = node.child("service_hours", required=False)
    info = ShopInfo(
        name=node.text("name"),
        hotline=node.text("hotline"),
        timezone=tz,
        as_of=node.opt_moment("as_of"),
        agent_hours=hours.hhmm_span("agents", ("09:00", "22:00")) if hours else ("09:00", "22:00"),
    )
    fulfilment = node.child("fulfilment", required=False)
    if fulfilment is not None:
        info = replace(info, fulfilment=read_fulfilment(fulfilment))
    return None if node.errors.since(mark) else info


def _order_number_pattern(node: Node, orders: Mapping[str, Order]) -> str | None:
    """``shop.order_number_pattern``: optional, a regex every order number must match."""
    pattern = node.opt_text("order_number_pattern")
    why = check_pattern(pattern, orders) if pattern is not None else None
    if why is not None:
        node.errors.add(node.at("order_number_pattern"), why)
        return None
    return pattern


def _product(node: Node) -> tuple[str, Product] | None:
    mark = node.errors.mark()
    variants = []
    for v in node.children("variants", non_empty=True):
        variants.append(
            Variant(
                sku=v.text("sku"),
                color=v.text("color"),
                size=v.text("size"),
                stock=v.integer("stock"),
                restock_date=v.opt_day("restock_date"),
            )
        )
    skus = [v.sku for v in variants]
    for sku in {s for s in skus if skus.count(s) > 1}:
        node.errors.add(node.at("variants"), f"duplicate sku {shown(sku)}")
    product = Product(
        id=node.text("id"),
        name=node.text("name"),
        aliases=node.strings("aliases"),
        category=node.text("category"),
        price_fen=node.money("price", positive=True),
        variants=tuple(variants),
        facts=node.string_map("facts"),
    )
    return None if node.errors.since(mark) else (node.path, product)


def _check_skus(root: Node, products: Mapping[str, Product]) -> None:
    owner: dict[str, str] = {}
    for product in products.values():
        for variant in product.variants:
            if variant.sku in owner and owner[variant.sku] != product.id:
                root.errors.add(
                    "products", f"sku {shown(variant.sku)} belongs to both {owner[variant.sku]} and {product.id}"
                )
            owner.setdefault(variant.sku, product.id)


def _promotion(node: Node, refs: _Refs) -> tuple[str, Promotion] | None:
    mark = node.errors.mark()
    kind = node.choice("kind", PROMOTION_KINDS)
    if node.errors.since(mark):
        return None  # the kind decides which fields to expect
    starts, ends = node.moment("starts"), node.moment("ends")
    if not node.errors.since(mark) and ends <= starts:
        node.errors.add(
            node.at("ends"), f"expected a time after starts ({starts.isoformat()}), got {shown(ends.isoformat())}"
        )
    params: dict[str, object] = {
        "stackable_with_coupons": node.flag("stackable_with_coupons", True),
        "excludes_products": _product_refs(node, "excludes_products", refs),
        "excludes_price_types": list(node.strings("excludes_price_types")),
    }
    params.update(_KIND_PARAMS[kind](node, refs))
    promotion = Promotion(
        id=node.text("id"),
        kind=kind,
        title=node.text("title"),
        rules=node.text("rules", default=""),
        starts=starts,
        ends=ends,
        params=params,
    )
    return None if node.errors.since(mark) else (node.path, promotion)


def _threshold_params(node: Node, refs: _Refs) -> dict[str, object]:
    mark = node.errors.mark()
    threshold, discount = node.money("threshold", positive=True), node.money("discount", positive=True)
    if not node.errors.since(mark) and discount > threshold:
        node.errors.add(
            node.at("discount"), f"expected a discount no larger than the threshold, got {discount / 100:g}"
        )
    return {"threshold": threshold, "discount": discount}


def _percent_params(node: Node, refs: _Refs) -> dict[str, object]:
    categories = node.strings("categories", required=True, non_empty=True)
    for i, category in enumerate(categories):
        if category not in refs.categories:
            node.errors.add(f"{node.at('categories')}[{i}]", f"unknown category {shown(category)}")
    return {
        "min_quantity": node.integer("min_quantity", minimum=1),
        "percent_off": node.number("percent_off", 0, 100),
        "categories": list(categories),
    }


def _bundle_params(node: Node, refs: _Refs) -> dict[str, object]:
    products = _product_refs(node, "products", refs, required=True)
    if len(set(products)) < 2:
        node.errors.add(node.at("products"), f"expected at least two different products, got {shown(products)}")
    return {"products": products, "discount": node.money("discount", positive=True)}


def _channel_params(node: Node, refs: _Refs) -> dict[str, object]:
    product = node.text("product")
    if product and product not in refs.product_ids:
        node.errors.add(node.at("product"), f"unknown product id {shown(product)}")
    return {"channel": node.text("channel"), "product": product, "price": node.money("price", positive=True)}


_KIND_PARAMS = {
    "threshold_discount": _threshold_params,
    "quantity_percent": _percent_params,
    "bundle": _bundle_params,
    "channel_price": _channel_params,
}


def _product_refs(node: Node, key: str, refs: _Refs, required: bool = False) -> list[str]:
    ids = node.strings(key, required=required, non_empty=required)
    for i, pid in enumerate(ids):
        if pid not in refs.product_ids:
            node.errors.add(f"{node.at(key)}[{i}]", f"unknown product id {shown(pid)}")
    return list(ids)


def _coupon(node: Node) -> tuple[str, Coupon] | None:
    mark = node.errors.mark()
    coupon = Coupon(
        id=node.text("id"),
        title=node.text("title"),
        channel=node.text("channel", default="any"),
        threshold_fen=node.money("threshold"),
        discount_fen=node.money("discount", positive=True),
        valid_until=node.moment("valid_until"),
        rules=node.text("rules", default=""),
    )
    return None if node.errors.since(mark) else (node.path, coupon)


def _customer(node: Node) -> tuple[str, Customer] | None:
    mark = node.errors.mark()
    phone = node.text("phone")
    if phone and not is_e164(phone):
        node.errors.add(node.at("phone"), f"expected an E.164 number such as +8613800138001, got {shown(phone)}")
    history = tuple(
        Contact(
            at=h.moment("at"),
            channel=h.text("channel"),
            summary=h.text("summary"),
            complaint=h.flag("complaint", False),
        )
        for h in node.children("history", required=False)
    )
    customer = Customer(
        id=node.text("id"),
        name=node.text("name"),
        phone=phone,
        vip_level=node.text("vip_level", default="normal"),
        dialect=node.text("dialect", default="普通话"),
        history=tuple(sorted(history, key=lambda c: c.at)),
    )
    return None if node.errors.since(mark) else (node.path, customer)


def _check_phones(root: Node, customers: Mapping[str, Customer]) -> None:
    """A caller ID must identify one customer."""
    owner: dict[str, str] = {}
    for customer in customers.values():
        key = phone_key(customer.phone)
        if key is None:
            continue
        if key in owner:
            root.errors.add("customers", f"{customer.id} and {owner[key]} share the phone number {customer.phone}")
        owner.setdefault(key, customer.id)


def _order(node: Node, refs: _Refs) -> tuple[str, Order] | None:
    mark = node.errors.mark()
    customer_id = node.text("customer")
    if customer_id and customer_id not in refs.customer_ids:
        node.errors.add(node.at("customer"), f"unknown customer id {shown(customer_id)}")
    status = node.choice("status", ORDER_STATUSES)
    paid_at = node.opt_moment("paid_at")
    if paid_at is None and status in _PAID_STATUSES:
        node.errors.add(node.at("paid_at"), f"expected a payment time for an order that is {status}, got null")
    items = tuple(item for n in node.children("items", non_empty=True) if (item := _item(n, refs)))
    promos = node.strings("applied_promotions")
    for i, pid in enumerate(promos):
        if pid not in refs.promotion_ids:
            node.errors.add(f"{node.at('applied_promotions')}[{i}]", f"unknown promotion id {shown(pid)}")
    coupon = node.opt_text("coupon")
    if coupon is not None and coupon not in refs.coupon_ids:
        node.errors.add(node.at("coupon"), f"unknown coupon id {shown(coupon)}")
    shipment_node = node.child("shipment", required=False)
    if shipment_node is None and status in ("shipped", "delivered") and not node.errors.since(mark):
        node.errors.add(node.at("shipment"), f"expected shipment details for an order that is {status}, got null")
    refund_node = node.child("refund", required=False)
    order = Order(
        id=node.text("id"),
        customer_id=customer_id,
        created_at=node.moment("created_at"),
        paid_at=paid_at,
        channel=node.text("channel"),
        status=OrderStatus(status),
        items=items,
        applied_promotions=promos,
        coupon=coupon,
        shipping_fee_fen=node.money("shipping_fee", default=0),
        paid_amount_fen=node.money("paid_amount"),
        address=node.text("address"),
        shipment=_shipment(shipment_node) if shipment_node else None,
        refund=_refund(refund_node) if refund_node else None,
    )
    return None if node.errors.since(mark) else (node.path, order)


def _item(node: Node, refs: _Refs) -> OrderItem | None:
    sku = node.text("sku")
    found = refs.variants.get(sku)
    if sku and sku not in refs.skus:
        node.errors.add(node.at("sku"), f"unknown SKU {shown(sku)}")
    qty, unit = node.integer("qty", minimum=1), node.money("unit_price")
    if found is None:
        return None
    product, variant = found
    return OrderItem(
        sku=sku,
        product_id=product.id,
        product_name=product.name,
        color=variant.color,
        size=variant.size,
        qty=qty,
        unit_price_fen=unit,
        price_type=node.text("price_type", default="regular"),
    )


def _shipment(node: Node) -> Shipment:
    events = [
        ShipmentEvent(
            at=e.moment("at"), where=e.text("where"), status=e.text("status"), signed_by=e.opt_text("signed_by")
        )
        for e in node.children("events", required=False)
    ]
    return Shipment(
        carrier=node.text("carrier"),
        tracking_no=node.text("tracking_no"),
        shipped_at=node.opt_moment("shipped_at"),
        events=tuple(sorted(events, key=lambda e: e.at)),
        eta=node.opt_day("eta"),
    )


def _refund(node: Node) -> Refund:
    return Refund(
        requested_at=node.moment("requested_at"),
        reason=node.text("reason"),
        amount_fen=node.money("amount"),
        status=node.text("status"),
        expected_by=node.opt_day("expected_by"),
        warehouse_received_at=node.opt_moment("warehouse_received_at"),
        return_tracking_no=node.opt_text("return_tracking_no"),
    )


def _policy(node: Node) -> tuple[str, Policy] | None:
    mark = node.errors.mark()
    policy = Policy(id=node.text("id"), title=node.text("title"), tags=node.strings("tags"), text=node.text("text"))
    return None if node.errors.since(mark) else (node.path, policy)


def _agent(node: Node) -> tuple[str, Agent] | None:
    mark = node.errors.mark()
    skills_node = node.child("skills")
    skills = {}
    if skills_node is not None:
        skills = {name: skills_node.integer(name, minimum=1, maximum=5) for name in skills_node.value}
    agent = Agent(
        id=node.text("id"),
        name=node.text("name"),
        skills=skills,
        languages=node.strings("languages", required=True, non_empty=True),
        max_concurrent=node.integer("max_concurrent", minimum=1, default=1),
    )
    return None if node.errors.since(mark) else (node.path, agent)
