"""The promotion engine on hand-built baskets: every kind, their combinations, windows, rounding.

Every expected figure is worked out by hand in the comment above its assert (fen = yuan x 100).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from core.shop import Coupon, Product, Promotion, Variant
from dialog.reasons import why_text
from shop.promotions import BasketLine, Rulebook, allocate, percent_of, price_basket

CST = timezone(timedelta(hours=8))
AT = datetime(2026, 11, 19, 12, 0, tzinfo=CST)  # inside every window below except the live one


def _p(pid: str, name: str, category: str, price_fen: int) -> Product:
    return Product(pid, name, (), category, price_fen, (Variant(f"{pid}-1", "白色", "M", 10),))


PRODUCTS = {
    p.id: p
    for p in (
        _p("TEE", "T恤", "上装", 8900),
        _p("TANK", "背心", "上装", 6900),
        _p("DRESS", "连衣裙", "上装", 23900),
        _p("JEANS", "牛仔裤", "下装", 19900),
        _p("COAT", "羽绒服", "外套", 49900),
        _p("SOCKS", "袜子", "配饰", 3900),
        _p("ODD", "围巾", "配饰", 3333),
    )
}


def _promo(pid: str, kind: str, title: str, starts: str, ends: str, **params: object) -> Promotion:
    base: dict[str, object] = {"stackable_with_coupons": True, "excludes_products": [], "excludes_price_types": []}
    return Promotion(
        pid, kind, title, "", datetime.fromisoformat(starts), datetime.fromisoformat(ends), {**base, **params}
    )


FULL300 = _promo(
    "FULL300", "threshold_discount", "满300减40", "2026-11-01T00:00:00+08:00", "2026-11-30T23:59:59+08:00",
    threshold=30000, discount=4000, excludes_price_types=["livestream"],
)  # fmt: skip
PCT90 = _promo(
    "PCT90", "quantity_percent", "上装任选2件9折", "2026-11-10T00:00:00+08:00", "2026-11-25T23:59:59+08:00",
    min_quantity=2, percent_off=10, categories=["上装"],
)  # fmt: skip
BUNDLE = _promo(
    "BUNDLE", "bundle", "T恤+牛仔裤立减30", "2026-11-01T00:00:00+08:00", "2026-12-31T23:59:59+08:00",
    products=["TEE", "JEANS"], discount=3000,
)  # fmt: skip
LIVE = _promo(
    "LIVE", "channel_price", "直播专享价", "2026-11-18T20:00:00+08:00", "2026-11-18T23:59:59+08:00",
    channel="livestream", product="COAT", price=42900,
)  # fmt: skip
VIDEO20 = Coupon(
    "VIDEO20", "短视频券满150减20", "short_video", 15000, 2000, datetime(2026, 11, 30, 23, 59, 59, tzinfo=CST)
)
NEW10 = Coupon("NEW10", "新人券满99减10", "any", 9900, 1000, datetime(2026, 12, 31, 23, 59, 59, tzinfo=CST))
BOOK = Rulebook(PRODUCTS, (FULL300, PCT90, BUNDLE, LIVE), {c.id: c for c in (VIDEO20, NEW10)})
LIVE_AT = datetime(2026, 11, 18, 21, 0, tzinfo=CST)


def basket(*items: tuple[str, int]) -> list[BasketLine]:
    return [
        BasketLine(f"{pid}-1", pid, PRODUCTS[pid].name, PRODUCTS[pid].category, qty, PRODUCTS[pid].price_fen)
        for pid, qty in items
    ]


def amounts(pricing: object) -> dict[str, int]:
    return {line.source_id: line.amount_fen for line in pricing.discounts}  # type: ignore[attr-defined]


def test_percent_comes_before_the_threshold() -> None:
    p = price_basket(basket(("TEE", 1), ("DRESS", 1)), BOOK, channel="app", at=AT)
    # 89 + 239 = 328; 9折 saves 8.90 + 23.90 = 32.80 -> 295.20, below 300, so no 满减
    assert p.subtotal_fen == 32800
    assert amounts(p) == {"PCT90": 3280}
    assert p.total_fen == 29520
    assert why_text(p.outcome("FULL300").reason) == "打完9折后是295.2元，差4.8元到300元门槛"  # type: ignore[union-attr]
    assert p.outcome("FULL300").short_by_fen == 480  # type: ignore[union-attr]


def test_percent_then_threshold_both_apply() -> None:
    p = price_basket(basket(("TEE", 2), ("DRESS", 1)), BOOK, channel="app", at=AT)
    # 178 + 239 = 417; 9折 saves 17.80 + 23.90 = 41.70 -> 375.30 >= 300 -> minus 40 = 335.30
    assert amounts(p) == {"PCT90": 4170, "FULL300": 4000}
    assert p.total_fen == 33530


def test_percent_bundle_and_threshold_together() -> None:
    p = price_basket(basket(("TEE", 1), ("JEANS", 1), ("DRESS", 1)), BOOK, channel="app", at=AT)
    # 89 + 199 + 239 = 527; 9折 on the two 上装: 8.90 + 23.90 = 32.80; bundle T恤+牛仔裤 30;
    # 527 - 32.80 - 30 = 464.20 >= 300 -> minus 40 = 424.20
    assert amounts(p) == {"PCT90": 3280, "BUNDLE": 3000, "FULL300": 4000}
    assert p.total_fen == 42420


def test_bundle_counts_each_complete_set() -> None:
    p = price_basket(basket(("TEE", 2), ("JEANS", 2), ("SOCKS", 1)), BOOK, channel="app", at=AT)
    # 178 + 398 + 39 = 615; 2 T恤 are 2 上装 -> 9折 saves 17.80; two complete sets -> 2 x 30 = 60;
    # 615 - 17.80 - 60 = 537.20 -> minus 40 = 497.20
    assert amounts(p) == {"PCT90": 1780, "BUNDLE": 6000, "FULL300": 4000}
    assert p.total_fen == 49720


def test_bundle_is_taken_off_before_the_threshold() -> None:
    p = price_basket(basket(("TEE", 1), ("JEANS", 1), ("SOCKS", 1)), BOOK, channel="app", at=AT)
    # 89 + 199 + 39 = 327 but the 实付 after the 30 bundle is 297: 3 short of 300, no 满减
    assert amounts(p) == {"BUNDLE": 3000}
    assert p.total_fen == 29700
    assert why_text(p.outcome("FULL300").reason) == "套装立减后是297元，差3元到300元门槛"  # type: ignore[union-attr]


def test_bundle_needs_every_product() -> None:
    p = price_basket(basket(("TEE", 1), ("SOCKS", 1)), BOOK, channel="app", at=AT)
    bundle = p.outcome("BUNDLE")
    assert bundle is not None and not bundle.applied and bundle.relevant
    assert "订单里没有牛仔裤" in why_text(bundle.reason)


def test_channel_price_in_the_live_window_is_excluded_from_the_threshold() -> None:
    p = price_basket(basket(("COAT", 1)), BOOK, channel="livestream", at=LIVE_AT)
    # list 499, live price 429: saves 70; the line becomes price type livestream, so 满减 skips it
    assert amounts(p) == {"LIVE": 7000}
    assert p.total_fen == 42900
    assert p.lines[0].price_type == "livestream"
    assert why_text(p.outcome("FULL300").reason) == "直播专享价商品不参与满减"  # type: ignore[union-attr]


def test_channel_price_item_does_not_help_other_items_reach_the_threshold() -> None:
    p = price_basket(basket(("COAT", 1), ("DRESS", 1)), BOOK, channel="livestream", at=LIVE_AT)
    # 429 (live) + 239; only the 239 dress counts toward 300: 61 short
    assert p.total_fen == 42900 + 23900
    assert why_text(p.outcome("FULL300").reason) == "直播专享价商品不参与满减，其余商品共239元，差61元到300元门槛"  # type: ignore[union-attr]


def test_channel_price_needs_the_channel_and_the_window() -> None:
    app = price_basket(basket(("COAT", 1)), BOOK, channel="app", at=LIVE_AT)
    # bought in the app: list price 499 -> 满300减40 -> 459
    assert amounts(app) == {"FULL300": 4000} and app.total_fen == 45900
    assert why_text(app.outcome("LIVE").reason) == "直播专享价仅限直播间下单"  # type: ignore[union-attr]
    late = price_basket(basket(("COAT", 1)), BOOK, channel="livestream", at=LIVE_AT + timedelta(days=1))
    # the next day the live price is over: 499 - 40 = 459
    assert late.total_fen == 45900
    assert why_text(late.outcome("LIVE").reason) == "活动已于11月18日结束"  # type: ignore[union-attr]


def test_promotion_window_edges() -> None:
    items = basket(("TEE", 1), ("DRESS", 1))
    ended = price_basket(items, BOOK, channel="app", at=datetime(2026, 11, 26, 0, 0, tzinfo=CST))
    # 9折 ended on the 25th: 328 >= 300 -> minus 40 = 288
    assert amounts(ended) == {"FULL300": 4000} and ended.total_fen == 28800
    assert why_text(ended.outcome("PCT90").reason) == "活动已于11月25日结束"  # type: ignore[union-attr]
    early = price_basket(items, BOOK, channel="app", at=datetime(2026, 11, 9, 23, 59, tzinfo=CST))
    assert early.total_fen == 28800
    assert why_text(early.outcome("PCT90").reason) == "活动11月10日才开始"  # type: ignore[union-attr]
    last_second = price_basket(items, BOOK, channel="app", at=PCT90.ends)
    assert last_second.total_fen == 29520  # the end time itself is still inside


def test_coupon_threshold_is_measured_after_promotions() -> None:
    ok = price_basket(basket(("TEE", 1), ("DRESS", 1)), BOOK, channel="app", at=AT, coupon_id="NEW10")
    # 295.20 after 9折 >= 99 -> minus 10 = 285.20
    assert amounts(ok) == {"PCT90": 3280, "NEW10": 1000} and ok.total_fen == 28520
    short = price_basket(basket(("TEE", 1), ("TANK", 1)), BOOK, channel="short_video", at=AT, coupon_id="VIDEO20")
    # 89 + 69 = 158 >= 150 before, but 9折 leaves 142.20: 7.80 short of the coupon's 150
    assert short.total_fen == 14220
    assert why_text(short.outcome("VIDEO20").reason) == "优惠后商品共142.2元，差7.8元到150元的用券门槛"  # type: ignore[union-attr]


def test_coupon_stacks_with_the_threshold() -> None:
    p = price_basket(basket(("TEE", 2), ("DRESS", 1)), BOOK, channel="short_video", at=AT, coupon_id="VIDEO20")
    # 375.30 after 9折 -> minus 40 = 335.30 -> coupon 满150减20 -> 315.30
    assert p.total_fen == 31530
    assert [d.source_id for d in p.discounts] == ["PCT90", "FULL300", "VIDEO20"]


def test_coupon_channel_expiry_and_unknown() -> None:
    items = basket(("SOCKS", 5))  # 195
    wrong = price_basket(items, BOOK, channel="app", at=AT, coupon_id="VIDEO20")
    assert wrong.total_fen == 19500
    assert why_text(wrong.outcome("VIDEO20").reason) == "短视频券满150减20只能在短视频下单时使用"  # type: ignore[union-attr]
    expired = price_basket(items, BOOK, channel="app", at=datetime(2027, 1, 1, tzinfo=CST), coupon_id="NEW10")
    assert expired.total_fen == 19500 and not expired.outcome("NEW10").active  # type: ignore[union-attr]
    assert "过期" in why_text(expired.outcome("NEW10").reason)  # type: ignore[union-attr]
    unknown = price_basket(items, BOOK, channel="app", at=AT, coupon_id="NOPE")
    assert unknown.total_fen == 19500


def test_a_promotion_that_does_not_stack_blocks_the_coupon() -> None:
    solo = replace(LIVE, params={**LIVE.params, "stackable_with_coupons": False})
    book = replace(BOOK, promotions=(FULL300, PCT90, BUNDLE, solo))
    p = price_basket(basket(("COAT", 1)), book, channel="livestream", at=LIVE_AT, coupon_id="NEW10")
    # 429 live price, coupon refused
    assert p.total_fen == 42900
    assert why_text(p.outcome("NEW10").reason) == "直播专享价不能和优惠券同时使用"  # type: ignore[union-attr]


def test_threshold_tiers_only_the_best_applies() -> None:
    full500 = replace(
        FULL300, id="FULL500", title="满500减80", params={**FULL300.params, "threshold": 50000, "discount": 8000}
    )
    book = replace(BOOK, promotions=(FULL300, full500))
    p = price_basket(basket(("COAT", 1), ("SOCKS", 1)), book, channel="app", at=AT)
    # 499 + 39 = 538 meets both; only 满500减80 applies -> 458
    assert amounts(p) == {"FULL500": 8000} and p.total_fen == 45800


def test_percent_rounds_half_up_per_line() -> None:
    pct15 = replace(PCT90, id="PCT85", params={**PCT90.params, "percent_off": 15, "categories": ["配饰"]})
    book = replace(BOOK, promotions=(pct15,))
    p = price_basket(basket(("ODD", 1), ("SOCKS", 1)), book, channel="app", at=AT)
    # 33.33 x 15% = 4.9995 -> 5.00; 39 x 15% = 5.85; total off 10.85; 72.33 - 10.85 = 61.48
    assert amounts(p) == {"PCT85": 1085} and p.total_fen == 6148
    assert percent_of(6990, 15) == 1049  # 10.485 -> 10.49
    assert percent_of(1990, 15) == 299  # 2.985 -> 2.99
    assert percent_of(3333, 10) == 333  # 3.333 -> 3.33
    assert percent_of(3335, 10) == 334  # 3.335 -> 3.34


def test_allocate_adds_up_exactly() -> None:
    assert allocate(4000, [8010, 21510]) == [1085, 2915]  # 4000 x 8010/29520 = 1085.4, the rest 2914.6 -> 2915
    assert sum(allocate(1001, [1, 1, 1])) == 1001
    assert allocate(0, [5, 5]) == [0, 0]


def test_quote_carries_shipping_and_lines() -> None:
    q = price_basket(basket(("SOCKS", 2)), BOOK, channel="app", at=AT, shipping_fee_fen=800).quote()
    # 78 + 8 shipping, no discount
    assert (q.subtotal_fen, q.discounts, q.shipping_fee_fen, q.total_fen) == (7800, (), 800, 8600)


@pytest.mark.parametrize("channel", ["app", "short_video"])
def test_nothing_applies_to_a_small_basket(channel: str) -> None:
    p = price_basket(basket(("SOCKS", 1)), BOOK, channel=channel, at=AT)
    assert p.discounts == () and p.total_fen == 3900
