"""dialog.normalize: width, script, noise, spoken digits, dialect, and homophone repair both ways."""

from __future__ import annotations

import pytest

from dialog.normalize import (
    Normalizer,
    fuzzy_syllable,
    normalize,
    spoken_digits,
    standardize_dialect,
    strip_noise,
    to_halfwidth,
    to_simplified,
)


def test_fullwidth_becomes_halfwidth() -> None:
    assert to_halfwidth("ＤＤ２０２６，ＸＬ码　好") == "DD2026,XL码 好"


def test_traditional_becomes_simplified() -> None:
    assert to_simplified("這個發票怎麼開") == "这个发票怎么开"


def test_punctuation_spaces_and_emoji_are_stripped() -> None:
    assert strip_noise("快递， 到哪了？！😡 ~") == "快递到哪了"


def test_the_whole_pipeline_cleans_asr_text() -> None:
    assert normalize("ｄｄ ２０２６ １１１９ ００１，到哪了？") == "DD20261119001到哪了"


def test_spoken_digit_runs_become_arabic() -> None:
    assert spoken_digits("订单号DD二零二六一一一九零零幺") == "订单号DD20261119001"
    assert spoken_digits("两洞二六幺幺") == "202611"


def test_short_number_words_are_not_digits() -> None:
    assert spoken_digits("等了两三天") == "等了两三天"
    assert normalize("衣服破了个洞") == "衣服破了个洞"


@pytest.mark.parametrize(
    ("dialect", "standard"),
    [
        ("俺的快递咋整", "我的快递怎么办"),
        ("木有收到啥时候发", "没有收到什么时候发"),
        ("冇收到", "没有收到"),
        ("忒慢了", "太慢了"),
        ("中不中啊", "行不行啊"),
        ("你弄啥嘞", "你干什么"),
        ("莫得货了嗦", "没有货了嗦"),
        ("不晓得到哪了", "不知道到哪了"),
        ("侬好", "你好"),
        ("这玩意儿嘎哈用的", "这个干什么用的"),
    ],
)
def test_dialect_becomes_standard(dialect: str, standard: str) -> None:
    assert standardize_dialect(dialect) == standard


def test_dialect_table_leaves_carrier_names_alone() -> None:
    assert normalize("中通快递") == "中通快递"


@pytest.mark.parametrize(
    ("heard", "meant"),
    [
        ("快第到哪了", "快递到哪了"),
        ("块递到哪了", "快递到哪了"),
        ("这玩意咋肥事啊好几天不动弹", "这个怎么回事啊好几天不动"),
        ("当时说有满剪", "当时说有满减"),
        ("我要退宽", "我要退款"),
        ("申请退宽", "申请退款"),
        ("顺风快递能发吗", "顺丰快递能发吗"),
        ("钟通快递", "中通快递"),
        ("运达快递到了吗", "韵达快递到了吗"),
        ("优会券怎么用", "优惠券怎么用"),
    ],
)
def test_asr_homophones_are_repaired(heard: str, meant: str) -> None:
    assert normalize(heard) == meant


@pytest.mark.parametrize(
    "ordinary",
    [
        "祝你一路顺风",  # 顺风 is a word; no 快递 nearby
        "都五六天了",  # wu liu ~ 物流, but 五六 is ordinary speech
        "一定当天发吗",  # 定当 ~ 订单 would cut through 一定
        "灰色的有吗",  # hui ~ hei must not turn 灰色 into anything
        "我想要换货",
        "收货地址改一下",
        "我的包裹到了",
        "今天能发货吗",
        "这个颜色好看",
        "帮我查一下物流",
        "什么时候能到",
        "我不急慢慢来",
    ],
)
def test_ordinary_words_are_not_over_corrected(ordinary: str) -> None:
    assert normalize(ordinary) == ordinary


def test_fuzzy_pinyin_merges_confusable_sounds() -> None:
    assert fuzzy_syllable("zhong") == fuzzy_syllable("zong")
    assert fuzzy_syllable("shi") == fuzzy_syllable("si")
    assert fuzzy_syllable("nan") == fuzzy_syllable("lang")
    assert fuzzy_syllable("fei") == fuzzy_syllable("hui")
    assert fuzzy_syllable("fang") == fuzzy_syllable("huang")
    assert fuzzy_syllable("jin") == fuzzy_syllable("jing")
    assert fuzzy_syllable("ma") != fuzzy_syllable("mo")


def test_shop_words_fed_in_at_run_time_are_repaired() -> None:
    shop = Normalizer(["羽绒服", "保温杯", "缓震跑步鞋"])
    assert shop("我买的羽绒符") == "我买的羽绒服"
    assert shop("那个保温被漏水") == "那个保温杯漏水"
    assert normalize("我买的羽绒符") == "我买的羽绒符"  # not a domain word without the shop's vocabulary


def test_garbage_and_long_input_do_not_break() -> None:
    assert normalize("") == ""
    assert normalize("   \t\n") == ""
    assert normalize("🙂🙃🤖!!??") == ""
    long = "快第到哪了" * 400
    assert normalize(long) == "快递到哪了" * 400
