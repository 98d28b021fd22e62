"""The shop-snapshot/1 importer and the SQLite store it fills, on the reference shop we did not write."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from paths import REFERENCE_SHOP, shared

from core.errors import ShopDataError
from core.shop import Contact
from shop.importer import load_snapshot, parse_snapshot
from shop.store import SqliteShop, import_snapshot

CST = timezone(timedelta(hours=8))


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return json.loads(shared(REFERENCE_SHOP).read_text(encoding="utf-8"))


def problems(data: str | bytes) -> str:
    with pytest.raises(ShopDataError) as err:
        parse_snapshot(data)
    return str(err.value)


def test_reference_counts_match_the_file(tmp_path: Path, doc: dict[str, Any]) -> None:
    assert import_snapshot(tmp_path / "shop.db", load_snapshot(shared(REFERENCE_SHOP))) is True
    counts = SqliteShop(tmp_path / "shop.db").counts()
    assert counts["products"] == len(doc["products"])
    assert counts["variants"] == sum(len(p["variants"]) for p in doc["products"])
    assert counts["promotions"] == len(doc["promotions"])
    assert counts["coupons"] == len(doc["coupons"])
    assert counts["customers"] == len(doc["customers"])
    assert counts["contacts"] == sum(len(c["history"]) for c in doc["customers"])
    assert counts["orders"] == len(doc["orders"])
    assert counts["order_items"] == sum(len(o["items"]) for o in doc["orders"])
    assert counts["policies"] == len(doc["policies"])
    assert counts["agents"] == len(doc["agents"])
    assert counts["shop_info"] == 1


def test_reimport_is_idempotent(tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    snap = load_snapshot(shared(REFERENCE_SHOP))
    import_snapshot(db, snap)
    shop = SqliteShop(db)
    before = (shop.counts(), shop.digest())
    assert import_snapshot(db, snap) is False  # same content hash: nothing to do
    assert (shop.counts(), shop.digest()) == before
    assert import_snapshot(db, load_snapshot(shared(REFERENCE_SHOP)), force=True) is True  # rewritten row by row
    assert (shop.counts(), shop.digest()) == before


def test_a_changed_snapshot_replaces_the_rows(tmp_path: Path, doc: dict[str, Any]) -> None:
    db = tmp_path / "shop.db"
    import_snapshot(db, load_snapshot(shared(REFERENCE_SHOP)))
    shop = SqliteShop(db)
    contact = Contact(datetime(2026, 11, 20, 10, 5, tzinfo=CST), "phone", "AI热线：查询物流")
    shop.record_contact("C002", contact)
    old_digest = shop.digest()
    changed = copy.deepcopy(doc)
    changed["products"][8]["price"] = 35.0  # socks cheaper
    dropped = changed["orders"].pop()  # DD20261119009 gone
    assert import_snapshot(db, parse_snapshot(json.dumps(changed, ensure_ascii=False))) is True
    assert shop.digest() != old_digest
    assert shop.counts()["orders"] == len(doc["orders"]) - 1
    assert shop.order(dropped["id"]) is None
    assert shop.product("P1009").price_fen == 3500  # type: ignore[union-attr]
    assert contact in shop.customer("C002").history  # type: ignore[union-attr]  # the hotline's own log stays


def test_snapshot_values_round_trip(tmp_path: Path) -> None:
    snap = load_snapshot(shared(REFERENCE_SHOP))
    import_snapshot(tmp_path / "shop.db", snap)
    shop = SqliteShop(tmp_path / "shop.db")
    assert tuple(shop.products()) == snap.products
    assert tuple(shop.promotions()) == snap.promotions
    assert tuple(shop.coupons()) == snap.coupons
    assert tuple(shop.policies()) == snap.policies
    assert tuple(shop.agents()) == snap.agents
    assert {o.id: o for o in snap.orders} == {o.id: shop.order(o.id) for o in snap.orders}
    assert {c.id: c for c in snap.customers} == {c.id: shop.customer(c.id) for c in snap.customers}
    assert shop.info() == snap.info
    assert shop.info().agent_hours == ("09:00", "22:00")


def test_money_is_integer_fen_and_params_keep_their_kind(tmp_path: Path) -> None:
    snap = load_snapshot(shared(REFERENCE_SHOP))
    full = next(p for p in snap.promotions if p.id == "PR-FULL300")
    assert (full.params["threshold"], full.params["discount"]) == (30000, 4000)
    assert full.params["excludes_price_types"] == ["livestream"]
    live = next(p for p in snap.promotions if p.id == "PR-LIVE-P1003")
    assert (live.params["channel"], live.params["product"], live.params["price"]) == ("livestream", "P1003", 42900)
    order = next(o for o in snap.orders if o.id == "DD20261118003")
    assert order.items[0].price_type == "livestream" and order.items[0].unit_price_fen == 42900
    assert order.items[0].product_name == "轻薄羽绒服" and order.items[0].color == "黑色"


DELETE = object()
BAD_FIELDS = [
    ("products[0].price", DELETE, "expected a positive amount in yuan with at most 2 decimals, got nothing"),
    ("products[1].variants[0].stock", "5", 'expected a non-negative integer, got "5"'),
    ("orders[3].items[0].qty", -1, "expected a positive integer, got -1"),
    ("orders[0].created_at", "2026-11-19T21:15:00", "expected an ISO 8601 datetime with offset"),
    ("orders[0].paid_at", "yesterday", 'with offset (e.g. 2026-11-20T10:00:00+08:00), got "yesterday"'),
    ("orders[4].shipment.events[0].at", 20261118, "expected an ISO 8601 datetime with offset"),
    ("orders[2].items[0].sku", "P9999-X", 'unknown SKU "P9999-X"'),
    ("orders[1].customer", "C999", 'unknown customer id "C999"'),
    ("orders[1].applied_promotions", ["PR-NOPE"], 'unknown promotion id "PR-NOPE"'),
    ("orders[3].coupon", "CP-NOPE", 'unknown coupon id "CP-NOPE"'),
    ("orders[0].status", "lost", 'expected one of unpaid|paid|shipped|delivered|refunding|cancelled, got "lost"'),
    ("orders[1].shipment", None, "expected shipment details for an order that is shipped, got null"),
    ("orders[0].paid_amount", 328.005, "expected an amount in yuan >= 0 with at most 2 decimals, got 328.005"),
    ("orders[0].address", "", 'expected a non-empty string, got ""'),
    ("promotions[1].kind", "flash_sale", 'threshold_discount|quantity_percent|bundle|channel_price, got "flash_sale"'),
    ("promotions[2].products", ["P1001", "P7777"], 'unknown product id "P7777"'),
    ("promotions[0].ends", "2026-10-01T00:00:00+08:00", "expected a time after starts"),
    ("promotions[1].categories", ["上衣"], 'unknown category "上衣"'),
    ("customers[0].phone", "138-0013-8001", "expected an E.164 number such as +8613800138001"),
    ("agents[0].skills.logistics", 9, "expected an integer 1..5, got 9"),
    ("shop.as_of", "2026-11-20 10:00", "expected an ISO 8601 datetime with offset"),
    ("products", DELETE, "expected a non-empty list, got nothing (field missing)"),
]  # fmt: skip


def set_at(doc: dict[str, Any], path: str, value: object) -> None:
    """Set (or with DELETE remove) the field at a path such as ``orders[3].items[0].qty``."""
    keys: list[str | int] = []
    for part in path.split("."):
        name, *indexes = part.replace("]", "").split("[")
        keys += [name, *(int(i) for i in indexes)]
    node: Any = doc
    for key in keys[:-1]:
        node = node[key]
    if value is DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value


@pytest.mark.parametrize(("path", "value", "expected"), BAD_FIELDS, ids=[c[0] for c in BAD_FIELDS])
def test_a_malformed_field_is_named_by_its_path(doc: dict[str, Any], path: str, value: object, expected: str) -> None:
    bad = copy.deepcopy(doc)
    set_at(bad, path, value)
    lines = problems(json.dumps(bad, ensure_ascii=False)).splitlines()
    assert any(line.startswith(f"{path}") and expected in line for line in lines), lines


def test_duplicates_are_errors(doc: dict[str, Any]) -> None:
    bad = copy.deepcopy(doc)
    bad["products"].append(copy.deepcopy(bad["products"][0]))
    bad["customers"][1]["phone"] = "+8613800138001"
    message = problems(json.dumps(bad, ensure_ascii=False))
    assert 'products[10].id: duplicate id "P1001" (first at products[0])' in message
    assert "customers: C002 and C001 share the phone number +8613800138001" in message


def test_several_errors_are_reported_together_one_per_line(doc: dict[str, Any]) -> None:
    bad = copy.deepcopy(doc)
    bad["orders"][3]["items"][0]["qty"] = -1
    bad["orders"][1]["customer"] = "C999"
    bad["products"][0].pop("price")
    lines = problems(json.dumps(bad, ensure_ascii=False)).splitlines()
    assert lines[0] == "shop.json: 3 problems in the shop snapshot"
    assert lines[1:] == [
        "products[0].price: expected a positive amount in yuan with at most 2 decimals, got nothing (field missing)",
        'orders[1].customer: unknown customer id "C999"',
        "orders[3].items[0].qty: expected a positive integer, got -1",
    ]


def test_a_dropped_product_does_not_cascade_into_unknown_sku_errors(doc: dict[str, Any]) -> None:
    bad = copy.deepcopy(doc)
    bad["products"][0]["price"] = "89"  # P1001 is referenced by several orders and the bundle
    message = problems(json.dumps(bad, ensure_ascii=False))
    assert message.count("\n") == 1 and "unknown" not in message


def test_the_error_list_is_capped(doc: dict[str, Any]) -> None:
    bad = copy.deepcopy(doc)
    for order in bad["orders"]:
        for item in order["items"]:
            item["qty"] = 0
            item["unit_price"] = -1
    lines = problems(json.dumps(bad, ensure_ascii=False)).splitlines()
    # 12 items x 2 bad fields = 24 problems: 20 shown and a tail line
    assert lines[0] == "shop.json: 24 problems in the shop snapshot"
    assert len(lines) == 1 + 20 + 1 and lines[-1] == "... and 4 more"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("", "shop.json: the shop snapshot is empty"),
        ("  \n", "shop.json: the shop snapshot is empty"),
        ('{"format": ', "shop.json: not valid JSON at line 1 column 12"),
        ("<html>shop</html>", "shop.json: not valid JSON at line 1 column 1"),
        (b"\xff\xfe{}", "shop.json: not valid JSON"),
        ("[]", "(root): expected an object, got []"),
        ('{"format": "shop-snapshot/2"}', 'shop.json: format: expected "shop-snapshot/1", got "shop-snapshot/2"'),
        ('{"products": []}', 'shop.json: format: expected "shop-snapshot/1", got nothing (field missing)'),
    ],
)
def test_not_a_snapshot_at_all(data: str | bytes, expected: str) -> None:
    assert expected in problems(data)


def test_unreadable_file_and_failed_import_leave_the_store_alone(tmp_path: Path, doc: dict[str, Any]) -> None:
    with pytest.raises(ShopDataError, match="cannot read"):
        load_snapshot(tmp_path / "missing.json")
    db = tmp_path / "shop.db"
    import_snapshot(db, load_snapshot(shared(REFERENCE_SHOP)))
    before = SqliteShop(db).digest()
    bad = copy.deepcopy(doc)
    bad["orders"][0]["items"][0]["sku"] = "NOPE"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad), encoding="utf-8")
    with pytest.raises(ShopDataError):
        import_snapshot(db, load_snapshot(path))
    assert SqliteShop(db).digest() == before
