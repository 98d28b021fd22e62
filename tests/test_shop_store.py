"""SqliteShop as the dialog sees it, on the reference shop: lookups, the hard cases, changes.

The hard cases were found by reading the reference data against its own rules; each figure is
worked out by hand in the comment next to it.
"""

from __future__ import annotations

import copy
import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from paths import REFERENCE_SHOP, shared

from core.errors import NotFoundError
from core.shop import ChangeRefused, Contact, Fulfilment, OrderStatus, ShipmentState, ShopPort
from dialog.reasons import why_text
from dialog.refusals import refusal_text
from shop.importer import load_snapshot, parse_snapshot
from shop.store import SqliteShop, import_snapshot

CST = timezone(timedelta(hours=8))
AS_OF = datetime(2026, 11, 20, 10, 0, tzinfo=CST)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> SqliteShop:
    """The reference shop, read-only for the tests that share it."""
    db = tmp_path_factory.mktemp("ref") / "shop.sqlite3"
    import_snapshot(db, load_snapshot(shared(REFERENCE_SHOP)))
    return SqliteShop(db)


@pytest.fixture
def fresh(tmp_path: Path) -> SqliteShop:
    """A private copy for tests that write."""
    import_snapshot(tmp_path / "shop.sqlite3", load_snapshot(shared(REFERENCE_SHOP)))
    return SqliteShop(tmp_path / "shop.sqlite3")


def test_it_is_a_shop_port(shop: SqliteShop) -> None:
    port: ShopPort = shop
    info = port.info()
    assert (info.name, info.as_of, info.timezone) == ("棉语生活旗舰店", AS_OF, "Asia/Shanghai")


@pytest.mark.parametrize(
    "caller",
    ["+8613800138001", "+86 138 0013 8001", "8613800138001", "13800138001", "138-0013-8001", "0086 13800138001"],
)
def test_caller_id_in_any_format(shop: SqliteShop, caller: str) -> None:
    customer = shop.customer_by_phone(caller)
    assert customer is not None and (customer.id, customer.name, customer.vip_level) == ("C001", "张丽", "gold")


@pytest.mark.parametrize("caller", ["+8613800138999", "13900000000", "anonymous", "", "+1 415 555 0100"])
def test_unknown_caller_is_none(shop: SqliteShop, caller: str) -> None:
    assert shop.customer_by_phone(caller) is None


def test_unknown_ids_never_raise(shop: SqliteShop) -> None:
    assert shop.customer("C999") is None
    assert shop.order("DD0000") is None
    assert shop.orders_for_customer("C999") == []
    assert shop.product("P9999") is None
    assert shop.audit_promotions("DD0000") is None
    assert shop.add_on_suggestions("DD0000", AS_OF) == []
    assert shop.logistics("DD0000", AS_OF) is None
    assert shop.expedite_options("DD0000", AS_OF) == []


def test_orders_newest_first_and_history(shop: SqliteShop) -> None:
    # C003 ordered on the 18th 21:05 (live) and on the 19th 09:30
    assert [o.id for o in shop.orders_for_customer("C003")] == ["DD20261119009", "DD20261118003"]
    c008 = shop.customer("C008")
    assert c008 is not None and [h.complaint for h in c008.history] == [True, True]


def test_missed_quantity_discount_is_owed_back_and_9zhe_comes_before_the_threshold(shop: SqliteShop) -> None:
    audit = shop.audit_promotions("DD20261119001")
    assert audit is not None
    # 纯棉圆领T恤 89 + 碎花连衣裙 239 (both 上装) = 328, paid 328 with nothing applied.
    # 上装任选2件9折: 8.90 + 23.90 = 32.80 off -> 295.20. 先算9折再算满减: 295.20 < 300, so no 满减.
    assert (audit.paid_fen, audit.expected_fen, audit.owed_back_fen) == (32800, 29520, 3280)
    assert [(m.promotion_id, m.amount_fen) for m in audit.missed] == [("PR-2PCS90", 3280)]
    assert audit.applied == ()
    why = {i.promotion_id: why_text(i.reason) for i in audit.ineligible}
    assert why["PR-FULL300"] == "打完9折后是295.2元，差4.8元到300元门槛"
    assert "修身牛仔裤" in why["PR-BUNDLE-TJ"]


def test_livestream_price_is_excluded_from_the_threshold(shop: SqliteShop) -> None:
    audit = shop.audit_promotions("DD20261118003")
    assert audit is not None
    # 轻薄羽绒服 list 499, 直播专享价 429 in the 18th 20:00-23:59 window (paid 21:05:30): paid 429, correct
    assert (audit.paid_fen, audit.expected_fen, audit.owed_back_fen) == (42900, 42900, 0)
    assert [(a.source_id, a.amount_fen) for a in audit.applied] == [("PR-LIVE-P1003", 7000)]
    assert {i.promotion_id: why_text(i.reason) for i in audit.ineligible}["PR-FULL300"] == "直播专享价商品不参与满减"


def test_two_yuan_short_of_the_threshold_and_the_cheapest_add_on(shop: SqliteShop) -> None:
    audit = shop.audit_promotions("DD20261119009")
    assert audit is not None and audit.owed_back_fen == 0
    # 真丝围巾 259 + 袜子 39 = 298: 2 short of 满300减40
    assert {i.promotion_id: why_text(i.reason) for i in audit.ineligible}[
        "PR-FULL300"
    ] == "参与满减的商品共298元，差2元到300元门槛"
    (best,) = shop.add_on_suggestions("DD20261119009", AS_OF)
    # cheapest in-stock item is another 袜子 39: 337 -> minus 40 = 297, i.e. 1 yuan less than now
    assert (best.promotion_id, best.short_by_fen, best.sku) == ("PR-FULL300", 200, "P1009-MIX")
    assert (best.price_fen, best.saving_fen, best.net_extra_fen) == (3900, 4000, -100)


def test_add_on_counts_the_9zhe_first(shop: SqliteShop) -> None:
    (best,) = shop.add_on_suggestions("DD20261119001", AS_OF)
    # 295.20 after 9折 is 4.80 short; 袜子 (配饰, no 9折) 39 -> 334.20 -> minus 40 = 294.20: 1 yuan less
    assert (best.short_by_fen, best.sku, best.saving_fen, best.net_extra_fen) == (480, "P1009-MIX", 4000, -100)


def test_add_on_for_an_unpaid_order_and_none_once_shipped(shop: SqliteShop) -> None:
    (best,) = shop.add_on_suggestions("DD20261120007", AS_OF)
    # 真丝围巾 259: 41 short. 袜子 39 is not enough (298); 帆布托特包 79 -> 338 - 40 = 298: 39 more than 259
    assert (best.short_by_fen, best.sku, best.price_fen, best.net_extra_fen) == (4100, "P1010-BEI", 7900, 3900)
    assert shop.add_on_suggestions("DD20261113006", AS_OF) == []  # shipped: nothing can be added


def test_correct_orders_audit_clean(shop: SqliteShop) -> None:
    cases = {
        "DD20261116002": 31900,  # 跑鞋 359 - 满300减40 = 319
        "DD20261110004": 24800,  # 牛仔裤 199 + T恤 89 = 288 - 套装30 = 258 (< 300) - 新人券10 = 248
        "DD20261113006": 23800,  # 保温杯 129 x 2 = 258 (< 300) - 短视频券20 = 238
        "DD20261117005": 16900,  # 卫衣 169, one 上装 only
        "DD20261105008": 7900,  # 帆布包 79
    }
    for order_id, expected in cases.items():
        audit = shop.audit_promotions(order_id)
        assert audit is not None and (audit.expected_fen, audit.owed_back_fen, audit.missed) == (expected, 0, ())
    bundle = shop.audit_promotions("DD20261110004")
    assert bundle is not None and [a.source_id for a in bundle.applied] == ["PR-BUNDLE-TJ", "CP-NEW10"]


def test_parcels_that_have_not_moved_for_days(shop: SqliteShop) -> None:
    zz = shop.logistics("DD20261116002", AS_OF)
    assert zz is not None and zz.state is ShipmentState.STALLED
    # last scan 17th 06:10 at 郑州转运中心 -> 20th 10:00 = 75 h 50 min; ETA 18th -> 2 days late
    assert zz.hours_since_last_event == pytest.approx(75 + 50 / 60) and zz.days_overdue == 2
    assert zz.last_event is not None and zz.last_event.where == "郑州转运中心"
    jn = shop.logistics("DD20261113006", AS_OF)
    assert jn is not None and jn.state is ShipmentState.STALLED
    # last scan 15th 02:00 at 济南转运中心 -> 20th 10:00 = 5 days 8 h = 128 h; ETA 16th -> 4 days late
    assert (jn.hours_since_last_event, jn.days_overdue, jn.last_event.where) == (128.0, 4, "济南转运中心")  # type: ignore[union-attr]


def test_other_parcel_states(shop: SqliteShop) -> None:
    states = {oid: shop.logistics(oid, AS_OF).state for oid in ("DD20261118003", "DD20261110004", "DD20261119001")}  # type: ignore[union-attr]
    assert states == {
        "DD20261118003": ShipmentState.OUT_FOR_DELIVERY,  # 派送中 at 07:30 today
        "DD20261110004": ShipmentState.DELIVERED,
        "DD20261119001": ShipmentState.NOT_SHIPPED,
    }


def test_the_reference_shop_states_no_shipping_promise(shop: SqliteShop) -> None:
    # its policies say when it ships only in prose: nothing structured, so nothing is computed or promised
    assert shop.info().fulfilment == Fulfilment()
    unshipped = shop.logistics("DD20261119001", AS_OF)
    assert unshipped is not None and (unshipped.state, unshipped.ship_by) == (ShipmentState.NOT_SHIPPED, None)
    assert shop.expedite_options("DD20261119001", AS_OF) == []
    assert shop.expedite_options("DD20261116002", AS_OF) == []  # shipped


def test_refund_under_review(shop: SqliteShop) -> None:
    order = shop.order("DD20261105008")
    assert order is not None and order.status is OrderStatus.REFUNDING and order.refund is not None
    r = order.refund
    assert (r.status, r.amount_fen, r.expected_by) == ("退款审核中", 7900, date(2026, 11, 21))
    assert r.warehouse_received_at == datetime(2026, 11, 18, 15, 0, tzinfo=CST)
    assert shop.search_policies("退款多久到账")[0].policy_id == "KB-REFUND-TIME"


def test_sold_out_sizes_with_restock_dates(shop: SqliteShop) -> None:
    tee = shop.product("P1001")
    assert tee is not None
    white_l = next(v for v in tee.variants if (v.color, v.size) == ("白色", "L"))
    assert (white_l.stock, white_l.restock_date) == (0, date(2026, 11, 26))
    sold_out = {v.sku: v.restock_date for p in shop.products() for v in p.variants if v.stock == 0}
    assert sold_out == {
        "P1001-WHT-L": date(2026, 11, 26),
        "P1002-BLU-30": date(2026, 12, 5),
        "P1003-KHK-M": date(2026, 11, 28),
        "P1004-WHT-38": None,
        "P1007-FLR-M": date(2026, 11, 30),
    }


def test_quote_through_the_port(shop: SqliteShop) -> None:
    q = shop.quote([("P1001-WHT-M", 1), ("P1007-FLR-S", 1)], "app", AS_OF)
    assert (q.subtotal_fen, q.total_fen) == (32800, 29520)  # the same 9折 basket as DD20261119001
    live = shop.quote([("P1003-BLK-M", 1)], "livestream", datetime(2026, 11, 18, 21, 0, tzinfo=CST))
    assert live.total_fen == 42900
    with pytest.raises(NotFoundError):
        shop.quote([("NOPE", 1)], "app", AS_OF)


def test_change_address_on_an_unshipped_order_persists_and_is_logged(fresh: SqliteShop) -> None:
    record = fresh.change_order("DD20261119001", "address", " 上海市浦东新区世纪大道100号 ", AS_OF)
    assert (record.field, record.old, record.new) == (
        "address",
        "上海市浦东新区张江路88号",
        "上海市浦东新区世纪大道100号",
    )
    again = SqliteShop(fresh.db_path)  # a new connection sees it
    assert again.order("DD20261119001").address == "上海市浦东新区世纪大道100号"  # type: ignore[union-attr]
    assert again.change_log("DD20261119001") == [record]


def test_change_colour_moves_the_stock(fresh: SqliteShop) -> None:
    record = fresh.change_order("DD20261119001", "color", "黑", AS_OF)
    # only the T恤 comes in 黑色; M is kept: P1001-WHT-M -> P1001-BLK-M
    assert (record.field, record.old, record.new) == ("color", "白色", "黑色")
    order = fresh.order("DD20261119001")
    assert order is not None and order.items[0].sku == "P1001-BLK-M" and order.items[1].sku == "P1007-FLR-S"
    stock = {v.sku: v.stock for v in fresh.product("P1001").variants}  # type: ignore[union-attr]
    assert (stock["P1001-BLK-M"], stock["P1001-WHT-M"]) == (34, 121)  # 35 - 1 and 120 + 1


def test_change_to_a_sold_out_size_is_refused_with_the_restock_date(fresh: SqliteShop) -> None:
    with pytest.raises(ChangeRefused) as err:
        fresh.change_order("DD20261119001", "size", "l", AS_OF, item_sku="P1001-WHT-M")
    assert (err.value.reason, err.value.facts["restock"], err.value.facts["size"]) == (
        "out_of_stock",
        "2026-11-26",
        "L",
    )
    assert refusal_text(err.value, AS_OF.date()) == "纯棉圆领T恤白色L码暂时缺货，预计26号补货。"
    with pytest.raises(ChangeRefused) as err:
        fresh.change_order("DD20261119001", "size", "M", AS_OF)  # both items come in M
    assert err.value.reason == "which_item" and "请问要改哪一件" in refusal_text(err.value, AS_OF.date())
    with pytest.raises(ChangeRefused) as err:
        fresh.change_order("DD20261119009", "color", "红色", AS_OF, item_sku="P1006-RED")
    assert err.value.reason == "no_variant" and "没有红色" in refusal_text(err.value, AS_OF.date())


def test_colour_and_size_in_one_step(fresh: SqliteShop) -> None:
    record = fresh.change_order("DD20261119001", "sku", "P1001-BLK-XL", AS_OF)
    assert (record.old, record.new) == ("P1001-WHT-M", "P1001-BLK-XL")
    item = fresh.order("DD20261119001").items[0]  # type: ignore[union-attr]
    assert (item.color, item.size) == ("黑色", "XL")


@pytest.mark.parametrize("order_id", ["DD20261116002", "DD20261110004", "DD20261105008"])
def test_no_change_once_shipped(fresh: SqliteShop, order_id: str) -> None:
    before = fresh.order(order_id)
    with pytest.raises(ChangeRefused) as err:
        fresh.change_order(order_id, "address", "北京市朝阳区建国路1号", AS_OF)
    assert "不能" in refusal_text(err.value, AS_OF.date())
    assert fresh.order(order_id) == before and fresh.change_log(order_id) == []


def test_shipped_refusal_says_what_to_do(fresh: SqliteShop) -> None:
    with pytest.raises(ChangeRefused) as err:
        fresh.change_order("DD20261116002", "address", "北京市朝阳区建国路1号", AS_OF)
    assert (err.value.reason, err.value.facts) == ("status", {"status": "shipped", "field": "address"})
    said = refusal_text(err.value, AS_OF.date())
    assert said.startswith("订单已经发货了，不能再改收货地址。") and "拦截" in said
    with pytest.raises(NotFoundError):
        fresh.change_order("DD0000", "address", "x", AS_OF)
    with pytest.raises(ChangeRefused) as err:
        fresh.change_order("DD20261119001", "price", "1", AS_OF)
    assert err.value.reason == "field" and "只能修改" in refusal_text(err.value, AS_OF.date())


def test_record_contact_appends_to_history(fresh: SqliteShop) -> None:
    contact = Contact(AS_OF, "phone", "AI热线：查询DD20261116002物流，已转人工", complaint=True)
    fresh.record_contact("C002", contact)
    fresh.record_contact("C999", contact)  # unknown: ignored, no exception
    history = SqliteShop(fresh.db_path).customer("C002").history  # type: ignore[union-attr]
    assert len(history) == 2 and history[-1] == contact


def test_kb_follows_a_new_snapshot(fresh: SqliteShop) -> None:
    assert fresh.search_policies("能开专票吗")[0].policy_id == "KB-INVOICE"
    doc = json.loads(shared(REFERENCE_SHOP).read_text(encoding="utf-8"))
    changed = copy.deepcopy(doc)
    changed["policies"] = [p for p in changed["policies"] if p["id"] != "KB-INVOICE"]
    import_snapshot(fresh.db_path, parse_snapshot(json.dumps(changed, ensure_ascii=False)))
    assert all(h.policy_id != "KB-INVOICE" for h in fresh.search_policies("能开专票吗"))
