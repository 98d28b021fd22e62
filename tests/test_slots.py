"""dialog.slots: order ids, dates against a fixed now, sizes, colours, urgency, promotions, quantities."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from dialog.normalize import normalize
from dialog.slots import (
    cn_number,
    color,
    coupon,
    extract_slots,
    order_id,
    phone,
    promotion,
    quantity,
    resolve_date,
    size,
    urgency,
)
from dialog.vocabulary import Vocabulary

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=timezone(timedelta(hours=8)))  # a Friday
SHOP = Vocabulary(colors=("白色", "黑色", "浅蓝", "卡其", "酒红"), sizes=("M", "L", "XL", "30", "42", "500ml", "均码"))


def slots(text: str) -> dict[str, str]:
    return extract_slots(normalize(text), NOW, SHOP)


@pytest.mark.parametrize(
    ("spoken", "expected"),
    [
        ("订单号DD二零二六一一一九零零幺", "DD20261119001"),
        ("订单号是DD两洞两六幺幺幺九洞洞幺", "DD20261119001"),
        ("dd 2026 1119 009 到哪了", "DD20261119009"),
        ("ＤＤ２０２６１１１６００２", "DD20261116002"),
        ("单号二零二六一一一八零零三", "20261118003"),
        ("我的订单20261105008", "20261105008"),
    ],
)
def test_order_ids_spoken_with_chinese_digits_and_spaces(spoken: str, expected: str) -> None:
    assert slots(spoken)["order_id"] == expected


def test_a_mobile_number_is_a_phone_not_an_order() -> None:
    found = slots("我手机号幺三八幺二三四五六七八")
    assert found["phone"] == "13812345678"
    assert "order_id" not in found
    assert order_id("13812345678", SHOP) is None and phone("DD20261119001") is None


@pytest.mark.parametrize(
    ("said", "iso"),
    [
        ("我昨天买的", "2026-11-19"),
        ("前天下的单", "2026-11-18"),
        ("大前天付的款", "2026-11-17"),
        ("今天能发吗", "2026-11-20"),
        ("明天能到吗", "2026-11-21"),
        ("上周五买的羽绒服", "2026-11-13"),
        ("这周一下的单", "2026-11-16"),
        ("上个星期三", "2026-11-11"),
        ("11月19号买的", "2026-11-19"),
        ("十一月十九号买的", "2026-11-19"),
        ("十二月五号能到吗", "2026-12-05"),
        ("双十一买的", "2026-11-11"),
        ("三天前下的单", "2026-11-17"),
    ],
)
def test_relative_dates_resolve_against_now(said: str, iso: str) -> None:
    assert slots(said)["date"] == iso


def test_periods_give_start_and_end() -> None:
    assert resolve_date("上周买的", NOW) == (date(2026, 11, 9), date(2026, 11, 15))
    assert resolve_date("这个月买的", NOW) == (date(2026, 11, 1), date(2026, 11, 20))
    assert slots("上个月买的")["date_end"] == "2026-10-31"


def test_no_date_when_none_is_said() -> None:
    assert resolve_date("快递到哪了", NOW) is None
    assert resolve_date("十三月四十号", NOW) is None


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        ("有没有L码", "L"),
        ("换成XL的", "XL"),
        ("xl号有吗", "XL"),
        ("M号还有吗", "M"),
        ("42码的鞋", "42"),
        ("四十二码还有吗", "42"),
        ("三十码的牛仔裤", "30"),
        ("有大码吗", "大码"),
        ("我要换大一号的", "大一号"),
        ("500ml的杯子", "500ml"),
    ],
)
def test_sizes(said: str, expected: str) -> None:
    assert size(normalize(said), SHOP) == expected


def test_no_size_in_order_numbers_or_words() -> None:
    assert size("DD20261119001到哪了", SHOP) is None
    assert size("快递到哪了", SHOP) is None


@pytest.mark.parametrize(
    ("said", "expected"),
    [("白的有吗", "白色"), ("换成黑色", "黑色"), ("卡其色M码", "卡其"), ("浅蓝的裤子", "浅蓝"), ("想要红色的", "红色")],
)
def test_colours_prefer_the_shops_spelling(said: str, expected: str) -> None:
    assert color(normalize(said), SHOP) == expected


def test_no_colour_in_a_product_alias() -> None:
    assert color("白T还有吗", SHOP) is None


@pytest.mark.parametrize(
    ("said", "level"),
    [
        ("我急着穿", "high"),
        ("明天就要", "high"),
        ("赶时间越快越好", "high"),
        ("我不急慢慢来", "low"),
        ("不着急的", "low"),
        ("快递到哪了", None),
    ],
)
def test_urgency_and_its_negation(said: str, level: str | None) -> None:
    assert urgency(normalize(said)) == level


def test_promotion_and_coupon_keywords() -> None:
    assert promotion("说好的满减没减") == "满减"
    assert promotion("满300减30没用上") == "满300减30"
    assert promotion("直播间价格怎么不一样") == "直播价"
    assert coupon("优惠券用不了") == "优惠券"
    assert promotion("快递到哪了") is None and coupon("快递到哪了") is None


def test_quantities() -> None:
    assert quantity("买了两件") == "2"
    assert quantity("袜子要5双") == "5"
    assert quantity("一个月前买的") is None
    assert quantity("快递到哪了") is None


def test_chinese_numbers() -> None:
    assert [cn_number(s) for s in ("十九", "二十一", "十", "两", "42", "四二")] == [19, 21, 10, 2, 42, 42]
    assert cn_number("十十") is None and cn_number("abc") is None and cn_number("") is None


def test_the_value_asked_for_wins_over_the_one_bought() -> None:
    assert color(normalize("把白色换成黑色"), SHOP) == "黑色"
    assert color(normalize("我买的是白色的想换黑色"), SHOP) == "黑色"
    assert size(normalize("M码换成L码"), SHOP) == "L"
    assert slots("买的42码能换成四十码吗")["size"] == "40"
