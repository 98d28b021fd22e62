"""followups.address_from: the words after 「新地址是哪里？」 are the address, without the lead-in."""

from __future__ import annotations

import pytest

from core.types import Emotion, EmotionLabel, Understanding
from dialog.followups import address_from


def said(text: str) -> Understanding:
    return Understanding(text, text, (), Emotion(EmotionLabel.NEUTRAL, 1.0))


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("我的新地址是上海市徐汇区漕溪北路200号", "上海市徐汇区漕溪北路200号"),
        ("就是北京市朝阳区建国路88号", "北京市朝阳区建国路88号"),
        ("上海市浦东新区张江路88号", "上海市浦东新区张江路88号"),
        ("改成杭州市西湖区文三路90号吧", "杭州市西湖区文三路90号"),
        ("送到广州市天河区体育西路1号可以吗", "广州市天河区体育西路1号"),
        ("收货地址：成都市武侯区天府大道100号", "成都市武侯区天府大道100号"),
    ],
)
def test_the_address_is_taken_without_its_lead_in(text: str, address: str) -> None:
    assert address_from(said(text)) == address


@pytest.mark.parametrize("text", ["嗯", "好的谢谢", "我想想", "等一下我查查"])
def test_words_that_are_no_address_are_not_taken(text: str) -> None:
    assert address_from(said(text)) is None
