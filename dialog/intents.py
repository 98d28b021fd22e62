"""The intent taxonomy: every name the understanding may return, and how the finer ones are scored.

``DEV_LABEL`` maps an intent finer than the labels of the real-turn dev set (``bench/nlu.py``) to
the label that set's conventions give the same need, so the benchmark stays comparable.
"""

from __future__ import annotations

INTENTS = (
    "logistics.track", "logistics.ship_time", "logistics.carrier", "logistics.expedite", "inventory.stock",
    "product.info", "promotion.inquiry", "promotion.not_applied", "promotion.bundle", "order.modify",
    "order.cancel", "order.status", "aftersale.return", "aftersale.refund_status", "aftersale.exchange",
    "aftersale.damage", "invoice", "complaint", "human_agent", "greeting", "goodbye", "affirm", "deny", "other",
)
DEV_LABEL: dict[str, str] = {}
