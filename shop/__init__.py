"""Shop data: the snapshot importer, the SQLite store, promotions, logistics and the knowledge base.

``open_shop(settings)`` is the one entry point the rest of the hotline needs: it imports the
configured snapshot (or the embedded sample shop) into that shop's own SQLite store when the store
is missing or the snapshot changed, and returns the ``ShopPort``.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

from core.settings import Settings
from shop.importer import Snapshot, load_snapshot, parse_snapshot
from shop.store import SqliteShop, import_snapshot

__all__ = ["SqliteShop", "open_shop", "sample_shop_bytes", "store_path"]

SAMPLE_SOURCE = "shop/data/sample_shop.json"


def sample_shop_bytes() -> bytes:
    """The embedded sample shop (``shop/data/sample_shop.json``)."""
    return resources.files("shop").joinpath("data/sample_shop.json").read_bytes()


def store_path(db_path: Path, snap: Snapshot) -> Path:
    """One database per shop: ``shop.sqlite3`` becomes ``shop-<12 hex of the shop's identity>.sqlite3``."""
    key = hashlib.sha256(snap.identity.encode()).hexdigest()[:12]
    return db_path.with_name(f"{db_path.stem}-{key}{db_path.suffix}")


def open_shop(settings: Settings) -> SqliteShop:
    """The shop port over the configured shop's own store, (re)imported if its snapshot changed."""
    if settings.shop_file is not None:
        snap = load_snapshot(settings.shop_file)
    else:
        snap = parse_snapshot(sample_shop_bytes(), source=SAMPLE_SOURCE)
    db = store_path(settings.db_path, snap)
    import_snapshot(db, snap)
    return SqliteShop(db)
