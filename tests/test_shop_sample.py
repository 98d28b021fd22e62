"""The embedded sample shop (what `make serve` runs with) and open_shop(settings)."""

from __future__ import annotations

import json
import shutil
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from paths import REFERENCE_SHOP, shared

from core.errors import ShopDataError
from core.settings import Settings
from core.shop import ShipmentState
from dialog.reasons import why_text
from shop import open_shop, sample_shop_bytes
from shop.importer import parse_snapshot
from shop.store import SqliteShop

CST = timezone(timedelta(hours=8))
AS_OF = datetime(2026, 12, 8, 15, 30, tzinfo=CST)  # a Tuesday


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SqliteShop:
    return open_shop(Settings(db_path=tmp_path_factory.mktemp("sample") / "shop.sqlite3"))


def test_the_sample_shop_is_a_complete_different_shop() -> None:
    snap = parse_snapshot(sample_shop_bytes())
    assert snap.info.name == "暖芽母婴生活馆" and snap.info.as_of == AS_OF
    assert len(snap.products) == 10 and len(snap.coupons) == 2 and len(snap.agents) == 5
    assert {p.kind for p in snap.promotions} == {"threshold_discount", "quantity_percent", "bundle", "channel_price"}
    assert len(snap.customers) == 8 and all(c.phone.startswith("+86139") for c in snap.customers)
    assert len(snap.orders) == 10 and len(snap.policies) >= 10
    assert {c.vip_level for c in snap.customers} == {"normal", "gold", "platinum"}


def test_open_shop_with_defaults_creates_the_store(tmp_path: Path) -> None:
    db = tmp_path / "not" / "yet" / "shop.sqlite3"
    shop = open_shop(Settings(db_path=db))
    assert shop.db_path.parent == db.parent and shop.db_path.name.startswith("shop-")
    assert shop.db_path.exists() and shop.info().name == "暖芽母婴生活馆"
    assert shop.customer_by_phone("13912340101").name == "林晓雯"  # type: ignore[union-attr]


def test_open_shop_keeps_the_store_until_the_snapshot_changes(tmp_path: Path) -> None:
    db = tmp_path / "shop.sqlite3"
    first = open_shop(Settings(db_path=db))
    first.change_order("WY20261207001", "address", "浙江省杭州市滨江区网商路599号", AS_OF)
    again = open_shop(Settings(db_path=db))  # same embedded snapshot: not re-imported
    assert again.order("WY20261207001").address == "浙江省杭州市滨江区网商路599号"  # type: ignore[union-attr]
    shop_file = tmp_path / "shop.json"
    shutil.copy(shared(REFERENCE_SHOP), shop_file)
    other = open_shop(Settings(db_path=db, shop_file=shop_file))  # another shop: a store of its own
    assert other.info().name == "棉语生活旗舰店" and other.order("WY20261207001") is None
    assert other.content_hash() == parse_snapshot(shared(REFERENCE_SHOP).read_bytes()).content_hash
    assert other.db_path != first.db_path and first.info().name == "暖芽母婴生活馆"
    assert first.order("WY20261207001").address == "浙江省杭州市滨江区网商路599号"  # type: ignore[union-attr]


def test_open_shop_refuses_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "shop.json"
    bad.write_text(json.dumps({"format": "shop-snapshot/1", "products": []}), encoding="utf-8")
    with pytest.raises(ShopDataError, match="products: expected a non-empty list"):
        open_shop(Settings(db_path=tmp_path / "shop.sqlite3", shop_file=bad))


def test_missed_85zhe_rounds_half_up_per_line(sample: SqliteShop) -> None:
    audit = sample.audit_promotions("WY20261207001")
    assert audit is not None
    # 连体衣 69.90 x 2 = 139.80 and 袜子 19.90: 3 婴儿服饰 -> 8.5折 (15% off per line, half-up):
    # 139.80 x 15% = 20.97; 19.90 x 15% = 2.985 -> 2.99; 23.96 off -> 135.74, paid 159.70 -> 23.96 back
    assert (audit.paid_fen, audit.expected_fen, audit.owed_back_fen) == (15970, 13574, 2396)
    assert [(m.promotion_id, m.amount_fen) for m in audit.missed] == [("PR-3PCS85", 2396)]
    reasons = {i.promotion_id: why_text(i.reason) for i in audit.ineligible}
    assert reasons["PR-SAVE199"] == "打完8.5折后是135.74元，差63.26元到199元门槛"


def test_add_on_that_also_completes_a_bundle_beats_a_cheaper_one(sample: SqliteShop) -> None:
    (best,) = sample.add_on_suggestions("WY20261208004", AS_OF)
    # 奶瓶 89 + 湿巾 45.90 + 沐浴 59 = 193.90, 5.10 short of 满199减25; 小程序券 -10 -> 183.90 paid.
    # 袜子 19.90: 213.80 - 25 - 10 = 178.80 (5.10 less). 奶瓶刷 29 also completes 奶瓶+奶瓶刷 (-15):
    # 222.90 - 15 = 207.90 - 25 = 182.90 - 10 = 172.90: 11 less than now, saving 40
    assert (best.sku, best.short_by_fen, best.price_fen, best.saving_fen, best.net_extra_fen) == (
        "P05-GRN", 510, 2900, 4000, -1100,
    )  # fmt: skip


def test_unpaid_order_priced_with_its_discount_and_a_4th_piece(sample: SqliteShop) -> None:
    audit = sample.audit_promotions("WY20261208008")
    assert audit is not None
    # 睡袋 129 -> 19.35 off; 连体衣 69.90 -> 10.485 -> 10.49 off; 袜子 19.90 -> 2.985 -> 2.99 off:
    # 109.65 + 59.41 + 16.91 = 185.97; unpaid, so nothing is owed and nothing was missed
    assert (audit.expected_fen, audit.owed_back_fen, audit.missed) == (18597, 0, ())
    (best,) = sample.add_on_suggestions("WY20261208008", AS_OF)
    # a 4th piece, 袜子 19.90 -> 16.91 after 8.5折: 202.88 >= 199 -> -25 = 177.88, 8.09 less than 185.97
    assert (best.sku, best.short_by_fen, best.saving_fen, best.net_extra_fen) == ("P03-S", 1303, 2799, -809)


def test_live_price_excluded_and_out_for_delivery(sample: SqliteShop) -> None:
    audit = sample.audit_promotions("WY20261205003")
    assert audit is not None and audit.expected_fen == 75900  # 推车 899 -> 直播 759
    reasons = {i.promotion_id: why_text(i.reason) for i in audit.ineligible}
    assert reasons["PR-SAVE199"] == "直播间推车特价商品不参与满减"
    assert sample.logistics("WY20261205003", AS_OF).state is ShipmentState.OUT_FOR_DELIVERY  # type: ignore[union-attr]


def test_stalled_parcel(sample: SqliteShop) -> None:
    st = sample.logistics("WY20261203002", AS_OF)
    assert st is not None and st.state is ShipmentState.STALLED
    # 5th 08:15 -> 8th 15:30 = 3 days 7 h 15 min = 79.25 h; ETA 6th -> 2 days late
    assert (st.hours_since_last_event, st.days_overdue) == (79.25, 2)
    assert st.last_event is not None and st.last_event.where == "武汉转运中心"
    moving = sample.logistics("WY20261207010", AS_OF)
    assert moving is not None and moving.state is ShipmentState.IN_TRANSIT  # 9 h 10 min since 郑州


def test_the_sample_shops_own_shipping_promises(sample: SqliteShop) -> None:
    terms = sample.info().fulfilment
    assert terms.default_carrier is not None and terms.default_carrier.name == "韵达快递"
    assert terms.upgrade is not None and terms.upgrade.upgrade_fee_fen == 1500
    assert terms.default_carrier.fast_regions == ("江苏", "浙江", "上海", "安徽")
    opts = {o.kind: o for o in sample.expedite_options("WY20261208004", AS_OF)}
    # paid today 09:20, before 16:00: ships today; 北京 is not 江浙沪皖 -> up to 4 days -> the 12th
    assert opts["ship_today"].arrives_by == date(2026, 12, 12)
    assert (opts["carrier_upgrade"].cost_fen, opts["carrier_upgrade"].arrives_by) == (1500, date(2026, 12, 9))
    waiting = {o.kind: o for o in sample.expedite_options("WY20261206006", AS_OF)}
    # 连体衣 奶白73 sold out until the 15th: 48 h after that -> ships by the 17th; 成都 +4 -> the 21st
    assert waiting["standard"].ships_by == datetime(2026, 12, 17, 0, 0, tzinfo=CST)
    assert waiting["standard"].arrives_by == date(2026, 12, 21) and "vip_priority" not in waiting


def test_the_sample_shops_knowledge_base(sample: SqliteShop) -> None:
    assert sample.search_policies("能开专票吗")[0].answer == "可以开电子普通发票，暂不支持增值税专用发票。"
    assert sample.search_policies("退货运费谁出")[0].policy_id == "KB-RETURN"
    assert sample.search_policies("满减怎么算")[0].policy_id == "KB-PROMO"
