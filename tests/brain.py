"""Helpers for the brain's behaviour tests: a call on one of the test shops, driven turn by turn.

Understandings are built by hand (``U``) where a test pins one dialog rule, so the test does not
depend on the classifier of the day; ``Script`` hands them to a real ``CallSession``, which carries
out the dialog's actions (order changes, transfers) exactly as in a live call.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from shops import open_test_shop, snapshot_data

from core.clock import FixedClock
from core.shop import Customer, Order, OrderStatus
from core.types import Emotion, EmotionLabel, Intent, Prosody, Understanding
from shop.store import SqliteShop
from voice.session import CallSession, TurnResult
from voice.transfers import LocalDesk


def U(text: str, *intents: tuple[str, Mapping[str, str]], label: str = "neutral") -> Understanding:
    found = tuple(Intent(name, 0.9, slots) for name, slots in intents)
    return Understanding(text, text, found, Emotion(EmotionLabel(label), 0.8))


class Script:
    """An understander that returns the Understanding written for each turn, in order."""

    def __init__(self) -> None:
        self.next: list[Understanding] = []

    def understand(
        self, text: str, now: datetime, prosody: Prosody | None = None, context: str | None = None
    ) -> Understanding:
        u = self.next.pop(0)
        assert u.text == text, f"expected the turn {u.text!r}, got {text!r}"
        return u


class Call:
    """One call on ``shop`` from ``caller``; ``say(u)`` is one caller turn, ``replies`` what the bot said.

    Transfers go to ``desk``; by default a desk of its own with every agent of the shop signed in
    and available.
    """

    def __init__(self, shop: SqliteShop, caller: str | None, desk: LocalDesk | None = None) -> None:
        as_of = shop.info().as_of
        assert as_of is not None
        if desk is None:
            desk = LocalDesk(shop.agents(), [a.id for a in shop.agents()])
            weakref.finalize(self, desk.close)
        self.shop, self.script, self.desk = shop, Script(), desk
        self.session = CallSession(shop, self.script, FixedClock(as_of), caller=caller, transfers=desk)
        self.replies = [a.text for a in self.session.greet()]

    def say(self, u: Understanding) -> TurnResult:
        self.script.next.append(u)
        result = self.session.hear_text(u.text)
        self.replies.append(result.reply)
        return result


def shop_for(name: str, tmp_path: Path) -> SqliteShop:
    return open_test_shop(name, tmp_path)


def customers(shop: SqliteShop, name: str) -> list[Customer]:
    """The shop's customers, in the snapshot's order."""
    found = [shop.customer(c["id"]) for c in snapshot_data(name)["customers"]]
    return [c for c in found if c is not None]


def all_orders(shop: SqliteShop, name: str) -> list[Order]:
    return [o for c in customers(shop, name) for o in shop.orders_for_customer(c.id)]


def open_order(shop: SqliteShop, name: str) -> Order:
    """An order not yet shipped (its address can still change)."""
    return next(o for o in all_orders(shop, name) if o.status is OrderStatus.PAID)


def secrets(shop: SqliteShop, order: Order) -> list[str]:
    """What a stranger must not hear: the address and every name of every item."""
    words = [order.address]
    for item in order.items:
        product = shop.product(item.product_id)
        words += [item.product_name, *(product.aliases if product else ())]
    return [w for w in words if len(w) >= 2]


def last_four(phone: str) -> str:
    return re.sub(r"\D", "", phone)[-4:]
