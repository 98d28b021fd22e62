"""The shop as the dialog sees it: domain values and the ``ShopPort`` protocol.

``shop/`` implements the port over SQLite (and later over a shop's real OMS/ERP/CRM); ``dialog/``
only ever calls the port. Money is integer fen, times are timezone-aware datetimes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from enum import StrEnum
from typing import Protocol

from core.errors import IvrError


class OrderStatus(StrEnum):
    UNPAID = "unpaid"
    PAID = "paid"  # paid, not shipped
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    REFUNDING = "refunding"
    CANCELLED = "cancelled"


AGENT_NOTES = "agent"  # the ``Contact.channel`` of an agent's wrap-up notes: internal, never read to the caller


@dataclass(frozen=True, slots=True)
class Contact:
    at: datetime
    channel: str  # phone, …, or AGENT_NOTES
    summary: str
    complaint: bool = False


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    name: str
    phone: str  # E.164
    vip_level: str  # normal | gold | platinum ...
    dialect: str = "普通话"
    history: tuple[Contact, ...] = ()


@dataclass(frozen=True, slots=True)
class Variant:
    sku: str
    color: str
    size: str
    stock: int
    restock_date: date | None = None


@dataclass(frozen=True, slots=True)
class Product:
    id: str
    name: str
    aliases: tuple[str, ...]
    category: str
    price_fen: int
    variants: tuple[Variant, ...]
    facts: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OrderItem:
    sku: str
    product_id: str
    product_name: str
    color: str
    size: str
    qty: int
    unit_price_fen: int
    price_type: str = "regular"  # e.g. livestream


@dataclass(frozen=True, slots=True)
class ShipmentEvent:
    at: datetime
    where: str
    status: str
    signed_by: str | None = None


@dataclass(frozen=True, slots=True)
class Shipment:
    carrier: str
    tracking_no: str
    shipped_at: datetime | None
    events: tuple[ShipmentEvent, ...]
    eta: date | None = None


@dataclass(frozen=True, slots=True)
class Refund:
    requested_at: datetime
    reason: str
    amount_fen: int
    status: str  # the shop's own words, e.g. 退款审核中
    expected_by: date | None = None
    warehouse_received_at: datetime | None = None
    return_tracking_no: str | None = None


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    customer_id: str
    created_at: datetime
    paid_at: datetime | None
    channel: str
    status: OrderStatus
    items: tuple[OrderItem, ...]
    applied_promotions: tuple[str, ...]
    coupon: str | None
    shipping_fee_fen: int
    paid_amount_fen: int
    address: str
    shipment: Shipment | None = None
    refund: Refund | None = None


@dataclass(frozen=True, slots=True)
class Promotion:
    id: str
    kind: str  # threshold_discount | quantity_percent | bundle | channel_price
    title: str
    rules: str
    starts: datetime
    ends: datetime
    params: Mapping[str, object] = field(default_factory=dict)  # kind-specific, amounts in fen


@dataclass(frozen=True, slots=True)
class Coupon:
    id: str
    title: str
    channel: str
    threshold_fen: int
    discount_fen: int
    valid_until: datetime
    rules: str = ""


@dataclass(frozen=True, slots=True)
class Policy:
    id: str
    title: str
    tags: tuple[str, ...]
    text: str


@dataclass(frozen=True, slots=True)
class Agent:
    id: str
    name: str
    skills: Mapping[str, int]  # skill name -> level 1..5
    languages: tuple[str, ...]
    max_concurrent: int = 1


@dataclass(frozen=True, slots=True)
class OrderIdShape:
    """One way a shop writes order numbers: upper-case letters (maybe none), then a run of digits."""

    prefix: str  # "" for digits only
    min_digits: int
    max_digits: int
    orders: int = 0  # how many of the shop's orders have this shape

    def regex(self) -> str:
        span = str(self.min_digits) if self.min_digits == self.max_digits else f"{self.min_digits},{self.max_digits}"
        return re.escape(self.prefix) + r"\d{" + span + "}"


@dataclass(frozen=True, slots=True)
class OrderNumbers:
    """How a shop's order numbers look: shapes learnt from its orders, and the pattern it may declare."""

    shapes: tuple[OrderIdShape, ...] = ()  # most common first
    declared: str | None = None  # ``shop.order_number_pattern``: a regex every order number matches

    def pattern(self) -> str | None:
        """A regex for one whole order number, or None when nothing is known."""
        if self.declared:
            return self.declared
        return "|".join(shape.regex() for shape in self.shapes) or None


@dataclass(frozen=True, slots=True)
class CarrierTerms:
    """What the shop promises for one carrier (snapshot ``shop.fulfilment.carriers[]``)."""

    name: str
    days: int  # days on the road at the latest
    fast_regions: tuple[str, ...] = ()  # regions reached sooner, in ``fast_days``
    fast_days: int | None = None
    upgrade_fee_fen: int | None = None  # what choosing it instead of the default costs; None: not offered

    def transit_days(self, address: str) -> int:
        fast = self.fast_days is not None and any(region in address for region in self.fast_regions)
        return self.fast_days if fast and self.fast_days is not None else self.days


@dataclass(frozen=True, slots=True)
class Fulfilment:
    """The shipping and after-sales promises a shop states (snapshot ``shop.fulfilment``).

    None (or empty) means the shop does not state it, and the hotline then promises nothing about it.
    """

    dispatch_hours: int | None = None  # in-stock orders leave the warehouse within this after payment
    same_day_cutoff: time | None = None  # paid before this (shop time): ships the same day
    carriers: tuple[CarrierTerms, ...] = ()  # the default carrier first
    priority_levels: tuple[str, ...] = ()  # VIP levels whose orders ship first
    free_upgrade_levels: tuple[str, ...] = ()  # VIP levels that get the upgrade carrier free
    stall_hours: int | None = None  # tracking silent this long counts as a logistics exception
    return_days: int | None = None  # no-reason return window after signing
    refund_days: int | None = None  # working days to pay back money owed (补差)

    @property
    def default_carrier(self) -> CarrierTerms | None:
        return self.carriers[0] if self.carriers else None

    @property
    def upgrade(self) -> CarrierTerms | None:
        """The carrier a caller may pay to switch to, if the shop offers one."""
        return next((c for c in self.carriers[1:] if c.upgrade_fee_fen is not None), None)


@dataclass(frozen=True, slots=True)
class ShopInfo:
    name: str
    hotline: str
    timezone: str
    as_of: datetime | None  # the snapshot's "now"; None for a live shop
    agent_hours: tuple[str, str]  # ("09:00", "22:00")
    order_numbers: OrderNumbers = OrderNumbers()
    fulfilment: Fulfilment = Fulfilment()


# --- computed answers -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PriceLine:
    """One discount in a priced basket."""

    source_id: str  # promotion or coupon id
    title: str
    amount_fen: int  # saved, positive


@dataclass(frozen=True, slots=True)
class Quote:
    """A basket priced under the shop's promotions, in the documented order of application."""

    subtotal_fen: int  # before discounts
    discounts: tuple[PriceLine, ...]
    total_fen: int  # what the customer pays (incl. shipping)
    shipping_fee_fen: int = 0


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a promotion or coupon applied or not, as facts; the dialog words it (``why.<code>``).

    Fact values: amounts in fen under keys ending ``_fen``, moments as datetimes (``starts``,
    ``ends``, ``until``), channels as their codes (``channel``), lists of names as tuples.
    """

    code: str
    facts: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MissedPromotion:
    promotion_id: str
    title: str
    amount_fen: int  # what it would have saved
    reason: Reason  # why it applies


@dataclass(frozen=True, slots=True)
class IneligiblePromotion:
    promotion_id: str
    title: str
    reason: Reason  # why it does not apply


@dataclass(frozen=True, slots=True)
class PromotionAudit:
    """For one order: what applied, what should have and did not, and what is owed back (补差)."""

    order_id: str
    paid_fen: int
    expected_fen: int  # what the order should have cost under the rules in force when paid
    owed_back_fen: int  # max(0, paid - expected)
    applied: tuple[PriceLine, ...]
    missed: tuple[MissedPromotion, ...]
    ineligible: tuple[IneligiblePromotion, ...]


@dataclass(frozen=True, slots=True)
class AddOnSuggestion:
    """The cheapest add-on (凑单) that reaches a promotion threshold."""

    promotion_id: str
    promotion_title: str
    short_by_fen: int  # how far the basket is from the threshold
    sku: str
    product_name: str
    price_fen: int
    saving_fen: int  # discount unlocked
    net_extra_fen: int  # price - saving (negative = the customer pays less in total)


class ShipmentState(StrEnum):
    NOT_SHIPPED = "not_shipped"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    STALLED = "stalled"  # no movement for longer than the shop's stall threshold


@dataclass(frozen=True, slots=True)
class LogisticsStatus:
    """Where an order's parcel is, as facts; the dialog words them."""

    order_id: str
    state: ShipmentState
    carrier: str | None = None
    tracking_no: str | None = None
    last_event: ShipmentEvent | None = None
    hours_since_last_event: float | None = None
    eta: date | None = None
    days_overdue: int = 0
    ship_by: datetime | None = None  # not shipped yet: the latest the shop's stated promise lets it leave


@dataclass(frozen=True, slots=True)
class ExpediteOption:
    """A way to get an order sooner, from the shop's stated promises only.

    ``kind``: ``standard`` (the promise itself), ``ship_today``, ``vip_priority``, ``carrier_upgrade``.
    ``ships_by``/``arrives_by`` are None when the shop states nothing to compute them from;
    ``arrives_by`` is "at the latest" for the default carrier, "expected" for an upgrade.
    """

    kind: str
    cost_fen: int
    ships_by: datetime | None
    arrives_by: date | None
    carrier: str | None = None
    overdue_since: datetime | None = None  # the promised dispatch time already passed


@dataclass(frozen=True, slots=True)
class KbHit:
    policy_id: str
    title: str
    answer: str  # the one or two sentences that answer the question
    score: float


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    order_id: str
    field: str  # address | color | size | sku (colour and size in one step: old and new SKU)
    old: str
    new: str
    at: datetime
    requested_by: str = ""  # who asked and how they were identified (dialog.access codes)


class ChangeRefused(IvrError):
    """``ShopPort.change_order`` said no: ``reason`` names why, ``facts`` hold the figures and names.

    Reasons: ``field`` (not changeable by phone), ``status`` (facts: status, field), ``address_unclear``,
    ``address_same``, ``not_in_order``, ``which_item`` (items), ``already`` (product, color, size),
    ``out_of_stock`` (product, color, size, restock: ISO date or ""), ``no_variant`` (product, field,
    kept, wanted, options), ``sold_out`` (product, color, size). The dialog words them.
    """

    def __init__(self, reason: str, **facts: str | tuple[str, ...]) -> None:
        super().__init__(f"order change refused: {reason} {facts}")
        self.reason = reason
        self.facts = facts


class ShopPort(Protocol):
    """Everything the dialog may ask of a shop. Unknown ids return None, never raise."""

    def info(self) -> ShopInfo: ...

    def customer_by_phone(self, phone: str) -> Customer | None: ...

    def customer(self, customer_id: str) -> Customer | None: ...

    def orders_for_customer(self, customer_id: str) -> Sequence[Order]:
        """Newest first."""
        ...

    def order(self, order_id: str) -> Order | None: ...

    def products(self) -> Sequence[Product]: ...

    def product(self, product_id: str) -> Product | None: ...

    def promotions(self) -> Sequence[Promotion]: ...

    def coupons(self) -> Sequence[Coupon]: ...

    def policies(self) -> Sequence[Policy]: ...

    def agents(self) -> Sequence[Agent]: ...

    def quote(self, items: Sequence[tuple[str, int]], channel: str, at: datetime, coupon: str | None = None) -> Quote:
        """Price ``(sku, qty)`` items bought through ``channel`` at ``at``."""
        ...

    def audit_promotions(self, order_id: str) -> PromotionAudit | None: ...

    def add_on_suggestions(self, order_id: str, at: datetime) -> Sequence[AddOnSuggestion]: ...

    def logistics(self, order_id: str, at: datetime) -> LogisticsStatus | None: ...

    def expedite_options(self, order_id: str, at: datetime) -> Sequence[ExpediteOption]: ...

    def search_policies(self, query: str, k: int = 3) -> Sequence[KbHit]: ...

    def change_order(
        self, order_id: str, field: str, new_value: str, at: datetime, *, requested_by: str = ""
    ) -> ChangeRecord:
        """Change address/colour/size of an order that has not shipped; raises ChangeRefused if not allowed.

        ``requested_by`` (who asked, how identified) is kept in the change log with the change."""
        ...

    def record_contact(self, customer_id: str, contact: Contact) -> None: ...
