"""voice.tts_text: replies cut into sentences, and numbers, money, dates, codes and letters made speakable."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voice.tts_text import has_speech, speakable, split_sentences

# --- speakable: one row per rule -------------------------------------------------------------

CASES = [
    # plain numbers, decimals, years, 两 before measure words
    ("115件", "一百一十五件"),
    ("15天", "十五天"),
    ("共12个", "共十二个"),
    ("20", "二十"),
    ("满200减30", "满二百减三十"),
    ("评分3.5", "评分三点五"),
    ("2024年", "二零二四年"),
    ("买2件", "买两件"),
    ("2kg", "两公斤"),
    ("第2件半价", "第二件半价"),
    ("第2", "第二"),
    ("2号楼", "二号楼"),
    ("2点出发", "两点出发"),
    ("2万", "两万"),
    ("2000", "两千"),
    ("12000元", "一万两千块"),
    ("1.5万元", "一点五万元"),
    # money
    ("实付32.8元", "实付三十二块八"),
    ("32.85元", "三十二块八毛五"),
    ("退款12.05元", "退款十二块零五分"),
    ("0.5元", "五毛"),
    ("0.05元", "五分"),
    ("0.25元", "两毛五"),
    ("100元", "一百块"),
    ("2元", "两块"),
    ("2.5元", "两块五"),
    ("¥32.80", "三十二块八"),
    ("￥32.8", "三十二块八"),
    ("¥1,299", "一千二百九十九块"),
    ("1,299元", "一千二百九十九块"),
    ("共10005元", "共一万零五块"),
    ("32元/件", "三十二块每件"),
    ("20元/kg", "二十块每公斤"),
    ("3.5块钱", "三块五毛钱"),
    ("100-200元", "一百到二百块"),
    ("3.5-4.5元", "三块五到四块五"),
    ("1.234元", "一点二三四元"),
    # percentages, discounts, 满减
    ("全场50%", "全场百分之五十"),
    ("0.5%", "百分之零点五"),
    ("100%正品", "百分之百正品"),
    ("5%-10%", "百分之五到百分之十"),
    ("打8折", "打八折"),
    ("打8.5折", "打八五折"),
    ("9.0折", "九折"),
    ("满300减50", "满三百减五十"),
    # dates
    ("11月21日", "十一月二十一日"),
    ("2024年5月18日", "二零二四年五月十八日"),
    ("2024-05-18", "二零二四年五月十八日"),
    ("2024/5/18", "二零二四年五月十八日"),
    ("2024.05.18发货", "二零二四年五月十八日发货"),
    ("5月18号", "五月十八号"),
    ("05月09日", "五月九日"),
    # times
    ("18:00前发货", "十八点前发货"),
    ("10:05送达", "十点零五分送达"),
    ("18:30", "十八点半"),
    ("9:00", "九点"),
    ("09:05", "九点零五分"),
    ("下午2:30", "下午两点半"),
    ("18：15", "十八点十五分"),
    ("12:00:05", "十二点零分零五秒"),
    ("9:00-18:00", "九点到十八点"),
    ("9:00~21:30", "九点到二十一点半"),
    # ranges and signs between numbers
    ("3-5天", "三到五天"),
    ("3~5天", "三到五天"),
    ("3～5天", "三到五天"),
    ("2-3天", "两到三天"),
    ("9点-18点", "九点到十八点"),
    ("3天-5天", "三天到五天"),
    ("1+1", "一加一"),
    ("30x40cm", "三十乘四十厘米"),
    ("3×4", "三乘四"),
    # digit strings
    ("订单20240518001", "订单二零二四零五幺八零零幺"),
    ("打12315投诉", "打幺二三幺五投诉"),
    ("手机13800138000", "手机幺三八零零幺三八零零零"),
    ("区号0571", "区号零五七幺"),
    ("400-820-8820", "四零零 八二零 八八二零"),
    # codes
    ("SF1234567890", "艾斯艾弗幺二三四五六七八九零"),
    ("JD0012345", "杰迪零零幺二三四五"),
    ("A12B", "诶幺二比"),
    ("A4纸", "诶四纸"),
    ("XL2件", "艾克斯艾欧两件"),
    # letters and sizes
    ("白色L码", "白色艾欧码"),
    ("XL", "艾克斯艾欧"),
    ("2XL", "二艾克斯艾欧"),
    ("xl码", "艾克斯艾欧码"),
    ("T恤", "提恤"),
    ("VIP会员", "维艾皮会员"),
    ("PM2.5", "皮艾姆二点五"),
    ("下载app", "下载诶皮皮"),
    ("打开App", "打开诶皮皮"),
    ("连上wifi", "连上wifi"),
    ("iPhone15", "iPhone十五"),
    ("128G", "一百二十八吉"),
    # units after numbers
    ("500ml", "五百毫升"),
    ("500mL", "五百毫升"),
    ("500ML", "五百毫升"),
    ("1.5L", "一点五升"),
    ("500g", "五百克"),
    ("30cm", "三十厘米"),
    ("5mm", "五毫米"),
    ("1.8m", "一点八米"),
    ("3km", "三公里"),
    ("10W", "十瓦"),
    ("5V", "五伏"),
    ("10000mAh", "一万毫安时"),
    ("5kg/袋", "五公斤每袋"),
    ("60km/h", "六十公里每小时"),
    ("3-5kg", "三到五公斤"),
    ("25℃", "二十五度"),
    ("25°", "二十五度"),
    ("5㎏", "五公斤"),
    ("3L码", "三艾欧码"),
    # full width
    ("３２元", "三十二块"),
    ("ＸＬ码", "艾克斯艾欧码"),
    ("１８：３０", "十八点半"),
    # punctuation is left alone
    ("好的，稍等…", "好的，稍等…"),
    ("您好！请问？（急）", "您好！请问？（急）"),
]


@pytest.mark.parametrize(("text", "spoken"), CASES)
def test_speakable_writes_text_as_a_chinese_agent_says_it(text: str, spoken: str) -> None:
    assert speakable(text) == spoken


def test_there_are_at_least_60_cases() -> None:
    assert len(CASES) >= 60 and len({t for t, _ in CASES}) == len(CASES)


# --- speakable: properties -------------------------------------------------------------------

_SIZE = re.compile(r"[Xx]*[SMLsml]")


def kept_word(word: str) -> bool:
    """A run of Latin letters speakable may leave: four or more letters, one lower case, not a size."""
    return len(word) >= 4 and not word.isupper() and not _SIZE.fullmatch(word)


def unreadable(spoken: str) -> list[str]:
    """What a Chinese-only voice could not read: ASCII digits, and letters outside kept words."""
    digits = [ch for ch in spoken if "0" <= ch <= "9"]
    letters = [w for w in re.findall(r"[A-Za-z]+", spoken) if not kept_word(w)]
    return digits + letters


PIECES = [
    *"您好订单号已发货退款请稍等谢谢满减打折件个天块元角分折年月日号点时秒码第共约",
    *"0123456789",
    *"０１２３ＸＬｍｌ",
    *"ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    *"abcdefghijklmnopqrstuvwxyz",
    *".,:：-~～/%+x×*¥￥°℃ ，。！？、…（）",
    *["ml", "mL", "ML", "kg", "KG", "g", "L", "cm", "mm", "km", "W", "V", "mAh", "XL", "XXL", "VIP", "app"],
    *["iPhone", "SF", "JD", "0.5", "32.8", "1,299", "18:30", "2024-05-18", "9:00-18:00", "3-5", "8.5折"],
]
texts = st.lists(st.sampled_from(PIECES), max_size=30).map("".join)


def test_the_unreadable_check_finds_what_it_should() -> None:
    assert unreadable("订单2号") == ["2"]
    assert unreadable("L码、VIP、XL、xl") == ["L", "VIP", "XL", "xl"]
    assert unreadable("下载app，iPhone，kg") == ["app", "kg"]
    assert unreadable("iPhone，wifi") == []


@given(texts)
@settings(max_examples=500, deadline=None)
def test_speakable_leaves_no_digits_and_no_letters_outside_kept_words(text: str) -> None:
    spoken = speakable(text)
    assert unreadable(spoken) == []


@given(texts)
@settings(max_examples=500, deadline=None)
def test_speakable_is_idempotent(text: str) -> None:
    spoken = speakable(text)
    assert speakable(spoken) == spoken


@given(st.text(max_size=60))
@settings(max_examples=500, deadline=None)
def test_speakable_never_raises_and_reads_any_text(text: str) -> None:
    spoken = speakable(text)
    assert unreadable(spoken) == []
    assert speakable(spoken) == spoken


def test_very_long_digit_strings_are_read_digit_by_digit() -> None:
    assert speakable("1" * 20 + "元") == "一" * 20 + "块"
    assert speakable("0." + "5" * 5000) == "零点" + "五" * 5000
    assert speakable("9" * 5000) == "九" * 5000


# --- sentences ---------------------------------------------------------------------------------


def test_replies_split_at_sentence_ends_and_long_sentences_at_commas() -> None:
    assert split_sentences("好的！谢谢;再见") == ["好的！", "谢谢;", "再见"]
    assert split_sentences("价格1,299元，到手32.8元。") == ["价格1,299元，到手32.8元。"]  # no cut inside numbers
    long = "您的订单已经发货了，快递员会在明天上午给您打电话，请您保持电话畅通，谢谢您的耐心等待。"
    pieces = split_sentences(long)
    assert len(pieces) > 1 and "".join(pieces) == long
    assert split_sentences("。。。") == []


def test_punctuation_alone_has_no_speech() -> None:
    assert not has_speech("。，！") and has_speech("好") and has_speech("A")
