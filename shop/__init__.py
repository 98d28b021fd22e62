"""Shop data: the snapshot importer, the SQLite store, promotions, logistics and the knowledge base.

``open_shop(settings)`` is the one entry point the rest of the hotline needs: it imports the
configured snapshot (or the embedded sample shop) into the SQLite store when the store is
missing or the snapshot changed, and returns the ``ShopPort``.
"""

from __future__ import annotations

from importlib import resources

from core.settings import Settings
from shop.importer import load_snapshot, parse_snapshot
from shop.store import SqliteShop, import_snapshot

__all__ = ["SqliteShop", "open_shop", "sample_shop_bytes"]


def sample_shop_bytes() -> bytes:
    """The embedded sample shop (``shop/data/sample_shop.json``)."""
    return resources.files("shop").joinpath("data/sample_shop.json").read_bytes()


def open_shop(settings: Settings) -> SqliteShop:
    """The shop port over ``settings.db_path``, (re)imported from ``settings.shop_file`` if it changed."""
    if settings.shop_file is not None:
        snap = load_snapshot(settings.shop_file)
    else:
        snap = parse_snapshot(sample_shop_bytes(), source="shop/data/sample_shop.json")
    import_snapshot(settings.db_path, snap)
    return SqliteShop(settings.db_path)
