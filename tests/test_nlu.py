"""dialog.nlu: intents (several per turn, main need first), slots on the right intent, bad input."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from core.types import EmotionLabel, Intent, Prosody, Understanding
from dialog.intents import INTENTS
from dialog.nlu import Understander, split_clauses
from dialog.train import load_examples
from dialog.vocabulary import Vocabulary

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=timezone(timedelta(hours=8)))
SEED = "我昨天买的这件衣服当时说有满减为什么付款时没显示现在还能不能改我急着穿最快什么时候到"


@pytest.fixture(scope="module")
def nlu() -> Understander:
    return Understander(Vocabulary.empty())


def names(u: Understanding) -> list[str]:
    return [i.name for i in u.intents]


def intent(u: Understanding, name: str) -> Intent:
    return next(i for i in u.intents if i.name == name)


def test_seed_example_has_three_needs_with_date_and_urgency(nlu: Understander) -> None:
    u = nlu.understand(SEED, NOW)
    assert set(names(u)) == {"promotion.not_applied", "order.modify", "logistics.expedite"}
    assert intent(u, "promotion.not_applied").slots["date"] == "2026-11-19"
    assert intent(u, "order.modify").slots["date"] == "2026-11-19"
    assert intent(u, "logistics.expedite").slots["urgency"] == "high"
    assert intent(u, "order.modify").slots["urgency"] == "high"
    assert "urgency" not in intent(u, "promotion.not_applied").slots  # urgency is not a promotion matter
    assert u.emotion.label is EmotionLabel.ANXIOUS
    assert all(0.5 <= i.confidence <= 1.0 for i in u.intents)


def test_dialect_and_asr_slips_still_mean_tracking(nlu: Understander) -> None:
    stalled = nlu.understand("这玩意咋肥事啊好几天不动弹", NOW)
    assert names(stalled)[0] == "logistics.track"
    assert stalled.normalized == "这个怎么回事啊好几天不动"
    where = nlu.understand("快第到哪了", NOW)
    assert names(where) == ["logistics.track"] and where.intents[0].confidence > 0.8


def test_threat_is_an_angry_complaint(nlu: Understander) -> None:
    u = nlu.understand("再不给我解决我就打12315投诉你们", NOW)
    assert names(u)[0] == "complaint"
    assert u.emotion.label is EmotionLabel.ANGRY


def test_spoken_12315_is_also_a_complaint(nlu: Understander) -> None:
    assert names(nlu.understand("再这样我就打幺二三幺五", NOW))[0] == "complaint"


def test_a_request_for_a_human_follows_the_need_it_is_about(nlu: Understander) -> None:
    u = nlu.understand("快递好几天不动了给我转人工", NOW)
    assert names(u)[:2] == ["logistics.track", "human_agent"]
    assert names(nlu.understand("转人工", NOW)) == ["human_agent"]


def test_two_needs_joined_by_a_cue(nlu: Understander) -> None:
    u = nlu.understand("我的快递到哪了还有发票怎么开", NOW)
    assert set(names(u)) == {"logistics.track", "invoice"}


def test_a_single_need_stays_single(nlu: Understander) -> None:
    cases = [("我要开发票", "invoice"), ("帮我取消订单", "order.cancel"), ("退款啥时候到账", "aftersale.refund_status")]
    for text, expected in cases:
        assert names(nlu.understand(text, NOW)) == [expected]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("对", "affirm"),
        ("是的", "affirm"),
        ("嗯嗯", "affirm"),
        ("好的", "affirm"),
        ("对对对对", "affirm"),
        ("不是", "deny"),
        ("不用了", "deny"),
        ("不用了谢谢", "deny"),
        ("喂你好", "greeting"),
        ("转人工", "human_agent"),
        ("人工客服", "human_agent"),
        ("谢谢再见", "goodbye"),
    ],
)
def test_short_answers_and_rules(nlu: Understander, text: str, expected: str) -> None:
    assert names(nlu.understand(text, NOW))[0] == expected


def test_an_order_number_said_with_a_need_is_a_slot_not_a_status_query(nlu: Understander) -> None:
    u = nlu.understand("订单号DD二零二六一一一九零零幺什么时候发货", NOW)
    assert names(u) == ["logistics.ship_time"]
    assert u.intents[0].slots["order_id"] == "DD20261119001"


def test_greeting_is_dropped_when_a_need_follows(nlu: Understander) -> None:
    assert names(nlu.understand("喂你好我想问一下退货地址是哪里", NOW)) == ["aftersale.return"]


@pytest.mark.parametrize("bad", ["", "   ", "\n\t", "🙂🙃🤖", "！！？？。。", "的的的的的", "asdfghjkl", "嗯啊呃那个"])
def test_empty_or_nonsense_is_other_with_low_confidence(nlu: Understander, bad: str) -> None:
    u = nlu.understand(bad, NOW)
    assert isinstance(u, Understanding) and u.text == bad
    assert names(u) == ["other"]
    assert u.intents[0].confidence <= 0.4
    assert u.emotion.label is EmotionLabel.NEUTRAL


def test_a_very_long_turn_is_understood_without_error(nlu: Understander) -> None:
    u = nlu.understand("快递到哪了" + "啊" * 1000 + "我要退款" * 250, NOW, None)
    assert len(u.normalized) > 1000
    assert 1 <= len(u.intents) <= 4 and all(i.name in INTENTS for i in u.intents)


def test_prosody_reaches_the_emotion(nlu: Understander) -> None:
    loud = Prosody(5.5, 230.0, 40.0, -15.0, 0.05, 2.0, rel_rate=1.4, rel_f0=1.2, rel_energy_db=7.0)
    assert nlu.understand("我的快递到哪了", NOW, loud).emotion.label is EmotionLabel.ANXIOUS
    assert nlu.understand("我的快递到哪了", NOW).emotion.label is EmotionLabel.NEUTRAL


def test_not_urgent_is_not_urgent(nlu: Understander) -> None:
    u = nlu.understand("我不急慢慢来什么时候发货都行", NOW)
    assert u.emotion.label is EmotionLabel.NEUTRAL
    assert all(i.slots.get("urgency") != "high" for i in u.intents)


def test_clauses_split_on_cues_and_drop_connectors() -> None:
    assert [c.text for c in split_clauses("我的快递到哪了还有发票怎么开")] == ["我的快递到哪了", "发票怎么开"]
    assert [c.text for c in split_clauses("黑色的还有货吗")] == ["黑色的还有货吗"]  # 还有货 is not a cue


def test_training_data_is_sound() -> None:
    train, test = load_examples("train"), load_examples("test")
    per_intent = Counter(e.intent for e in train + test)
    assert set(per_intent) == set(INTENTS)
    assert min(per_intent.values()) >= 40
    assert not {e.text for e in train} & {e.text for e in test}
    # hand and variant lines: 15-25% held out; hand2 lines: about a tenth
    for sources, low, high in (({"hand", "variant"}, 0.15, 0.25), ({"hand2"}, 0.08, 0.12)):
        held = sum(e.source in sources for e in test)
        assert low <= held / sum(e.source in sources for e in train + test) <= high
    assert all(not any(p in e.text for p in "，。？！,.?! ") for e in train + test)  # ASR gives no punctuation


@pytest.mark.parametrize(
    ("text", "expected"),
    [("人工人工", "human_agent"), ("可以可以", "affirm"), ("您好我想咨询一下", "greeting"), ("你好在吗", "greeting")],
)
def test_repeated_words_and_bare_greetings(nlu: Understander, text: str, expected: str) -> None:
    assert names(nlu.understand(text, NOW)) == [expected]


def test_an_opening_greeting_does_not_hide_the_need(nlu: Understander) -> None:
    u = nlu.understand("侬好我想问下那个保温杯有粉色的伐", NOW)
    assert u.normalized.endswith("有粉色的吗")
    assert names(u) == ["inventory.stock"]


def test_product_nouns_do_not_decide_the_intent(nlu: Understander) -> None:
    # 保温杯 appears in damage examples (保温杯不保温); masked, it no longer pulls a stock question there
    assert names(nlu.understand("保温杯有粉色的吗", NOW))[0] == "inventory.stock"
    assert names(nlu.understand("围巾有没有别的颜色", NOW))[0] == "inventory.stock"


def test_impatience_in_dialect_is_an_anxious_shipping_question(nlu: Understander) -> None:
    u = nlu.understand("俺那个羽绒服咋还木有发货啊忒慢了", NOW)
    assert u.normalized == "我那个羽绒服怎么还没有发货啊太慢了"
    assert names(u)[0] == "logistics.ship_time"
    assert u.emotion.label is EmotionLabel.ANXIOUS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("我就差两块钱满三百能不能也给我减四十", "promotion.not_applied"),
        ("差三块钱满减能不能通融", "promotion.not_applied"),
        ("这个能不能便宜点卖给我", "promotion.inquiry"),
    ],
)
def test_asking_for_a_price_concession_is_not_a_rush_request(nlu: Understander, text: str, expected: str) -> None:
    # 「能不能…」 used to pull these towards logistics.expedite (the phrasings here are not in the training data)
    found = names(nlu.understand(text, NOW))
    assert found[0] == expected and "logistics.expedite" not in found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("放点音乐听听", "other"),
        ("帮我叫个出租车", "other"),
        ("今天股市涨了没", "other"),
        ("黑色那款断货了啥时候补", "inventory.stock"),
        ("M码卖完了还会再进吗", "inventory.stock"),
    ],
)
def test_out_of_domain_and_restock_questions(nlu: Understander, text: str, expected: str) -> None:
    # none of these phrasings is in the training data; 换一首歌 once read as an exchange request at 0.81
    assert names(nlu.understand(text, NOW))[0] == expected
