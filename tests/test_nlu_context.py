"""A short turn read with what the bot said just before it (a live call knows its own last utterance)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from shops import SHOPS, open_test_shop

from dialog.nlu import Understander
from dialog.vocabulary import Vocabulary

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=timezone(timedelta(hours=8)))


@pytest.fixture(scope="module", params=SHOPS)
def nlu(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Understander:
    shop = open_test_shop(request.param, tmp_path_factory.mktemp(request.param))
    return Understander(Vocabulary.from_products(shop.products()))


def main(nlu: Understander, text: str, context: str | None) -> str:
    return nlu.understand(text, NOW, context=context).intents[0].name


def test_the_same_short_question_follows_what_the_bot_said(nlu: Understander) -> None:
    assert main(nlu, "几天能到", "退款已经原路退回了，请留意银行卡。") == "aftersale.refund_status"
    assert main(nlu, "几天能到", "包裹已经到了您所在城市的转运中心。") == "logistics.track"
    assert main(nlu, "几天能到", None) == "logistics.ship_time"  # alone: a question about delivery
    assert main(nlu, "要多久", "您的退款申请已经提交了。") == "aftersale.refund_status"
    assert main(nlu, "要多久", "我已经帮您催了仓库，今天会尽快发出。").startswith("logistics.")


def test_answers_and_full_requests_do_not_lean_on_the_context(nlu: Understander) -> None:
    offer = "需要帮您把订单取消吗？"
    assert main(nlu, "好的", offer) == "affirm"
    assert main(nlu, "不用了", offer) == "deny"
    long_turn = "我上周买的衣服还没发货你们什么时候发"
    assert main(nlu, long_turn, "您的退款申请已经提交了。") == main(nlu, long_turn, None)


@pytest.mark.parametrize("text", ["好的谢谢", "谢谢", "好的再见"])
def test_thanks_after_a_done_change_stays_thanks(nlu: Understander, text: str) -> None:
    """A sure social turn is not lent the bot's topic (it once became another order.modify)."""
    done = "好的，已经把收货地址改成江苏省苏州市工业园区星湖街328号了。"
    assert main(nlu, text, done) == main(nlu, text, None) == "goodbye"
