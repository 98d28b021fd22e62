"""The shops every behaviour test runs on, so no test passes only on the shop it was written against.

- ``sample``: the embedded sample shop (``shop/data/sample_shop.json``);
- ``reference``: the independent reference shop in ``../shared`` (data we did not write);
- ``renumbered``: the reference shop with every order number rewritten here to another format
  (digits only, another length), so nothing may depend on how one shop writes its numbers.

``open_test_shop(name, tmp_path)`` imports one into a fresh SQLite file; the reference shops need
``../shared`` (skipped outside it, failed under ``CI=true``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from paths import REFERENCE_SHOP, shared

from shop import sample_shop_bytes
from shop.importer import Snapshot, parse_snapshot
from shop.store import SqliteShop, import_snapshot

SHOPS = ("sample", "reference", "renumbered")


def snapshot_data(name: str) -> dict[str, Any]:
    """The snapshot's JSON as a dict (a fresh copy each call)."""
    if name == "sample":
        return json.loads(sample_shop_bytes())
    data = json.loads(shared(REFERENCE_SHOP).read_text(encoding="utf-8"))
    if name == "reference":
        return data
    if name != "renumbered":
        raise ValueError(f"expected one of {SHOPS}, got {name!r}")
    text = json.dumps(data, ensure_ascii=False)
    ids = [order["id"] for order in data["orders"]]
    new = {old: f"{7100 + i:04d}{i * 7919 % 1000:03d}{len(old):02d}{i:05d}" for i, old in enumerate(ids)}
    pattern = re.compile("|".join(re.escape(old) for old in sorted(ids, key=len, reverse=True)))
    return json.loads(pattern.sub(lambda m: new[m.group(0)], text))


def snapshot(name: str) -> Snapshot:
    return parse_snapshot(json.dumps(snapshot_data(name), ensure_ascii=False).encode(), source=f"test shop {name}")


def open_test_shop(name: str, tmp_path: Path) -> SqliteShop:
    db = tmp_path / f"{name}.sqlite3"
    import_snapshot(db, snapshot(name))
    return SqliteShop(db)
