"""The shop's shipping and after-sales promises: the optional ``shop.fulfilment`` snapshot section.

```json
"fulfilment": {
  "dispatch_hours": 48,            // in-stock orders leave within this many hours of payment
  "same_day_cutoff": "16:00",      // paid before this (shop time): sent out the same day
  "stall_hours": 48,               // tracking silent this long is a logistics exception
  "return_days": 7,                // no-reason returns within this many days of signing
  "refund_days": 3,                // working days to pay back money owed (补差)
  "carriers": [                    // the default carrier first (or the one with "default": true)
    {"name": "…快递", "default": true, "days": 4, "fast_regions": ["上海"], "fast_days": 1},
    {"name": "…速运", "days": 1, "upgrade_fee": 15}   // yuan to switch to it; omitted: not offered
  ],
  "vip": {"priority_shipping": ["gold"], "free_upgrade": ["platinum"]}
}
```

Every field is optional. What a shop leaves out, the hotline does not promise: ``promise_gaps``
lists those promises for the operator (``ivr call --json``, ``/healthz``), and the dialog answers
such questions with the shop's own policy text or a check by a person instead of a figure.
"""

from __future__ import annotations

import json
import re
from datetime import time

from core.shop import CarrierTerms, Fulfilment
from shop.validate import Node, shown

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_MAX_HOURS = 24 * 30
_MAX_DAYS = 366

# what the hotline leaves unsaid when a field is missing (for the operator, not the caller)
GAPS = {
    "dispatch_hours": "no dispatch time: the hotline will not say when an order ships",
    "same_day_cutoff": "no same-day cut-off: no 'ships today' promise, no VIP priority dispatch",
    "carriers": "no carriers: no delivery-day promise, no carrier upgrade",
    "stall_hours": "no stall threshold: the hotline uses its own (STALL_HOURS) to offer help, never quoted",
    "return_days": "no return window: return deadlines are read from the policy text only",
    "refund_days": "no refund time: money owed back is promised without a number of days",
}


def read_fulfilment(node: Node) -> Fulfilment:
    """The ``fulfilment`` object at ``node``; bad fields are recorded as path-named errors."""
    carriers = _carriers(node)
    vip = node.child("vip", required=False)
    return Fulfilment(
        dispatch_hours=_opt_int(node, "dispatch_hours", _MAX_HOURS),
        same_day_cutoff=_opt_time(node, "same_day_cutoff"),
        carriers=carriers,
        priority_levels=vip.strings("priority_shipping") if vip else (),
        free_upgrade_levels=vip.strings("free_upgrade") if vip else (),
        stall_hours=_opt_int(node, "stall_hours", _MAX_HOURS),
        return_days=_opt_int(node, "return_days", _MAX_DAYS),
        refund_days=_opt_int(node, "refund_days", _MAX_DAYS),
    )


def _opt_int(node: Node, key: str, maximum: int) -> int | None:
    return node.integer(key, minimum=1, maximum=maximum) if node.has(key) else None


def _opt_time(node: Node, key: str) -> time | None:
    if not node.has(key):
        return None
    value = node.value[key]
    match = _HHMM.match(value) if isinstance(value, str) else None
    if match is None:
        node.errors.add(node.at(key), f'expected a time "HH:MM" (00:00..23:59), got {shown(value)}')
        return None
    return time(int(match.group(1)), int(match.group(2)))


def _carriers(node: Node) -> tuple[CarrierTerms, ...]:
    found: list[tuple[bool, CarrierTerms]] = []
    for c in node.children("carriers", required=False):
        fast_days = _opt_int(c, "fast_days", _MAX_DAYS)
        regions = c.strings("fast_regions")
        if bool(regions) != (fast_days is not None):
            c.errors.add(c.at("fast_days"), "expected fast_regions and fast_days together, got only one of them")
        fee = c.money("upgrade_fee") if c.has("upgrade_fee") else None
        terms = CarrierTerms(c.text("name"), c.integer("days", minimum=1, maximum=_MAX_DAYS), regions, fast_days, fee)
        found.append((c.flag("default", False), terms))
    defaults = [i for i, (is_default, _) in enumerate(found) if is_default]
    if len(defaults) > 1:
        node.errors.add(node.at("carriers"), f"expected at most one default carrier, got {len(defaults)}")
    first = defaults[0] if defaults else 0
    ordered = found[first : first + 1] + found[:first] + found[first + 1 :]
    return tuple(terms for _, terms in ordered)


def promise_gaps(f: Fulfilment) -> tuple[str, ...]:
    """``shop.fulfilment.<field>: <what the hotline will not promise>`` for every field the shop left out."""
    missing = [name for name in GAPS if getattr(f, name) in (None, ())]
    return tuple(f"shop.fulfilment.{name}: {GAPS[name]}" for name in missing)


def fulfilment_json(f: Fulfilment) -> str:
    """The stored form (the inverse of ``fulfilment_from_json``)."""
    doc = {
        "dispatch_hours": f.dispatch_hours,
        "same_day_cutoff": f.same_day_cutoff.strftime("%H:%M") if f.same_day_cutoff else None,
        "carriers": [
            {"name": c.name, "days": c.days, "fast_regions": list(c.fast_regions), "fast_days": c.fast_days,
             "upgrade_fee_fen": c.upgrade_fee_fen}
            for c in f.carriers
        ],
        "priority_levels": list(f.priority_levels),
        "free_upgrade_levels": list(f.free_upgrade_levels),
        "stall_hours": f.stall_hours,
        "return_days": f.return_days,
        "refund_days": f.refund_days,
    }  # fmt: skip
    return json.dumps(doc, ensure_ascii=False, sort_keys=True)


def fulfilment_from_json(text: str | None) -> Fulfilment:
    if not text:
        return Fulfilment()
    doc = json.loads(text)
    cutoff = doc["same_day_cutoff"]
    return Fulfilment(
        dispatch_hours=doc["dispatch_hours"],
        same_day_cutoff=time.fromisoformat(cutoff) if cutoff else None,
        carriers=tuple(
            CarrierTerms(c["name"], c["days"], tuple(c["fast_regions"]), c["fast_days"], c["upgrade_fee_fen"])
            for c in doc["carriers"]
        ),
        priority_levels=tuple(doc["priority_levels"]),
        free_upgrade_levels=tuple(doc["free_upgrade_levels"]),
        stall_hours=doc["stall_hours"],
        return_days=doc["return_days"],
        refund_days=doc["refund_days"],
    )
