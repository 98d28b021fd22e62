"""Who may hear about an order and change it: its owner, or a caller who proved they know it.

The owner is the customer whose phone number is the caller ID. Anyone else (another number, no
caller ID) must first answer what Chinese shops ask: the last four digits of the phone number on
the order's customer record, or the recipient's name. Until then nothing of the order — items,
address, status details — is said and nothing is changed. ``MAX_FAILURES`` wrong answers end the
tries (no guessing four digits by brute force): the caller is handed to a human.

``requested_by`` codes go into the shop's change log with every change.
"""

from __future__ import annotations

import re

from core.shop import Order
from core.types import Understanding
from dialog.state import CallState, Context

OWNER = "owner-caller-id"
BY_PHONE = "verified-phone-last4"
BY_NAME = "verified-recipient-name"
MAX_FAILURES = 2
_DIGITS = re.compile(r"\d+")


def access(state: CallState, order: Order) -> str | None:
    """How this caller is entitled to ``order`` (a ``requested_by`` code), or None: verify first."""
    if state.customer is not None and order.customer_id == state.customer.id:
        return OWNER
    return next((how for cid, how in state.verified if cid == order.customer_id), None)


def verify(order: Order, u: Understanding, ctx: Context) -> str | None:
    """The code for a correct answer (phone's last four digits, or the recipient's name), else None."""
    customer = ctx.shop.customer(order.customer_id)
    if customer is None:
        return None
    text = u.normalized or u.text
    phone = "".join(ch for ch in customer.phone if ch.isdigit())
    for run in _DIGITS.findall(text):
        if len(run) == 4 and phone.endswith(run):
            return BY_PHONE
        if len(run) >= 11 and phone.endswith(run[-11:]):
            return BY_PHONE
    name = customer.name.strip()
    if len(name) >= 2 and name in text.replace(" ", ""):
        return BY_NAME
    return None


def looks_like_an_answer(u: Understanding, asks_something: bool) -> bool:
    """Digits, or words that ask for nothing: an attempt at the verification question."""
    return bool(_DIGITS.search(u.normalized or u.text)) or not asks_something
