"""Order numbers of any shop: learnt from the shop's own orders, heard in speech, asked for in its shape.

Runs on the three shops of tests/shops.py; every expected value is derived from that shop's data here.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pytest
from shops import SHOPS, open_test_shop, snapshot, snapshot_data

from core.errors import ShopDataError
from core.shop import ChangeRefused, ShopPort
from core.types import Ask
from dialog import manager
from dialog.nlu import Understander
from dialog.refusals import refusal_text
from dialog.state import Context, Verify
from dialog.vocabulary import Vocabulary
from shop.importer import parse_snapshot
from shop.store import SqliteShop, import_snapshot

_SPOKEN = dict(zip("0123456789", "洞幺两三四五六七八九", strict=True))


def spoken(order_id: str) -> str:
    """How a caller reads an order number: digits as 幺两洞…, letters as letters."""
    return "".join(_SPOKEN.get(ch, ch) for ch in order_id)


def shape_of(order_ids: list[str]) -> tuple[str, int]:
    """(letter prefix, digit count) shared by every order number of the shop."""
    shapes = {(m.group(1), len(m.group(2))) for oid in order_ids if (m := re.fullmatch(r"([A-Z]*)(\d+)", oid))}
    assert len(shapes) == 1, shapes
    return shapes.pop()


@pytest.fixture(scope="module", params=SHOPS)
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def shop(name: str, tmp_path_factory: pytest.TempPathFactory) -> SqliteShop:
    return open_test_shop(name, tmp_path_factory.mktemp(name))


@pytest.fixture(scope="module")
def ids(name: str) -> list[str]:
    """The shop's order numbers, read from its snapshot."""
    return [order["id"] for order in snapshot_data(name)["orders"]]


@pytest.fixture(scope="module")
def understander(shop: SqliteShop) -> Understander:
    return Understander(Vocabulary.from_products(shop.products(), shop.info().order_numbers))


def now(shop: ShopPort) -> datetime:
    as_of = shop.info().as_of
    assert as_of is not None
    return as_of


def test_the_shape_is_learnt_from_the_shops_orders(shop: SqliteShop, ids: list[str]) -> None:
    prefix, digits = shape_of(ids)
    numbers = shop.info().order_numbers
    assert [(s.prefix, s.min_digits, s.max_digits, s.orders) for s in numbers.shapes] == [
        (prefix, digits, digits, len(ids))
    ]
    assert all(re.fullmatch(numbers.pattern() or "", oid) for oid in ids)


def test_a_spoken_order_number_of_the_shops_shape_is_heard(
    shop: SqliteShop, understander: Understander, ids: list[str]
) -> None:
    for oid in ids:
        u = understander.understand(f"我的订单号是{spoken(oid)}到哪了", now(shop))
        assert {i.slots.get("order_id") for i in u.intents} == {oid}, u
        assert shop.order(oid) is not None


def test_a_caller_who_reads_only_the_digits_still_finds_the_order(
    shop: SqliteShop, understander: Understander, ids: list[str]
) -> None:
    oid = ids[0]
    digits = re.sub(r"^[A-Z]+", "", oid)
    u = understander.understand(f"单号{spoken(digits)}", now(shop))
    assert u.intents[0].slots.get("order_id") == oid


def test_another_shops_numbers_are_not_special(shop: SqliteShop, understander: Understander, ids: list[str]) -> None:
    """A number of another shape (here a DD number on a shop that has none, or a WY one) is no order id."""
    prefix, digits = shape_of(ids)
    for foreign in ("DD20261119001", "WY20261207001"):
        if foreign.startswith(prefix) and len(foreign) - 2 == digits and prefix:
            continue  # that is this shop's own shape
        u = understander.understand(f"{foreign}到哪了", now(shop))
        assert all("order_id" not in i.slots for i in u.intents), (foreign, u)


def test_asking_for_a_number_describes_the_shops_shape_then_finds_it(
    shop: SqliteShop, understander: Understander, ids: list[str]
) -> None:
    prefix, digits = shape_of(ids)
    ctx = Context.create(shop, now(shop))
    state, _ = manager.start(None, ctx)  # no caller ID: the order number is needed
    state, actions = manager.handle(state, understander.understand("我的快递到哪了", ctx.now), ctx)
    ask = actions[-1]
    assert isinstance(ask, Ask)
    expected = f"{prefix}开头加{digits}位数字" if prefix else f"{digits}位数字"
    assert expected in ask.text and "DD开头" not in ask.text.replace(f"{prefix}开头", "")
    assert ask.expect == ((prefix,) if prefix else ())
    oid = ids[-1]
    state, actions = manager.handle(state, understander.understand(spoken(oid), ctx.now), ctx)
    # found, and (no caller ID) the caller is asked to verify before anything of it is told
    assert isinstance(state.pending, Verify) and state.pending.order_id == oid, actions


def test_a_declared_pattern_is_validated_against_every_order() -> None:
    data = snapshot_data("sample")
    first = data["orders"][0]["id"]
    data["shop"]["order_number_pattern"] = re.escape(first[:2]) + r"\d{11}"
    snap = parse_snapshot(json.dumps(data, ensure_ascii=False), source="declared")
    assert snap.info.order_numbers.declared == re.escape(first[:2]) + r"\d{11}"
    data["shop"]["order_number_pattern"] = r"\d{11}"
    with pytest.raises(ShopDataError, match=rf"shop.order_number_pattern: .*{first!r} does not"):
        parse_snapshot(json.dumps(data, ensure_ascii=False), source="declared")
    data["shop"]["order_number_pattern"] = r"WY(\d{11}"
    with pytest.raises(ShopDataError, match="shop.order_number_pattern: expected a regular expression"):
        parse_snapshot(json.dumps(data, ensure_ascii=False), source="declared")


def test_a_store_never_takes_another_shop(tmp_path: Path) -> None:
    db = tmp_path / "one.sqlite3"
    import_snapshot(db, snapshot("sample"))
    with pytest.raises(ShopDataError, match="holds the shop"):
        import_snapshot(db, snapshot("reference"))
    assert SqliteShop(db).info().name == snapshot_data("sample")["shop"]["name"]


def test_a_refused_change_is_facts_from_the_shop_and_words_from_the_dialog(name: str, tmp_path: Path) -> None:
    shop = open_test_shop(name, tmp_path)
    data = snapshot_data(name)
    today = now(shop).date()
    for order in data["orders"]:
        if order["status"] not in ("shipped", "delivered", "cancelled", "refunding"):
            continue
        with pytest.raises(ChangeRefused) as err:
            shop.change_order(order["id"], "address", "某省某市某路1号", now(shop))
        assert (err.value.reason, err.value.facts) == ("status", {"status": order["status"], "field": "address"})
        said = refusal_text(err.value, today)
        first = re.split(r"(?<=[。！？])", said)[0]
        assert len(said) <= 90 and len(first) <= 40 and "收货地址" in said, said
    open_order = next(o for o in data["orders"] if o["status"] == "paid")
    with pytest.raises(ChangeRefused) as err:
        shop.change_order(open_order["id"], "color", "荧光绿", now(shop), item_sku=open_order["items"][0]["sku"])
    assert err.value.reason == "no_variant" and "没有荧光绿" in refusal_text(err.value, today)
    item = shop.order(open_order["id"]).items[0]  # type: ignore[union-attr]
    with pytest.raises(ChangeRefused) as err:
        shop.change_order(open_order["id"], "color", item.color, now(shop), item_sku=item.sku)
    assert err.value.reason == "already" and f"已经是{item.color}" in refusal_text(err.value, today)
    assert shop.change_log(open_order["id"]) == []
