"""Products, colours and sizes from the reference shop (/work/shared/fixtures/shop/shop.json)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from paths import REFERENCE_SHOP, shared

from core.shop import Product, Variant
from dialog.nlu import Understander
from dialog.normalize import Normalizer
from dialog.slots import product
from dialog.vocabulary import Vocabulary

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=timezone(timedelta(hours=8)))


def reference_products() -> list[Product]:
    raw = json.loads(shared(REFERENCE_SHOP).read_text(encoding="utf-8"))["products"]
    return [
        Product(
            id=p["id"],
            name=p["name"],
            aliases=tuple(p["aliases"]),
            category=p["category"],
            price_fen=round(p["price"] * 100),
            variants=tuple(Variant(v["sku"], v["color"], v["size"], v["stock"]) for v in p["variants"]),
            facts=p.get("facts", {}),
        )
        for p in raw
    ]


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return Vocabulary.from_products(reference_products())


@pytest.fixture(scope="module")
def nlu(vocab: Vocabulary) -> Understander:
    return Understander(vocab)


def find(text: str, vocab: Vocabulary) -> str | None:
    return product(Normalizer(vocab.lexicon())(text), vocab)


def test_vocabulary_maps_names_aliases_colours_and_sizes(vocab: Vocabulary) -> None:
    assert vocab.terms["纯棉圆领T恤"] == "P1001"
    assert vocab.terms["白T"] == "P1001"
    assert vocab.terms["羽绒服"] == "P1003"
    assert vocab.terms["跑步鞋"] == "P1004"  # derived from the name 缓震跑步鞋
    assert {"白色", "黑色", "卡其", "酒红"} <= set(vocab.colors)
    assert {"M", "L", "XL", "42", "500ml", "均码"} <= set(vocab.sizes)
    assert not Vocabulary.empty() and not Vocabulary.empty().terms


@pytest.mark.parametrize(
    ("said", "product_id"),
    [
        ("我买的白T到哪了", "P1001"),
        ("体恤能换个颜色吗", "P1001"),
        ("那条牛仔裤", "P1002"),
        ("羽绒服还有黑色的吗", "P1003"),
        ("跑鞋偏大吗", "P1004"),
        ("缓震跑步鞋", "P1004"),
        ("保温杯漏水", "P1005"),
        ("丝巾是真丝的吗", "P1006"),
        ("碎花连衣裙M码", "P1007"),
        ("帆布包多大", "P1010"),
    ],
)
def test_products_by_name_and_alias(vocab: Vocabulary, said: str, product_id: str) -> None:
    assert find(said, vocab) == product_id


@pytest.mark.parametrize(
    ("heard", "product_id"),
    [
        ("我的羽绒符怎么还没到", "P1003"),  # fu ~ fu: homophone slip
        ("那个保温被能装开水吗", "P1005"),
        ("牛仔酷有三十码吗", "P1002"),
        ("缓冲跑步鞋有四十二码吗", "P1004"),  # one character off: rapidfuzz on the name
        ("加荣卫衣", "P1008"),
    ],
)
def test_products_by_pinyin_and_fuzzy_match(vocab: Vocabulary, heard: str, product_id: str) -> None:
    assert find(heard, vocab) == product_id


def test_a_one_character_alias_only_when_it_stands_alone(vocab: Vocabulary) -> None:
    assert find("这个包带子断了", vocab) == "P1010"
    assert find("我的包裹到哪了", vocab) is None
    assert find("包邮吗", vocab) is None


def test_no_product_in_unrelated_text(vocab: Vocabulary) -> None:
    assert find("快递到哪了", vocab) is None
    assert find("我要开发票", vocab) is None


def test_understanding_carries_product_colour_and_size(nlu: Understander) -> None:
    u = nlu.understand("上周五买的羽绒服能不能改成黑色L码", NOW)
    main = u.intents[0]
    assert main.name == "order.modify"
    assert dict(main.slots) == {"product": "P1003", "color": "黑色", "size": "L", "date": "2026-11-13"}


def test_stock_question_with_shop_size(nlu: Understander) -> None:
    u = nlu.understand("那个灰色的跑鞋四十二码还有货吗", NOW)
    main = u.intents[0]
    assert main.name == "inventory.stock"
    assert (main.slots["product"], main.slots["color"], main.slots["size"]) == ("P1004", "灰色", "42")
