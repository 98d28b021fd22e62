"""Text preparation for speech: replies cut into sentences, numbers written as a Chinese agent says them."""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"(?<=[。！？；!?;…\n])")
_CLAUSE_END = re.compile(r"(?<=[，、：]|,(?!\d))")
_MAX_SENTENCE_CHARS = 30  # longer sentences are cut at commas so the first audio comes sooner


def split_sentences(text: str) -> list[str]:
    """Cut a reply at 。！？；!?; and, in sentences over 30 characters, at commas."""
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        pieces.extend(_cut_long(sentence.strip()))
    return [p for p in pieces if has_speech(p)]


def _cut_long(sentence: str) -> list[str]:
    if len(sentence) <= _MAX_SENTENCE_CHARS:
        return [sentence]
    out: list[str] = []
    for clause in _CLAUSE_END.split(sentence):
        if out and len(out[-1]) + len(clause) <= _MAX_SENTENCE_CHARS // 2:
            out[-1] += clause  # keep very short clauses together
        else:
            out.append(clause)
    return [c.strip() for c in out]


def has_speech(text: str) -> bool:
    """Whether ``text`` has anything to say (a letter, digit or Han character, not only punctuation)."""
    return any(ch.isalnum() for ch in text)


_DIGITS = "零一二三四五六七八九"
_MEASURE_WORDS = "件个天次位双条张份盒箱瓶袋周斤本台只套"
_UNITS_AFTER = "元块角分件个天次位双条张份盒箱瓶袋周斤本台只套米克岁年月日号点人%"
_NUMBER = re.compile(r"(?<![\d.])(\d+)(?:\.(\d+))?(?![\d.])")


def speakable(text: str) -> str:
    """``text`` with numbers written the way a Chinese agent says them, for espeak-ng.

    "32.8元" -> "三十二点八元", "50%" -> "百分之五十", "18:30" -> "十八点三十分",
    "2024年" -> "二零二四年", "2件" -> "两件", "订单20240518001" -> "订单二零二四零五幺八零零幺"
    (digit strings of five or more digits not followed by a unit, and any with a leading zero,
    are read digit by digit with 幺 for 1, as on the phone).
    """
    text = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)  # 1,299 -> 1299
    text = re.sub(r"[¥￥](\d+(?:\.\d+)?)(?!\d|\.\d|元)", r"\1元", text)
    text = re.sub(r"[¥￥]", "", text)
    text = re.sub(r"(\d+(?:\.\d+)?)\s*%", lambda m: "百分之" + _number_words(m.group(1)), text)
    text = re.sub(r"(?<!\d)([01]?\d|2[0-3])[:：]([0-5]\d)(?!\d)", _clock, text)
    return _NUMBER.sub(_number, text)


def _clock(match: re.Match[str]) -> str:
    hours, minutes = int(match.group(1)), int(match.group(2))
    spoken = _integer_words(hours) + "点"
    if minutes:
        spoken += ("零" if minutes < 10 else "") + _integer_words(minutes) + "分"
    return spoken


def _number(match: re.Match[str]) -> str:
    whole, fraction = match.group(1), match.group(2)
    following = match.string[match.end() : match.end() + 1]
    if fraction is not None:
        return _number_words(f"{whole}.{fraction}")
    if len(whole) == 4 and following == "年":
        return "".join(_DIGITS[int(d)] for d in whole)
    if (
        whole.startswith("0")
        and len(whole) > 1
        or (len(whole) >= 5 and (not following or following not in _UNITS_AFTER))
    ):
        return "".join("幺" if d == "1" else _DIGITS[int(d)] for d in whole)
    if (
        whole == "2"
        and following
        and following in _MEASURE_WORDS
        and match.string[match.start() - 1 : match.start()] != "第"
    ):
        return "两"
    return _integer_words(int(whole))


def _number_words(number: str) -> str:
    whole, _, fraction = number.partition(".")
    spoken = _integer_words(int(whole))
    return spoken + ("点" + "".join(_DIGITS[int(d)] for d in fraction) if fraction else "")


def _integer_words(value: int) -> str:
    """Chinese numerals for 0 <= value < 10**16: 15 -> 十五, 1005 -> 一千零五, 120000 -> 十二万."""
    if value == 0:
        return "零"
    if value >= 10**16:
        return "".join(_DIGITS[int(d)] for d in str(value))
    groups, words = [], ""
    while value:
        value, group = divmod(value, 10000)
        groups.append(group)
    for index in range(len(groups) - 1, -1, -1):
        group = groups[index]
        if group == 0:
            continue
        if words and group < 1000:
            words += "零"
        words += _group_words(group) + ("", "万", "亿", "万亿")[index]
    words = re.sub("零+", "零", words)
    return words[1:] if words.startswith("一十") else words


def _group_words(group: int) -> str:
    """Chinese numerals for 1 <= group <= 9999, zeros collapsed, no trailing 零."""
    out = ""
    for power, name in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        digit = group // power % 10
        if digit:
            out += _DIGITS[digit] + name
        elif out and group % power:
            out += "零"
    return out
